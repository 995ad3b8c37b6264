"""mrunc.rootfs without root: the exact kernel calls, recorded by a RecordingSyscalls, on a temp rootfs.

Mount points, device-node directories and /dev links are made for real in the temp rootfs (the
runtime makes those directly); mounts, mknod, chown, writes are only recorded. Targets (and bind
sources) that the runtime passes as /proc/self/fd/N are shown as "fd:<path inside the rootfs>" (or
"fd:<host path>" outside it), read while the fd is still open: that is how the tests see where a
mount would have landed, and from what.
"""
import errno
import json
import os
import shutil
import stat
import subprocess
import uuid

import pytest

from mrunc import rootfs
from mrunc.linux import (MNT_DETACH, MS_BIND, MS_MOVE, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE,
                         MS_RDONLY, MS_REC, MS_RELATIME, MS_REMOUNT, MS_SHARED, MS_SLAVE, MS_STRICTATIME,
                         RecordingSyscalls)
from mrunc.rootfs import mounts as rmounts
from mrunc.rootfs.mounts import kept_flags


class Rec(RecordingSyscalls):
    """RecordingSyscalls that names fd paths by what they point to, and can fail on demand."""

    def __init__(self, root="/", fail=None):
        super().__init__()
        self.root, self.fail = root.rstrip("/"), fail or {}

    def _rec(self, name, *args):
        if name == "mount":
            args += (None,) * (5 - len(args))
        self.log.append((name, tuple(self._show(a) for a in args)))
        if name in self.fail:
            raise self.fail[name]
        if name == "mknod" and os.path.lexists(args[0]):  # as the kernel: never over a file
            raise FileExistsError(17, "File exists", args[0])

    def _show(self, a):
        if not (isinstance(a, str) and a.startswith("/proc/self/fd/")):
            return a
        fd, _, rest = a[len("/proc/self/fd/"):].partition("/")
        real = os.readlink(f"/proc/self/fd/{fd}") + (f"/{rest}" if rest else "")
        if self.root and (real == self.root or real.startswith(self.root + "/")):
            real = real[len(self.root):] or "/"
        return "fd:" + real


def _default_config():
    try:
        from mrunc.spec import default_config
        return default_config()
    except ImportError:
        tmp = f"/tmp/mrunc-spec-{uuid.uuid4().hex}"
        os.mkdir(tmp)
        try:
            subprocess.run(["runc", "spec", "--bundle", tmp], check=True)
            with open(os.path.join(tmp, "config.json")) as f:
                return json.load(f)
        finally:
            shutil.rmtree(tmp)


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def _calls(rec, name="mount"):
    return [args for n, args in rec.log if n == name]


def _config(mounts=(), **linux):
    return {"root": {"path": "rootfs"}, "mounts": list(mounts), "linux": linux}


# ---------------------------------------------------------------- prepare_root

def test_prepare_root_default_is_rslave_then_self_bind(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "rootfs").symlink_to("real")
    rec = Rec()
    root = rootfs.prepare_root(rec, _config(), str(tmp_path))
    assert root == str(tmp_path / "real")  # realpath: pivot_root and the checks need the real one
    assert rec.log == [
        ("mount", (None, "/", None, MS_SLAVE | MS_REC, None)),
        ("mount", (root, root, None, MS_BIND | MS_REC, None)),
    ]


@pytest.mark.parametrize("prop, flags", [("rprivate", MS_PRIVATE | MS_REC),
                                         ("rslave", MS_SLAVE | MS_REC),
                                         ("runbindable", MS_PRIVATE | MS_REC)])
def test_prepare_root_propagation(bundle, prop, flags):
    rec = Rec()
    rootfs.prepare_root(rec, _config(rootfsPropagation=prop), str(bundle))
    assert rec.log[0] == ("mount", (None, "/", None, flags, None))
    assert len(rec.log) == 2


def test_prepare_root_shared_makes_parent_of_rootfs_private(bundle, tmp_path, monkeypatch):
    parent = str(bundle)
    info = tmp_path / "mountinfo"
    info.write_text(f"1 0 8:1 / / rw shared:1 - ext4 /dev/sda1 rw\n"
                    f"2 1 8:2 / {parent} rw shared:2 - ext4 /dev/sda2 rw\n")
    monkeypatch.setattr(rmounts, "MOUNTINFO", str(info))
    rec = Rec()
    root = rootfs.prepare_root(rec, _config(rootfsPropagation="rshared"), str(bundle))
    assert rec.log == [
        ("mount", (None, "/", None, MS_SHARED | MS_REC, None)),
        ("mount", (None, parent, None, MS_PRIVATE, None)),
        ("mount", (root, root, None, MS_BIND | MS_REC, None)),
    ]


def test_prepare_root_missing_rootfs(tmp_path):
    with pytest.raises(NotADirectoryError, match="root.path"):
        rootfs.prepare_root(Rec(), _config(), str(tmp_path))


# ---------------------------------------------------------------- mount_entries

def test_default_config_call_sequence(bundle):
    config = _default_config()
    rec = Rec(str(bundle / "rootfs"))
    root = rootfs.prepare_root(rec, config, str(bundle))
    rootfs.mount_entries(rec, config, root, str(bundle))
    assert rec.log == [
        ("mount", (None, "/", None, MS_SLAVE | MS_REC, None)),
        ("mount", (root, root, None, MS_BIND | MS_REC, None)),
        ("mount", ("proc", "fd:/proc", "proc", 0, None)),
        ("mount", ("tmpfs", "fd:/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")),
        ("mount", ("devpts", "fd:/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                   "newinstance,ptmxmode=0666,mode=0620,gid=5")),
        ("mount", ("shm", "fd:/dev/shm", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV,
                   "mode=1777,size=65536k")),
        ("mount", ("mqueue", "fd:/dev/mqueue", "mqueue", MS_NOSUID | MS_NOEXEC | MS_NODEV, None)),
        ("mount", ("sysfs", "fd:/sys", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY, None)),
        # /sys/fs/cgroup (type cgroup) waits for the cgroup phase
    ]
    for d in ("proc", "dev/pts", "dev/shm", "dev/mqueue", "sys"):
        assert (bundle / "rootfs" / d).is_dir()
    assert not (bundle / "rootfs" / "sys" / "fs").exists()


def test_bind_ro_is_bind_then_remount_then_propagation(bundle):
    (bundle / "data").mkdir()
    config = _config([{"destination": "/mnt/data", "type": "none", "source": "data",
                       "options": ["rbind", "ro", "nosuid", "rprivate"]}])
    rec = Rec(str(bundle / "rootfs"))
    rootfs.mount_entries(rec, config, str(bundle / "rootfs"), str(bundle))
    keep = kept_flags(str(bundle / "rootfs" / "mnt" / "data"), MS_RDONLY | MS_NOSUID)
    assert rec.log == [
        ("mount", (f"fd:{bundle}/data", "fd:/mnt/data", None, MS_BIND | MS_REC, None)),
        ("mount", (None, "fd:/mnt/data", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | keep, None)),
        ("mount", (None, "fd:/mnt/data", None, MS_PRIVATE | MS_REC, None)),
    ]


def test_plain_bind_is_one_call(bundle):
    config = _config([{"destination": "/x", "source": str(bundle), "options": ["bind"]}])
    rec = Rec(str(bundle / "rootfs"))
    rootfs.mount_entries(rec, config, str(bundle / "rootfs"), str(bundle))
    assert rec.log == [("mount", (f"fd:{bundle}", "fd:/x", None, MS_BIND, None))]


def test_bind_of_a_file_makes_an_empty_file(bundle):
    (bundle / "hosts").write_text("127.0.0.1 localhost\n")
    config = _config([{"destination": "/etc/hosts", "source": "hosts", "options": ["bind", "ro"]}])
    rec = Rec(str(bundle / "rootfs"))
    rootfs.mount_entries(rec, config, str(bundle / "rootfs"), str(bundle))
    target = bundle / "rootfs" / "etc" / "hosts"
    assert target.is_file() and target.stat().st_size == 0
    assert [a[1] for a in _calls(rec)] == ["fd:/etc/hosts", "fd:/etc/hosts"]


def test_bind_source_missing(bundle):
    config = _config([{"destination": "/x", "source": "nope", "options": ["bind"]}])
    with pytest.raises(FileNotFoundError, match=r"mounts\[0\] /x: bind source .*/nope"):
        rootfs.mount_entries(Rec(), config, str(bundle / "rootfs"), str(bundle))
    assert not (bundle / "rootfs" / "x").exists()


def test_non_bind_propagation_is_a_separate_call(bundle):
    config = _config([{"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nodev", "shared", "mode=700"]}])
    rec = Rec(str(bundle / "rootfs"))
    rootfs.mount_entries(rec, config, str(bundle / "rootfs"), str(bundle))
    assert rec.log == [("mount", ("tmpfs", "fd:/run", "tmpfs", MS_NODEV, "mode=700")),
                       ("mount", (None, "fd:/run", None, MS_SHARED, None))]


@pytest.mark.parametrize("link", ["/", "../../..", "../../../../../../..", "/../.."])
def test_symlinked_parent_resolves_inside_rootfs(bundle, link):
    """S5: a mount destination whose parent is a symlink to / or ../../.. stays in the rootfs."""
    root = bundle / "rootfs"
    (root / "evil").symlink_to(link)
    name = f"mrunc-escape-{uuid.uuid4().hex}"
    config = _config([{"destination": f"/evil/{name}/x", "type": "tmpfs", "source": "tmpfs"}])
    rec = Rec(str(root))
    rootfs.mount_entries(rec, config, str(root), str(bundle))
    assert rec.log == [("mount", ("tmpfs", f"fd:/{name}/x", "tmpfs", 0, None))]
    assert (root / name / "x").is_dir()
    assert not os.path.exists(f"/{name}")


def test_symlinked_last_component_creates_inside(bundle, tmp_path):
    """S6: rootfs/etc/resolv.conf -> /opt/x must make rootfs/opt/x, not /opt/x on the host."""
    root = bundle / "rootfs"
    (root / "etc").mkdir()
    name = f"mrunc-escape-{uuid.uuid4().hex}"
    (root / "etc" / "resolv.conf").symlink_to(f"/{name}/x")
    (bundle / "resolv").write_text("nameserver 1.1.1.1\n")
    config = _config([{"destination": "/etc/resolv.conf", "source": "resolv", "options": ["bind"]}])
    rec = Rec(str(root))
    rootfs.mount_entries(rec, config, str(root), str(bundle))
    assert rec.log == [("mount", (f"fd:{bundle}/resolv", f"fd:/{name}/x", None, MS_BIND, None))]
    assert (root / name / "x").is_file()
    assert not os.path.exists(f"/{name}")


def test_symlink_loop_is_an_error(bundle):
    root = bundle / "rootfs"
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    with pytest.raises(OSError, match=r"mounts\[0\] /a/x: .*too many symlinks"):
        rootfs.mount_entries(Rec(), _config([{"destination": "/a/x", "type": "tmpfs"}]),
                             str(root), str(bundle))


def test_file_in_the_middle_is_not_a_directory(bundle):
    (bundle / "rootfs" / "f").write_text("")
    with pytest.raises(NotADirectoryError, match=r"mounts\[0\]"):
        rootfs.mount_entries(Rec(), _config([{"destination": "/f/x", "type": "tmpfs"}]),
                             str(bundle / "rootfs"), str(bundle))


@pytest.mark.parametrize("top, mount", [
    ("proc", {"destination": "/proc", "type": "proc", "source": "proc"}),
    ("sys", {"destination": "/sys", "type": "sysfs", "source": "sysfs"}),
    ("dev", {"destination": "/dev/pts", "type": "devpts", "source": "devpts"}),
])
def test_symlinked_proc_sys_dev_refused(bundle, top, mount):
    """S9/S13: even a symlink pointing inside the rootfs is refused for these."""
    root = bundle / "rootfs"
    (root / "elsewhere").mkdir()
    (root / top).symlink_to("elsewhere")
    with pytest.raises(PermissionError, match=rf"mounts\[0\] .*/{top} in the rootfs is a symlink"):
        rootfs.mount_entries(Rec(), _config([mount]), str(root), str(bundle))


def test_only_proc_on_proc(bundle):
    """S8: a tmpfs (or any non-procfs bind) at /proc would fake the files we write to."""
    root = str(bundle / "rootfs")
    with pytest.raises(PermissionError, match="only a proc filesystem"):
        rootfs.mount_entries(Rec(), _config([{"destination": "/proc", "type": "tmpfs"}]), root, str(bundle))
    with pytest.raises(PermissionError, match="only a proc filesystem"):
        rootfs.mount_entries(Rec(), _config([{"destination": "/proc/", "source": str(bundle),
                                              "options": ["rbind"]}]), root, str(bundle))
    (bundle / "fake").write_text("")
    with pytest.raises(PermissionError, match="inside /proc"):
        rootfs.mount_entries(Rec(), _config([{"destination": "/proc/sys/kernel/core_pattern",
                                              "source": "fake", "options": ["bind"]}]), root, str(bundle))
    with pytest.raises(PermissionError, match="inside /proc"):
        rootfs.mount_entries(Rec(), _config([{"destination": "/proc/sys", "type": "tmpfs"}]),
                             root, str(bundle))
    rec = Rec(root)  # lxcfs-style: allowed
    rootfs.mount_entries(rec, _config([{"destination": "/proc/cpuinfo", "source": "fake",
                                        "options": ["bind"]}]), root, str(bundle))
    assert rec.log == [("mount", (f"fd:{bundle}/fake", "fd:/proc/cpuinfo", None, MS_BIND, None))]
    rec = Rec(root)  # a procfs source is fine (host /proc bound)
    rootfs.mount_entries(rec, _config([{"destination": "/proc", "source": "/proc", "options": ["rbind"]}]),
                         root, str(bundle))
    assert len(rec.log) == 1


def test_unsupported_option_refused(bundle):
    from mrunc.errors import SpecError
    with pytest.raises(SpecError, match="tmpcopyup"):
        rootfs.mount_entries(Rec(), _config([{"destination": "/x", "type": "tmpfs",
                                              "options": ["tmpcopyup"]}]),
                             str(bundle / "rootfs"), str(bundle))


def test_mkdir_in_root_stays_inside(bundle):
    root = bundle / "rootfs"
    (root / "home").symlink_to("/")
    name = f"mrunc-escape-{uuid.uuid4().hex}"
    rootfs.mkdir_in_root(str(root), f"/home/{name}/work")
    assert (root / name / "work").is_dir()
    assert not os.path.exists(f"/{name}")


# ---------------------------------------------------------------- kept_flags

def test_kept_flags(tmp_path):
    f = os.statvfs(tmp_path).f_flag
    keep = kept_flags(str(tmp_path))
    bits = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC  # == ST_RDONLY, ST_NOSUID...
    assert keep & bits == f & bits
    if f & os.ST_RELATIME:
        assert keep & MS_RELATIME
    assert not kept_flags(str(tmp_path), MS_STRICTATIME) & MS_RELATIME  # the entry picks atime
    assert not kept_flags(str(tmp_path), clear=MS_RELATIME) & MS_RELATIME
    assert kept_flags("/proc") & bits == os.statvfs("/proc").f_flag & bits
    assert not kept_flags("/sys/fs/cgroup/..", clear=MS_RDONLY | MS_NOSUID) & (MS_RDONLY | MS_NOSUID)
    # an O_PATH fd of the mount (what _mount_entry holds) reads the same flags as its path
    for path in (str(tmp_path), "/proc", "/sys/fs/cgroup/.."):
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            assert kept_flags(fd) == kept_flags(path)
            assert kept_flags(fd, clear=MS_RDONLY) == kept_flags(path, clear=MS_RDONLY)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- setup_dev

def _dev_config(devices=None, dev_options=("nosuid", "mode=755")):
    return _config([{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                     "options": list(dev_options)}], devices=devices or [])


def test_setup_dev_defaults(bundle):
    root = bundle / "rootfs"
    (root / "dev").mkdir()
    rec = Rec(str(root))
    rootfs.setup_dev(rec, _dev_config(), str(root), terminal=True)
    assert rec.log == [("umask", (0,))] + [
        ("mknod", (f"fd:/dev/{n}", stat.S_IFCHR | 0o666, os.makedev(ma, mi)))
        for n, ma, mi in (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                          ("urandom", 1, 9), ("tty", 5, 0))
    ] + [("umask", (0,))]
    links = {p.name: os.readlink(p) for p in (root / "dev").iterdir() if p.is_symlink()}
    expected = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
                "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}
    if os.path.exists("/proc/kcore"):
        expected["core"] = "/proc/kcore"
    assert links == expected
    console = root / "dev" / "console"
    assert console.is_file() and not console.is_symlink() and console.stat().st_size == 0


def test_setup_dev_config_devices(bundle):
    root = bundle / "rootfs"
    devices = [
        {"type": "c", "path": "/dev/null", "major": 1, "minor": 3, "fileMode": 438},
        {"type": "c", "path": "/dev/net/tun", "major": 10, "minor": 200, "fileMode": 432,
         "uid": 1000, "gid": 1001},
        {"type": "p", "path": "/run/fifo", "fileMode": 384},
        {"type": "b", "path": "/dev/loop9", "major": 7, "minor": 9},
    ]
    rec = Rec(str(root))
    rootfs.setup_dev(rec, _dev_config(devices), str(root), terminal=False)
    nodes = _calls(rec, "mknod")
    assert [a[0] for a in nodes] == ["fd:/dev/zero", "fd:/dev/full", "fd:/dev/random",
                                     "fd:/dev/urandom", "fd:/dev/tty", "fd:/dev/null",
                                     "fd:/dev/net/tun", "fd:/run/fifo", "fd:/dev/loop9"]
    assert nodes[6] == ("fd:/dev/net/tun", stat.S_IFCHR | 0o660, os.makedev(10, 200))  # 432 = 0660
    assert nodes[7] == ("fd:/run/fifo", stat.S_IFIFO | 0o600, 0)
    assert nodes[8] == ("fd:/dev/loop9", stat.S_IFBLK | 0o666, os.makedev(7, 9))
    assert _calls(rec, "chown") == [("fd:/dev/net/tun", 1000, 1001)]
    assert (root / "dev" / "net").is_dir() and (root / "run").is_dir()
    assert not (root / "dev" / "console").exists()


def test_setup_dev_existing_mismatch_is_an_error(bundle):
    root = bundle / "rootfs"
    (root / "dev").mkdir()
    (root / "dev" / "fuse").write_text("not a device")
    devices = [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229}]
    with pytest.raises(FileExistsError, match=r"linux.devices\[0\]: /dev/fuse exists and is not c 10:229"):
        rootfs.setup_dev(Rec(), _dev_config(devices), str(root), terminal=False)


def test_setup_dev_existing_match_is_kept(bundle):
    root = bundle / "rootfs"
    (root / "dev").mkdir()
    os.mkfifo(root / "dev" / "pipe")
    ino = (root / "dev" / "pipe").lstat().st_ino
    rec = Rec(str(root))
    rootfs.setup_dev(rec, _dev_config([{"type": "p", "path": "/dev/pipe"}]), str(root), terminal=False)
    # made first (mknod: EEXIST, it replaces nothing), then what is there is checked and kept
    assert (root / "dev" / "pipe").lstat().st_ino == ino


@pytest.mark.parametrize("userns", [True, False], ids=["userns", "device-cgroup"])
def test_setup_dev_userns_binds_host_nodes(bundle, userns):
    """In a user namespace the kernel refuses every device node: asked once, the other five are
    bound at once. Without one, a refusal (a device cgroup's) says nothing of the next device:
    each is asked."""
    root = bundle / "rootfs"
    rec = Rec(str(root), fail={"mknod": PermissionError(1, "mknod: Operation not permitted")})
    config = _dev_config()
    config["linux"]["namespaces"] = [{"type": "mount"}] + ([{"type": "user"}] if userns else [])
    rootfs.setup_dev(rec, config, str(root), terminal=False)
    names = ("null", "zero", "full", "random", "urandom", "tty")
    assert _calls(rec) == [(f"/dev/{n}", f"fd:/dev/{n}", None, MS_BIND, None) for n in names]
    assert (root / "dev" / "null").is_file()
    assert [a[0] for a in _calls(rec, "mknod")] == [f"fd:/dev/{n}" for n in names[:1 if userns else 6]]


def test_setup_dev_refuses_a_dev_moved_out_of_the_rootfs_between_two_nodes(bundle, tmp_path):
    """/dev is looked up once for all its nodes; each node checks again that the directory held
    is still under the rootfs. Moved out after the first node (a racer's rename), the next node
    is refused and nothing more is made in the moved directory."""
    root = bundle / "rootfs"
    (root / "dev").mkdir()
    outside = tmp_path / "outside"

    class MovesDev(Rec):
        def _rec(self, name, *args):
            super()._rec(name, *args)
            if name == "mknod" and not outside.exists():
                os.rename(root / "dev", outside)  # after the first node

    rec = MovesDev(str(root))
    with pytest.raises(PermissionError, match="outside the rootfs"):
        rootfs.setup_dev(rec, _dev_config(), str(root), terminal=False)
    assert len(_calls(rec, "mknod")) == 1
    assert not any(p.is_symlink() for p in outside.iterdir())  # no /dev links made there


def test_setup_dev_refuses_symlinked_dev(bundle):
    """S13: /dev -> / would make the nodes on the host."""
    root = bundle / "rootfs"
    (root / "dev").symlink_to("/")
    with pytest.raises(PermissionError, match="/dev in the rootfs is a symlink"):
        rootfs.setup_dev(Rec(), _dev_config(), str(root), terminal=False)


def test_setup_dev_refuses_symlinked_console(bundle):
    root = bundle / "rootfs"
    (root / "dev").mkdir()
    (root / "dev" / "console").symlink_to("/etc/passwd")
    with pytest.raises(PermissionError, match="console"):
        rootfs.setup_dev(Rec(), _dev_config(), str(root), terminal=True)


def test_setup_dev_bound_dev_gets_no_defaults(bundle):
    root = bundle / "rootfs"
    (root / "dev").mkdir()
    config = _config([{"destination": "/dev", "source": "/dev", "options": ["rbind"]}])
    rec = Rec(str(root))
    rootfs.setup_dev(rec, config, str(root), terminal=False)
    assert _calls(rec, "mknod") == [] and list((root / "dev").iterdir()) == []


# ---------------------------------------------------------------- after pivot_root

def test_pivot_sequence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # pivot chdirs for real; put the test's cwd back afterwards
    rec = Rec()
    rootfs.pivot(rec, str(tmp_path))
    assert rec.log == [("pivot_root", (".", ".")),
                       ("mount", (None, ".", None, MS_SLAVE | MS_REC, None)),
                       ("umount2", (".", MNT_DETACH))]
    rec = Rec()
    rootfs.pivot(rec, str(tmp_path), no_pivot=True)
    assert rec.log == [("mount", (str(tmp_path), "/", None, MS_MOVE, None)), ("chroot", (".",))]


def test_mask_paths(tmp_path):
    """Host paths with root="/": a file gets the verified /dev/null, a dir a read-only tmpfs."""
    config = _config(maskedPaths=["/proc/version", "/proc/sys", f"/nonexistent-{uuid.uuid4().hex}",
                                  "/proc/cmdline"])
    rec = Rec()
    rootfs.mask_paths(rec, config)
    assert rec.log == [("mount", ("fd:/dev/null", "/proc/version", None, MS_BIND, None)),
                       ("mount", ("tmpfs", "/proc/sys", "tmpfs", MS_RDONLY, None)),
                       ("mount", ("fd:/dev/null", "/proc/cmdline", None, MS_BIND, None))]


@pytest.mark.parametrize("fake", ["symlink", "file"])
def test_mask_paths_refuses_fake_dev_null(tmp_path, fake):
    """S10: /dev/null replaced by a symlink (to a procfs file, say) must not be bound."""
    (tmp_path / "dev").mkdir()
    (tmp_path / "secret").write_text("x")
    if fake == "symlink":
        (tmp_path / "dev" / "null").symlink_to("/dev/null")
    else:
        (tmp_path / "dev" / "null").write_text("")
    rec = Rec()
    with pytest.raises((PermissionError, OSError), match="null"):
        rootfs.mask_paths(rec, _config(maskedPaths=["/secret"]), root=str(tmp_path))
    assert rec.log == []


def test_readonly_paths(tmp_path):
    (tmp_path / "proc" / "sys").mkdir(parents=True)
    config = _config(readonlyPaths=["/proc/sys", "/proc/missing"])
    rec = Rec()
    rootfs.readonly_paths(rec, config, root=str(tmp_path))
    p = str(tmp_path / "proc" / "sys")
    assert rec.log == [("mount", (p, p, None, MS_BIND | MS_REC, None)),
                       ("mount", (None, p, None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags(p), None))]


def test_finish_root():
    rec = Rec()
    rootfs.finish_root(rec, {"root": {"path": "r", "readonly": True},
                             "linux": {"rootfsPropagation": "rshared"}})
    assert rec.log == [("mount", (None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags("/"), None)),
                       ("mount", (None, "/", None, MS_SHARED | MS_REC, None))]
    rec = Rec()
    rootfs.finish_root(rec, {"root": {"path": "r"}})
    assert rec.log == []


def test_set_hostname():
    rec = Rec()
    rootfs.set_hostname(rec, {"hostname": "box", "domainname": "lab"})
    assert rec.log == [("sethostname", ("box",)), ("setdomainname", ("lab",))]


class _Proc:
    """Stands in for a mrunc.procfs.Proc: records what would be written where."""

    def __init__(self):
        self.writes = []

    def write(self, sys, rel, data, what):
        self.writes.append((rel, data, what))


def test_apply_sysctl_writes_below_the_procfs_handle():
    """Each key becomes a path below init's private procfs handle ("/" in a key is a "." in a
    name, as in sysctl(8)); how that handle resolves it is tests/unit/test_procfs.py's."""
    proc = _Proc()
    rootfs.apply_sysctl(Rec(), _config(sysctl={"net.ipv4.ip_forward": "1",
                                              "net.ipv4.conf.eth0/100.forwarding": "0"}), proc)
    assert proc.writes == [
        ("sys/net/ipv4/ip_forward", "1", "linux.sysctl net.ipv4.ip_forward"),
        ("sys/net/ipv4/conf/eth0.100/forwarding", "0", "linux.sysctl net.ipv4.conf.eth0/100.forwarding")]


def test_apply_sysctl_refuses_non_procfs(tmp_path):
    """S8: a fake /proc in the image is never where a sysctl goes: a handle on it is refused."""
    from mrunc.procfs import Proc
    d = tmp_path / "proc" / "sys" / "net" / "ipv4"
    d.mkdir(parents=True)
    (d / "ip_forward").write_text("0")
    with pytest.raises(PermissionError, match="not the root of a proc filesystem"):
        Proc.at(str(tmp_path / "proc"))
    assert (d / "ip_forward").read_text() == "0"


def test_bind_console(tmp_path):
    master, slave = os.openpty()
    try:
        (tmp_path / "dev").mkdir()
        (tmp_path / "dev" / "console").write_text("")
        rec = Rec()
        rootfs.bind_console(rec, slave, root=str(tmp_path))
        assert rec.log == [("mount", ("fd:" + os.ttyname(slave), f"fd:{tmp_path}/dev/console",
                                      None, MS_BIND, None))]
        (tmp_path / "dev" / "console").unlink()
        (tmp_path / "dev" / "console").symlink_to("/etc/passwd")
        with pytest.raises(OSError):
            rootfs.bind_console(Rec(), slave, root=str(tmp_path))
        null = os.open("/dev/null", os.O_RDONLY)
        with pytest.raises(OSError, match="not a terminal"):
            rootfs.bind_console(Rec(), null, root=str(tmp_path))
        os.close(null)
    finally:
        os.close(master)
        os.close(slave)


# ---------------------------------------------------------------- cgroup phase

_CG = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
       "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
_CG_FLAGS = MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY


def test_cgroup_v1_layout(tmp_path):
    config = _config([_CG], namespaces=[{"type": "cgroup"}])
    hier = [("cpu,cpuacct", "cpu,cpuacct"), ("memory", "memory"), ("systemd", "name=systemd")]
    rec = Rec()
    rootfs.mount_cgroup_entries(rec, config, "v1", hier, root=str(tmp_path))
    dest = str(tmp_path / "sys" / "fs" / "cgroup")
    assert rec.log == [
        ("mount", ("tmpfs", dest, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")),
        ("mount", ("cgroup", f"{dest}/cpu,cpuacct", "cgroup", _CG_FLAGS, "cpu,cpuacct")),
        ("mount", ("cgroup", f"{dest}/memory", "cgroup", _CG_FLAGS, "memory")),
        ("mount", ("cgroup", f"{dest}/systemd", "cgroup", _CG_FLAGS, "name=systemd")),
    ]  # the tmpfs itself stays writable, as runc leaves it
    assert os.readlink(f"{dest}/cpu") == "cpu,cpuacct" and os.readlink(f"{dest}/cpuacct") == "cpu,cpuacct"


def test_cgroup_v2_and_readonly_without_cgroupns(tmp_path):
    rw = dict(_CG, type="cgroup2", options=["nosuid", "nodev", "noexec"])
    rec = Rec()
    rootfs.mount_cgroup_entries(rec, _config([rw], namespaces=[{"type": "cgroup"}]), "v2", root=str(tmp_path))
    dest = str(tmp_path / "sys" / "fs" / "cgroup")
    assert rec.log == [("mount", ("cgroup2", dest, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, None))]
    rec = Rec()  # S15: no cgroup namespace -> the host's tree, read-only whatever the entry says
    rootfs.mount_cgroup_entries(rec, _config([rw]), "v2", root=str(tmp_path))
    assert rec.log == [("mount", ("cgroup2", dest, "cgroup2",
                                  MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, None))]


def test_cgroup_entries_skip_other_mounts(tmp_path):
    config = _default_config()
    rec = Rec()
    rootfs.mount_cgroup_entries(rec, config, "v2", root=str(tmp_path))
    assert [a[2] for a in _calls(rec)] == ["cgroup2"]


class _TreeRec(Rec):
    """Rec whose fsmount and open_tree hand back real fds (a directory standing in for the new
    tmpfs, an O_PATH fd of the source), so what init makes by name in them is made for real."""

    def __init__(self, root, tmpfs, fail=None):
        super().__init__(root, fail)
        self.tmpfs = tmpfs

    def __getattribute__(self, name):
        if name in ("fsmount", "open_tree"):    # ours, not the recording fake's
            return object.__getattribute__(self, name)
        return super().__getattribute__(name)

    def fsmount(self, fstype, attrs=0, options=()):
        self._rec("fsmount", fstype, attrs, ",".join(f"{k}={v}" for k, v in options))
        return os.open(self.tmpfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def open_tree(self, path, recursive=False):
        self._rec("open_tree", path, recursive)
        return os.open(path, os.O_PATH | os.O_CLOEXEC)


def _cgroup_dirs(tmp_path):
    dirs = []
    for name in ("cpu,cpuacct", "memory"):
        (tmp_path / "host" / name / "c1").mkdir(parents=True)
        dirs.append((name, str(tmp_path / "host" / name / "c1")))
    return dirs


def test_bind_cgroup_entries_v1_in_a_tmpfs_held_by_its_fd(bundle, tmp_path):
    """Without a cgroup namespace on cgroup v1: a tmpfs made with fsmount, attached at the
    destination (the one name looked up in the rootfs), then each hierarchy's directory bound
    in it by name in the tmpfs's fd — read-only set on the copy before it is attached — and the
    comount links. Nothing is looked up in the rootfs for the hierarchies."""
    from mrunc.linux import (MOUNT_ATTR__ATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME,
                             MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW,
                             MOUNT_ATTR_RDONLY)
    root, tmpfs = bundle / "rootfs", tmp_path / "tmpfs"
    tmpfs.mkdir()
    dirs = _cgroup_dirs(tmp_path)
    rec = _TreeRec(str(root), str(tmpfs))
    rootfs.bind_cgroup_entries(rec, _config([_CG]), str(root), dirs)
    ro = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC
    clr = MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME | MOUNT_ATTR_NOSYMFOLLOW
    expect = [("fsmount", ("tmpfs", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                           "source=tmpfs,mode=755")),
              ("move_mount", ("fd", "fd:/sys/fs/cgroup", "tmpfs"))]
    for name, host in dirs:  # (the fake drops dir_fd=: the target is a name in the tmpfs fd)
        expect += [("open_tree", (host, True)), ("mount_setattr", ("fd", ro, clr, host)),
                   ("move_mount", ("fd", name, host))]
    assert [(n, ("fd",) + a[1:] if n in ("move_mount", "mount_setattr") else a)
            for n, a in rec.log] == expect
    assert sorted(os.listdir(tmpfs)) == ["cpu", "cpu,cpuacct", "cpuacct", "memory"]
    assert os.readlink(tmpfs / "cpu") == "cpu,cpuacct"
    assert (root / "sys" / "fs" / "cgroup").is_dir() and not os.listdir(root / "sys" / "fs" / "cgroup")


def test_bind_cgroup_entries_v1_without_fsmount(bundle, tmp_path):
    """A kernel without fsmount (ENOSYS): the same mounts, as mounts[] entries in the rootfs."""
    root = bundle / "rootfs"
    dirs = _cgroup_dirs(tmp_path)
    rec = _TreeRec(str(root), str(tmp_path), fail={"fsmount": OSError(errno.ENOSYS, "no")})
    rootfs.bind_cgroup_entries(rec, _config([_CG]), str(root), dirs)
    assert [(n, a[1]) for n, a in rec.log if n in ("mount", "move_mount")] == [
        ("mount", "fd:/sys/fs/cgroup"),
        ("move_mount", "fd:/sys/fs/cgroup/cpu,cpuacct"), ("move_mount", "fd:/sys/fs/cgroup/memory")]
    assert os.readlink(root / "sys" / "fs" / "cgroup" / "cpu") == "cpu,cpuacct"


def test_bind_cgroup_entries_v1_error_names_the_entry(bundle, tmp_path):
    """A hierarchy's directory gone (the runtime's cgroup removed meanwhile): one line naming
    the mounts[] entry and the source; the tmpfs's fd is closed."""
    (tmp_path / "tmpfs").mkdir()
    dirs = [("memory", str(tmp_path / "gone"))]
    with pytest.raises(FileNotFoundError, match=r"^\[Errno 2\] mounts\[0\] /sys/fs/cgroup: "
                                                r"/sys/fs/cgroup: bind source .*/gone: no such"):
        rootfs.bind_cgroup_entries(_TreeRec(str(bundle / "rootfs"), str(tmp_path / "tmpfs")),
                                   _config([_CG]), str(bundle / "rootfs"), dirs)
