"""What a process forked from the runtime (the clone child, exec's helper) keeps of its fds:
exactly the ones it names (process.common.close_inherited) — by close_range(2) where the kernel
has it, by listing /proc/self/fd where it does not."""
import os

import pytest

from mrunc import linux
from mrunc.process import common


def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _left_in_a_fork(keep_of, monkeypatch, no_close_range=False):
    """Open some fds (a hole between them, one far above), fork, close all but keep_of(fds)
    there: (what was kept, the fds below 300 the child still has)."""
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(6)]
    os.close(fds.pop(2))                        # a hole: an fd number that is not open
    fds.append(os.dup2(fds[0], 200))            # far above the rest
    r, w = os.pipe()
    keep = keep_of(fds) | {w}
    pid = os.fork()
    if pid == 0:
        try:
            if no_close_range:
                monkeypatch.setattr(linux, "close_range", lambda first, last: False)
            common.close_inherited(keep)
            left = [fd for fd in range(300) if _is_open(fd)]
            os.write(w, " ".join(map(str, left)).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    left = {int(x) for x in os.read(r, 4096).decode().split()}
    os.close(r)
    for fd in fds:
        os.close(fd)
    return keep, left


@pytest.mark.parametrize("no_close_range", [False, True], ids=["close_range", "listing"])
def test_only_the_named_fds_are_left(monkeypatch, no_close_range):
    keep, left = _left_in_a_fork(lambda fds: {0, 1, 2, fds[1], fds[3], fds[-1]}, monkeypatch,
                                 no_close_range)
    assert left == keep


def test_close_range_closes_a_range_and_nothing_else():
    """In a fork: a range closed in this test process could hold another test's fds."""
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            a, b, c = (os.open(os.devnull, os.O_RDONLY) for _ in range(3))
            lo, mid, hi = sorted((a, b, c))
            ok = (linux.close_range(lo, mid) and not _is_open(lo) and not _is_open(mid)
                  and _is_open(hi))
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
