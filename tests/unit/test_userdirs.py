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
