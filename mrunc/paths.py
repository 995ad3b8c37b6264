"""The few os.path functions the short verbs use, over the C module `posix` — without `os`.

An engine runs `start`, `state`, `kill` and `delete` once per container, each a new interpreter,
and `import os` costs each of them ≈ 1 ms of CPU (its `_collections_abc` alone ≈ 0.5: some thirty
abstract classes made and registered) — a tenth of the whole command, whose interpreter starts
without it. Every system call of os is posix's (os.open *is* posix.open), so the modules those
verbs run (mrunc.cli, userdirs, state, lifecycle, and cgroups' fs, recorded and freezer) call
`posix` directly and name paths with these, which give os.path's results for str paths.
tests/unit/test_imports.py fails when `os` comes back on their way.
"""
import posix
from posix import fspath
from _stat import S_ISDIR   # the C module under `stat`, as posix is under os


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


def exists(path):
    """os.path.exists: stat(2) works (following symlinks)."""
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True


def isdir(path):
    """os.path.isdir: a directory (following symlinks)."""
    try:
        return S_ISDIR(posix.stat(path).st_mode)
    except (OSError, ValueError):
        return False
