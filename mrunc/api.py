"""The operations of runtime-spec runtime.md — create, start, state, kill, delete — plus run,
list, exec and the cgroup's (update, pause, resume, ps, events), as plain functions. The
notebook calls these; the CLI's verbs too, except the lifecycle's own (mrunc.lifecycle: start,
state, kill, delete, list, pause, resume), which they import alone.

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
    """create + start; in the foreground, wait for the container and return its exit status.
    network: a lab network attachment file (mrunc.network.step), wired between create and start."""
    from .lifecycle import start
    if detach and network:
        raise MruncError("--network: only for a foreground run (not with --detach)")
    if detach:
        create(cid, bundle, root, **kw)
        start(cid, root)
        return 0
    return _run_foreground(cid, bundle, root, keep, network, **kw)


def _run_foreground(cid, bundle, root, keep, network, **kw):
    """Create, start, stay with init until it exits (mrunc.process.foreground), then delete
    (unless `keep`)."""
    from .lifecycle import delete, start
    from .process import foreground
    box = {}
    holder = None
    if network:
        from .network.step import hold_netns
        holder = hold_netns(network)        # rootless: the container's network namespace, made now
        if holder:
            kw["netns_path"] = holder.path
    try:
        c = create(cid, bundle, root, on_console=lambda fd: box.__setitem__("pty", fd), **kw)
        if network:
            _network_step(cid, root, network, c.pid, kw.get("events"), holder)
    finally:
        if holder:
            holder.release()                # init is in the namespace now: it lives on with it
    handlers = foreground.forward_signals(c.pid)
    try:
        start(cid, root, events=kw.get("events"))
        return foreground.stay(c.pid, box.get("pty"))
    finally:
        foreground.restore_signals(handlers)
        if not keep:
            try:
                delete(cid, root, force=True)
            except Exception:  # noqa: BLE001 — already gone is fine
                pass


def _network_step(cid, root, network, pid, events, holder=None):
    """Wire the created container to its lab network before it starts (see mrunc.network.step);
    if that fails, the container goes, as if create had failed."""
    from .lifecycle import delete
    from .network.step import run_step
    from .process.parent import Events
    try:
        run_step(network, pid, events or Events(), netns=holder and holder.path)
    except BaseException as e:
        if events is not None:
            events.error(e)
        try:
            delete(cid, root, force=True)
        except Exception:  # noqa: BLE001 — the error that matters is the network's
            pass
        raise


def exec(cid, args=None, root=DEFAULT_ROOT, *, process=None, detach=False, pid_file=None,  # noqa: A001
         console_socket=None, preserve_fds=0, ignore_paused=False, on_console=None, **overrides):
    """Run one more process in a created or running container (runc exec).

    `process` is a whole process object (exec --process); without it, the container's own
    process with `args` and the `overrides` of process.exec.process_from_config (tty, env, cwd,
    user, additional_gids, caps, no_new_privs). In the foreground, return the process's exit
    status (128+N if signal N killed it); with `detach`, its pid once it has exec'd — it is left
    to the caller's subreaper, who waits for it.
    """
    from .process import exec as ex
    from .process.common import check_terminal
    c = Container.load(root, cid)
    st = c.status()
    if st in ("stopped", "creating"):
        raise StateError(f"cannot exec in a {st} container")
    if st == "paused" and not ignore_paused:
        raise StateError("cannot exec in a paused container (use --ignore-paused to override)")
    if preserve_fds < 0:
        raise MruncError("--preserve-fds: must be >= 0")
    if process is None:
        process = ex.process_from_config(c.config.get("process") or {}, args, **overrides)
    from . import spec
    spec.validate_process(process)
    check_terminal(process, detach, console_socket, on_console)
    return ex.run(c, process, detach=detach, pid_file=pid_file, console_socket=console_socket,
                  preserve_fds=preserve_fds, on_console=on_console)


# ---- resource control: update, ps, events (cgroups) -----------------------------------------


def update(cid, resources, root=DEFAULT_ROOT, warn=None):
    """Change the limits of a created, running or paused container: `resources` is a bare
    linux.resources object with only what changes (see mrunc.cgroups.update). The new limits are
    written to the cgroup, then merged into the config in the state file."""
    from . import spec
    spec.validate_resources(resources)
    with Container.load(root, cid, lock=True) as c:
        return _update(c, resources, warn)


def _update(c, resources, warn):
    """update, under the container's lock: no other command rewrites state.json meanwhile."""
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
    c.save()
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
