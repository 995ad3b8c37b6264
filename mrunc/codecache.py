"""The code of the modules a command imports, kept in one file.

Why: before a module's code runs, importing it costs ≈ 50 µs of CPU — the import system asks
each finder in turn, looks the directory and the source up, opens, reads and checks the .pyc,
then unmarshals it — and `create`, `run` and `exec` import about forty of mrunc's modules, the
short verbs (`start`, `state`, `kill`, `delete`…) about ten. Here a module is one stat of its
source and one read at a known place of one file; the file's index is read once per command, a
module's code only when it is imported, so what the file holds for other configs (a seccomp
profile, a user namespace: the file keeps what any command of the verb imported) costs a
command that does not import it nothing.

How it stays true: the file holds, for each module, its code and the mtime and size of the
source it was compiled from, which is what CPython checks before it trusts a .pyc. A module is
taken from the file only if its source still has that mtime and size (one stat); otherwise,
and for a module the file lacks, it is imported the usual way, and the command writes the file
again when it is done (`save`, by mrunc.codesave: the modules it holds that are still current,
and those the command imported). So after a change to a source, or the first time a verb runs,
one command pays for the usual imports, compiling what it adds (without docstrings, from the
source: for `run`'s forty modules ≈ 90 ms of CPU and 3 MiB more at its end) and the write; the
next ones read the file.

Where: `__pycache__/hot-<verb>.<cache tag>.bin` in the package's directory, beside the .pyc
files and trusted as they are (only who may write the package's __pycache__ can write it). It
is written as a new file, then renamed over the old one, and only where the interpreter writes
bytecode (not with -B or PYTHONDONTWRITEBYTECODE); a reader without the right to write there
uses what is there, or imports as usual. Only the command line uses it (mrunc.cli, run as the
program): a notebook or a test importing mrunc imports it the usual way. This module is on the
way of every such command, so it reads and no more — without `os` (the short verbs do without
it: mrunc.paths) —, and the writing half is imported only by a command that writes.
"""
import marshal
import posix as os  # os's C module: the same calls, without os's ≈ 1 ms import (mrunc.paths)
import sys

# The paths by hand, not with mrunc.paths: imported before the cache is installed, that module
# would come the usual way (≈ 50 µs more than from the file, for every verb that uses it).
_DIR = __file__.rpartition("/")[0] + "/__pycache__"
# What a file must start with: this format (4: code without docstrings, nor columns in its
# location tables), and the bytecode of this very interpreter.
_KEY = ("mrunc-hot-4", sys.modules["_frozen_importlib_external"].MAGIC_NUMBER)

_index = {}         # module name -> (source path, is a package, mtime_ns, size, offset, length)
_file = None        # (st_dev, st_ino, st_mtime_ns) of the file the index was read from
_fd = -1            # that file, kept open: a module's code is one pread away (_read_at)
_changed = False    # a module was missing or out of date: save() writes the file again
_before = ()        # the modules imported before install(): none of them is read from the file
_path = None        # the file of the verb being run
_pid = None         # the process that read it: only it writes (a fork of it never gets to)


class _Loader:
    """Runs a module's code read from the file (the spec's loader_state)."""

    @staticmethod
    def create_module(spec):
        return None     # the usual module object

    @staticmethod
    def exec_module(module):
        code, module.__spec__.loader_state = module.__spec__.loader_state, None
        exec(code, module.__dict__)


class _Finder:
    """First on sys.meta_path: a spec for a module of the file whose source is unchanged."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        global _changed
        if not name.startswith("mrunc."):
            return None
        entry = _index.get(name)
        code = _code_of(entry) if entry is not None else None
        if code is None:
            _index.pop(name, None)      # out of date or unreadable: save() keeps the new code
            _changed = True
            return None
        origin, package = entry[0], entry[1]
        spec = sys.modules["_frozen_importlib"].ModuleSpec(
            name, _Loader, origin=origin, loader_state=code, is_package=package)
        spec.has_location = True    # __file__ is the source: tracebacks show its lines
        spec.cached = _path         # __cached__: where its code came from (else worked out: ≈ 5 µs)
        if package:
            spec.submodule_search_locations = [origin.rpartition("/")[0]]
        return spec


def install(verb, min_fd=3):
    """Read the index of the verb's file (if it is there and ours) and put the finder first. One
    file per verb, and only the index is read here: a module's code is read when it is imported
    (_code_of), so what the file holds for other configs (a seccomp profile, a user namespace)
    costs a command that does not import it nothing. The file stays open for the modules' code
    if its fd is ≥ min_fd: 3 + the fds create, run or exec hands to the container (--preserve-
    fds) — one below would be one the caller did not pass, and so ours, handed over by mistake
    (mrunc.cli._check_preserved): then each read opens the file (_read_at)."""
    global _before, _path, _pid, _file, _fd
    _path = f"{_DIR}/hot-{verb}.{sys.implementation.cache_tag}.bin"
    fd = -1
    try:
        fd = os.open(_path, os.O_RDONLY | os.O_CLOEXEC)
        st = os.fstat(fd)
        if _read_part(fd, st.st_size) == _KEY:
            _index.update(_read_part(fd, st.st_size))
            _file = (st.st_dev, st.st_ino, st.st_mtime_ns)
            if fd >= min_fd:
                _fd, fd = fd, -1
    except (OSError, ValueError, EOFError, TypeError):
        _index.clear()      # none yet, or not one this interpreter can read: the usual imports
    finally:
        if fd >= 0:
            os.close(fd)
    _before, _pid = frozenset(sys.modules), os.getpid()
    sys.meta_path.insert(0, _Finder)


def _code_of(entry):
    """The code the file holds for a module, if its source still has the mtime and size it was
    compiled from (one stat, as CPython checks a .pyc) and the file is still the one whose index
    we read (another command may have renamed a new one over it: its offsets differ); else
    None, and the module is imported the usual way."""
    origin, _, mtime, size, offset, length = entry
    if not _current(origin, mtime, size):
        return None
    try:
        data = _read_at(offset, length)
        return marshal.loads(data) if data is not None else None
    except (OSError, ValueError, EOFError, TypeError):
        return None


def _read_at(offset, length):
    """`length` bytes at `offset` of the file whose index we read; None if it is another now.

    Read through the fd install() kept (pread: no file offset, so a fork of ours may share it),
    not by opening the path for each module (≈ 2.5 µs and two system calls more each, ≈ 40 times
    in a create). Its number is checked before each read, though, as the path was: it is that
    file only until something closes it — the clone child and exec's child close every fd they
    inherit (process.common.close_inherited), after which the number may be another file's.
    Where it is not that file, the path is opened for this one read, as a fork of ours does
    after that close: a fork keeps no fd of ours (init would hold a host file into the
    container's life, until its execve)."""
    if _is_ours(_fd):
        return _pread(_fd, offset, length)
    fd = os.open(_path, os.O_RDONLY | os.O_CLOEXEC)
    try:    # None if a command renamed a new file over ours since: its offsets differ
        return _pread(fd, offset, length) if _is_ours(fd) else None
    finally:
        os.close(fd)


def _pread(fd, offset, length):
    data = os.pread(fd, length, offset)
    return data if len(data) == length else None


def _is_ours(fd):
    """fd is the file whose index we read (not closed since, nor its number taken by another)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    return (st.st_dev, st.st_ino, st.st_mtime_ns) == _file


def save():
    """Write the file again if this command imported a module it lacked or held out of date
    (mrunc.codesave: only such a command imports the writer). Nothing (and no error) where it
    may not be written."""
    if not _changed or _pid != os.getpid() or sys.dont_write_bytecode:
        return
    if not os.access(_DIR, os.W_OK):
        return      # (a user's command, mrunc installed by root): gather nothing to write nowhere
    from . import codesave
    codesave.save()


def _read_part(fd, end):
    """The next framed part of the file (a length, then that many bytes of marshal data)."""
    size = int.from_bytes(os.read(fd, 8), "little")
    if not 0 < size <= end:
        raise ValueError("not a file of ours")
    data = os.read(fd, size)
    if len(data) != size:
        raise EOFError
    return marshal.loads(data)


def _current(origin, mtime, size):
    try:
        st = os.stat(origin)
    except OSError:
        return False
    return st.st_mtime_ns == mtime and st.st_size == size
