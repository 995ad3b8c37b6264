"""mrunc.procfs: what a procfs handle accepts as /proc, and how files below it are opened — with
openat2 and with the walk kept for older kernels. (Racing bind mounts:
integration/test_rootfs_races.py.)"""
import errno
import os

import pytest

from mrunc import linux, procfs
from mrunc.linux import RecordingSyscalls


@pytest.fixture
def proc(resolution):
    handle = procfs.Proc.at("/proc")
    yield handle
    handle.close()


def test_only_the_root_of_a_procfs_is_a_handle(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "link").symlink_to("/proc")
    for fake in (tmp_path / "proc", tmp_path / "link", "/proc/sys", "/proc/self"):
        with pytest.raises(OSError) as e:
            procfs.Proc.at(str(fake))
        assert e.value.errno in (errno.EPERM, errno.ELOOP, errno.ENOTDIR), fake


def test_writes_land_in_the_file_below_the_handle(proc):
    rec = RecordingSyscalls()
    proc.write(rec, "self/comm", "x", "test")  # recorded only
    assert rec.log == [("write_fd", ("/proc/self/comm", "x"))]
    with open("/proc/self/comm") as f:
        old = f.read().strip()
    try:
        proc.write(linux.Syscalls(), "self/comm", "procfs-test", "test")
        with open("/proc/self/comm") as f:
            assert f.read().strip() == "procfs-test"
    finally:
        with open("/proc/self/comm", "w") as f:
            f.write(old)


def test_magic_links_and_dotdot_are_refused(proc):
    for rel in ("self/root/etc/passwd", "self/cwd", "self/fd/0", "self/../../etc/passwd"):
        with pytest.raises(OSError):
            os.close(proc.open(rel))
    with pytest.raises(OSError, match="test: open /proc/self/nope"):
        proc.write(RecordingSyscalls(), "self/nope", "1", "test")
