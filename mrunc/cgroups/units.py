"""The two ways runc's command line writes quantities, parsed the same way here.

- Sizes (`update --memory 100M`): a number, an optional space, an optional unit k, m, g, t or p
  (any case) with an optional "i" and "b" after it — all **binary**: 1k = 1024, 1M = 1048576,
  "1.5g" = 1610612736, a bare number is bytes. This is docker's RAMInBytes, which runc uses; "-1"
  means unlimited and is handled by the caller.
- Durations (`events --interval 5s`): Go's time.ParseDuration — a sequence of decimal numbers each
  with a unit, "300ms", "1m30s", "1.5h"; units ns, us (or µs), ms, s, m, h; "0" alone is zero.
  containerd passes `--interval=5s`, so a bare integer is refused as Go refuses it.
"""

import re

from mrunc.errors import UsageError

_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kmgtp])?i?b?$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text, flag="size"):
    m = _SIZE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise UsageError(f"invalid value for {flag}: invalid size: {text!r} "
                         f"(a number of bytes, or with a unit: 512k, 100M, 1.5G)")
    try:
        number = float(m.group(1))
    except ValueError:          # "1.2.3" passes the pattern, as in docker's: not a number
        raise UsageError(f"invalid value for {flag}: invalid size: {text!r}") from None
    unit = m.group(2).lower() if m.group(2) else None
    return int(number * _SIZE_UNITS[unit])


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3,
                   "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def go_duration(text, flag="duration"):
    """Seconds (float) from a Go duration string."""
    s = text.strip() if isinstance(text, str) else ""
    sign = -1.0 if s.startswith("-") else 1.0
    s = s[1:] if s[:1] in ("+", "-") else s
    if s == "0":
        return 0.0
    total, pos = 0.0, 0
    while s and pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise UsageError(f"invalid value for {flag}: time: invalid duration {text!r} "
                         f"(examples: 5s, 500ms, 1m30s)")
    return sign * total
