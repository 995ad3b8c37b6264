"""The phase record pinned: which process makes which call, in which phase, for a root, a rootless
(user namespace with id maps) and a cgroup v2 configuration.

The runtime's half is the real code (process.parent's answers to init: id maps, cgroup dirs,
limits, cgroup.procs, hooks, the device filter) with a recording fake for the host: cgroupfs is a
temp tree whose mkdir fills a new cgroup's files as the kernel does, /proc writes and bpf(2) are
recorded and not made. init's half is a script speaking the protocol, with the calls init makes
(tests/unit/test_rootfs.py and test_security.py pin those). What is checked is the merge: every
call of both processes in the phase it ran in, in the order it ran, said by whom.
"""
import _socket as socket_flags
import io
import os
import posix
import struct
import threading
import time

import pytest

from mrunc import linux, record
from mrunc import cgroups
from mrunc.process import parent, protocol

INIT_PID = 4242


class Host(linux.Syscalls):
    """The runtime's Syscalls on a pretend host (see the module doc)."""

    def mkdir(self, path, mode=0o755):
        super().mkdir(path, mode)          # recorded, and made in the temp tree
        parent_dir = os.path.dirname(path)
        for name in os.listdir(parent_dir):
            src = os.path.join(parent_dir, name)
            if os.path.isfile(src) and name not in ("tasks",):
                value = ""
                if name == "cgroup.controllers":   # v2: what the parent enables for its children
                    value = _read(os.path.join(parent_dir, "cgroup.subtree_control"))
                _write(os.path.join(path, name), value)

    def write_file(self, path, data, truncate=False):
        if not path.endswith("/cgroup.subtree_control"):
            return super().write_file(path, data, truncate)
        self._rec("write", path, data)     # as the kernel takes "+cpu +pids"
        on = set(_read(path).split())
        for tok in data.split():
            (on.add if tok[0] == "+" else on.discard)(tok[1:])
        _write(path, " ".join(sorted(on)))
        for sub in os.listdir(os.path.dirname(path)):
            ctl = os.path.join(os.path.dirname(path), sub, "cgroup.controllers")
            if os.path.exists(ctl):
                _write(ctl, " ".join(sorted(on)))

    def write_fd(self, path, data, *, fd):
        self._rec("write", path, data)     # /proc/<pid>/uid_map: not ours to write in a test

    def bpf(self, cmd, attr, pointers=None, *shown):
        self._rec("bpf", linux._BPF_NAMES[cmd], *shown)
        if cmd == linux.BPF_PROG_QUERY:
            struct.pack_into("=I", attr, 24, 0)             # nothing attached yet
        return os.open(os.devnull, os.O_RDONLY) if cmd == linux.BPF_PROG_LOAD else 0


def _read(path):
    with open(path) as f:
        return f.read().strip()


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def v1_host(root):
    """A hybrid host's hierarchies, without the container's cgroup."""
    files = {"devices": ["devices.allow", "devices.deny"], "memory": ["memory.limit_in_bytes"],
             "pids": ["pids.max"], "cpuset": ["cpuset.cpus", "cpuset.mems"]}
    for h, names in files.items():
        os.makedirs(root / h)
        for n in names + ["tasks", "cgroup.procs"]:
            _write(root / h / n, {"cpuset.cpus": "0-3", "cpuset.mems": "0"}.get(n, ""))
    os.makedirs(root / "unified")
    for n, v in (("cgroup.controllers", ""), ("cgroup.subtree_control", ""), ("cgroup.procs", "")):
        _write(root / "unified" / n, v)


def v2_host(root):
    os.makedirs(root)
    for n, v in (("cgroup.controllers", "memory pids"), ("cgroup.subtree_control", ""),
                 ("cgroup.procs", ""), ("memory.max", "max"), ("pids.max", "max")):
        _write(root / n, v)


class Init:
    """init (and the clone child) as a script: their calls, and the protocol's messages."""

    def __init__(self, sock, listened=True):
        self.sock, self.calls = sock, []
        self.listened = listened    # does init wait for "continue" (init._Phases._waits)
        self.errors = []
        self.mounting = 0.0         # how long its own mounts take, before it asks for the dirs
        self.asked = None           # when it asked for them

    def call(self, who, name, *args):
        self.calls.append({"call": name, "args": list(args), "who": who,
                           "pid": 4241 if who == "clone" else None, "t": time.time(), "ms": 0.01})
        time.sleep(0.001)

    def ask(self, t, answer):
        protocol.send(self.sock, {"t": t})
        assert protocol.recv(self.sock, answer)["t"] == answer
        time.sleep(0.001)

    def phase(self, name):
        calls, self.calls = self.calls, []
        msg = {"t": "phase", "phase": name, "ms": 1.0, "calls": calls}
        if not self.listened and name != "clone":
            protocol.send(self.sock, dict(msg, wait=False))
            return
        protocol.send(self.sock, msg)
        assert protocol.recv(self.sock, "continue")["t"] == "continue"


def script(init, userns, bind, cgroupns, hooks):
    if userns:
        init.call("clone", "unshare", "CLONE_NEWUSER")
        init.ask("userns", "maps-done")
        init.call("clone", "setresgid", 0)
    init.call("clone", "unshare", "CLONE_NEWPID|CLONE_NEWNS")
    protocol.send(init.sock, {"t": "pid", "pid": INIT_PID})
    init.phase("clone")
    init.call("init", "mount", None, "/", None, "REC|SLAVE", None)
    if bind:
        time.sleep(init.mounting)
        init.asked = time.time()
        protocol.send(init.sock, {"t": "cgroup-dirs"})
        dirs = protocol.recv(init.sock, "cgroup-dirs")["dirs"]
        for name, d in dirs:
            init.call("init", "mount", d, f"/rootfs/sys/fs/cgroup/{name}", None, "BIND|REC", None)
    if hooks:
        init.ask("hooks", "hooks-done")
    init.phase("mount")
    init.call("init", "pivot_root", ".", ".")
    init.phase("pivot_root")
    init.ask("cgroup", "cgroup-done")
    if cgroupns:
        init.call("init", "unshare", "CLONE_NEWCGROUP")
    init.phase("cgroup")
    init.call("init", "capset", "0x0", "0x0", "0x0")
    init.phase("security")
    protocol.send(init.sock, {"t": "ready"})


class _C:
    id = "c1"


def create(tmp_path, config, layout, listened=True, init=None):
    """Run the runtime's half against the script; {phase: [(who, call, args...)]} and the trace.
    listened=False: an engine's create, nobody reading the record (no trace, no stepper).
    init: {"mounting": seconds} in, {"asked": when init asked for its cgroup dirs} out."""
    cgroot = tmp_path / "cgroup"
    (v1_host if layout == "hybrid" else v2_host)(cgroot)
    cg = cgroups.manager("/mrunc/c1", "c1", root=str(cgroot), mountinfo=None)
    assert cg.layout == layout
    trace = io.StringIO()
    events = parent.Events(trace=trace if listened else None)
    events.sys = cg.sys = Host()
    nss = {n["type"] for n in config["linux"]["namespaces"]}
    mine, theirs = protocol.pair()
    mine.settimeout(10)     # a protocol slip fails the test instead of hanging it
    seen, init = init, Init(theirs, listened)
    init.mounting = (seen or {}).get("mounting", 0.0)

    def run_script():
        try:
            script(init, "user" in nss, parent._needs_cgroup_bind(config), "cgroup" in nss,
                   bool(config.get("hooks")))
        except Exception as e:  # noqa: BLE001 — reported by the test, not lost in the thread
            init.errors.append(e)
    t = threading.Thread(target=run_script)
    t.start()
    state = {"init_pid": None, "cgroup": None}
    try:
        parent._answer(_C(), config, str(tmp_path), state, events, mine, os.getpid(), cg,
                       None, None)
        t.join(10)
        assert not init.errors, init.errors
        with pytest.raises(BlockingIOError):    # and nothing left unread for init
            theirs.recv(1, socket_flags.MSG_DONTWAIT)
    finally:
        t.join(10)
        mine.close()
        theirs.close()
    if seen is not None:
        seen["asked"] = init.asked
    if not listened:
        return [r["phase"] for r in events.records]
    root = str(cgroot)
    out = {}
    for rec in events.records:
        out[rec["phase"]] = [(c["who"], c["call"], *[a.replace(root, "") if isinstance(a, str)
                                                     else a for a in c["args"]])
                             for c in rec["calls"]]
        assert [c["t"] for c in rec["calls"]] == sorted(c["t"] for c in rec["calls"])
        assert all(c["pid"] for c in rec["calls"]), rec
        assert all(c["pid"] == INIT_PID for c in rec["calls"] if c["who"] == "init")
    return out, events.records, trace.getvalue()


def config(namespaces, **linux_extra):
    return {"process": {"args": ["true"]},
            "linux": dict({"namespaces": [{"type": n} for n in namespaces],
                           "resources": {"memory": {"limit": 64 << 20}, "pids": {"limit": 64}}},
                          **linux_extra)}


def test_root_on_a_hybrid_host_binds_cgroup_dirs_made_in_the_mount_phase(tmp_path):
    cfg = config(["pid", "mount", "network"])
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/true", "args": ["true", "x"]}]}
    phases, records, trace = create(tmp_path, cfg, "hybrid")
    assert list(phases) == ["clone", "mount", "pivot_root", "cgroup", "security"]
    assert phases["clone"] == [("clone", "unshare", "CLONE_NEWPID|CLONE_NEWNS")]   # no id maps
    mount = phases["mount"]
    made = [c for c in mount if c[:2] == ("runtime", "mkdir")]
    # the cgroup dirs, by the runtime, in the mount phase: made while init mounts (before or
    # after init's first mount), all before the binds
    assert [c[2] for c in made] == [f"/{h}/mrunc{leaf}" for h in ("unified", "cpuset", "devices",
                                                                  "memory", "pids")
                                    for leaf in ("", "/c1")]
    first_bind = next(i for i, c in enumerate(mount) if c[-2:] == ("BIND|REC", None))
    assert mount.index(made[-1]) < first_bind and ("init", "mount") in [c[:2] for c in mount]
    assert ("runtime", "write", "/cpuset/mrunc/c1/cpuset.cpus", "0-3") in mount   # v1 cpuset copy
    rec = {r["phase"]: r for r in records}
    notes = {c.get("note") for c in rec["mount"]["calls"] if c["who"] == "runtime" and c["call"] == "mkdir"}
    assert len(notes) == 1 and "bound into the rootfs" in notes.pop()
    hook = next(c for c in rec["mount"]["calls"] if c["who"] == "hook")
    assert (hook["call"], hook["args"]) == ("createRuntime", ["/bin/true", "x"])
    assert hook["pid"] not in (os.getpid(), None) and hook["ms"] > 0 and not hook.get("errno")
    # the cgroup phase: limits, then init moved in — all by the runtime; nothing made any more
    cg = phases["cgroup"]
    assert all(c[0] == "runtime" and c[1] == "write" for c in cg)
    files = [c[2] for c in cg]
    assert files[:2] == ["/devices/mrunc/c1/devices.deny", "/devices/mrunc/c1/devices.allow"]
    assert ("runtime", "write", "/memory/mrunc/c1/memory.limit_in_bytes", str(64 << 20)) in cg
    assert ("runtime", "write", "/pids/mrunc/c1/pids.max", "64") in cg
    procs = [c for c in cg if c[2].endswith("/cgroup.procs")]
    assert {c[3] for c in procs} == {str(INIT_PID)} and len(procs) == 5
    assert cg.index(procs[0]) > max(i for i, c in enumerate(cg) if not c[2].endswith("cgroup.procs"))
    # their writes were worked out while init mounted (v1: planning writes nothing), and made
    # here only: no limit is written in the mount phase
    assert not [c for c in mount if c[1] == "write" and "cpuset." not in c[2]], mount
    assert "runtime[" in trace and "  ^ made in the mount phase" in trace
    assert trace.count("^ made in the mount phase") == 1      # said once for all the mkdirs


@pytest.mark.parametrize("listened", [True, False])
def test_the_cgroup_dirs_are_made_while_init_mounts_not_once_it_asks(tmp_path, listened):
    """The runtime makes the dirs init will bind as soon as the mount phase begins, while init
    mounts, so they are there when init asks (it waited ≈ 1 ms for them); still in the mount
    phase's record, by the runtime, before every bind of them."""
    seen = {"mounting": 0.3}    # init's own mounts: plenty of time for ten mkdirs in a temp tree
    got = create(tmp_path, config(["pid", "mount"]), "hybrid", listened, init=seen)
    if not listened:
        assert got == ["clone", "mount", "pivot_root", "cgroup", "security"]
        assert os.path.isdir(tmp_path / "cgroup" / "pids" / "mrunc" / "c1")
        return
    _phases, records, _trace = got
    rec = {r["phase"]: r["calls"] for r in records}
    assert not [c for c in rec["clone"] if c["who"] == "runtime" and c["call"] == "mkdir"]
    made = [c for c in rec["mount"] if c["who"] == "runtime" and c["call"] == "mkdir"]
    assert len(made) == 10 and all(c["t"] < seen["asked"] for c in made), (made, seen)
    binds = [c for c in rec["mount"] if c["who"] == "init" and "BIND|REC" in c["args"]]
    assert binds and max(c["t"] for c in made) < min(c["t"] for c in binds)


def _root_create_on_v1(tmp_path, cfg, watch=lambda cg: None, host=Host, init_side=None):
    """The runtime's half of a root create that binds its cgroup dirs (pid + mount namespaces),
    on the fake hybrid host: (events, init, the error it raised or None, the manager).
    init_side(sock): what init does instead of the whole script."""
    cgroot = tmp_path / "cgroup"
    v1_host(cgroot)
    cg = cgroups.manager("/mrunc/c1", "c1", root=str(cgroot), mountinfo=None)
    watch(cg)
    events = parent.Events(trace=io.StringIO())
    events.sys = cg.sys = host()
    mine, theirs = protocol.pair()
    mine.settimeout(10)
    init = Init(theirs)
    side = (lambda: init_side(theirs)) if init_side else (lambda: script(init, False, True,
                                                                         False, False))
    t = threading.Thread(target=lambda: _run_quietly(init, side))
    t.start()
    state = {"init_pid": None, "cgroup": None}
    try:
        parent._answer(_C(), cfg, str(tmp_path), state, events, mine, os.getpid(), cg,
                       None, None)
        return events, init, None, state
    except Exception as e:  # noqa: BLE001 — for the test to look at
        return events, init, e, state
    finally:
        mine.close()
        t.join(10)
        theirs.close()


def _run_quietly(init, fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 — the runtime gave up on it: expected here
        init.errors.append(e)


def test_a_create_failing_while_the_dirs_are_made_returns_once_all_are_made(tmp_path):
    """init fails in its mount phase while the runtime still makes the cgroup dirs: the error
    comes out only once they are all made, so the undo that follows finds every dir it must
    remove (cg.created), none made after it."""
    from mrunc.errors import InitError

    class SlowHost(Host):
        def mkdir(self, path, mode=0o755):
            time.sleep(0.01)
            super().mkdir(path, mode)

    def init_side(sock):
        protocol.send(sock, {"t": "pid", "pid": INIT_PID})
        protocol.send(sock, {"t": "phase", "phase": "clone", "ms": 1.0, "calls": []})
        protocol.recv(sock, "continue")
        protocol.send(sock, {"t": "error", "phase": "mount", "message": "mount proc: EPERM"})
    _events, _init, err, state = _root_create_on_v1(tmp_path, config(["pid", "mount"]),
                                                    host=SlowHost, init_side=init_side)
    assert isinstance(err, InitError) and "EPERM" in str(err), err
    cg, cgroot = state["cgroup"], tmp_path / "cgroup"
    assert cg is not None and cg.sys is _events.sys
    made = sorted(str(p) for p in cgroot.glob("*/mrunc*") if p.is_dir())
    made += sorted(str(p) for p in cgroot.glob("*/mrunc/c1") if p.is_dir())
    assert len(made) == 10 and sorted(cg.created) == sorted(made)
    time.sleep(0.05)
    assert len([p for p in cgroot.glob("*/mrunc/*") if p.is_dir()]) == 5    # none made since


def test_a_create_failing_before_the_mount_phase_makes_no_dir_and_leaves_no_thread(tmp_path):
    """The dirs are made as the mount phase begins, not before: a create whose init fails in
    its clone phase has made none (and no thread is left behind)."""
    from mrunc.errors import InitError
    threads = len(os.listdir("/proc/self/task"))

    def init_side(sock):
        protocol.send(sock, {"t": "error", "phase": "clone", "message": "unshare: EPERM"})
    _events, _init, err, state = _root_create_on_v1(tmp_path, config(["pid", "mount"]),
                                                    init_side=init_side)
    assert isinstance(err, InitError) and "EPERM" in str(err), err
    assert state["cgroup"] is None and not list((tmp_path / "cgroup").glob("*/mrunc"))
    deadline = time.monotonic() + 5
    while len(os.listdir("/proc/self/task")) > threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(os.listdir("/proc/self/task")) == threads


def test_a_limit_that_cannot_be_planned_ahead_fails_in_the_cgroup_phase(tmp_path):
    """The limits are planned while init mounts; one that cannot be (no hugetlb hierarchy in
    this fake host) is planned again in the cgroup phase and fails there, as it always did —
    after the mount and pivot_root phases were reported, with the field's JSON path."""
    from mrunc.errors import CgroupError
    cfg = config(["pid", "mount"])
    cfg["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 1 << 21}]
    events, _init, err, _state = _root_create_on_v1(tmp_path, cfg)
    assert isinstance(err, CgroupError) and "linux.resources.hugepageLimits" in str(err), err
    assert [r["phase"] for r in events.records] == ["clone", "mount", "pivot_root"]


def test_the_limits_are_planned_while_init_mounts_and_only_written_in_the_cgroup_phase(tmp_path):
    """v1: working out the limits' writes (which files, checked to exist) is done once, in
    the mount phase, as init binds its cgroup dirs; the cgroup phase plans nothing, it writes."""
    planned = []

    def watch(cg):
        assert cg.plans_ahead
        plan = cg._checked_plan
        cg._checked_plan = lambda res: planned.append(time.time()) or plan(res)
    events, init, err, _state = _root_create_on_v1(tmp_path, config(["pid", "mount"]), watch)
    assert err is None and not init.errors, (err, init.errors)
    rec = {r["phase"]: r["calls"] for r in events.records}
    (pivot,) = [c["t"] for c in rec["pivot_root"] if c["call"] == "pivot_root"]
    writes = [c for c in rec["cgroup"] if c["call"] == "write"]
    assert len(planned) == 1 and planned[0] < pivot, planned    # done before the mount phase was
    assert ("pids.max", "64") in [(os.path.basename(c["args"][0]), c["args"][1]) for c in writes]


def test_rootless_clone_phase_shows_the_id_maps_between_the_clone_childs_calls(tmp_path, monkeypatch):
    cfg = config(["user", "pid", "mount", "cgroup"],
                 uidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}],
                 gidMappings=[{"containerID": 0, "hostID": 1000, "size": 1}])
    for mod in (os, posix):     # the runtime's modules call posix (os's C module), subids os
        monkeypatch.setattr(mod, "geteuid", lambda: 1000)  # unprivileged: setgroups "deny" first
        monkeypatch.setattr(mod, "getegid", lambda: 1000)  # own ids only: no newuidmap (subids)
    phases, _records, _trace = create(tmp_path, cfg, "hybrid")
    pid = os.getpid()   # the fake clone child's pid, as the runtime was told
    assert phases["clone"] == [
        ("clone", "unshare", "CLONE_NEWUSER"),
        ("runtime", "write", f"/proc/{pid}/setgroups", "deny"),
        ("runtime", "write", f"/proc/{pid}/uid_map", "0 1000 1\n"),
        ("runtime", "write", f"/proc/{pid}/gid_map", "0 1000 1\n"),
        ("clone", "setresgid", 0),
        ("clone", "unshare", "CLONE_NEWPID|CLONE_NEWNS")]
    # a cgroup namespace of its own: nothing is bound, so the cgroup is made in the cgroup phase
    assert all(c[0] == "init" for c in phases["mount"])
    cg = phases["cgroup"]
    assert cg[0][:2] == ("runtime", "mkdir") and cg[-1] == ("init", "unshare", "CLONE_NEWCGROUP")
    assert [c for c in cg if c[2].endswith("cgroup.procs")][-1] == cg[-2]


def test_cgroup_v2_limits_device_filter_and_join_then_the_namespace(tmp_path, monkeypatch):
    monkeypatch.setattr(linux, "fstatfs_type", lambda fd: linux.CGROUP2_SUPER_MAGIC)
    cfg = config(["pid", "mount", "cgroup"])
    phases, records, _trace = create(tmp_path, cfg, "v2")
    assert all(c[0] == "init" for c in phases["mount"])
    assert phases["cgroup"] == [
        ("runtime", "mkdir", "/mrunc", "0o755"),
        ("runtime", "mkdir", "/mrunc/c1", "0o755"),
        ("runtime", "write", "/cgroup.subtree_control", "+memory +pids"),
        ("runtime", "write", "/mrunc/cgroup.subtree_control", "+memory +pids"),
        ("runtime", "bpf", "BPF_PROG_QUERY", "/mrunc/c1"),
        ("runtime", "bpf", "BPF_PROG_LOAD", "BPF_PROG_TYPE_CGROUP_DEVICE",
         next(c[4] for c in phases["cgroup"] if c[2:3] == ("BPF_PROG_LOAD",)), "mrunc_devices"),
        ("runtime", "bpf", "BPF_PROG_ATTACH", "/mrunc/c1", "BPF_CGROUP_DEVICE", "BPF_F_ALLOW_MULTI"),
        ("runtime", "write", "/mrunc/c1/pids.max", "64"),
        ("runtime", "write", "/mrunc/c1/memory.max", str(64 << 20)),
        ("runtime", "write", "/mrunc/c1/cgroup.procs", str(INIT_PID)),
        ("init", "unshare", "CLONE_NEWCGROUP")]
    rec = next(r for r in records if r["phase"] == "cgroup")
    timed = [c for c in rec["calls"] if c["call"] == "mkdir" or c["args"][0].endswith(".max")]
    assert len(timed) == 4 and all(c["ms"] is not None for c in timed)   # (the fake's own: not)
    assert record.format_phase(rec).count("\n") == 1 + len(rec["calls"])


def test_a_failed_call_is_recorded_with_its_errno(tmp_path):
    sys = linux.Syscalls()
    with pytest.raises(FileNotFoundError):
        sys.mkdir(str(tmp_path / "no" / "such"))
    (c,) = record.as_dicts(sys.take_log())
    assert c["call"] == "mkdir" and c["errno"] == "ENOENT" and c["who"] == "runtime"
    assert c["pid"] == os.getpid() and c["ms"] >= 0 and abs(c["t"] - time.time()) < 5


def test_a_failed_phase_reports_its_calls_so_far_with_the_failed_one(tmp_path):
    """init's error carries its calls of the phase; the runtime adds its own and reports them,
    the failed call last with its errno (the stepper marks it, --trace prints it)."""
    from mrunc.errors import InitError
    trace = io.StringIO()
    events = parent.Events(trace=trace)
    events.sys = Host()
    mine, theirs = protocol.pair()

    def init():
        protocol.send(theirs, {"t": "pid", "pid": INIT_PID})
        protocol.send(theirs, {"t": "error", "phase": "mount", "message": "mount proc: EPERM",
                               "errno": 1, "calls": [
                                   {"call": "mount", "args": ["proc", "/proc", "proc"], "who": "init",
                                    "t": time.time(), "ms": 0.02, "errno": "EPERM"}]})
    t = threading.Thread(target=init)
    t.start()
    state = {"init_pid": None, "cgroup": None}
    with pytest.raises(InitError) as e:
        parent._answer(_C(), config(["pid"]), str(tmp_path), state, events, mine, os.getpid(),
                       None, None, None)
    t.join(10)
    mine.close()
    theirs.close()
    events.error(e.value, state["init_pid"])
    out = trace.getvalue()
    assert out.startswith("mrunc: phase mount        failed")
    assert f"init[{INIT_PID}]" in out and "mount('proc', '/proc', 'proc')  = EPERM" in out


def test_nobody_listening_init_goes_on_without_continue_after_every_phase_but_clone(tmp_path):
    """An engine's create: nobody reads the record, so nobody pauses init. It reports each phase
    marked "wait": false and goes straight on; the runtime notes the phase (a silent death is
    still told by phase) and sends no "continue" — a stray one would be read as the answer to
    init's next question. After clone init still waits: that "continue" comes once the clone
    child is reaped."""
    cfg = config(["pid", "mount", "network"])
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/true", "args": ["true", "x"]}]}
    phases = create(tmp_path, cfg, "hybrid", listened=False)
    assert phases == ["clone", "mount", "pivot_root", "cgroup", "security"]


def test_an_fd_argument_is_named_by_its_target_only_when_the_log_is_read(tmp_path):
    """Mounts go onto /proc/self/fd/N; the log names where N points (a readlink per call) for
    a reader of the trace — and, when nobody traces (init's `readable` off), keeps the fd path
    as given: the call itself is the same either way."""
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for readable, name in ((True, str(tmp_path / "a")), (False, f"/proc/self/fd/{fd}/b")):
            sys = linux.Syscalls()
            sys.readable = readable
            sys.mkdir(f"/proc/self/fd/{fd}/{os.path.basename(name)}")
            (call,) = sys.take_log()
            assert call == ("mkdir", (name, "0o755"))
            assert (tmp_path / os.path.basename(name)).is_dir()    # made either way
    finally:
        os.close(fd)


def test_a_log_nobody_reads_is_not_kept_but_every_call_is_made_and_fails_alike(tmp_path):
    """Init keeps no log when nobody traces (`keeping` off): the calls still happen, and a
    failing one raises the same error, named the same way; only the record is left unmade."""
    sys = linux.Syscalls()
    sys.keeping = False
    sys.mkdir(str(tmp_path / "a"))
    assert (tmp_path / "a").is_dir()
    with pytest.raises(FileExistsError) as e:
        sys.mkdir(str(tmp_path / "a"))
    with pytest.raises(OSError) as quiet:
        sys.mount(None, str(tmp_path / "missing"), None, linux.MS_PRIVATE)
    assert sys.take_log() == []
    loud = linux.Syscalls()
    with pytest.raises(FileExistsError) as e2:
        loud.mkdir(str(tmp_path / "a"))
    with pytest.raises(OSError) as kept:
        loud.mount(None, str(tmp_path / "missing"), None, linux.MS_PRIVATE)
    assert (e.value.errno, str(e.value)) == (e2.value.errno, str(e2.value))
    assert (quiet.value.errno, str(quiet.value)) == (kept.value.errno, str(kept.value))
    assert [c[0] for c in loud.take_log()] == ["mkdir", "mount"]
