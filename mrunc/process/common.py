"""What `create` (parent.py, init.py) and `exec` (exec.py) do alike around a new process.

Both start a process in a container and hand it to whoever asked: the runtime side checks the
terminal flags, passes the pty master and the seccomp listener on, and reaps what it forked; the
process side closes the fds it inherited from the runtime and builds its environment. One
function each, so that create and exec cannot drift apart.
"""
import os


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
    all but `keep`."""
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
