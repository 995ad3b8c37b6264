"""The runtime-spec operations on a container that exists — start, state, kill, delete — and
list, pause, resume: what an engine runs as separate commands, over and over, between one create
and the next. mrunc.api offers them with the rest (create, run, exec, update, events); the CLI's
verbs import this module alone, without mrunc.api's other operations, and exec without this one.

Each checks the state first and, when the state is wrong, fails *without effect*. The ones that
change a container hold its lock (state.Container.load(lock=True)) from that check to the end,
so two commands never interleave on one container; the readers (state, list) take none.
"""
import posix as os  # os's C module: the same calls, without os's ≈ 1 ms import (mrunc.paths)
import time

from . import paths
from .state import Container, fifo_path
from .userdirs import DEFAULT_ROOT


def start(cid, root=DEFAULT_ROOT, events=None, container=None):
    """Open exec.fifo: init, blocked writing to it, wakes and execs the user program.
    `events` (mrunc.process.parent.Events, from `run`): report the exec phase — init's calls,
    sent through the fifo, and ours — once the program runs (and poststart is done).
    `container`: the Container `run`'s create returned (Container.relock: not read again)."""
    t0 = time.perf_counter()
    sys = events.sys if events is not None and events.listening else None
    with _locked(root, cid, container) as c:
        st = c.status()
        if st != "created":
            from .errors import StateError  # where raised: ≈ 0.1 ms less for start, kill, delete
            raise StateError(f"cannot start a container that is {st} (only a created container can be started)")
        config = c.hooks_config("poststart")    # config.json, read only for hooks to run
        calls = _release_init(c, sys)
    try:
        _poststart(c, config, sys)
    finally:
        if sys is not None:
            events.phase("exec", round((time.perf_counter() - t0) * 1000, 3), calls, c.pid,
                         wait=False)
    return c


def _locked(root, cid, container=None):
    """The container, locked: loaded — or, handed over by `run`, taken up again."""
    if container is not None:
        return container.relock()
    return Container.load(root, cid, lock=True)


def _poststart(c, config, sys):
    """`config`: the container's, if it has poststart hooks (Container.hooks_config); else None."""
    if config is not None:
        from . import hooks
        # Lifecycle step 9: the program was started, so "running" with init's pid, even if a
        # quick program (`true`) has exited by now (crun says "running" too).
        state = dict(c.oci_state(), status="running", pid=c.pid)
        if not _poststart_failure_is_fatal(config):
            hooks.run(config, "poststart", state, warn=stderr_warning, sys=sys)
            return
        from .errors import MruncError
        try:
            hooks.run(config, "poststart", state, sys=sys)
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
    if c.signal_cgroup(signum):
        return True
    own_pidns = any(n.get("type") == "pid" and not n.get("path")
                    for n in (c.config.get("linux") or {}).get("namespaces") or [])
    if not (own_pidns and signum == SIGKILL):
        stderr_warning(f"container {c.id} has no cgroup to find its processes by: "
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
    # Is init alive? Asked *before* a read: what init wrote before it died stays in the fifo
    # while we hold it open, so "dead before an empty read" really means it never wrote. (Asked
    # after the read, a program that exits at once looked like an init that died unstarted.)
    # Asked only when a read found nothing, and followed by one more read before the verdict:
    # a read that brings data needs no answer (≈ 30 µs of /proc each: two of a start's four).
    fifo = fifo_path(c.dir)
    t, t0 = time.time(), time.perf_counter()
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    opened = time.perf_counter()
    got = b""
    import select   # a C module: nearly free (PERF.md)
    waiter = select.poll()
    waiter.register(fd, select.POLLIN)
    try:
        alive = None    # as asked before the last read; None: not asked since
        while True:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                data = None
            if data:
                got, alive = got + data, None
            elif data == b"" and got:
                break
            elif alive is None:
                # Nothing yet: alive *before* one more read — init may write, exec a short
                # program and be gone between a read that found nothing and a check after it;
                # what it wrote before dying is in the fifo, so that read still sees it.
                alive = c.init_alive()
            elif not alive:
                from .errors import StateError
                raise StateError(f"container {c.id}: init died before it could be started")
            else:
                # Asleep until init writes or its end closes, not a polling loop: on a busy
                # machine each spin is CPU that init, about to exec, is waiting for. A fifo
                # reports hang-up only once a writer has come and gone, so this does not return
                # at once before init has opened its end; the timeout is for an init that dies
                # before it does (nothing would wake us then): alive is asked again.
                waiter.poll(20)
                alive = None
    finally:
        os.close(fd)
        os.unlink(fifo)
    report, rest = b"", got[1:]
    if got[:1] == b"0" and rest[:1] == b"[":
        report, _, rest = rest.partition(b"\n")
    if got[:1] != b"0" or rest[:1] == b"E":
        from .errors import MruncError
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
            from .errors import StateError
            raise StateError(f"container not running: {cid} is {st}")
        if not (all and _signal_cgroup(c, signum)):
            os.kill(c.pid, signum)


def delete(cid, root=DEFAULT_ROOT, force=False, warn=None, container=None):
    """Undo create. A created container is deleted without --force (its program never ran), as
    runc and containerd expect; a running one only with --force (SIGKILL first). `container`:
    as for start.

    A create that was killed halfway left a container that is "stopped" and still says who was
    creating it: deleting it removes its cgroup — and with it any init still in there — and its
    directory; poststop hooks do not run for a container that was never created."""
    from . import state as st_mod  # not process.parent: delete needs none of create's imports
    st_mod.sweep(root)
    try:
        c = _locked(root, cid, container)
    except Exception as e:
        from .errors import StateError  # (loaded by whoever raised it)
        if force and isinstance(e, StateError):
            st_mod.remove_leftover(root, cid)
        raise
    with c:
        st = c.status()
        if st == "creating":  # its create is alive but let go of the lock: let it finish
            from .errors import StateError
            raise StateError(f"cannot delete container {cid}: it is being created (by pid "
                             f"{c.creator['pid']})")
        if st in ("running", "paused") and not force:
            from .errors import StateError
            raise StateError(f"cannot delete container {cid} that is not stopped: {st}")
        # the config, if it has poststop hooks: read before anything is undone (config.json
        # unreadable: nothing is), kept for them to run once the directory is gone
        poststop = c.hooks_config("poststop") if c.creator is None else None
        if st != "stopped":
            if st == "paused":
                from .cgroups import freezer
                freezer.thaw(c.freezer())
            _kill_everything(c)
            if not st_mod.wait_gone(c.pid):
                from .errors import StateError
                raise StateError(f"container {cid}: init (pid {c.pid}) did not die after SIGKILL")
        c.remove_cgroup()  # SIGKILLs whatever is left in it first
        st_json = {**c.oci_state(), "status": "stopped", "pid": c.pid} if poststop is not None else None
        c.remove()
    if poststop is not None:
        from . import hooks
        hooks.run(poststop, "poststop", st_json, warn=warn or stderr_warning)


def stderr_warning(msg):
    os.write(2, f"mrunc: warning: {msg}\n".encode())


# ---- pause, resume (the cgroup's freezer) ---------------------------------------------------

def cgroup_of(c, verb):
    mgr = c.cgroup()
    if mgr is None:
        from .errors import StateError
        raise StateError(f"cannot {verb} container {c.id}: it has no cgroup")
    return mgr



def pause(cid, root=DEFAULT_ROOT):
    """Freeze every process of the container (cgroup v1 freezer, v2 cgroup.freeze). Only a
    running one: runc also pauses a created container, but its state would still read
    "created" here, and `start` would then wait for a frozen init."""
    with Container.load(root, cid, lock=True) as c:
        st = c.status()
        if st != "running":
            from .errors import StateError
            raise StateError(f"cannot pause container {cid}: container not running (status {st})")
        freezer_file = c.freezer()
        if freezer_file is None or not paths.exists(freezer_file):
            cgroup_of(c, "pause").freeze()     # no freezer: this raises, saying why
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
            from .errors import StateError
            raise StateError(f"cannot resume container {cid}: container not paused (status {st})")
        freezer.thaw(freezer_file)
