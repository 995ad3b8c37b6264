"""The runtime's helper that opens bind sources for an init in a user namespace.

Why the runtime opens them, and why from inside the container's mount namespace, is told in
mrunc.rootfs.sources. This is the plumbing: a thread of `mrunc create`, started as soon as the
clone child is forked, waits for init's first "mount-source" request (protocol.py) and opens each
source for it. The first request carries an fd of init's mount namespace: the thread joins it
(setns) and from then on opens each source there, with the runtime's credentials, and hands back
the fd (or the error) and the calls it made. Started ahead, its start (a stack and a malloc arena
of its own: ≈ 0.3 ms until it runs) is made while the runtime waits for the clone child, not
while init waits for its first source; until that request it does nothing, so it makes no call
outside the phase that asked for it.

A thread, not a forked process: namespaces belong to each thread, so one thread can stand in
init's mount namespace while the runtime's other threads stay in the host's. The kernel only
asks that it not share its root and working directory (CLONE_FS, what threads share) with
another thread — so it unshares them first, for itself. A fork of the runtime would do the same
work but copy the runtime's page tables, then fault in a copy of every page either side writes
while both live (≈ 2.4 ms of CPU per `run` here, 4 ms per `create`, interleaved N=30), and make
create wait for its exit. The thread ends when the runtime closes it, before `create` returns.

    runtime  request {"t": "mount-source", "path": P, "recursive": B} [+ fd of init's mount ns]
    thread   {"t": "mount-source", "how": "tree"|"path", "calls": [...]} + fd
             {"t": "mount-source", "errno": E, "message": M, "calls": [...]}  (could not open it)
"""
import _thread
import errno
import os

from ..errors import MruncError
from ..linux import CLONE_FS, CLONE_NEWNS, Syscalls
from ..rootfs.inroot import fdpath
from ..rootfs.sources import open_source


class SourceHelper:
    """The helper thread, seen from the runtime's main thread: one request at a time."""

    def __init__(self, recording=True):
        """`recording`: someone reads the record (--trace, a stepper), so the helper's calls go
        home with each answer, as init's do; otherwise init drops them, and the helper neither
        builds them nor imports mrunc.record for it (≈ 0.1 ms of an engine's create)."""
        if recording:
            from .. import record  # noqa: F401  (now: once the thread has joined init's mount
            #                        namespace, an import would search the container's files)
        self._recording = recording
        self._request = self._answer = None
        self._asked, self._answered = _thread.allocate_lock(), _thread.allocate_lock()
        self._asked.acquire()
        self._answered.acquire()
        self._running = False
        try:
            self._start()
        except RuntimeError:
            pass            # open() tries again, and says why

    def _start(self):
        """Start the thread if it is not running (RuntimeError: no thread to be had, for
        RLIMIT_NPROC or memory)."""
        if not self._running:
            _thread.start_new_thread(_serve, (self,))
            self._running = True

    def open(self, request):
        """Open the source of one of init's requests; return the answer for init and the fd(s)
        it carries. The fds that came with the request (init's mount namespace) are closed."""
        fds = request.pop("_fds", [])
        try:
            try:
                self._start()
            except RuntimeError as e:
                raise MruncError(f"opening bind source {request.get('path')}: the "
                                 f"runtime's helper thread could not start ({e})") from None
            self._request = (request, fds)
            self._asked.release()
            self._answered.acquire()
            return self._answer
        finally:
            for fd in fds:
                os.close(fd)

    def close(self):
        """End the thread (and with it its hold on init's mount namespace); wait for that."""
        if self._running:
            self._request = None
            self._asked.release()
            self._answered.acquire()
            self._running = False


def _serve(helper):
    sys = Syscalls()
    joined = False  # never answer from the runtime's own mount namespace: see rootfs.sources
    while True:
        helper._asked.acquire()
        if helper._request is None:
            helper._answered.release()
            return
        req, ns_fds = helper._request
        answer, fds = {"t": "mount-source"}, []
        try:
            for ns in ns_fds:
                if not joined:
                    sys.unshare(CLONE_FS)  # our own root and cwd: setns needs them unshared
                sys.setns(ns, CLONE_NEWNS, fdpath(ns))
                joined = True
            if not joined:
                raise OSError(errno.EINVAL, "the runtime's helper is not in the container's "
                              "mount namespace")
            src = open_source(sys, req["path"], req["recursive"], detached=True)
            answer["how"], fds = src.how, [src.fd]
        except OSError as e:
            answer.update(errno=e.errno, message=e.strerror or str(e))
        except Exception as e:  # noqa: BLE001 — the runtime waits for an answer: never none
            answer.update(errno=errno.EIO, message=f"the runtime's helper failed: {e}")
        log, answer["calls"] = sys.take_log(), []  # the calls made by the runtime's helper
        if helper._recording:
            from .. import record   # already loaded by SourceHelper(): no file is searched
            answer["calls"] = record.as_dicts(log)
        helper._answer = (answer, fds)
        helper._answered.release()
