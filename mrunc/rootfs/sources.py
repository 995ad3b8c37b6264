"""Where a bind mount comes from: a source opened by whoever can reach it, mounted from its fd.

A bind mount has two ends. The target is inside the rootfs, and init looks it up itself (inroot).
The source is a path on the host, and with a user namespace init is the wrong process to look it
up: it runs as the container's root, which is some host uid like 100000. A source under a
directory only host root may enter (mode 0700 or 0000) is out of its reach — mount(2) fails with
EACCES, although the runtime that was asked to mount it could read it. runc and crun succeed.

So the runtime opens the source, and init mounts *from the fd*. Which process opens it matters:

  * Not the runtime in the host's mount namespace. An fd opened there names a mount of the
    host's namespace, and mount(2) refuses to bind from a mount of another namespace (EINVAL).
    open_tree(OPEN_TREE_CLONE) there would work, but its copy carries none of the locks the
    kernel puts on mounts a user namespace inherits: the container's root could remount a
    read-only host mount read-write, or unmount a submount of an rbind to see what it hides.
  * A helper of the runtime that joins init's mount namespace (mrunc.process.sources). It has
    the runtime's credentials, and the mounts it sees are the container's copies — locked. It
    opens each source when init asks for it, in the order of mounts[], so an entry still sees
    what the entries before it mounted, exactly as when init did it alone.

The helper uses open_tree(OPEN_TREE_CLONE, AT_RECURSIVE for rbind): the copy is made by the
process that can reach the source and comes to init as a detached mount ("tree"), which init
attaches with move_mount. That is also where idmapped mounts will hook in: mount_setattr on the
detached copy before it is attached. On a kernel without open_tree (before 5.2) the helper
sends an O_PATH fd ("path") instead, and init binds it through /proc/self/fd/N.

Without a user namespace (or with a rootless runtime, which reaches no more than the container's
root), init opens each source itself, O_PATH, and binds it the same way. The cgroup directories
it binds (bind_cgroup_entries) it opens itself too — the runtime made them, in a cgroup
filesystem whose directories are open to all — with open_tree, as the helper does: the copy
gets its read-only flag before it is attached (mount_setattr). The path is looked up
once: the checks (file or directory, a procfs for /proc) and the mount act on the same inode.
The fds are close-on-exec and closed as soon as the mount is made: an fd of a host file in the
container's process would be a way out of its root.
"""
import errno
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)
import _stat as stat  # the C module under `stat`, as posix is under os

from .. import linux
from ..linux import MS_BIND, MS_REC
from .inroot import fdpath


class BindSource:
    """An open bind source: `fd`, and `how` it becomes a mount — "tree" (a detached copy from
    open_tree, attached with move_mount) or "path" (an O_PATH fd, bound with mount(2))."""

    def __init__(self, fd, how, path):
        self.fd, self.how, self.path = fd, how, path

    def is_dir(self):
        return stat.S_ISDIR(os.fstat(self.fd).st_mode)

    def on_procfs(self):
        return linux.fstatfs_type(self.fd) == linux.PROC_SUPER_MAGIC

    def attach(self, sys, target, flags):
        """Mount it on `target`. A bind ignores the other flags: ro, nosuid... are a remount."""
        if self.how == "tree":
            sys.move_mount(self.fd, target, self.path)
        else:
            sys.mount(fdpath(self.fd), target, None, flags & (MS_BIND | MS_REC))

    def close(self):
        os.close(self.fd)


def open_source(sys, path, recursive=False, detached=False):
    """Open bind source `path`: an open_tree copy if `detached` (and the kernel has it), else
    an O_PATH fd. Both follow symlinks, as mount(2) does with a source path."""
    try:
        if detached:
            try:
                return BindSource(sys.open_tree(path, recursive), "tree", path)
            except OSError as e:
                if e.errno != errno.ENOSYS:
                    raise
        return BindSource(os.open(path, os.O_PATH | os.O_CLOEXEC), "path", path)
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"bind source {path}: no such file or directory",
                                path) from None


def opener(sys, detached=False):
    """open_source for mount_entries when init opens its sources itself."""
    return lambda path, recursive: open_source(sys, path, recursive, detached)
