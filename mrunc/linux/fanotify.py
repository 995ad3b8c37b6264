"""fanotify(7): which files a container opens, executes and modifies (mrunc.watch).

Not Syscalls methods: a watch changes nothing in the container, it only listens. A module of its
own because only the watch uses it: create, run and exec (which import mrunc.linux every time)
would otherwise pay for building its event structure and prototypes (≈ 0.05 ms of CPU each).
"""
import os

from . import _b, _check
from .ffi import (Library, Structure, c_char_p, c_int, c_uint, c_uint8, c_uint16, c_uint32,
                  c_uint64, sizeof)

FAN_MODIFY = 0x2
FAN_CLOSE_WRITE = 0x8
FAN_OPEN = 0x20
FAN_OPEN_EXEC = 0x1000
FAN_Q_OVERFLOW = 0x4000     # the queue was full: events were lost
FAN_CLOEXEC = 0x1
FAN_NONBLOCK = 0x2
FAN_CLASS_NOTIF = 0x0       # only told, never asked to allow (no permission events)
FAN_MARK_ADD = 0x1
FAN_MARK_MOUNT = 0x10       # every file reached through one mount
FAN_MARK_FILESYSTEM = 0x100  # every file of one filesystem (superblock), through any mount
FAN_NOFD = -1
_FANOTIFY_METADATA_VERSION = 3

_libc = Library(None, {
    "fanotify_init": (c_int, c_uint, c_uint),   # flags, event_f_flags
    # fd, flags, mask, dirfd, path
    "fanotify_mark": (c_int, c_int, c_uint, c_uint64, c_int, c_char_p),
})


class _Event(Structure):
    """struct fanotify_event_metadata (<linux/fanotify.h>), 24 bytes."""
    _fields_ = [("event_len", c_uint32), ("vers", c_uint8), ("reserved", c_uint8),
                ("metadata_len", c_uint16), ("mask", c_uint64), ("fd", c_int), ("pid", c_int)]


def init(flags, event_f_flags):
    """A new fanotify group: returns its fd, from which events are read. `event_f_flags` are the
    open flags of the fd each event carries (the file that was accessed, opened anew for us).
    Mount and filesystem marks need CAP_SYS_ADMIN in the initial user namespace: EPERM otherwise."""
    return _check(_libc.fanotify_init(flags, event_f_flags), "fanotify_init")


def mark(fan_fd, flags, mask, dirfd, path="."):
    """Add (FAN_MARK_ADD) the events in `mask` for the object at `path` relative to `dirfd` —
    its mount (FAN_MARK_MOUNT) or its filesystem (FAN_MARK_FILESYSTEM). An O_PATH dirfd with "."
    marks what that fd refers to, even in another mount namespace (/proc/<pid>/root)."""
    ret = _libc.fanotify_mark(fan_fd, flags, mask, dirfd, _b(path))
    _check(ret, "fanotify_mark", path)


def read(fan_fd, size=65536):
    """The events queued on a fanotify fd, as [(mask, fd, pid)] ([] when none: a FAN_NONBLOCK fd).
    Each fd >= 0 is a new open file the caller must close; `pid` is the process that made the
    access as our PID namespace numbers it (the thread group's, not the thread's)."""
    try:
        buf = os.read(fan_fd, size)
    except BlockingIOError:
        return []
    out, off = [], 0
    while off + sizeof(_Event) <= len(buf):
        ev = _Event.from_buffer_copy(buf, off)
        if ev.vers != _FANOTIFY_METADATA_VERSION or ev.event_len < sizeof(_Event):
            raise OSError(0, f"fanotify: unexpected event metadata version {ev.vers}")
        out.append((ev.mask, ev.fd, ev.pid))
        off += ev.event_len
    return out
