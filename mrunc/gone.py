"""Waiting for processes to be dead: a SIGKILLed init (delete --force, a failed create), the
processes left in a cgroup before its rmdir (mrunc.cgroups.base).

Asleep on pidfds, which the kernel makes readable the moment a process has exited (a zombie),
not a poll: a loop asking /proc every few ms is CPU taken from the dying processes themselves
(freeing their memory) and from every other container on a busy machine, and answers a few ms
late. Kernels before 5.3 have no pidfd: there we poll. A module of its own, so that the verbs
that never wait (state, start, kill, list) do not load it; and without `os` (its C module,
posix: `delete --force` of a running container is a short verb too, see mrunc.paths).
"""
import posix as os  # os's C module: the same calls, without os's ≈ 1 ms import (mrunc.paths)
import select   # a C module: nearly free (PERF.md)
import time


def all_gone(pids, timeout=5.0, reap=True):
    """True once every one of `pids` is dead (a zombie, or reaped); False if one still lives
    after `timeout` seconds. They may not be our children (their parents reap them then); those
    that are ours are reaped here — unless `reap` is False: a cgroup's processes may be children
    of a program that uses mrunc as a library (a notebook's kernel), which waits for them itself
    and would lose their exit status to us."""
    deadline = time.monotonic() + timeout
    fds = {}
    # poll(2), not select(2): a caller with many files open (a notebook's kernel) may get an fd
    # above select's 1024
    waiter = select.poll()
    try:
        for pid in pids:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue                    # already reaped: not even a zombie is left
            except OSError:                 # ENOSYS: no pidfd in this kernel
                if not _poll_gone(pid, deadline, reap):
                    return False
                continue
            fds[fd] = pid
            waiter.register(fd, select.POLLIN)
        while fds:
            ready = waiter.poll(max(0, round((deadline - time.monotonic()) * 1000)))
            if not ready:
                return False
            for fd, _ in ready:
                waiter.unregister(fd)
                pid = fds.pop(fd)
                if reap:
                    _reap_if_ours(pid)
                os.close(fd)
        return True
    finally:
        for fd in fds:
            os.close(fd)


def _reap_if_ours(pid):
    """A dead child of ours (create's undo: we are init's subreaper) is reaped, not left a zombie.
    True when it was ours and is reaped now."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False


def _poll_gone(pid, deadline, reap):
    from .state import proc_start_time
    while time.monotonic() < deadline:
        if reap and _reap_if_ours(pid):
            return True
        _, st = proc_start_time(pid)
        if st is None or st in ("Z", "X"):
            if reap:
                _reap_if_ours(pid)  # it died between the waitpid above and this look
            return True
        time.sleep(0.002)
    return False
