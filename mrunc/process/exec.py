"""`mrunc exec`: one more process in a container that is already there.

A container is its init's namespaces, its cgroup and its root. To run a new process "in" it, we
make a process that joins each of those, takes the security settings of its process object, and
execs. Nothing is created or mounted: everything is in place already. `mrunc exec` forks (never
re-execs, as with create) once: the fork is the new process; `mrunc exec` stays on the host and
waits for it (foreground), or leaves it — its own child — to the caller's subreaper (conmon,
containerd's shim) when it exits (--detach).

The order, and why:
  1. open everything   (runtime) /proc/<init>/ns/* and /proc/<init>/root, through one fd of
                       /proc/<init> whose start time is checked (a recycled pid is not the
                       container). Every open comes before the first setns: in the container's
                       mount namespace /proc is the container's (init's host pid means nothing
                       there), and in its user namespace we are no longer host root. Namespaces
                       we share already (same inode) are left alone.
  2. not dumpable      (runtime, inherited by the fork) once the process is in the container's
                       PID namespace, the container's processes can see it: they must not ptrace
                       it or open its fds or /proc/<pid>/exe — the host's interpreter
                       (CVE-2016-9962, CVE-2019-5736). execve of the program ends it.
  3. pid               (runtime) setns(CLONE_NEWPID) changes only the namespace of the caller's
                       *children*: we set it, fork, and set ours back. The kernel asks for
                       CAP_SYS_ADMIN both in the user namespace that owns the PID namespace and
                       in our own: host root has it; an ordinary user (a rootless container) has
                       it in neither until it joins the container's user namespace — which is for
                       good (no way back to the host's). Then the pid join is the fork's, after
                       step 7 ("late pid", _late_pid): see 7b.
  4. fork              into the cgroup v2 directory (clone3 CLONE_INTO_CGROUP): see _spawn.
  5. close inherited   (the process, from here on) the caller's fds but stdio and
                       --preserve-fds never reach the container.
  6. cgroup v1         move into the container's cgroup of each v1 hierarchy (_join_v1): on the
                       host's paths and in the host's cgroup namespace — from inside a cgroup
                       namespace the move would be judged against its root, which the runtime's
                       cgroup is not under. So: before 7 and 9.
  7. user              first of the namespaces: it owns the others, and joining it makes us root
                       *in it* with every capability over them. rlimits before it: only host
                       root may raise a hard limit.
  7b. late pid        the fork joins the PID namespace, after `user`, and (after 9) forks once
                       more with CLONE_PARENT: *that* child is in the container's PID namespace,
                       and the runtime's child — the fork tells the runtime its pid and exits.
  8. ipc uts net time cgroup   in any order.
  9. mount             last: setns resets our root and cwd to the namespace's root, so we then
                       chroot to init's own root (the fd from 1) — the `/` init sees, also with
                       --no-pivot.
 10. then              a tty from the container's devpts (-t), security (rlimits, user, caps,
                       no_new_privs, seccomp last), the cwd (refused outside the root,
                       CVE-2024-21626), the program found with the container's PATH, execve.

One SOCK_SEQPACKET socketpair (protocol.py), one JSON message per datagram, from the process:
    {"t": "console"} + fd     the pty master (-t): to --console-socket, or to our terminal
    {"t": "seccomp"} + fd     the seccomp listener (SCMP_ACT_NOTIFY): to the agent at listenerPath
    {"t": "pid", "pid": N}    late pid (7b): the fork's child is the process, host pid N; from the
                              fork, which exits — the process may have sent its own messages first
    {"t": "error", ...}       what failed, as one line; the CLI exits 255
The socket is close-on-exec, so end-of-file without an error means the program was exec'd.
"""
import _signal as signal   # the C module under `signal`: same calls, without its enums (≈ 4 ms)
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from .. import paths
from ..errors import MruncError
from ..state import alive_as
from . import foreground
from .common import (attach_tty, check_cwd, close_fds, close_inherited, default_signals, enter_cwd,
                     environ, find_executable, home_of, kill_reap, new_pty, own_mount_namespace,
                     pass_console, pass_seccomp_fd, scheduling)

# The namespaces the process joins, in order (steps 7-9 above), as /proc/<pid>/ns file names.
# pid: the runtime joins it for its child (step 3) and takes it out, unless it cannot (7b).
_ORDER = ("user", "pid", "ipc", "uts", "net", "time", "cgroup", "mnt")


class ExecError(MruncError):
    """The new process failed before its execve; the message names what (a JSON path, a
    syscall, a file), the phase is where (cgroup, namespaces, console, security, cwd, exec)."""

    def __init__(self, msg):
        self.phase, self.errno, self.path = msg.get("phase"), msg.get("errno"), msg.get("path")
        super().__init__(msg["message"])


# ---------------------------------------------------------------- the process object

def process_from_config(base, args, *, tty=False, env=None, cwd=None, user=None,
                        additional_gids=None, caps=None, no_new_privs=False, apparmor=None,
                        process_label=None, warn=None):
    """The container's config `process`, with `args` and the flag overrides of runc exec.

    terminal is false unless `tty`; `env` entries (K=V) are appended, so they override; `user`
    is "uid" or "uid:gid"; `additional_gids` are appended; each of `caps` is added to the
    bounding, effective and permitted sets — never to inheritable or ambient (CVE-2022-29162).
    A cap this kernel lacks, or no cap at all, is skipped with one warning (to `warn`).
    """
    from ..errors import UsageError
    p = dict(base)
    p["args"] = list(args or [])
    p["terminal"] = bool(tty)
    if env:
        p["env"] = list(p.get("env") or []) + list(env)
    if cwd:
        p["cwd"] = cwd
    if user or additional_gids:
        u = dict(p.get("user") or {"uid": 0, "gid": 0})
        if user:
            uid, sep, gid = str(user).partition(":")
            try:
                u["uid"] = int(uid, 10)
                if sep:
                    u["gid"] = int(gid, 10)
            except ValueError:
                raise UsageError(f"--user {user!r}: expected uid[:gid], numbers "
                                 "(names are not looked up)") from None
        for g in additional_gids or []:
            if g < 0:
                raise UsageError(f"--additional-gids {g}: must be a positive number")
        u["additionalGids"] = list(u.get("additionalGids") or []) + list(additional_gids or [])
        p["user"] = u
    if caps:
        caps = _grantable(caps, warn)
    if caps:
        sets = {k: list(v or []) for k, v in (p.get("capabilities") or {}).items()}
        for key in ("bounding", "effective", "permitted"):
            sets[key] = sets.get(key, []) + [c for c in caps if c not in sets.get(key, [])]
        p["capabilities"] = sets
    if no_new_privs:
        p["noNewPrivileges"] = True
    if apparmor:
        p["apparmorProfile"] = apparmor      # validation refuses it: not supported yet
    if process_label:
        p["selinuxLabel"] = process_label
    return p


def _grantable(caps, warn=None):
    """`--cap` names the kernel can grant. The others are skipped with a warning, as runc and crun
    do: engines build these lists for many kernels, and a name from a newer one must not stop
    the process. (config.json is stricter about names that are no capability: see spec.checks.)"""
    from ..security.capabilities import CAPABILITIES, host_last_cap, unavailable_warning
    last = host_last_cap()
    skipped = [c for c in caps if CAPABILITIES.get(c, last + 1) > last]
    if skipped:
        from ..spec import print_warning
        (warn or print_warning)(unavailable_warning("exec --cap", dict.fromkeys(skipped), last))
    return [c for c in caps if c not in skipped]


# ---------------------------------------------------------------- the runtime side

def exec_process(root, cid, args=None, *, process=None, detach=False, pid_file=None,
                 console_socket=None, preserve_fds=0, ignore_paused=False, on_console=None,
                 **overrides):
    """`mrunc exec` (mrunc.api.exec says what each argument is): check the container's state and
    the process, then run it. Here, not in mrunc.api, so that the CLI's exec loads none of the
    API's other operations (as create calls process.parent directly)."""
    from .. import spec
    from ..errors import StateError
    from ..state import Container
    from .common import check_terminal
    c = Container.load(root, cid)
    st = c.status()
    if st in ("stopped", "creating"):
        raise StateError(f"cannot exec in a {st} container")
    if st == "paused" and not ignore_paused:
        raise StateError("cannot exec in a paused container (use --ignore-paused to override)")
    if preserve_fds < 0:
        raise MruncError("--preserve-fds: must be >= 0")
    if process is None:
        process = process_from_config(c.config.get("process") or {}, args, **overrides)
    spec.validate_process(process)
    check_terminal(process, detach, console_socket, on_console)
    return run(c, process, detach=detach, pid_file=pid_file, console_socket=console_socket,
               preserve_fds=preserve_fds, on_console=on_console)


def run(c, process, *, detach=False, pid_file=None, console_socket=None, preserve_fds=0,
        on_console=None):
    """Exec `process` (validated) in container `c` (created or running). Foreground: wait for
    it, forwarding signals (and the terminal, with -t and no console socket), and return its
    exit status (128+N if signal N killed it). Detached: return its pid once it has exec'd."""
    # Everything the process uses is imported here, before the fork: after its chroot the host's
    # files (the standard library, mrunc's own) are out of reach.
    import _struct, fcntl  # noqa: E401,F401  (the pty; _struct: struct's C module, built in)
    from .. import security  # noqa: F401
    from . import protocol
    box = {}
    if on_console is None:
        if console_socket:
            on_console = lambda fd: pass_console(fd, console_socket, None)  # noqa: E731
        else:
            on_console = lambda fd: box.__setitem__("pty", fd)  # noqa: E731
    job = _Job(c, process, preserve_fds, _seccomp_filter(c))
    mine, theirs = protocol.pair()
    if preserve_fds and theirs.fileno() < 3 + preserve_fds:
        theirs = _above(theirs, 3 + preserve_fds)  # never inside the range handed to the program
    mask = None
    if not detach:
        # Signals for the process that come before we can forward them wait (blocked) until we
        # can; the process gets our mask back before it execs.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, foreground.FORWARD)
    job.sigmask = mask
    nsfds, rootfd = [], None
    try:
        nsfds, rootfd = _open_init(job)
        pid = _spawn(job, nsfds)
    except BaseException:
        for fd in [mine.detach(), theirs.detach(), rootfd, *(fd for _, fd in nsfds)]:
            if fd is not None:
                os.close(fd)
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
    if pid == 0:
        try:
            mine.close()
            _process(theirs, job, nsfds, rootfd)
        finally:
            os._exit(127)
    theirs.close()
    for _, fd in nsfds:
        os.close(fd)
    os.close(rootfd)
    restore, early = {}, ()
    try:
        if job.late_pid:
            pid, early = _sibling(mine, pid)
        if mask is not None:  # foreground: from now on, what we get goes to the process
            restore = foreground.forward_signals(pid)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        try:
            _serve(mine, on_console, lambda fd: pass_seccomp_fd(c.config, c.oci_state(), pid, fd),
                   early)
        finally:
            mine.close()
        if pid_file:
            from ..state import write_atomic
            write_atomic(paths.abspath(pid_file), str(pid), 0o644)
    except BaseException:
        foreground.restore_signals(restore)
        kill_reap(pid)
        if "pty" in box:
            os.close(box["pty"])
        raise
    if detach:
        return pid
    try:
        return foreground.stay(pid, box.get("pty"))
    finally:
        foreground.restore_signals(restore)


class _Job:
    """What the process needs, fixed before the fork."""

    def __init__(self, c, process, preserve_fds, seccomp):
        self.init_pid, self.start_time = c.pid, c.data.get("start_time")
        dirs, self.v2_dir, self.v2_mount = _cgroup_dirs(c)  # v2: the unified hierarchy
        self.v1_dirs = [d for d in dirs if d != self.v2_dir]
        self.process, self.preserve_fds, self.seccomp = process, preserve_fds, seccomp
        self.linux = c.config.get("linux") or {}
        self.sigmask = None
        self.in_v2 = False  # born in the v2 cgroup (set by _spawn)
        self.late_pid = False  # the process joins the PID namespace and forks again (7b)
        self.own_mntns = own_mount_namespace(c.config)  # else: no devpts of the container's


def _cgroup_dirs(c):
    """The container's cgroup directories, its directory in the unified (v2) hierarchy and where
    that is mounted (None, None: no unified hierarchy) — as create recorded them, or from the
    manager rebuilt for a state.json of an older mrunc (mrunc.cgroups.recorded)."""
    cg = c.data.get("cgroup")
    if cg is None:
        return [], None, None
    from ..cgroups import recorded
    if recorded.usable(cg):
        return (list(cg["dirs"]), *recorded.unified(cg))
    mgr = c.cgroup()
    v2_dir = mgr.dir("")
    return mgr.dirs(), v2_dir, mgr.mounts[""][0] if v2_dir else None


def _seccomp_filter(c):
    """The container's linux.seccomp, ready to load: built now (errors still reported cleanly,
    libseccomp mapped from the host's /usr/lib while we can reach it) or by an earlier exec — it
    is the container's, fixed at create (security.seccomp.exec_program) — and loaded by the
    process."""
    cfg = (c.config.get("linux") or {}).get("seccomp")
    if not cfg:
        return None
    from ..security.seccomp import exec_program
    from ..state import write_atomic
    return exec_program(cfg, c.dir, write_atomic)


def _above(sock, low):
    """The same socket on an fd numbered `low` or more (close-on-exec)."""
    import _socket
    import fcntl
    fd = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, low)
    sock.close()
    return _socket.socket(fileno=fd)


def _sibling(sock, helper):
    """Late pid (7b): our child `helper` forks the process as our child too, reports its pid and
    exits; reap it and return (the process's pid, the messages the process sent before that).
    An error from either is raised once both are reaped."""
    from . import protocol
    from .common import reap
    early, error, pid = [], None, None
    try:
        while pid is None:
            try:
                msg = protocol.recv(sock, with_fds=True)
            except EOFError:
                break  # the helper failed (its error came first) or was killed
            if msg["t"] == "pid":
                pid = msg["pid"]
            elif msg["t"] == "error":
                error = error or msg
            else:
                early.append(msg)
        reap(helper)
    except BaseException:
        kill_reap(helper)
        raise
    if error is not None or pid is None:
        if pid is not None:
            reap(pid)  # it sent the error and exits
        raise ExecError(error or {"message": "exec: the process joining the container's "
                                             "namespaces died before it forked"})
    return pid, early


def _serve(sock, on_console, on_seccomp, early=()):
    """Read the process's reports until end-of-file (the program was exec'd) or an error;
    `early`: those read already."""
    from . import protocol
    early = list(early)
    while True:
        try:
            msg = early.pop(0) if early else protocol.recv(sock, with_fds=True)
        except EOFError:
            return
        t = msg["t"]
        if t == "console":
            on_console(msg["_fds"][0])
        elif t == "seccomp":
            on_seccomp(msg["_fds"][0])
        elif t == "error":
            raise ExecError(msg)


# ---------------------------------------------------------------- the fork

def _flag(name):
    from .. import linux
    return next(flag for flag, file in linux.NAMESPACES.values() if file == name)


def _open_init(job):
    """The fds of init's namespaces that are not ours, in join order, and of its root directory,
    all opened through one fd of /proc/<init> that is checked to be the container's init (its
    start time), not a process that got the pid after init died."""
    pid = job.init_pid
    try:
        procfd = os.open(f"/proc/{pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        procfd = None
    try:
        if procfd is None or not alive_as(pid, job.start_time, procfd):
            raise MruncError(f"container init (pid {pid}) is gone: "
                             f"cannot exec in a stopped container")
        nsfds = []
        for name in _ORDER:
            where = f"/proc/{pid}/ns/{name}"
            try:
                fd = os.open(f"ns/{name}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=procfd)
            except FileNotFoundError:
                continue  # a kernel without this namespace type
            except PermissionError:  # the kernel's ptrace check
                raise MruncError(f"open {where}: permission denied: {_why_not(procfd)}") from None
            except OSError as e:
                raise MruncError(f"open {where}: {e.strerror}") from None
            theirs = os.fstat(fd)
            try:
                mine = os.stat(f"/proc/self/ns/{name}")
            except FileNotFoundError:
                mine = None
            if mine is not None and (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
                os.close(fd)  # shared with the host (or with us): nothing to join
            else:
                nsfds.append((name, fd))
        try:
            rootfd = os.open("root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=procfd)
        except OSError as e:
            raise MruncError(f"open /proc/{pid}/root: {e.strerror}") from None
        return nsfds, rootfd
    finally:
        if procfd is not None:
            os.close(procfd)


def _why_not(procfd):
    """Why an ordinary user may not open init's namespaces: it is another user's process — or
    ours, but not dumpable before it execs the program (init.py: CVE-2019-5736), when only a
    process with CAP_SYS_PTRACE over the host may look in."""
    if os.fstat(procfd).st_uid != os.geteuid():
        return "the container's init is not yours"
    return "its init lets nobody but root in before it runs the program (`mrunc start` it first)"


def _spawn(job, nsfds):
    """Steps 2-4: fork the process into the container's PID namespace and, on cgroup v2 (and the
    hybrid layout's unified tree), into its cgroup; return like os.fork. Takes "pid" out of nsfds
    (unless it is the process's to join: _late_pid). Here, afterwards, our own children are born
    in our PID namespace again, and we are as dumpable as before (an API caller may live on)."""
    from .. import linux
    sys = linux.Syscalls()
    ours = None
    job.late_pid = _late_pid(sys, nsfds)
    for name, fd in list(nsfds):
        if name == "pid" and not job.late_pid:
            nsfds.remove((name, fd))
            ours = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
            try:
                sys.setns(fd, linux.CLONE_NEWPID, f"/proc/{job.init_pid}/ns/pid")
            finally:
                os.close(fd)
    dumpable = sys.prctl(3)  # PR_GET_DUMPABLE
    sys.prctl(linux.PR_SET_DUMPABLE, 0)
    pid = None
    try:
        pid = _fork_into_cgroup(job)
    finally:
        if pid != 0:  # not in the process
            sys.prctl(linux.PR_SET_DUMPABLE, dumpable)
            if ours is not None:
                sys.setns(ours, linux.CLONE_NEWPID, "/proc/self/ns/pid")
                os.close(ours)
    return pid


def _late_pid(sys, nsfds):
    """Whether the process, not the runtime, joins the PID namespace (step 7b): when we lack
    CAP_SYS_ADMIN in our own user namespace — an ordinary user — and there is a user namespace
    of the container's to join first, which gives it (the kernel's rule for setns(CLONE_NEWPID):
    the capability in the caller's user namespace and in the one owning the PID namespace).
    Without a user namespace to join, the runtime tries, and the kernel's EPERM says why."""
    from .. import linux
    names = [name for name, _ in nsfds]
    if "pid" not in names or "user" not in names:
        return False
    cap_sys_admin = 1 << linux.CAP_NAMES.index("CAP_SYS_ADMIN")
    return not sys.capget()[0] & cap_sys_admin


def _fork_into_cgroup(job):
    """Being born in the v2 cgroup (linux.fork_into_cgroup) spares the move through
    cgroup.procs, whose global lock makes its first writer wait for an RCU grace period — 5-15 ms
    on every exec (runc pays it). Without clone3 (Linux < 5.7) the process moves itself
    (_join_v2), and waits.

    A v2 cgroup that has enabled controllers for its children refuses processes (EBUSY, the "no
    internal processes" rule: a container that manages its own cgroups): then the process goes
    into the cgroup init is in, as runc does."""
    import errno
    from .. import linux
    target = job.v2_dir
    while target:
        fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            pid = linux.fork_into_cgroup(fd)  # the process returns here too, with 0
        except OSError as e:
            if e.errno == errno.EBUSY and target == job.v2_dir:
                target = _inits_v2_cgroup(job)
                continue
            if e.errno not in (errno.ENOSYS, errno.E2BIG, errno.EINVAL, errno.EPERM):
                raise MruncError(f"clone3 into the cgroup {target}: {e.strerror}") from None
            break  # no clone3 into a cgroup here
        finally:
            os.close(fd)
        job.in_v2 = True
        return pid
    return os.fork()


def _inits_v2_cgroup(job):
    with open(f"/proc/{job.init_pid}/cgroup") as f:
        path = f.readline().rstrip("\n").split(":", 2)[2]  # "0::/path" on v2
    return paths.join(job.v2_mount, path.lstrip("/"))


# ---------------------------------------------------------------- the process

def _process(sock, job, nsfds, rootfd):
    """Steps 5-10 of the module doc. Never returns."""
    from . import protocol
    from .. import linux, security
    sys = linux.Syscalls()
    proc = job.process
    step = "cgroup"
    try:
        close_inherited(keep={0, 1, 2, sock.fileno(), rootfd, *(fd for _, fd in nsfds),
                              *range(3, 3 + job.preserve_fds)})
        _join_v1(job)
        if job.v2_dir and not job.in_v2:
            _join_v2(job)
        step = "namespaces"
        security.apply_rlimits(sys, proc.get("rlimits"))  # only host root may raise a hard limit
        security.apply_oom_score_adj(sys, proc.get("oomScoreAdj"))
        for name, fd in nsfds:
            sys.setns(fd, _flag(name), f"/proc/{job.init_pid}/ns/{name}")
            os.close(fd)
            if name == "user":
                sys.setresgid(0)  # root of that namespace (its maps say who that is on the host)
                sys.setresuid(0)
        if job.late_pid:
            _fork_in_pid_namespace(sock)
        pty = None
        if proc.get("terminal") and not job.own_mntns:
            pty = new_pty(proc.get("consoleSize"))  # the /dev/ptmx of the mount table init shares
        os.fchdir(rootfd)
        sys.chroot(".")
        os.close(rootfd)
        step = "console"
        if proc.get("terminal"):
            _console(sock, proc, pty)
        step = "security"
        env = environ(proc.get("env") or [])
        user = proc.get("user") or {}
        if "HOME" not in env:
            env["HOME"] = home_of(user.get("uid", 0))  # the container's /etc/passwd, read as root
        # An ignored or blocked signal would stay so across execve: Python ignores two, and the
        # runtime blocked what it forwards.
        default_signals()
        if job.sigmask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, job.sigmask)
        scheduling(sys, {"process": proc, "linux": job.linux})
        filt = job.seccomp
        if filt is not None:
            filt.on_notify_fd = lambda fd: protocol.send(sock, {"t": "seccomp"}, fds=[fd])
        step = "cwd"
        cwd = proc.get("cwd") or "/"
        checked = check_cwd(cwd)  # before the filter: it needs getcwd
        step = "security"
        security.apply(sys, proc, seccomp=filt)  # loads it itself without noNewPrivileges
        step = "cwd"
        enter_cwd(cwd, checked)
        step = "exec"
        path = find_executable(proc["args"][0], [f"{k}={v}" for k, v in env.items()])
        close_fds(3 + job.preserve_fds)
        if filt is not None:
            step = "security"
            filt.load(sys)  # last: the fewer of our own calls run under the filter, the better
            step = "exec"
        os.execve(path, proc["args"], env)
    except BaseException as e:  # noqa: BLE001 — everything goes home as one line
        try:
            protocol.send(sock, protocol.error_message(step, e))
        finally:
            os._exit(127)


def _fork_in_pid_namespace(sock):
    """Step 7b: we joined the PID namespace, so our children are born in it; fork the process as
    the runtime's child (CLONE_PARENT), tell the runtime its pid and exit. The process goes on."""
    from . import protocol
    from .. import linux
    pid = linux.fork_as_sibling()
    if pid == 0:
        return
    protocol.send(sock, {"t": "pid", "pid": pid})
    os._exit(0)


def _join_v1(job):
    """Into the container's cgroup of each v1 hierarchy: "0" into `tasks` moves the calling
    thread — all of us, single-threaded as we are. The kernel then skips the global lock that
    moving a whole thread group through cgroup.procs takes, and so the RCU grace period its
    first writer waits for (5-15 ms): 0.1 ms instead."""
    from ..cgroups import fs
    for d in job.v1_dirs:
        fs.write(paths.join(d, "tasks"), "0")


def _join_v2(job):
    """Without clone3: into the v2 cgroup through cgroup.procs, and the wait (see above)."""
    import errno
    from ..cgroups import fs
    try:
        fs.write(paths.join(job.v2_dir, "cgroup.procs"), "0")
    except MruncError as e:
        if getattr(e.__cause__, "errno", None) != errno.EBUSY:
            raise
        fs.write(paths.join(_inits_v2_cgroup(job), "cgroup.procs"), "0")


def _console(sock, proc, pty=None):
    """A pty from the container's own devpts (/dev/ptmx inside the root) — or `pty`, made before
    the chroot when the container has no mount namespace (so no devpts) of its own: the slave
    becomes our controlling terminal and stdio, the master goes home."""
    from . import protocol
    master, slave = pty or new_pty(proc.get("consoleSize"))
    attach_tty(slave)
    protocol.send(sock, {"t": "console"}, fds=[master])
    os.close(master)
