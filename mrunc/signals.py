"""Signal numbers by name, without the `signal` module.

`import signal` builds its Signals/Handlers enums (enum costs ~4 ms, a third of an interpreter's
start) — for `kill` and `delete`, which only need numbers. The numbers come from `_signal`, the C
module `signal` wraps, so they are this machine's (they differ between architectures).
"""
import _signal

SIGKILL = _signal.SIGKILL
SIGSYS = _signal.SIGSYS
SIGTERM = _signal.SIGTERM
# Every signal with a name (signal.Signals' members: SIGRTMIN and SIGRTMAX too, not SIGRTMIN+n).
NAMED = frozenset(v for k, v in vars(_signal).items()
                  if k.startswith("SIG") and not k.startswith("SIG_") and isinstance(v, int))


def number(sig):
    """runc accepts 9, KILL, SIGKILL, kill (not the SIGRTMIN+n forms). MruncError otherwise."""
    if isinstance(sig, int):
        return sig
    s = str(sig).strip().upper()
    if s.isdigit():
        n = int(s)
        if 0 < n < 65:
            return n
    else:
        name = s if s.startswith("SIG") else "SIG" + s
        # the names signal.Signals has: SIG*, not SIG_DFL/SIG_IGN/SIG_BLOCK…, and not SIGRTMIN/MAX
        if not name.startswith(("SIG_", "SIGRTMIN", "SIGRTMAX")) and \
                isinstance(getattr(_signal, name, None), int):
            return getattr(_signal, name)
    from .errors import MruncError
    raise MruncError(f"invalid signal {sig!r}")


def name(signum):
    """SIGKILL for 9: the name signal.Signals would give (SIGIOT and SIGPOLL are aliases)."""
    names = sorted(k for k, v in vars(_signal).items() if v == signum and k.startswith("SIG")
                   and not k.startswith("SIG_") and isinstance(v, int))
    preferred = [n for n in names if n not in ("SIGIOT", "SIGPOLL", "SIGCLD")]
    return (preferred or names or [f"signal {signum}"])[0]
