"""/dev: the device nodes every program expects, the ones config.json asks for, and the links."""
import errno
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)
import _stat as stat  # the C module under `stat`, as posix is under os

from .. import paths
from ..linux import MS_BIND
from .inroot import check_under, clean, fdpath, lstat_at, open_component, open_in_root, open_root

# The spec's default devices (L8): name, major, minor. All 0666, owned by root.
DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                   ("urandom", 1, 9), ("tty", 5, 0))
# L64 and runc: what /proc/self/fd is to a shell's `2>&1`, /dev/stdin is to `cat /dev/stdin`.
# /dev/ptmx must be the one of the container's own devpts instance (newinstance), not the host's.
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx"))
_KINDS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def setup_dev(sys, config, rootfs, terminal):
    """Device nodes, then /dev links, then the /dev/console placeholder (before pivot_root).

    Unless /dev is a bind mount from elsewhere (then it is complete already), the default devices
    are made first, then linux.devices[] (a config entry for the same path wins). Nodes are made
    with mknod relative to an fd of their directory, and /dev itself must not be a symlink (S13):
    mknod through a symlink would make a device node on the host. In a user namespace mknod fails
    with EPERM, so — like runc — the host's node is bind-mounted on an empty file instead; once
    the kernel has said so there, the other devices are bound without asking again (it would say
    the same: CAP_MKNOD counts only in the host's user namespace; ≈ 20 µs each, a failed call and
    its exception). Not outside one, where a device cgroup may refuse one device and not another.
    """
    devices = (config.get("linux") or {}).get("devices") or []
    nodes = []
    ours = _dev_is_ours(config)
    if ours:
        asked = {clean(d["path"]) for d in devices}
        last = _last_entries(config)
        nodes = [(_default_where(last, f"/dev/{n}"),
                  {"type": "c", "path": f"/dev/{n}", "major": ma, "minor": mi, "fileMode": 0o666})
                 for n, ma, mi in DEFAULT_DEVICES if f"/dev/{n}" not in asked]
    nodes += [(f"linux.devices[{i}]", d) for i, d in enumerate(devices)]
    root_fd = open_root(rootfs)
    try:
        st = lstat_at(root_fd, "dev")
        if st and stat.S_ISLNK(st.st_mode):
            raise PermissionError(errno.EPERM, "/dev in the rootfs is a symlink: refused", "/dev")
        old = sys.umask(0)  # fileMode is the mode the node gets, umask or not
        dirs = {}  # parent -> the fd it resolved to: /dev once for the six defaults, not six times
        # a user namespace, where mknod refused a device node (EPERM): the others are bound at once
        refused = [] if _in_user_namespace(config) else None
        try:
            for where, d in nodes:
                _make_node(sys, root_fd, rootfs, where, d, dirs, refused)
            dev_fd = _node_dir(root_fd, rootfs, "/dev", dirs)
            del dirs["/dev"]  # ours to close below
        finally:
            sys.umask(old)
            for fd in dirs.values():
                os.close(fd)
    finally:
        os.close(root_fd)
    try:
        if ours:
            _make_links(dev_fd)
        if terminal:
            _make_console_file(dev_fd)
    finally:
        os.close(dev_fd)


def _in_user_namespace(config):
    return any(n.get("type") == "user" for n in (config.get("linux") or {}).get("namespaces") or [])


def _last_entries(config):
    """{destination: index of the last mounts[] entry there} (cleaned once, not per device)."""
    return {clean(m["destination"]): i for i, m in enumerate(config.get("mounts") or [])}


def _default_where(last, path):
    """Who to blame when a default device's place is taken: the last mounts[] entry there."""
    if path in last:
        return f"mounts[{last[path]}] over default device {path}"
    return f"default device {path}"


def _dev_is_ours(config):
    """True unless /dev comes from a bind mount (as runc decides): the default config mounts a tmpfs."""
    for m in config.get("mounts") or []:
        if clean(m["destination"]) == "/dev":
            return not {"bind", "rbind"} & set(m.get("options") or [])
    return True


def _node_dir(root_fd, rootfs, parent, dirs):
    """fd of a node's directory, resolved inside the rootfs the first time; each later use
    checks again that the directory we hold is still under the rootfs (moved out meanwhile?)."""
    if parent in dirs:
        check_under(dirs[parent], rootfs, parent)
    else:
        dirs[parent] = open_in_root(root_fd, rootfs, parent, create="dir")
    return dirs[parent]


def _make_node(sys, root_fd, rootfs, where, d, dirs, refused):
    path = clean(d["path"])
    parent, name = path.rsplit("/", 1)
    kind = _KINDS[d["type"]]
    rdev = 0 if kind == stat.S_IFIFO else os.makedev(d["major"], d["minor"])
    mode = kind | ((0o666 if d.get("fileMode") is None else d["fileMode"]) & 0o7777)
    dir_fd = _node_dir(root_fd, rootfs, parent or "/", dirs)
    # Made first, looked at only if something is there already (EEXIST): mknod and O_EXCL never
    # follow a symlink and never replace a file, so a prior lstat would only tell us the same.
    try:
        if refused and kind != stat.S_IFIFO:    # (a fifo needs no privilege)
            return _bind_host_node(sys, dir_fd, name, path)
        try:
            sys.mknod(f"{fdpath(dir_fd)}/{name}", mode, rdev)  # mknod never follows a symlink
        except PermissionError:
            if refused is not None and kind != stat.S_IFIFO:
                refused.append(path)
            return _bind_host_node(sys, dir_fd, name, path)
    except FileExistsError:
        st = lstat_at(dir_fd, name)
    else:
        if d.get("uid") is not None or d.get("gid") is not None:
            uid, gid = d.get("uid", 0) or 0, d.get("gid", 0) or 0
            sys.chown(f"{fdpath(dir_fd)}/{name}", uid, gid)
        return None
    # The spec (L7): a file already there that is not this device is an error.
    if st and (stat.S_IFMT(st.st_mode) != kind or (kind != stat.S_IFIFO and st.st_rdev != rdev)):
        what = "fifo" if kind == stat.S_IFIFO else f"{d['type']} {d['major']}:{d['minor']}"
        raise FileExistsError(errno.EEXIST, f"{where}: {path} exists and is not {what}", path)
    return None


def _bind_host_node(sys, dir_fd, name, path):
    """User namespace: an empty file, with the host's device node bound on it. FileExistsError
    if the name is taken (the caller checks what is there): the file is made with O_EXCL, so the
    fd is the regular file we just made, never a symlink or a node found there — no fstat."""
    fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY | os.O_CLOEXEC, 0o644,
                 dir_fd=dir_fd)
    try:
        sys.mount(path, fdpath(fd), None, MS_BIND)
    finally:
        os.close(fd)


def _make_links(dev_fd):
    links = DEV_LINKS
    if paths.exists("/proc/kcore"):  # the host's /proc, as runc checks it
        links += (("core", "/proc/kcore"),)
    for name, target in links:
        try:
            os.symlink(target, name, dir_fd=dev_fd)
        except FileExistsError:
            st = lstat_at(dev_fd, name)
            if name == "ptmx" and st and not stat.S_ISLNK(st.st_mode):
                os.unlink(name, dir_fd=dev_fd)  # an image's own ptmx node: the host's devpts
                os.symlink(target, name, dir_fd=dev_fd)


def _make_console_file(dev_fd):
    """The placeholder bind_console mounts the pty on; a symlink there is refused (S11)."""
    fd = open_component(dev_fd, "console", "file")
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
            raise PermissionError(errno.EPERM, "/dev/console exists and is not a file or a device",
                                  "/dev/console")
    finally:
        os.close(fd)


def bind_console(sys, pty_slave_fd, root="/"):
    """/dev/console becomes the container's pty (after pivot_root, terminal: true).

    Bound from the fd init already holds, never from a /dev/pts/N path: a path can be swapped for a
    symlink between our check and the mount, the fd cannot (S11).
    """
    if not os.isatty(pty_slave_fd):
        raise OSError(errno.ENOTTY, f"fd {pty_slave_fd} is not a terminal", "/dev/console")
    fd = os.open(paths.join(root, "dev/console"), os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
            raise PermissionError(errno.EPERM, "/dev/console is not a file or a device: refused",
                                  "/dev/console")
        sys.mount(fdpath(pty_slave_fd), fdpath(fd), None, MS_BIND)
    finally:
        os.close(fd)
