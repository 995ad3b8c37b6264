"""The code of the modules `create`, `run` and `exec` import, kept in one file.

Why: before a module's code runs, importing it costs ≈ 50 µs of CPU — the import system asks
each finder in turn, looks the directory and the source up, opens, reads and checks the .pyc,
then unmarshals it — and these three verbs import about forty of mrunc's modules. Read from one
file, unmarshalled in a few large parts, the same imports cost about 2 ms of CPU less per
command (measured: the module set of `run`, 8.5 -> 6.6 ms).

How it stays true: the file holds, for each module, its code and the mtime and size of the
source it was compiled from, which is what CPython checks before it trusts a .pyc. A module is
taken from the file only if its source still has that mtime and size (one stat); otherwise,
and for a module the file lacks, it is imported the usual way, and the command writes the file
again when it is done (`save`: the modules it holds that are still current, and those the
command imported). So after a change to a source, or the first time a verb runs, one command
pays for the usual imports and the write; the next ones read the file.

Where: `__pycache__/hot-<verb>.<cache tag>.bin` in the package's directory, beside the .pyc files and
trusted as they are (only who may write the package's __pycache__ can write it). It is written
as a new file, then renamed over the old one, and only where the interpreter writes bytecode
(not with -B or PYTHONDONTWRITEBYTECODE); a reader without the right to write there uses what is
there, or imports as usual. Only the command line uses it (mrunc.cli, run as the program): a
notebook or a test importing mrunc imports it the usual way.
"""
import gc
import marshal
import os
import sys

_DIR = os.path.join(os.path.dirname(__file__), "__pycache__")
# What a file must start with: this format, and the bytecode of this very interpreter.
_KEY = ("mrunc-hot-1", sys.modules["_frozen_importlib_external"].MAGIC_NUMBER)

_PART = 64 << 10    # bytes of marshal data per part of the file, about (see _read_part)
_entries = {}       # module name -> (source path, is a package, mtime_ns, size, code)
_changed = False    # a module was missing or out of date: save() writes the file again
_before = ()        # the modules imported before install(): none of them is read from the file
_path = None        # the file of the verb being run
_pid = None         # the process that read it: only it writes (a fork of it never gets to)


class _Loader:
    """Runs a module's code from the file (the spec's loader_state), then lets it go: a module's
    own code object is needed only once (its functions keep theirs), and kept it would add to
    the command's memory."""

    @staticmethod
    def create_module(spec):
        return None     # the usual module object

    @staticmethod
    def exec_module(module):
        spec = module.__spec__
        code, spec.loader_state = spec.loader_state, None
        origin, package, mtime, size, _ = _entries[spec.name]
        _entries[spec.name] = (origin, package, mtime, size, None)   # save() reads it again
        exec(code, module.__dict__)


class _Finder:
    """First on sys.meta_path: a spec for a module of the file whose source is unchanged."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        global _changed
        if not name.startswith("mrunc."):
            return None
        entry = _entries.get(name)
        if entry is not None:
            origin, package, mtime, size, code = entry
            try:
                st = os.stat(origin)
            except OSError:
                st = None
            if st is not None and st.st_mtime_ns == mtime and st.st_size == size:
                spec = sys.modules["_frozen_importlib"].ModuleSpec(
                    name, _Loader, origin=origin, loader_state=code, is_package=package)
                spec.has_location = True    # __file__ is the source: tracebacks show its lines
                if package:
                    spec.submodule_search_locations = [os.path.dirname(origin)]
                return spec
        _changed = True
        return None


def install(verb):
    """Read the verb's file (if it is there and ours) and put its finder first. One file per
    verb: each holds what its verb imports, as every module in it is unmarshalled (exec needs
    half of what run does). The cyclic garbage collector is off meanwhile: unmarshalling makes
    thousands of tuples, none of them garbage."""
    global _before, _path, _pid
    _path = os.path.join(_DIR, f"hot-{verb}.{sys.implementation.cache_tag}.bin")
    was = gc.isenabled()
    gc.disable()
    try:
        fd = os.open(_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            end = os.fstat(fd).st_size
            if _read_part(fd, end) == _KEY:
                while True:
                    part = _read_part(fd, end)
                    if part is None:
                        break
                    _entries.update(part)
        finally:
            os.close(fd)
    except (OSError, ValueError, EOFError, TypeError):
        _entries.clear()    # none yet, or not one this interpreter can read: the usual imports
    finally:
        if was:
            gc.enable()
    _before, _pid = frozenset(sys.modules), os.getpid()
    sys.meta_path.insert(0, _Finder)


def save():
    """Write the file again if this command imported a module it lacked or held out of date:
    every module of mrunc imported now, and those of the file still current. Nothing (and no
    error) where it may not be written."""
    if not _changed or _pid != os.getpid() or sys.dont_write_bytecode:
        return
    imported = {name: m.__spec__ for name, m in list(sys.modules.items())
                if name.startswith("mrunc.") and name not in _before
                and getattr(m, "__spec__", None) is not None and m.__spec__.loader is not _Loader
                and (m.__spec__.origin or "").endswith(".py")}
    kept = {name: e for name, e in _entries.items() if _current(e)}
    if not imported and len(kept) == len(_entries):
        return      # (a module that is nowhere was asked for: nothing new to keep)
    entries = {}
    for name, (origin, package, mtime, size, code) in kept.items():
        entries[name] = (origin, package, mtime, size, code or _code(name, origin))
    for name, spec in imported.items():
        try:
            st = os.stat(spec.origin)
        except OSError:
            continue
        entries[name] = (spec.origin, spec.submodule_search_locations is not None,
                         st.st_mtime_ns, st.st_size, _code(name, spec.origin))
    entries = {name: e for name, e in entries.items() if e[4] is not None}
    parts, part, size = [_KEY], {}, 0
    for name, e in entries.items():
        part[name] = e
        size += len(marshal.dumps(e[4]))
        if size > _PART:
            parts.append(part)
            part, size = {}, 0
    parts.append(part)
    tmp = f"{_path}.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            for part in parts:
                data = marshal.dumps(part)
                data = memoryview(len(data).to_bytes(8, "little") + data)
                while data:
                    data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        os.replace(tmp, _path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _read_part(fd, end):
    """The next part of the file (a length, then that many bytes of marshal data); None at its
    end. In parts, so that the file is never all in memory at once: read whole, it raised the
    command's peak memory by its size (≈ 0.5 MiB)."""
    size = int.from_bytes(os.read(fd, 8), "little")
    if not size:
        return None
    if size > end:
        raise ValueError("not a file of ours")
    data = os.read(fd, size)
    if len(data) != size:
        raise EOFError
    return marshal.loads(data)


def _code(name, origin):
    """A module's code as the usual import gets it: from its .pyc, checked against the source
    (or compiled). None if it cannot be had."""
    try:
        return sys.modules["_frozen_importlib_external"].SourceFileLoader(name, origin).get_code(name)
    except (OSError, ImportError, SyntaxError):
        return None


def _current(entry):
    try:
        st = os.stat(entry[0])
    except OSError:
        return False
    return st.st_mtime_ns == entry[2] and st.st_size == entry[3]
