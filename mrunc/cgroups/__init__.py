"""cgroups: where a container's limits live.

A cgroup is a directory in a special filesystem. Making the directory creates the group; writing
a pid into its `cgroup.procs` moves that process (and later its children) in; writing numbers into
its other files sets limits (`memory.max`, `pids.max`, `cpu.max`...); reading them shows usage.
`rmdir` removes it once no process is left. That is all a runtime does with cgroups — the kernel
does the enforcing.

Two generations exist. **cgroup v1** has one tree per controller (`/sys/fs/cgroup/memory/...`,
`/sys/fs/cgroup/cpu/...`) and so one directory per controller per container; **cgroup v2** has
one tree with one directory per container. Hosts are pure v2 (most today), pure v1, or *hybrid*
(v1 controllers, plus a v2 tree at `/sys/fs/cgroup/unified` used only to track processes). mrunc
uses v1 for the controllers on hybrid hosts, like runc.

Usage (the runtime core, and `delete`/`kill --all`/`pause`/`update` later from the state file):

    mgr = cgroups.manager(cgroups_path, container_id)      # detects the layout under root
    mgr.set(resources); mgr.apply(pid)                       # the "cgroup" phase: limits first
    # (create sets mgr.sys, its Syscalls: then every mkdir and write is recorded in the trace)
    state["cgroup_paths"] = mgr.paths                        # save it...
    mgr = cgroups.manager(cgroups_path, container_id, paths=state["cgroup_paths"])  # ...rebuild
    # (create records more: where each hierarchy is, the directories, the freezer file — so
    # that the later commands need not look again: mrunc.cgroups.recorded)

Where the cgroup goes (`linux.cgroupsPath`, cgroupfs semantics of runc 1.1):
- absolute, e.g. "/mrunc/c1": that path below the root of every hierarchy;
- relative, e.g. "mrunc/c1": below the *calling process's own* cgroup, read from
  /proc/self/cgroup — in each v1 hierarchy separately, and on v2 below the *parent* of the
  caller's cgroup (the caller's own cgroup has processes in it, so no controller could be enabled
  for a child of it: cgroup v2's "no internal processes" rule);
- empty/absent: as if it were the container id, relative — runc names the cgroup after the
  container id next to its caller's cgroup (e.g. "/<id>" for a caller in the root cgroup).
Paths are cleaned like runc does ("../" cannot climb out). Because relative paths depend on who
calls, save `mgr.paths` (per hierarchy) in the state file and pass it back as `paths=`, as runc
stores `cgroup_paths`.

`rootless=True` uses cgroups only where the target is writable by the caller (a delegated v2
subtree, e.g. systemd's user@UID.service); otherwise it returns the disabled manager, whose
`reason` the caller prints once.
"""

# The freezer's file in a cgroup's directory, by generation (mrunc.cgroups.freezer says how each
# is used): named here, so that a manager gives its path for create's record without loading
# the freezer, which only pause, resume, state and a kill of a paused container use.
FREEZER_V1 = "freezer.state"
FREEZER_V2 = "cgroup.freeze"

# The factory (mrunc.cgroups.factory) and the managers load when first asked for, so that a
# submodule can be imported alone: `state`, `delete`, `pause` and `resume` read what create
# recorded through .recorded and .freezer, and the rest — every manager, the mountinfo parser —
# would cost each of them about as much as their own work (≈ 1.4 ms of CPU).
_FACTORY = {"manager", "detect", "resolve", "device_rules", "Manager", "V1Manager", "V2Manager",
            "DisabledManager", "CgroupError"}
__all__ = sorted(_FACTORY)


def __getattr__(name):
    if name not in _FACTORY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import factory
    return getattr(factory, name)
