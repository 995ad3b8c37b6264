"""mrunc.rootfs.inroot on both of its paths — openat2 (RESOLVE_IN_ROOT) and the Python walk kept
for kernels older than 5.6 — and against a swapper thread that turns a directory into a symlink
out of the rootfs while the runtime makes a path below it (S7, CVE-2024-45310)."""
import os
import shutil
import threading

import pytest

from mrunc import linux
from mrunc.rootfs import inroot


@pytest.fixture(params=["openat2", "walk"])
def path_kind(request, monkeypatch):
    if request.param == "openat2" and not linux.has_openat2():
        pytest.skip("this kernel has no openat2")
    if request.param == "walk":
        monkeypatch.setattr(linux, "has_openat2", lambda: False)
    return request.param


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


def test_symlinks_resolve_inside_the_root(path_kind, tree):
    root, outside = tree
    (root / "etc").symlink_to(str(outside))      # absolute: from the rootfs, not from "/"
    (root / "up").symlink_to("../../../..")      # ".." stops at the rootfs
    assert _open(root, "/etc/x/y", create="dir") == f"{root}{outside}/x/y"
    assert _open(root, "/up/etc/x") == f"{root}{outside}/x"
    assert _open(root, "/up/new", create="file") == f"{root}/new"
    assert os.listdir(outside) == []


def test_dangling_symlink_is_created_through_inside(path_kind, tree):
    root, outside = tree
    (root / "a").symlink_to("/b/c")
    assert _open(root, "/a/d", create="dir") == f"{root}/b/c/d"
    assert os.path.isdir(root / "b" / "c" / "d")


def test_missing_without_create_and_loops(path_kind, tree):
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
def test_racing_swapper_never_makes_anything_outside(path_kind, tree, create):
    """A thread flips rootfs/vol/sub between a directory and a symlink to a directory outside the
    rootfs (what a process sharing the volume could do) while the runtime makes vol/sub/a/b —
    hundreds of times. Whatever wins each race, nothing appears outside, and every fd returned
    is under the rootfs."""
    root, outside = tree
    vol = root / "vol"
    vol.mkdir()
    stop = threading.Event()

    def swap():
        i = 0
        while not stop.is_set():
            i += 1
            old = vol / f".old{i}"
            try:
                os.rename(vol / "sub", old)  # whatever is there now, out of the way
            except OSError:
                pass
            try:
                os.symlink(outside, vol / "sub") if i % 2 else os.mkdir(vol / "sub")
            except OSError:
                pass  # the runtime made it first
            if old.is_symlink():
                old.unlink()
            elif old.exists():
                shutil.rmtree(old, ignore_errors=True)

    t = threading.Thread(target=swap, daemon=True)
    t.start()
    made = 0
    try:
        for _ in range(400):
            try:
                where = _open(root, "/vol/sub/a/b", create=create)
            except OSError:
                continue  # a race lost cleanly is fine; a write outside is not
            assert where.startswith(f"{root}/"), where
            made += 1
    finally:
        stop.set()
        t.join()
    assert os.listdir(outside) == [], "something was made outside the rootfs"
    assert made > 0
