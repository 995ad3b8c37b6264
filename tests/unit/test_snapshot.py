"""Snapshots without root: a fake /proc built from real samples (tests/unit/data, captured by
data/capture_fixtures.py from a stepped container), and diffs of the frozen per-phase snapshots."""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from mrunc import snapshot as S

DATA = Path(__file__).parent / "data"
LINKS = json.loads((DATA / "links.json").read_text())
CGROUP_FILES = json.loads((DATA / "cgroup.json").read_text())
PHASES = json.loads((DATA / "phases.json").read_text())
CID, CHILD, HOST = (int(LINKS["roots"][k]) for k in ("container", "child", "host"))
ROOTFS = "/work/main/rootfs/busybox"     # where the fixtures were captured


def snap(name):
    return S.Snapshot.from_dict(PHASES["snapshots"][name])


def step(name):
    """(before, after) of a phase; the "before" of clone is the mrunc create process itself."""
    order = ["host", "clone", "mount", "pivot_root", "cgroup", "security", "exec"]
    return snap(order[order.index(name) - 1]), snap(name)


def fake_proc(tmp_path):
    proc = tmp_path / "proc"
    for pid_dir in (DATA / "proc").iterdir():
        dest = proc / pid_dir.name
        shutil.copytree(pid_dir, dest)
        for name, target in LINKS[pid_dir.name].items():
            (dest / name).parent.mkdir(exist_ok=True)
            os.symlink(target, dest / name)
    for who, pid in (("rootfs", CID), ("rootfs", CHILD), ("hostroot", HOST)):
        (tmp_path / who).mkdir(exist_ok=True)
        os.symlink(tmp_path / who, proc / str(pid) / "root")
    for rel, text in CGROUP_FILES.items():
        f = tmp_path / "fs" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return proc


class Inside:
    """Stands in for look_inside(): records what it was asked to enter."""

    def __init__(self, result=None):
        self.calls = []
        self.result = result if result is not None else {"hostname": "stepped", "domainname": None,
                                                         "flags": {"lo": 0x49}}

    def __call__(self, pid, enter, ifnames, proc):
        self.calls.append((pid, list(enter), list(ifnames)))
        return dict(self.result)


def take_fake(tmp_path, pid=CID, inside=None, **kw):
    proc = fake_proc(tmp_path)
    return S.take(pid, host_pid=HOST, proc=str(proc), fsroot=str(tmp_path / "fs"),
                  inside=inside or Inside(), **kw)


# ---- parsing -------------------------------------------------------------------------------------

def test_parse_mountinfo_real_sample():
    mounts = S.parse_mountinfo((DATA / "proc" / str(CID) / "mountinfo").read_text())
    assert len(mounts) == 25
    root = mounts[0]
    assert (root.mount_point, root.fstype, root.root, root.readonly) == ("/", "ext4", ROOTFS, True)
    keys = next(m for m in mounts if m.mount_point == "/proc/keys")
    assert (keys.fstype, keys.root) == ("tmpfs", "/null")        # masked: /dev/null bound over it
    by_id = {m.id: m for m in mounts}
    assert all(m.parent in by_id for m in mounts[1:])            # one tree under the rootfs
    assert {m.propagation_mode for m in mounts} == {"private"}


def test_parse_mountinfo_escapes_and_propagation():
    text = ("36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n"
            "37 35 0:5 / /s rw shared:2 master:7 - tmpfs tmp\\134x rw\n"
            "38 35 0:6 / /u rw unbindable - tmpfs t rw\n"
            "39 35 0:7 / /p rw shared:9 - proc proc rw\n"
            "garbage line\n")
    a, b, c, d = S.parse_mountinfo(text)
    assert a.mount_point == "/mnt two" and a.root == "/mnt1" and a.options == ("rw", "noatime")
    assert a.propagation_mode == "slave" and a.super_options == ("rw", "errors=continue")
    assert b.source == "tmp\\x" and b.propagation_mode == "shared+slave"
    assert c.propagation_mode == "unbindable" and d.propagation_mode == "shared"


def test_v4_addresses_from_fib_trie_and_routes():
    fib = (DATA / "proc" / str(HOST) / "net" / "fib_trie").read_text()
    route = (DATA / "proc" / str(HOST) / "net" / "route").read_text()
    assert S._v4_addresses(fib, route) == {"lo": ["127.0.0.1/8"], "eth0": ["192.0.2.2/24"]}
    assert S._v4_addresses(fib, "") == {"lo": ["127.0.0.1/8"], "?": ["192.0.2.2/32"]}


# ---- the process tree on the real /proc ---------------------------------------------------------

def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def test_process_tree_from_the_kernels_child_lists_is_the_whole_tree():
    """Children are found through /proc/<n>/task/<t>/children: every thread's list (a child a
    second thread made is listed under that thread only), and grandchildren; the same tree a
    scan of every process's parent pid gives."""
    import threading
    procs = []
    sh = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"], start_new_session=True)
    procs.append(sh)
    made, looked = threading.Event(), threading.Event()

    def second_thread():                # alive while we look: its child stays on its list
        procs.append(subprocess.Popen(["sleep", "30"]))
        made.set()
        looked.wait(30)
    t = threading.Thread(target=second_thread)
    t.start()
    made.wait(10)
    try:
        def grandchildren_sleeping():     # forked by sh, and past their execve of sleep
            with open(f"/proc/{sh.pid}/task/{sh.pid}/children") as f:
                pids = f.read().split()
            return len(pids) == 2 and all(_comm(p) == "sleep" for p in pids)
        deadline = time.monotonic() + 10
        while not grandchildren_sleeping() and time.monotonic() < deadline:
            time.sleep(0.01)
        tree = S._process_tree(os.getpid(), "/proc")
        kids = {c.pid: c for c in tree.children}
        assert {sh.pid, procs[1].pid} <= set(kids), "a child of another thread is missing"
        assert [c.comm for c in kids[sh.pid].children] == ["sleep", "sleep"]
        assert all(c.ppid == sh.pid and c.cmdline == ("sleep", "30") for c in kids[sh.pid].children)
        by_parent = S._children_by_parent("/proc")
        listed = S._children_listed("/proc")
        def who(entries):               # each process, without its state letter: a sleep
            return sorted((e[0], e[1], *e[3:]) for e in entries)  # may run between two reads
        for p in (os.getpid(), sh.pid):
            assert who(listed(p)) == who(by_parent(p))
    finally:
        looked.set()
        t.join()
        os.killpg(sh.pid, 9)                # sh and its two sleeps
        for p in procs:
            p.kill()
            p.wait()


# ---- take() on a fake /proc -----------------------------------------------------------------------

def test_take_from_fake_proc(tmp_path):
    inside = Inside()
    s = take_fake(tmp_path, inside=inside)
    assert s.error is None and s.notes == ()
    own = {n.kind for n in s.namespaces if n.isolated}
    assert own == {"mnt", "uts", "ipc", "pid", "net", "cgroup"}
    assert s.ns("user").isolated is False and s.ns("pid").inode == 4026532250
    assert not s.root.is_host and s.root.fs_root == ROOTFS and s.root.fstype == "ext4"
    assert len(s.mounts) == 25 and s.mount_at("/proc").fstype == "proc"
    p = s.process
    assert (p.pid, p.comm, p.ns_pid, p.exe, p.cmdline) == (CID, "sh", 1, "/bin/busybox",
                                                            ("sh", "-c", "sleep 300 & wait"))
    assert [c.comm for c in p.children] == ["sleep"] and p.children[0].pid == CHILD
    cg = s.cgroup
    assert cg.version == "hybrid" and cg.path.endswith("/demo")
    assert (cg.memory_limit, cg.memory_current, cg.memory_peak) == (64 << 20, 274432, 540672)
    assert (cg.pids_current, cg.pids_limit, cg.oom_kills) == (2, 32, 0)
    assert cg.cpu_quota_usec is None and cg.cpus is None and cg.cpu_usage_usec == 3651
    sec = s.security
    assert sec.bounding == sec.effective == ("CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE")
    assert sec.no_new_privs and sec.seccomp == 0 and sec.uid == (0, 0, 0, 0)
    assert sec.uid_map == ((0, 0, 4294967295),)
    # hostname and interface state come from inside its UTS and net namespaces
    assert inside.calls == [(CID, ["uts", "net"], ["lo"])]
    assert s.hostname == "stepped"
    assert s.network == (S.Interface("lo", True, True, ("127.0.0.1/8", "::1/128"), 0, 0),)


def test_host_process_from_fake_proc(tmp_path):
    inside = Inside({"hostname": "vm", "flags": {"lo": 0x49, "eth0": 0x1043}})
    s = take_fake(tmp_path, pid=HOST, inside=inside)
    assert not any(n.isolated for n in s.namespaces) and s.root.is_host
    assert inside.calls[0][1] == []                    # nothing to enter: read in place
    eth0 = s.interface("eth0")
    assert eth0.up and not eth0.loopback and "192.0.2.2/24" in eth0.addresses
    assert s.interface("ifb0").up is None              # not in the flags we were given


def test_json_round_trip(tmp_path):
    s = take_fake(tmp_path)
    again = S.Snapshot.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s and hash(again) == hash(s)
    for name in PHASES["snapshots"]:
        assert snap(name).to_dict() == PHASES["snapshots"][name]


def test_cannot_look_inside_is_a_note_not_an_error(tmp_path):
    s = take_fake(tmp_path, inside=Inside({"error": "Operation not permitted (needs CAP_SYS_ADMIN)"}))
    assert s.error is None and s.hostname is None
    assert "CAP_SYS_ADMIN" in s.notes[0]
    assert s.network[0].up is None and s.network[0].addresses == ("127.0.0.1/8", "::1/128")


def test_missing_file_gives_partial_snapshot(tmp_path):
    proc = fake_proc(tmp_path)
    (proc / str(CID) / "mountinfo").unlink()
    s = S.take(CID, host_pid=HOST, proc=str(proc), fsroot=str(tmp_path / "fs"), inside=Inside())
    assert s.mounts == () and s.error.startswith("mounts: FileNotFoundError")
    assert s.security is not None and s.cgroup is not None


def test_process_vanishing_mid_snapshot(tmp_path):
    proc = fake_proc(tmp_path)

    def inside(pid, enter, ifnames, proc_):
        shutil.rmtree(proc / str(pid))                 # exits while we look
        return {}
    s = S.take(CID, host_pid=HOST, proc=str(proc), fsroot=str(tmp_path / "fs"), inside=inside)
    assert s.namespaces and s.mounts                   # read before it went
    assert s.network == () and f"network: process {CID} has exited" in s.error


def test_zombie_is_an_exited_process(tmp_path):
    proc = fake_proc(tmp_path)
    stat = proc / str(CID) / "stat"
    stat.write_text(stat.read_text().replace(") S ", ") Z ", 1))
    for name in ("mountinfo", "cgroup", "net"):
        p = proc / str(CID) / name
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    s = S.take(CID, host_pid=HOST, proc=str(proc), fsroot=str(tmp_path / "fs"), inside=Inside())
    assert s.error == (f"mounts: process {CID} has exited; cgroup: process {CID} has exited; "
                       f"ifnames: process {CID} has exited; network: process {CID} has exited")


def test_no_such_process(tmp_path):
    s = S.take(999999, proc=str(tmp_path))
    assert s.error == "no process 999999" and s.process is None


def test_real_process_that_exited():
    p = subprocess.Popen(["sleep", "0"])
    p.wait()
    s = S.take(p.pid)
    assert s.error and s.process is None


def test_take_self_is_the_host_and_fast():
    s = S.take(os.getpid())
    assert s.error is None, s.error
    assert all(n.isolated is False for n in s.namespaces if n.inode is not None)
    assert s.root.is_host and s.process.pid == os.getpid() and s.hostname == os.uname().nodename
    assert s.security.uid[1] == os.geteuid() and any(i.name == "lo" for i in s.network)
    s = S.take(os.getpid())
    assert s.ms < 50, s.ms


def test_cgroup_v2_files(tmp_path):
    proc, fs = tmp_path / "proc", tmp_path / "fs"
    (proc / "7").mkdir(parents=True)
    (proc / "7" / "cgroup").write_text("0::/mrunc/c1\n")
    (proc / "1").mkdir()
    (proc / "1" / "mountinfo").write_text(
        "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - "
        "cgroup2 cgroup2 rw,nsdelegate\n")
    d = fs / "sys/fs/cgroup/mrunc/c1"
    d.mkdir(parents=True)
    for name, text in {"memory.max": "67108864\n", "memory.current": "1048576\n", "memory.peak": "2097152\n",
                       "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n", "pids.max": "max\n",
                       "pids.current": "3\n", "cpu.max": "50000 100000\n", "cpu.weight": "100\n",
                       "cpu.stat": "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n"}.items():
        (d / name).write_text(text)
    cg = S.read_cgroup(7, str(proc), "1", str(fs))
    assert (cg.version, cg.path, cg.paths) == ("v2", "/mrunc/c1", (("(v2)", "/mrunc/c1"),))
    assert (cg.memory_limit, cg.memory_current, cg.memory_peak, cg.oom_kills) == \
        (64 << 20, 1 << 20, 2 << 20, 1)
    assert (cg.pids_limit, cg.pids_current) == (None, 3)
    assert (cg.cpu_quota_usec, cg.cpu_period_usec, cg.cpus, cg.cpu_weight, cg.cpu_usage_usec) == \
        (50000, 100000, 0.5, 100, 1234)

    class Manager:
        def stats(self):
            return {"memory": {"current": 5, "peak": None, "limit": 6, "oom_kills": None},
                    "cpu": {"usage_usec": 7}, "pids": {"current": None, "limit": None}}
    cg = S.read_cgroup(7, str(proc), "1", str(fs), Manager())
    assert (cg.memory_current, cg.memory_limit, cg.memory_peak, cg.cpu_usage_usec, cg.pids_current) == \
        (5, 6, 2 << 20, 7, 3)


def test_cgroup_v1_mount_root_below_the_top(tmp_path):
    """Inside a container the hierarchy may be mounted from a subdirectory (root /docker/x)."""
    proc, fs = tmp_path / "proc", tmp_path / "fs"
    (proc / "7").mkdir(parents=True)
    (proc / "7" / "cgroup").write_text("5:memory:/docker/x/c1\n3:cpu,cpuacct:/docker/x/c1\n")
    (proc / "1").mkdir()
    (proc / "1" / "mountinfo").write_text(
        "40 31 0:32 /docker/x /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "41 31 0:33 /docker/x /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n")
    (fs / "sys/fs/cgroup/memory/c1").mkdir(parents=True)
    (fs / "sys/fs/cgroup/memory/c1/memory.limit_in_bytes").write_text("9223372036854771712\n")
    (fs / "sys/fs/cgroup/cpu,cpuacct/c1").mkdir(parents=True)
    (fs / "sys/fs/cgroup/cpu,cpuacct/c1/cpu.cfs_quota_us").write_text("25000\n")
    (fs / "sys/fs/cgroup/cpu,cpuacct/c1/cpu.cfs_period_us").write_text("100000\n")
    cg = S.read_cgroup(7, str(proc), "1", str(fs))
    assert cg.version == "v1" and cg.path == "/docker/x/c1"
    assert cg.memory_limit is None and cg.cpus == 0.25


# ---- diff, phase by phase (frozen snapshots of a real run) ----------------------------------------

def test_diff_clone_isolates_namespaces():
    d = S.diff(*step("clone"))
    assert d.isolated == ("mnt", "uts", "ipc", "pid", "net")
    assert "cgroup" not in {c.what for c in d.namespaces}        # that comes in the cgroup phase
    assert d.mount_ns_changed and not d.mounts_added and not d.mounts_removed and d.mounts_kept == 20
    assert d.net_ns_changed and [i.name for i in d.interfaces] == ["lo"]
    assert {c.what for c in d.process} >= {"pid", "comm"} and d.exec is None
    text = d.summary()
    assert ("pid namespace is now isolated (inode 4026532250): "
            "its own process numbers (it is PID 1 inside)") in text
    assert "mount namespace is now isolated (inode 4026532177): its own mount table" in text
    assert "the new mount namespace starts as a copy: the same 20 mounts" in text
    assert any(t.startswith("its network stack has only: lo up 127.0.0.1/8") for t in text)


def test_diff_mount_adds_mounts():
    d = S.diff(*step("mount"))
    assert not d.namespaces and not d.root and not d.mount_ns_changed
    added = {m.mount_point: m.fstype for m in d.mounts_added}
    assert added[ROOTFS] == "ext4" and added[ROOTFS + "/proc"] == "proc" and added[ROOTFS + "/dev"] == "tmpfs"
    assert len(added) == 7 and not d.mounts_removed
    assert d.summary()[0].startswith(f"7 mounts added: ext4 on {ROOTFS}, proc on {ROOTFS}/proc, tmpfs on")


def test_diff_pivot_root_switches_root():
    d = S.diff(*step("pivot_root"))
    assert d.root and d.root.before.is_host and not d.root.after.is_host
    assert d.root.after.fs_root == ROOTFS
    moved = {c.before.mount_point: c.after.mount_point for c in d.mounts_moved}
    assert moved[ROOTFS] == "/" and moved[ROOTFS + "/proc"] == "/proc"
    assert "/" in {m.mount_point for m in d.mounts_removed}          # the host's root is gone
    assert {m.mount_point for m in d.mounts_added} >= {"/proc/keys", "/proc/acpi", "/sys/firmware"}
    assert [(c.what, c.before, c.after) for c in d.uts] == [("hostname", "vm", "stepped")]
    text = d.summary()
    assert f"root switched (pivot_root): / is now {ROOTFS}, no longer the host's /" in text
    assert "hostname is now 'stepped' (was 'vm')" in text
    assert any(t.startswith("20 mounts gone with the old root: /,") for t in text)


def test_diff_cgroup_sets_limits_and_cgroup_namespace():
    d = S.diff(*step("cgroup"))
    assert d.isolated == ("cgroup",)
    ch = {c.what: (c.before, c.after) for c in d.cgroup}
    assert ch["memory_limit"] == (None, 64 << 20) and ch["pids_limit"] == (None, 32)
    assert ch["path"][1].endswith("/demo")
    assert [c.after.mount_point for c in d.mounts_changed] == ["/"]   # the rootfs made read-only
    text = d.summary()
    assert "memory limit set: 64.0 MiB (was unlimited)" in text
    assert "pids limit set: 32 processes (was unlimited)" in text
    assert "options changed on 1 mount: / (+ro, -rw)" in text
    assert "cgroup namespace is now isolated (inode 4026532179): its own cgroup appears as / inside" in text


def test_diff_security_drops_caps():
    d = S.diff(*step("security"))
    assert "CAP_SYS_ADMIN" in d.dropped("bounding") and d.dropped("inheritable") == ()
    assert {c.set for c in d.caps} == {"permitted", "effective", "bounding"}
    assert [(c.what, c.after) for c in d.security] == [("no_new_privs", True)]
    text = d.summary()
    assert text[0].startswith("permitted, effective, bounding capabilities: 37 dropped (CAP_CHOWN,")
    assert text[0].endswith("and 33 more); 3 kept")
    assert text[1].startswith("no_new_privs is now set")


def test_diff_exec_replaces_the_program():
    d = S.diff(*step("exec"))
    assert (d.exec.before, d.exec.after) == ("mrunc:[init]", "sh")
    assert d.summary() == ["the process exec'd a new program: mrunc:[init] → sh (/bin/busybox)"]


def test_no_change_is_empty_and_false():
    s = snap("cgroup")
    d = S.diff(s, s)
    assert d.summary() == [] and not d


# ---- diff, synthetic cases -----------------------------------------------------------------------

def _m(id_, mp, fstype="tmpfs", root="/", opts=("rw",), prop=(), source="none"):
    return S.Mount(id_, 1, "0:1", root, mp, tuple(opts), tuple(prop), fstype, source, ("rw",))


def _snap(mounts=(), mnt=1, **kw):
    return S.Snapshot(pid=1, namespaces=(S.Namespace("mnt", mnt, 1),), mounts=tuple(mounts), **kw)


def test_reused_mount_id_is_not_the_same_mount():
    before = _snap([_m(1, "/"), _m(30, "/old", "ext4")])
    after = _snap([_m(1, "/"), _m(30, "/proc/keys", "tmpfs", root="/null")])
    d = S.diff(before, after)
    assert [m.mount_point for m in d.mounts_added] == ["/proc/keys"]
    assert [m.mount_point for m in d.mounts_removed] == ["/old"] and not d.mounts_moved


def test_propagation_and_options_changes():
    before = _snap([_m(1, "/", prop=("shared:1",)), _m(2, "/a", prop=("shared:2",)),
                    _m(3, "/b", opts=("rw", "nosuid"))])
    after = _snap([_m(1, "/", prop=()), _m(2, "/a", prop=()), _m(3, "/b", opts=("ro", "nosuid"))])
    text = S.diff(before, after).summary()
    assert text == ["2 mounts now private (was shared): "
                    "mount events no longer travel between it and the host",
                    "options changed on 1 mount: /b (+ro, -rw)"]


def test_interfaces_and_ids_in_the_same_namespaces():
    ns = (S.Namespace("net", 5, 1),)
    lo_down = S.Interface("lo", False, True, ())
    sec = S.Security((0,) * 4, (0,) * 4, (), (), (), (), (), (), False, 0, 0, ((0, 0, 4294967295),))
    before = S.Snapshot(pid=1, namespaces=ns, network=(lo_down,), security=sec)
    after = S.Snapshot(pid=1, namespaces=ns, network=(S.Interface("lo", True, True, ("127.0.0.1/8",)),
                                                       S.Interface("eth0", True, False, ("10.0.0.2/24",))),
                       security=S.Security((1000,) * 4, (1000,) * 4, (), (), (), (), (), (), False, 2, 1,
                                           ((0, 100000, 65536),)))
    text = S.diff(before, after).summary()
    assert "seccomp is now in filter mode (was disabled)" in text
    assert "1 seccomp filter installed (was 0)" in text
    assert "uid is now 1000 (was 0)" in text
    assert "uid map is now 0→100000 (+65535) (was 0→0 (+4294967294))" in text
    assert "interface eth0 up 10.0.0.2/24 added" in text
    assert "interface lo up 127.0.0.1/8 (was lo down)" in text


def test_human_bytes():
    assert [S.human_bytes(n) for n in (None, 0, 1023, 1024, 64 << 20, 3 << 40)] == \
        ["unlimited", "0 B", "1023 B", "1.0 KiB", "64.0 MiB", "3.0 TiB"]


# ---- a process that cannot be read from outside: its own view fills in ---------------------------

def _closed(proc):
    """As a caller without CAP_SYS_PTRACE finds a non-dumpable process: ns/, root and exe fail
    (here ELOOP and EINVAL; EACCES for real)."""
    d = proc / str(CID)
    shutil.rmtree(d / "ns")
    for name in ("ns", "root"):
        if os.path.lexists(d / name):
            os.unlink(d / name)
        os.symlink(name, d / name)
    os.unlink(d / "exe")
    (d / "exe").mkdir()


def test_a_closed_process_shows_no_namespace_and_never_our_hostname(tmp_path):
    proc = fake_proc(tmp_path)
    _closed(proc)
    inside = Inside({"hostname": "the-callers-own", "flags": {"lo": 0x49}})
    s = S.take(CID, host_pid=HOST, proc=str(proc), fsroot=str(tmp_path / "fs"), inside=inside)
    assert s.namespaces == () and s.root is None and s.process.exe is None
    assert "namespaces: OSError" in s.error and "root: OSError" in s.error
    assert s.hostname is None and inside.calls == []     # whose hostname would uname() give?


def test_its_own_view_fills_what_cannot_be_read_from_outside(tmp_path):
    full = take_fake(tmp_path / "a")
    proc = fake_proc(tmp_path / "b")
    _closed(proc)
    st = os.stat(tmp_path / "b" / "rootfs")
    view = {"ns": {n.kind: n.inode for n in full.namespaces}, "root": [st.st_dev, st.st_ino],
            "exe": "/bin/busybox", "hostname": "stepped", "domainname": None, "ifflags": {"lo": 0x49}}
    inside = Inside({"error": "entering its namespaces needs CAP_SYS_ADMIN (run as root)"})
    s = S.take(CID, host_pid=HOST, proc=str(proc), fsroot=str(tmp_path / "b" / "fs"), inside=inside,
               view=view)
    assert s.error is None
    assert s.namespaces == full.namespaces and s.process.exe == "/bin/busybox"
    assert (s.root.dev, s.root.ino) == (st.st_dev, st.st_ino) and s.root.fs_root == ROOTFS
    assert s.hostname == "stepped" and s.network == full.network
    assert s.mounts == full.mounts and s.security == full.security    # read from outside still
    assert s.notes == ("read by the process itself (exe, namespaces, root, hostname and interface "
                       "states): from outside, only CAP_SYS_PTRACE can read a process that is not "
                       "dumpable, as the runtime's init is until it execs the program",)
    # a view is used only where reading from outside failed
    again = take_fake(tmp_path / "c", view={**view, "ns": {k: 1 for k in view["ns"]}})
    assert again.namespaces == full.namespaces and again.notes == ()


def test_unknown_up_down_state_is_no_change():
    lo = S.Interface("lo", True, True, ("127.0.0.1/8",))
    a, b = S.Snapshot(pid=1, network=(lo,)), S.Snapshot(pid=1, network=(lo.__class__("lo", None, True,
                                                                                       lo.addresses),))
    assert S.diff(a, b).interfaces_changed == ()
    c = S.Snapshot(pid=1, network=(S.Interface("lo", False, True, ("127.0.0.1/8",)),))
    assert [x.what for x in S.diff(a, c).interfaces_changed] == ["lo"]
