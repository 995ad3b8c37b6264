"""mrunc.signals (numbers from _signal, no enum) accepts exactly what the signal module names."""
import signal

import pytest

from mrunc import signals
from mrunc.errors import MruncError


def by_signal_module(sig):
    """The rule as written against signal.Signals (what kill accepted before mrunc.signals)."""
    s = str(sig).strip().upper()
    if s.isdigit():
        return int(s) if 0 < int(s) < 65 else None
    name = s if s.startswith("SIG") else "SIG" + s
    if name.startswith(("SIGRTMIN", "SIGRTMAX")):
        return None
    value = getattr(signal, name, None)
    return int(value) if isinstance(value, signal.Signals) else None


NAMES = [n for n in dir(signal) if n.isupper()] + [
    "kill", "term", " hup ", "sigusr1", "9", "0", "64", "65", "-1", "RTMIN", "SIGRTMIN+1", "foo",
    "DFL", "SIG_IGN", "NSIG", "SIGSTKSZ", "ITIMER_REAL", "IOT", "CLD", "POLL"]


@pytest.mark.parametrize("name", NAMES)
def test_same_as_signal_module(name):
    want = by_signal_module(name)
    if want is None:
        with pytest.raises(MruncError, match="invalid signal"):
            signals.number(name)
    else:
        assert signals.number(name) == want


def test_constants():
    assert (signals.SIGKILL, signals.SIGTERM) == (signal.SIGKILL, signal.SIGTERM)
    assert signals.number(15) == 15
