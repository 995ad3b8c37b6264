"""Keep the kernel's cgroup migration lock warm while `create` works, so that moving init into its
cgroup (the cgroup phase) is quick — without changing what create does.

Moving a process between cgroups (a pid written to `cgroup.procs`) takes cgroup_mutex, then a
global lock, cgroup_threadgroup_rwsem, for writing; the first writer after a quiet spell waits
for an RCU grace period — 5 to 15 ms here, most of the cgroup phase — *holding cgroup_mutex*, so
every mkdir in a cgroup filesystem and every cgroup file write waits too. Later writers are quick
while the lock is still warm: up to 8 ms after the last writer always, up to 20 ms mostly (a
write after a gap, measured on this 2-core VM). So a thread of ours moves *this* process into the
cgroup it is already in (a no-op), paying that wait while the main thread does work that needs
neither lock — reading and checking the config, forking (fork only reads the rwsem, which a
writer waiting for its grace period does not yet block) — and again every 5 ms, because init's
clone, mount and pivot_root take longer than the lock stays warm (moving init took 12.7 ms median
with one early write, 0.8 ms with these, on a loaded 2-core VM). Every 5 ms rather than more
often: each round wakes a thread, and on a busy machine those wake-ups are CPU every other
container's create is waiting for.

It starts as early as it can: the command line starts it for `create` and `run` as soon as it
knows the verb, before the imports and the config (mrunc.cli); the runtime core starts it for
callers of mrunc.api that did not (the notebook sandbox), once its clone child is forked. `exec`
needs none: it is born into the v2 cgroup (clone3 CLONE_INTO_CGROUP) and joins the v1 ones by
writing "0" to `tasks`, neither of which takes the lock for writing (mrunc.process.exec).

It stops once init is in its cgroup (stop()), and after a second at most (a stepper may pause
for minutes: then the phase just waits as it would have).

Safe by construction: it only ever writes our own pid into the `cgroup.procs` of the cgroup we
are in — found from /proc/self/cgroup and mountinfo, and used only if our pid is listed in it
(a cgroup namespace made after the mount, or a mount of some other part of the tree, would
otherwise name another cgroup); nothing if we may not write it (rootless, not delegated); its
fd is above the fds a container may be handed (--preserve-fds) and close-on-exec, so no fork of
ours can pass it on. Errors are irrelevant: it only ever saves time. Not in the record (`--trace`,
the stepper): it moves the runtime where it already is, which changes nothing, and a thread must
not write into the log the main thread takes phase by phase.
"""

import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)
import time

from .. import paths

PERIOD = 0.005     # seconds between writes: the lock stays warm ≥ 8 ms after one
LIMIT = 1.0        # seconds at most

_flag = {"stopped": True}     # the running thread's (one thread at a time)


def start(min_fd=3, needed=None):
    """Start warming, unless a thread already is; nothing if our own cgroup.procs cannot be
    found or written, or if nobody will write one (needed(): `needed` None). Its fd is made
    ≥ min_fd (3 + the fds create hands to the container)."""
    global _flag
    if not _flag["stopped"]:
        return
    # what the command line's start read a moment ago, if it did: the runtime core asks again
    # after its fork (for a caller that did not), where reading and parsing mountinfo once
    # more cost ≈ 0.2 ms of CPU — its pages copied too, as init shares them then
    found, at = _recent(), _flag.get("at")    # (the time of that read: kept, not renewed)
    if found is None:
        from .layout import hierarchies
        found, at = hierarchies(), time.monotonic()
    fd = open_own_procs(min_fd, found=found) if (needed or needed is None and
                                                 _needed(found[0])) else None
    if fd is None:
        _flag = {"stopped": True, "found": found, "at": at}  # for found()
        return
    _flag = {"stopped": False, "found": found}
    import _thread      # not threading (≈ 1.5 ms to import): a bare thread is all this needs
    _thread.start_new_thread(_warm, (fd, _flag))


def _needed(layout):
    """Will create move init through a cgroup.procs? Not on a v1 or hybrid host with a runtime
    that is root: init moves itself into its v1 cgroups through `tasks` and is born in its
    cgroup of a hybrid host's unified tree (process.parent._tasks_for_init, _unified_for_init):
    neither takes the lock for writing. (The one exception, a user namespace that does not map
    the host's root, is known from the config: the runtime starts the thread then, needed=True.)
    Everywhere else (v2, rootless) the runtime writes init's pid, and the thread pays."""
    return not (os.geteuid() == 0 and layout in ("v1", "hybrid"))


def stop():
    """Init is in its cgroup: the thread may stop (and found() lends nothing more)."""
    _flag["stopped"] = True
    _flag.pop("at", None)


def found():
    """(layout, hierarchies) as start() read them from mountinfo, while its thread runs — for
    this create, a second ago at most: its cgroup manager takes them rather than read and parse
    mountinfo again (≈ 0.15 ms of CPU). Also when start() found no thread needed (for a second
    at most). None otherwise."""
    if _flag["stopped"]:
        return _recent()
    return _flag.get("found")


def _recent():
    """What a start() that found no thread needed read, a second ago at most; else None."""
    if time.monotonic() - _flag.get("at", -LIMIT) >= LIMIT:
        return None
    return _flag.get("found")


def _warm(fd, flag):
    me = str(os.getpid()).encode()
    end = time.monotonic() + LIMIT
    try:
        while not flag["stopped"] and time.monotonic() < end:
            os.write(fd, me)
            time.sleep(PERIOD)
    except OSError:
        pass
    finally:
        flag["stopped"] = True
        os.close(fd)


def open_own_procs(min_fd=3, root="/sys/fs/cgroup", mountinfo="/proc/self/mountinfo",
                   proc_cgroup="/proc/self/cgroup", found=None):
    """An fd (≥ min_fd, close-on-exec) for writing to the cgroup.procs of the cgroup we are in,
    or None. Of our hierarchies, the one where our cgroup is deepest: its cgroup.procs, read to
    check that we are in it, lists the fewest processes. `found`: layout.hierarchies(root,
    mountinfo), read already."""
    path = own_procs(root, mountinfo, proc_cgroup, found)
    if path is None:
        return None
    import fcntl
    from ..state import read_all
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if str(os.getpid()).encode() not in read_all(fd).split():
            return None
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, min_fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def own_procs(root="/sys/fs/cgroup", mountinfo="/proc/self/mountinfo",
              proc_cgroup="/proc/self/cgroup", found=None):
    """The path of our own cgroup's cgroup.procs in the hierarchy where it is deepest, or None
    when no hierarchy's mount shows our cgroup."""
    from .layout import below_mount, hierarchies, own_cgroups
    own = own_cgroups(proc_cgroup)
    best = None
    for key, (mountpoint, mount_root) in (found or hierarchies(root, mountinfo))[1].items():
        rel = below_mount(own.get(key), mount_root)
        if rel is not None and (best is None or rel.count("/") > best[0].count("/")):
            best = (rel, mountpoint)
    if best is None:
        return None
    return paths.join(best[1], best[0].lstrip("/"), "cgroup.procs")

