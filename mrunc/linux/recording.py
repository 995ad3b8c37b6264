"""A Syscalls that records every call and makes none: what the unit tests run the phases with,
to check the exact call sequence without root (see mrunc.linux). A module of its own, as
`mrunc.linux.RecordingSyscalls` too, because no container command needs it.
"""
from . import Syscalls


class RecordingSyscalls(Syscalls):
    """A fake for unit tests: records every call and makes none (capget reports full caps)."""

    def __getattribute__(self, name):
        attr = object.__getattribute__(self, name)
        if name.startswith("_") or name in ("log", "take_log", "capget", "add", "around") or \
                not callable(attr):
            return attr
        rec = object.__getattribute__(self, "_rec")
        return lambda *args, **kw: rec(name, *args) or 0

    def capget(self, pid=0):
        full = (1 << 41) - 1
        return (full, full, 0)
