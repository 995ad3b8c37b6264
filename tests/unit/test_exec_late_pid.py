"""Rootless exec's hand-over (mrunc.process.exec._sibling): the fork that joined the container's
PID namespace reports the pid of the process it forked as ours, and exits. The process may speak
first (the two share one socket); what it said is kept, in order, for _serve. Real forks, no root."""
import os
from contextlib import closing

import pytest

from mrunc.process import exec as ex
from mrunc.process import protocol


def helper(*messages):
    """A child that sends `messages` on the socket and exits: the fork's part, played."""
    mine, theirs = protocol.pair()
    pid = os.fork()
    if pid == 0:
        try:
            mine.close()
            for m in messages:
                protocol.send(theirs, m)
        finally:
            os._exit(0)
    theirs.close()
    return mine, pid


def reaped(pid):
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return True


def test_pid_after_the_process_spoke_keeps_its_messages():
    sock, h = helper({"t": "console"}, {"t": "pid", "pid": 4242}, {"t": "seccomp"})
    with closing(sock):
        pid, early = ex._sibling(sock, h)
        assert pid == 4242
        assert [m["t"] for m in early] == ["console"]
        assert protocol.recv(sock)["t"] == "seccomp"      # after the pid: left for _serve
    assert reaped(h)


def test_an_error_before_the_pid_is_raised_and_the_helper_reaped():
    sock, h = helper({"t": "error", "phase": "namespaces", "message": "setns(CLONE_NEWUSER): EPERM"})
    with closing(sock), pytest.raises(ex.ExecError, match="setns"):
        ex._sibling(sock, h)
    assert reaped(h)


def test_a_helper_that_dies_silently_is_an_error():
    sock, h = helper()
    with closing(sock), pytest.raises(ex.ExecError, match="died before it forked"):
        ex._sibling(sock, h)
    assert reaped(h)


def test_serve_reads_the_early_messages_first():
    sock, h = helper({"t": "error", "message": "from the socket"})
    seen = []
    with closing(sock):
        with pytest.raises(ex.ExecError, match="from the socket"):
            ex._serve(sock, lambda fd: seen.append("console"), None,
                      early=[{"t": "console", "_fds": [-1]}])
    os.waitpid(h, 0)
    assert seen == ["console"]
