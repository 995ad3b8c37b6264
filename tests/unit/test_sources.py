"""Bind sources without root: how an opened source becomes a mount (recorded), the open_tree
fallback, the runtime helper's refusal to answer from its own mount namespace, and when the
runtime opens sources at all. The real thing, in a user namespace: integration/test_userns_binds."""
import errno
import os
import posix
import time

import pytest

from mrunc import rootfs
from mrunc.linux import (MOUNT_ATTR__ATIME, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOSUID,
                         MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY, MS_BIND, MS_RDONLY, MS_REMOUNT,
                         Syscalls)
from mrunc.process import parent, protocol
from mrunc.process.sources import SourceHelper
from mrunc.rootfs import mounts
from mrunc.rootfs.mounts import kept_flags
from mrunc.rootfs.sources import BindSource, open_source

from test_rootfs import Rec, _config


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    (tmp_path / "data").mkdir()
    return tmp_path


def _fd_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _tree_opener(opened):
    """Stands in for the runtime: hands init an fd of the source as if it were a detached mount."""
    def open_source(path, recursive):
        src = BindSource(os.open(path, os.O_PATH | os.O_CLOEXEC), "tree", path)
        opened.append((src.fd, recursive))
        return src
    return open_source


def test_detached_source_gets_its_flags_then_is_moved(bundle):
    """ro (and nosuid, an atime mode…) are set on the detached copy, then it is attached: no
    remount, so the new mount is never looked up again."""
    config = _config([{"destination": "/x", "source": "data", "options": ["rbind", "ro", "suid",
                                                                             "noatime"]}])
    rec, opened = Rec(str(bundle / "rootfs")), []
    rootfs.mount_entries(rec, config, str(bundle / "rootfs"), str(bundle), open_source=_tree_opener(opened))
    [(fd, recursive)] = opened
    path = str(bundle / "data")
    assert rec.log == [
        ("mount_setattr", (fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME,
                           MOUNT_ATTR_NOSUID | MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME |
                           MOUNT_ATTR_NOSYMFOLLOW, path)),
        ("move_mount", (fd, "fd:/x", path)),  # no mount(2): the copy is the bind
    ]
    assert recursive and not _fd_open(fd)  # a host fd: closed once mounted


def test_detached_source_is_remounted_without_mount_setattr(bundle, monkeypatch):
    """A kernel before 5.12 (mount_setattr: ENOSYS): attached, then remounted as before."""
    monkeypatch.setattr(mounts, "_no_setattr", [])
    config = _config([{"destination": "/x", "source": "data", "options": ["rbind", "ro"]}])
    rec, opened = Rec(str(bundle / "rootfs"), fail={"mount_setattr": OSError(errno.ENOSYS, "no")}), []
    rootfs.mount_entries(rec, config, str(bundle / "rootfs"), str(bundle), open_source=_tree_opener(opened))
    keep = kept_flags(str(bundle / "rootfs" / "x"), MS_RDONLY)
    [(fd, recursive)] = opened
    assert rec.log[1:] == [
        ("move_mount", (fd, "fd:/x", str(bundle / "data"))),
        ("mount", (None, "fd:/x", None, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, None)),
    ]
    assert mounts._no_setattr  # and not asked again


def test_source_fd_closed_when_the_mount_fails(bundle):
    config = _config([{"destination": "/x", "source": "data", "options": ["bind"]}])
    rec, opened = Rec(str(bundle / "rootfs"), fail={"move_mount": OSError(errno.EINVAL, "no")}), []
    with pytest.raises(OSError, match=r"mounts\[0\] /x"):
        rootfs.mount_entries(rec, config, str(bundle / "rootfs"), str(bundle),
                             open_source=_tree_opener(opened))
    [(fd, recursive)] = opened
    assert not recursive and not _fd_open(fd)


def test_a_file_source_makes_a_file_mount_point(bundle):
    (bundle / "hosts").write_text("127.0.0.1 localhost\n")
    config = _config([{"destination": "/etc/hosts", "source": "hosts", "options": ["bind"]}])
    rec, opened = Rec(str(bundle / "rootfs")), []
    rootfs.mount_entries(rec, config, str(bundle / "rootfs"), str(bundle), open_source=_tree_opener(opened))
    assert (bundle / "rootfs" / "etc" / "hosts").is_file()
    assert rec.log == [("move_mount", (opened[0][0], "fd:/etc/hosts", str(bundle / "hosts")))]


class _Kernel(Syscalls):
    """open_tree answers like a kernel: a real fd, or ENOSYS for one from before 5.2."""

    def __init__(self, has_open_tree):
        super().__init__()
        self.has = has_open_tree

    def open_tree(self, path, recursive=False):
        self._rec("open_tree", path, recursive)
        if not self.has:
            raise OSError(errno.ENOSYS, "open_tree: Function not implemented")
        return os.open(path, os.O_PATH | os.O_CLOEXEC)


@pytest.mark.parametrize("has_open_tree, how", [(True, "tree"), (False, "path")])
def test_open_source_detached_or_o_path(tmp_path, has_open_tree, how):
    k = _Kernel(has_open_tree)
    src = open_source(k, str(tmp_path), recursive=True, detached=True)
    try:
        assert src.how == how and src.is_dir() and not src.on_procfs()
        assert k.log == [("open_tree", (str(tmp_path), True))]
    finally:
        src.close()
    own = open_source(k, str(tmp_path))  # init's own: O_PATH, no open_tree
    own.close()
    assert own.how == "path" and len(k.log) == 1


def test_missing_source_names_it(tmp_path):
    for detached in (False, True):
        with pytest.raises(FileNotFoundError, match=rf"bind source {tmp_path}/nope: no such file"):
            open_source(_Kernel(True), str(tmp_path / "nope"), detached=detached)


def test_helper_never_answers_from_the_runtimes_mount_namespace(tmp_path):
    """Until it has joined init's mount namespace, the helper refuses: a copy made in the host's
    namespace would carry none of the locks a user namespace's mounts have."""
    mine, theirs = protocol.pair()
    theirs.settimeout(10)    # a helper that never answers fails the test instead of hanging it
    helper = SourceHelper(mine)
    helper.start()
    try:
        protocol.send(theirs, {"t": "mount-source", "path": str(tmp_path), "recursive": False})
        answer = protocol.recv(theirs, "mount-source", with_fds=True)
    finally:
        theirs.close()       # as init does once its mounts are done: the thread ends
        helper.close()
    assert answer["_fds"] == [] and answer["errno"] == errno.EINVAL, answer
    assert "not in the container's mount namespace" in answer["message"]
    assert answer["calls"] == []  # nothing opened


def test_helper_ends_when_init_closes_its_end():
    """init closes its end after its mounts: the helper's thread ends then, before the runtime
    closes it (close() only waits for that); and it ends too when init never asked."""
    for asks in (True, False):
        tasks = set(os.listdir("/proc/self/task"))
        mine, theirs = protocol.pair()
        helper = SourceHelper(mine)
        helper.start()
        if asks:
            protocol.send(theirs, {"t": "mount-source", "path": "/", "recursive": False})
            assert "errno" in protocol.recv(theirs, "mount-source", with_fds=True)
        theirs.close()
        assert helper._ended.acquire(timeout=10), "the helper's thread did not end"
        helper._ended.release()
        helper.close()
        assert mine.fileno() == -1
        for _ in range(500):
            if set(os.listdir("/proc/self/task")) == tasks:
                break
            time.sleep(0.01)
        assert set(os.listdir("/proc/self/task")) == tasks


def test_a_helper_never_started_closes_its_socket():
    """The clone child died before init was forked: the helper never started; closing it
    waits for no thread and closes the runtime's end (init's end reads end-of-file)."""
    mine, theirs = protocol.pair()
    tasks = set(os.listdir("/proc/self/task"))
    SourceHelper(mine).close()
    assert mine.fileno() == -1 and set(os.listdir("/proc/self/task")) == tasks
    assert theirs.recv(1) == b""
    theirs.close()


@pytest.mark.parametrize("euid, namespaces, mounts, expect", [
    (0, ["user"], [{"options": ["rbind"]}], True),
    (0, ["user"], [{"options": ["nosuid"]}], False),  # no bind: no helper thread
    (0, ["mount"], [{"options": ["bind"]}], False),   # init has the runtime's credentials
    (1000, ["user"], [{"options": ["bind"]}], False),  # rootless: reaches no more than init
])
def test_when_the_runtime_opens_sources(monkeypatch, euid, namespaces, mounts, expect):
    monkeypatch.setattr(posix, "geteuid", lambda: euid)    # what process.parent calls (os's C module)
    config = {"mounts": mounts, "linux": {"namespaces": [{"type": t} for t in namespaces]}}
    assert parent._runtime_opens_sources(config) is expect
