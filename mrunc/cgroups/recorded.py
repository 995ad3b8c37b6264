"""A container's cgroup as `create` recorded it in state.json, for the commands that come after.

Finding a cgroup costs: which hierarchies are mounted where is read from /proc/self/mountinfo,
and the managers that know each layout are a good part of mrunc — together about as much CPU as
a whole `state` or `delete` spends on its own work. runc keeps each hierarchy's directory in its
state (cgroup_paths); mrunc keeps what the commands after create need beside the paths:

    "cgroup": {"path", "paths", "rootless", "layout", "created",
               "mounts":  {hierarchy: [mountpoint, mount root]},  the manager, rebuilt without
                                                                   reading mountinfo again
               "dirs":    [each directory of the cgroup],          delete: rmdir them
               "freezer": its freezer file, or null}               state: is it paused? pause,
                                                                   resume (mrunc.cgroups.freezer)

They are trusted as the rest of state.json is — it lies in the container's directory, which
only its owner can write (checked before every use: mrunc.userdirs) — and, as a second fence,
only when every one is a clean path below /sys/fs/cgroup. A state.json written by an older
mrunc has none of them: then the cgroup is found again as create found it.
"""

import posix

from mrunc import paths   # not os.path: os costs the short verbs ≈ 1 ms (mrunc.paths)

ROOT = "/sys/fs/cgroup"      # where create looks for the hierarchies (mrunc.cgroups.factory)


def record(mgr):
    """The fields above, for the state.json of a container that uses `mgr`."""
    return {"mounts": {key: list(where) for key, where in mgr.mounts.items()},
            "dirs": mgr.dirs(), "freezer": mgr.freezer_file()}


def usable(cg):
    """Did create record the fields above (this mrunc's create), all of them sound paths?"""
    try:
        paths = [mp for mp, _ in cg["mounts"].values()] + list(cg["dirs"])
        freezer = cg["freezer"]
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    return all(map(_below_root, paths + ([freezer] if freezer is not None else [])))


def unified(cg):
    """(the cgroup's directory in the unified hierarchy, where that hierarchy is mounted) — a
    pure v2 host's, or a hybrid host's /sys/fs/cgroup/unified — or (None, None) where there is
    none. From a usable record (see usable): `exec` joins the cgroup without rebuilding the
    manager, whose import costs it ≈ 0.5 ms of CPU (factory, layout, v1, base)."""
    if "" not in cg["mounts"] or "" not in cg["paths"]:
        return None, None
    mountpoint = cg["mounts"][""][0]
    return paths.join(mountpoint, cg["paths"][""].lstrip("/")).rstrip("/"), mountpoint


def _below_root(path):
    """/sys/fs/cgroup or below, a clean path: no empty, "." or ".." part, no trailing "/" (one
    that os.path.normpath leaves as it is)."""
    return (isinstance(path, str) and (path == ROOT or path.startswith(ROOT + "/"))
            and not {"", ".", ".."} & set(path.split("/")[1:]))


def remove_if_empty(cg):
    """rmdir the recorded directories and the parents create made (mrunc.cgroups.fs.remove), when
    the first goes at once: then nothing was left in it — neither a process nor a cgroup below,
    and a container's processes are in every hierarchy. False, nothing removed, when it does not
    go: the caller looks for processes first (mrunc.state.Container.remove_cgroup). A stopped
    container's cgroup goes here by one rmdir per directory, without fs and its reader (two
    modules to load: ≈ 0.1 ms of `delete`); fs does the rest, only when a directory stays (a
    cgroup below it, a kernel still busy) or create made parents too."""
    dirs, created = cg["dirs"], cg.get("created") or []
    if not dirs or not rmdir_at_once(dirs[0]):
        return False
    left = [d for d in dirs[1:] if not rmdir_at_once(d)]
    gone = set(dirs) - set(left)
    rest = [d for d in created if d not in gone]
    if left or rest:
        from . import fs
        fs.remove(left, rest)
    return True


def rmdir_at_once(path):
    """rmdir a cgroup that has no children and no processes left (or is gone); False otherwise
    (mrunc.cgroups.fs.remove then walks it, and its rmdir waits out a kernel still busy with
    the last task)."""
    try:
        posix.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def holds_processes(cg):
    """Is any process still in the cgroup (one that outlived init, or init itself)? One
    hierarchy says it: the container's processes are in every one (init joined each, and a
    child is born in its parent's cgroups) — the managers' pids() reads one too."""
    from . import fs
    return any(fs.procs(d) for d in cg["dirs"][:1] if paths.isdir(d))


def signal_all(cg, pid, signum):
    """Signal every process of the cgroup, as its manager's kill_all does (frozen meanwhile where
    it has a freezer; v2: SIGKILL through cgroup.kill), from a usable record — without the
    managers, whose import costs `kill --all` and `delete --force` ≈ 1 ms of CPU. False, nothing
    signalled, if `pid` (init) is not in it: then it is not the container's cgroup (any more)."""
    from . import fs, freezer
    freezer_file = cg["freezer"]
    if freezer_file is not None and not paths.exists(freezer_file):
        freezer_file = None     # (v2 before Linux 5.2: no cgroup.freeze)
    # the pids from one directory, as holds_processes: the freezer's first, as the v1 manager
    procs_dir = paths.dirname(freezer_file) if freezer_file else cg["dirs"][0] if cg["dirs"] else None
    if procs_dir is None or not paths.isdir(procs_dir) or pid not in fs.procs(procs_dir):
        return False
    kill_file = paths.join(procs_dir, "cgroup.kill") if cg["layout"] == "v2" else None
    freezer.signal_all(procs_dir, freezer_file, signum, kill_file=kill_file)
    return True
