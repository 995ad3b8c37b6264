"""The operations of runtime-spec runtime.md — create, start, state, kill, delete — plus run and
list, as plain functions. The CLI verbs and the notebook both call these.

Lifecycle (runtime.md): create -> created -> start -> running -> (process exits) -> stopped -> delete.
Each operation checks the state first and, when the state is wrong, fails *without effect*.
"""
import os
import signal
import time

from .errors import MruncError, StateError
from .state import Container, fifo_path

DEFAULT_ROOT = "/run/mrunc"


def create(cid, bundle, root=DEFAULT_ROOT, **kw):
    from .process.parent import create as _create
    return _create(root, cid, bundle, **kw)


def start(cid, root=DEFAULT_ROOT):
    """Open exec.fifo: init, blocked writing to it, wakes and execs the user program."""
    c = Container.load(root, cid)
    st = c.status()
    if st != "created":
        raise StateError(f"cannot start a container that is {st} (only a created container can be started)")
    _release_init(c)
    if (c.config.get("hooks") or {}).get("poststart"):
        from . import hooks
        try:
            hooks.run(c.config, "poststart", c.oci_state())
        except MruncError:
            # runtime-spec 1.3: a failed poststart hook stops the container
            _kill_everything(c)
            raise
    return c


def _kill_everything(c):
    mgr = c.cgroup()
    if mgr is not None:
        mgr.kill_all(signal.SIGKILL)
    try:
        os.kill(c.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _release_init(c, timeout=10.0):
    # Non-blocking open always succeeds for a reader, and a reader is what init's blocked
    # open-for-write waits for. Then wait for its byte: EAGAIN = it is there but has not written
    # yet; EOF = no writer yet (or it died: check).
    fifo = fifo_path(c.dir)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if os.read(fd, 1):
                    break
            except BlockingIOError:
                pass
            if not c.init_alive():
                raise StateError(f"container {c.id}: init died before it could be started")
            if time.monotonic() > deadline:
                raise StateError(f"container {c.id}: init did not answer on exec.fifo within {timeout}s")
            time.sleep(0.0002)
    finally:
        os.close(fd)
    os.unlink(fifo)


def state(cid, root=DEFAULT_ROOT):
    return Container.load(root, cid).oci_state()


def list_containers(root=DEFAULT_ROOT):
    return [c.oci_state() for c in Container.all(root)]


def parse_signal(sig):
    """runc accepts 9, KILL, SIGKILL, kill."""
    if isinstance(sig, int):
        return sig
    s = str(sig).strip().upper()
    if s.isdigit():
        n = int(s)
        if 0 < n < 65:
            return n
    else:
        name = s if s.startswith("SIG") else "SIG" + s
        if name.startswith("SIGRTMIN") or name.startswith("SIGRTMAX"):
            pass
        elif hasattr(signal, name) and isinstance(getattr(signal, name), signal.Signals):
            return int(getattr(signal, name))
    raise MruncError(f"invalid signal {sig!r}")


def kill(cid, sig="SIGTERM", root=DEFAULT_ROOT, all=False):
    signum = parse_signal(sig)
    c = Container.load(root, cid)
    st = c.status()
    if st not in ("created", "running", "paused"):
        raise StateError(f"container {cid} is not running (status {st})")
    mgr = c.cgroup() if all else None
    if mgr is not None:
        mgr.kill_all(signum)
    else:
        os.kill(c.pid, signum)


def delete(cid, root=DEFAULT_ROOT, force=False, warn=None):
    """Undo create. A created container is deleted without --force (its program never ran), as
    runc and containerd expect; a running one only with --force (SIGKILL first)."""
    from .process.parent import wait_gone
    c = Container.load(root, cid)
    st = c.status()
    if st in ("running", "paused") and not force:
        raise StateError(f"cannot delete container {cid} that is not stopped: {st}")
    mgr = c.cgroup()
    if st != "stopped":
        if st == "paused" and mgr is not None:
            mgr.thaw()
        _kill_everything(c)
        if not wait_gone(c.pid):
            raise StateError(f"container {cid}: init (pid {c.pid}) did not die after SIGKILL")
    if mgr is not None:
        mgr.remove()
    st_json = {**c.oci_state(), "status": "stopped", "pid": c.pid}
    c.remove()
    from . import hooks
    hooks.run(c.config, "poststop", st_json, warn=warn or _warn)


def _warn(msg):
    os.write(2, f"mrunc: warning: {msg}\n".encode())


def run(cid, bundle, root=DEFAULT_ROOT, detach=False, keep=False, **kw):
    """create + start; in the foreground, wait for the container and return its exit status."""
    if detach:
        create(cid, bundle, root, **kw)
        start(cid, root)
        return 0
    from .process.foreground import run_foreground
    return run_foreground(cid, bundle, root, keep=keep, **kw)
