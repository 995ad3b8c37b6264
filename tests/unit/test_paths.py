"""mrunc.paths and the other stand-ins mrunc's commands use instead of os (which costs the short
verbs ≈ 1 ms to import, create and run ≈ 0.25 MiB of their peak memory): each gives what os
gives, on the paths and directories below."""
import os
import posixpath

import pytest

from mrunc import paths, userdirs
from mrunc.cgroups import fs, recorded

NAMES = ["", "/", "//", "a", "a/", "/a", "/a/", "/a/b", "a/b/", "/a//b", "//a", "a/./b", "/a/..",
         ".", "..", "/run/mrunc", "/run/mrunc/", "/run/mrunc/c1/state.json", "x/", "/.new-1-2-ab"]


@pytest.mark.parametrize("path", NAMES)
def test_dirname_basename_as_os_path(path):
    assert paths.dirname(path) == posixpath.dirname(path)
    assert paths.basename(path) == posixpath.basename(path)


@pytest.mark.parametrize("first", NAMES)
def test_join_as_os_path(first):
    for rest in (["c1"], ["/abs"], ["c1", "state.json"], ["", "x"], ["a/", "b"], []):
        assert paths.join(first, *rest) == posixpath.join(first, *rest), (first, rest)


MORE_NAMES = NAMES + ["///", "///a/../b", "/..", "../a", "a/../..", "a/../../b", "//..", "./.",
                      "a/b/../../..", "//a//b/", "a/.."]


@pytest.mark.parametrize("path", MORE_NAMES)
def test_normpath_abspath_as_os_path(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert paths.normpath(path) == posixpath.normpath(path)
    assert paths.abspath(path) == posixpath.abspath(path)


def test_realpath_as_os_path(tmp_path, monkeypatch):
    """Each symlink on the way replaced by its target (relative or absolute, to a file, a
    directory, nothing, itself); a ".." after a symlink climbs from where it points."""
    (tmp_path / "r" / "s" / "t").mkdir(parents=True)
    (tmp_path / "f").write_text("")
    for link, target in (("l1", "r/s"), ("l2", str(tmp_path / "l1" / "t")), ("r/s/t/up", "../.."),
                         ("loop1", "loop2"), ("loop2", "loop1"), ("dang", "missing/x"),
                         ("self", "."), ("abs", "/")):
        os.symlink(target, tmp_path / link)
    monkeypatch.chdir(tmp_path)
    for p in ("l1", "l2", "l2/up", "l2/up/l1/..", "l1/../r", "dang", "dang/y", "loop1", "loop1/z",
              "f", "f/g", "r/s/t/up/../l2", ".", "/", "//", f"{tmp_path}//l2/", "nothing/..",
              "l2/./up/./r", "self/self/l1", "abs/tmp/..", "r/s/t/up/up", "../" + tmp_path.name):
        assert paths.realpath(p) == os.path.realpath(p), p


def test_isfile_islink_lexists_as_os_path(tmp_path):
    (tmp_path / "f").write_text("")
    (tmp_path / "d").mkdir()
    os.symlink("f", tmp_path / "to-f")
    os.symlink("nowhere", tmp_path / "dangling")
    for name in ("f", "d", "to-f", "dangling", "missing", "f/below"):
        p = str(tmp_path / name)
        assert paths.isfile(p) == os.path.isfile(p), name
        assert paths.islink(p) == os.path.islink(p), name
        assert paths.lexists(p) == os.path.lexists(p), name
    assert not (paths.isfile("a\0b") or paths.islink("a\0b") or paths.lexists("a\0b"))


def test_makedirs_as_os_makedirs(tmp_path):
    """The missing parents with mode 0o777 (less the umask), the last one with the mode asked;
    an existing one is an error unless exist_ok, and so is a file in the way even then."""
    old = os.umask(0o022)
    try:
        paths.makedirs(str(tmp_path / "a" / "b" / "c") + "/", 0o700)
        paths.makedirs(str(tmp_path / "rel" / "x" / "."))
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a" / "b" / "c").st_mode & 0o777 == 0o700
    assert os.stat(tmp_path / "a" / "b").st_mode & 0o777 == 0o755
    assert (tmp_path / "rel" / "x").is_dir()
    paths.makedirs(str(tmp_path / "a" / "b" / "c"), exist_ok=True)
    with pytest.raises(FileExistsError):
        paths.makedirs(str(tmp_path / "a" / "b" / "c"))
    (tmp_path / "f").write_text("")
    for exist_ok in (False, True):
        with pytest.raises(OSError):
            paths.makedirs(str(tmp_path / "f"), exist_ok=exist_ok)
        with pytest.raises(NotADirectoryError):
            paths.makedirs(str(tmp_path / "f" / "x"), exist_ok=exist_ok)


def test_a_pathlib_path_as_os_path_takes_it(tmp_path):
    """mrunc.api's callers may pass the state root as a pathlib.Path."""
    for p in (tmp_path, tmp_path / "x"):
        assert paths.join(p, "c1") == posixpath.join(p, "c1")
        assert paths.dirname(p) == posixpath.dirname(p)
        assert paths.basename(p) == posixpath.basename(p)
    assert paths.exists(tmp_path) and paths.isdir(tmp_path)


def test_exists_and_isdir_as_os_path(tmp_path):
    (tmp_path / "f").write_text("")
    (tmp_path / "d").mkdir()
    os.symlink("d", tmp_path / "to-d")
    os.symlink("nowhere", tmp_path / "dangling")
    for name in ("f", "d", "to-d", "dangling", "missing", "f/below", "d/"):
        p = str(tmp_path / name) + ("/" if name.endswith("/") else "")
        assert paths.exists(p) == os.path.exists(p), name
        assert paths.isdir(p) == os.path.isdir(p), name
    assert paths.exists("a\0b") is False and paths.isdir("a\0b") is False   # ValueError: False


def test_real_parent_is_realpath_of_the_directory_above(tmp_path, monkeypatch):
    real = tmp_path / "real"
    (real / "state").mkdir(parents=True)
    os.symlink(real, tmp_path / "link")
    monkeypatch.chdir(tmp_path)
    for p in (str(real / "state"), str(tmp_path / "link" / "state"), "link/state", "real/state/",
              str(tmp_path / "link" / "state") + "//"):
        assert userdirs._real_parent(p) == os.path.realpath(os.path.dirname(os.path.abspath(p))), p


@pytest.mark.parametrize("path", ["/sys/fs/cgroup", "/sys/fs/cgroup/memory/x", "/sys/fs/cgroup/",
                                  "/sys/fs/cgroup//memory", "/sys/fs/cgroup/./x",
                                  "/sys/fs/cgroup/../x", "/sys/fs/cgroup/x/..", "/sys/fs/cgroupX",
                                  "//sys/fs/cgroup/x", "sys/fs/cgroup/x", "/sys/fs/cgroup/.x"])
def test_recorded_paths_are_clean_as_normpath_says(path):
    assert recorded._below_root(path) == (os.path.normpath(path) == path and
                                          (path == "/sys/fs/cgroup" or
                                           path.startswith("/sys/fs/cgroup/")))


def test_cgroup_tree_walks_as_os_walk(tmp_path):
    for d in ("a/b/c", "a/d", "e"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "a" / "cgroup.procs").write_text("12\n7\n")
    (tmp_path / "a" / "b" / "c" / "cgroup.procs").write_text("7\n30\n")
    os.symlink(tmp_path / "e", tmp_path / "a" / "link")     # not followed, as os.walk does not
    top = str(tmp_path / "a")
    walked = [t for t, _, _ in os.walk(top)]
    assert sorted(fs._tree(top)) == sorted(walked)
    leaf_first = fs.subdirs_leaf_first(top)
    assert sorted(leaf_first) == sorted(walked)
    assert all(leaf_first.index(d) < leaf_first.index(os.path.dirname(d))
               for d in leaf_first if d != top)          # rmdir's order: children first
    assert fs.procs(top) == [7, 12, 30]
    assert fs.procs(str(tmp_path / "missing")) == [] and fs.subdirs_leaf_first(str(tmp_path / "missing")) == []
