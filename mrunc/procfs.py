"""Writing to /proc without being fooled: a private procfs handle.

A runtime sets kernel state by writing procfs files: /proc/sys/… (linux.sysctl),
/proc/self/oom_score_adj, /proc/<pid>/uid_map. Written by path, such a file is whatever that path
leads to *now*, in a mount namespace the container's processes may shape: an image can make its
/proc a plain directory or a symlink (S8), and a process sharing a volume can race a bind mount
of /proc/sys/kernel/core_pattern over the file we are about to write (S12, CVE-2025-52881) — and
the runtime writes, with host privileges, into a file it never meant to touch.

So we never look such a path up from "/":
  1. the handle: `fsopen("proc")` + `fsmount` make a new procfs instance attached to no
     directory. No path leads to it: nobody can mount over anything inside it, and no mount
     table changes (it goes away with its fd). It shows the PID namespace of the process that
     made it. Where the kernel refuses (before Linux 5.2, or a user namespace that does not own
     the mount namespace), the handle is /proc itself, opened O_NOFOLLOW and checked to be the
     root of a procfs (statfs magic, inode 1).
  2. every file is opened *below* the handle with openat2 RESOLVE_BENEATH | RESOLVE_NO_XDEV |
     RESOLVE_NO_MAGICLINKS: the lookup cannot leave the handle, cannot cross into another mount
     (a bind mount on the way is EXDEV), cannot jump through /proc/<pid>/fd/N or …/root. Plain
     symlinks inside procfs ("self" -> "1234") are followed. Kernels without openat2 (< 5.6)
     walk component by component with O_NOFOLLOW and check the file is on procfs (fstatfs):
     weaker, a bind mount of another procfs file passes that check.
  3. we write through the fd we opened, never through its name again.
"""
import errno
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)
import _stat as stat  # the C module under `stat`, as posix is under os

from . import linux

_RESOLVE = linux.RESOLVE_BENEATH | linux.RESOLVE_NO_XDEV | linux.RESOLVE_NO_MAGICLINKS
_PROC_ROOT_INO = 1


class Proc:
    """An fd of a procfs root, and files opened below it. Close it when done."""

    def __init__(self, fd, private=False):
        self.fd, self.private = fd, private

    @classmethod
    def new(cls, sys, fallback="/proc"):
        """A private procfs instance if the kernel lets us make one, else `fallback` (checked)."""
        try:
            fd = sys.fsmount("proc", linux.MOUNT_ATTR_NOSUID | linux.MOUNT_ATTR_NODEV |
                             linux.MOUNT_ATTR_NOEXEC)
            if linux.fstatfs_type(fd) == linux.PROC_SUPER_MAGIC:  # (a RecordingSyscalls makes none)
                return cls(fd, private=True)
        except OSError:
            pass
        return cls.at(fallback)

    @classmethod
    def at(cls, path="/proc"):
        """The procfs mounted at `path`: its root, not a symlink to one, not a directory of it."""
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        if linux.fstatfs_type(fd) != linux.PROC_SUPER_MAGIC or os.fstat(fd).st_ino != _PROC_ROOT_INO:
            os.close(fd)
            raise PermissionError(errno.EPERM, f"{path} is not the root of a proc filesystem", path)
        return cls(fd)

    def open(self, rel, flags=os.O_RDONLY):
        """fd of /proc/`rel` (e.g. "sys/net/ipv4/ip_forward", "self/oom_score_adj")."""
        rel = rel.lstrip("/")
        if linux.has_openat2():
            return linux.openat2(self.fd, rel, flags, _RESOLVE)
        return self._walk(rel, flags)

    def _walk(self, rel, flags):
        """No openat2: one component at a time, never through a symlink but the pid ones."""
        d = os.dup(self.fd)
        try:
            parts = [p for p in rel.split("/") if p not in ("", ".")]
            for i, name in enumerate(parts):
                if name == "..":
                    raise PermissionError(errno.EPERM, f"/proc/{rel}: '..' is refused", rel)
                if i == 0 and name == "self":
                    # our pid as *this* procfs numbers it (its PID namespace may not be ours)
                    name = os.readlink("self", dir_fd=d)
                    if not name.isdigit():
                        raise PermissionError(errno.EPERM, f"/proc/self -> {name!r}", rel)
                last = i == len(parts) - 1
                fd = os.open(name, (flags if last else os.O_PATH | os.O_DIRECTORY) |
                             os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=d)
                os.close(d)
                d = fd
            if linux.fstatfs_type(d) != linux.PROC_SUPER_MAGIC:
                raise PermissionError(errno.EPERM, f"/proc/{rel} is not on procfs", rel)
            return d
        except BaseException:
            os.close(d)
            raise

    def write(self, sys, rel, data, what):
        """Write `data` to /proc/`rel`; errors start with `what` (a JSON path, usually)."""
        path = f"/proc/{rel.lstrip('/')}"
        try:
            fd = self.open(rel, os.O_WRONLY)
        except OSError as e:
            raise OSError(e.errno, f"{what}: open {path}: {e.strerror}", path) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PermissionError(errno.EPERM, f"{what}: {path} is not a file", path)
            try:
                sys.write_fd(path, data, fd=fd)
            except OSError as e:
                raise OSError(e.errno, f"{what}: {e.strerror}", path) from None
        finally:
            os.close(fd)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
