"""mrunc.userdirs: a state directory is used only when the caller alone controls it."""
import os

import pytest

from mrunc import userdirs
from mrunc.userdirs import UnsafeDir

OTHER = 4242            # a uid that is not ours (root runs these tests)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chowns to another uid (root)")


def test_a_missing_dir_is_made_private(tmp_path):
    d = tmp_path / "a" / "state"
    assert userdirs.ensure_private(str(d)) == str(d)
    st = d.stat()
    assert st.st_uid == os.geteuid() and st.st_mode & 0o777 == 0o700


def test_a_dir_another_user_made_first_is_refused_and_left_alone(tmp_path):
    d = tmp_path / "state"
    d.mkdir(mode=0o777)
    os.chmod(d, 0o777)
    os.chown(d, OTHER, OTHER)
    with pytest.raises(UnsafeDir, match=rf"^state directory {d}: owned by uid {OTHER}, not you "):
        userdirs.ensure_private(str(d))
    assert os.listdir(d) == [] and d.stat().st_uid == OTHER


def test_group_or_other_writable_is_refused(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    os.chmod(d, 0o770)
    with pytest.raises(UnsafeDir, match=r"writable by group or others \(mode 0770\)"):
        userdirs.check_private(str(d))
    os.chmod(d, 0o711)
    userdirs.check_private(str(d))


def test_a_symlink_is_refused_even_to_our_own_dir(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    os.symlink(tmp_path / "real", tmp_path / "link")
    with pytest.raises(UnsafeDir, match="is a symlink"):
        userdirs.check_private(str(tmp_path / "link"))


def test_a_parent_others_can_write_is_refused_unless_sticky(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    (shared / "state").mkdir(mode=0o700)
    with pytest.raises(UnsafeDir, match=rf"{shared} above it is writable by others \(mode 0777, not sticky\)"):
        userdirs.check_private(str(shared / "state"))
    os.chmod(shared, 0o1777)            # like /tmp: only an entry's owner may rename it
    userdirs.check_private(str(shared / "state"))


def test_a_parent_another_user_owns_is_refused(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    (theirs / "state").mkdir(mode=0o700)
    os.chown(theirs, OTHER, OTHER)
    with pytest.raises(UnsafeDir, match=rf"{theirs} above it is owned by uid {OTHER}"):
        userdirs.check_private(str(theirs / "state"))


def test_check_if_present_passes_nothing_and_refuses_what_it_cannot_see(tmp_path):
    assert userdirs.check_if_present(str(tmp_path / "none")) == str(tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_root_keeps_run(monkeypatch):
    assert userdirs.default_root() == "/run/mrunc"
    assert userdirs.default_root("mrunc-lab") == "/run/mrunc-lab"


def _in_isolated_python(code, env, user=None):
    """Run `code` as the launcher runs mrunc (-I -S: no os imported) with exactly `env`."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(userdirs.__file__))
    p = subprocess.run([sys.executable, "-I", "-S", "-c",
                        f"import sys; sys.path[:0] = [{root!r}]\n" + code],
                       env=env, user=user, capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode(errors="surrogateescape").splitlines()


def test_a_user_s_default_root_is_read_from_the_environment_without_os(tmp_path):
    """Not root: the default root is under $XDG_RUNTIME_DIR, read from the environment without
    importing os (≈ 1 ms of every rootless command) — posix's copy, decoded as os decodes it."""
    import tempfile
    base = tempfile.mkdtemp()           # in sticky /tmp, root's, 0755: a path uid OTHER can walk
    try:
        os.chmod(base, 0o755)
        xdg = os.path.join(base, "xdg")
        os.mkdir(xdg, 0o700)
        os.chown(xdg, OTHER, OTHER)
        out = _in_isolated_python(
            "from mrunc import userdirs\n"
            "print(userdirs.default_root()); print(userdirs.getenv('ODD'))\n"
            "print('os' in sys.modules)",
            {"XDG_RUNTIME_DIR": xdg, "ODD": b"caf\xe9"}, user=OTHER)
        assert out == [f"{xdg}/mrunc", os.fsdecode(b"caf\xe9"), "False"]
    finally:
        import shutil
        shutil.rmtree(base)


def test_the_environment_as_the_program_changed_it_is_what_counts(monkeypatch):
    """A program that has os (a notebook) may have changed its environment: that is the one read."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/changed/by/the/program")
    assert userdirs.getenv("XDG_RUNTIME_DIR") == "/changed/by/the/program"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert userdirs.getenv("XDG_RUNTIME_DIR") is None
