"""Sandbox fds=: the small interpreter that renumbers our fds to 3, 4, … before exec'ing mrunc
(`--preserve-fds` passes exactly those) — also when the fds to move sit on each other's targets."""
import os
import subprocess
import sys

from mrunc.sandbox.container import _MOVE_FDS

SHOW = "import os; print(*(os.readlink(f'/proc/self/fd/{n}') for n in (3, 4, 5)))"


def test_fds_are_moved_to_3_and_up_even_when_they_overlap(tmp_path):
    paths = [tmp_path / name for name in ("a", "b", "c")]
    fds = [os.open(p, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC) for p in paths]
    try:
        # swap the first two into each other's place: a naive dup2 chain would lose one
        cmd = [sys.executable, "-c", _MOVE_FDS, "3", str(fds[1]), str(fds[0]), str(fds[2]),
               sys.executable, "-c", SHOW]
        out = subprocess.run(cmd, pass_fds=fds, capture_output=True, text=True, check=True).stdout
    finally:
        for fd in fds:
            os.close(fd)
    assert out.split() == [str(paths[1]), str(paths[0]), str(paths[2])]
