"""Phase "pivot_root": the rootfs becomes "/", then what must be done from inside it."""
import errno
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)
import _stat as stat  # the C module under `stat`, as posix is under os

from .. import paths
from ..linux import MNT_DETACH, MS_BIND, MS_MOVE, MS_RDONLY, MS_REC, MS_REMOUNT, MS_SLAVE
from ..spec.mountopts import PROPAGATION_FLAGS
from .inroot import fdpath
from .mounts import kept_flags


def pivot(sys, rootfs, no_pivot=False):
    """Make the rootfs our "/" and drop every trace of the host's tree.

    Why pivot_root and not chroot: chroot only changes where path lookups start for this process;
    the host's tree stays mounted in our namespace, and a root process that chroots again into a
    subdirectory and climbs `..` from its (now outside) cwd walks straight back to the host's /.
    pivot_root changes the root *mount* of the whole mount namespace, and once the old root is
    unmounted there is no path left that leads to it.

    runc's trick, no put_old directory needed: pivot_root(".", ".") from inside the rootfs stacks
    the old root on top of the new one, at "/". We step into the old root by the fd we opened
    before (the kernel does not promise where "." is after the call), make it a slave so that the
    unmount cannot propagate to the host (if anything there was still shared with it), and detach
    it (MNT_DETACH: lazily, processes of the host using it keep it alive, we lose it at once).

    no_pivot (--no-pivot, for hosts whose / is an initramfs, where pivot_root is EINVAL): move the
    rootfs mount over "/" and chroot into it. Weaker — the old root is still under it.
    """
    if no_pivot:
        os.chdir(rootfs)
        sys.mount(rootfs, "/", None, MS_MOVE)
        sys.chroot(".")
        os.chdir("/")
        return
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.chdir(rootfs)
        sys.pivot_root(".", ".")
        os.fchdir(old_root)
        sys.mount(None, ".", None, MS_SLAVE | MS_REC)
        sys.umount2(".", MNT_DETACH)
    finally:
        os.close(old_root)  # an fd of the host's / must not reach the container (S3)
    os.chdir("/")


def _at(root, path):
    return paths.join(root, path.lstrip("/")) if root != "/" else path


def _exists(path):
    """stat, following symlinks: after pivot_root a symlink can only lead inside the container."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def mask_paths(sys, config, root="/"):
    """linux.maskedPaths: make each path show nothing (/proc/kcore, /sys/firmware...).

    A directory gets a read-only empty tmpfs over it. A file gets /dev/null bound over it — but
    only a /dev/null we opened without following a symlink and checked to be the null device
    (char 1:3): a /dev/null replaced by a symlink to /proc/sys/kernel/core_pattern would bind
    that file, writable, over the path we meant to hide (S10). Missing paths are skipped.
    `root` is "/" after pivot_root (tests pass a directory).
    """
    null_fd = None
    try:
        for where, p in _listed(config, "maskedPaths"):
            with _named(where, p):
                path = _at(root, p)
                st = _exists(path)
                if st is None:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    sys.mount("tmpfs", path, "tmpfs", MS_RDONLY)
                    continue
                if null_fd is None:
                    null_fd = _open_null(root)
                sys.mount(fdpath(null_fd), path, None, MS_BIND)
    finally:
        if null_fd is not None:
            os.close(null_fd)


def _listed(config, key):
    """(JSON path, container path) of each entry of linux.<key>."""
    paths = (config.get("linux") or {}).get(key) or []
    return [(f"linux.{key}[{i}]", p) for i, p in enumerate(paths)]


class _named:
    """An OSError inside names the entry it came from (`linux.maskedPaths[2] /loop: Too many
    levels of symbolic links`): a path alone does not say which field to fix. (A class, not
    contextlib: create imports nothing it can do without.)"""

    def __init__(self, where, path):
        self.where, self.path = where, path

    def __enter__(self):
        return self

    def __exit__(self, typ, e, tb):
        if isinstance(e, OSError):
            raise OSError(e.errno, f"{self.where} {self.path}: {e.strerror}", self.path) from None
        return False


def _open_null(root):
    fd = os.open(_at(root, "/dev/null"), os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise PermissionError(errno.EPERM, "maskedPaths: /dev/null is not the null device (c 1:3)",
                              "/dev/null")
    return fd


def readonly_paths(sys, config, root="/"):
    """linux.readonlyPaths: bind each path on itself, then remount that bind read-only.

    Read-only is a property of a *mount*, not of a file: to make one file or subtree read-only we
    first make it a mount of its own (the bind), then flip that mount's flag. The remount keeps
    the mount's nosuid/nodev/noexec (kept_flags): in a user namespace dropping them is EPERM.
    Missing paths are skipped.
    """
    for where, p in _listed(config, "readonlyPaths"):
        with _named(where, p):
            path = _at(root, p)
            if _exists(path) is None:
                continue
            sys.mount(path, path, None, MS_BIND | MS_REC)
            sys.mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags(path))


def finish_root(sys, config):
    """Last of all, once nothing more is to be made in it: root.readonly, then rootfsPropagation.

    "/" is the rootfs bind mount since pivot_root, so a bind remount flips it read-only; mounts
    on top of it (/proc, /dev, /tmp...) keep their own flags.
    """
    if (config.get("root") or {}).get("readonly"):
        sys.mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags("/"))
    prop = (config.get("linux") or {}).get("rootfsPropagation")
    if prop:
        sys.mount(None, "/", None, PROPAGATION_FLAGS[prop])


def set_hostname(sys, config):
    """hostname and domainname live in the UTS namespace: these change the container's only."""
    if config.get("hostname"):
        sys.sethostname(config["hostname"])
    if config.get("domainname"):
        sys.setdomainname(config["domainname"])


def apply_sysctl(sys, config, proc):
    """linux.sysctl: each key is a file of /proc/sys ("net.ipv4.ip_forward" -> net/ipv4/ip_forward;
    a "/" in a key stands for a "." in a name, as in sysctl(8)).

    Written below `proc`, init's private procfs handle (mrunc.procfs), never through the
    container's /proc: an image whose /proc is a directory or a symlink, or a racing bind mount
    over the file, would take or redirect our write (S8, S12). The file a key names belongs to the
    namespace of the process that opens it — ours — and the spec checks allowed only keys of
    namespaces the container has of its own.
    """
    for key, value in ((config.get("linux") or {}).get("sysctl") or {}).items():
        proc.write(sys, "sys/" + key.translate(str.maketrans("./", "/.")), value, f"linux.sysctl {key}")


def enter_by_chroot(sys, rootfs):
    """No mount namespace of our own: the rootfs becomes "/" for this process (and its children)
    only, with chroot — what runc does in this case.

    pivot_root changes the root of the whole mount namespace: every process of the host (or of
    the container whose namespace we joined) would find the rootfs as its "/", and detaching the
    old root would unmount the host's tree for all of them. chroot changes nothing but our own
    root: the mount table stays exactly as it was. It is also weaker — the host's tree is still
    mounted around the rootfs, and a process with CAP_SYS_CHROOT can climb out of a chroot. That
    is what sharing a mount namespace means: drop CAP_SYS_CHROOT (or keep the mount namespace).
    Entered through an fd, so the rootfs cannot be swapped between the check and the chroot.
    """
    fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fchdir(fd)
    finally:
        os.close(fd)
    sys.chroot(".")
    os.chdir("/")
