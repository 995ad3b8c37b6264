"""The cgroup managers on a real kernel: this host (cgroup v1, hybrid) and a pure v2 guest.

    .venv/bin/python -m pytest -q tests/integration/test_cgroups_host.py              # v1 here
    ../shared/tools/cgroup2-vm -- .venv/bin/python -m pytest -q tests/integration/test_cgroups_host.py

Each test uses a cgroup path with a unique name (`/mrunc-test-<pid>-<hex>/ctr`), moves only
processes it spawned, and removes what it made even when it fails.
"""

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
def test_v2_device_rules_are_refused_and_unified_written(box):
    box.mgr.apply()
    with pytest.raises(cgroups.CgroupError, match="device rules need an eBPF program"):
        box.mgr.set({"devices": [{"allow": False, "access": "rwm"}]})
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
