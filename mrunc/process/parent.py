"""The runtime side of `create`: fork, answer init's requests, record the container, return.

The parent does what only the host side can do: write the user namespace's id maps, create the
cgroup and move init into it, run the runtime-namespace hooks, pass the console on. Everything
else happens in the container's own processes (init.py). If anything fails, the parent undoes
what was done — kills init, removes the cgroup and the state dir — and raises one error.
"""
import json
import os
import signal
import time

from ..errors import InitError, MruncError
from ..state import Container, fifo_path, now_rfc3339, proc_start_time, wait_gone, write_atomic
from . import protocol
from .init import Ctx, clone_child

HOOKS_IN_INIT = ("createContainer", "startContainer")


class Events:
    """Where phase reports go: the --trace printer and the stepper's channel (either may be off)."""

    def __init__(self, trace=None, step_fd=None):
        self.trace = trace            # a file (stderr) or None
        self.step = os.fdopen(step_fd, "r+b", buffering=0) if step_fd is not None else None
        self.records = []

    def phase(self, name, ms, calls, pid=None, **extra):
        rec = {"event": "phase-done", "phase": name, "ms": ms, "calls": calls}
        if pid:
            rec["pid"] = pid
        rec.update({k: v for k, v in extra.items() if v is not None})   # network: the views
        self.records.append(rec)
        if self.trace:
            self.trace.write(format_phase(rec))
            self.trace.flush()
        if self.step:
            self.step.write(json.dumps(rec).encode() + b"\n")
            line = self.step.readline().strip()
            if line != b"continue":
                raise MruncError(f"{name}: stopped by the stepper ({line.decode() or 'channel closed'})")

    def error(self, err):
        if self.step:
            rec = {"event": "error", "phase": getattr(err, "phase", None), "message": str(err)}
            try:
                self.step.write(json.dumps(rec).encode() + b"\n")
            except OSError:
                pass


def format_phase(rec):
    """One line per phase, then its kernel calls; a run of the same call with the same first
    argument (38 × prctl(PR_CAPBSET_DROP, …)) is folded into one line."""
    lines = [f"mrunc: phase {rec['phase']:<10} {rec['ms']:8.3f} ms\n"]
    runs = []
    for name, *args in rec["calls"]:
        if runs and len(args) == 2 and runs[-1][0] == name and runs[-1][1][:1] == args[:1]:
            runs[-1][2].append(args[1])
        else:
            runs.append((name, args, [args[1]] if len(args) == 2 else None))
    for name, args, rest in runs:
        if rest and len(rest) > 1:
            args = [args[0], f"{{{', '.join(map(str, rest))}}}"]
            lines.append(f"         {name}({args[0]!r}, {args[1]})  × {len(rest)}\n")
        else:
            lines.append(f"         {name}({', '.join(map(repr, args))})\n")
    return "".join(lines)


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
    bundle = os.path.abspath(bundle)
    config = spec.load(bundle)
    if netns_path:
        for ns in config["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = netns_path
    _check_terminal(config, console_socket, on_console)
    events.phase("spec", round((time.perf_counter() - t0) * 1000, 3), [["read", f"{bundle}/config.json"]])

    c = Container(root, cid)
    c.reserve()
    state = {"init_pid": None, "cgroup": None}
    try:
        _create(c, config, bundle, state, events, no_pivot=no_pivot, preserve_fds=preserve_fds,
                console_socket=console_socket, on_console=on_console)
        if pid_file:
            write_atomic(os.path.abspath(pid_file), str(c.pid), 0o644)
    except BaseException as e:
        events.error(e)
        _undo(c, state)
        raise
    return c


def _warn_once(msg):
    """Say a limitation once per user, not on every container: remembered in a file under
    $XDG_RUNTIME_DIR (or /tmp), the same way a shell says "new mail" once."""
    import tempfile
    mark = os.path.join(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir(),
                        f".mrunc-warned-{os.geteuid()}")
    if os.path.exists(mark):
        return
    os.write(2, f"mrunc: warning: {msg} (said once)\n".encode())
    try:
        open(mark, "w").close()
    except OSError:
        pass


def _check_terminal(config, console_socket, on_console):
    terminal = bool((config.get("process") or {}).get("terminal"))
    if terminal and not console_socket and on_console is None:
        raise MruncError("process.terminal is true: --console-socket is required "
                         "(cannot allocate a tty when mrunc detaches without a console socket)")
    if console_socket and not terminal:
        raise MruncError("--console-socket given but process.terminal is false")


def _needs_cgroup_bind(config, layout):
    """Bind the container's own cgroup dirs rather than mount the cgroup filesystem, when there
    is no cgroup namespace and (a) a user namespace, which cannot mount it, or (b) cgroup v1: a
    v1 mount shows the host's whole tree, so a container would read the root's limits, not its
    own (/sys/fs/cgroup/pids/pids.max "max" instead of podman's 2048). runc binds in both cases;
    on v2 it mounts cgroup2 and so do we."""
    types = {n["type"] for n in (config.get("linux") or {}).get("namespaces") or []}
    return "cgroup" not in types and ("user" in types or layout != "v2")


def _runtime_opens_sources(config):
    """A user namespace's root may not reach a bind source the runtime can: then the runtime
    opens them (mrunc.rootfs.sources). Only a runtime privileged on the host reaches more; a
    rootless one could not even join the container's mount namespace."""
    types = {n["type"] for n in (config.get("linux") or {}).get("namespaces") or []}
    binds = any({"bind", "rbind"} & set(m.get("options") or []) for m in config.get("mounts") or [])
    return os.geteuid() == 0 and "user" in types and binds


def _create(c, config, bundle, state, events, *, no_pivot, preserve_fds, console_socket,
            on_console):
    from .. import cgroups
    os.mkfifo(fifo_path(c.dir), 0o622)
    os.chmod(fifo_path(c.dir), 0o622)  # mkfifo obeys the umask; any uid may signal readiness
    linux_cfg = config.get("linux") or {}
    rootless = os.geteuid() != 0
    cg = cgroups.manager(linux_cfg.get("cgroupsPath"), c.id, rootless=rootless)
    if getattr(cg, "reason", None):
        _warn_once(f"no cgroup for this container: {cg.reason}")
    cg.check_unused()
    layout = cgroups.detect()
    hooks = {k for k, v in (config.get("hooks") or {}).items() if v}
    dirfd = os.open(c.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    ctx = Ctx(bundle=bundle, state_dirfd=dirfd, no_pivot=no_pivot, preserve_fds=preserve_fds,
              cgroup_version=layout, v1_hierarchies=_v1_hierarchies(cg) if layout != "v2" else [],
              has_hooks=hooks, cgroup_bind=_needs_cgroup_bind(config, layout), hook_state=_hook_state(c, config, bundle, {"init_pid": None}, ""),
              runtime_sources=_runtime_opens_sources(config))
    if ctx.runtime_sources:
        from .sources import SourceHelper  # now, before the forks: it imports what init needs too
    mine, theirs = protocol.pair()
    # Be a child subreaper: when the clone child exits, init becomes *our* child, so a failed
    # create can reap it (no zombie left behind) and `run` can wait for its exit status. When
    # create returns, init passes on to the next subreaper up — conmon, containerd's shim.
    from ..linux import PR_SET_CHILD_SUBREAPER, Syscalls
    Syscalls().prctl(PR_SET_CHILD_SUBREAPER, 1)
    clone_pid = os.fork()
    if clone_pid == 0:
        try:
            mine.close()
            clone_child(theirs, config, ctx)
        finally:
            os._exit(1)
    theirs.close()
    os.close(dirfd)
    helper = None
    try:
        if ctx.runtime_sources:
            helper = SourceHelper()  # forked before the thread below: it must join a mount ns
        _warm_cgroup_lock(cg)
        _serve(c, config, bundle, state, events, mine, clone_pid, cg, console_socket, on_console,
               helper)
    finally:
        mine.close()
        if helper:
            helper.close()
        _reap(clone_pid)


def _serve(c, config, bundle, state, events, sock, clone_pid, cg, console_socket, on_console,
           helper=None):
    """Answer init, phase by phase, until it says it is ready."""
    from .. import hooks
    while True:
        try:
            msg = protocol.recv(sock, with_fds=True)
        except EOFError:
            if _killed_by_seccomp(state.get("init_pid")):
                raise InitError("security", "container init was killed by its own seccomp filter "
                                "(SIGSYS): linux.seccomp must allow the calls init still makes "
                                "before exec (sendto, recvfrom, openat, read, write, close, "
                                "getdents64, ioctl, execve)") from None
            raise InitError(events.records[-1]["phase"] if events.records else "clone",
                            "container init exited unexpectedly") from None
        t = msg["t"]
        if t == "error":
            raise InitError(msg["phase"], msg["message"], msg.get("syscall"), msg.get("path"),
                            msg.get("errno"))
        if t == "userns":
            write_id_maps(clone_pid, config)
            protocol.send(sock, {"t": "maps-done"})
        elif t == "pid":
            state["init_pid"] = msg["pid"]
        elif t == "phase":
            events.phase(msg["phase"], msg["ms"], msg["calls"], state["init_pid"])
            protocol.send(sock, {"t": "continue"})
        elif t == "cgroup-dirs":
            state["cgroup"] = cg
            protocol.send(sock, {"t": "cgroup-dirs", "dirs": _cgroup_dirs(cg)})
        elif t == "mount-source":
            answer, fds = helper.open(msg)
            protocol.send(sock, answer, fds)
            for fd in fds:
                os.close(fd)
        elif t == "cgroup":
            _join_cgroup(cg, config, state)
            protocol.send(sock, {"t": "cgroup-done"})
        elif t == "hooks":
            st = _hook_state(c, config, bundle, state, "creating")
            for kind in ("prestart", "createRuntime"):
                hooks.run(config, kind, st)
            protocol.send(sock, {"t": "hooks-done"})
        elif t == "console":
            _pass_console(msg["_fds"][0], console_socket, on_console)
        elif t == "seccomp":
            _pass_seccomp_fd(msg["_fds"][0], c, config, bundle, state)
        elif t == "ready":
            break
    _record(c, config, bundle, state)


def _join_cgroup(cg, config, state):
    """Limits first, then move init in: it never runs a moment unlimited (runc's order too)."""
    from ..cgroups import device_rules
    state["cgroup"] = cg
    resources = dict((config.get("linux") or {}).get("resources") or {})
    resources["devices"] = device_rules(config)
    cg.set(resources)
    cg.apply(state["init_pid"])


def _warm_cgroup_lock(cg):
    """Make the cgroup phase fast, without changing what it does.

    Moving a process between cgroups takes a kernel lock (cgroup_threadgroup_rwsem) for writing;
    the first writer after a quiet spell waits for an RCU grace period — 5 to 10 ms here, most of
    the cgroup phase. Later writers within the next grace period are quick. So while init works
    through clone, mount and pivot_root, a thread of ours moves *this* process into the cgroup it
    is already in (a no-op), paying that wait in parallel; by the time init asks to be moved,
    the lock is warm. Errors are irrelevant: it only ever saves time.
    """
    mounts = getattr(cg, "mounts", None)
    if not mounts:
        return
    from ..cgroups import fs
    key, (mountpoint, mount_root) = next(iter(mounts.items()))
    own = fs.own_cgroups().get(key)
    if own is None:
        return
    path = os.path.join(mountpoint, fs.under_mount(own, mount_root).lstrip("/"), "cgroup.procs")

    def move_self():
        try:
            fs.write(path, os.getpid())
        except Exception:  # noqa: BLE001
            pass
    import threading
    threading.Thread(target=move_self, daemon=True).start()


def _cgroup_dirs(cg):
    """Create the container's cgroup directories; [(name in the container, host dir)]."""
    cg.create()
    mounts = getattr(cg, "mounts", {})
    if list(mounts) == [""] and cg.layout == "v2":
        return [["", cg.dir("")]]
    by_mountpoint = {}
    for key, (mountpoint, _) in mounts.items():
        # v1 hierarchies only, as runc (and as the v1 mount): the hybrid host's unified tree
        # at /sys/fs/cgroup/unified only tracks processes
        if key and cg.dir(key):
            by_mountpoint.setdefault(mountpoint, cg.dir(key))
    return sorted([os.path.basename(mp), d] for mp, d in by_mountpoint.items())


def _record(c, config, bundle, state):
    pid = state["init_pid"]
    start, _ = proc_start_time(pid)
    root = config["root"]["path"]
    cg = state["cgroup"]
    c.data = {
        "id": c.id, "pid": pid, "start_time": start, "bundle": bundle,
        "rootfs": root if os.path.isabs(root) else os.path.join(bundle, root),
        "created": now_rfc3339(), "config": config,
        # relative cgroup paths depend on the caller's cgroup: keep the resolved ones (runc does too)
        "cgroup": None if cg is None else {"path": cg.path, "paths": cg.paths,
                                           "rootless": cg.rootless, "layout": cg.layout},
    }
    c.save()


def _hook_state(c, config, bundle, state, status):
    return {"ociVersion": "1.3.0", "id": c.id, "status": status, "pid": state["init_pid"],
            "bundle": bundle, "annotations": config.get("annotations") or {}}


def _pass_console(master, console_socket, on_console):
    """Hand the pty master over, as runc does: SCM_RIGHTS on a connected unix socket."""
    if on_console is not None:
        on_console(master)
        return
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(console_socket)
        except OSError as e:
            raise MruncError(f"--console-socket {console_socket}: {e.strerror}") from None
        socket.send_fds(s, [b"/dev/ptmx"], [master])
    os.close(master)


def _pass_seccomp_fd(fd, c, config, bundle, state):
    """SCMP_ACT_NOTIFY: the filter's listener fd goes to the seccomp agent at listenerPath with
    the container's state (runtime-spec "Container Process State"). init is already running under
    the filter, so this must not fail silently: an error fails create."""
    from ..security.seccomp import send_to_listener
    try:
        send_to_listener(config, _hook_state(c, config, bundle, state, "creating"),
                         state["init_pid"], fd)
    except OSError as e:
        raise MruncError(e.strerror or str(e)) from None
    finally:
        os.close(fd)


def write_id_maps(pid, config):
    """Map container ids to host ids. Only a process privileged in the *parent* user namespace
    may write these files for another process, which is why the parent, not init, does it.
    Written below a checked handle of our /proc (mrunc.procfs): nothing mounted over
    /proc/<pid>/uid_map can take the write."""
    from ..linux import Syscalls
    from ..procfs import Proc
    lin = config.get("linux") or {}
    sys, proc = Syscalls(), Proc.at("/proc")
    try:
        if os.geteuid() != 0:
            # Unprivileged, the kernel accepts a gid map only once setgroups(2) is disabled in the
            # namespace: otherwise the process could drop a group that was denying it access.
            proc.write(sys, f"{pid}/setgroups", "deny", "linux.gidMappings")
        for kind in ("uid", "gid"):
            maps = lin.get(f"{kind}Mappings") or []
            text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)
            proc.write(sys, f"{pid}/{kind}_map", text, f"linux.{kind}Mappings")
    except OSError as e:
        raise MruncError(e.strerror) from None
    finally:
        proc.close()


def _v1_hierarchies(cg):
    """The host's cgroup v1 hierarchies, known before pivot_root makes them invisible:
    [(directory name under /sys/fs/cgroup, the controllers mounted there)]. The cgroup manager
    already read them from mountinfo; controllers sharing a mount point ("cpu,cpuacct") are one."""
    by_mountpoint = {}
    for key, (mountpoint, _root) in getattr(cg, "mounts", {}).items():
        if key:  # "" is the unified (v2) tree of a hybrid host, not a v1 hierarchy
            by_mountpoint.setdefault(mountpoint, []).append(key)
    return [(os.path.basename(mp), ",".join(keys)) for mp, keys in sorted(by_mountpoint.items())]


def _reap(pid):
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _killed_by_seccomp(pid, timeout=1.0):
    """Did init (our child: we are a subreaper) die of SIGSYS? Peeks without reaping (WNOWAIT):
    _undo still finds it."""
    deadline = time.monotonic() + timeout
    while pid and time.monotonic() < deadline:
        try:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return False
        if info is not None:
            return info.si_code in (os.CLD_KILLED, os.CLD_DUMPED) and info.si_status == signal.SIGSYS
        time.sleep(0.005)
    return False


def _undo(c, state):
    """A failed create must leave nothing behind: no process, no cgroup, no state dir."""
    pid = state.get("init_pid")
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
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
