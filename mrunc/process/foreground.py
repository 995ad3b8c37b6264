"""Staying with a process in the foreground, until it exits: `mrunc run`, and `mrunc exec`
without --detach.

Three jobs, as runc's foreground mode does them:
  * be there for its exit status: the process is our child (exec), or init re-parented to us
    because we are a *child subreaper* (run: the clone child exits, init comes to us, not to
    the host's PID 1);
  * forward the signals we get (Ctrl-C, kill) to it;
  * with terminal: true, copy bytes between our terminal and the pty master.
The exit status is the process's: its exit code, or 128+N if signal N killed it.
"""
import _signal as signal   # the C module under `signal`: same calls, without its enums (≈ 4 ms)
import gc
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from ..signals import NAMED

# What we forward: every named signal but those about ourselves (SIGCHLD: our children; SIGWINCH:
# our terminal, copied by _with_terminal; SIGURG, SIGPIPE: our sockets and pipes) and those that
# cannot be caught.
FORWARD = sorted(NAMED - {signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP, signal.SIGWINCH,
                          signal.SIGURG, signal.SIGPIPE})


def forward_signals(pid):
    """From now on, the signals we get go to `pid`; returns the handlers for restore_signals. A
    signal the caller ignores stays ignored (nohup), but SIGTERM and SIGINT are always passed on."""
    return {s: signal.signal(s, lambda n, _f: _forward(pid, n)) for s in FORWARD
            if signal.getsignal(s) != signal.SIG_IGN or s in (signal.SIGTERM, signal.SIGINT)}


def restore_signals(handlers):
    for s, h in handlers.items():
        signal.signal(s, h)


def _forward(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def stay(pid, master=None):
    """Wait for `pid` — copying the terminal through the pty `master` if we hold it — and return
    its exit status. Signals are forwarded already (forward_signals).

    From here this process may live for days: the cyclic garbage collector, off for the short
    work before (mrunc.cli's NO_GC_VERBS), is on again — for what is made from now on. What
    exists by then (every module, function, the container's config: none of it garbage) is
    first moved out of its reach (gc.freeze, O(1)): else the first allocation after enable()
    started a collection that walked all of it, ≈ 0.6 ms of CPU just as `run true`'s container
    exits, and so `run`'s wall time too. Only when it was off: a caller of mrunc.api with the
    collector on (a notebook kernel) keeps its heap as it was."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
    if master is not None:
        return _with_terminal(pid, master)
    return wait(pid)


def wait(pid):
    """Reap children until `pid`'s status comes; others are orphans re-parented to us."""
    while True:
        try:
            wpid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if wpid == pid:
            return exit_code(status)


def exit_code(status):
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _with_terminal(pid, master):
    import select
    import termios
    import tty
    stdin = 0 if os.isatty(0) else None
    saved = termios.tcgetattr(0) if stdin is not None else None
    if stdin is not None:
        tty.setraw(0)
        _copy_winsize(0, master)
        signal.signal(signal.SIGWINCH, lambda *_: _copy_winsize(0, master))
    inputs = [master, 0]
    try:
        while True:
            r, _, _ = select.select(inputs, [], [])
            if master in r:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave end is closed — the process is done
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in r:
                data = os.read(0, 65536)
                if not data:
                    inputs.remove(0)
                else:
                    os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
    return wait(pid)


def _copy_winsize(src, dst):
    import fcntl
    import termios
    try:
        fcntl.ioctl(dst, termios.TIOCSWINSZ, fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass
