"""The runtime's helper that opens bind sources for an init in a user namespace.

Why the runtime opens them, and why from inside the container's mount namespace, is told in
mrunc.rootfs.sources. This is the plumbing: `mrunc create` forks the helper early — while it is
still single-threaded, and a process must be single-threaded to join a mount namespace — and
relays init's "mount-source" requests to it (protocol.py). Its modules are imported before the
forks (init needs them too), so it starts at once and takes no CPU from the clone child. The
first request carries an fd of init's mount namespace: the helper joins it (setns) and from then
on opens each source there, with the runtime's credentials, and answers with the fd (or the
error) and the calls it made. It exits when the runtime closes the channel, before `create`
returns.

    parent  {"t": "mount-source", "path": P, "recursive": B} [+ fd of init's mount namespace]
    helper  {"t": "mount-source", "how": "tree"|"path", "calls": [...]} + fd
            {"t": "mount-source", "errno": E, "message": M, "calls": [...]}  (could not open it)
"""
import errno
import os

from ..errors import MruncError
from ..linux import CLONE_NEWNS, Syscalls
from ..rootfs.inroot import fdpath
from ..rootfs.sources import open_source
from . import protocol
from .common import close_inherited


class SourceHelper:
    """The helper process, seen from the runtime."""

    def __init__(self, recording=True):
        """`recording`: someone reads the record (--trace, a stepper), so the helper's calls go
        home with each answer, as init's do; otherwise init drops them, and the helper neither
        builds them nor imports mrunc.record for it (≈ 0.1 ms of an engine's create)."""
        if recording:
            from .. import record  # noqa: F401  (now: the helper cannot import once it has joined)
        mine, theirs = protocol.pair()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                mine.close()
                _serve(theirs, recording)
            finally:
                os._exit(0)
        theirs.close()
        self.sock = mine

    def open(self, request):
        """Pass one of init's requests on; return the answer for init and the fd(s) it carries."""
        fds = request.pop("_fds", [])
        try:
            protocol.send(self.sock, request, fds)
            answer = protocol.recv(self.sock, "mount-source", with_fds=True)
        except (EOFError, OSError) as e:
            raise MruncError(f"opening bind source {request.get('path')}: the runtime's helper "
                             f"failed ({e})") from None
        finally:
            for fd in fds:
                os.close(fd)
        return answer, answer.pop("_fds")

    def close(self):
        self.sock.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _serve(sock, recording):
    close_inherited(keep={0, 1, 2, sock.fileno()})  # the runtime's fds: init's channel, the stepper's
    sys = Syscalls()
    sys.set_name("mrunc:[sources]")
    joined = False  # never answer from the runtime's own mount namespace: see rootfs.sources
    while True:
        try:
            req = protocol.recv(sock, "mount-source", with_fds=True)
        except EOFError:
            return
        answer, fds = {"t": "mount-source"}, []
        try:
            for ns in req["_fds"]:
                try:
                    sys.setns(ns, CLONE_NEWNS, fdpath(ns))
                    joined = True
                finally:
                    os.close(ns)
            if not joined:
                raise OSError(errno.EINVAL, "the runtime's helper is not in the container's "
                              "mount namespace")
            src = open_source(sys, req["path"], req["recursive"], detached=True)
            answer["how"], fds = src.how, [src.fd]
        except OSError as e:
            answer.update(errno=e.errno, message=e.strerror or str(e))
        log, answer["calls"] = sys.take_log(), []  # the calls made by the runtime's helper
        if recording:
            from .. import record   # imported before the fork (SourceHelper)
            answer["calls"] = record.as_dicts(log)
        protocol.send(sock, answer, fds)
        for fd in fds:
            os.close(fd)
