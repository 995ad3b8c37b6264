"""mrunc.rootfs.inroot on both of its paths — openat2 (RESOLVE_IN_ROOT) and the Python walk kept
for kernels older than 5.6 — and against a swapper thread that turns a directory into a symlink
out of the rootfs while the runtime makes a path below it (S7, CVE-2024-45310)."""
import os

import pytest

from conftest import flipping
from mrunc.rootfs import inroot


@pytest.fixture
def tree(tmp_path):
    root, outside = tmp_path / "rootfs", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    return root, outside


def _open(root, path, create=None):
    root_fd = inroot.open_root(str(root))
    try:
        fd = inroot.open_in_root(root_fd, str(root), path, create)
        try:
            return os.readlink(inroot.fdpath(fd))
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)


def test_symlinks_resolve_inside_the_root(resolution, tree):
    root, outside = tree
    (root / "etc").symlink_to(str(outside))      # absolute: from the rootfs, not from "/"
    (root / "up").symlink_to("../../../..")      # ".." stops at the rootfs
    assert _open(root, "/etc/x/y", create="dir") == f"{root}{outside}/x/y"
    assert _open(root, "/up/etc/x") == f"{root}{outside}/x"
    assert _open(root, "/up/new", create="file") == f"{root}/new"
    assert os.listdir(outside) == []


def test_dangling_symlink_is_created_through_inside(resolution, tree):
    root, outside = tree
    (root / "a").symlink_to("/b/c")
    assert _open(root, "/a/d", create="dir") == f"{root}/b/c/d"
    assert os.path.isdir(root / "b" / "c" / "d")


def test_missing_without_create_and_loops(resolution, tree):
    root, _ = tree
    with pytest.raises(FileNotFoundError):
        _open(root, "/nope")
    (root / "l1").symlink_to("l2")
    (root / "l2").symlink_to("l1")
    with pytest.raises(OSError, match="too many symlinks"):
        _open(root, "/l1/x", create="dir")
    (root / "f").write_text("")
    with pytest.raises(NotADirectoryError):
        _open(root, "/f/x", create="dir")


@pytest.mark.parametrize("create", ["dir", "file"])
def test_racing_swapper_never_makes_anything_outside(resolution, tree, create):
    """A thread flips rootfs/vol/sub between a directory and a symlink to a directory outside the
    rootfs (what a process sharing the volume could do) while the runtime makes vol/sub/a/b —
    hundreds of times. Whatever wins each race, nothing appears outside, and every fd returned
    is under the rootfs."""
    root, outside = tree
    vol = root / "vol"
    vol.mkdir()
    made = 0
    with flipping(vol, outside):
        for _ in range(400):
            try:
                where = _open(root, "/vol/sub/a/b", create=create)
            except OSError:
                continue  # a race lost cleanly is fine; a write outside is not
            assert where.startswith(f"{root}/"), where
            made += 1
    assert os.listdir(outside) == [], "something was made outside the rootfs"
    assert made > 0


def test_open_component_makes_a_file_never_through_a_symlink(tree):
    """create="file": a missing name becomes an empty file and the fd is that file; a name
    already there — a file, or a symlink pointing out of the rootfs — is opened as it is,
    never followed, never truncated, and nothing is made where the symlink points."""
    root, outside = tree
    (root / "kept").write_text("data")
    (root / "link").symlink_to(str(outside / "made"))
    d = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for name, kind in (("new", "file"), ("kept", "file"), ("link", "symlink")):
            fd = inroot.open_component(d, name, "file")
            try:
                st = os.fstat(fd)
                assert (st.st_ino, st.st_dev) == ((root / name).lstat().st_ino, (root / name).lstat().st_dev)
                assert os.path.islink(root / name) == (kind == "symlink")
            finally:
                os.close(fd)
    finally:
        os.close(d)
    assert (root / "new").read_text() == "" and (root / "kept").read_text() == "data"
    assert os.listdir(outside) == []
