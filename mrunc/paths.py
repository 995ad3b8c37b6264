"""The few os.path functions mrunc's commands use, over the C module `posix` — without `os`.

An engine runs `start`, `state`, `kill` and `delete` once per container, each a new interpreter,
and `import os` costs each of them ≈ 1 ms of CPU (its `_collections_abc` alone ≈ 0.5: some thirty
abstract classes made and registered) — a tenth of the whole command, whose interpreter starts
without it. Every system call of os is posix's (os.open *is* posix.open), so the modules those
verbs run (mrunc.cli, userdirs, state, lifecycle, and cgroups' fs, recorded and freezer) call
`posix` directly and name paths with these, which give os.path's results for str paths.
tests/unit/test_imports.py fails when `os` comes back on their way.

`create`, `run` and `exec` do without it too (with the modules init runs: the container's
processes are forks of the runtime): for them `os` was ≈ 0.25 MiB of their peak memory, which
is the runtime's own (docs/speed.md) — `_collections_abc`'s classes, os's and posixpath's code.
"""
import posix
from posix import fspath
from _stat import S_ISDIR, S_ISLNK, S_ISREG   # the C module under `stat`, as posix is under os


def join(path, *names):
    """os.path.join: each name after a "/" — an absolute one starts the path again."""
    path = fspath(path)     # a pathlib.Path too (an API caller's root), as os.path takes it
    for name in map(fspath, names):
        if name.startswith("/"):
            path = name
        elif not path or path.endswith("/"):
            path += name
        else:
            path += "/" + name
    return path


def dirname(path):
    """os.path.dirname: what is before the last "/", without trailing slashes ("/" stays)."""
    path = fspath(path)
    head = path[:path.rfind("/") + 1]
    return head.rstrip("/") or head


def basename(path):
    """os.path.basename: what is after the last "/"."""
    path = fspath(path)
    return path[path.rfind("/") + 1:]


def _mode(path, stat=posix.stat):
    """st_mode of what `path` names (stat follows symlinks, lstat does not); None where nothing
    is, or the path cannot be asked (os.path's predicates say False then, never raise)."""
    try:
        return stat(path).st_mode
    except (OSError, ValueError):
        return None


def exists(path):
    """os.path.exists: stat(2) works (following symlinks)."""
    return _mode(path) is not None


def isdir(path):
    """os.path.isdir: a directory (following symlinks)."""
    mode = _mode(path)
    return mode is not None and S_ISDIR(mode)


def isfile(path):
    """os.path.isfile: a regular file (following symlinks)."""
    mode = _mode(path)
    return mode is not None and S_ISREG(mode)


def islink(path):
    """os.path.islink: a symlink itself."""
    mode = _mode(path, posix.lstat)
    return mode is not None and S_ISLNK(mode)


def lexists(path):
    """os.path.lexists: something is there, a dangling symlink too."""
    return _mode(path, posix.lstat) is not None


def normpath(path):
    """os.path.normpath: empty and "." names dropped, each ".." takes the name before it away
    (none above "/"; kept at the start of a relative path). Only the name, no file looked at."""
    path = fspath(path)
    if not path:
        return "."
    # POSIX lets a system give "//" a meaning of its own, so it is kept ("///" is "/")
    lead = "//" if path.startswith("//") and not path.startswith("///") else path[:1] if path.startswith("/") else ""
    names = []
    for name in path.split("/"):
        if name in ("", "."):
            continue
        if name != ".." or (not lead and not names) or (names and names[-1] == ".."):
            names.append(name)
        elif names:
            names.pop()
    return lead + "/".join(names) or "."


def abspath(path):
    """os.path.abspath: joined to the working directory if relative, then normpath."""
    path = fspath(path)
    return normpath(path if path.startswith("/") else join(posix.getcwd(), path))


def realpath(path):
    """os.path.realpath: absolute, with every symlink on the way replaced by what it points to,
    name by name as the kernel would walk it (a ".." after a symlink climbs from its target); a
    name that is missing or no symlink is kept as it is. A loop (more than 40 links, the kernel's
    own limit) leaves the rest of the path as it is, as os.path.realpath does."""
    path = fspath(path)
    todo = (path if path.startswith("/") else join(posix.getcwd(), path)).split("/")[::-1]
    done, links = "", 0      # done: resolved so far ("" is "/"); todo: names left, last first
    while todo:
        name = todo.pop()
        if name in ("", "."):
            continue
        if name == "..":
            done = done[:done.rfind("/")]
            continue
        here = done + "/" + name
        try:
            target = posix.readlink(here)
        except (OSError, ValueError):      # not a symlink (EINVAL), missing, or not a directory
            done = here
            continue
        links += 1
        if links > 40:
            return here + "".join("/" + n for n in todo[::-1] if n)
        if target.startswith("/"):
            done = ""
        todo += target.split("/")[::-1]
    return done or "/"


def makedirs(path, mode=0o777, exist_ok=False):
    """os.makedirs: the missing directories above `path` first (mode 0o777, less the umask, as
    os.makedirs makes them), then `path` itself with `mode`."""
    path = fspath(path)
    trimmed = path.rstrip("/")
    head, tail = dirname(trimmed), basename(trimmed)
    if head and tail and not exists(head):
        try:
            makedirs(head, exist_ok=exist_ok)
        except FileExistsError:
            pass        # made meanwhile by someone else
        if tail == ".":
            return
    try:
        posix.mkdir(path, mode)
    except OSError:
        if not exist_ok or not isdir(path):
            raise
