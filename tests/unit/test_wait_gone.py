"""state.wait_gone, gone.all_gone: asleep on pidfds until the processes are dead, never later and
never before — each answer checked against the kernel's own view (/proc/<pid>/stat) at the
moment it is given. (delete --force waits so for a SIGKILLed init; a cgroup's manager so for
every process left in it before its rmdir.)"""
import os
import signal
import subprocess
import sys

from mrunc.gone import all_gone
from mrunc.state import proc_start_time, wait_gone

# A process that ignores SIGTERM (as a container's init does for a signal it has no handler
# for) and says when that is in place.
STUBBORN = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(600)")


def _state(pid):
    """The kernel's state letter of pid; None once it is reaped."""
    return proc_start_time(pid)[1]


def _spawn_stubborn():
    p = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    return p


def test_a_live_process_is_not_gone_and_a_killed_child_is_reaped():
    p = _spawn_stubborn()
    try:
        os.kill(p.pid, signal.SIGTERM)                  # ignored
        assert wait_gone(p.pid, timeout=0.2) is False
        assert _state(p.pid) not in (None, "Z", "X")    # it really is alive
        os.kill(p.pid, signal.SIGKILL)
        assert wait_gone(p.pid) is True
        # our child: reaped by wait_gone, not left a zombie
        assert _state(p.pid) is None
    finally:
        if _state(p.pid) is not None:
            p.kill()
            p.wait()


def test_someone_elses_child_is_gone_once_it_is_a_zombie():
    """Not our child: its parent (here a shell that never waits) reaps it, or nobody does. Gone
    means dead: wait_gone returns while it is still a zombie, and leaves it to its parent."""
    sh = subprocess.Popen(["sh", "-c", f"{sys.executable} -c \"{STUBBORN}\" & "
                           "echo $!; exec sleep 600"], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(sh.stdout.readline())
        assert sh.stdout.readline() == "ready\n"
        os.kill(pid, signal.SIGTERM)
        assert wait_gone(pid, timeout=0.2) is False and _state(pid) not in (None, "Z", "X")
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid) is True
        assert _state(pid) == "Z"                       # dead, and not ours to reap
    finally:
        sh.kill()
        sh.wait()


def test_all_gone_waits_for_every_process():
    ps = [_spawn_stubborn() for _ in range(3)]
    try:
        for p in ps[:2]:
            os.kill(p.pid, signal.SIGKILL)
        # two dead, one alive: not all gone, and the live one is untouched
        assert all_gone([p.pid for p in ps], timeout=0.2) is False
        assert _state(ps[2].pid) not in (None, "Z", "X")
        os.kill(ps[2].pid, signal.SIGKILL)
        assert all_gone([p.pid for p in ps]) is True
        assert [_state(p.pid) for p in ps] == [None, None, None]
    finally:
        for p in ps:
            if _state(p.pid) is not None:
                p.kill()
                p.wait()


def test_a_process_already_reaped_is_gone():
    p = subprocess.Popen(["true"])
    p.wait()
    assert wait_gone(p.pid) is True and all_gone([]) is True


def test_a_pidfd_above_1024_is_waited_on_too():
    """A caller with many files open (a notebook's kernel) gets pidfds above select(2)'s 1024."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 2048)), hard))
    held = []
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        p = _spawn_stubborn()
        os.kill(p.pid, signal.SIGKILL)
        assert all_gone([p.pid]) is True and _state(p.pid) is None
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_without_reaping_a_dead_child_stays_for_its_own_parent_to_wait_for():
    """A cgroup's manager waits so (reap=False): its processes may be children of a program using
    mrunc as a library (a notebook's kernel, or this test), whose own wait must still get the exit
    status — Popen.wait() would otherwise say 0 for a process that was SIGKILLed."""
    p = _spawn_stubborn()
    try:
        os.kill(p.pid, signal.SIGKILL)
        assert all_gone([p.pid], timeout=5.0, reap=False) is True
        assert _state(p.pid) == "Z"                     # dead, and left for its parent
        assert p.wait(timeout=5) == -signal.SIGKILL
    finally:
        p.kill()
        p.wait()


def test_without_pidfds_the_poll_reaps_a_killed_child_and_waits_for_a_live_one(monkeypatch):
    """Kernels before 5.3 have no pidfd_open (ENOSYS): all_gone polls /proc then, with the same
    answers — a live process is not gone, a killed child of ours is reaped, with reap=False it
    is left a zombie for its parent."""
    import errno

    def no_pidfd(pid):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    reaped, kept = _spawn_stubborn(), _spawn_stubborn()
    try:
        assert all_gone([reaped.pid], timeout=0.2) is False
        assert _state(reaped.pid) not in (None, "Z", "X")
        os.kill(reaped.pid, signal.SIGKILL)
        os.kill(kept.pid, signal.SIGKILL)
        assert all_gone([reaped.pid]) is True
        assert _state(reaped.pid) is None               # ours: reaped by the poll
        assert all_gone([kept.pid], reap=False) is True
        assert _state(kept.pid) == "Z"                  # dead, and left for its parent
        assert kept.wait(timeout=5) == -signal.SIGKILL
    finally:
        for p in (reaped, kept):
            if _state(p.pid) is not None:
                p.kill()
                p.wait()
