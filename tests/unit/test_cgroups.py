"""cgroup managers against fake cgroup trees in a temp dir: the exact files and values written.

A fake tree is plain directories and files laid out like cgroupfs (the kernel would create the
files of a new cgroup; here the test does, and leaves out the ones a host would lack). Every
write goes through mrunc.cgroups.fs.write, which the `writes` fixture records.
"""

import os
import posix
import signal

import pytest

from mrunc import cgroups
from mrunc.cgroups import base, fs, warm
from mrunc.cgroups.layout import below_mount, clean, hierarchies, under_mount
from mrunc.cgroups.base import allows_all, device_rule, requested
from mrunc.errors import CgroupError

R = "linux.resources"

# ---- fake trees -------------------------------------------------------------------------------

V1_FILES = {
    "memory": {"memory.limit_in_bytes": "9223372036854771712",
               "memory.memsw.limit_in_bytes": "9223372036854771712",
               "memory.soft_limit_in_bytes": "9223372036854771712",
               "memory.kmem.limit_in_bytes": "9223372036854771712",
               "memory.kmem.tcp.limit_in_bytes": "9223372036854771712",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0",
               "memory.swappiness": "60", "memory.use_hierarchy": "1",
               "memory.usage_in_bytes": "0", "memory.max_usage_in_bytes": "0"},
    "cpu": {"cpu.shares": "1024", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1",
            "cpu.cfs_burst_us": "0", "cpu.idle": "0", "cpu.rt_period_us": "1000000",
            "cpu.rt_runtime_us": "0"},
    "cpuacct": {"cpuacct.usage": "0"},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "0"},
    "blkio": {"blkio.weight": "500", "blkio.leaf_weight": "500", "blkio.weight_device": "",
              "blkio.leaf_weight_device": "", "blkio.throttle.read_bps_device": "",
              "blkio.throttle.write_bps_device": "", "blkio.throttle.read_iops_device": "",
              "blkio.throttle.write_iops_device": "",
              "blkio.throttle.io_service_bytes_recursive": ""},
    "hugetlb": {"hugetlb.2MB.limit_in_bytes": "0", "hugetlb.2MB.rsvd.limit_in_bytes": "0",
                "hugetlb.1GB.limit_in_bytes": "0"},
    "net_cls": {"net_cls.classid": "0"},
    "net_prio": {"net_prio.ifpriomap": ""},
    "rdma": {"rdma.max": ""},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm"},
    "freezer": {"freezer.state": "THAWED"},
    "systemd": {},
}
V1_ROOT_VALUES = {"cpuset.cpus": "0-3", "cpuset.mems": "0"}

V2_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc"
V2_FILES = {"cgroup.procs": "", "cgroup.freeze": "0", "cgroup.events": "populated 0\nfrozen 0",
            "cgroup.kill": "", "cgroup.type": "domain", "cgroup.max.depth": "max",
            "memory.max": "max", "memory.swap.max": "max", "memory.low": "0",
            "memory.high": "max", "memory.current": "0", "memory.peak": "0",
            "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0",
            "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.weight": "100", "cpu.idle": "0",
            "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0",
            "cpuset.cpus": "", "cpuset.mems": "", "pids.max": "max", "pids.current": "0",
            "io.weight": "default 100", "io.max": "", "io.stat": "",
            "hugetlb.2MB.max": "max", "hugetlb.2MB.rsvd.max": "max", "rdma.max": ""}


def put(d, files):
    os.makedirs(d, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text + "\n" if text else "")


def make_v1(root, leaf="/mrunc/c1", hierarchies=None, omit=(), unified=False):
    """Hierarchies at root/<name>, each with the leaf cgroup (and its parents) already there."""
    for h in hierarchies or V1_FILES:
        files = {k: v for k, v in V1_FILES[h].items() if k not in omit}
        mount = os.path.join(root, h)
        put(mount, dict(files, **{k: v for k, v in V1_ROOT_VALUES.items() if k in files},
                        tasks="", **{"cgroup.procs": ""}))
        cur = mount
        for part in leaf.strip("/").split("/"):     # as if apply() had run: cpus and mems set
            cur = os.path.join(cur, part)
            put(cur, dict(files, **{k: v for k, v in V1_ROOT_VALUES.items() if k in files},
                          tasks="", **{"cgroup.procs": ""}))
    if unified:
        put(os.path.join(root, "unified"), {"cgroup.controllers": "hugetlb",
                                            "cgroup.subtree_control": "", "cgroup.procs": ""})
        put(os.path.join(root, "unified", leaf.strip("/")), {"cgroup.procs": "",
                                                             "cgroup.controllers": ""})
    return str(root)


def make_v2(root, leaf="/mrunc/c1", controllers=V2_CONTROLLERS, leaf_controllers=None,
            omit=(), extra=None):
    put(root, {"cgroup.controllers": controllers, "cgroup.subtree_control": "",
               "cgroup.procs": ""})
    cur = str(root)
    parts = leaf.strip("/").split("/")
    for i, part in enumerate(parts):
        cur = os.path.join(cur, part)
        if i < len(parts) - 1:
            put(cur, {"cgroup.controllers": controllers, "cgroup.subtree_control": "",
                      "cgroup.procs": ""})
    files = {k: v for k, v in V2_FILES.items() if k not in omit}
    files["cgroup.controllers"] = controllers if leaf_controllers is None else leaf_controllers
    put(cur, dict(files, **(extra or {})))
    return str(root)


DEFAULTS = dict(V2_FILES, **{k: v for files in V1_FILES.values() for k, v in files.items()})


@pytest.fixture(autouse=True)
def fake_kernel(monkeypatch):
    """mkdir in a fake tree fills the new cgroup with its parent's files, as the kernel would
    (default values; a v2 child's cgroup.controllers is its parent's cgroup.subtree_control)."""
    real = fs.mkdir

    def mkdir(path, created, sys=None):
        before = len(created)
        real(path, created, sys)
        for d in created[before:]:
            parent = os.path.dirname(d)
            names = [n for n in os.listdir(parent) if os.path.isfile(os.path.join(parent, n))]
            files = {n: DEFAULTS.get(n, "") for n in names}
            if "cgroup.controllers" in names:
                files["cgroup.controllers"] = read(parent, "cgroup.subtree_control")
            put(d, files)
    monkeypatch.setattr(fs, "mkdir", mkdir)


@pytest.fixture
def writes(monkeypatch):
    """[(path, value)] of every write, in order. The writes still happen; a write to
    cgroup.subtree_control acts like the kernel's (its children's cgroup.controllers follow)."""
    log = []
    real = fs.write

    def record(path, value, field=None, sys=None):
        log.append((path, str(value)))
        d = os.path.dirname(path)
        if not path.endswith("/cgroup.subtree_control") or not os.path.exists(path):
            return real(path, value, field, sys)
        on = set(read(d, "cgroup.subtree_control").split())
        for tok in str(value).split():
            (on.add if tok[0] == "+" else on.discard)(tok[1:])
        put(d, {"cgroup.subtree_control": " ".join(sorted(on))})
        for sub in os.listdir(d):
            if os.path.exists(os.path.join(d, sub, "cgroup.controllers")):
                put(os.path.join(d, sub), {"cgroup.controllers": " ".join(sorted(on))})
    monkeypatch.setattr(fs, "write", record)
    return log


def rel(log, root):
    return [(os.path.relpath(p, root), v) for p, v in log]


def mk(root, path="/mrunc/c1", cid="c1", **kw):
    kw.setdefault("mountinfo", None)
    return cgroups.manager(path, cid, root=str(root), **kw)


def read(root, p):
    with open(os.path.join(str(root), p)) as f:
        return f.read().strip()


# ---- detection --------------------------------------------------------------------------------

def test_detect_v2(tmp_path):
    make_v2(tmp_path)
    assert cgroups.detect(str(tmp_path), mountinfo=None) == "v2"


def test_detect_v1(tmp_path):
    make_v1(tmp_path)
    assert cgroups.detect(str(tmp_path), mountinfo=None) == "v1"


def test_detect_hybrid(tmp_path):
    make_v1(tmp_path, unified=True)
    assert cgroups.detect(str(tmp_path), mountinfo=None) == "hybrid"


def test_detect_none(tmp_path):
    assert cgroups.detect(str(tmp_path), mountinfo=None) == "none"
    assert cgroups.detect(str(tmp_path / "absent"), mountinfo=None) == "none"
    os.makedirs(tmp_path / "memory")               # a directory without "tasks" is no hierarchy
    assert cgroups.detect(str(tmp_path), mountinfo=None) == "none"


def test_detect_comounted_dirs_and_symlinks(tmp_path):
    put(tmp_path / "cpu,cpuacct", {"tasks": "", "cgroup.procs": ""})
    os.symlink("cpu,cpuacct", tmp_path / "cpu")
    os.symlink("cpu,cpuacct", tmp_path / "cpuacct")
    put(tmp_path / "systemd", {"tasks": ""})
    layout, mounts = hierarchies(str(tmp_path), None)
    assert layout == "v1"
    assert mounts == {"cpu": (str(tmp_path / "cpu,cpuacct"), "/"),
                      "cpuacct": (str(tmp_path / "cpu,cpuacct"), "/"),
                      "name=systemd": (str(tmp_path / "systemd"), "/")}


def test_detect_from_mountinfo(tmp_path):
    # Mount options, not directory names, say which controllers a mount carries.
    root = tmp_path / "cg root"
    for d in ("a", "b", "unified"):
        os.makedirs(root / d)
    put(root / "unified", {"cgroup.controllers": ""})
    esc = str(root).replace(" ", "\\040")
    mi = tmp_path / "mountinfo"
    mi.write_text(
        f"31 23 0:28 / {esc} rw,relatime - tmpfs tmpfs rw\n"
        f"32 31 0:29 / {esc}/a rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
        f"35 31 0:32 /sub {esc}/b rw,relatime - cgroup cgroup rw,memory\n"
        f"41 31 0:38 / {esc}/unified rw,relatime - cgroup2 cgroup2 rw\n"
        f"50 23 0:40 / /elsewhere rw - cgroup cgroup rw,pids\n")
    layout, mounts = hierarchies(str(root), str(mi))
    assert layout == "hybrid"
    assert mounts == {"cpu": (str(root / "a"), "/"), "cpuacct": (str(root / "a"), "/"),
                      "memory": (str(root / "b"), "/sub"), "": (str(root / "unified"), "/")}


def test_detect_this_host_layout_is_known():
    assert cgroups.detect() in ("v1", "v2", "hybrid", "none")


# ---- paths ------------------------------------------------------------------------------------

@pytest.mark.parametrize("given,want", [
    ("", ""), ("/a/b", "/a/b"), ("/a/../b", "/b"), ("/../../b", "/b"), ("//a//b/", "/a/b"),
    ("a/b", "a/b"), ("../../x", "x"), ("a/../../x", "x"), ("..", ""), ("./a", "a")])
def test_clean(given, want):
    assert clean(given) == want


def own(tmp_path, text):
    p = tmp_path / "self-cgroup"
    p.write_text(text)
    return str(p)


def test_absolute_path_is_the_same_in_every_hierarchy(tmp_path):
    root = make_v1(tmp_path / "cg", unified=True)
    m = mk(root, "/mrunc/c1")
    assert m.layout == "hybrid" and m.path == "/mrunc/c1"
    assert set(m.paths.values()) == {"/mrunc/c1"}
    assert m.dir("memory") == f"{root}/memory/mrunc/c1"
    assert m.dir("name=systemd") == f"{root}/systemd/mrunc/c1"
    assert m.dir("") == f"{root}/unified/mrunc/c1"


def test_relative_path_v1_is_below_the_callers_own_cgroup_per_hierarchy(tmp_path):
    root = make_v1(tmp_path / "cg", hierarchies=("memory", "pids", "systemd"))
    pc = own(tmp_path, "9:name=systemd:/user.slice\n8:pids:/\n4:memory:/box/x\n0::/\n")
    m = mk(root, "ctr/c1", proc_cgroup=pc)
    assert m.paths == {"memory": "/box/x/ctr/c1", "pids": "/ctr/c1",
                       "name=systemd": "/user.slice/ctr/c1"}


def test_relative_path_v2_is_below_the_parent_of_the_callers_cgroup(tmp_path):
    root = make_v2(tmp_path / "cg")
    pc = own(tmp_path, "0::/user.slice/user-0.slice/session-1.scope\n")
    assert mk(root, "ctr", proc_cgroup=pc).path == "/user.slice/user-0.slice/ctr"
    assert mk(root, "", "c9", proc_cgroup=own(tmp_path, "0::/\n")).path == "/c9"


def test_empty_path_defaults_to_the_id_relative_like_runc(tmp_path):
    root = make_v1(tmp_path / "cg", hierarchies=("memory", "pids"))
    pc = own(tmp_path, "8:pids:/\n4:memory:/box\n")
    assert mk(root, "", "c7", proc_cgroup=pc).paths == {"memory": "/box/c7", "pids": "/c7"}
    assert mk(root, None, "c7", proc_cgroup=pc).paths == {"memory": "/box/c7", "pids": "/c7"}


def test_relative_path_strips_the_mount_root(tmp_path):
    assert under_mount("/docker/abc/sub", "/docker/abc") == "/sub"
    assert under_mount("/docker/abc", "/docker/abc") == "/"
    assert under_mount("/docker/abcdef", "/docker/abc") == "/docker/abcdef"
    assert under_mount("/x", "/") == "/x"


def test_below_mount_is_none_where_the_mount_does_not_show_the_cgroup():
    assert below_mount("/docker/abc/sub", "/docker/abc") == "/sub"
    assert below_mount("/docker/abc", "/docker/abc") == "/"
    assert below_mount("/docker/abcdef", "/docker/abc") is None
    assert below_mount("/", "/..") is None        # a cgroup namespace made after the mount
    assert below_mount(None, "/") is None
    assert below_mount("/x", "/") == "/x"


def test_warm_up_finds_our_own_cgroup_procs_where_we_are_deepest(tmp_path):
    root = make_v1(tmp_path / "cg", leaf="/box/deep", hierarchies=("memory", "pids"))
    pc = own(tmp_path, "8:pids:/box\n4:memory:/box/deep\n")
    assert warm.own_procs(str(root), None, pc) == f"{root}/memory/box/deep/cgroup.procs"
    # A mountinfo whose roots are "/..": our "/" is not what the mount shows
    mi = tmp_path / "mountinfo"
    mi.write_text("".join(f"{30 + i} 1 0:{40 + i} /.. {root}/{h} rw - cgroup cgroup rw,{h}\n"
                          for i, h in enumerate(("memory", "pids"))))
    assert warm.own_procs(str(root), str(mi), own(tmp_path, "8:pids:/\n4:memory:/\n")) is None


def test_warm_up_opens_only_a_cgroup_procs_that_lists_us(tmp_path):
    root = make_v2(tmp_path / "cg", leaf="/svc")
    pc = own(tmp_path, "0::/svc\n")
    procs = tmp_path / "cg" / "svc" / "cgroup.procs"
    procs.write_text("1\n22\n")
    assert warm.open_own_procs(50, str(root), None, pc) is None     # it does not list us
    procs.write_text(f"1\n{os.getpid()}\n22\n")
    fd = warm.open_own_procs(50, str(root), None, pc)
    try:
        assert fd >= 50 and not os.get_inheritable(fd)   # above the fds create hands on
        assert os.readlink(f"/proc/self/fd/{fd}") == str(procs)
    finally:
        os.close(fd)
    procs.chmod(0o444)
    if os.geteuid() != 0:
        assert warm.open_own_procs(50, str(root), None, pc) is None  # may not write it


@pytest.mark.root
def test_the_warm_up_lends_create_the_hierarchies_it_read_while_it_runs(monkeypatch):
    """create's cgroup manager takes the hierarchies the warm-up read from mountinfo (not read
    twice): the very manager it would have built itself — and only while the warm-up runs, or
    just after it found none needed (this create's), never a layout read long before."""
    from mrunc.process.parent import _cgroup_manager
    config = {"linux": {"cgroupsPath": "/mrunc-warm-lend"}}
    own = _cgroup_manager(config, "c1")         # no warm-up running: read itself
    assert warm.found() is None
    warm.start(50)
    try:
        if warm.found() is None:
            pytest.skip("no warm-up here (our own cgroup.procs is not writable)")
        assert warm.found() == hierarchies()
        from mrunc.cgroups import factory

        def unread(*a, **k):
            raise AssertionError("mountinfo read again")
        monkeypatch.setattr(factory, "hierarchies", unread)
        lent = _cgroup_manager(config, "c1")
        assert (lent.layout, lent.mounts, lent.paths) == (own.layout, own.mounts, own.paths)
    finally:
        warm.stop()
    assert warm.found() is None


def test_a_second_warm_up_start_reads_no_mountinfo_again(monkeypatch):
    """create's command line starts the warm-up, then the runtime core asks again after its
    fork: when the first found no thread needed, the second takes what it read (its time kept,
    not renewed: found() still lends it for a second after the read, no longer)."""
    from mrunc.cgroups import layout
    reads = []
    monkeypatch.setattr(layout, "hierarchies", lambda *a: reads.append(1) or ("v1", {}))
    monkeypatch.setattr(warm, "_needed", lambda _layout: False)  # a root runtime on v1
    monkeypatch.setattr(warm, "_flag", {"stopped": True})
    warm.start(50)
    at = warm._flag["at"]
    warm.start(50)
    assert reads == [1] and warm.found() == ("v1", {}) and warm._flag["at"] == at
    monkeypatch.setitem(warm._flag, "at", at - warm.LIMIT)     # a second later
    assert warm.found() is None
    warm.start(50)
    assert reads == [1, 1]


def test_dotdot_cannot_climb_out(tmp_path):
    root = make_v2(tmp_path / "cg")
    m = mk(root, "/../../../etc", proc_cgroup=own(tmp_path, "0::/a/b\n"))
    assert m.dir("") == f"{root}/etc"
    m = mk(root, "../../../../x", proc_cgroup=own(tmp_path, "0::/a/b\n"))
    assert m.dir("") == f"{root}/a/x"


@pytest.mark.parametrize("bad", ["/", "//", "/..", ".."])
def test_path_naming_the_root_is_refused(tmp_path, bad):
    root = make_v2(tmp_path / "cg")
    with pytest.raises(CgroupError, match=r"^linux\.cgroupsPath: "):
        mk(root, bad, proc_cgroup=own(tmp_path, "0::/\n"))


def test_rebuild_from_saved_paths_ignores_the_callers_cgroup(tmp_path):
    root = make_v1(tmp_path / "cg", hierarchies=("memory", "pids"))
    first = mk(root, "", "c1", proc_cgroup=own(tmp_path, "8:pids:/\n4:memory:/box\n"))
    again = mk(root, "", "c1", proc_cgroup=own(tmp_path, "8:pids:/other\n4:memory:/other\n"),
               paths=first.paths)
    assert again.dirs() == first.dirs()
    assert mk(root, "/p", "c1").paths == mk(root, "/p", "c1").paths     # deterministic


# ---- writes -----------------------------------------------------------------------------------

def test_write_error_names_value_and_file(tmp_path):
    target = tmp_path / "memory.limit_in_bytes"
    with pytest.raises(CgroupError) as e:
        fs.write(str(target), 100)
    assert str(e.value) == f"writing 100 to {target}: No such file or directory"
    with pytest.raises(CgroupError, match=rf"^{R}\.memory\.limit: writing 5 to "):
        fs.write(str(target), 5, f"{R}.memory.limit")
    assert not target.exists()          # never created


# ---- v1 ---------------------------------------------------------------------------------------

@pytest.fixture
def v1(tmp_path):
    return make_v1(tmp_path / "cg1")


def test_v1_apply_creates_every_hierarchy_and_moves_the_pid(tmp_path, writes):
    root = make_v1(tmp_path / "cg", leaf="/pre", unified=True)   # the fake tree, minus our leaf
    m = mk(root, "/mrunc/c1")
    m.apply(4242)
    for d in m.dirs():
        assert os.path.isdir(d)
        assert read(d, "cgroup.procs") == "4242"
    assert sorted(p for p, v in rel(writes, root) if p.endswith("cgroup.procs")) == sorted(
        f"{h}/mrunc/c1/cgroup.procs" for h in list(V1_FILES) + ["unified"])
    # the new cpuset levels got the parent's cpus and mems before the pid went in
    assert rel(writes, root)[:4] == [("cpuset/mrunc/cpuset.cpus", "0-3"),
                                     ("cpuset/mrunc/cpuset.mems", "0"),
                                     ("cpuset/mrunc/c1/cpuset.cpus", "0-3"),
                                     ("cpuset/mrunc/c1/cpuset.mems", "0")]
    assert m.created[0].endswith("/mrunc") and len(m.created) == 2 * (len(V1_FILES) + 1)


def test_v1_create_set_apply_look_at_the_tree_once(tmp_path, writes, monkeypatch):
    """create's three asks (mount phase, set, apply) make and look once: cpuset's cpus and mems
    are read by the first alone, and the cgroup still gets its limits and its pid."""
    root = make_v1(tmp_path / "cg", leaf="/pre")
    m = mk(root, "/mrunc/c1")
    reads = []
    real = fs.read
    monkeypatch.setattr(fs, "read", lambda path, default=None: reads.append(path) or real(path, default))
    m.create()
    made = list(reads)
    assert any(p.endswith("/mrunc/c1/cpuset.cpus") for p in made)
    m.set({"pids": {"limit": 50}, "devices": [{"allow": False, "access": "rwm"}]})
    m.apply(4242)
    assert reads == made                     # set and apply: nothing read again
    assert read(m.dir("pids"), "pids.max") == "50" and read(m.dir("pids"), "cgroup.procs") == "4242"


def test_v1_cpuset_keeps_cpus_already_set(tmp_path, writes):
    root = make_v1(tmp_path / "cg", hierarchies=("cpuset",), leaf="/mrunc")
    put(os.path.join(root, "cpuset/mrunc"), {"cpuset.cpus": "1", "cpuset.mems": "0"})
    mk(root).apply(1)
    assert rel(writes, root)[:2] == [("cpuset/mrunc/c1/cpuset.cpus", "1"),
                                     ("cpuset/mrunc/c1/cpuset.mems", "0")]


@pytest.fixture
def old_kernel(monkeypatch):
    # mrunc.cgroups.v1 calls posix (os's C module) directly, as the other modules of create do
    monkeypatch.setattr(posix, "uname", lambda: os.uname_result(("Linux", "h", "5.10.0-28-amd64", "", "x86_64")))


@pytest.mark.parametrize("release,works", [("5.10.0-28-amd64", True), ("5.15.1", True),
                                           ("5.16.0", False), ("6.18.44-fc-v669", False),
                                           ("4.19.0+", True), ("weird", False)])
def test_kmem_limit_works(release, works):
    from mrunc.cgroups.v1 import kmem_limit_works
    assert kmem_limit_works(release) is works


def test_v1_kernel_memory_on_a_kernel_that_ignores_it(v1, writes, monkeypatch):
    monkeypatch.setattr(posix, "uname", lambda: os.uname_result(("Linux", "h", "6.1.0", "", "x86_64")))
    with pytest.raises(CgroupError, match=rf"^{R}\.memory\.kernel: not supported by this kernel"):
        mk(v1).set({"memory": {"limit": 100, "kernel": 100}})
    assert writes == []


def test_v1_memory_every_field(v1, writes, old_kernel):
    mk(v1).set({"memory": {"limit": 1 << 20, "swap": 2 << 20, "reservation": 1 << 19,
                           "kernel": 1 << 22, "kernelTCP": 1 << 21, "disableOOMKiller": True,
                           "swappiness": 10, "useHierarchy": True}})
    m = "memory/mrunc/c1/"
    assert rel(writes, v1) == [
        (m + "memory.limit_in_bytes", "1048576"),         # shrinking from unlimited: limit first
        (m + "memory.memsw.limit_in_bytes", "2097152"),
        (m + "memory.soft_limit_in_bytes", "524288"),
        (m + "memory.kmem.limit_in_bytes", "4194304"),
        (m + "memory.kmem.tcp.limit_in_bytes", "2097152"),
        (m + "memory.oom_control", "1"),
        (m + "memory.swappiness", "10"),
        (m + "memory.use_hierarchy", "1")]


def test_v1_memory_growing_writes_memsw_first(v1, writes):
    put(os.path.join(v1, "memory/mrunc/c1"), {"memory.limit_in_bytes": "1000"})
    mk(v1).set({"memory": {"limit": 4000, "swap": 8000}})
    assert [p.rsplit("/", 1)[1] for p, _ in writes] == ["memory.memsw.limit_in_bytes",
                                                       "memory.limit_in_bytes"]


def test_v1_memory_unlimited_also_unlimits_swap(v1, writes):
    mk(v1).set({"memory": {"limit": -1}})
    assert [(p.rsplit("/", 1)[1], v) for p, v in writes] == [
        ("memory.memsw.limit_in_bytes", "-1"), ("memory.limit_in_bytes", "-1")]


def test_v1_memory_zero_means_unset_and_false_writes_nothing(v1, writes):
    mk(v1).set({"memory": {"limit": 0, "swap": 0, "disableOOMKiller": False, "swappiness": -1}})
    assert writes == []


@pytest.mark.parametrize("mem,msg", [
    ({"swappiness": 101}, r"memory\.swappiness: 101 is outside 0-100"),
    ({"limit": 2000, "swap": 1000}, r"memory\.swap: memory\+swap limit 1000 is below the memory limit 2000"),
])
def test_v1_memory_bad_values(v1, writes, mem, msg):
    with pytest.raises(CgroupError, match=rf"^{R}\.{msg}"):
        mk(v1).set({"memory": mem})
    assert writes == []


def test_v1_memory_check_before_update(v1, writes):
    put(os.path.join(v1, "memory/mrunc/c1"), {"memory.usage_in_bytes": "5000"})
    with pytest.raises(CgroupError, match=rf"^{R}\.memory\.limit: rejecting memory limit 4000 below current usage 5000"):
        mk(v1).set({"memory": {"limit": 4000, "checkBeforeUpdate": True}})
    mk(v1).set({"memory": {"limit": 4000}})             # without the check the kernel decides
    assert writes == [(f"{v1}/memory/mrunc/c1/memory.limit_in_bytes", "4000")]


def test_v1_kernel_memory_file_absent(tmp_path, writes, old_kernel):
    root = make_v1(tmp_path / "cg", omit=("memory.kmem.limit_in_bytes",))
    with pytest.raises(CgroupError, match=rf"^{R}\.memory\.kernel: memory\.kmem\.limit_in_bytes is not available"):
        mk(root).set({"memory": {"limit": 100, "kernel": 100}})
    assert writes == []


def test_v1_cpu_every_field(v1, writes):
    mk(v1).set({"cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 10000,
                        "realtimeRuntime": 950000, "realtimePeriod": 1000000, "idle": 0,
                        "cpus": "0-1", "mems": "0"}})
    assert rel(writes, v1) == [
        ("cpuset/mrunc/c1/cpuset.cpus", "0-1"), ("cpuset/mrunc/c1/cpuset.mems", "0"),
        ("cpu/mrunc/c1/cpu.shares", "512"), ("cpu/mrunc/c1/cpu.cfs_period_us", "100000"),
        ("cpu/mrunc/c1/cpu.cfs_quota_us", "50000"), ("cpu/mrunc/c1/cpu.cfs_burst_us", "10000"),
        ("cpu/mrunc/c1/cpu.idle", "0"), ("cpu/mrunc/c1/cpu.rt_period_us", "1000000"),
        ("cpu/mrunc/c1/cpu.rt_runtime_us", "950000")]


def test_v1_cpu_comounted_with_cpuacct(tmp_path, writes):
    put(tmp_path / "cg/cpu,cpuacct", dict(V1_FILES["cpu"], tasks=""))
    put(tmp_path / "cg/cpu,cpuacct/x", V1_FILES["cpu"])
    m = mk(tmp_path / "cg", "/x")
    assert m.dirs() == [str(tmp_path / "cg/cpu,cpuacct/x")]
    m.set({"cpu": {"quota": -1}})
    assert rel(writes, tmp_path / "cg") == [("cpu,cpuacct/x/cpu.cfs_quota_us", "-1")]


@pytest.mark.parametrize("c,msg", [
    ({"shares": 1}, r"cpu\.shares: 1 is outside 2-262144"),
    ({"quota": 1000, "burst": 2000}, r"cpu\.burst: 2000 exceeds the quota 1000"),
])
def test_v1_cpu_bad_values(v1, writes, c, msg):
    with pytest.raises(CgroupError, match=rf"^{R}\.{msg}"):
        mk(v1).set({"cpu": c})
    assert writes == []


@pytest.mark.parametrize("limit,want", [(0, "0"), (-1, "max"), (100, "100")])
def test_v1_pids(v1, writes, limit, want):
    mk(v1).set({"pids": {"limit": limit}})
    assert rel(writes, v1) == [("pids/mrunc/c1/pids.max", want)]


def test_v1_blkio_every_field(v1, writes):
    mk(v1).set({"blockIO": {
        "weight": 300, "leafWeight": 200,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 400, "leafWeight": 100},
                         {"major": 8, "minor": 16, "weight": 500}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2048}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 50}]}})
    b = "blkio/mrunc/c1/"
    assert rel(writes, v1) == [
        (b + "blkio.weight", "300"), (b + "blkio.leaf_weight", "200"),
        (b + "blkio.weight_device", "8:0 400"), (b + "blkio.leaf_weight_device", "8:0 100"),
        (b + "blkio.weight_device", "8:16 500"),
        (b + "blkio.throttle.read_bps_device", "8:0 1048576"),
        (b + "blkio.throttle.write_bps_device", "8:0 2048"),
        (b + "blkio.throttle.read_iops_device", "8:0 100"),
        (b + "blkio.throttle.write_iops_device", "8:16 50")]


def test_v1_blkio_bfq_weight_files(tmp_path, writes):
    root = make_v1(tmp_path / "cg", hierarchies=("blkio",), omit=("blkio.weight", "blkio.weight_device"))
    put(os.path.join(root, "blkio/mrunc/c1"), {"blkio.bfq.weight": "100", "blkio.bfq.weight_device": ""})
    mk(root).set({"blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 10}]}})
    assert rel(writes, root) == [("blkio/mrunc/c1/blkio.bfq.weight", "300"),
                                 ("blkio/mrunc/c1/blkio.bfq.weight_device", "8:0 10")]


def test_v1_blkio_without_weight_files_is_an_error(tmp_path, writes):
    # This host: blkio is mounted but no IO scheduler gives weights.
    root = make_v1(tmp_path / "cg", hierarchies=("blkio",), omit=("blkio.weight", "blkio.leaf_weight"))
    with pytest.raises(CgroupError, match=rf"^{R}\.blockIO\.weight: blkio\.weight is not available"):
        mk(root).set({"blockIO": {"weight": 300}})
    with pytest.raises(CgroupError, match=rf"^{R}\.blockIO\.weightDevice\[0\]: give weight or leafWeight"):
        mk(root).set({"blockIO": {"weightDevice": [{"major": 8, "minor": 0}]}})
    assert writes == []


def test_v1_hugetlb_prefers_adding_the_rsvd_limit(v1, writes):
    mk(v1).set({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304},
                                   {"pageSize": "1GB", "limit": 0}]})
    h = "hugetlb/mrunc/c1/"
    assert rel(writes, v1) == [(h + "hugetlb.2MB.limit_in_bytes", "4194304"),
                               (h + "hugetlb.2MB.rsvd.limit_in_bytes", "4194304"),
                               (h + "hugetlb.1GB.limit_in_bytes", "0")]


def test_v1_hugetlb_unknown_page_size(v1, writes):
    with pytest.raises(CgroupError, match=rf"^{R}\.hugepageLimits\[0\]\.limit: hugetlb\.64KB\.limit_in_bytes is not available"):
        mk(v1).set({"hugepageLimits": [{"pageSize": "64KB", "limit": 1}]})


@pytest.mark.parametrize("entry,msg", [
    ({"pageSize": "../../memory/x/memory", "limit": 1}, r"\[0\]\.pageSize: '\.\./\.\./memory/x/memory' is not a page size"),
    ({"pageSize": "2 MB", "limit": 1}, r"\[0\]\.pageSize: '2 MB' is not a page size"),
    ({"limit": 1}, r"\[0\]\.pageSize: None is not a page size"),
    ({"pageSize": "2MB"}, r"\[0\]\.limit: required"),
])
def test_hugetlb_page_size_cannot_name_another_file(v1, v2, writes, entry, msg):
    for root in (v1, v2):
        with pytest.raises(CgroupError, match=rf"^{R}\.hugepageLimits{msg}"):
            mk(root).set({"hugepageLimits": [entry]})
    assert [p for p, _ in writes if not p.endswith("subtree_control")] == []


@pytest.mark.parametrize("entry,msg", [({"minor": 0, "rate": 1}, ": major and minor device numbers are required"),
                                       ({"major": 8, "minor": 0}, r"\.rate: required")])
def test_device_numbers_are_required(v1, v2, entry, msg):
    for root in (v1, v2):
        with pytest.raises(CgroupError, match=rf"^{R}\.blockIO\.throttleReadBpsDevice\[0\]{msg}"):
            mk(root).set({"blockIO": {"throttleReadBpsDevice": [entry]}})


def test_v1_network_and_rdma(v1, writes):
    mk(v1).set({"network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5},
                                                               {"name": "lo", "priority": 2}]},
                "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 7}}})
    assert rel(writes, v1) == [("net_cls/mrunc/c1/net_cls.classid", "1048577"),
                               ("net_prio/mrunc/c1/net_prio.ifpriomap", "eth0 5"),
                               ("net_prio/mrunc/c1/net_prio.ifpriomap", "lo 2"),
                               ("rdma/mrunc/c1/rdma.max", "mlx5_1 hca_handle=3 hca_object=10000"),
                               ("rdma/mrunc/c1/rdma.max", "mlx4_0 hca_object=7")]
    with pytest.raises(CgroupError, match=rf"^{R}\.rdma\.mlx5_1: give hcaHandles or hcaObjects"):
        mk(v1).set({"rdma": {"mlx5_1": {}}})


def test_v1_devices_deny_all_then_rules_in_order(v1, writes):
    mk(v1).set({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "access": "rw"},
        {"allow": True, "type": "b", "minor": 0, "access": "m"},
        {"allow": False, "type": "c", "major": 5, "minor": 1, "access": "w"}]})
    d = "devices/mrunc/c1/"
    assert rel(writes, v1) == [(d + "devices.deny", "a"), (d + "devices.deny", "a"),
                               (d + "devices.allow", "c 1:3 rwm"), (d + "devices.allow", "c 136:* rw"),
                               (d + "devices.allow", "b *:0 m"), (d + "devices.deny", "c 5:1 w")]


def test_v1_empty_device_list_denies_everything(v1, writes):
    mk(v1).set({"devices": []})
    assert rel(writes, v1) == [("devices/mrunc/c1/devices.deny", "a")]


@pytest.mark.parametrize("rule,msg", [
    ({"allow": True, "type": "x"}, r"devices\[0\]\.type: 'x' is not one of a, b, c"),
    ({"allow": True, "type": "c", "major": 1, "access": "rwx"}, r"devices\[0\]\.access: 'rwx' must be"),
    ({"allow": True, "type": "c", "access": ""}, r"devices\[0\]\.access: '' must be"),
    ({"allow": True, "access": "r"}, r"devices\[0\]: a rule for all devices must have access rwm"),
])
def test_device_rule_errors(rule, msg):
    with pytest.raises(CgroupError, match=rf"^{R}\.{msg}"):
        device_rule(rule, f"{R}.devices[0]")


def test_device_rule_defaults():
    assert device_rule({"allow": True}, "x") == (True, "a")
    assert device_rule({"allow": False, "type": "c", "major": 10, "minor": 200}, "x") == (False, "c 10:200 rwm")
    assert device_rule({"allow": True, "type": "b", "major": -1, "minor": -1, "access": "r"}, "x") == (True, "b *:* r")


def test_v1_controller_not_mounted_names_the_field_and_writes_nothing(tmp_path, writes):
    root = make_v1(tmp_path / "cg", hierarchies=("memory", "cpu", "pids", "devices"))
    for res, field, ctrl in [
            ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}, "hugepageLimits[0].limit", "hugetlb"),
            ({"network": {"classID": 1}}, "network.classID", "net_cls"),
            ({"network": {"priorities": [{"name": "lo", "priority": 1}]}}, "network.priorities[0]", "net_prio"),
            ({"cpu": {"cpus": "0"}}, "cpu.cpus", "cpuset"),
            ({"blockIO": {"weight": 10}}, "blockIO.weight", "blkio"),
            ({"rdma": {"m": {"hcaObjects": 1}}}, "rdma.m", "rdma")]:
        res = dict(res, memory={"limit": 4096}, pids={"limit": 5})
        with pytest.raises(CgroupError) as e:
            mk(root).set(res)
        assert str(e.value) == (f"{R}.{field}: the {ctrl} controller is not mounted "
                                f"(cgroup v1 controllers here: cpu devices memory pids)")
    assert writes == []


def test_v1_unified_is_refused(v1, writes):
    with pytest.raises(CgroupError, match=rf"^{R}\.unified: not supported on cgroup v1"):
        mk(v1).set({"unified": {"memory.high": "100"}})
    mk(v1).set({"unified": {}, "memory": {}, "hugepageLimits": [], "devices": None})
    assert writes == []


def test_v1_freeze_thaw(v1, writes):
    m = mk(v1)
    assert m.freezer_state() == "thawed"
    m.freeze()
    assert m.freezer_state() == "frozen" and read(v1, "freezer/mrunc/c1/freezer.state") == "FROZEN"
    m.thaw()
    assert m.freezer_state() == "thawed"
    assert rel(writes, v1) == [("freezer/mrunc/c1/freezer.state", "FROZEN"),
                               ("freezer/mrunc/c1/freezer.state", "THAWED")]


def test_v1_freeze_without_freezer(tmp_path):
    root = make_v1(tmp_path / "cg", hierarchies=("memory",))
    with pytest.raises(CgroupError, match="the freezer controller is not mounted"):
        mk(root).freeze()


def test_v1_stats(v1):
    d = os.path.join(v1, "{}/mrunc/c1")
    put(d.format("memory"), {"memory.usage_in_bytes": "4096", "memory.max_usage_in_bytes": "8192",
                             "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2"})
    put(d.format("cpuacct"), {"cpuacct.usage": "123456789"})
    put(d.format("pids"), {"pids.current": "3", "pids.max": "10"})
    put(d.format("blkio"), {"blkio.throttle.io_service_bytes_recursive":
                            "8:0 Read 100\n8:0 Write 20\n8:0 Sync 120\n8:16 Read 1\nTotal 121"})
    assert mk(v1).stats() == {"memory": {"current": 4096, "peak": 8192, "limit": None, "oom_kills": 2},
                              "cpu": {"usage_usec": 123456},
                              "pids": {"current": 3, "limit": 10},
                              "io": {"read_bytes": 101, "write_bytes": 20}}
    put(d.format("memory"), {"memory.limit_in_bytes": "1048576"})
    assert mk(v1).stats()["memory"]["limit"] == 1048576


def test_v1_pids_are_read_recursively(v1):
    put(os.path.join(v1, "freezer/mrunc/c1"), {"cgroup.procs": "10\n11"})
    put(os.path.join(v1, "freezer/mrunc/c1/sub"), {"cgroup.procs": "12\n10"})
    assert mk(v1).pids() == [10, 11, 12]


def test_kill_all_freezes_signals_and_restores(v1, writes, monkeypatch):
    sent = []
    monkeypatch.setattr(base, "_signal", lambda pid, sig: sent.append((pid, sig)))
    put(os.path.join(v1, "freezer/mrunc/c1"), {"cgroup.procs": "10\n11"})
    m = mk(v1)
    m.kill_all(signal.SIGTERM)
    assert sent == [(10, signal.SIGTERM), (11, signal.SIGTERM)]
    assert [v for _, v in writes] == ["FROZEN", "THAWED"]
    # a paused container stays paused for a catchable signal, but is thawed so SIGKILL can land
    m.freeze()
    del writes[:]
    m.kill_all(signal.SIGUSR1)
    assert writes == [] and m.freezer_state() == "frozen"
    m.kill_all(signal.SIGKILL)
    assert [v for _, v in writes] == ["THAWED"]


def test_remove_kills_then_removes_leaf_first_and_created_parents(tmp_path, writes, monkeypatch):
    root = make_v1(tmp_path / "cg", hierarchies=("freezer", "pids"), leaf="/pre")
    removed, sent = [], []
    monkeypatch.setattr(base, "_signal", lambda pid, sig: sent.append((pid, sig)))

    def rmdir(p):   # a fake tree holds plain files, which cgroupfs would not: drop them first
        if not os.path.isdir(p):
            return
        for f in os.listdir(p):
            os.unlink(os.path.join(p, f))
        os.rmdir(p)
        removed.append(os.path.relpath(p, root))
    monkeypatch.setattr(fs, "rmdir", rmdir)
    m = mk(root, "/mrunc/c1")
    m.apply()
    for h in ("freezer", "pids"):
        put(os.path.join(root, h, "mrunc/c1"), {"freezer.state": "THAWED"} if h == "freezer" else {})
    put(os.path.join(root, "freezer/mrunc/c1/nested"), {"cgroup.procs": "77"})
    real_procs = fs.procs
    monkeypatch.setattr(fs, "procs", lambda d: [] if sent else real_procs(d))   # 77 "dies"
    m.remove()
    assert sent == [(77, signal.SIGKILL)]
    assert removed == ["freezer/mrunc/c1/nested", "freezer/mrunc/c1", "pids/mrunc/c1",
                       "pids/mrunc", "freezer/mrunc"]
    assert not m.exists()


def test_mkdir_makes_missing_parents_first_and_lists_only_what_it_made(tmp_path):
    """mkdir -p: the missing parents and the cgroup are made, parents first — the mkdirs the
    record shows — and only they are listed as made; an existing directory is asked for once
    (EEXIST), left as it is, unlisted; a parent that is a file fails, naming the path."""
    (tmp_path / "a").mkdir()
    made, calls = [], []

    class Sys:  # create's Syscalls: each mkdir it is asked for, as the record would show it
        def mkdir(self, path, mode):
            calls.append(os.path.relpath(path, tmp_path))
            os.mkdir(path, mode)

    fs.mkdir(str(tmp_path / "a/b/c"), made, Sys())
    assert made == [str(tmp_path / "a/b"), str(tmp_path / "a/b/c")]
    assert (tmp_path / "a/b/c").is_dir()
    assert calls == ["a/b", "a/b/c"]
    fs.mkdir(str(tmp_path / "a/b/c"), made, Sys())        # there: asked, nothing listed
    assert calls[2:] == ["a/b/c"] and len(made) == 2
    (tmp_path / "f").write_text("")
    with pytest.raises(CgroupError, match="creating cgroup .*/f/x"):
        fs.mkdir(str(tmp_path / "f/x"), made)


def test_remove_if_empty_removes_only_when_the_first_directory_goes(tmp_path):
    """delete of a stopped container: the first directory removed at once says nothing was in it,
    and the others and the parents create made follow; one that does not go (a process, a cgroup
    below — here a file, which a fake tree's rmdir refuses alike) removes nothing."""
    from mrunc.cgroups import recorded
    top = tmp_path / "mrunc"
    dirs = [str(top / h) for h in ("freezer", "pids")]
    for d in dirs:
        os.makedirs(d)
    (top / "freezer" / "cgroup.procs").write_text("77")
    assert recorded.remove_if_empty({"dirs": dirs, "created": [str(top)] + dirs}) is False
    assert all(os.path.isdir(d) for d in dirs)
    os.unlink(top / "freezer" / "cgroup.procs")
    assert recorded.remove_if_empty({"dirs": dirs, "created": [str(top)] + dirs}) is True
    assert not top.exists()


# ---- v2 ---------------------------------------------------------------------------------------

@pytest.fixture
def v2(tmp_path):
    return make_v2(tmp_path / "cg2")


def v2w(writes, root, skip_enable=True):
    return [(p, v) for p, v in rel(writes, root)
            if not (skip_enable and p.endswith("cgroup.subtree_control"))]


def test_v2_apply_enables_controllers_down_the_tree_and_moves_the_pid(tmp_path, writes):
    root = make_v2(tmp_path / "cg", leaf="/mrunc/pre")
    m = mk(root, "/mrunc/c1")
    m.apply(4242)
    on = "+cpu +cpuset +hugetlb +io +memory +misc +pids +rdma"
    assert rel(writes, root) == [("cgroup.subtree_control", on), ("mrunc/cgroup.subtree_control", on),
                                 ("mrunc/c1/cgroup.procs", "4242")]
    assert m.created == [f"{root}/mrunc/c1"]


def test_v2_memory(v2, writes):
    mk(v2).set({"memory": {"limit": 1 << 20, "swap": 3 << 20, "reservation": 1 << 19}})
    assert v2w(writes, v2) == [("mrunc/c1/memory.swap.max", str(2 << 20)),
                               ("mrunc/c1/memory.max", "1048576"), ("mrunc/c1/memory.low", "524288")]


@pytest.mark.parametrize("mem,want", [
    ({"limit": 1000, "swap": 1000}, [("memory.swap.max", "0"), ("memory.max", "1000")]),
    ({"limit": 1000, "swap": -1}, [("memory.swap.max", "max"), ("memory.max", "1000")]),
    ({"limit": -1}, [("memory.swap.max", "max"), ("memory.max", "max")]),
    ({"limit": -1, "swap": 5000}, [("memory.swap.max", "5000"), ("memory.max", "max")]),
    ({"limit": 1000}, [("memory.max", "1000")]),
    ({"reservation": -1}, [("memory.low", "max")]),
    ({"limit": 0, "swap": 0, "disableOOMKiller": False, "useHierarchy": True, "swappiness": -1}, []),
])
def test_v2_swap_conversion(v2, writes, mem, want):
    mk(v2).set({"memory": mem})
    assert [(p.rsplit("/", 1)[1], v) for p, v in v2w(writes, v2)] == want


@pytest.mark.parametrize("mem,msg", [
    ({"swap": 1000}, "memory.swap: a swap limit needs a memory limit"),
    ({"limit": 2000, "swap": 1000}, r"memory\.swap: memory\+swap limit 1000 is below the memory limit 2000"),
    ({"kernel": 1 << 20}, r"memory\.kernel: not supported on cgroup v2"),
    ({"kernelTCP": 1 << 20}, r"memory\.kernelTCP: not supported on cgroup v2"),
    ({"swappiness": 0}, r"memory\.swappiness: not supported on cgroup v2"),
    ({"disableOOMKiller": True}, r"memory\.disableOOMKiller: not supported on cgroup v2"),
    ({"useHierarchy": False}, r"memory\.useHierarchy: cgroup v2 is always hierarchical"),
])
def test_v2_memory_errors(v2, writes, mem, msg):
    with pytest.raises(CgroupError, match=rf"^{R}\.{msg}"):
        mk(v2).set({"memory": mem, "pids": {"limit": 1}})
    assert v2w(writes, v2) == []


def test_v2_without_swap_accounting(tmp_path, writes):
    root = make_v2(tmp_path / "cg", omit=("memory.swap.max",))
    mk(root).set({"memory": {"limit": 1000, "swap": 1000}})       # "no swap": already true
    mk(root).set({"memory": {"limit": -1}})                       # "no swap limit": already true
    assert [v for _, v in v2w(writes, root)] == ["1000", "max"]
    with pytest.raises(CgroupError, match=rf"^{R}\.memory\.swap: memory\.swap\.max is not available"):
        mk(root).set({"memory": {"limit": 1000, "swap": 3000}})


def test_v2_memory_check_before_update(tmp_path, writes):
    root = make_v2(tmp_path / "cg", extra={"memory.current": "5000"})
    with pytest.raises(CgroupError, match=rf"^{R}\.memory\.limit: rejecting memory limit 4000 below current usage 5000"):
        mk(root).set({"memory": {"limit": 4000, "checkBeforeUpdate": True}})
    mk(root).set({"memory": {"limit": 6000, "checkBeforeUpdate": True}})
    assert v2w(writes, root) == [("mrunc/c1/memory.max", "6000")]


@pytest.mark.parametrize("shares,weight", [
    (2, 1), (3, 2), (10, 4), (100, 17), (512, 59), (1024, 100), (2048, 174), (4096, 303),
    (10000, 627), (100000, 4340), (262143, 10000), (262144, 10000), (500000, 10000)])
def test_v2_shares_to_weight(v2, writes, shares, weight):
    mk(v2).set({"cpu": {"shares": shares}})
    assert v2w(writes, v2) == [("mrunc/c1/cpu.weight", str(weight))]


def test_v2_cpu_every_field(v2, writes):
    mk(v2).set({"cpu": {"shares": 1024, "quota": 50000, "period": 200000, "burst": 1000,
                        "idle": 1, "cpus": "0", "mems": "0"}})
    assert v2w(writes, v2) == [("mrunc/c1/cpu.idle", "1"), ("mrunc/c1/cpu.weight", "100"),
                               ("mrunc/c1/cpu.max", "50000 200000"), ("mrunc/c1/cpu.max.burst", "1000"),
                               ("mrunc/c1/cpuset.cpus", "0"), ("mrunc/c1/cpuset.mems", "0")]


@pytest.mark.parametrize("current,c,want", [
    ("max 100000", {"quota": 20000}, "20000 100000"),
    ("30000 50000", {"period": 100000}, "30000 100000"),      # keeps the quota (runc resets it)
    ("30000 50000", {"quota": 10000}, "10000 50000"),         # keeps the period
    ("30000 50000", {"quota": -1}, "max 50000"),
])
def test_v2_cpu_max_keeps_the_half_not_given(tmp_path, writes, current, c, want):
    root = make_v2(tmp_path / "cg", extra={"cpu.max": current})
    mk(root).set({"cpu": c})
    assert v2w(writes, root) == [("mrunc/c1/cpu.max", want)]


def test_v2_burst_shrinks_before_the_quota(tmp_path, writes):
    root = make_v2(tmp_path / "cg", extra={"cpu.max": "50000 100000", "cpu.max.burst": "40000"})
    mk(root).set({"cpu": {"quota": 20000, "burst": 10000}})
    assert v2w(writes, root) == [("mrunc/c1/cpu.max.burst", "10000"), ("mrunc/c1/cpu.max", "20000 100000")]


@pytest.mark.parametrize("key", ["realtimeRuntime", "realtimePeriod"])
def test_v2_realtime_is_v1_only(v2, writes, key):
    with pytest.raises(CgroupError) as e:
        mk(v2).set({"cpu": {"shares": 100, key: 1000}})
    assert str(e.value) == f"{R}.cpu.{key}: not supported on cgroup v2"
    assert v2w(writes, v2) == []


@pytest.mark.parametrize("limit,want", [(0, "0"), (-1, "max"), (64, "64")])
def test_v2_pids(v2, writes, limit, want):
    mk(v2).set({"pids": {"limit": limit}})
    assert v2w(writes, v2) == [("mrunc/c1/pids.max", want)]


@pytest.mark.parametrize("weight,io_weight", [(10, 1), (100, 910), (500, 4950), (1000, 10000)])
def test_v2_blkio_weight_to_io_weight(v2, writes, weight, io_weight):
    mk(v2).set({"blockIO": {"weight": weight}})
    assert v2w(writes, v2) == [("mrunc/c1/io.weight", str(io_weight))]


def test_v2_io_every_field(v2, writes):
    mk(v2).set({"blockIO": {
        "weight": 100, "weightDevice": [{"major": 254, "minor": 0, "weight": 1000}],
        "throttleReadBpsDevice": [{"major": 254, "minor": 0, "rate": 1048576}],
        "throttleWriteBpsDevice": [{"major": 254, "minor": 0, "rate": 2048}],
        "throttleReadIOPSDevice": [{"major": 254, "minor": 0, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": 254, "minor": 16, "rate": 50}]}})
    assert v2w(writes, v2) == [("mrunc/c1/io.weight", "910"), ("mrunc/c1/io.weight", "254:0 10000"),
                               ("mrunc/c1/io.max", "254:0 rbps=1048576"),
                               ("mrunc/c1/io.max", "254:0 wbps=2048"),
                               ("mrunc/c1/io.max", "254:0 riops=100"),
                               ("mrunc/c1/io.max", "254:16 wiops=50")]


def test_v2_io_prefers_bfq_with_v1_values(tmp_path, writes):
    root = make_v2(tmp_path / "cg", extra={"io.bfq.weight": "default 100"})
    mk(root).set({"blockIO": {"weight": 100, "weightDevice": [{"major": 8, "minor": 0, "weight": 300}]}})
    assert v2w(writes, root) == [("mrunc/c1/io.bfq.weight", "100"), ("mrunc/c1/io.bfq.weight", "8:0 300")]


@pytest.mark.parametrize("b,msg", [
    ({"leafWeight": 100}, r"blockIO\.leafWeight: not supported on cgroup v2"),
    ({"weightDevice": [{"major": 8, "minor": 0, "leafWeight": 100}]}, r"blockIO\.weightDevice\[0\]\.leafWeight: not supported"),
    ({"weight": 5}, r"blockIO\.weight: 5 is outside 10-1000"),
])
def test_v2_io_errors(v2, writes, b, msg):
    with pytest.raises(CgroupError, match=rf"^{R}\.{msg}"):
        mk(v2).set({"blockIO": b})


def test_v2_hugetlb_and_rdma(v2, writes):
    mk(v2).set({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
                "rdma": {"mlx5_1": {"hcaHandles": 3}}})
    assert v2w(writes, v2) == [("mrunc/c1/hugetlb.2MB.max", "2097152"),
                               ("mrunc/c1/hugetlb.2MB.rsvd.max", "2097152"),
                               ("mrunc/c1/rdma.max", "mlx5_1 hca_handle=3")]


def test_v2_hugetlb_without_rsvd(tmp_path, writes):
    root = make_v2(tmp_path / "cg", omit=("hugetlb.2MB.rsvd.max",))
    mk(root).set({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]})
    assert v2w(writes, root) == [("mrunc/c1/hugetlb.2MB.max", "0")]


@pytest.mark.parametrize("net,key", [({"classID": 1}, "classID"),
                                     ({"priorities": [{"name": "lo", "priority": 1}]}, "priorities")])
def test_v2_network_is_v1_only(v2, writes, net, key):
    with pytest.raises(CgroupError, match=rf"^{R}\.network\.{key}: not supported on cgroup v2"):
        mk(v2).set({"network": net})
    mk(v2).set({"network": {"priorities": []}})


@pytest.mark.parametrize("rules", [
    [{"allow": True, "access": "rwm"}],
    [{"allow": False, "access": "rwm"}, {"allow": True, "type": "a", "access": "rwm"}],
    [{"allow": False, "type": "c", "major": 1, "minor": 3}, {"allow": True}],
])
def test_v2_devices_allow_all_needs_no_program(v2, writes, rules):
    assert allows_all(rules)
    mk(v2).set({"devices": rules})
    assert v2w(writes, v2) == []


def test_v2_unified_is_written_last(v2, writes):
    mk(v2).set({"memory": {"limit": 1000}, "unified": {"memory.high": "900", "memory.max": "2000",
                                                       "cgroup.max.depth": "3"}})
    assert v2w(writes, v2) == [("mrunc/c1/memory.max", "1000"), ("mrunc/c1/memory.high", "900"),
                               ("mrunc/c1/memory.max", "2000"), ("mrunc/c1/cgroup.max.depth", "3")]


@pytest.mark.parametrize("key,value,msg", [
    ("memory/high", "1", "must be a cgroup file name of the form CONTROLLER.KNOB"),
    ("memoryhigh", "1", "must be a cgroup file name of the form CONTROLLER.KNOB"),
    ("../cgroup.procs", "1", "must be a cgroup file name"),
    ("cgroup.procs", "1", "cgroup.procs manages processes, not resources"),
    ("cgroup.kill", "1", "cgroup.kill manages processes, not resources"),
    ("memory.high", 5, "the value must be a string"),
    ("memory.hihg", "5", r"memory\.hihg is not available in"),
    ("rdmax.max", "5", r"the rdmax controller is not available in"),
])
def test_v2_unified_validation(v2, writes, key, value, msg):
    with pytest.raises(CgroupError, match=rf'^{R}\.unified\["{key.replace(".", "[.]")}"\]: .*{msg}'):
        mk(v2).set({"unified": {key: value}})
    assert [p for p, _ in v2w(writes, v2)] == []


def test_v2_set_enables_controllers_first(tmp_path, writes):
    root = make_v2(tmp_path / "cg", leaf_controllers="cpu io memory")
    mk(root).set({"pids": {"limit": 3}})
    on = "+cpu +cpuset +hugetlb +io +memory +misc +pids +rdma"
    assert rel(writes, root) == [("cgroup.subtree_control", on), ("mrunc/cgroup.subtree_control", on),
                                 ("mrunc/c1/pids.max", "3")]


def test_v2_enables_a_missing_controller_on_demand(tmp_path, writes):
    # e.g. the bulk enabling at create time failed, or another process disabled it since
    root = make_v2(tmp_path / "cg", leaf_controllers="cpu io memory")
    m = mk(root)
    m._enable("pids", "f")
    assert rel(writes, root) == [("cgroup.subtree_control", "+pids"),
                                 ("mrunc/cgroup.subtree_control", "+pids")]
    assert "pids" in read(root, "mrunc/c1/cgroup.controllers").split()
    del writes[:]
    m._enable("pids", "f")
    assert writes == []


def test_v2_controller_missing_at_the_root(tmp_path, writes):
    root = make_v2(tmp_path / "cg", controllers="cpu memory", leaf_controllers="cpu memory")
    with pytest.raises(CgroupError) as e:
        mk(root).set({"memory": {"limit": 1000}, "pids": {"limit": 5}})
    assert str(e.value) == (f"{R}.pids.limit: the pids controller is not available in {root} "
                            f"(cgroup.controllers: cpu memory)")
    assert v2w(writes, root) == []


def test_v2_controller_that_cannot_be_enabled(tmp_path, writes):
    root = make_v2(tmp_path / "cg", leaf_controllers="")
    os.unlink(os.path.join(root, "mrunc/cgroup.subtree_control"))    # stands for EBUSY/EACCES
    with pytest.raises(CgroupError, match=rf"^{R}\.memory\.limit: writing \+memory to .*mrunc/cgroup\.subtree_control: No such file"):
        mk(root).set({"memory": {"limit": 1000}})


def test_v2_freeze_thaw(tmp_path, writes):
    root = make_v2(tmp_path / "cg", extra={"cgroup.events": "populated 1\nfrozen 1"})
    m = mk(root)
    assert m.freezer_state() == "thawed"
    m.freeze()
    assert m.freezer_state() == "frozen"
    m.thaw()
    assert m.freezer_state() == "thawed"
    assert rel(writes, root) == [("mrunc/c1/cgroup.freeze", "1"), ("mrunc/c1/cgroup.freeze", "0")]


def test_v2_freeze_timeout_thaws_again(v2, writes):
    with pytest.raises(CgroupError, match="not frozen after 0.05s, thawed it again"):
        mk(v2).freeze(timeout=0.05)
    assert [v for _, v in rel(writes, v2)] == ["1", "0"]


def test_v2_kill_all_uses_cgroup_kill_for_sigkill(v2, writes, monkeypatch):
    sent = []
    monkeypatch.setattr(base, "_signal", lambda pid, sig: sent.append((pid, sig)))
    put(os.path.join(v2, "mrunc/c1"), {"cgroup.procs": "5\n6", "cgroup.events": "frozen 1"})
    m = mk(v2)
    m.kill_all(signal.SIGKILL)
    assert rel(writes, v2) == [("mrunc/c1/cgroup.kill", "1")] and sent == []
    m.kill_all(signal.SIGTERM)
    assert sent == [(5, signal.SIGTERM), (6, signal.SIGTERM)]


def test_v2_stats(tmp_path):
    root = make_v2(tmp_path / "cg", extra={
        "memory.current": "4096", "memory.peak": "8192", "memory.max": "1048576",
        "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1",
        "cpu.stat": "usage_usec 2500\nuser_usec 2000\nsystem_usec 500",
        "pids.current": "2", "io.stat": "254:0 rbytes=100 wbytes=20 rios=1 wios=1\n8:0 rbytes=1 wbytes=2"})
    assert mk(root).stats() == {"memory": {"current": 4096, "peak": 8192, "limit": 1048576, "oom_kills": 1},
                                "cpu": {"usage_usec": 2500}, "pids": {"current": 2, "limit": None},
                                "io": {"read_bytes": 101, "write_bytes": 22}}


def test_stats_of_a_missing_cgroup_are_empty(tmp_path):
    root = make_v2(tmp_path / "cg")
    assert mk(root, "/nope").stats() == base.empty_stats()
    root1 = make_v1(tmp_path / "cg1")
    assert mk(root1, "/nope").stats() == base.empty_stats()


# ---- disabled ---------------------------------------------------------------------------------

def test_none_layout_gives_the_disabled_manager(tmp_path):
    m = mk(tmp_path, "/mrunc/c1")
    assert m.layout == "disabled" and m.path == "/mrunc/c1" and not m.exists()
    m.apply(1)
    m.set({})
    m.set({"memory": {}, "hugepageLimits": [], "unified": {}})
    assert m.pids() == [] and m.freezer_state() == "thawed" and m.stats() == base.empty_stats()
    m.kill_all(signal.SIGKILL)
    m.thaw()
    m.remove()
    with pytest.raises(CgroupError) as e:
        m.set({"memory": {}, "pids": {"limit": 0}})
    assert str(e.value) == (f"{R}.pids.limit: cannot be applied: no cgroup filesystem is mounted "
                            f"under {tmp_path}")
    with pytest.raises(CgroupError, match="^cannot freeze: no cgroup filesystem"):
        m.freeze()
    with pytest.raises(CgroupError, match=rf"^{R}\.devices: cannot be applied"):
        m.set({"devices": []})


def test_rootless_without_delegation_is_disabled(tmp_path, monkeypatch):
    root = make_v2(tmp_path / "cg")
    for mod in (os, posix):     # the factory calls posix, the delegation check os
        monkeypatch.setattr(mod, "access", lambda p, mode: False)
    m = mk(root, "/mrunc/c1", rootless=True)
    assert m.layout == "disabled" and m.path == "/mrunc/c1"
    assert m.reason.startswith(f"running rootless and {root}/mrunc/c1 is not delegated to uid")
    m.set({"devices": [{"allow": False, "access": "rwm"}]})      # as runc: ignored rootless
    with pytest.raises(CgroupError, match=rf"^{R}\.memory\.limit: cannot be applied: running rootless"):
        m.set({"memory": {"limit": 1000}})


def test_rootless_with_a_delegated_subtree_uses_it(tmp_path, monkeypatch):
    root = make_v2(tmp_path / "cg", leaf="/user/c1")
    for mod in (os, posix):     # the factory calls posix, the delegation check os
        monkeypatch.setattr(mod, "access", lambda p, mode: p.startswith(f"{root}/user"))
    assert mk(root, "/user/c1", rootless=True).layout == "v2"
    assert mk(root, "/user/new/c1", rootless=True).layout == "v2"
    assert mk(root, "/other/c1", rootless=True).layout == "disabled"


def test_requested_lists_what_asks_for_something():
    assert requested({"memory": {"disableOOMKiller": False}, "network": {"priorities": []}}) == []
    assert requested({"memory": {"limit": 5, "swap": None}, "cpu": {}, "devices": [],
                      "hugepageLimits": [], "unified": {"memory.high": "1"},
                      "rdma": {"m": {"hcaObjects": 1}}}) == [
        f"{R}.memory.limit", f"{R}.devices", f'{R}.unified["memory.high"]', f"{R}.rdma.m.hcaObjects"]


def test_the_record_signals_the_cgroup_as_the_manager_does(v1, v2, writes, monkeypatch):
    """kill --all and delete --force signal the cgroup from what create recorded (no managers):
    the same writes and signals as kill_all — v1 frozen meanwhile, a paused one thawed for
    SIGKILL only, v2's SIGKILL through cgroup.kill — and nothing when init is not in it."""
    from mrunc.cgroups import freezer, recorded
    sent = []
    monkeypatch.setattr(base, "_signal", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(freezer, "_kill", lambda pid, sig: sent.append((pid, sig)))
    put(os.path.join(v1, "freezer/mrunc/c1"), {"cgroup.procs": "10\n11"})
    put(os.path.join(v2, "mrunc/c1"), {"cgroup.procs": "5\n6", "cgroup.events": "frozen 1"})

    def both(root, layout, pid, signum, paused=False):
        """(writes, signals) of the manager's kill_all, then of the record's: the same."""
        out = []
        for by_record in (False, True):
            m = mk(root)
            if paused:
                m.freeze()
            del writes[:], sent[:]
            cg = dict(recorded.record(m), layout=layout)
            if by_record:
                done = recorded.signal_all(cg, pid, signum)
            else:
                done = pid in m.pids() and (m.kill_all(signum) or True)
            out.append((done, rel(writes, root), list(sent)))
            m.thaw()
        assert out[0] == out[1]
        return out[1]
    assert both(v1, "v1", 10, signal.SIGTERM) == (
        True, [("freezer/mrunc/c1/freezer.state", "FROZEN"), ("freezer/mrunc/c1/freezer.state",
                                                              "THAWED")],
        [(10, signal.SIGTERM), (11, signal.SIGTERM)])
    assert both(v1, "v1", 10, signal.SIGUSR1, paused=True) == (
        True, [], [(10, signal.SIGUSR1), (11, signal.SIGUSR1)])
    assert both(v1, "v1", 10, signal.SIGKILL, paused=True) == (
        True, [("freezer/mrunc/c1/freezer.state", "THAWED")],
        [(10, signal.SIGKILL), (11, signal.SIGKILL)])
    assert both(v1, "v1", 12, signal.SIGKILL) == (False, [], [])
    assert both(v2, "v2", 5, signal.SIGKILL)[1:] == ([("mrunc/c1/cgroup.kill", "1")], [])
    assert both(v2, "v2", 7, signal.SIGKILL) == (False, [], [])
