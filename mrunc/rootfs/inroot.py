"""Looking up a path *inside* the rootfs, as the container will see it, before it is the root.

Before pivot_root the runtime still lives in the host's tree, and the rootfs is just a directory
of it, full of files the image author (or a process of another container sharing a volume)
controls. `paths.join(rootfs, "/etc/resolv.conf")` then mount(2) on it is how runtimes got
CVEs: if `etc` is a symlink to `/`, the kernel follows it from the *host's* root and the mount
lands on the host (S5); creating a missing mount point through a symlink makes files on the host
(S6, S7).

So a path is resolved with the rootfs fd as its root: an absolute symlink restarts from the
rootfs, `..` never climbs above it. Where the kernel has openat2 (5.6+), it does that itself,
atomically: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS (no /proc/self/fd/N jump out), and a rename
racing with the lookup makes it fail with EAGAIN rather than escape. Missing components are made
one at a time with mkdirat in the directory fd we hold, and the new one is opened with
RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV: if a racer swapped it for a symlink (or mounted on it)
in between, that open fails and the whole path is resolved again from the rootfs — so nothing
is ever created through a symlink, however the names change under us (S6, S7). Older kernels,
and paths with a dangling symlink to create through, take `_walk`: the same rules in Python, one
component at a time with O_NOFOLLOW, following symlinks ourselves.

The result is an O_PATH fd, and mounts are made onto `/proc/self/fd/<fd>`: the kernel mounts on
the very inode we checked, however the names around it are renamed meanwhile. A last readlink of
that fd checks that it is still under the rootfs (a directory moved out of the rootfs under our
feet).
"""
import errno
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)
import _stat as stat  # the C module under `stat`, as posix is under os

from .. import linux, paths

_O_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_LINKS = 40  # the kernel's limit (MAXSYMLINKS)


def fdpath(fd):
    """The name mount(2) and friends can use for an fd we hold: the kernel resolves it to the fd's
    file itself, not to whatever path it had when it was opened."""
    return f"/proc/self/fd/{fd}"


def clean(path):
    """Lexically normalised absolute path ("//proc/./x/.." -> "/proc"), for comparisons."""
    if path[:1] == "/" and path[-1:] != "/" and "//" not in path and "/." not in path:
        return path  # already is (the usual case: no loop over its parts)
    out = []
    for part in path.split("/"):
        if part == "..":
            if out:
                out.pop()
        elif part not in ("", "."):
            out.append(part)
    return "/" + "/".join(out)


def open_root(rootfs):
    return os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def open_in_root(root_fd, rootfs, path, create=None):
    """Return an O_PATH fd of `path` resolved inside root_fd as if root_fd were "/".

    create: None (everything must exist), "dir" or "file": what to make of the last component if
    it is missing; missing parents are made as directories (0755). A symlink met on the way,
    the last component included, is followed inside the root, like the container will.
    """
    fd = _resolve(root_fd, path, create) if linux.has_openat2() else None
    if fd is None:
        fd = _walk(root_fd, path, create)
    try:
        check_under(fd, rootfs, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def mkdir_in_root(rootfs, path):
    """mkdir -p `path` inside rootfs without leaving it (process.cwd, made before pivot_root)."""
    root_fd = open_root(rootfs)
    try:
        fd = open_in_root(root_fd, rootfs, path, create="dir")
        isdir = stat.S_ISDIR(os.fstat(fd).st_mode)
        os.close(fd)
    finally:
        os.close(root_fd)
    if not isdir:
        raise NotADirectoryError(errno.ENOTDIR, f"{path} in the rootfs: not a directory", path)


def lstat_at(dir_fd, name):
    """lstat of `name` in dir_fd, or None if there is nothing there."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_component(dir_fd, name, create=None):
    """O_PATH|O_NOFOLLOW fd of one name in dir_fd, made first (dir or empty file) if missing.

    O_EXCL and mkdir never follow a symlink, so nothing is ever created through one (S6); if a
    racer puts something at `name` between our two calls, we open what it put there, without
    following it, and the caller's checks see what it is. An empty file is made first and
    returned as the (write-only) fd that made it: that very file, no second lookup of its name.
    """
    if create == "file":
        try:
            return os.open(name, os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY | os.O_CLOEXEC,
                           0o644, dir_fd=dir_fd)
        except FileExistsError:
            return os.open(name, _O_PATH, dir_fd=dir_fd)
    try:
        return os.open(name, _O_PATH, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
    try:
        os.mkdir(name, 0o755, dir_fd=dir_fd)
    except FileExistsError:
        pass
    return os.open(name, _O_PATH, dir_fd=dir_fd)


_IN_ROOT = linux.RESOLVE_IN_ROOT | linux.RESOLVE_NO_MAGICLINKS
_JUST_THIS = linux.RESOLVE_BENEATH | linux.RESOLVE_NO_SYMLINKS | linux.RESOLVE_NO_MAGICLINKS | \
    linux.RESOLVE_NO_XDEV
_TRIES = 16


def _resolve(root_fd, path, create):
    """open_in_root with openat2; None when _walk must do it (a dangling symlink to create
    through, or a racer that keeps winning)."""
    parts = _split(path)
    for _ in range(_TRIES):
        try:
            return linux.openat2(root_fd, "/".join(parts) or ".", os.O_PATH, _IN_ROOT)
        except FileNotFoundError:
            if not create:
                raise
        except BlockingIOError:  # EAGAIN: a rename raced with the lookup; look again
            continue
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise OSError(errno.ELOOP, f"{path} in the rootfs: too many symlinks", path) from None
            raise
        try:
            fd = _make_missing(root_fd, parts, create)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ENOENT, errno.ELOOP, errno.EXDEV, errno.EEXIST):
                raise
            continue  # someone changed the path while we made it: start again from the root
        return fd  # None: a name to create through a symlink; the walk knows how
    return None


def _make_missing(root_fd, parts, create):
    """Make the missing tail of `parts`: find the deepest existing directory, then mkdirat and
    open (no symlink, no mount crossed) one component at a time. None: the first missing name
    exists after all (a dangling symlink): let _walk follow it."""
    k = len(parts) - 1
    while True:
        try:
            fd = linux.openat2(root_fd, "/".join(parts[:k]) or ".", os.O_PATH | os.O_DIRECTORY, _IN_ROOT)
            break
        except FileNotFoundError:
            if k == 0:
                raise
            k -= 1
    try:
        for i in range(k, len(parts)):
            name, last = parts[i], i == len(parts) - 1
            if name == "..":
                return None
            # The first missing name (i == k) made, or found there after all (EEXIST): it exists,
            # yet did not resolve — a symlink to nowhere (or a racer's): the walk follows it.
            # (Made first rather than looked at first: mkdir and O_EXCL never follow a symlink,
            # so the EEXIST says what an lstat would have, one call fewer when it is missing.)
            if last and create == "file":
                try:
                    os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY |
                                     os.O_CLOEXEC, 0o644, dir_fd=fd))
                except FileExistsError:
                    if i == k:
                        return None
                flags = os.O_PATH
            else:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)  # never follows a symlink at `name`
                except FileExistsError:
                    if i == k:
                        return None
                flags = os.O_PATH | os.O_DIRECTORY
            nxt = linux.openat2(fd, name, flags, _JUST_THIS)  # ELOOP/EXDEV: swapped meanwhile
            os.close(fd)
            fd = nxt
        done, fd = fd, None
        return done
    finally:
        if fd is not None:
            os.close(fd)


def _walk(root_fd, path, create):
    parts = _split(path)
    stack = [os.dup(root_fd)]  # stack[i]: fd of the i-th directory on the way; [0] is the root
    links = 0
    try:
        while parts:
            name = parts.pop(0)
            if name == "..":
                if len(stack) > 1:  # ".." of the root is the root, as in the kernel
                    os.close(stack.pop())
                continue
            fd = open_component(stack[-1], name, create and (create if not parts else "dir"))
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink("", dir_fd=fd)  # the link we hold, not the name again
                os.close(fd)
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, f"{path} in the rootfs: too many symlinks", path)
                if target.startswith("/"):  # absolute: from the rootfs, never from the host's /
                    for f in stack[1:]:
                        os.close(f)
                    del stack[1:]
                parts[:0] = _split(target)
                continue
            stack.append(fd)
            if parts and not stat.S_ISDIR(mode):
                raise NotADirectoryError(errno.ENOTDIR, f"{path} in the rootfs: "
                                         f"component {name!r} is not a directory", path)
        return stack.pop()
    finally:
        for f in stack:
            os.close(f)


def _split(path):
    return [p for p in path.split("/") if p not in ("", ".")]


def check_under(fd, rootfs, path):
    """The kernel's name for what we opened must be the rootfs or below it."""
    real = os.readlink(fdpath(fd))
    top = rootfs.rstrip("/")
    if real != rootfs and not real.startswith(top + "/"):
        raise PermissionError(errno.EPERM, f"{path} resolved to {real}, outside the rootfs {rootfs}",
                              path)
