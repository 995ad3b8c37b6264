"""What `create` (parent.py, init.py) and `exec` (exec.py) do alike around a new process.

Both start a process in a container and hand it to whoever asked: the runtime side checks the
terminal flags, passes the pty master and the seccomp listener on, and reaps what it forked; the
process side closes the fds it inherited from the runtime, builds its environment, gets its
terminal, scheduling and working directory, and looks its program up. One function each, so that
create and exec cannot drift apart — and exec, which imports this module, needs none of init's.
"""
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from .. import paths
from ..spec.consts import IOPRIO_CLASSES, SCHED_FLAGS, SCHED_POLICIES


# ---------------------------------------------------------------- the runtime side

def check_terminal(process, detach, console_socket, on_console=None):
    """runc's rules: a tty needs someone to hold its master, and a console socket needs a tty to
    get (and a runtime that detaches: in the foreground mrunc holds the master itself). create
    always detaches; `on_console` is an API caller that takes the master instead of a socket."""
    from ..errors import MruncError
    terminal = bool(process.get("terminal"))
    if detach and terminal and not console_socket and on_console is None:
        raise MruncError("process.terminal is true: --console-socket is required "
                         "(cannot allocate a tty when mrunc detaches without a console socket)")
    if console_socket and not terminal:
        raise MruncError("--console-socket given but process.terminal is false")
    if console_socket and not detach:
        raise MruncError("--console-socket given without --detach (in the foreground mrunc "
                         "holds the tty itself)")


def pass_console(master, console_socket, on_console, sys=None):
    """Hand the pty master over, as runc does: SCM_RIGHTS on a connected unix socket. `sys`: the
    runtime's Syscalls, which records the hand-over."""
    if on_console is not None:
        on_console(master)
        return
    import socket
    from ..errors import MruncError
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s, \
            _syscalls(sys).around("sendmsg", console_socket, "SCM_RIGHTS", "pty master"):
        try:
            s.connect(console_socket)
        except OSError as e:
            raise MruncError(f"--console-socket {console_socket}: {e.strerror}") from None
        socket.send_fds(s, [b"/dev/ptmx"], [master])
    os.close(master)


def pass_seccomp_fd(config, state, pid, fd, sys=None):
    """SCMP_ACT_NOTIFY: the filter's listener fd goes to the seccomp agent at listenerPath with
    the container's `state` and the `pid` under the filter (runtime-spec "Container Process
    State"). That process already runs under the filter, so this must not fail silently: an
    error fails create (or exec)."""
    from ..errors import MruncError
    from ..security.seccomp import send_to_listener
    try:
        send_to_listener(config, state, pid, fd, sys)
    except OSError as e:
        raise MruncError(e.strerror or str(e)) from None
    finally:
        os.close(fd)


def reap(pid):
    """Wait for our child `pid`, so no zombie is left (already reaped is fine)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def kill_reap(pid):
    """SIGKILL our child `pid` and reap it: a start that failed halfway leaves nothing."""
    from ..signals import SIGKILL
    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        pass
    reap(pid)


def _syscalls(sys):
    """The caller's recorder, or a fresh one (whose record nobody reads)."""
    if sys is None:
        from ..linux import Syscalls
        sys = Syscalls()
    return sys


# ---------------------------------------------------------------- the process side

def close_inherited(keep):
    """We are a fork of `mrunc create` (or exec), so we hold every fd it had: the stepper's
    channel, a log file, the caller's pipes. The container must not keep those open (a reader
    waiting for EOF would wait forever, and a host fd inside a container is a way out), so close
    all but `keep`: each run of fds between two kept ones in one close_range(2) — no listing of
    /proc/self/fd, ≈ 0.1 ms less in a process just forked, where every page touched is copied —
    or, on a kernel without it (before 5.9), each fd the listing shows."""
    from .. import linux
    lo, gaps = 0, []
    for fd in sorted(keep):
        if fd > lo:
            gaps.append((lo, fd - 1))
        lo = max(lo, fd + 1)
    if all(linux.close_range(first, last) for first, last in gaps + [(lo, 0xFFFFFFFF)]):
        return
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def close_fds(first, sys=None):
    """Leave the program only stdio and the preserved fds: any other fd is a way out (S3).
    Our own fds are O_CLOEXEC already; this catches whatever the caller of create leaked to us."""
    _syscalls(sys).cloexec_from(first)
    for fd in range(3, first):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass


def default_signals():
    """Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across execve: give
    the program the defaults back (or `yes | head` would never end)."""
    import _signal as signal
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)


def environ(pairs):
    """process.env ("K=V" entries) as a dict: a later entry of a name wins."""
    env = {}
    for kv in pairs:
        k, _, v = kv.partition("=")
        env[k] = v
    return env


def own_mount_namespace(config):
    """Is the mount table ours to change? Only if we unshared it (spec.checks explains why)."""
    from ..spec.checks import without_own_mount_namespace
    return without_own_mount_namespace(config) is None


def new_pty(size=None):
    """(master, slave) of a new pty from /dev/ptmx — the devpts of the mount namespace we are in
    (also used by `exec -t`). The slave gets `size` (process.consoleSize) if given."""
    import _struct as struct
    import fcntl
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, 0x40045431, struct.pack("i", 0))  # TIOCSPTLCK: unlock
    # TIOCGPTPEER opens the slave through the master, not through a path someone could swap (S11)
    slave = fcntl.ioctl(master, 0x5441, os.O_RDWR | os.O_NOCTTY)
    if size:
        fcntl.ioctl(slave, 0x5414, struct.pack("HHHH", size["height"], size["width"], 0, 0))  # TIOCSWINSZ
    return master, slave


def attach_tty(slave):
    """A session whose controlling terminal is `slave`, which becomes stdio (and is closed): a
    new one, unless we lead one already (init made its own at its start)."""
    import fcntl
    if os.getsid(0) != os.getpid():
        os.setsid()
    fcntl.ioctl(slave, 0x540E, 0)  # TIOCSCTTY: our controlling terminal
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(slave)


def scheduling(sys, config):
    """Scheduler policy, I/O priority and execution domain: inherited across execve, so set now —
    while init still has CAP_SYS_NICE for real-time policies."""
    proc = config.get("process") or {}
    sched = proc.get("scheduler")
    if sched:
        flags = sum(SCHED_FLAGS[f] for f in sched.get("flags") or [])
        try:
            sys.sched_setattr(SCHED_POLICIES[sched["policy"]], flags, sched.get("nice", 0),
                              sched.get("priority", 0), sched.get("runtime", 0),
                              sched.get("deadline", 0), sched.get("period", 0))
        except OSError as e:
            raise OSError(e.errno, f"process.scheduler: {e.strerror}") from None
    prio = proc.get("ioPriority")
    if prio:
        try:
            sys.ioprio_set(IOPRIO_CLASSES[prio["class"]], prio.get("priority", 0))
        except OSError as e:
            raise OSError(e.errno, f"process.ioPriority: {e.strerror}") from None
    pers = (config.get("linux") or {}).get("personality")
    if pers:
        sys.personality(0x0008 if pers["domain"] == "LINUX32" else 0)  # PER_LINUX32 / PER_LINUX


def _chdir(cwd):
    try:
        os.chdir(cwd)
    except OSError as e:
        raise OSError(e.errno, f"chdir to cwd {cwd!r}: {e.strerror}", cwd) from None
    return os.stat(".")


def check_cwd(cwd):
    """Refuse a process.cwd that is not inside the container's root; return what it is (device,
    inode) for enter_cwd. Call it before the seccomp filter is loaded: it needs getcwd(2), which
    a profile may block.

    init still holds a host fd or two (the state dir, the socket). A cwd of /proc/self/fd/N
    would put the program's working directory on the host (CVE-2024-21626): the kernel then
    reports it as "(unreachable)", or getcwd fails with ENOENT.
    """
    st = _chdir(cwd)
    try:
        inside = os.getcwd().startswith("/")
    except OSError:
        inside = False
    if not inside:
        raise PermissionError(1, f"process.cwd {cwd!r} is outside the container's root")
    return st.st_dev, st.st_ino


def enter_cwd(cwd, checked):
    """chdir to process.cwd as the container's user (whose search permission counts), and make
    sure it is the directory check_cwd looked at — compared by (device, inode), no getcwd: the
    filter may be loaded by now."""
    st = _chdir(cwd)
    if (st.st_dev, st.st_ino) != checked:
        raise PermissionError(1, f"process.cwd {cwd!r} changed while the container was set up")


def home_of(uid, passwd="/etc/passwd"):
    """runc sets HOME when process.env lacks it: the user's home from the container's own
    /etc/passwd, or "/"."""
    try:
        with open(passwd) as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def find_executable(name, env):
    """execvp's rules, with the *container's* PATH (process.env), inside the new root."""
    if "/" in name:
        candidates = [name]
    else:
        path = next((e[5:] for e in env if e.startswith("PATH=")),
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        candidates = [paths.join(d or ".", name) for d in path.split(":")]
    for c in candidates:
        if paths.isfile(c) and os.access(c, os.X_OK):
            return c
    # Engines tell "not found" from "cannot run" by runc's words: podman answers exit code 127 to
    # "no such file or directory" / "executable file not found", 126 to "permission denied".
    at = "process.args[0]: exec"
    if "/" not in name:
        raise FileNotFoundError(2, f"{at}: {name!r}: executable file not found in $PATH", name)
    if not paths.exists(name):
        raise FileNotFoundError(2, f"{at}: {name!r}: stat {name}: no such file or directory", name)
    raise PermissionError(13, f"{at}: {name!r}: permission denied", name)
