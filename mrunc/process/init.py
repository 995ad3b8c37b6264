"""The container side of `create`: the phases, in the order they must happen, and why.

Two processes do this work, both forked from `mrunc create` (never re-exec'd: we are Python, we can
fork, and that saves a whole interpreter start):

  clone child   unshares the namespaces. A new PID (or time) namespace only applies to the
                children of the caller, so it forks once more and exits.
  init          that child: PID 1 in the new PID namespace. It runs every other phase, then
                blocks on exec.fifo until `mrunc start`, then execve()s the user's program —
                from then on, the container's PID 1 *is* the user's program.

    clone       unshare(user) -> parent writes uid/gid maps -> join/unshare the rest -> fork init
                (on a hybrid host init is born in its cgroup of the unified tree, which the
                parent made before the fork and which holds no limits: clone3 into it)
    mount       / made rslave, rootfs bound on itself, mounts[] in order, /dev nodes and links;
                without a cgroup namespace of its own the container's cgroup dirs are bound in
                now, so the parent makes them now (they show in this phase's record)
    pivot_root  the rootfs becomes /, the old root is detached; masked and read-only paths,
                hostname, sysctl, the console
                (without a mount namespace of its own, init mounts nothing at all and enters
                the rootfs with chroot: the mount table it shares is the host's)
    cgroup      the parent writes the limits; *then* init moves into its cgroup — on v1 itself,
                "0" into each hierarchy's `tasks`, opened and handed over by the parent (no
                global lock to wait for); on v2 (or rootless) the parent writes its pid into
                cgroup.procs; *then* init unshares the cgroup namespace — so inside, its own
                cgroup is "/" — and mounts the cgroup fs (unless it was bound in the mount
                phase), then makes / read-only if asked
    security    rlimits, oom_score_adj, groups/gid/uid, capabilities, no_new_privs, cwd; the
                program is looked up now so a typo fails `create`, not `start`
    exec        wait for `start` on exec.fifo, then execve (the fd table closed down to stdio)

After each phase init reports what it did to the parent (duration and kernel calls) and waits for
"continue": the parent adds the calls it made itself meanwhile (mrunc.record), and that one record
is what `--trace` prints and where the notebook stepper pauses a real container. The phases,
their order and the function of each are listed once, in mrunc.phases.

Neither process may outlive a `create` that is killed before it has handed the container over
(recorded it in state.json): nobody could find, start or delete it. Two guards, as runc has:
  * an empty read on the socket — create is gone — ends them. Every wait of theirs for create
    is such a read, up to and including the last one: after "ready", init waits for "recorded"
    before it blocks on exec.fifo (a wait create cannot interrupt).
  * between those waits (mounts, hooks, long phases), the parent-death signal: SIGKILL when the
    parent dies. Its subtleties: it is tied to the parent *thread* that forked us; it fires on
    every change of parent — so init arms it only once create has reaped the clone child and
    init is create's own (subreaper) child; it is reset by credential changes (setresuid in a
    user namespace, the security phase); and the parent may have died just before it was armed,
    so each arming is followed by a check (getppid, or a peek at the socket). init disarms it
    before the security phase: what follows changes credentials and may load a seccomp filter
    under which prctl is not allowed, and from there to the hand-over init only waits on the
    socket.
"""
import _signal as signal   # the C module under `signal`: same calls, without its enums (≈ 4 ms)
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)
import time

from .. import fastjson, linux
from ..linux import Syscalls
from . import protocol
from .common import (attach_tty, check_cwd, close_fds, close_inherited, default_signals,
                     enter_cwd, environ, find_executable, home_of, new_pty, own_mount_namespace,
                     scheduling)


class Ctx:
    """What init needs besides config.json, fixed by the parent before the fork."""

    def __init__(self, **kw):
        self.bundle = kw["bundle"]
        self.state_dirfd = kw["state_dirfd"]  # O_PATH fd of the state dir: reaches exec.fifo after pivot_root
        self.no_pivot = kw.get("no_pivot", False)
        self.preserve_fds = kw.get("preserve_fds", 0)
        self.cgroup_version = kw.get("cgroup_version", "none")
        self.v1_hierarchies = kw.get("v1_hierarchies", [])
        self.has_hooks = kw.get("has_hooks", set())
        self.hook_state = kw.get("hook_state", {})  # id, bundle, annotations: for in-container hooks
        self.cgroup_bind = kw.get("cgroup_bind", False)  # no own cgroupns: bind, not mount
        self.runtime_pid = kw.get("runtime_pid")  # `mrunc create`: the clone child's parent
        self.runtime_sources = kw.get("runtime_sources", False)  # the runtime opens bind sources
        self.sources_sock = None  # then, where it answers: its helper thread's socket (sources.py)
        self.proc = None  # init's private procfs handle (mrunc.procfs), made in the mount phase
        # Someone reads the record (--trace, --debug, a stepper): send our calls home with each
        # phase, and exec's to `start`. Nobody (an engine's create): the log is dropped, unsent.
        self.recording = kw.get("recording", False)
        self.self_view = kw.get("self_view", False)  # stepping: each report carries init's own view
        # (state root, state dir) when there is a linux.seccomp: the clone child looks in the
        # user's cache (security.seccompcache) and sets seccomp_program to what it found; None:
        # init builds it with libseccomp, and sends it home
        self.seccomp_cache = kw.get("seccomp_cache")
        self.seccomp_program = None
        self.seccomp_library = None  # which libseccomp file init mapped to build it (_preload)
        # O_PATH fd of the container's cgroup in the unified tree of a hybrid host, made by the
        # runtime before the fork: init is born in it (_fork_init), or None
        self.unified = kw.get("unified")


def _namespaces(config):
    return (config.get("linux") or {}).get("namespaces") or []


# ---------------------------------------------------------------- clone (in the clone child)

def clone_child(sock, config, ctx):
    """Fork-and-unshare, the runtime writing our id maps: enter (or make) the user namespace
    first, then the others in one unshare, and fork init — the first process that is *in* the
    new PID namespace. Runs in the clone child; never returns: reports init's pid, exits."""
    sys = Syscalls(who="clone")
    # Nobody reads the log: keep none (and so no readlink to name each fd in it).
    sys.readable = sys.keeping = ctx.recording
    t0 = time.perf_counter()
    try:
        close_inherited(keep={0, 1, 2, sock.fileno(), ctx.state_dirfd,
                              *([ctx.unified[1]] if ctx.unified else []),
                              *([ctx.sources_sock.fileno()] if ctx.sources_sock else []),
                              *range(3, 3 + ctx.preserve_fds)})
        _die_with_parent(sys, ctx.runtime_pid)
        if ctx.seccomp_cache:   # still in the host's namespaces, with the runtime's ids
            from ..security import seccompcache
            ctx.seccomp_program = seccompcache.for_create(*ctx.seccomp_cache,
                                                          config["linux"]["seccomp"], sys)
        nss = {n["type"]: n.get("path") for n in _namespaces(config)}
        if "user" in nss:
            _enter_user_namespace(sys, sock, nss, config)
            _die_with_parent(sys, ctx.runtime_pid)  # setresuid reset it
        # Not dumpable until the user's program is exec'd: no process of the container (or of a
        # container sharing its PID namespace) may ptrace us or open /proc/<pid>/exe — the host's
        # interpreter — or our fds (CVE-2019-5736, CVE-2016-9962). execve resets it. Only after
        # the id maps are written: a non-dumpable process's /proc files belong to root, and an
        # unprivileged parent could no longer write our uid_map.
        sys.prctl(linux.PR_SET_DUMPABLE, 0)
        _enter_other_namespaces(sys, nss, config)
        told_r, told_w = os.pipe()
        pid, born = _fork_init(sys, ctx)
    except BaseException as e:  # noqa: BLE001 — everything goes home as one structured error
        _send_error(sock, "clone", e, sys, ctx.recording)
        os._exit(1)
    if pid == 0:
        try:
            # Speak only after the parent has our pid (we share one socket with the clone child):
            # it writes "1" to the pipe once it has sent it. End-of-file instead: it died first.
            os.close(told_w)
            told = os.read(told_r, 1)
            os.close(told_r)
            if told == b"1":  # else the clone child died before the parent knew our pid
                init_main(sock, config, ctx, sys, t0)
        finally:
            os._exit(1)  # init_main only returns by exec or error
    try:
        protocol.send(sock, {"t": "pid", "pid": pid, "born_in": born})
        os.write(told_w, b"1")
    finally:
        os._exit(0)


def _fork_init(sys, ctx):
    """Fork init; on a hybrid host, born in its cgroup of the unified tree (clone3 with
    CLONE_INTO_CGROUP): (pid, that cgroup's path, or None). A process moved there afterwards,
    through cgroup.procs, takes the kernel's global lock whose first writer waits for an RCU
    grace period (5-15 ms, holding cgroup_mutex); one born there only reads it. That tree holds
    no limits (every controller is on v1), so being in it early runs nothing unlimited. Where
    clone3 may not (a user namespace that does not map the host's root: not ours to write;
    before Linux 5.7), a plain fork, and the runtime moves init as before."""
    if ctx.unified:
        path, fd = ctx.unified
        t = time.time()
        try:
            pid = linux.fork_into_cgroup(fd)    # init returns here too, with 0
        except OSError as e:
            sys.add("clone3", "CLONE_INTO_CGROUP", path, t=t, ms=(time.time() - t) * 1000,
                    err=e.errno)
        else:
            if pid == 0:    # init's copy of the log is the one that goes home
                sys.add("clone3", "CLONE_INTO_CGROUP", path, t=t, ms=(time.time() - t) * 1000)
            os.close(fd)
            return pid, path
        finally:
            ctx.unified = None
        os.close(fd)
    return os.fork(), None


def _die_with_parent(sys, parent_pid):
    """SIGKILL us when our parent dies; and if it already has (we were re-parented), die now."""
    sys.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def _die_with_runtime(sys, sock):
    """init's version: its parent is create, outside init's PID namespace (getppid says 0), so
    whether create is still there is asked of the socket: a peek that reads end-of-file."""
    sys.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        if sock.recv(1, _socket_flags()) == b"":
            os._exit(1)
    except BlockingIOError:
        pass  # nothing to read, the other end open: create is alive


def _socket_flags():
    import _socket  # the C module: `socket` would import enum and selectors (PERF.md)
    return _socket.MSG_PEEK | _socket.MSG_DONTWAIT


def _enter_user_namespace(sys, sock, nss, config):
    """The user namespace comes first: every other namespace made afterwards is *owned* by it,
    so root inside the container has capabilities over them and over nothing of the host's."""
    if "user" not in nss:
        return
    if nss["user"]:
        _setns(sys, nss["user"], linux.CLONE_NEWUSER, _ns_where(config, "user"))
    else:
        sys.unshare(linux.CLONE_NEWUSER)
        # A process cannot write its own id maps with host privileges: the parent does it.
        protocol.send(sock, {"t": "userns"})
        protocol.recv(sock, "maps-done")
    # Become root of the namespace (the maps decide which host ids that is).
    sys.setresgid(0)
    sys.setresuid(0)


def _enter_other_namespaces(sys, nss, config):
    """Join the namespaces given by path, unshare the new ones in one call.

    The cgroup namespace is left for the cgroup phase: it must be made *after* init has moved
    into its cgroup, or the container would see the runtime's cgroup as its root.
    """
    flags = 0
    for typ, path in nss.items():
        if typ in ("user", "cgroup"):
            continue
        if path:
            _setns(sys, path, linux.NAMESPACES[typ][0], _ns_where(config, typ))
        else:
            flags |= linux.NAMESPACES[typ][0]
    if flags:
        sys.unshare(flags)
    if "network" in nss and not nss["network"]:
        sys.link_up("lo")
    if flags & linux.CLONE_NEWTIME:
        _time_offsets(sys, config)


def _time_offsets(sys, config):
    """A new time namespace's clocks may be shifted — once, before any process enters it (our
    fork of init is what enters it)."""
    offsets = (config.get("linux") or {}).get("timeOffsets") or {}
    text = "".join(f"{clock} {v.get('secs', 0)} {v.get('nanosecs', 0)}\n" for clock, v in offsets.items())
    if text:
        from ..procfs import Proc
        proc = Proc.at("/proc")  # checked, and nothing mounted on the way (S12)
        try:
            proc.write(sys, "self/timens_offsets", text, "linux.timeOffsets")
        finally:
            proc.close()


def _ns_where(config, typ):
    """The JSON path of the namespace entry of type `typ`, for error messages."""
    i = next(i for i, n in enumerate(_namespaces(config)) if n["type"] == typ)
    return f"linux.namespaces[{i}].path"


def _setns(sys, path, nstype, where):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise OSError(e.errno, f"{where}: open namespace {path}: {e.strerror}", path) from None
    try:
        sys.setns(fd, nstype, path)
    except OSError as e:
        if e.errno == 22:  # EINVAL: the file is a namespace, but of another type (or not one at all)
            raise OSError(22, f"{where}: setns: {path} is not a {linux.flags_names(nstype)} "
                              "namespace", path) from None
        raise OSError(e.errno, f"{where}: setns {path}: {e.strerror}", path) from None
    finally:
        os.close(fd)


# ---------------------------------------------------------------- init (PID 1)

class _Phases:
    """Report each phase home and wait for 'continue' (the stepper's pause point)."""

    def __init__(self, sock, sys, t0, recording=True, view=None):
        self.sock, self.sys, self.t0, self.recording = sock, sys, t0, recording
        self.name = "clone"
        self.view = view  # stepping: what init sees of itself (process.selfview), sent with each report

    def done(self):
        ms = (time.perf_counter() - self.t0) * 1000
        log = self.sys.take_log()   # taken either way: the next phase starts afresh
        calls = []
        if self.recording:
            from .. import record   # preloaded (see _preload)
            calls = record.as_dicts(log)
        msg = {"t": "phase", "phase": self.name, "ms": round(ms, 3), "calls": calls}
        if self.view:
            msg["view"] = self.view()
        wait = self._waits()
        if not wait:
            msg["wait"] = False
        protocol.send(self.sock, msg)
        if not wait:
            return
        msg = protocol.recv(self.sock, "continue")
        if msg["t"] != "continue":
            os._exit(1)

    def _waits(self):
        """Wait for "continue" after this phase? When someone reads the record (--trace, a
        stepper), yes: it may pause us there. Otherwise (an engine's create) only after clone:
        that "continue" comes once the runtime has reaped the clone child, which init needs
        before it arms its parent-death signal (init_main). Each wait is a hand-over between
        two processes, and on a loaded machine every hand-over waits for a time slice."""
        return self.recording or self.name == "clone"

    def begin(self, name):
        self.name, self.t0 = name, time.perf_counter()


def _self_view(ctx):
    """While stepping: a function giving init's own view, for a caller who cannot read a
    non-dumpable init from outside (imported now, before pivot_root hides the host's files)."""
    if not ctx.self_view:
        return None
    from . import selfview
    return lambda: selfview.report(ctx.proc)


def init_main(sock, config, ctx, sys, t0):
    """PID 1 of the container, until it becomes the user's program."""
    # A session (and process group) of our own, with or without a terminal, as runc's init:
    # the caller's Ctrl-C is not ours (`run` forwards what it gets), and where autogroups are
    # on (kernel.sched_autogroup_enabled) the CPU is shared per session: in the caller's, the
    # inits of containers made at once on a busy machine shared that one session's share with
    # their runtimes; runc's each had a session's share of their own.
    os.setsid()
    _preload(config, ctx)
    _set_signals()
    sys.set_name("mrunc:[init]")
    # Our calls from here on are init's. Its pid as the runtime knows it is not ours to see
    # (getpid says 1): the runtime fills it in.
    sys.who, sys.pid = "init", None
    ph = _Phases(sock, sys, t0, ctx.recording, _self_view(ctx))
    try:
        ph.done()
        # create has reaped the clone child, so we are its child now: arm the parent-death signal
        _die_with_runtime(sys, sock)
        ph.begin("mount")
        rootfs = mount_phase(sys, sock, config, ctx)
        ph.done()
        ph.begin("pivot_root")
        pivot_root_phase(sys, sock, config, ctx, rootfs)
        ph.done()
        ph.begin("cgroup")
        cgroup_phase(sys, sock, config, ctx)
        ph.done()
        ph.begin("security")
        sys.prctl(linux.PR_SET_PDEATHSIG, 0)  # from here on init only waits on the socket
        path = security_phase(sys, config, sock, ctx.proc, ctx)
        ph.done()
    except EOFError:
        os._exit(1)  # the runtime went away: nobody will ever start us
    except BaseException as e:  # noqa: BLE001
        from ..security.rlimits import explain_emfile
        e = explain_emfile((config.get("process") or {}).get("rlimits"), e)
        _send_error(sock, ph.name, e, sys, ctx.recording)
        os._exit(1)
    exec_phase(sys, sock, config, ctx, path)


def _send_error(sock, phase, e, sys, recording):
    """The structured error, with — when someone reads the record — the calls of the phase so
    far: the one that failed last, with its errno."""
    msg = protocol.error_message(phase, e)
    if recording:
        from .. import record   # preloaded (see _preload)
        msg["calls"] = record.as_dicts(sys.take_log())
    protocol.send(sock, msg)


def _preload(config, ctx):
    """Import now everything used after pivot_root: from then on the host's filesystem — and so
    mrunc's own .py files and the standard library — is out of reach."""
    import _struct, fcntl  # noqa: E401,F401  (console setup; _struct: struct's C module, built in)
    from .. import procfs, rootfs, security  # noqa: F401
    if ctx.recording:
        from .. import record  # noqa: F401  (each phase's calls, sent home)
    security.host_last_cap()  # /proc/sys/kernel/cap_last_cap, read while /proc is the host's
    if ctx.has_hooks:
        from .. import hooks  # noqa: F401
        import subprocess  # noqa: F401
    if (config.get("linux") or {}).get("seccomp") and ctx.seccomp_program is None:
        from ..security import seccomp
        ctx.seccomp_library = seccomp.preload()  # libseccomp.so lives in the host's /usr/lib


def _set_signals():
    """PID 1 ignores signals it has no handler for, even SIGTERM from the host. Until the user's
    program replaces us, let TERM/INT/HUP end a created container, as they end runc's."""
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda n, _f: os._exit(128 + n))


def mount_phase(sys, sock, config, ctx):
    """Build the container's file tree, still under the host's /: make every mount of the new
    namespace a slave (the host's mounts still arrive, ours never go back; or
    linux.rootfsPropagation), bind the rootfs on itself, mount every mounts[] entry inside it, make
    /dev's nodes and links. Then the hooks of this point: createRuntime in the runtime,
    createContainer here. Returns the rootfs path."""
    from .. import procfs
    from .. import rootfs as rfs
    # First, while the runtime's /proc is still in sight: a procfs of our own PID namespace that
    # no path leads to, for every /proc write from here on (sysctl, oom_score_adj: S8, S12).
    ctx.proc = procfs.Proc.new(sys)
    if own_mount_namespace(config):
        rootfs = rfs.prepare_root(sys, config, ctx.bundle)
        sources = _RuntimeSources(ctx.sources_sock, sys) if ctx.runtime_sources else None
        try:
            rfs.mount_entries(sys, config, rootfs, ctx.bundle, open_source=sources)
        finally:
            if sources:
                sources.close()
        rfs.setup_dev(sys, config, rootfs, bool((config.get("process") or {}).get("terminal")))
        if ctx.cgroup_bind:
            # The runtime makes our cgroup directories in the mount phase — as it began,
            # while we mounted (parent._answer) — and they are bound into the rootfs last
            # (no cgroup namespace of our own to mount a cgroup fs in, see
            # parent._needs_cgroup_bind). Limits and joining stay in the cgroup phase.
            protocol.send(sock, {"t": "cgroup-dirs"})
            rfs.bind_cgroup_entries(sys, config, rootfs, protocol.recv(sock, "cgroup-dirs")["dirs"])
    else:
        # The mount table is the host's (or another container's): no mount, no propagation
        # change, no device node. Validation refused whatever would have needed one.
        rootfs = rfs.rootfs_path(config, ctx.bundle)
    if ctx.sources_sock is not None:
        ctx.sources_sock.close()  # no more sources to ask for: the runtime's helper thread ends
    _make_cwd(config, rootfs)
    # Hooks createRuntime (and the deprecated prestart) run now in the runtime's namespaces, then
    # createContainer in ours — mounts done, before pivot_root (runtime-spec lifecycle steps 3-5).
    if ctx.has_hooks & {"prestart", "createRuntime"}:
        protocol.send(sock, {"t": "hooks", "kind": "createRuntime"})
        protocol.recv(sock, "hooks-done")
    if "createContainer" in ctx.has_hooks:
        from .. import hooks
        hooks.run_in_container(config, "createContainer",
                               dict(ctx.hook_state, status=hooks.CREATE_STATUS), sys)
    return rootfs


class _RuntimeSources:
    """open_source for the mount phase in a user namespace: the runtime opens each bind source,
    from inside our mount namespace, with its own credentials (see mrunc.rootfs.sources) — its
    helper thread, which answers on a socket of its own (mrunc.process.sources)."""

    def __init__(self, sock, sys):
        self.sock, self.sys = sock, sys
        self.ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        self.sent = False

    def __call__(self, path, recursive):
        from ..rootfs.sources import BindSource
        protocol.send(self.sock, {"t": "mount-source", "path": path, "recursive": recursive},
                      fds=[] if self.sent else [self.ns])  # the namespace, with the first request
        self.sent = True
        answer = protocol.recv(self.sock, "mount-source", with_fds=True)
        # what the runtime asked the kernel for us shows in this phase's record, in its place
        for c in answer.get("calls") or []:
            self.sys.add(c["call"], *c["args"], t=c["t"], ms=c["ms"] or 0.0, who=c["who"],
                         pid=c["pid"], ret=c.get("ret"), err=c.get("errno"))
        if "errno" in answer:
            raise OSError(answer["errno"], answer["message"], path)
        return BindSource(answer["_fds"][0], answer["how"], path)  # close-on-exec (protocol.recv)

    def close(self):
        os.close(self.ns)


def _make_cwd(config, rootfs):
    """runc creates process.cwd if the image lacks it; do it inside the rootfs, no symlink escape."""
    cwd = (config.get("process") or {}).get("cwd") or "/"
    if cwd != "/":
        from .. import rootfs as rfs
        try:
            rfs.mkdir_in_root(rootfs, cwd)
        except OSError as e:
            raise OSError(e.errno, f"process.cwd {cwd!r}: cannot create it in the rootfs: "
                          f"{e.strerror}", cwd) from None


def pivot_root_phase(sys, sock, config, ctx, rootfs):
    """Make the rootfs our / (pivot_root, and detach the host's old root so nothing of it stays
    reachable), then what needs the new root: hostname, sysctl, masked and read-only paths, the
    console."""
    from .. import rootfs as rfs
    process = config.get("process") or {}
    own = own_mount_namespace(config)
    pty = None
    if own:
        rfs.pivot(sys, rootfs, ctx.no_pivot)
    else:
        if process.get("terminal"):
            # Nothing may be mounted: no devpts of our own, no /dev/console bind. The pty comes
            # from the /dev/ptmx of the mount namespace we share, before the chroot hides it.
            pty = new_pty(process.get("consoleSize"))
        rfs.enter_by_chroot(sys, rootfs)
    rfs.set_hostname(sys, config)
    rfs.apply_sysctl(sys, config, ctx.proc)
    if own:
        rfs.mask_paths(sys, config)
        rfs.readonly_paths(sys, config)
    if process.get("terminal"):
        _setup_console(sys, sock, config, pty)


def _setup_console(sys, sock, config, pty=None):
    """terminal: true — a pty from the container's own devpts; the slave becomes stdio and
    /dev/console, the master goes home (then to --console-socket, or to the user's terminal).
    `pty`: one made already, without a mount namespace: then there is no /dev/console bind."""
    from .. import rootfs as rfs
    if pty is None:
        master, slave = new_pty((config.get("process") or {}).get("consoleSize"))
        rfs.bind_console(sys, slave)
    else:
        master, slave = pty
    attach_tty(slave)
    protocol.send(sock, {"t": "console"}, fds=[master])
    os.close(master)


_MAX_HIERARCHIES = 32     # v1 hierarchies a host may have (Linux has 16 controllers, + named)


def cgroup_phase(sys, sock, config, ctx):
    """Ask the runtime to put us in our cgroup (it writes the limits first), and only then
    unshare the cgroup namespace: its root is the cgroup we are in at that moment. Then the
    cgroup filesystem, which shows that namespace's view, and / made read-only if asked."""
    # 1. the parent creates the cgroup and writes the limits (it owns the host side); then it
    #    moves us into the cgroups we cannot join ourselves, and hands us the `tasks` file of
    #    each v1 cgroup, opened: "0" moves the writer, one thread, without the kernel's global
    #    lock (and the grace period its first writer waits for: parent._tasks_for_init)
    protocol.send(sock, {"t": "cgroup"})
    done = protocol.recv(sock, "cgroup-done", with_fds=True, max_fds=_MAX_HIERARCHIES)
    try:
        for path, fd in zip(done.get("tasks") or [], done["_fds"]):
            sys.write_fd(path, "0", fd=fd)
    finally:
        for fd in done["_fds"]:
            os.close(fd)
    # 2. only now the cgroup namespace: its root is the cgroup we are in at unshare time
    nss = {n["type"]: n.get("path") for n in _namespaces(config)}
    if "cgroup" in nss:
        if nss["cgroup"]:
            _setns(sys, nss["cgroup"], linux.CLONE_NEWCGROUP, _ns_where(config, "cgroup"))
        else:
            sys.unshare(linux.CLONE_NEWCGROUP)
    # 3. and the cgroup filesystem, which shows that namespace's view
    from .. import rootfs as rfs
    if own_mount_namespace(config):
        if not ctx.cgroup_bind:
            rfs.mount_cgroup_entries(sys, config, ctx.cgroup_version, ctx.v1_hierarchies)
        rfs.finish_root(sys, config)


def security_phase(sys, config, sock=None, procfs=None, ctx=None):
    """Drop what the program must not have, as late as possible: scheduling, rlimits, groups and
    ids, capabilities, no_new_privs, and last the seccomp filter. The program is looked up now,
    so a typo fails `create`, not `start`. Returns its path."""
    from .. import security
    proc = config.get("process") or {}
    filt = _seccomp_filter(sys, config, sock, ctx)
    scheduling(sys, config)
    cwd = proc.get("cwd") or "/"
    checked = check_cwd(cwd)
    security.apply(sys, proc, seccomp=filt, proc=procfs)  # loads it itself when noNewPrivileges is off
    enter_cwd(cwd, checked)
    path = find_executable(proc["args"][0], proc.get("env") or [])
    if filt is not None:
        filt.load(sys)  # last: as few of init's own syscalls as possible run under the filter
    return path


def _seccomp_filter(sys, config, sock, ctx=None):
    """linux.seccomp as a program, not loaded yet: the one the runtime found in the user's cache
    (ctx.seccomp_program), or built now with libseccomp and sent home, where the runtime keeps
    it for exec and the next create. Its listener fd (SCMP_ACT_NOTIFY) is sent home once
    loaded, and the parent passes it on to the agent at listenerPath."""
    cfg = (config.get("linux") or {}).get("seccomp")
    if not cfg:
        return None
    filt = ctx.seccomp_program if ctx is not None else None
    if filt is None:
        filt = _build_seccomp(sys, cfg)
        if sock is not None:
            protocol.send(sock, {"t": "seccomp-program", "bpf": filt.bpf.hex(), "flags": filt.flags,
                                 "summary": filt.summary(),
                                 "library": ctx.seccomp_library if ctx is not None else None})
    if sock is not None:
        filt.on_notify_fd = lambda fd: protocol.send(sock, {"t": "seccomp"}, fds=[fd])
    return filt


def _build_seccomp(sys, cfg):
    """libseccomp turns the rules into BPF (seccomp_init, a seccomp_rule_add per name and
    architecture, seccomp_export_bpf): one entry in the record, with the library's version."""
    from ..security.seccomp import Program
    with sys.around("libseccomp", "seccomp_init … seccomp_export_bpf") as call:
        prog = Program.build(cfg)
        call.note = f"{prog.origin}: {len(prog.bpf) // 8} BPF instructions"
    return prog


# ---------------------------------------------------------------- exec (at `mrunc start`)

def exec_phase(sys, sock, config, ctx, path):
    """Tell create we are ready, block until `start` opens exec.fifo, run the startContainer
    hooks, close every fd the program must not get, and execve it. With someone tracing, our
    calls up to and including the execve go to `start` through the fifo, just before it."""
    proc = config["process"]
    env = environ(proc.get("env") or [])
    if "HOME" not in env:
        env["HOME"] = home_of((proc.get("user") or {}).get("uid", 0))
    _wait_until_recorded(sock, ctx)
    fifo = None
    try:
        fifo = _wait_for_start(sys, ctx)
        sock.close()
        os.close(ctx.state_dirfd)
        if "startContainer" in ctx.has_hooks:
            from .. import hooks
            hooks.run_in_container(config, "startContainer", dict(ctx.hook_state, status="created"),
                                   sys)
        close_fds(3 + ctx.preserve_fds, sys)
        default_signals()
        try:
            sys.execve(path, proc["args"], env, _started(fifo, ctx))
        except OSError as e:  # found at create, but a bind mount may cover it with anything
            raise OSError(e.errno, f"process.args[0]: exec {proc['args'][0]}: {e.strerror}") from None
    except BaseException as e:  # noqa: BLE001 — report to `start` if it is listening, else stderr
        _exec_failed(fifo, proc, e)


def _wait_until_recorded(sock, ctx):
    protocol.send(sock, {"t": "ready"})
    try:
        protocol.recv(sock, "recorded")  # create has written state.json: we are findable now
    except (EOFError, OSError):
        os._exit(1)  # create died first: nobody can find us, let alone start us
    if ctx.proc is not None:
        ctx.proc.close()  # close-on-exec anyway; but the startContainer hooks need no procfs of ours


def _wait_for_start(sys, ctx):
    """Blocks until `mrunc start` opens the other end of exec.fifo. Opened relative to the state
    dir fd we kept from before pivot_root: the host path is unreachable from inside the rootfs."""
    with sys.around("open", "exec.fifo", "O_WRONLY") as call:
        call.note = "blocks until `start` opens the other end"
        return os.open("exec.fifo", os.O_WRONLY | os.O_CLOEXEC, dir_fd=ctx.state_dirfd)


def _started(fifo, ctx):
    """What execve does just before: write "0" (all went well) to `start`. The fifo is
    close-on-exec, so `start` sees end-of-file at the very moment execve succeeds: that is when the
    program has started (and poststart may run). Traced, this phase's calls follow, one JSON line,
    the execve last (see api.start)."""
    def ready(log):
        line = b""
        if ctx.recording:
            from .. import record
            line = fastjson.dumps(record.as_dicts(log), compact=True).encode() + b"\n"
        os.write(fifo, b"0" + line)
    return ready


def _exec_failed(fifo, proc, e):
    """Tell `start` why ("E" + the message), or stderr if it is not listening; never return."""
    msg = getattr(e, "strerror", None) or str(e)
    if not msg.startswith(("process.", "hooks.")):  # those name their JSON path already
        msg = f"exec {proc['args'][0]}: {msg}"
    try:
        os.write(fifo, b"E" + msg.encode()) if fifo is not None else None
    except OSError:
        fifo = None
    if fifo is None:
        os.write(2, f"mrunc: {msg}\n".encode())
    os._exit(127)
