"""The runtime's helper that opens bind sources for an init in a user namespace.

Why the runtime opens them, and why from inside the container's mount namespace, is told in
mrunc.rootfs.sources. This is the plumbing: a thread of `mrunc create`, started once init is
forked, answers init's "mount-source" requests on a socket pair of their own (protocol.py),
made before the fork. The first request carries an fd of init's mount namespace:
the thread joins it (setns) and from then on opens each source there, with the runtime's
credentials, and hands back the fd (or the error) and the calls it made. It ends when init
closes its end, after its mounts (or when the runtime closes it, on a failure).

A socket of its own, and a thread started ahead, because init waits for each answer: through the
runtime's main socket a request waited until the main thread was done with what it was doing —
making the cgroup dirs, as the mount phase began (parent._answer) — and then for the thread's
start (a stack and a malloc arena of its own). Started as init is forked, when the clone child
has exited and the runtime only waits for init's first report: not right after the fork, where
its start held the interpreter's lock just as the runtime was to write the clone child's id
maps (the clone child waited). With the bench bundle (its /sys rbind), init's
wait for /sys, median of 40 runs timed inside the processes: 0.66 and 1.02 ms (two rounds) ->
0.46 and 0.44. Until the first request the thread makes no call at all: every call of its
stays in the phase that asked for it.

A thread, not a forked process: namespaces belong to each thread, so one thread can stand in
init's mount namespace while the runtime's other threads stay in the host's. The kernel only
asks that it not share its root and working directory (CLONE_FS, what threads share) with
another thread — so it unshares them first, for itself. A fork of the runtime would do the same
work but copy the runtime's page tables, then fault in a copy of every page either side writes
while both live (≈ 2.4 ms of CPU per `run` here, 4 ms per `create`, interleaved N=30), and make
create wait for its exit.

    init     {"t": "mount-source", "path": P, "recursive": B} [+ fd of init's mount ns]
    thread   {"t": "mount-source", "how": "tree"|"path", "calls": [...]} + fd
             {"t": "mount-source", "errno": E, "message": M, "calls": [...]}  (could not open it)
"""
import _thread
import errno
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from ..errors import MruncError
from ..linux import CLONE_FS, CLONE_NEWNS, Syscalls
from ..rootfs.inroot import fdpath
from ..rootfs.sources import open_source
from . import protocol


class SourceHelper:
    """The helper thread, seen from the runtime's main thread: made with the runtime's end of
    the socket pair (`sock`), started (start) once init is forked, closed once create is done."""

    def __init__(self, sock, recording=True):
        """`recording`: someone reads the record (--trace, a stepper), so the helper's calls go
        home with each answer, as init's do; otherwise init drops them, and the helper neither
        builds them nor imports mrunc.record for it (≈ 0.1 ms of an engine's create)."""
        if recording:
            from .. import record  # noqa: F401  (now: once the thread has joined init's mount
            #                        namespace, an import would search the container's files)
        self.sock = sock
        self._recording = recording
        self._ended = _thread.allocate_lock()
        self._ended.acquire()
        self._running = False

    def start(self):
        try:
            _thread.start_new_thread(_serve, (self,))
        except RuntimeError as e:   # no thread to be had (RLIMIT_NPROC, memory)
            raise MruncError(f"bind sources: the runtime's helper thread could not start "
                             f"({e})") from None
        self._running = True

    def close(self):
        """End the thread (and with it its hold on init's mount namespace); wait for that. Its
        wait for a request ends with the socket shut down."""
        try:
            self.sock.shutdown(_SHUT_RDWR)
        except OSError:
            pass
        if self._running:
            self._ended.acquire()
            self._running = False
        self.sock.close()


_SHUT_RDWR = 2


def _serve(helper):
    """Answer init's requests until its end of the socket closes (or ours is shut down)."""
    sys = Syscalls()
    joined = [False]  # never answer from the runtime's own mount namespace: see rootfs.sources
    try:
        while True:
            try:
                req = protocol.recv(helper.sock, "mount-source", with_fds=True)
            except (EOFError, OSError, protocol.ProtocolError):
                return
            ns_fds = req.pop("_fds")
            try:
                answer, fds = _answer(helper, sys, joined, req, ns_fds)
            finally:
                for fd in ns_fds:
                    os.close(fd)
            try:
                protocol.send(helper.sock, answer, fds)
            except OSError:
                return
            finally:
                for fd in fds:
                    os.close(fd)
    finally:
        helper._ended.release()


def _answer(helper, sys, joined, req, ns_fds):
    """(the answer to one request, the fds it carries): the source opened from inside init's
    mount namespace — joined with the first request's fd — or why not."""
    answer, fds = {"t": "mount-source"}, []
    try:
        for ns in ns_fds:
            if not joined[0]:
                sys.unshare(CLONE_FS)  # our own root and cwd: setns needs them unshared
            sys.setns(ns, CLONE_NEWNS, fdpath(ns))
            joined[0] = True
        if not joined[0]:
            raise OSError(errno.EINVAL, "the runtime's helper is not in the container's "
                          "mount namespace")
        src = open_source(sys, req["path"], req["recursive"], detached=True)
        answer["how"], fds = src.how, [src.fd]
    except OSError as e:
        answer.update(errno=e.errno, message=e.strerror or str(e))
    except Exception as e:  # noqa: BLE001 — init waits for an answer: never none
        answer.update(errno=errno.EIO, message=f"the runtime's helper failed: {e}")
    log, answer["calls"] = sys.take_log(), []  # the calls made by the runtime's helper
    if helper._recording:
        from .. import record   # already loaded by SourceHelper(): no file is searched
        answer["calls"] = record.as_dicts(log)
    return answer, fds
