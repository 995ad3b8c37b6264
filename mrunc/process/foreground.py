"""`mrunc run` in the foreground: create, start, stay with the container until it exits.

Three jobs, as runc's foreground mode does them:
  * be the container's parent: we are a *child subreaper*, so when the clone child exits, init is
    re-parented to us (not to the host's PID 1) and we can wait for its exit status;
  * forward the signals we get (Ctrl-C, kill) to init;
  * with terminal: true, copy bytes between our terminal and the pty master.
The exit status is the container's: its exit code, or 128+N if signal N killed it.
"""
import _signal as signal   # the C module under `signal`: same calls, without its enums (≈ 4 ms)
import os

from .. import api
from ..signals import NAMED

_FORWARD = sorted(NAMED - {signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP, signal.SIGWINCH,
                           signal.SIGURG, signal.SIGPIPE})


def run_foreground(cid, bundle, root, keep=False, network=None, **kw):
    box = {}
    holder = None
    if network:
        from ..network.step import hold_netns
        holder = hold_netns(network)        # rootless: the container's network namespace, made now
        if holder:
            kw["netns_path"] = holder.path
    try:
        c = api.create(cid, bundle, root, on_console=lambda fd: box.__setitem__("pty", fd), **kw)
        pid = c.pid
        if network:
            _network_step(cid, root, network, pid, kw.get("events"), holder)
    finally:
        if holder:
            holder.release()                # init is in the namespace now: it lives on with it
    old = {s: signal.signal(s, lambda n, _f: _forward(pid, n)) for s in _FORWARD
           if signal.getsignal(s) != signal.SIG_IGN or s in (signal.SIGTERM, signal.SIGINT)}
    try:
        api.start(cid, root, events=kw.get("events"))
        if "pty" in box:
            return _with_terminal(pid, box["pty"])
        return _wait(pid)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if not keep:
            try:
                api.delete(cid, root, force=True)
            except Exception:  # noqa: BLE001 — already gone is fine
                pass


def _network_step(cid, root, network, pid, events, holder=None):
    """Wire the created container to its lab network before it starts (see mrunc.network.step);
    if that fails, the container goes, as if create had failed."""
    from ..network.step import run_step
    from .parent import Events
    try:
        run_step(network, pid, events or Events(), netns=holder and holder.path)
    except BaseException as e:
        if events is not None:
            events.error(e)
        try:
            api.delete(cid, root, force=True)
        except Exception:  # noqa: BLE001 — the error that matters is the network's
            pass
        raise


def _forward(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait(pid, options=0):
    """Reap children until init's status comes; others are orphans re-parented to us."""
    while True:
        try:
            wpid, status = os.waitpid(-1, options)
        except ChildProcessError:
            return 255
        if wpid == 0:
            return None
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
                except OSError:  # EIO: every slave end is closed — the container is done
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
    return _wait(pid)


def _copy_winsize(src, dst):
    import fcntl
    import termios
    try:
        fcntl.ioctl(dst, termios.TIOCSWINSZ, fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        pass
