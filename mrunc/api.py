"""The operations of runtime-spec runtime.md — create, start, state, kill, delete — plus run and
list, as plain functions. The CLI verbs and the notebook both call these.

Lifecycle (runtime.md): create -> created -> start -> running -> (process exits) -> stopped -> delete.
Each operation checks the state first and, when the state is wrong, fails *without effect*. The
ones that change a container hold its lock (state.Container.load(lock=True)) from that check to
the end, so two commands never interleave on one container; the readers (state, list, ps,
events) take none.
"""
import os
import time

from .errors import MruncError, StateError
from .state import Container, fifo_path
from .userdirs import RUN

DEFAULT_ROOT = os.path.join(RUN, "mrunc")   # root's; the CLI's default is per user (userdirs)


def create(cid, bundle, root=DEFAULT_ROOT, **kw):
    """`mrunc create` runs the same function (process.parent.create, without importing this
    module: mrunc.cli.do_create) with the cyclic garbage collector off (mrunc.cli's NO_GC_VERBS
    says why); a caller in Python keeps its own setting."""
    from .process.parent import create as _create
    return _create(root, cid, bundle, **kw)


def start(cid, root=DEFAULT_ROOT, events=None):
    """Open exec.fifo: init, blocked writing to it, wakes and execs the user program.
    `events` (mrunc.process.parent.Events, from `run`): report the exec phase — init's calls,
    sent through the fifo, and ours — once the program runs (and poststart is done)."""
    t0 = time.perf_counter()
    sys = events.sys if events is not None and events.listening else None
    with Container.load(root, cid, lock=True) as c:
        st = c.status()
        if st != "created":
            raise StateError(f"cannot start a container that is {st} (only a created container can be started)")
        calls = _release_init(c, sys)
    try:
        _poststart(c, sys)
    finally:
        if sys is not None:
            events.phase("exec", round((time.perf_counter() - t0) * 1000, 3), calls, c.pid,
                         wait=False)
    return c


def _poststart(c, sys):
    if (c.config.get("hooks") or {}).get("poststart"):
        from . import hooks
        # Lifecycle step 9: the program was started, so "running" with init's pid, even if a
        # quick program (`true`) has exited by now (crun says "running" too).
        state = dict(c.oci_state(), status="running", pid=c.pid)
        if not _poststart_failure_is_fatal(c.config):
            hooks.run(c.config, "poststart", state, warn=_warn, sys=sys)
            return
        try:
            hooks.run(c.config, "poststart", state, sys=sys)
        except MruncError:
            _kill_everything(c)
            raise


def _poststart_failure_is_fatal(config):
    """runtime-spec changed its rule in 1.3.0. Up to 1.2.1: a failed poststart hook is a warning,
    and the remaining hooks and the lifecycle go on. Since 1.3.0: it is an error, and the
    container is stopped (what runc and crun always did). A bundle gets the rule of the spec
    version it says it follows (its ociVersion, already validated)."""
    from .spec import version_numbers
    return (version_numbers(str(config.get("ociVersion"))) or (1, 3, 0)) >= (1, 3, 0)


def _kill_everything(c):
    from .signals import SIGKILL    # signal numbers: for kill and delete only, not state or start
    _signal_cgroup(c, SIGKILL)
    try:
        os.kill(c.pid, SIGKILL)
    except ProcessLookupError:
        pass


def _signal_cgroup(c, signum):
    """Signal every process of the container's cgroup; False if that cannot be done.

    Only the cgroup says which processes are the container's: without a PID namespace of its
    own they live among the host's, with nothing else to tell them apart (create refuses a cgroup
    that already holds processes, so nobody else's are in it). Without a cgroup — rootless and not
    delegated — or with init no longer in it, only init itself is known for sure (its pid and
    start time are in the state): the caller signals it alone. SIGKILL to the init of a PID
    namespace of its own ends every process in it; otherwise say that the others were not reached.
    """
    from .signals import SIGKILL
    mgr = c.cgroup()
    if mgr is not None and mgr.layout != "disabled" and c.pid in mgr.pids():
        mgr.kill_all(signum)
        return True
    own_pidns = any(n.get("type") == "pid" and not n.get("path")
                    for n in (c.config.get("linux") or {}).get("namespaces") or [])
    if not (own_pidns and signum == SIGKILL):
        _warn(f"container {c.id} has no cgroup to find its processes by: "
              f"only its init (pid {c.pid}) is signalled")
    return False


def _release_init(c, sys=None):
    """Open exec.fifo: init, blocked opening it for writing, wakes; it runs the startContainer
    hooks, writes "0" and execs — and its end of the fifo closes with the exec. So: read until
    end-of-file. "0" alone = the program started; "E<message>" = a hook or the exec failed.
    A create that was traced has init write its exec-phase calls after the "0", one JSON line
    ending in its execve: with `sys` (the runtime's Syscalls) they are returned, and our open
    and read are recorded — the read's end-of-file is how the execve's success is seen."""
    # A non-blocking open always succeeds for a reader, and a reader is what init's blocked open
    # waits for. Before init has opened its end a read says EOF too (no writer yet): only EOF
    # after some data means init is done with it.
    # Is init alive? Asked *before* each read: what init wrote before it died stays in the fifo
    # while we hold it open, so "dead before an empty read" really means it never wrote. (Asked
    # after the read, a program that exits at once looked like an init that died unstarted.)
    fifo = fifo_path(c.dir)
    t, t0 = time.time(), time.perf_counter()
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    opened = time.perf_counter()
    got = b""
    import select   # a C module: nearly free (PERF.md)
    waiter = select.poll()
    waiter.register(fd, select.POLLIN)
    try:
        while True:
            # Alive *before* the read: init may write, exec a short program and be gone between
            # a read that found nothing yet and a check after it; what it wrote before dying is
            # in the fifo, so this read still sees it.
            alive = c.init_alive()
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                data = None
            if data:
                got += data
            elif data == b"" and got:
                break
            elif not alive:
                raise StateError(f"container {c.id}: init died before it could be started")
            else:
                # Asleep until init writes or its end closes, not a polling loop: on a busy
                # machine each spin is CPU that init, about to exec, is waiting for. A fifo
                # reports hang-up only once a writer has come and gone, so this does not return
                # at once before init has opened its end; the timeout is for an init that dies
                # before it does (nothing would wake us then): alive is asked again.
                waiter.poll(20)
    finally:
        os.close(fd)
        os.unlink(fifo)
    report, rest = b"", got[1:]
    if got[:1] == b"0" and rest[:1] == b"[":
        report, _, rest = rest.partition(b"\n")
    if got[:1] != b"0" or rest[:1] == b"E":
        raise MruncError((rest if got[:1] == b"0" else got)[1:].decode(errors="replace")
                         or "container init failed")
    if sys is None:
        return []
    from . import fastjson
    sys.add("open", fifo, "O_RDONLY|O_NONBLOCK", t=t, ms=(opened - t0) * 1000)
    sys.add("read", fifo, "until end-of-file", t=t + (opened - t0),
            ms=(time.perf_counter() - opened) * 1000).note = (
        "end-of-file: init's end of the fifo closed with its execve, which worked")
    return fastjson.loads(report) if report else []


def state(cid, root=DEFAULT_ROOT):
    return Container.load(root, cid).oci_state()


def list_containers(root=DEFAULT_ROOT):
    return [c.oci_state() for c in Container.all(root)]


def parse_signal(sig):
    """runc accepts 9, KILL, SIGKILL, kill (mrunc.signals: imported by the verbs that signal)."""
    from . import signals
    return signals.number(sig)


def kill(cid, sig="SIGTERM", root=DEFAULT_ROOT, all=False):
    signum = parse_signal(sig)
    with Container.load(root, cid, lock=True) as c:
        st = c.status(paused=False)     # running or paused: signalled alike
        if st not in ("created", "running"):
            # "container not running": the words containerd and CRI-O match to treat it as gone
            raise StateError(f"container not running: {cid} is {st}")
        if not (all and _signal_cgroup(c, signum)):
            os.kill(c.pid, signum)


def delete(cid, root=DEFAULT_ROOT, force=False, warn=None):
    """Undo create. A created container is deleted without --force (its program never ran), as
    runc and containerd expect; a running one only with --force (SIGKILL first).

    A create that was killed halfway left a container that is "stopped" and still says who was
    creating it: deleting it removes its cgroup — and with it any init still in there — and its
    directory; poststop hooks do not run for a container that was never created."""
    from . import state as st_mod  # not process.parent: delete needs none of create's imports
    st_mod.sweep(root)
    try:
        c = Container.load(root, cid, lock=True)
    except StateError:
        if force:
            st_mod.remove_leftover(root, cid)
        raise
    with c:
        st = c.status()
        if st == "creating":  # its create is alive but let go of the lock: let it finish
            raise StateError(f"cannot delete container {cid}: it is being created (by pid "
                             f"{c.creator['pid']})")
        if st in ("running", "paused") and not force:
            raise StateError(f"cannot delete container {cid} that is not stopped: {st}")
        if st != "stopped":
            if st == "paused":
                from .cgroups import freezer
                freezer.thaw(c.freezer())
            _kill_everything(c)
            if not st_mod.wait_gone(c.pid):
                raise StateError(f"container {cid}: init (pid {c.pid}) did not die after SIGKILL")
        c.remove_cgroup()  # SIGKILLs whatever is left in it first
        poststop = c.creator is None and (c.config.get("hooks") or {}).get("poststop")
        st_json = {**c.oci_state(), "status": "stopped", "pid": c.pid} if poststop else None
        c.remove()
    if poststop:
        from . import hooks
        hooks.run(c.config, "poststop", st_json, warn=warn or _warn)


def _warn(msg):
    os.write(2, f"mrunc: warning: {msg}\n".encode())


def run(cid, bundle, root=DEFAULT_ROOT, detach=False, keep=False, network=None, **kw):
    """create + start; in the foreground, wait for the container and return its exit status.
    network: a lab network attachment file (mrunc.network.step), wired between create and start."""
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


# ---- resource control: update, pause/resume, ps, events (cgroups) ---------------------------

def _cgroup_of(c, verb):
    mgr = c.cgroup()
    if mgr is None:
        raise StateError(f"cannot {verb} container {c.id}: it has no cgroup")
    return mgr


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
    st = c.status()
    if st in ("stopped", "creating"):
        raise StateError(f"cannot update container {c.id}: container not running (status {st})")
    mgr = _cgroup_of(c, "update")
    changed = upd.changes(resources, warn=warn or _warn)
    if not changed:
        return c
    linux = c.config.setdefault("linux", {})
    merged = upd.merge(linux.get("resources") or {}, changed)
    apply, gone = mgr.drop_gone(upd.to_apply(merged, changed))
    if gone:
        (warn or _warn)(gone)
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


def pause(cid, root=DEFAULT_ROOT):
    """Freeze every process of the container (cgroup v1 freezer, v2 cgroup.freeze). Only a
    running one: runc also pauses a created container, but its state would still read
    "created" here, and `start` would then wait for a frozen init."""
    with Container.load(root, cid, lock=True) as c:
        st = c.status()
        if st != "running":
            raise StateError(f"cannot pause container {cid}: container not running (status {st})")
        freezer_file = c.freezer()
        if freezer_file is None or not os.path.exists(freezer_file):
            _cgroup_of(c, "pause").freeze()     # no freezer: this raises, saying why
            return
        from .cgroups import freezer
        freezer.freeze(freezer_file)


def resume(cid, root=DEFAULT_ROOT):
    """Thaw a paused container."""
    with Container.load(root, cid, lock=True) as c:
        from .cgroups import freezer
        st = c.status()
        freezer_file = c.freezer() if st not in ("stopped", "creating") else None
        if freezer_file is None or not freezer.frozen(freezer_file):
            raise StateError(f"cannot resume container {cid}: container not paused (status {st})")
        freezer.thaw(freezer_file)


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
