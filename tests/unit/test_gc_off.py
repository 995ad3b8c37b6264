"""The mrunc command works with the cyclic garbage collector off, and turns it back on where the
process stays (mrunc/launcher.py, "No garbage collector while a verb works")."""
import gc
import os
import shutil
import subprocess
import sys

import pytest

from mrunc import cli, launcher
from mrunc.process import foreground

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def gc_off():
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


@pytest.fixture
def fake_mrunc(tmp_path):
    """A package `mrunc` whose cli.main prints whether the GC is on, with our real __main__."""
    pkg = tmp_path / "fake" / "mrunc"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("import gc\n\ndef main():\n    print('gc on' if gc.isenabled() "
                                "else 'gc off')\n    return 0\n")
    shutil.copy(os.path.join(REPO, "mrunc", "__main__.py"), pkg / "__main__.py")
    return pkg.parent


def test_the_launcher_and_python_m_mrunc_start_mrunc_with_the_gc_off(tmp_path, fake_mrunc):
    script = tmp_path / "mrunc"
    script.write_text("")
    script.chmod(0o755)
    assert launcher.install(str(script), python=sys.executable, path=[str(fake_mrunc)])
    out = subprocess.run([str(script)], capture_output=True, text=True, timeout=60)
    assert out.stdout == "gc off\n", out
    out = subprocess.run([sys.executable, "-m", "mrunc"], cwd=fake_mrunc, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout == "gc off\n", out
    plain = subprocess.run([sys.executable, "-I", "-c", "import gc; print(gc.isenabled())"],
                           capture_output=True, text=True, timeout=60)
    assert plain.stdout == "True\n"      # it is the launcher that turns it off


def test_short_verbs_keep_it_off(tmp_path, gc_off):
    assert cli._main(["--root", str(tmp_path), "list", "-q"]) == 0
    assert cli._main(["--root", str(tmp_path), "state", "no-such-container"]) == 1
    assert not gc.isenabled()


def test_a_verb_that_stays_turns_it_on(tmp_path, gc_off):
    cli._main(["--root", str(tmp_path), "events", "no-such-container"])     # streams, for days
    assert gc.isenabled()


def test_a_stepped_create_turns_it_on(tmp_path, gc_off):
    r, w = os.pipe()        # the step channel (a person clicks Next): the verb takes `w` over
    try:
        cli._main(["--root", str(tmp_path), "create", "--step-fd", str(w), "--bundle",
                   "/no/such/bundle", "x"])         # fails (no bundle), once the GC is on
    finally:
        os.close(r)
    assert gc.isenabled()


def test_a_foreground_wait_turns_it_on(gc_off):
    pid = os.fork()
    if pid == 0:
        os._exit(3)
    assert foreground.stay(pid) == 3
    assert gc.isenabled()
