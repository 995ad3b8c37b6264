"""The sandbox's errors: each is the one line a notebook cell shows, never a traceback."""
from __future__ import annotations

from .. import userdirs
from ..errors import MruncError


class SandboxError(MruncError):
    """A sandbox operation failed; str() is the one line to show."""


class Unavailable(SandboxError):
    """Containers cannot be made from this process (not root, no rootfs)."""


def guard(fn, *args):
    """userdirs' refusal as a SandboxError (the one line a cell shows)."""
    try:
        return fn(*args)
    except userdirs.UnsafeDir as e:
        raise SandboxError(str(e)) from None


def net_call(fn, *args, **kw):
    """Call into mrunc.network; its errors become the sandbox's one-line errors."""
    from ..network.plan import NetworkError
    try:
        return fn(*args, **kw)
    except NetworkError as e:
        raise SandboxError(str(e)) from None


def cli_error(stderr, default):
    """The last line a `mrunc` command wrote to stderr, without its "mrunc: " (or `default`)."""
    lines = [ln for ln in (stderr or "").splitlines() if ln.strip()]
    msg = lines[-1] if lines else default
    return msg[len("mrunc: "):] if msg.startswith("mrunc: ") else msg

