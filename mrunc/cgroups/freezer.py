"""The freezer: how `pause` stops every process of a container at once, and `resume` lets them go.

A frozen process is not signalled or killed: it simply gets no CPU until thawed, wherever it
was — the kernel stops the whole cgroup, children forked a moment ago included. One file per
cgroup says and sets it, named differently by the two generations:

    v1  <freezer hierarchy>/<cgroup>/freezer.state   write FROZEN / THAWED; reads FREEZING
                                                     until every task has stopped
    v2  <cgroup>/cgroup.freeze                        write 1 / 0; cgroup.events says "frozen 1"
                                                     once every task has stopped

Each function takes that file's path — the managers know it (`freezer_file()`), and create
records it in state.json so that `state` (is it paused?), `pause` and `resume` need neither the
managers nor the hierarchies (mrunc.cgroups.recorded).
"""

from mrunc import paths   # not os.path: os costs the short verbs ≈ 1 ms (mrunc.paths)

from . import FREEZER_V1, files     # (fs, to write, only when freezing or thawing)


def _v1(path):
    return paths.basename(path) == FREEZER_V1


def frozen(path):
    """Is every process of the cgroup stopped? (Freezing, not yet done, is not frozen.)"""
    if _v1(path):
        return files.read(path) == "FROZEN"
    if files.read(path) != "1":
        return False
    return files.read_keyed(paths.join(paths.dirname(path), "cgroup.events")).get("frozen", 1) == 1


def freeze(path, timeout=10.0, sys=None):
    """Ask for the freeze and wait until it is done; if it is not within `timeout`, thaw again
    and raise (a half-frozen container would be neither paused nor running)."""
    from . import fs
    v1 = _v1(path)
    fs.write(path, "FROZEN" if v1 else 1, sys=sys)
    tries = [0]

    def done():
        tries[0] += 1
        if v1 and tries[0] % 50 == 0:      # v1: tasks forked meanwhile can escape: ask again
            fs.write(path, "FROZEN", sys=sys)
        return frozen(path)
    if not _wait(done, timeout):
        now = fs.read(path)
        fs.write(path, "THAWED" if v1 else 0, sys=sys)
        from mrunc.errors import CgroupError
        d = paths.dirname(path)
        raise CgroupError(f"freezing {d}: still {now} after {timeout:g}s, thawed it again" if v1
                             else f"freezing {d}: not frozen after {timeout:g}s, thawed it again")


def thaw(path, sys=None):
    """Let the cgroup's processes run again (nothing to do once the cgroup is gone)."""
    if paths.exists(path):
        from . import fs
        fs.write(path, "THAWED" if _v1(path) else 0, sys=sys)


def _wait(check, timeout):
    import time
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


def signal_all(procs_dir, path, signum, send=None, kill_file=None, sys=None):
    """Signal every process of a cgroup (`procs_dir` and below): frozen meanwhile, where it has a
    freezer (`path`, None: none), so that a process forking at that moment cannot escape; a
    paused cgroup stays paused, unless the signal is SIGKILL (a frozen v1 task dies only once
    thawed). `kill_file`: v2's cgroup.kill, which (Linux 5.14+) kills the whole subtree at once.
    The managers do it (Manager.kill_all), and `kill --all` and `delete --force` from what
    create recorded, without them (mrunc.cgroups.recorded)."""
    from mrunc.signals import SIGKILL
    from . import fs
    if kill_file is not None and signum == SIGKILL and fs.exists(kill_file):
        fs.write(kill_file, 1, sys=sys)
        return
    was = None if path is None else "frozen" if frozen(path) else "thawed"
    froze = False
    if was == "thawed":
        try:
            freeze(path, sys=sys)
            froze = True
        except Exception as e:
            from mrunc.errors import CgroupError    # (loaded by freeze, which raised it)
            if not isinstance(e, CgroupError):
                raise       # else best effort: signal anyway
    try:
        for pid in fs.procs(procs_dir) if procs_dir and paths.isdir(procs_dir) else []:
            try:
                (send or _kill)(pid, signum)
            except ProcessLookupError:
                pass
    finally:
        if froze or (was == "frozen" and signum == SIGKILL):
            thaw(path, sys=sys)


def _kill(pid, signum):
    import posix
    posix.kill(pid, signum)
