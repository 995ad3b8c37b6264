"""The cgroup filesystem: reading and writing its files, making and removing its directories
(reading is mrunc.cgroups.files', offered here too).

Everything the kernel is asked goes through `write()` and `mkdir()` here, one `write(2)` per
value (the kernel parses each write on its own: one device rule, one `io.max` line, one pid). A
failed write becomes a CgroupError that names the value and the file, e.g.
"writing 100 to /sys/fs/cgroup/memory/x/memory.limit_in_bytes: Invalid argument".

`sys`: `create` passes its Syscalls (the manager's `sys`), so each mkdir and write is made by the
syscall layer and recorded in the phase it runs in (`--trace`, the stepper). Without one — the
verbs that print no trace: update, pause, kill, delete — the same calls are made directly: the
syscall layer is ctypes, and importing it would cost those hot verbs more than their work.

Files are opened without O_CREAT: on cgroupfs a file that is absent means the kernel has no such
knob (controller not enabled, feature too new or too old) and creating it is impossible anyway;
in a unit test's fake tree it means the test said the knob does not exist.

Where the hierarchies are, and where a container's cgroup goes in each: mrunc.cgroups.layout.
"""

import posix as os  # os's C module: the same calls, without os's ≈ 1 ms import (mrunc.paths)
import time

from mrunc import paths

# Reading is mrunc.cgroups.files' (`state` reads the freezer's file, and needs none of the rest):
# fs.read and the others, where every caller has them.
from .files import read, read_int, read_keyed, reason as _reason  # noqa: F401
from .recorded import rmdir_at_once


def write(path, value, field=None, sys=None):
    """Write str(value) to a cgroup file in one write(2); OSError -> CgroupError naming both."""
    data = str(value)
    try:
        if sys is not None:
            sys.write_file(path, data, truncate=True)
        else:
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
            try:
                os.write(fd, data.encode())
            finally:
                os.close(fd)
    except OSError as e:
        msg = f"writing {data} to {path}: {_reason(e)}"
        from mrunc.errors import CgroupError  # where raised: delete of a stopped container, ≈ 0.1 ms
        raise CgroupError(f"{field}: {msg}" if field else msg) from e


def exists(path):
    return path is not None and paths.exists(path)


def at(d, name):
    """d/name, or None when the directory is unknown (the controller is not mounted)."""
    return paths.join(d, name) if d else None


def mkdir(path, created, sys=None):
    """mkdir -p; append every directory actually created (parents first) to `created`.
    The parent looked at, the directory made: the usual cgroup is new in a parent that exists,
    and then a stat and one mkdir are all (a stat of the directory first was one call more per
    hierarchy); EEXIST says it was there. A missing parent is made first, so the record shows
    the mkdirs that make something, parents first, as before."""
    parent = paths.dirname(path)
    if parent != path and not paths.isdir(parent):
        mkdir(parent, created, sys)
    try:
        _mkdir(path, sys)
    except FileExistsError:
        return      # there already (an engine made it, or someone meanwhile): not ours to remove
    except OSError as e:
        from mrunc.errors import CgroupError
        raise CgroupError(f"creating cgroup {path}: {_reason(e)}") from e
    created.append(path)


def _mkdir(path, sys):
    if sys is not None:
        sys.mkdir(path, 0o755)
    else:
        os.mkdir(path, 0o755)


def rmdir(path):
    """rmdir a cgroup; the kernel may still say EBUSY for a moment after its last task exited."""
    for delay in (0.01, 0.02, 0.04, 0.08, 0.16, 0):
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            import errno
            if e.errno != errno.EBUSY or not delay:
                from mrunc.errors import CgroupError
                raise CgroupError(f"removing cgroup {path}: {_reason(e)}") from e
            time.sleep(delay)


def remove(dirs, created=()):
    """rmdir each of a container's cgroup directories and every cgroup below it (deepest
    first), then the parents its create made (`created`), if nobody else started using them.
    The container's processes must be gone: the kernel refuses to remove a cgroup in use.
    A container's cgroup seldom has cgroups below it: each is removed at once if it can be, and
    walked for children (which lists every file of every directory: ≈ 30 µs each) only if not."""
    gone = set()
    for d in dirs:
        if rmdir_at_once(d):
            gone.add(d)
            continue
        for sub in subdirs_leaf_first(d):
            rmdir(sub)
            gone.add(sub)
    for d in reversed([d for d in created if d not in gone]):
        try:
            rmdir(d)
        except Exception as e:
            from mrunc.errors import CgroupError    # (loaded by rmdir, which raised it)
            if not isinstance(e, CgroupError):
                raise


def join(dirpath, pid, sys=None):
    """Move a whole process (all its threads) into a cgroup."""
    path = paths.join(dirpath, "cgroup.procs")
    for _ in range(5):
        try:
            return write(path, pid, sys=sys)
        except Exception as e:
            import errno
            from mrunc.errors import CgroupError    # (loaded by write, which raised it)
            if not isinstance(e, CgroupError):
                raise
            # EINVAL can mean the task is still being created (TASK_NEW): retry briefly.
            if getattr(e.__cause__, "errno", None) != errno.EINVAL:
                raise
            time.sleep(0.03)
    write(path, pid, sys=sys)


def procs(dirpath):
    """Every pid in a cgroup and its descendants (sorted, without duplicates)."""
    pids = set()
    for d in _tree(dirpath):
        for line in (read(paths.join(d, "cgroup.procs")) or "").split():
            pids.add(int(line))
    return sorted(pids)


def subdirs_leaf_first(dirpath):
    """A cgroup directory and every cgroup below it, deepest first (the order rmdir needs)."""
    if not paths.isdir(dirpath):
        return []
    return _tree(dirpath)[::-1]     # each below its parent in _tree: here before it


def _tree(top):
    """`top` and every directory below it, each parent before its children (cgroupfs has no
    symlinks); an unreadable directory is listed without what is below it. (Not os.walk: the
    short verbs do without os, see mrunc.paths.)"""
    found, i = [top], 0
    while i < len(found):
        try:
            with os.scandir(found[i]) as entries:
                found += [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            pass
        i += 1
    return found


def unescape(s):
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)
