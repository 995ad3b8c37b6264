"""mrunc.codecache: the code of what create, run and exec import, read from one file — and never
code that is out of date. Run on a copy of the package, so that a source can be changed."""
import os
import shutil
import subprocess
import sys

import pytest

import mrunc

PKG = os.path.dirname(mrunc.__file__)

# A command's imports as the command line makes them: codecache first, then the modules.
SCRIPT = """
import sys
sys.path[:0] = [{root!r}]
from mrunc import codecache
codecache.install("test")
import mrunc.signals, mrunc.spec.consts
print(type(mrunc.signals.__spec__.loader).__name__ if not isinstance(mrunc.signals.__spec__.loader,
      type) else mrunc.signals.__spec__.loader.__name__, getattr(mrunc.signals, "CHANGED", None))
codecache.save()
"""


@pytest.fixture
def pkg(tmp_path):
    shutil.copytree(PKG, tmp_path / "mrunc", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def command(root, *flags):
    p = subprocess.run([sys.executable, "-I", "-S", *flags, "-c", SCRIPT.format(root=str(root))],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def cache_file(root):
    d = root / "mrunc" / "__pycache__"
    return [d / n for n in os.listdir(d) if n.startswith("hot-test.")] if d.is_dir() else []


def test_the_second_command_reads_the_code_the_first_one_kept(pkg):
    assert command(pkg) == ["SourceFileLoader", "None"]     # nothing kept yet: the usual way
    [f] = cache_file(pkg)
    assert f.stat().st_mode & 0o777 == 0o644
    kept = f.stat().st_mtime_ns
    assert command(pkg) == ["_Loader", "None"]              # from the file
    assert f.stat().st_mtime_ns == kept                     # nothing new: not written again


def test_a_changed_source_is_imported_again_and_kept_anew(pkg):
    command(pkg)
    with open(pkg / "mrunc" / "signals.py", "a") as f:
        f.write("\nCHANGED = 1\n")
    assert command(pkg) == ["SourceFileLoader", "1"]        # not the code the file holds
    assert command(pkg) == ["_Loader", "1"]                 # the file holds the new code now


def test_nothing_is_written_without_bytecode_writing_and_a_bad_file_is_ignored(pkg):
    command(pkg, "-B")
    assert cache_file(pkg) == []
    (pkg / "mrunc" / "__pycache__").mkdir(exist_ok=True)
    (pkg / "mrunc" / "__pycache__" / f"hot-test.{sys.implementation.cache_tag}.bin").write_bytes(
        b"not marshal data")
    assert command(pkg) == ["SourceFileLoader", "None"]     # the usual way; then a good file
    assert command(pkg) == ["_Loader", "None"]


def _loaders(root, *modules):
    """The loader each of `modules` came by, in a command that imports only those."""
    script = (f"import sys; sys.path[:0] = [{str(root)!r}]\nfrom mrunc import codecache\n"
              "codecache.install('test')\n"
              + "".join(f"import {m}\n" for m in modules)
              + "print(*(getattr(sys.modules[m].__spec__.loader, '__name__', None) or "
                "type(sys.modules[m].__spec__.loader).__name__ for m in sys.argv[1:]))\n"
              "codecache.save()\n")
    p = subprocess.run([sys.executable, "-I", "-S", "-c", script, *modules], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def test_a_module_s_code_is_read_only_when_it_is_imported(pkg):
    """The file holds what any command of the verb imported; a command reads the code of what it
    imports alone — a damaged entry it does not import does not touch it — and the damaged one
    is imported the usual way by the command that needs it, then kept anew."""
    import marshal
    command(pkg)
    [f] = cache_file(pkg)
    data = bytearray(f.read_bytes())
    key_len = int.from_bytes(data[:8], "little")
    at = 8 + key_len
    index = marshal.loads(bytes(data[at + 8:at + 8 + int.from_bytes(data[at:at + 8], "little")]))
    offset, length = index["mrunc.spec.consts"][4:]
    data[offset:offset + length] = b"\0" * length
    f.write_bytes(bytes(data))
    assert _loaders(pkg, "mrunc.signals") == ["_Loader"]
    assert _loaders(pkg, "mrunc.signals", "mrunc.spec.consts") == ["_Loader", "SourceFileLoader"]
    assert _loaders(pkg, "mrunc.signals", "mrunc.spec.consts") == ["_Loader", "_Loader"]


PROBE = '''"""The module's docstring."""


class Probe:
    """The class's docstring."""

    def method(self):
        """The method's docstring: the only statement of its body."""


def checked(x):
    """The function's docstring."""
    assert x, "asserts are kept"
    return x


def fails():
    raise RuntimeError("line 18")


def chained(x):
    return (x
            .missing())     # line 23: the line of the attribute, not of the expression's start
'''

PROBE_SCRIPT = """
import sys, traceback
sys.path[:0] = [{root!r}]
from mrunc import codecache
codecache.install("test")
from mrunc import probe
print(type(probe.__spec__.loader).__name__ if not isinstance(probe.__spec__.loader, type)
      else probe.__spec__.loader.__name__)
print(repr(probe.__doc__), repr(probe.Probe.__doc__), repr(probe.Probe.method.__doc__),
      repr(probe.checked.__doc__), probe.Probe().method(), probe.checked(5))
try:
    probe.checked(0)
except AssertionError as e:
    print("assert:", e)
try:
    probe.fails()
except RuntimeError:
    print("line:", traceback.extract_tb(sys.exc_info()[2])[-1].lineno)
try:
    probe.chained(1)
except AttributeError:
    print("line:", traceback.extract_tb(sys.exc_info()[2])[-1].lineno)
codes = [probe.checked.__code__, probe.fails.__code__, probe.chained.__code__]
print("lines:", [list(c.co_lines()) for c in codes])
print("columns:", any(p[2] is not None for c in codes for p in c.co_positions()))
codecache.save()
"""


def test_the_code_kept_has_no_docstrings_and_the_same_asserts_and_lines(pkg):
    """What the file holds is compiled without docstrings, and without the columns of each
    instruction (less memory for every command that reads it); the rest — asserts, the line of
    every instruction, so a traceback's line numbers — is the code the usual import runs."""
    (pkg / "mrunc" / "probe.py").write_text(PROBE)

    def run():
        p = subprocess.run([sys.executable, "-I", "-S", "-c", PROBE_SCRIPT.format(root=str(pkg))],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        return p.stdout.splitlines()

    usual = run()
    assert usual[0] == "SourceFileLoader"
    assert usual[1] == ("\"The module's docstring.\" \"The class's docstring.\" \"The method's "
                        "docstring: the only statement of its body.\" \"The function's docstring."
                        "\" None 5")
    kept = run()
    assert kept[0] == "_Loader"
    assert kept[1] == "None None None None None 5"
    assert kept[2:5] == usual[2:5] == ["assert: asserts are kept", "line: 18", "line: 23"]
    assert kept[5] == usual[5] and kept[5].startswith("lines: [[(0, ")    # every line the same
    assert (usual[6], kept[6]) == ("columns: True", "columns: False")


FORK_SCRIPT = """
import os, sys
sys.path[:0] = [{root!r}]
from mrunc import codecache
codecache.install("test", min_fd={min_fd})
kept = codecache._fd
print("kept", kept >= {min_fd}, kept >= 0 and not os.get_inheritable(kept), flush=True)
pid = os.fork()
if pid == 0:
    # as the clone child does (close_inherited), then a number taken by a file of its own
    if kept >= 0:
        os.close(kept)
        junk = os.open({junk!r}, os.O_RDONLY)
        assert junk == kept, (junk, kept)
    before = sorted(os.listdir("/proc/self/fd"))
    import mrunc.signals
    print("child", mrunc.signals.__spec__.loader.__name__, mrunc.signals.number("KILL"),
          sorted(os.listdir("/proc/self/fd")) == before,
          kept < 0 or os.read(kept, 5) == b"junk!")
    sys.stdout.flush()
    os._exit(0)
os.waitpid(pid, 0)
import mrunc.spec.consts
print("parent", mrunc.spec.consts.__spec__.loader.__name__, codecache._is_ours(kept))
"""


@pytest.mark.parametrize("min_fd", [3, 1000])
def test_a_fork_never_reads_code_through_a_closed_or_reused_fd(pkg, tmp_path, min_fd):
    """The file stays open for the command's life (one pread a module), close-on-exec and above
    the fds the container is handed (min_fd: else not kept at all). A fork that closes it and
    whose next file takes its number — the clone child closes all it inherits — still reads the
    module's code from the file, opened for that read: not from the other file, which it leaves
    open, and it keeps no fd of ours."""
    command(pkg)                                    # the file now holds signals and consts
    junk = tmp_path / "junk"
    junk.write_bytes(b"junk!" * 1000)
    p = subprocess.run([sys.executable, "-I", "-S", "-c",
                        FORK_SCRIPT.format(root=str(pkg), junk=str(junk), min_fd=min_fd)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    kept = min_fd == 3
    assert p.stdout.splitlines() == [f"kept {kept} {kept}", "child _Loader 9 True True",
                                     f"parent _Loader {kept}"]
