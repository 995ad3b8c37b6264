"""The operations of runtime-spec runtime.md — create, start, state, kill, delete — plus run,
list, exec and the cgroup's (update, pause, resume, ps, events), as plain functions. The
notebook calls these; the CLI's verbs too, except the lifecycle's own (mrunc.lifecycle: start,
state, kill, delete, list, pause, resume), create, run (mrunc.oneshot) and exec, which import
what does the work (process.parent, process.exec) alone.

Lifecycle (runtime.md): create -> created -> start -> running -> (process exits) -> stopped -> delete.
Each operation checks the state first and, when the state is wrong, fails *without effect*. The
ones that change a container hold its lock (state.Container.load(lock=True)) from that check to
the end, so two commands never interleave on one container; the readers (state, list, ps,
events) take none.
"""
import time

from .errors import MruncError, StateError
from .state import Container
from .userdirs import DEFAULT_ROOT

# The lifecycle's operations are mrunc.lifecycle's, offered here too, and loaded when first asked
# for: exec (≈ 0.3 ms of CPU) and update need none of them.
_LIFECYCLE = {"start", "state", "kill", "delete", "list_containers", "parse_signal", "pause",
              "resume"}


def __getattr__(name):
    if name not in _LIFECYCLE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import lifecycle
    return getattr(lifecycle, name)


def create(cid, bundle, root=DEFAULT_ROOT, **kw):
    """`mrunc create` runs the same function (process.parent.create, without importing this
    module: mrunc.cli.do_create) with the cyclic garbage collector off (mrunc.cli's NO_GC_VERBS
    says why); a caller in Python keeps its own setting."""
    from .process.parent import create as _create
    return _create(root, cid, bundle, **kw)


def run(cid, bundle, root=DEFAULT_ROOT, detach=False, keep=False, network=None, **kw):
    """create + start; in the foreground, wait for the container and return its exit status
    (mrunc.oneshot: the CLI's run imports it without this module).
    network: a lab network attachment file (mrunc.network.step), wired between create and start."""
    from .oneshot import run as _run
    return _run(cid, bundle, root, detach=detach, keep=keep, network=network, **kw)


def exec(cid, args=None, root=DEFAULT_ROOT, **kw):  # noqa: A001
    """Run one more process in a created or running container (runc exec).

    `process` is a whole process object (exec --process); without it, the container's own
    process with `args` and the `overrides` of process.exec.process_from_config (tty, env, cwd,
    user, additional_gids, caps, no_new_privs). In the foreground, return the process's exit
    status (128+N if signal N killed it); with `detach`, its pid once it has exec'd — it is left
    to the caller's subreaper, who waits for it. Keyword arguments: process, detach, pid_file,
    console_socket, preserve_fds, ignore_paused, on_console, and the overrides.
    """
    from .process.exec import exec_process
    return exec_process(root, cid, args, **kw)


# ---- resource control: update, ps, events (cgroups) -----------------------------------------


def update(cid, resources, root=DEFAULT_ROOT, warn=None):
    """Change the limits of a created, running or paused container: `resources` is a bare
    linux.resources object with only what changes (see mrunc.cgroups.update). The new limits are
    written to the cgroup, then merged into the config in the state directory (config.json)."""
    from . import spec
    spec.validate_resources(resources)
    with Container.load(root, cid, lock=True) as c:
        return _update(c, resources, warn)


def _update(c, resources, warn):
    """update, under the container's lock: no other command rewrites config.json meanwhile."""
    import errno
    from .cgroups import update as upd
    from .errors import CgroupError
    from .lifecycle import cgroup_of, stderr_warning
    st = c.status()
    if st in ("stopped", "creating"):
        raise StateError(f"cannot update container {c.id}: container not running (status {st})")
    mgr = cgroup_of(c, "update")
    changed = upd.changes(resources, warn=warn or stderr_warning)
    if not changed:
        return c
    linux = c.config.setdefault("linux", {})
    merged = upd.merge(linux.get("resources") or {}, changed)
    apply, gone = mgr.drop_gone(upd.to_apply(merged, changed))
    if gone:
        (warn or stderr_warning)(gone)
    try:
        mgr.set(apply)
    except CgroupError as e:
        # v1 refuses a memory limit it cannot reclaim down to with EBUSY: say what the usage is
        limit = (changed.get("memory") or {}).get("limit")
        if getattr(e.__cause__, "errno", None) != errno.EBUSY or not limit:
            raise
        use = mgr.stats()["memory"]
        raise CgroupError(f"linux.resources.memory.limit: unable to set memory limit to {limit} "
                          f"(current usage: {use['current']}, peak usage: {use['peak']})") from e
    linux["resources"] = merged
    c.save_config()
    return c


def processes(cid, root=DEFAULT_ROOT):
    """Host pids of every process in the container's cgroup (its subgroups included)."""
    c = Container.load(root, cid)
    mgr = c.cgroup()
    return mgr.pids() if mgr is not None else []


def stats(cid, root=DEFAULT_ROOT):
    """One stats event, as `runc events --stats` prints it."""
    from .cgroups.events import runc_stats
    c = Container.load(root, cid)
    if c.status() in ("stopped", "creating"):
        raise StateError(f"container with id {cid} is not running")
    return {"type": "stats", "id": cid, "data": runc_stats(c.cgroup())}


def events(cid, root=DEFAULT_ROOT, interval=5.0, tick=0.25):
    """Yield runc's events for a running container until it stops: a stats event every
    `interval` seconds, an {"type": "oom"} event as soon as the kernel reports an OOM kill."""
    from .cgroups.events import OomWatcher, runc_stats
    if interval <= 0:
        raise MruncError("duration interval must be greater than 0")
    c = Container.load(root, cid)
    if c.status() in ("stopped", "creating"):
        raise StateError(f"container with id {cid} is not running")
    mgr = c.cgroup()
    watcher = OomWatcher(mgr)
    due = time.monotonic() + interval
    try:
        while True:
            alive = c.init_alive()
            # An OOM that killed init is still reported: look once more after it died.
            for _ in range(watcher.wait(min(tick, max(due - time.monotonic(), 0)) if alive else 0)):
                yield {"type": "oom", "id": cid}
            if not alive:
                return
            now = time.monotonic()
            if now >= due:
                yield {"type": "stats", "id": cid, "data": runc_stats(mgr)}
                due = max(due + interval, now)
    finally:
        watcher.close()
