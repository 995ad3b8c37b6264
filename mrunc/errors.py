"""Every error mrunc raises on purpose is a MruncError: the CLI prints it as one line and exits 1.

Anything else reaching the CLI is a bug and keeps its traceback (with --debug).
"""


class MruncError(Exception):
    """Base class: str(err) is the one-line message the user sees."""


class SpecError(MruncError):
    """config.json (or a process.json / resources file) is invalid; the message starts with the JSON path."""


class UsageError(MruncError):
    """Bad command line: unknown flag, missing id, invalid id."""


class StateError(MruncError):
    """The container is missing, or in the wrong state for the operation."""


class UnsafeDir(MruncError):
    """A directory someone else made or can write: refused (mrunc.userdirs)."""


class CgroupError(MruncError):
    """A cgroup could not be created, written, or is unfit."""


class InitError(MruncError):
    """The container's init failed in a phase; carries the structured report sent home over the socket."""

    def __init__(self, phase, message, syscall=None, path=None, errno=None):
        self.phase, self.syscall, self.path, self.errno = phase, syscall, path, errno
        super().__init__(f"{phase}: {message}")
