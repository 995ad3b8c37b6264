"""The `mrunc` command starts an isolated interpreter with a fixed import path (mrunc/launcher.py).

Real pip installs into throwaway venvs (a regular wheel, and an editable install with setuptools'
import-hook finder): pip's own console script must replace itself with the launcher on its first
run, and the launcher must then work from a hostile cwd, with hostile PYTHONPATH/PYTHONHOME, and
by absolute path through a symlink — as podman (--runtime) and containerd (BinaryName) call it.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

from mrunc import launcher

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STRACE = shutil.which("strace")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture
def hostile(tmp_path):
    """A cwd and PYTHONPATH holding a fake mrunc package and a sitecustomize that leave marks
    when imported, and a PYTHONHOME that does not exist: any of them reaching the interpreter
    breaks or betrays the command."""
    d = tmp_path / "hostile"
    (d / "mrunc").mkdir(parents=True)
    mark = tmp_path / "imported"
    (d / "mrunc" / "__init__.py").write_text(
        f"open({str(mark)!r}, 'a').write('fake mrunc\\n')\nraise SystemExit('fake mrunc')\n")
    (d / "sitecustomize.py").write_text(f"open({str(mark)!r}, 'a').write('sitecustomize\\n')\n")
    env = dict(os.environ, PYTHONPATH=str(d), PYTHONHOME=str(tmp_path / "no-such-home"))
    return d, env, mark


def check_isolated(cmd, hostile, tmp_path):
    d, env, mark = hostile
    bundle = tmp_path / f"bundle-{len(os.listdir(tmp_path))}"
    bundle.mkdir()
    p = run([*cmd, "--version"], cwd=d, env=env)
    assert p.returncode == 0 and p.stdout.startswith("mrunc version"), p
    p = run([*cmd, "spec", "--bundle", str(bundle)], cwd=d, env=env)   # imports json, mrunc.spec
    assert p.returncode == 0, p
    assert '"ociVersion"' in (bundle / "config.json").read_text()
    assert not mark.exists(), mark.read_text()


def test_hostile_env_breaks_a_plain_interpreter(hostile):
    """The environment the launcher is tested in really is hostile: a plain start fails in it."""
    d, env, _ = hostile
    assert run([sys.executable, "-c", "pass"], cwd=d, env=env).returncode != 0


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["regular", "editable"])
def test_pip_installed_command_becomes_launcher(kind, tmp_path, hostile):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copytree(os.path.join(REPO, "mrunc"), src / "mrunc",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, f), src / f)
    venv = tmp_path / "venv"
    assert run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)]).returncode == 0
    pip = [sys.executable, "-m", "pip", "-q", "--python", str(venv / "bin" / "python"), "install",
           "--no-deps"]
    if kind == "regular":
        wheels = tmp_path / "wheels"
        p = run([sys.executable, "-m", "pip", "-q", "wheel", "--no-deps", "-w", str(wheels), str(src)])
        assert p.returncode == 0, p.stderr
        p = run([*pip, *map(str, wheels.glob("mrunc-*.whl"))])
    else:   # setuptools' default editable mode: a finder hook, mrunc's dir not on sys.path
        p = run([*pip, "-e", str(src)])
    assert p.returncode == 0, p.stderr
    script = venv / "bin" / "mrunc"
    assert b"from mrunc.launcher import main" in script.read_bytes()      # pip's own script
    mode = script.stat().st_mode

    p = run([str(script), "--version"], cwd=tmp_path)      # first run: replaces itself
    assert p.returncode == 0 and p.stdout.startswith("mrunc version"), p
    text = script.read_text()
    assert text.startswith(f"#!{venv}/bin/python -IS\n"), text
    assert script.stat().st_mode == mode
    if kind == "editable":
        assert repr(str(src)) in text      # the checkout, found through the finder
    else:
        assert repr(str(src)) not in text

    check_isolated([str(script)], hostile, tmp_path)
    if kind == "regular" and STRACE:      # mrunc is in site-packages: never listed
        site = next(venv.glob("lib/python3*/site-packages"))
        assert str(site / "mrunc") in listed_dirs([str(script), "--version"], tmp_path)
        assert str(site) not in listed_dirs([str(script), "--version"], tmp_path)
    link = tmp_path / "elsewhere" / "runtime"
    link.parent.mkdir()
    link.symlink_to(script)
    check_isolated([str(link)], hostile, tmp_path)


def test_project_command_is_the_launcher(hostile, tmp_path):
    """`make setup` leaves the venv's mrunc (what the engine tests call) as the launcher."""
    script = os.path.join(os.path.dirname(sys.executable), "mrunc")
    with open(script) as f:
        first = f.readline()
    assert first == f"#!{sys.executable} -IS\n", first
    check_isolated([script], hostile, tmp_path)


def fake_pip_script(path, python):
    """pip's console script for our entry point, as pip's ScriptMaker (distlib) writes it."""
    path.write_text(f"#!{python}\n# -*- coding: utf-8 -*-\nimport re\nimport sys\n"
                    "from mrunc.launcher import main\nif __name__ == '__main__':\n"
                    "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
                    "    sys.exit(main())\n")
    path.chmod(0o751)


def test_only_pip_script_of_ours_is_replaced(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("PYTHONHOME", raising=False)
    other = tmp_path / "other"
    other.write_text("#!/bin/sh\necho not ours\n")
    assert not launcher.install(str(other), only_over_pip_script=True)
    assert other.read_text() == "#!/bin/sh\necho not ours\n"
    ours = tmp_path / "mrunc"
    fake_pip_script(ours, sys.executable)
    assert launcher.install(str(ours), only_over_pip_script=True)
    assert ours.read_text().startswith(f"#!{sys.executable} -IS\n")
    assert ours.stat().st_mode & 0o7777 == 0o751
    assert sorted(os.listdir(tmp_path)) == ["mrunc", "other"]      # no temp file left


def test_long_interpreter_path_gets_sh_prologue(tmp_path, hostile):
    """A shebang longer than old kernels read (127 bytes): sh execs the interpreter with -IS."""
    longdir = tmp_path / ("p" * 60) / ("y" * 60)
    longdir.mkdir(parents=True)
    python = longdir / "python3"
    python.symlink_to(sys.executable)
    script = tmp_path / "mrunc"
    fake_pip_script(script, sys.executable)
    assert launcher.install(str(script), python=str(python), path=launcher.import_path())
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n'''exec' ") and f'"{python}" -IS' in text, text
    check_isolated([str(script)], hostile, tmp_path)


def test_mrunc_is_imported_from_where_the_frozen_path_finds_it(tmp_path):
    """The launcher imports mrunc with its directory alone on the path (no other directory
    listed): it must be the directory the whole frozen path would find first — so a copy later
    on the path is not the one run, and one earlier is."""
    late = tmp_path / "late"
    (late / "mrunc").mkdir(parents=True)
    (late / "mrunc" / "__init__.py").write_text("raise SystemExit('the later mrunc')\n")
    base = [p for p in launcher.import_path() if p != REPO]
    for path, first in (([*base, REPO, str(late)], True), ([*base, str(late), REPO], False)):
        script = tmp_path / "mrunc"
        fake_pip_script(script, sys.executable)
        assert launcher.install(str(script), python=sys.executable, path=path)
        p = run([str(script), "--version"], cwd=tmp_path)
        if first:
            assert p.returncode == 0 and p.stdout.startswith("mrunc version"), p
        else:
            assert p.returncode != 0 and "the later mrunc" in p.stderr, p


def listed_dirs(cmd, tmp_path):
    """The directories a command opened to list (an import finder lists each directory on its
    way once), from strace."""
    log = tmp_path / "strace.log"
    p = run(["strace", "-f", "-qq", "-e", "trace=openat", "-o", str(log), *cmd], cwd=tmp_path)
    assert p.returncode == 0, p
    return set(re.findall(r'openat\(AT_FDCWD, "([^"]+)", [^)]*O_DIRECTORY', log.read_text()))


@pytest.mark.skipif(STRACE is None, reason="strace is not installed (make setup installs it)")
def test_mrunc_is_imported_without_listing_its_directory(tmp_path):
    """The launcher loads mrunc/__init__.py from the directory the frozen path finds it in, as
    importlib would, but without a finder listing that directory first: for a regular install
    that is the whole site-packages (≈ 0.2 ms of every command with 285 entries there). The
    package's own directory is listed (its modules are found there)."""
    script = os.path.join(os.path.dirname(sys.executable), "mrunc")
    listed = listed_dirs([script, "--version"], tmp_path)
    assert os.path.join(REPO, "mrunc") in listed, listed
    assert REPO not in listed, listed


def test_launcher_falls_back_when_mrunc_moved(tmp_path, monkeypatch):
    """The launcher's mrunc gone (a checkout renamed, a package removed): the command still runs,
    through the full start (`python -m mrunc`), which finds mrunc wherever it is now."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("PYTHONHOME", raising=False)
    gone = tmp_path / "gone"
    (gone / "mrunc").mkdir(parents=True)
    (gone / "mrunc" / "__init__.py").write_text("raise SystemExit('the old mrunc')\n")
    script = tmp_path / "mrunc"
    fake_pip_script(script, sys.executable)
    path = [str(gone), *launcher.import_path()]
    assert launcher.install(str(script), python=sys.executable, path=path)
    assert str(gone / "mrunc" / "__init__.py") in script.read_text()
    shutil.rmtree(gone)
    p = run([str(script), "--version"], cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.startswith("mrunc version"), p
