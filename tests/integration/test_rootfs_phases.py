"""The rootfs phases for real, on a busybox rootfs, in a forked child's own namespaces.

The child unshares mount/uts/ipc/net/pid namespaces and forks PID 1 of the new PID namespace,
which runs the phases in init's order, looks around from inside the new root, and sends what it
saw home as JSON through a pipe. The assertions are made here, in the test process. Nothing is
ever mounted in the test's own mount namespace; the last test checks the host saw nothing.
"""
import errno
import fcntl
import json
import os
import shutil
import stat
import traceback

import pytest

from mrunc import linux, rootfs
from mrunc.linux import Syscalls
from mrunc.procfs import Proc

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts, namespaces)")]

BUSYBOX = "/bin/busybox"


def _host_mountinfo():
    with open("/proc/self/mountinfo") as f:
        return f.read().splitlines()


def _busybox_bundle(tmp_path):
    if not os.path.isfile(BUSYBOX):
        pytest.skip("busybox missing: apt-get install busybox-static")
    root = tmp_path / "rootfs"
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "mnt"):
        (root / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    (root / "bin" / "sh").symlink_to("busybox")
    (root / "escape1").symlink_to("/")                 # S5: parents that point out of the rootfs
    (root / "escape2").symlink_to("../../../../../..")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "hello").write_text("hello from the host\n")
    (tmp_path / "hostfile").write_text("a file from the host\n")
    return tmp_path


def _config(tmp_path):
    from mrunc.spec import default_config
    config = default_config()
    config["hostname"], config["domainname"] = "mrunc-test", "lab"
    config["mounts"] += [
        {"destination": "/mnt/data", "type": "none", "source": "data",
         "options": ["rbind", "ro", "nosuid", "rprivate"]},
        {"destination": "/etc/hostfile", "type": "none", "source": str(tmp_path / "hostfile"),
         "options": ["bind", "ro"]},
        {"destination": "/escape1/mnt1", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
        {"destination": "/escape2/mnt2", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
    ]
    linux_cfg = config["linux"]
    linux_cfg["devices"] = [
        {"type": "c", "path": "/dev/mydev", "major": 1, "minor": 5, "fileMode": 432,
         "uid": 1000, "gid": 1001},
        {"type": "p", "path": "/dev/myfifo", "fileMode": 420},
    ]
    linux_cfg["sysctl"] = {"net.ipv4.ip_forward": "1"}
    linux_cfg["namespaces"].append({"type": "cgroup"})
    return config


def _cgroup_layout():
    """What the parent hands init: the host's layout and its v1 hierarchies (read before pivot)."""
    fd = os.open("/sys/fs/cgroup", os.O_PATH)
    try:
        if linux.fstatfs_type(fd) == 0x63677270:  # CGROUP2_SUPER_MAGIC: pure v2
            return "v2", []
    finally:
        os.close(fd)
    hier = []
    for line in _host_mountinfo():
        pre, _, post = line.partition(" - ")
        fstype, _, opts = post.split()[:3]
        if fstype == "cgroup":
            ctrls = [o for o in opts.split(",") if o not in ("rw", "ro", "clone_children")]
            hier.append((os.path.basename(pre.split()[4]), ",".join(ctrls)))
    return "v1", hier


def _in_container(fn):
    """Run fn() as PID 1 of new mount/uts/ipc/net/pid namespaces; return what it returned."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            Syscalls().unshare(linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC
                               | linux.CLONE_NEWNET | linux.CLONE_NEWPID)
            init = os.fork()
            if init == 0:
                try:
                    out = {"ok": fn()}
                except BaseException as e:  # noqa: BLE001
                    out = {"error": f"{type(e).__name__}: {e}", "tb": traceback.format_exc()}
                data = json.dumps(out).encode()
                while data:
                    data = data[os.write(w, data):]
                os._exit(0)
            os.close(w)
            code = os.waitstatus_to_exitcode(os.waitpid(init, 0)[1])
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    out = json.loads(b"".join(chunks) or b'{"error": "child sent nothing"}')
    assert "error" not in out, out.get("tb") or out["error"]
    return out["ok"]


def _mounts(mountinfo):
    """mount point -> (fstype, per-mount options, optional fields)."""
    out = {}
    for line in mountinfo.splitlines():
        pre, _, post = line.partition(" - ")
        f = pre.split()
        out[f[4]] = (post.split()[0], f[5].split(","), f[6:])
    return out


def _cgroup_mounts():
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return ["/sys/fs/cgroup"]
    return [os.path.join("/sys/fs/cgroup", n) for n in os.listdir("/sys/fs/cgroup")
            if not os.path.islink(os.path.join("/sys/fs/cgroup", n))]


def _errno_of(fn):
    try:
        fn()
    except OSError as e:
        return errno.errorcode.get(e.errno, e.errno)
    return None


def _write(path, text="x"):
    with open(path, "w") as f:
        f.write(text)


def _container_pty():
    """As init does it: a pty of the container's own devpts (a host one cannot be bound any more:
    its mount left our namespace with the old root)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, 0x40045431, b"\0\0\0\0")  # TIOCSPTLCK 0: unlock
    return master, fcntl.ioctl(master, 0x5441, os.O_RDWR | os.O_NOCTTY)  # TIOCGPTPEER


def _look_around(config, root_stat, pty_rdev, kcore):
    """Runs inside, after every phase: plain facts for the test to judge."""
    dev = {}
    for name in ("null", "zero", "full", "random", "urandom", "tty", "mydev", "myfifo"):
        st = os.lstat(f"/dev/{name}")
        dev[name] = [stat.S_IFMT(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev),
                     stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid]
    masked = {}
    for p in config["linux"]["maskedPaths"]:
        if os.path.isdir(p):
            masked[p] = ["dir", os.listdir(p)]
        elif os.path.exists(p):
            with open(p, "rb") as f:
                masked[p] = ["file", f.read(64).decode()]
    with open("/mnt/data/hello") as f, open("/etc/hostfile") as g, \
            open("/proc/sys/net/ipv4/ip_forward") as h, open("/proc/sys/kernel/domainname") as d:
        data, hostfile, forward, domain = f.read(), g.read(), h.read().strip(), d.read().strip()
    with open("/proc/self/mountinfo") as f, open("/proc/self/cgroup") as g:
        mountinfo, cgroup = f.read(), g.read()
    st = os.stat("/")
    return {
        "mountinfo": mountinfo, "cgroup_file": cgroup, "cwd": os.getcwd(), "pid": os.getpid(),
        "root_is_rootfs": [st.st_dev, st.st_ino] == root_stat,
        "host_work_visible": os.path.exists("/work") or os.path.exists("/usr/lib"),
        "busybox": os.path.isfile("/bin/busybox"),
        "dev": dev, "masked": masked,
        "links": {n: os.readlink(f"/dev/{n}") for n in ("fd", "stdin", "stdout", "stderr", "ptmx", "core")
                  if os.path.islink(f"/dev/{n}")},
        "kcore": kcore,
        "console_is_pty": os.stat("/dev/console").st_rdev == pty_rdev,
        "hostname": os.uname().nodename, "domainname": domain, "ip_forward": forward,
        "data": data, "hostfile": hostfile,
        "write_root": _errno_of(lambda: _write("/tmp/x")),
        "write_etc": _errno_of(lambda: _write("/etc/new")),
        "write_data": _errno_of(lambda: _write("/mnt/data/new")),
        "write_hostfile": _errno_of(lambda: _write("/etc/hostfile")),
        "write_proc_sys": _errno_of(lambda: _write("/proc/sys/kernel/domainname")),
        "write_dev": _errno_of(lambda: _write("/dev/shm/x")),
        "cgroup_dir": sorted(os.listdir("/sys/fs/cgroup")),
        # on v2 the cgroup2 mount itself; on v1 each hierarchy (the tmpfs holding them stays rw, as in runc)
        "cgroup_ro": all(bool(os.statvfs(d).f_flag & os.ST_RDONLY) for d in _cgroup_mounts()),
    }


def test_all_phases_in_order(tmp_path):
    bundle = _busybox_bundle(tmp_path)
    config = _config(tmp_path)
    layout, hier = _cgroup_layout()
    host_before = _host_mountinfo()
    host_name = os.uname().nodename
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_forward = f.read()

    def phases():
        sys = Syscalls()
        kcore = os.path.exists("/proc/kcore")
        # mount
        proc = Proc.new(sys)
        root = rootfs.prepare_root(sys, config, str(bundle))
        rootfs.mount_entries(sys, config, root, str(bundle))
        rootfs.setup_dev(sys, config, root, terminal=True)
        rootfs.mkdir_in_root(root, "/home/user")
        st = os.stat(root)
        # pivot_root
        rootfs.pivot(sys, root)
        rootfs.set_hostname(sys, config)
        rootfs.apply_sysctl(sys, config, proc)  # before readonly_paths: that makes /proc/sys read-only
        rootfs.mask_paths(sys, config)
        rootfs.readonly_paths(sys, config)
        master, slave = _container_pty()
        rootfs.bind_console(sys, slave)
        # cgroup
        sys.unshare(linux.CLONE_NEWCGROUP)
        rootfs.mount_cgroup_entries(sys, config, layout, hier)
        rootfs.finish_root(sys, config)
        facts = _look_around(config, [st.st_dev, st.st_ino], os.fstat(slave).st_rdev, kcore)
        facts["calls"] = len(sys.log)
        os.close(master)
        proc.close()
        return facts

    got = _in_container(phases)

    mounts = _mounts(got["mountinfo"])
    # "/" is the rootfs, read-only; the old root is gone: every mount point is one we made.
    assert got["root_is_rootfs"] and got["busybox"] and not got["host_work_visible"]
    assert got["cwd"] == "/" and got["pid"] == 1
    assert "ro" in mounts["/"][1]
    assert got["write_root"] == "EROFS" and got["write_etc"] == "EROFS"
    expected = {"/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/mnt/data",
                "/etc/hostfile", "/mnt1", "/mnt2", "/dev/console", "/sys/fs/cgroup"}
    assert expected <= set(mounts)
    for mp in mounts:
        assert (mp in expected or mp.startswith("/proc/") or mp.startswith("/sys/fs/cgroup/")
                or mp.startswith("/sys/firmware")), f"unexpected mount {mp}"
    # mounts[] with their options
    assert mounts["/proc"][0] == "proc"
    assert mounts["/dev"][0] == "tmpfs" and "nosuid" in mounts["/dev"][1]
    assert mounts["/dev/pts"][0] == "devpts" and {"nosuid", "noexec"} <= set(mounts["/dev/pts"][1])
    assert {"nosuid", "nodev", "noexec"} <= set(mounts["/dev/shm"][1])
    assert mounts["/dev/mqueue"][0] == "mqueue"
    assert mounts["/sys"][0] == "sysfs" and "ro" in mounts["/sys"][1]
    assert got["write_dev"] is None  # /dev/shm is its own tmpfs: not frozen by root.readonly
    # binds: read-only, nosuid kept, rprivate (no shared:/master: tag)
    assert {"ro", "nosuid"} <= set(mounts["/mnt/data"][1])
    assert not [x for x in mounts["/mnt/data"][2] if x.startswith(("shared:", "master:"))]
    assert got["data"] == "hello from the host\n" and got["write_data"] == "EROFS"
    assert got["hostfile"] == "a file from the host\n" and got["write_hostfile"] == "EROFS"
    # S5: symlinks to / and ../../.. resolved inside the rootfs
    assert mounts["/mnt1"][0] == "tmpfs" and mounts["/mnt2"][0] == "tmpfs"
    # devices
    C, P = stat.S_IFCHR, stat.S_IFIFO
    assert got["dev"] == {
        "null": [C, 1, 3, 0o666, 0, 0], "zero": [C, 1, 5, 0o666, 0, 0], "full": [C, 1, 7, 0o666, 0, 0],
        "random": [C, 1, 8, 0o666, 0, 0], "urandom": [C, 1, 9, 0o666, 0, 0], "tty": [C, 5, 0, 0o666, 0, 0],
        "mydev": [C, 1, 5, 0o660, 1000, 1001], "myfifo": [P, 0, 0, 0o644, 0, 0],
    }
    links = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}
    if got["kcore"]:
        links["core"] = "/proc/kcore"
    assert got["links"] == links
    assert got["console_is_pty"]
    # masked and read-only paths
    assert got["masked"], "no masked path exists on this kernel?"
    for p, (kind, content) in got["masked"].items():
        assert content in ("", []), p
        assert "ro" in mounts[p][1] or kind == "file", p
    for p in config["linux"]["readonlyPaths"]:
        if p in mounts:
            assert "ro" in mounts[p][1], p
    assert got["write_proc_sys"] == "EROFS"
    # uts, sysctl
    assert (got["hostname"], got["domainname"]) == ("mrunc-test", "lab")
    assert got["ip_forward"] == "1"
    # cgroup: our own cgroup namespace, its root is "/"; read-only
    assert all(line.endswith(":/") for line in got["cgroup_file"].splitlines())
    assert got["cgroup_ro"]
    if layout == "v2":
        assert mounts["/sys/fs/cgroup"][0] == "cgroup2"
    else:
        assert mounts["/sys/fs/cgroup"][0] == "tmpfs"
        for name, _ in hier:
            assert name in got["cgroup_dir"]
            assert mounts[f"/sys/fs/cgroup/{name}"][0] == "cgroup"
            assert "ro" in mounts[f"/sys/fs/cgroup/{name}"][1]

    # S19: the host saw nothing — no mount added under our bundle, none removed, same names.
    host_after = _host_mountinfo()
    assert [line for line in host_after if str(tmp_path) in line] == []
    assert set(host_before) <= set(host_after)
    assert os.uname().nodename == host_name
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host_forward
    assert not os.path.exists("/mnt1") and not os.path.exists("/mnt2")


def test_no_pivot_moves_rootfs_over_root(tmp_path):
    bundle = _busybox_bundle(tmp_path)
    config = {"root": {"path": "rootfs"},
              "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]}
    host_before = _host_mountinfo()

    def phases():
        sys = Syscalls()
        root = rootfs.prepare_root(sys, config, str(bundle))
        rootfs.mount_entries(sys, config, root, str(bundle))
        st = os.stat(root)
        rootfs.pivot(sys, root, no_pivot=True)
        now = os.stat("/")
        with open("/proc/self/mountinfo") as f:
            mi = f.read()
        return {"same": [now.st_dev, now.st_ino] == [st.st_dev, st.st_ino],
                "busybox": os.path.isfile("/bin/busybox"), "usr": os.path.exists("/usr/lib"),
                "mountinfo": mi}

    got = _in_container(phases)
    assert got["same"] and got["busybox"] and not got["usr"]
    assert "/proc" in _mounts(got["mountinfo"])
    assert [line for line in _host_mountinfo() if str(tmp_path) in line] == []
    assert set(host_before) <= set(_host_mountinfo())


def test_dev_null_symlink_refused_for_masking(tmp_path):
    """S10 for real: a /dev/null that is a symlink to a procfs file is never bound over a mask."""
    bundle = _busybox_bundle(tmp_path)
    config = {"root": {"path": "rootfs"},
              "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
              "linux": {"maskedPaths": ["/proc/kcore", "/proc/version"]}}
    os.symlink("/proc/sys/kernel/core_pattern", bundle / "rootfs" / "dev" / "null")

    def phases():
        sys = Syscalls()
        root = rootfs.prepare_root(sys, config, str(bundle))
        rootfs.mount_entries(sys, config, root, str(bundle))
        rootfs.pivot(sys, root)
        try:
            rootfs.mask_paths(sys, config)
        except PermissionError as e:
            return {"refused": str(e), "mounts": [c for c in sys.log if c[0] == "mount"][-1:]}
        return {"refused": None}

    got = _in_container(phases)
    assert got["refused"] and "null device" in got["refused"]
