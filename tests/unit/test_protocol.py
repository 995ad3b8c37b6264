"""The runtime <-> init channel (mrunc.process.protocol) on a real socketpair: each message is
read at its own length, whole — a few bytes or a phase report of hundreds of KiB, with or
without fds — in order, and the other end's close reads as EOFError."""
import os

import pytest

from mrunc.process import protocol


def test_messages_of_any_length_arrive_whole_and_in_order(tmp_path):
    mine, theirs = protocol.pair()
    try:
        big = {"t": "phase", "phase": "mount", "calls": [{"call": "mount", "args": ["x" * 100]}] * 1500}
        small = {"t": "continue"}
        r, w = os.pipe()
        try:
            protocol.send(theirs, big)                   # ≈ 170 KiB: more than any fixed read
            protocol.send(theirs, small)
            protocol.send(theirs, {"t": "console"}, fds=[r])
            assert protocol.recv(mine, "phase") == big
            assert protocol.recv(mine, "continue", with_fds=True) == dict(small, _fds=[])
            got = protocol.recv(mine, "console", with_fds=True)
            (fd,) = got.pop("_fds")
            assert got == {"t": "console"}
            os.write(w, b"through the passed fd")
            assert os.read(fd, 100) == b"through the passed fd"   # the same pipe, passed on
            os.close(fd)
        finally:
            os.close(r)
            os.close(w)
        theirs.close()
        with pytest.raises(EOFError):
            protocol.recv(mine, "ready")
    finally:
        mine.close()
        if theirs.fileno() >= 0:
            theirs.close()
