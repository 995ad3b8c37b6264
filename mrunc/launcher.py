"""The `mrunc` command, started without site processing.

An engine runs mrunc once per create, start, state, kill and delete, so the interpreter's start is
on every one of them. The console script pip writes,

    #!/venv/bin/python
    import re, sys
    from mrunc.launcher import main
    ...

starts a full interpreter: site.py scans the environment's .pth files and imports what they name
(the editable-install finder, setuptools' distutils shim, Debian's apport hook), then the script
imports `re` — together more than the interpreter itself costs (≈ 9 ms) before mrunc runs a line.

pip runs none of a package's code at install time (a wheel is only unpacked, and may be unpacked
into any environment), so the command cannot be written right at install. Instead the entry point
is `main` below, and the first time pip's script runs it, it replaces that script — atomically,
at the same path, with its mode and owner — by a launcher of ours:

    #!/venv/bin/python -IS
    import sys
    spec = spec_from_file_location("mrunc", "/venv/.../site-packages/mrunc/__init__.py")
    ...                             # mrunc loaded from that file, as importlib would
    sys.path[:] = [...]             # then the import path that pip's script found mrunc on, frozen
    from mrunc.cli import main
    sys.exit(main())

-I (isolated): PYTHONPATH, PYTHONHOME and the other PYTHON* variables are ignored, the user's site
directory is not added, nor the directory of the script or the cwd; -S: no site.py, no .pth scan.
The frozen path is pip's interpreter's sys.path minus the script's directory (and mrunc's parent
when an editable install finds it with an import hook), so an editable checkout, a venv, a --user
or system install each keep importing the same mrunc and dependencies. mrunc itself is loaded
first, straight from the file the frozen path would find (`<dir>/mrunc/__init__.py`, the first
directory of the path holding one), with importlib's own spec_from_file_location, module_from_spec
and exec_module (from _frozen_importlib*, which every interpreter has loaded before the script's
first line; importlib.util would cost an import) — the same module object a path search makes,
without the search: no finder is made for `<dir>`, and `<dir>` is not listed. For a regular
install `<dir>` is site-packages, whose listing grows with what is installed: with 285 entries,
`mrunc state` 0.17–0.21 ms of CPU less (two rounds of N = 800 interleaved, paired medians); for
an editable checkout (a directory of a dozen entries) −0.01 ms [−0.05, +0.04]: nothing. Nothing
else lists `<dir>` afterwards: mrunc's modules are found in mrunc/, the standard library's before
it. Engines that call mrunc by absolute path (podman --runtime, containerd's BinaryName) run the
same file, so they get it too. `make setup` runs `mrunc --version` once right after pip, so the
first real command is fast.

The script is left as pip wrote it (and every run takes the slow path) when it is not ours to
change: not pip's wrapper of this entry point, not owned by us, or when PYTHONPATH/PYTHONHOME
were set (then the path we see is not the environment's own). A shebang carries one argument and
at most 127 bytes on older kernels: for a long or spaced interpreter path the launcher starts
with a two-line sh prologue that execs the interpreter instead (valid Python as well).
`python -m mrunc.launcher PATH` writes the launcher at PATH explicitly.

If the package has moved since (a checkout renamed), the launcher falls back to the full start,
`python -m mrunc`, which finds mrunc wherever the environment now has it.

What the launcher cannot change is the interpreter's own start before its first line, ≈ 5.1 ms of
CPU and 686 page faults for `python -I -S` ended with os._exit (perf stat, a quiet moment; runc's
whole `state` ≈ 4.0–4.4 ms and 535). Sampled (perf, 1,000 starts, shares of that time): the
kernel's exec and the dynamic loader (libm, libz, libexpat, libc) 13 %; libc's start, the locale
and the runtime's pre-init 4 %; the core — static types, builtins, sys, importlib's bootstrap —
39 %; getpath (frozen Python) and the external importers (zipimport, and the `time` it imports)
8 %; the `encodings` package, its aliases and utf_8 (read from the .pyc files through a path
search of the standard library) 29 %; signal handlers, the three stdio objects, the script 8 %. Of
the page faults, ≈ 260 are copies of the interpreter's own data segment as its static objects are
written (1 MiB), ≈ 290 fresh pages of the heap and of the object allocator's arenas. Each of these
is the same whatever the command line says. Measured and left out (CPU, paired medians of
interleaved runs, N = 200–800):
- the base interpreter in the shebang (pyvenv.cfg's `executable`, so no pyvenv.cfg read, no
  symlinks resolved: nine system calls fewer): −0.04 ms [−0.06, −0.02]; but then sys.executable
  and sys.prefix are the base's, and what re-runs this environment's Python with them (the
  fallback above, `mrunc.labwatch`, moreverbs' re-exec, `kernel install`'s default prefix)
  would run one without mrunc;
- options that fit the shebang's one argument (`-ISu`, `-ISB`, and one -X option attached, e.g.
  `-ISXutf8`, `-ISXfrozen_modules=on`, `-ISXno_debug_ranges`): within ±0.07 ms, none below
  zero beyond the noise; -O/-OO would look for .opt-N.pyc files the standard library does not
  ship, and drop asserts;
- the locale (LANG=C.UTF-8, none at all as under containerd, en_US.UTF-8 not installed): within
  ±0.06 ms;
- a shorter launcher: the script is compiled at every start (≈ 35 µs for this one) and CPython
  first tries it as a zip archive; running a script costs ≈ 0.09 ms more than `-c` with the same
  line, ≈ 0.13 with the kernel's #! on top, but its size little (0.8 KiB more: ≈ 0.02 ms), and
  moving its lines into a module, whose code would be cached, would cost an import (≥ 0.05 ms).
"""
import os
import sys

# What identifies pip's console script for our entry point (and nothing else we would overwrite).
_PIP_MARKERS = (b"from mrunc.launcher import main", b"sys.exit(main())")
_MAX_SHEBANG = 127


def main():
    """pip's console script lands here: install the fast launcher over it, then run the command."""
    try:
        install(sys.argv[0], only_over_pip_script=True)
    except OSError:
        pass        # not ours to change (read-only venv, another user's): just run, slowly
    from .cli import main as cli_main
    return cli_main()


def launcher_text(python, path):
    """The launcher's source: `python -IS`, the fixed import path, mrunc.cli's main."""
    if len(python) + 6 <= _MAX_SHEBANG and not any(c.isspace() for c in python):
        head = f"#!{python} -IS\n"
    elif not any(c in python for c in '"$`\\\''):
        # sh runs line 2 (exec the interpreter on this file); for Python lines 2-3 are a string.
        head = f"#!/bin/sh\n'''exec' \"{python}\" -IS \"$0\" \"$@\"\n' '''\n"
    else:
        raise OSError(f"{python}: a path we will not quote in a launcher")
    pkg = [os.path.join(os.path.abspath(p), "mrunc") for p in path
           if os.path.isfile(os.path.join(p, "mrunc", "__init__.py"))][:1]
    # The package's directory is given, not worked out by the loader (is_package runs string
    # code nothing else on a short verb's way does: 64 KiB more of the interpreter's text mapped).
    return (head +
            "# mrunc launcher: isolated interpreter, fixed import path (see mrunc/launcher.py)\n"
            "import sys\n"
            "try:\n" +
            ("    from _frozen_importlib import module_from_spec\n"
             "    from _frozen_importlib_external import spec_from_file_location\n"
             f"    spec = spec_from_file_location('mrunc', {pkg[0] + '/__init__.py'!r},\n"
             f"                                   submodule_search_locations=[{pkg[0]!r}])\n"
             "    sys.modules['mrunc'] = mrunc = module_from_spec(spec)\n"
             "    spec.loader.exec_module(mrunc)\n" if pkg else "") +
            f"    sys.path[:] = {path!r}\n"
            "    from mrunc.cli import main\n"
            "except (ImportError, OSError):   # mrunc moved: the full start finds it\n"
            "    import os\n"
            "    os.execv(sys.executable, [sys.executable, '-m', 'mrunc', *sys.argv[1:]])\n"
            "sys.exit(main())\n")


def import_path():
    """This interpreter's sys.path as site left it, without the script's directory, plus the
    directory holding mrunc when only an import hook (not a path entry) finds it."""
    import mrunc
    path = [p for p in sys.path[1:] if p]
    parent = os.path.dirname(os.path.dirname(os.path.abspath(mrunc.__file__)))
    if parent not in path:
        path.append(parent)
    return path


def install(script, python=None, path=None, only_over_pip_script=False):
    """Write the launcher at `script` (through symlinks: at the file they name). Return True when
    written. With only_over_pip_script, only over pip's wrapper of our entry point, our own file,
    and when the import path is the environment's own (no PYTHONPATH/PYTHONHOME)."""
    target = os.path.realpath(script)
    st = os.stat(target)
    if only_over_pip_script:
        if st.st_uid != os.geteuid() or "PYTHONPATH" in os.environ or "PYTHONHOME" in os.environ:
            return False
        with open(target, "rb") as f:
            head = f.read(4096)
        if not (head.startswith(b"#!") and all(m in head for m in _PIP_MARKERS)):
            return False
    text = launcher_text(python or sys.executable, import_path() if path is None else path)
    tmp = f"{target}.{os.getpid()}.new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with open(fd, "wb") as f:
            f.write(text.encode())
            os.fchown(f.fileno(), st.st_uid, st.st_gid)
            os.fchmod(f.fileno(), st.st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return True


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m mrunc.launcher PATH   (write the fast mrunc launcher at PATH)")
    install(sys.argv[1])
