"""`mrunc exec`: one more process in a container that is already there.

A container is its init's namespaces, its cgroup and its root. To run a new process "in" it, we
make a process that joins each of those, then takes the container's security settings, then
execs. No new namespace is made, nothing is mounted: everything is already in place. Three
processes, all forks of `mrunc exec` (never re-exec'd, as with create):

  mrunc exec    stays on the host. It is a child subreaper, so the exec'd process becomes its
                child once the joiner exits: it can wait for it (foreground), or leave it to
                the next subreaper up (conmon, containerd's shim) with --detach.
  joiner        opens init's namespaces, moves itself into the container's cgroup, setns()es
                into each namespace, takes init's root, forks, and exits.
  the process   the fork: it is inside the container's PID namespace too. It gets a tty
                (-t), the rlimits, user, capabilities and no_new_privs of its process object,
                the cwd, and execve()s the program found with the container's PATH.

The joiner's order, and why:
  1. not dumpable      from the first moment: a process of the container may already see us
                       (once we are in its PID namespace) and must not ptrace us or open our
                       fds or /proc/<pid>/exe — the host's interpreter (CVE-2016-9962,
                       CVE-2019-5736). execve of the program ends it.
  2. close inherited   the caller's fds (but stdio and --preserve-fds) never reach the container.
  3. open everything   /proc/<init>/ns/* and /proc/<init>/root, relative to an fd of
                       /proc/<init> whose start time we check (a recycled pid is not the
                       container). All opens come *before* the first setns: once in the
                       container's mount namespace, /proc is the container's and <init>'s host
                       pid means nothing there; once in its user namespace we are no longer host
                       root. Namespaces we already share (same inode) are left alone.
  4. cgroup            write our pid into cgroup.procs of each hierarchy: host paths, from the
                       host's cgroup namespace. After setns(CLONE_NEWCGROUP) the move would be
                       judged from inside, and after the mount namespace the paths are gone.
  5. user              first of the namespaces: it owns the others, and joining it makes us
                       root *in it* with every capability over them (what a rootless runtime
                       needs to join the rest). rlimits go before it: only host root can raise
                       a hard limit.
  6. ipc uts net pid time cgroup    any order. pid and time only apply to our children —
                       hence the fork below.
  7. mount             last: setns resets our root and cwd to the namespace's root, so then we
                       chroot to init's own root (the fd from step 3) — the same `/` init sees,
                       also for a --no-pivot container.
  8. fork              the child is in the container's PID namespace (it is a new pid there),
                       then the joiner reports its pid and exits.

Errors go home over one SOCK_SEQPACKET socketpair (protocol.py), one JSON message each:
    joiner   {"t": "pid", "pid": N}       the process forked (N as the host sees it)
    process  {"t": "console"} + fd        the pty master (-t)
    either   {"t": "error", ...}          what failed, as one line; the runtime exits 255
The socket is close-on-exec, so end-of-file without an error means the program was exec'd.
"""
import os
import signal

from .. import linux
from ..errors import MruncError
from ..linux import Syscalls
from . import protocol

# Join order (step 5-7 above): /proc/<pid>/ns file names.
_ORDER = ("user", "ipc", "uts", "net", "pid", "time", "cgroup", "mnt")
_FLAG = {name: flag for flag, name in linux.NAMESPACES.values()}


class ExecError(MruncError):
    """The joiner or the new process failed before execve; the message names what (a JSON path,
    a syscall, a file)."""

    def __init__(self, msg):
        self.phase, self.errno, self.path = msg.get("phase"), msg.get("errno"), msg.get("path")
        super().__init__(msg["message"])


# ---------------------------------------------------------------- the process object

def process_from_config(base, args, *, tty=False, env=None, cwd=None, user=None,
                        additional_gids=None, caps=None, no_new_privs=False, apparmor=None,
                        process_label=None):
    """The container's config `process`, with `args` and the flag overrides of runc exec.

    terminal is false unless `tty`; `env` entries (K=V) are appended, so they override; `user`
    is "uid" or "uid:gid"; `additional_gids` are appended; each of `caps` is added to the
    bounding, effective and permitted sets — never to inheritable or ambient (CVE-2022-29162).
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


def check_terminal(process, detach, console_socket, on_console=None):
    """runc's rules: a tty needs someone to hold its master."""
    terminal = bool(process.get("terminal"))
    if detach and terminal and not console_socket and on_console is None:
        raise MruncError("cannot allocate tty if mrunc will detach without setting console socket")
    if console_socket and (not detach or not terminal):
        raise MruncError("cannot use console socket if mrunc will not detach or allocate tty")


# ---------------------------------------------------------------- the runtime side

def run(c, process, *, detach=False, pid_file=None, console_socket=None, preserve_fds=0,
        on_console=None):
    """Exec `process` (validated) in container `c` (created or running). Foreground: wait for
    it, forwarding signals (and the terminal, with -t and no console socket), and return its
    exit status (128+N if signal N killed it). Detached: return its pid once it has exec'd."""
    from ..linux import PR_SET_CHILD_SUBREAPER
    mgr = c.cgroup()
    box = {}
    if on_console is None:
        if console_socket:
            from .parent import _pass_console
            on_console = lambda fd: _pass_console(fd, console_socket, None)  # noqa: E731
        else:
            on_console = lambda fd: box.__setitem__("pty", fd)  # noqa: E731
    mine, theirs = protocol.pair()
    if preserve_fds and theirs.fileno() < 3 + preserve_fds:
        theirs = _above(theirs, 3 + preserve_fds)  # never inside the range handed to the program
    job = _Job(c.pid, c.data.get("start_time"), mgr, process, preserve_fds, c.config)
    # When the joiner exits, its child — the new process — is re-parented to us, not to the
    # host's init: so we can wait for it, and when we exit it passes to *our* subreaper.
    Syscalls().prctl(PR_SET_CHILD_SUBREAPER, 1)
    joiner = os.fork()
    if joiner == 0:
        try:
            mine.close()
            _joiner(theirs, job)
        finally:
            os._exit(1)
    theirs.close()
    got = {}
    try:
        try:
            _serve(mine, on_console, got)
        finally:
            mine.close()
            _reap(joiner)  # after this, the new process is our child
        if pid_file:
            from ..state import write_atomic
            write_atomic(os.path.abspath(pid_file), str(got["pid"]), 0o644)
    except BaseException:
        if got.get("pid"):
            _kill_reap(got["pid"])
        if "pty" in box:
            os.close(box["pty"])
        raise
    if detach:
        return got["pid"]
    return _foreground(got["pid"], box.get("pty"))


class _Job:
    """What the joiner and the process need, fixed before the fork."""

    def __init__(self, init_pid, start_time, mgr, process, preserve_fds, config):
        self.init_pid, self.start_time = init_pid, start_time
        self.cgroup_dirs = mgr.dirs() if mgr is not None else []
        self.v2_mount = mgr.mounts.get("", (None,))[0] if getattr(mgr, "layout", "") == "v2" else None
        self.process, self.preserve_fds = process, preserve_fds
        self.linux = config.get("linux") or {}


def _above(sock, low):
    """The same socket on an fd numbered `low` or more (close-on-exec)."""
    import fcntl
    import socket
    fd = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, low)
    sock.close()
    return socket.socket(fileno=fd)


def _serve(sock, on_console, got):
    """Read the reports until end-of-file (the program was exec'd) or an error."""
    while True:
        try:
            msg = protocol.recv(sock, with_fds=True)
        except EOFError:
            break
        t = msg["t"]
        if t == "pid":
            got["pid"] = msg["pid"]
        elif t == "console":
            on_console(msg["_fds"][0])
        elif t == "error":
            raise ExecError(msg)
    if "pid" not in got:
        raise MruncError("the joining process died before it could fork the new process")


def _foreground(pid, master):
    """Stay with the process: forward signals, proxy the terminal, return its exit status."""
    from .foreground import _FORWARD, _forward, _wait, _with_terminal
    old = {s: signal.signal(s, lambda n, _f: _forward(pid, n)) for s in _FORWARD
           if signal.getsignal(s) is not signal.SIG_IGN or s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if master is not None:
            return _with_terminal(pid, master)
        return _wait(pid)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _reap(pid):
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _kill_reap(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    _reap(pid)


# ---------------------------------------------------------------- the joiner (a fork)

def _joiner(sock, job):
    """Steps 1-8 of the module doc. Never returns."""
    sys = Syscalls()
    step = "namespaces"
    try:
        sys.prctl(linux.PR_SET_DUMPABLE, 0)
        # Everything the new process will use, imported now: after the chroot the host's
        # filesystem (the standard library, mrunc's own files) is out of reach.
        from .. import security  # noqa: F401
        from .init import _close_inherited
        if job.process.get("terminal"):
            import fcntl, struct  # noqa: E401,F401  (the pty)
        _close_inherited(keep={0, 1, 2, sock.fileno(), *range(3, 3 + job.preserve_fds)})
        procfd, nsfds, rootfd = _open_init(job)
        step = "cgroup"
        _join_cgroup(job, procfd)
        os.close(procfd)
        step = "namespaces"
        proc = job.process
        from ..security import apply_oom_score_adj, apply_rlimits
        apply_rlimits(sys, proc.get("rlimits"))
        apply_oom_score_adj(sys, proc.get("oomScoreAdj"))
        for name, fd in nsfds:
            sys.setns(fd, _FLAG[name], f"/proc/{job.init_pid}/ns/{name}")
            os.close(fd)
            if name == "user":
                sys.setresgid(0)  # root of that namespace (its maps say who that is on the host)
                sys.setresuid(0)
        os.fchdir(rootfd)
        sys.chroot(".")
        os.close(rootfd)
        pid = os.fork()
    except BaseException as e:  # noqa: BLE001 — everything goes home as one line
        protocol.send(sock, protocol.error_message(step, e))
        os._exit(1)
    if pid == 0:
        try:
            _process(sock, job, sys)
        finally:
            os._exit(127)
    protocol.send(sock, {"t": "pid", "pid": pid})
    os._exit(0)


def _open_init(job):
    """An fd of /proc/<init> (checked to be the container's init, not a recycled pid), the fds of
    its namespaces that are not ours, in join order, and an fd of its root directory."""
    pid = job.init_pid
    try:
        procfd = os.open(f"/proc/{pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        fd = os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=procfd)
        try:
            stat = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        stat = b""
        procfd = None
    fields = stat[stat.rfind(b")") + 2:].split()
    if len(fields) < 20 or int(fields[19]) != job.start_time or fields[0] in (b"Z", b"X"):
        raise MruncError(f"container init (pid {pid}) is gone: cannot exec in a stopped container")
    nsfds = []
    for name in _ORDER:
        where = f"/proc/{pid}/ns/{name}"
        try:
            fd = os.open(f"ns/{name}", os.O_RDONLY | os.O_CLOEXEC, dir_fd=procfd)
        except FileNotFoundError:
            continue  # a kernel without this namespace type
        except OSError as e:
            raise OSError(e.errno, f"open {where}: {e.strerror}", where) from None
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
        raise OSError(e.errno, f"open /proc/{pid}/root: {e.strerror}") from None
    return procfd, nsfds, rootfd


def _join_cgroup(job, procfd):
    """Our pid into each hierarchy's cgroup.procs: the program (our child) is born there.

    cgroup v2 refuses a process in a cgroup that has enabled controllers for its children (the
    "no internal processes" rule: a container that manages cgroups itself) with EBUSY: then join
    the cgroup init is in, as runc does."""
    import errno
    from ..cgroups import fs
    from ..errors import CgroupError
    for d in job.cgroup_dirs:
        try:
            fs.join(d, os.getpid())
        except CgroupError as e:
            if job.v2_mount is None or getattr(e.__cause__, "errno", None) != errno.EBUSY:
                raise
            fd = os.open("cgroup", os.O_RDONLY | os.O_CLOEXEC, dir_fd=procfd)
            try:
                line = os.read(fd, 4096).decode().splitlines()[0]
            finally:
                os.close(fd)
            fs.join(os.path.join(job.v2_mount, line.split(":", 2)[2].lstrip("/")), os.getpid())


# ---------------------------------------------------------------- the process (in the PID ns)

def _process(sock, job, sys):
    """Inside every namespace and the root: tty, security, cwd, then execve."""
    from .init import _close_fds, _env, enter_cwd, find_executable, home_of, scheduling
    proc = job.process
    step = "console"
    try:
        if proc.get("terminal"):
            _console(sock, proc)
        step = "security"
        env = _env(proc.get("env") or [])
        user = proc.get("user") or {}
        if "HOME" not in env:
            env["HOME"] = home_of(user.get("uid", 0))  # the container's /etc/passwd, read as root
        # Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across execve.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        from .. import security
        scheduling(sys, {"process": proc, "linux": job.linux})
        security.apply(sys, proc)
        step = "cwd"
        enter_cwd(proc.get("cwd") or "/")
        step = "exec"
        path = find_executable(proc["args"][0], [f"{k}={v}" for k, v in env.items()])
        _close_fds(3 + job.preserve_fds)
        os.execve(path, proc["args"], env)
    except BaseException as e:  # noqa: BLE001
        try:
            protocol.send(sock, protocol.error_message(step, e))
        finally:
            os._exit(127)


def _console(sock, proc):
    """A pty from the container's own devpts (/dev/ptmx inside the root): the slave becomes our
    controlling terminal and stdio, the master goes home."""
    from .init import attach_tty, new_pty
    master, slave = new_pty(proc.get("consoleSize"))
    attach_tty(slave)
    protocol.send(sock, {"t": "console"}, fds=[master])
    os.close(master)
