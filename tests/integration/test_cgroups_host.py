"""The cgroup managers on a real kernel: this host (cgroup v1, hybrid) and a pure v2 guest.

    .venv/bin/python -m pytest -q tests/integration/test_cgroups_host.py              # v1 here
    ../shared/tools/cgroup2-vm -- .venv/bin/python -m pytest -q tests/integration/test_cgroups_host.py

Each test uses a cgroup path with a unique name (`/mrunc-test-<pid>-<hex>/ctr`), moves only
processes it spawned, and removes what it made even when it fails.
"""

import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from mrunc import cgroups

LAYOUT = cgroups.detect()
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create cgroups")]

V1 = pytest.param("v1", marks=[pytest.mark.cgroup_v1, pytest.mark.skipif(
    LAYOUT not in ("v1", "hybrid"), reason=f"needs cgroup v1 controllers; this host is {LAYOUT}")])
V2 = pytest.param("v2", marks=[pytest.mark.cgroup_v2, pytest.mark.skipif(
    LAYOUT != "v2", reason=f"needs pure cgroup v2 (run through ../shared/tools/cgroup2-vm); "
                           f"this host is {LAYOUT}")])

MiB = 1 << 20


class Box:
    """A manager for a unique cgroup plus the processes the test started."""

    def __init__(self):
        self.top = f"mrunc-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.mgr = cgroups.manager(f"/{self.top}/ctr", self.top)
        self.procs = []

    def spawn(self, script):
        """`sh -c script`, held at `read` until go(): so it can be put in the cgroup first."""
        p = subprocess.Popen(["sh", "-c", "read x; " + script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    @staticmethod
    def go(p, timeout=60):
        out, _ = p.communicate(b"\n", timeout=timeout)
        return p.returncode, out.decode()

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.wait()
        try:
            self.mgr.thaw()
        except Exception:
            pass
        self.mgr.remove()
        for d in self.mgr.dirs():          # last resort, only below our unique name
            top = d[:d.index(self.top) + len(self.top)]
            for sub in (d, top):
                if os.path.isdir(sub):
                    os.rmdir(sub)


@pytest.fixture
def box():
    b = Box()
    try:
        yield b
    finally:
        b.cleanup()


def state(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(line.split()[1] for line in f if line.startswith("State:"))


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])     # utime + stime


def read(d, name):
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def expected_files(layout, mgr):
    if layout == "v2":
        d = mgr.dir("")
        return {(d, "memory.max"): str(64 * MiB), (d, "pids.max"): "10",
                (d, "cpu.max"): "50000 100000"}
    return {(mgr.dir("memory"), "memory.limit_in_bytes"): str(64 * MiB),
            (mgr.dir("pids"), "pids.max"): "10",
            (mgr.dir("cpu"), "cpu.cfs_quota_us"): "50000",
            (mgr.dir("cpu"), "cpu.cfs_period_us"): "100000"}


@pytest.mark.parametrize("layout", [V1, V2])
def test_lifecycle(box, layout):
    m = box.mgr
    assert m.layout == LAYOUT and not m.exists()
    sleeper = subprocess.Popen(["sleep", "100"], start_new_session=True)
    box.procs.append(sleeper)
    m.apply(sleeper.pid)
    assert m.exists()

    # the process is in our cgroup in every hierarchy
    with open(f"/proc/{sleeper.pid}/cgroup") as f:
        lines = f.read().splitlines()
    assert lines and all(line.endswith(f":/{box.top}/ctr") for line in lines), lines

    m.set({"memory": {"limit": 64 * MiB}, "pids": {"limit": 10},
           "cpu": {"quota": 50000, "period": 100000}})
    for (d, name), want in expected_files(layout, m).items():
        assert read(d, name) == want, name
    s = m.stats()
    assert s["memory"]["limit"] == 64 * MiB and s["pids"] == {"current": 1, "limit": 10}
    assert s["cpu"]["usage_usec"] is not None

    # freeze: a busy loop stops running and stops using CPU; thaw: it runs again
    spinner = subprocess.Popen(["sh", "-c", "while :; do :; done"], start_new_session=True)
    box.procs.append(spinner)
    m.apply(spinner.pid)
    assert m.pids() == sorted([sleeper.pid, spinner.pid])
    m.freeze()
    assert m.freezer_state() == "frozen"
    time.sleep(0.2)
    assert state(spinner.pid) != "R"
    before = cpu_ticks(spinner.pid)
    time.sleep(0.5)
    assert cpu_ticks(spinner.pid) == before
    m.thaw()
    assert m.freezer_state() == "thawed"
    deadline = time.monotonic() + 10
    while cpu_ticks(spinner.pid) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cpu_ticks(spinner.pid) > before

    # kill_all reaches every process in the cgroup
    m.kill_all(signal.SIGTERM)
    assert sleeper.wait(timeout=10) == -signal.SIGTERM
    assert spinner.wait(timeout=10) == -signal.SIGTERM
    assert m.pids() == []

    dirs = m.dirs()
    m.remove()
    assert not m.exists()
    assert [d for d in dirs if os.path.exists(d)] == []
    assert [d for d in dirs if os.path.exists(d[:d.index(box.top) + len(box.top)])] == []


@pytest.mark.parametrize("layout", [V1, V2])
def test_remove_kills_what_is_left(box, layout):
    p = box.spawn("sleep 100")
    box.mgr.apply(p.pid)
    sub = os.path.join(box.mgr.dirs()[0], "nested")     # a cgroup the container made itself
    os.mkdir(sub)
    box.mgr.remove()
    assert p.wait(timeout=10) == -signal.SIGKILL
    assert not box.mgr.exists() and not os.path.exists(sub)


@pytest.mark.parametrize("layout", [V1, V2])
def test_pids_limit_makes_fork_fail(box, layout):
    p = box.spawn("/bin/true && echo forked")      # the shell is the one pid allowed
    box.mgr.apply(p.pid)
    box.mgr.set({"pids": {"limit": 1}})
    rc, out = box.go(p)
    assert rc != 0 and "forked" not in out and "fork" in out, (rc, out)   # "sh: Cannot fork"


@pytest.mark.parametrize("layout", [V1, V2])
def test_memory_limit_oom_kills(box, layout):
    # The shell grows a 64 MiB string in a cgroup limited to 16 MiB, swap included.
    p = box.spawn("x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived")
    box.mgr.apply(p.pid)
    box.mgr.set({"memory": {"limit": 16 * MiB, "swap": 16 * MiB}})
    rc, out = box.go(p, timeout=120)
    assert "survived" not in out and rc == -signal.SIGKILL, (rc, out)
    assert box.mgr.stats()["memory"]["oom_kills"] >= 1


@pytest.mark.cgroup_v2
@pytest.mark.skipif(LAYOUT != "v2", reason=f"needs pure cgroup v2; this host is {LAYOUT}")
def test_v2_unified_written(box):
    box.mgr.apply()
    box.mgr.set({"unified": {"memory.high": str(32 * MiB)}, "cpu": {"shares": 1024}})
    assert read(box.mgr.dir(""), "memory.high") == str(32 * MiB)
    assert read(box.mgr.dir(""), "cpu.weight") == "100"


@pytest.mark.cgroup_v1
@pytest.mark.skipif(LAYOUT not in ("v1", "hybrid"), reason=f"needs cgroup v1; this host is {LAYOUT}")
def test_v1_device_rules_are_written(box):
    box.mgr.apply()
    box.mgr.set({"devices": [{"allow": False, "access": "rwm"},
                             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})
    assert read(box.mgr.dir("devices"), "devices.list") == "c 1:3 rwm"


# ---- device rules: v1's devices.allow/deny, v2's eBPF filter, and the reference evaluator -------

class Prober:
    """A forked child that tries device accesses from inside a cgroup and reports, per probe,
    "ok", "EPERM" (the device cgroup said no) or another errno name (allowed, but no such device).

    Probes are (path, "r"|"w"|"rw") to open, or ((type, major, minor), "m") to mknod. With
    `nodes`, the child first makes those device nodes in a private tmpfs at `where` (its own
    mount namespace: /tmp may be nodev, and the nodes must exist before it joins the cgroup).
    Talks JSON lines over two pipes: fork, not exec, as the v2 guest execs ~50x slower.
    """

    def __init__(self, nodes=(), where=None):
        from mrunc import linux
        self.where = where
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:                       # the child: never returns
            code = 1
            try:
                os.close(self._w)
                os.close(self._r)
                out = os.fdopen(from_child, "w")
                if nodes:
                    sc = linux.Syscalls()
                    sc.unshare(linux.CLONE_NEWNS)
                    sc.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
                    sc.mount("tmpfs", where, "tmpfs", 0, "mode=700")
                    for node in nodes:
                        os.mknod(self.path(node), self._mode(node[0]), os.makedev(*node[1:]))
                out.write('"ready"\n')
                out.flush()
                for line in os.fdopen(to_child):
                    probes = json.loads(line)
                    if probes is None:
                        break
                    out.write(json.dumps([self._try(*p) for p in probes]) + "\n")
                    out.flush()
                code = 0
            except BaseException as e:
                try:
                    out.write(json.dumps({"error": repr(e)}) + "\n")
                    out.flush()
                except BaseException:
                    pass
            finally:
                os._exit(code)
        os.close(to_child)
        os.close(from_child)
        self._in = os.fdopen(self._r)
        self._out = os.fdopen(self._w, "w")
        assert self._answer() == "ready"

    def path(self, node):
        return os.path.join(self.where, "%s-%d-%d" % tuple(node))

    @staticmethod
    def _mode(kind):
        import stat
        return (stat.S_IFBLK if kind == "b" else stat.S_IFCHR) | 0o600

    def _try(self, what, access):
        import errno as E
        try:
            if access == "m":
                p = os.path.join(self.where, "new")
                os.mknod(p, self._mode(what[0]), os.makedev(*what[1:]))
                os.unlink(p)
            else:
                flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[access]
                path = what if isinstance(what, str) else self.path(what)
                os.close(os.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC))
            return "ok"
        except OSError as e:
            return E.errorcode.get(e.errno, str(e.errno))

    def _answer(self):
        line = self._in.readline()
        assert line, "the prober died"
        got = json.loads(line)
        assert not (isinstance(got, dict) and "error" in got), got
        return got

    def run(self, probes):
        self._out.write(json.dumps(probes) + "\n")
        self._out.flush()
        return self._answer()

    def stop(self):
        try:
            self._out.write("null\n")
            self._out.flush()
        except OSError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self._in.close()
        self._out.close()

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.stop()


def free_majors(n):
    """n major numbers no block or char driver registered here (so a probe opens nothing real)."""
    used = set()
    with open("/proc/devices") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0].isdigit():
                used.add(int(parts[0]))
    return [m for m in range(230, 100, -1) if m not in used][:n]


def reference_lists(a, b, c):
    """Rule lists over majors a, b, c that tell "the last matching rule wins" from v1's rules."""
    def r(allow, kind="a", major=None, minor=None, access="rwm"):
        out = {"allow": allow, "type": kind, "access": access}
        out.update({k: v for k, v in (("major", major), ("minor", minor)) if v is not None})
        return out
    deny, allow = r(False), r(True)
    return [
        [],
        [deny, r(True, "c", a, 0), r(True, "c", b, None, "rw"), r(True, "b", None, 1, "m"),
         r(False, "c", a, 0, "w")],
        [deny, r(True, "c", a, 0, "r"), r(True, "c", a, 0, "w")],               # merged: rw
        [deny, r(True, "c", a, None, "r"), r(True, "c", a, 0, "w")],            # not merged
        [deny, r(True, "c", a, 0, "rw"), r(False, "c", a, None, "w")],          # no exact match
        [deny, r(True, "c", None, None, "rwm"), r(False, "c", b, 1)],           # ditto
        [allow, r(False, "c", a, 0, "r"), r(False, "b", b, None, "w"), r(False, "c", None, 2, "m")],
        [allow, r(False, "c", a, 0), r(True, "c", a, 0, "rw")],                 # leaves c a:0 m
        [r(True, "c", a, 0), deny, r(True, "b", a, 1)],                         # "a" starts over
        [deny, r(True, "c", None, None, "m"), r(True, "b", None, None, "m"), r(True, "c", c, 2),
         r(True, "b", c, 0, "r")],
        [allow],
    ]


def check_against_reference(set_rules, prober, nodes):
    """For each list: set it, probe every node with m, r, w, rw, compare with the evaluator."""
    from mrunc.cgroups import devices_bpf
    bits = {"m": 1, "r": 2, "w": 4, "rw": 6}
    probes = [(list(n), acc) for n in nodes for acc in ("m", "r", "w", "rw")]
    a, b, c = sorted({n[1] for n in nodes})[::-1][:3]
    bad = []
    for rules in reference_lists(a, b, c):
        set_rules(rules)
        got = prober.run(probes)
        for (node, acc), res in zip(probes, got):
            want = devices_bpf.evaluate(rules, devices_bpf.TYPES[node[0]], node[1], node[2], bits[acc])
            if (res != "EPERM") != want:
                bad.append((rules, node, acc, res, want))
    assert bad == [], bad[:5]


def probe_nodes():
    majors = free_majors(3)
    return [(kind, m, n) for kind in "cb" for m in majors for n in (0, 1, 2)]


@pytest.mark.parametrize("layout", [V1, V2])
def test_device_rules_match_the_reference(box, tmp_path, layout):
    """The same rule lists, applied by the manager (v1: devices.allow/deny; v2: the eBPF
    program), and then updated list after list, allow and deny exactly what the pure-Python
    reference says — that is, what the v1 kernel does."""
    nodes = probe_nodes()
    where = tmp_path / "nodes"
    where.mkdir()
    prober = Prober(nodes, str(where))
    try:
        box.mgr.apply(prober.pid)
        check_against_reference(lambda rules: box.mgr.set({"devices": rules}), prober, nodes)
    finally:
        prober.kill()


def _unified_mount():
    """The cgroup2 tree of a hybrid host (where v1 controllers do the limits), or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup2" and fields[4] != "/sys/fs/cgroup":
                return fields[4]
    return None


@pytest.mark.skipif(LAYOUT != "hybrid" or not _unified_mount(),
                    reason=f"needs the cgroup2 tree of a hybrid host; this host is {LAYOUT}")
def test_ebpf_filter_on_this_hosts_cgroup2_tree(tmp_path):
    """The eBPF filter on the native kernel: a hybrid host's cgroup2 tree takes device programs
    too (the v1 devices controller, allowing all at its root, has its say as well)."""
    from mrunc.cgroups import devices_bpf
    cg = os.path.join(_unified_mount(), f"mrunc-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    nodes = probe_nodes()
    where = tmp_path / "nodes"
    where.mkdir()
    os.mkdir(cg)
    prober = None
    try:
        prober = Prober(nodes, str(where))
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(prober.pid))
        check_against_reference(lambda rules: devices_bpf.install(cg, rules), prober, nodes)
        devices_bpf.install(cg, [{"allow": False, "access": "rwm"}])
        assert len(devices_bpf.attached(cg)) == 1
    finally:
        if prober:
            prober.kill()
        os.rmdir(cg)


def test_verifier_takes_the_programs_and_explains_a_bad_one():
    """Both block shapes (allow list, deny list) of a long engine-style list pass the verifier of
    this kernel; a program that exits without setting r0 comes back with the verifier's words."""
    from mrunc.cgroups import devices_bpf as d
    keys = [(t, ma, mi) for t in "cb" for ma in (1, 5, 10, 136, 180, 4094, None)
            for mi in (0, 3, 200, (1 << 20) - 1, None)]
    some = [{"allow": True, "type": t, "major": ma, "minor": mi,
             "access": ("rwm", "rw", "m", "r", "w")[k % 5]} for k, (t, ma, mi) in enumerate(keys)]
    for rules in ([{"allow": False, "access": "rwm"}] + some,
                  [{"allow": True, "access": "rwm"}] + [dict(r, allow=False) for r in some]):
        insns = d.program(rules)
        assert len(insns) > 300
        os.close(d.load(insns))
    with pytest.raises(cgroups.CgroupError, match=r"^linux\.resources\.devices: cannot load the "
                       r"eBPF device filter: bpf\(BPF_PROG_LOAD\): Permission denied; the verifier "
                       r"said: .*R0 !read_ok"):
        d.load([d.exit_()])


@pytest.mark.cgroup_v2
@pytest.mark.skipif(LAYOUT != "v2", reason=f"needs pure cgroup v2; this host is {LAYOUT}")
def test_v2_device_filter_denies_updates_and_outlives_the_runtime(box):
    from mrunc.cgroups import devices_bpf
    deny = {"allow": False, "access": "rwm"}
    null, zero = {"type": "c", "major": 1, "minor": 3}, {"type": "c", "major": 1, "minor": 5}
    probes = [("/dev/null", "r"), ("/dev/null", "w"), ("/dev/zero", "r")]
    prober = Prober()
    try:
        box.mgr.apply(prober.pid)
        # /dev/zero, and /dev/null for writing only. Set by a process that then exits, like
        # `mrunc create`: the attachment alone keeps the program.
        pid = os.fork()
        if pid == 0:
            try:
                box.mgr.set({"devices": [deny, dict(zero, allow=True, access="rwm"),
                                         dict(null, allow=True, access="w")]})
                os._exit(0)
            finally:
                os._exit(1)
        assert os.waitpid(pid, 0)[1] == 0
        assert prober.run(probes) == ["EPERM", "ok", "ok"]
        d = box.mgr.dir("")
        first = devices_bpf.attached(d)
        assert len(first) == 1

        # update: /dev/null only
        box.mgr.set({"devices": [deny, dict(null, allow=True, access="rwm")]})
        assert prober.run(probes) == ["ok", "ok", "EPERM"]
        second = devices_bpf.attached(d)
        assert len(second) == 1 and second != first

        # everything allowed: no filter left
        box.mgr.set({"devices": [deny, {"allow": True, "access": "rwm"}]})
        assert devices_bpf.attached(d) == []
        assert prober.run(probes) == ["ok", "ok", "ok"]

        box.mgr.set({"devices": [deny]})
        assert prober.run(probes) == ["EPERM", "EPERM", "EPERM"]
        last = devices_bpf.attached(d)
    finally:
        prober.kill()
    box.mgr.remove()
    assert not box.mgr.exists()
    # the cgroup gone, the kernel frees its programs (asynchronously)
    deadline = time.monotonic() + 30
    while _prog_exists(last[0]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _prog_exists(last[0])


def _prog_exists(prog_id):
    import errno as E
    from mrunc.cgroups import devices_bpf
    try:
        os.close(devices_bpf._prog_fd(prog_id))
        return True
    except OSError as e:
        assert e.errno == E.ENOENT, e
        return False


# ---- the same limits through runc and through mrunc read back the same ------------------------

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOTFS = os.path.join(REPO, "rootfs", "busybox")


def _disk():
    """major:minor of a real disk (throttle rules need an existing device), or None."""
    for name in sorted(os.listdir("/sys/block")):
        if not name.startswith(("loop", "ram", "zram")):
            with open(f"/sys/block/{name}/dev") as f:
                return tuple(int(n) for n in f.read().split(":"))
    return None


def _compared(layout):
    """(resources, {hierarchy key: [files]}) to compare on this layout."""
    res = {"memory": {"limit": 64 * MiB, "swap": 128 * MiB, "reservation": 32 * MiB},
           "pids": {"limit": 20},
           "cpu": {"quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}}
    disk = _disk()
    if disk:
        res["blockIO"] = {"throttleReadBpsDevice": [{"major": disk[0], "minor": disk[1], "rate": MiB}]}
    if layout == "v2":
        # cpu.weight is left out: runc 1.1.5 still converts shares with the old linear formula,
        # mrunc uses the quadratic one of runc >= 1.3 and crun (OCI-CHECKLIST section 6).
        files = {"": ["memory.max", "memory.swap.max", "memory.low", "pids.max", "cpu.max",
                      "cpuset.cpus", "cpuset.mems"] + (["io.max"] if disk else [])}
    else:
        res["memory"]["swappiness"] = 10
        res["cpu"]["shares"] = 512
        files = {"memory": ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
                            "memory.soft_limit_in_bytes", "memory.swappiness"],
                 "pids": ["pids.max"], "cpu": ["cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"],
                 "cpuset": ["cpuset.cpus", "cpuset.mems"]}
        if disk:
            files["blkio"] = ["blkio.throttle.read_bps_device"]
    return res, files


@pytest.mark.runc
@pytest.mark.parametrize("layout", [V1, V2])
@pytest.mark.skipif(not os.path.exists(os.path.join(ROOTFS, "bin", "sh")),
                    reason="no busybox rootfs (make rootfs)")
def test_same_files_as_runc(box, tmp_path, layout):
    import json
    import shutil
    if not shutil.which("runc"):
        pytest.skip("runc is not installed")
    res, files = _compared(layout)
    bundle, state = tmp_path / "bundle", f"/run/mrunc-test-runc-{uuid.uuid4().hex[:8]}"
    bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["root"] = {"path": ROOTFS, "readonly": True}
    cfg["process"].update(terminal=False, args=["sleep", "100"])
    cfg["linux"]["cgroupsPath"] = f"/{box.top}/runc"
    cfg["linux"]["resources"].update(res)
    (bundle / "config.json").write_text(json.dumps(cfg))
    runc = ["runc", "--root", state]
    try:
        # The container's init keeps runc's stdio open: a file, not a pipe we would wait on.
        with open(tmp_path / "runc.err", "w+") as err:
            p = subprocess.run(runc + ["create", "--bundle", str(bundle), box.top],
                               stdin=subprocess.DEVNULL, stdout=err, stderr=err, timeout=60)
        assert p.returncode == 0, (tmp_path / "runc.err").read_text()
        theirs = cgroups.manager(f"/{box.top}/runc", box.top)
        box.mgr.apply()
        box.mgr.set(res)
        for key, names in files.items():
            for name in names:
                assert read(box.mgr.dir(key), name) == read(theirs.dir(key), name), name
    finally:
        subprocess.run(runc + ["delete", "--force", box.top], capture_output=True, timeout=60)
        shutil.rmtree(state, ignore_errors=True)
