"""The runtime side of `create`: fork, answer init's requests, record the container, return.

The parent does what only the host side can do: write the user namespace's id maps, create the
cgroup and move init into it, run the runtime-namespace hooks, pass the console on. Everything
else happens in the container's own processes (init.py). If anything fails, the parent undoes
what was done — kills init, removes the cgroup and the state dir — and raises one error.

Every call the parent makes goes through one Syscalls object, `events.sys`; when init reports a
phase, the parent's calls since the previous report — made while init was in that phase — are
merged with init's into the phase's record (mrunc.record).
"""
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)
import time

from .. import OCI_VERSION, fastjson, paths
from ..errors import InitError, MruncError
from ..signals import SIGKILL, SIGSYS, name as signal_name
from ..state import (Container, now_rfc3339, own_start_time, pids_hidden, proc_start_time,
                     wait_gone, write_atomic)
from . import protocol
from .common import check_terminal, pass_console, pass_seccomp_fd, reap
from .init import Ctx, clone_child



class Events:
    """Where phase records go: the --trace printer and the stepper's channel (either may be off).
    `sys` is the runtime's own Syscalls: what it logged since the last phase is part of the next."""

    def __init__(self, trace=None, step_fd=None):
        from ..linux import Syscalls
        self.trace = trace            # a file (stderr) or None
        self.step = open(step_fd, "r+b", buffering=0) if step_fd is not None else None
        self.sys = Syscalls()
        # Nobody reads the record (an engine's create): keep no log, as init keeps none — each
        # call is made and fails as before, without a Call built, timed and named for nothing.
        self.sys.keeping = self.listening
        self.records = []

    @property
    def listening(self):
        """Is anyone reading the records? If not, nothing is built (create stays cheap)."""
        return self.trace is not None or self.step is not None

    def phase(self, name, ms, calls=(), pid=None, wait=True, **extra):
        """Phase `name` is over: merge the calls of the other processes (init's: their pid is
        `pid`) with ours, by time, and report the record. `wait`: pause for the stepper."""
        own = self.sys.take_log()
        if not self.listening:
            self.records.append({"phase": name})
            return
        from .. import record
        for c in calls:
            if c.get("pid") is None:
                c["pid"] = pid
        rec = {"event": "phase-done", "phase": name, "ms": ms,
               "calls": record.merge(calls, record.as_dicts(own))}
        if pid:
            rec["pid"] = pid
        rec.update({k: v for k, v in extra.items() if v is not None})   # network: the views
        self.records.append(rec)
        if self.trace:
            self.trace.write(record.format_phase(rec))
            self.trace.flush()
        if self.step:
            self.step.write(fastjson.dumps(rec).encode() + b"\n")
            line = self.step.readline().strip() if wait else b"continue"
            if line != b"continue":
                raise MruncError(f"{name}: stopped by the stepper ({line.decode() or 'channel closed'})")

    def error(self, err, pid=None):
        """A phase failed: its record so far — init's calls (sent with its error) and ours, the
        failed call with its errno — goes out with the message."""
        own = self.sys.take_log()
        if not self.listening:
            return
        from .. import record
        calls = getattr(err, "calls", None) or []
        for c in calls:
            if c.get("pid") is None:
                c["pid"] = pid
        rec = {"event": "error", "phase": getattr(err, "phase", None), "message": str(err),
               "calls": record.merge(calls, record.as_dicts(own))}
        if self.trace and rec["calls"]:
            self.trace.write(record.format_phase(rec))
            self.trace.flush()
        if self.step:
            try:
                self.step.write(fastjson.dumps(rec).encode() + b"\n")
            except OSError:
                pass


def create(root, cid, bundle, *, pid_file=None, console_socket=None, no_pivot=False,
           preserve_fds=0, events=None, on_console=None, netns_path=None):
    """Create container `cid` from `bundle`; return its Container once init waits on exec.fifo.
    netns_path: join this network namespace instead of a new one (a rootless lab network made it
    for the container: see mrunc.network.lab)."""
    from .. import spec
    from ..state import validate_id
    events = events or Events()
    t0 = time.perf_counter()
    validate_id(cid)
    _check_pids_visible()
    bundle = paths.abspath(bundle)
    config = spec.load(bundle, sys=events.sys)  # the read and every check, in the record
    _check_id_maps(config, events.sys)
    if netns_path:
        for ns in config["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = netns_path
    check_terminal(config.get("process") or {}, True, console_socket, on_console)  # create detaches
    events.phase("spec", round((time.perf_counter() - t0) * 1000, 3))

    cg = _cgroup_manager(config, cid)
    cg.sys = events.sys
    c = Container(root, cid)
    c.reserve(_creating_record(c, config, bundle, cg), config)  # takes the container's lock
    state = {"init_pid": None, "cgroup": None}
    try:
        _create(c, config, bundle, state, events, cg, no_pivot=no_pivot,
                preserve_fds=preserve_fds, console_socket=console_socket, on_console=on_console)
        if pid_file:
            write_atomic(paths.abspath(pid_file), str(c.pid), 0o644)
    except BaseException as e:
        events.error(e, state.get("init_pid"))
        _undo(c, state)
        raise
    finally:
        c.unlock()
    return c


def _check_pids_visible():
    """Refuse, before anything is made, where /proc would hide our own init (see pids_hidden):
    create would succeed and every later step would find the container gone."""
    hidden = pids_hidden()
    if hidden:
        raise MruncError(f"/proc is mounted with {hidden} (systemd ProtectProc=): a rootless "
                         "runtime cannot see its container's init there; remove ProtectProc= "
                         "from the unit (or mount /proc without hidepid=)")


def _cgroup_manager(config, cid):
    from .. import cgroups
    from ..cgroups import warm
    # the hierarchies as the warm-up read them from mountinfo for this create, if it runs
    cg = cgroups.manager((config.get("linux") or {}).get("cgroupsPath"), cid,
                         rootless=os.geteuid() != 0, found=warm.found())
    if getattr(cg, "reason", None):
        _warn_once(f"no cgroup for this container: {cg.reason}")
    return cg


def _creating_record(c, config, bundle, cg):
    """state.json while create works: who is creating it (pid + start time, so a create killed
    halfway is told from one at work) and the cgroup it will use (so delete can remove that).
    (The config goes beside it, in config.json: Container.reserve.)"""
    from ..cgroups import recorded
    me = os.getpid()
    root = config["root"]["path"]
    return {
        "id": c.id, "pid": 0, "start_time": None, "bundle": bundle,
        "rootfs": root if root.startswith("/") else paths.join(bundle, root),
        "created": now_rfc3339(),
        # relative cgroup paths depend on the caller's cgroup: keep the resolved ones (runc does
        # too), and where they are, so the later commands need not find them (cgroups.recorded)
        "cgroup": None if cg is None else {"path": cg.path, "paths": cg.paths,
                                           "rootless": cg.rootless, "layout": cg.layout,
                                           **recorded.record(cg)},
        "creator": {"pid": me, "start_time": own_start_time()},
    }


def _warn_once(msg):
    """Say a limitation once per user, not on every container, the way a shell says "new mail"
    once: remembered by a mark file in the user's own runtime directory (never a shared /tmp
    name another user could create first to silence it)."""
    mark = warned_mark()
    if mark is None or paths.exists(mark):
        return
    os.write(2, f"mrunc: warning: {msg} (said once)\n".encode())
    try:
        open(mark, "w").close()
    except OSError:
        pass


def warned_mark():
    """The mark file of _warn_once (the notebook sandbox sets it once it has said the same)."""
    from .. import userdirs
    try:
        base = userdirs.runtime_base() or "/run"
    except userdirs.UnsafeDir:
        return None
    return paths.join(base, f".mrunc-warned-{os.geteuid()}")


def _needs_cgroup_bind(config):
    """Bind the container's own cgroup dirs (read-only) rather than mount the cgroup filesystem,
    whenever the container has no cgroup namespace of its own (none, or one joined by path):
    (a) a user namespace cannot mount it there; (b) a v1 mount shows the host's whole tree, so a
    container would read the root's limits, not its own (/sys/fs/cgroup/pids/pids.max "max"
    instead of podman's 2048); (c) on v2, a cgroup2 mount made from the host's cgroup namespace
    re-applies its options to the one cgroup2 hierarchy of the machine: a plain mount turns the
    host's nsdelegate and memory_recursiveprot off (the kernel's apply_cgroup_root_flags). runc
    binds in (a) and (b); (c) was found by the host check around the tests, in the v2 VM."""
    return not any(n["type"] == "cgroup" and not n.get("path")
                   for n in (config.get("linux") or {}).get("namespaces") or [])


def _runtime_opens_sources(config):
    """A user namespace's root may not reach a bind source the runtime can: then the runtime
    opens them (mrunc.rootfs.sources). Only a runtime privileged on the host reaches more; a
    rootless one could not even join the container's mount namespace."""
    types = {n["type"] for n in (config.get("linux") or {}).get("namespaces") or []}
    binds = any({"bind", "rbind"} & set(m.get("options") or []) for m in config.get("mounts") or [])
    return os.geteuid() == 0 and "user" in types and binds


def _create(c, config, bundle, state, events, cg, *, no_pivot, preserve_fds, console_socket,
            on_console):
    from .. import cgroups
    cg.check_unused()  # once the id is ours: a second create of an id says "already exists"
    # How cgroups are mounted, as the manager found them in mountinfo (not read twice); one that
    # uses none (rootless, not delegated) still needs the host's layout for init's mounts
    layout = cg.layout if cg.layout in ("v1", "hybrid", "v2") else cgroups.detect()
    hooks = {k for k, v in (config.get("hooks") or {}).items() if v}
    dirfd = os.open(c.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    ctx = Ctx(bundle=bundle, state_dirfd=dirfd, no_pivot=no_pivot, preserve_fds=preserve_fds,
              runtime_pid=os.getpid(),
              cgroup_version=layout, v1_hierarchies=_v1_hierarchies(cg) if layout != "v2" else [],
              has_hooks=hooks, cgroup_bind=_needs_cgroup_bind(config),
              hook_state=_hook_state(c, config, bundle, {"init_pid": None}, ""),
              runtime_sources=_runtime_opens_sources(config), recording=events.listening,
              self_view=events.step is not None,
              seccomp_cache=(c.root, c.dir) if (config.get("linux") or {}).get("seccomp") else None)
    ctx.unified = _unified_for_init(cg, config, state, events.sys)
    if ctx.runtime_sources:
        from .sources import SourceHelper  # now, before the forks: it imports what init needs too
    # Before the fork too: init needs it first thing (its own procfs), and so does write_id_maps
    # here for a user namespace: imported once for both, not once in each (≈ 0.5 ms of CPU)
    from .. import procfs  # noqa: F401
    # And what init imports for its later phases (init._preload): here it costs no more than
    # in init, where each import after the fork also copies the pages it touches (copy-on-write)
    # — and init's time is the container's start. Without a user namespace, CPU medians (N=80,
    # interleaved): init 8.4 -> 6.6 ms, the runtime 22.9 -> 24.5; run in all 34.3 -> 33.5.
    import _struct  # noqa: F401
    from .. import rootfs, security  # noqa: F401
    security.host_last_cap()  # read once, here: init's _preload finds it known (no page copied)
    from ..linux import prepare_fork
    prepare_fork()            # and the C functions both sides call first
    mine, theirs = protocol.pair()
    # init's bind-source requests go to the runtime's helper thread on a pair of their own
    sources = protocol.pair() if ctx.runtime_sources else None
    ctx.sources_sock = sources and sources[1]
    # Be a child subreaper: when the clone child exits, init becomes *our* child, so a failed
    # create can reap it (no zombie left behind) and `run` can wait for its exit status. When
    # create returns, init passes on to the next subreaper up — conmon, containerd's shim.
    from ..linux import PR_SET_CHILD_SUBREAPER
    events.sys.prctl(PR_SET_CHILD_SUBREAPER, 1)
    clone_pid = os.fork()
    if clone_pid == 0:
        try:
            mine.close()
            if sources:
                sources[0].close()
            clone_child(theirs, config, ctx)
        finally:
            os._exit(1)
    theirs.close()
    os.close(dirfd)
    if ctx.unified:
        os.close(ctx.unified[1])
    helper = None
    try:
        if sources:
            sources[1].close()
            helper = SourceHelper(sources[0], ctx.recording)  # started as init is forked
        from ..cgroups import warm
        # if the command line has not (the sandbox), or where init is not born in its unified
        # cgroup after all (a user namespace without the host's root): see its doc
        warm.start(3 + preserve_fds, needed=_userns_without_host_root(config) or None)
        _serve(c, config, bundle, state, events, mine, clone_pid, cg, console_socket, on_console,
               helper and helper.start)
    finally:
        mine.close()
        if helper:
            helper.close()
        elif sources:
            sources[0].close()
        reap(clone_pid)


def _serve(c, config, bundle, state, events, sock, clone_pid, cg, console_socket, on_console,
           forked=None):
    """Answer init, phase by phase, until it says it is ready; then record the container and
    hand over. An empty read, or a send that finds no reader, means init (or the clone child)
    died: that is reported with the phase and how it died."""
    try:
        staged = _answer(c, config, bundle, state, events, sock, clone_pid, cg, console_socket,
                         on_console, stage=lambda: _stage_record(c, state), forked=forked)
        _record(c, config, bundle, state, staged)
        # The hand-over: from now on init's life is not tied to ours (init.exec_phase)
        protocol.send(sock, {"t": "recorded"})
    except (EOFError, BrokenPipeError, ConnectionResetError):
        raise _died(config, state, events, clone_pid) from None


def _died(config, state, events, clone_pid):
    """The error for a create whose init or clone child died: in which phase, of what — and,
    when the config makes one likely, the field that killed it."""
    from .. import phases
    done = [r["phase"] for r in events.records]
    phase = (phases.after(done[-1]) if done and done[-1] in phases.NAMES else None) or "clone"
    pid, who = (state["init_pid"], "init") if state.get("init_pid") else (clone_pid, "clone child")
    info = _death(pid)
    killed = info is not None and info.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
    culprit = _culprit(config, phase, info.si_status if killed else None) if who == "init" else None
    if culprit:
        return culprit
    how = ("exited" if info is None else f"killed by {signal_name(info.si_status)}"
           if killed else f"exit status {info.si_status}")
    err = InitError("create", f"{who} died during phase {phase} ({how})")
    err.phase = phase
    return err


def _culprit(config, phase, sig):
    """init died without a word: is a field of the config the likely cause?"""
    linux = config.get("linux") or {}
    if sig == SIGSYS:
        return InitError("security", "container init was killed by its own seccomp filter "
                         "(SIGSYS): linux.seccomp must allow the calls init still makes before "
                         "exec (sendto, recvfrom, openat, read, write, close, getdents64, ioctl, "
                         "execve)")
    if phase == "security" and linux.get("seccomp"):
        # Silent death in the security phase, with a filter: it forbids what init still needs
        # (defaultAction SCMP_ACT_ERRNO makes even exit_group fail).
        return InitError("security", "linux.seccomp: container init died once its filter was "
                         "loaded: the filter must allow the calls init still makes before exec "
                         "(sendto, recvfrom, write, close, exit_group, execve)")
    limit = ((linux.get("resources") or {}).get("memory") or {}).get("limit")
    if sig == SIGKILL and phase != "clone" and limit and 0 < limit < 64 * 2**20:
        return InitError(phase, f"linux.resources.memory.limit: container init was killed "
                         f"(SIGKILL) during phase {phase}: {limit} bytes is likely too little "
                         f"memory for it (the OOM killer)")
    return None


def _answer(c, config, bundle, state, events, sock, clone_pid, cg, console_socket, on_console,
            stage=None, forked=None):
    """Answer init until it is ready. `stage()`: called once init is in its cgroup — what it
    returns is returned (_stage_record). `forked()`: once init is forked and the clone child
    reaped (the bind-source helper's start, mrunc.process.sources)."""
    sys = events.sys
    dirs = planned = staged = None
    while True:
        msg = protocol.recv(sock, with_fds=True)
        t = msg["t"]
        if t == "error":
            err = InitError(msg["phase"], msg["message"], msg.get("syscall"), msg.get("path"),
                            msg.get("errno"))
            err.calls = msg.get("calls") or []      # init's calls in the phase, up to the failure
            raise err
        if t == "userns":
            write_id_maps(clone_pid, config, sys)
            protocol.send(sock, {"t": "maps-done"})
        elif t == "pid":
            state["init_pid"] = msg["pid"]
            state["born_in"] = [msg["born_in"]] if msg.get("born_in") else []
            # The clone child exits now: once it is reaped, init is our child (we are its
            # subreaper), and may arm its parent-death signal (init: _die_with_runtime)
            reap(clone_pid)
            if forked:
                forked()
        elif t == "phase":
            events.phase(msg["phase"], msg["ms"], msg["calls"], state["init_pid"], view=msg.get("view"))
            if msg.get("wait", True):   # not when nobody reads the record (init._Phases._waits)
                protocol.send(sock, {"t": "continue"})
            if msg["phase"] == "clone" and _dirs_ahead(config, cg):
                # The mount phase has begun. init asks for its cgroup dirs once its own mounts
                # are done (init.mount_phase): made now, while it mounts, they are there then
                # (it waited ≈ 1 ms for ten mkdirs in cgroupfs, made only when it asked).
                state["cgroup"] = cg    # from the first mkdir: a failed create removes them
                dirs = _cgroup_dirs(cg, sys)
        elif t == "cgroup-dirs":
            if dirs is None:            # (not made ahead)
                state["cgroup"] = cg
                dirs = _cgroup_dirs(cg, sys)
            protocol.send(sock, {"t": "cgroup-dirs", "dirs": dirs})
            planned = _plan_limits(cg, config)      # while init binds them
        elif t == "cgroup":
            tasks = join_cgroup(cg, config, state, planned, init_joins=True)
            protocol.send(sock, {"t": "cgroup-done", "tasks": [p for p, _ in tasks]},
                          fds=[fd for _, fd in tasks])
            for _, fd in tasks:
                os.close(fd)
            if stage:
                staged = stage()    # while init drops its privileges (the security phase)
        elif t == "hooks":
            from .. import hooks   # only now: most containers have none
            st = _hook_state(c, config, bundle, state, hooks.CREATE_STATUS)
            for kind in ("prestart", "createRuntime"):
                hooks.run(config, kind, st, sys=sys)
            protocol.send(sock, {"t": "hooks-done"})
        elif t == "console":
            pass_console(msg["_fds"][0], console_socket, on_console, sys)
        elif t == "seccomp":
            pass_seccomp_fd(config, _hook_state(c, config, bundle, state, "creating"),
                            state["init_pid"], msg["_fds"][0], sys)
        elif t == "seccomp-program":
            _keep_seccomp(c, config, msg, sys)
        elif t == "ready":
            return staged


def join_cgroup(cg, config, state, planned=None, init_joins=False):
    """The runtime's half of the cgroup phase: make the cgroup (if the mount phase has not),
    write the limits, then move init in — limits first, so it never runs a moment unlimited
    (runc's order too). Every mkdir and write is recorded by the manager's `sys`. `planned`:
    the limits and their writes, worked out while init mounted (_plan_limits). `init_joins`:
    init may move itself into its v1 cgroups. Then this opens each v1 hierarchy's
    tasks file and returns [(path, fd)] for init (_tasks_for_init), moving init itself only
    where it must (cgroup.procs: the unified tree of a hybrid host, a rootless runtime)."""
    state["cgroup"] = cg
    resources, gone, writes = planned or _limits(cg, config) + (None,)
    if gone:
        os.write(2, f"mrunc: warning: {gone}\n".encode())
    if writes is None:
        cg.set(resources)
    else:
        cg.set(resources, writes)   # as planned: only the writes are left
    tasks = _tasks_for_init(cg) if init_joins else []
    cg.apply(state["init_pid"],
             [p.rsplit("/", 1)[0] for p, _ in tasks] + state.get("born_in", []))
    from ..cgroups import warm
    warm.stop()     # its thread may stop: the lock has done its work
    return tasks


def _userns_without_host_root(config):
    """A user namespace whose root is not the host's: its clone child may not write the host's
    cgroup files, so init cannot be born in its unified cgroup (init._fork_init) and the
    runtime moves it there through cgroup.procs (the warm-up helps: mrunc.cgroups.warm)."""
    linux_ = config.get("linux") or {}
    if not any(n["type"] == "user" for n in linux_.get("namespaces") or []):
        return False
    return not any(m.get("containerID") == 0 and m.get("hostID") == 0
                   for m in linux_.get("uidMappings") or [])


def _unified_for_init(cg, config, state, sys):
    """On a hybrid host, with a runtime that is root: the container's cgroup in the unified
    tree, made now, before the fork, so that init is born in it (init._fork_init) and nobody
    moves it there through cgroup.procs: (path, O_PATH fd), else None. That tree holds no
    limits (the controllers are all on v1): nothing runs unlimited by being in it early.
    Not for a user namespace without the host's root: its clone child may not (EACCES)."""
    d = cg.dir("") if cg.layout == "hybrid" and not cg.rootless else None
    if d is None or _userns_without_host_root(config):
        return None
    state["cgroup"] = cg        # from the first mkdir: a failed create removes it
    from ..cgroups import fs
    sys.note = "made before init is forked: it is born in it (init._fork_init)"
    try:
        fs.mkdir(d, cg.created, sys)
    finally:
        sys.note = None
    return d, os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _tasks_for_init(cg):
    """[(path, fd)] of the `tasks` file of each of the container's v1 cgroups, opened for init
    to write "0" into: it moves the writer, one thread — init, single-threaded as it is — and
    so the kernel skips the global lock a move through cgroup.procs takes, whose first writer
    after a quiet spell waits for an RCU grace period (5-15 ms, holding cgroup_mutex, so every
    cgroup mkdir of any create waits too): 0.1 ms. Opened here, not by init: init may be in a
    user namespace that cannot open the host's files, and v1 checks a write to `tasks` against
    the credentials of whoever *opened* it (root). Only for a runtime that is root: rootless,
    the runtime moves init as before (mrunc.cgroups.fs.join). [] where there are none (v2)."""
    if cg.rootless or cg.layout not in ("v1", "hybrid"):
        return []
    out = []
    try:
        for d in cg.v1_dirs():
            path = d + "/tasks"
            out.append((path, os.open(path, os.O_WRONLY | os.O_CLOEXEC)))
    except OSError:
        for _, fd in out:
            os.close(fd)
        return []       # the runtime moves init, as before (and says why, if it cannot)
    return out


def _limits(cg, config):
    """(linux.resources as the manager writes them: without the fields this kernel has no knob
    for, with the device rules; the warning for the fields left out, or None)."""
    from ..cgroups import device_rules
    resources, gone = cg.drop_gone(dict((config.get("linux") or {}).get("resources") or {}))
    resources["devices"] = device_rules(config)
    return resources, gone


def _dirs_ahead(config, cg):
    """Will init ask for its cgroup dirs in the mount phase (init.mount_phase), and are there
    any to make? (None without a cgroup: rootless, not delegated.)"""
    from .common import own_mount_namespace
    return (_needs_cgroup_bind(config) and own_mount_namespace(config)
            and cg.layout != "disabled")


def _plan_limits(cg, config):
    """The limits' writes worked out ahead — which files, in which order, each checked to
    exist — so that the cgroup phase, which init waits for, only writes them (≈ 0.4 ms less):
    (resources, warning, writes) for join_cgroup. Only where planning writes nothing
    (Manager.plans_ahead: v1; on v2 it enables controllers, a write of its own, which stays
    in the cgroup phase). None there, or when the plan fails: the cgroup phase plans again,
    and raises the error itself, in its own phase."""
    if not cg.plans_ahead:
        return None
    try:
        resources, gone = _limits(cg, config)
        return resources, gone, cg.plan(resources)
    except Exception:  # noqa: BLE001 — see above
        return None


def _cgroup_dirs(cg, sys):
    """Create the container's cgroup directories; [(name in the container, host dir)].
    Asked for in the mount phase, and recorded there, saying why."""
    sys.note = ("made in the mount phase, to be bound into the rootfs: no cgroup namespace of "
                "the container's own to mount a cgroup filesystem in (parent._needs_cgroup_bind)")
    try:
        cg.create()
    finally:
        sys.note = None
    mounts = getattr(cg, "mounts", {})
    if list(mounts) == [""] and cg.layout == "v2":
        return [["", cg.dir("")]]
    by_mountpoint = {}
    for key, (mountpoint, _) in mounts.items():
        # v1 hierarchies only, as runc (and as the v1 mount): the hybrid host's unified tree
        # at /sys/fs/cgroup/unified only tracks processes
        if key and cg.dir(key):
            by_mountpoint.setdefault(mountpoint, cg.dir(key))
    return sorted([paths.basename(mp), d] for mp, d in by_mountpoint.items())


def _record(c, config, bundle, state, staged=None):
    """The creating record becomes the container's: init's pid and start time, no creator.
    `staged`: (that record, its file) from _stage_record — then only a rename is left."""
    data, path = staged or (_final_record(c, state), None)
    c.data = data
    c.save(path)


def _stage_record(c, state):
    """The container's record is known once init is in its cgroup (its pid, the cgroup dirs
    made): written then beside state.json, while init finishes — so that when it is ready, a
    rename records it, and init waits that long for "recorded" (not ≈ 0.3 ms more for the
    record to be built and written)."""
    data = _final_record(c, state)
    return data, c.stage(data)


def _final_record(c, state):
    pid = state["init_pid"]
    data = dict(c.data, pid=pid, start_time=proc_start_time(pid)[0], created=now_rfc3339())
    data.pop("creator", None)
    cg = state.get("cgroup")
    if cg is not None and data.get("cgroup") is not None and cg.created:
        # Every directory create made, parents of a nested cgroupsPath ("a/b/c") included:
        # `delete` is another process, and removes them again only if it knows them.
        data["cgroup"] = dict(data["cgroup"], created=list(cg.created))
    return data


def _hook_state(c, config, bundle, state, status):
    return {"ociVersion": OCI_VERSION, "id": c.id, "status": status, "pid": state["init_pid"],
            "bundle": bundle, "annotations": config.get("annotations") or {}}


def _check_id_maps(config, sys):
    """Rootless, maps beyond our own id need ranges delegated to us (mrunc.security.subids):
    checked now, in the spec phase, before the state dir or any process exists."""
    if any(_helped_maps(config).values()):
        from ..security import subids
        with sys.around("check", "check_subordinate_ids"):
            subids.check(config)


def write_id_maps(pid, config, sys):
    """Map container ids to host ids. Only a process privileged in the *parent* user namespace
    may write these files for another process, which is why the parent, not init, does it.
    Written below a checked handle of our /proc (mrunc.procfs): nothing mounted over
    /proc/<pid>/uid_map can take the write. Rootless, a map of more than our own id is written
    by the setuid helper new{uid,gid}map instead, from the ranges in /etc/sub{uid,gid}."""
    from ..procfs import Proc
    lin = config.get("linux") or {}
    helped = _helped_maps(config)
    proc = Proc.at("/proc")
    try:
        if os.geteuid() != 0 and not helped["gid"]:
            # Unprivileged, the kernel accepts a gid map only once setgroups(2) is disabled in the
            # namespace: otherwise the process could drop a group that was denying it access.
            # (newgidmap leaves it allowed when the map is ranges delegated to us: any group
            # the container drops is one of ours.)
            proc.write(sys, f"{pid}/setgroups", "deny", "linux.gidMappings")
        for kind in ("uid", "gid"):
            maps = lin.get(f"{kind}Mappings") or []
            if helped[kind]:
                from ..security import subids
                subids.write(sys, pid, kind, maps)
                continue
            text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)
            proc.write(sys, f"{pid}/{kind}_map", text, f"linux.{kind}Mappings")
    except OSError as e:
        raise MruncError(e.strerror) from None
    finally:
        proc.close()


def _helped_maps(config):
    """{"uid": …, "gid": …}: is that map written by the setuid helper (subids.needs_helper)?
    Never for root, which writes any map itself: then subids is not even imported (≈ 0.1 ms)."""
    if os.geteuid() == 0:
        return {"uid": False, "gid": False}
    from ..security import subids
    return {kind: subids.needs_helper(config, kind) for kind in ("uid", "gid")}


def _v1_hierarchies(cg):
    """The host's cgroup v1 hierarchies, known before pivot_root makes them invisible:
    [(directory name under /sys/fs/cgroup, the controllers mounted there)]. The cgroup manager
    already read them from mountinfo; controllers sharing a mount point ("cpu,cpuacct") are one."""
    by_mountpoint = {}
    for key, (mountpoint, _root) in getattr(cg, "mounts", {}).items():
        if key:  # "" is the unified (v2) tree of a hybrid host, not a v1 hierarchy
            by_mountpoint.setdefault(mountpoint, []).append(key)
    return [(paths.basename(mp), ",".join(keys)) for mp, keys in sorted(by_mountpoint.items())]


def _death(pid, timeout=1.0):
    """How our child `pid` (init — we are its subreaper — or the clone child) ended: its
    waitid siginfo, or None if unknown. Peeks without reaping (WNOWAIT): _undo still finds it."""
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return None
        if info is not None:
            return info
        time.sleep(0.005)
    return None


def _undo(c, state):
    """A failed create must leave nothing behind: no process, no cgroup, no state dir."""
    pid = state.get("init_pid")
    if pid:
        try:
            os.kill(pid, SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone(pid)
    cg = state.get("cgroup")
    if cg is not None:
        try:
            cg.remove()
        except Exception:  # noqa: BLE001 — best effort; the original error matters more
            pass
    c.remove()


def _keep_seccomp(c, config, msg, sys):
    """init built the program (security phase; when the user's cache had it, the clone child
    kept it: init.clone_child): keep it for this container's execs and for the user's next
    create of the same profile."""
    from ..security import seccompcache
    from ..security.seccomp import Program, exec_key, keep_for_exec
    cfg = config["linux"]["seccomp"]
    prog = Program(bytes.fromhex(msg["bpf"]), msg["flags"], msg["summary"])
    keep_for_exec(c.dir, exec_key(cfg), prog)
    seccompcache.store(c.root, seccompcache.key(cfg)[1], prog, msg.get("library"), sys)
