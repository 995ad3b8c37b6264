"""Which files a container opens, executes and modifies, as it runs: the file-access monitor.

The kernel can tell a listener about file accesses: that is fanotify(7). A listener makes a group
(fanotify_init), marks what it wants to hear about (fanotify_mark) and reads events, each with
the pid of the process that made the access and a fresh file descriptor of the file itself —
readlink("/proc/self/fd/N") names it. We ask for three kinds of access:

    FAN_OPEN        a file was opened                     -> "open"
    FAN_OPEN_EXEC   ... to be executed (execve)            -> "exec"
    FAN_MODIFY      it was written (until it is closed,    -> "modify" (one row per open-write-close)
                    FAN_CLOSE_WRITE, every write is one)

**Only this container.** A mark covers a mount or a whole filesystem, not a process:
  * A sandbox container's root is an overlay mounted for it alone (lower: the shared image, upper:
    its own writes), so its filesystem *is* the container's: we mark that filesystem
    (FAN_MARK_FILESYSTEM), before the container starts, and see it from its first exec. The host
    reaches the same files through its own mount of the overlay (the bundle's rootfs/); an event
    whose file descriptor sits on that mount (/proc/self/fdinfo: mnt_id) is the host's, dropped.
  * A container without such an overlay (read-only root, made elsewhere) is watched through its
    root mount, the one its init sees as "/" (FAN_MARK_MOUNT on /proc/<init>/root): from the
    moment we find its init. Host processes reach that mount through their own mounts only.
  * Either way a host process can still look in through /proc/<pid>/root (our own snapshots
    do). So an event from a process that is alive in another PID namespace than the container's
    is dropped. (A process that exited before we read its event cannot be asked: it came in
    through the container's own mount, so it is kept — fanotify reports the pid, not where the
    process lived.)

**Paths as the container sees them.** The event's file descriptor holds the container's mount,
which cannot be reached from our root: the kernel then names the file from the root of the
container's mount namespace — /etc/passwd, exactly what the container asked for.

**What a row is.** While events wait unread, the kernel merges the same access of the same file
by the same process into one (a loop that opens /etc/passwd 20000 times may give a few hundred
rows). Each row names the process by its comm, read when the event is read: a process that
already ended is named by what we last saw of it (for an exec, the program's file name).

**Why notification events and file descriptors.** Permission events (FAN_OPEN_PERM) would stop
every open until we answered; FAN_REPORT_DFID_NAME (names instead of file descriptors, Linux 5.9)
needs file handles the overlay filesystem does not give (EOPNOTSUPP on this host's 6.18 and the
cgroup v2 VM's 6.1).

Mount and filesystem marks need CAP_SYS_ADMIN in the host's user namespace: as any other user,
fanotify_init says EPERM, and the watch says so in one line (once) and shows nothing.

    w = Watch(container)              # a thread reads the events until the container ends
    w.events                          # [FileEvent(time, pid, command, operation, path)]
    w.flush()                         # every access made so far is read
    w.filter(operation="exec", path="/bin")
    w.counts()                        # {"open": 12, "exec": 3, "modify": 1}
    w.close()                         # the fanotify fd is closed (marks and queue go with it)
"""
from __future__ import annotations

import errno
import os
import select
import sys
import threading
import time
from dataclasses import dataclass, replace

from .linux import fanotify
from .errors import MruncError

OPERATIONS = ("open", "exec", "modify")
MASK = fanotify.FAN_OPEN | fanotify.FAN_OPEN_EXEC | fanotify.FAN_MODIFY | fanotify.FAN_CLOSE_WRITE
_SETTLE = 0.003                     # an exec's process is named again this much later
LIMIT = 100_000                     # rows a watch keeps (a busy container runs for days)
_TICK = 0.25                         # listeners hear at least this often (a live table redraws)
_TOLD = set()                        # the "needs root" line is said once per process


@dataclass(frozen=True)
class FileEvent:
    time: float                     # seconds since the watch began
    pid: int                        # the process, as the host numbers it
    command: str                    # its name (/proc/<pid>/comm), see Watch._command
    operation: str                  # open, exec or modify
    path: str                       # the file, as the container sees it


class WatchError(MruncError):
    """A watch could not be made, or was asked something wrong; str() is one line."""


class Watch:
    """The files a container opens, executes and modifies, read by a thread until the container
    ends (or close()). `container` needs .name, .pid (its init, None before it exists), .status,
    and for a filesystem mark .overlay and .bundle (its root is the overlay at bundle/rootfs).

    Where fanotify is refused (not root), the watch is empty and finished at once: `.error`
    says why, and stderr says it once per process.

    unborn=True: the container is prepared but not spawned yet (nothing runs, its overlay is
    mounted): mark it now, and start() the thread once it is on its way — nothing is missed."""

    def __init__(self, container, start=True, unborn=False):
        self.container = container
        self.name = container.name
        self.error = None
        self.lost = False                # the kernel's queue overflowed: some events are missing
        self.limit = LIMIT               # rows kept; the later ones are only counted
        self.dropped = 0
        self.version = 0                 # grows with every row added or renamed (for redraws)
        self.finished = False
        self._events = []
        self._listeners = []
        self._writing = set()            # (pid, path) with a "modify" row, not closed yet
        self._settling = []              # (when, pid, index) of exec rows to name again
        self._names = {}                 # pid -> the last name seen
        self._thread = None
        self._lock = threading.Lock()
        self._fan = self._pidfd = self._wake = None
        self._stopping = False
        self._asked = self._served = 0     # flush() calls made, and answered
        self._served_cv = threading.Condition()
        self._pidns = None               # the container's PID namespace, once we know its init
        self._host_pidns = _pidns(os.getpid())
        self._t0 = time.monotonic()
        self._unborn = unborn
        self._open(unborn)
        if start:
            self.start()

    def __repr__(self):
        state = self.error or ("finished" if self.finished else "watching")
        return f"<Watch {self.name}: {len(self._events)} events, {state}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the data --
    @property
    def events(self) -> list[FileEvent]:
        return list(self._events)

    def filter(self, operation=None, path=None) -> list[FileEvent]:
        """The events of one operation (open, exec, modify; None: all) whose path contains `path`."""
        check_filter(operation, path)
        return matching(self._events, operation, path)

    def counts(self) -> dict:
        n = dict.fromkeys(OPERATIONS, 0)
        for e in self._events:
            n[e.operation] += 1
        return n

    def subscribe(self, fn):
        """Call fn() from the watch's thread after new events, every quarter second, and at the end."""
        self._listeners.append(fn)

    # -- life --
    def start(self):
        if self._thread is None and not self.finished:
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name=f"mrunc-watch-{self.name}")
            self._thread.start()

    def wait(self, timeout=None) -> bool:
        """Until the container has ended and its last events are read; True if so."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished

    def flush(self, timeout=5.0) -> bool:
        """Read every event queued until now, and name its processes: the kernel queues an
        event before the access returns, so what the container has done is in the table once
        this returns (no sleeping and hoping). False if the thread did not answer in time."""
        t = self._thread
        if t is None or not t.is_alive():
            return self.finished
        with self._served_cv:
            self._asked += 1
            mine = self._asked
        with self._lock:
            if self._wake is None:
                return True
            os.eventfd_write(self._wake, 1)
        with self._served_cv:
            return self._served_cv.wait_for(lambda: self._served >= mine or self.finished, timeout)

    def close(self):
        """Stop listening: the thread ends, the fanotify fd is closed (its marks go with it)."""
        with self._lock:
            self._stopping = True
            if self._wake is not None:
                os.eventfd_write(self._wake, 1)
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join()
        self._finish()

    # -- making the group and its mark --
    def _open(self, unborn):
        try:
            self._fan = fanotify.init(
                fanotify.FAN_CLASS_NOTIF | fanotify.FAN_CLOEXEC | fanotify.FAN_NONBLOCK,
                # O_NONBLOCK: opening a FIFO the container opened must never wait for a writer
                os.O_RDONLY | os.O_CLOEXEC | os.O_LARGEFILE | os.O_NONBLOCK)
        except OSError as e:
            self.error = (f"the file-access monitor needs root: {e.strerror} (watching a "
                          f"container's files takes CAP_SYS_ADMIN in the host's user namespace)"
                          if e.errno == errno.EPERM else
                          f"the file-access monitor cannot start: {e.strerror}")
            if self.error not in _TOLD:
                _TOLD.add(self.error)
                print(f"mrunc: {self.error}; the cell runs without it", file=sys.stderr, flush=True)
            self._finish()
            return
        try:
            self._host_mnt, self._prefix = self._mark(unborn)
        except BaseException:
            os.close(self._fan)
            self._fan = None
            raise
        self._wake = os.eventfd(0, os.EFD_CLOEXEC)

    def _mark(self, unborn):
        """Mark the container's filesystem (its own overlay) or its root mount; returns the mount
        id of the host's own mount of those files (events through it are the host's) and the host
        path of the container's root (stripped from paths named before its pivot_root)."""
        c = self.container
        if not unborn and c.status in ("stopped", "deleted"):
            raise WatchError(f"watch: container {c.name!r} has ended: there is nothing left to "
                             f"watch (watch it while it runs, or use %%container --watch)")
        bundle = getattr(c, "bundle", None)
        if getattr(c, "overlay", False) and bundle:
            path, flags = os.path.join(bundle, "rootfs"), fanotify.FAN_MARK_FILESYSTEM
        elif unborn:
            raise WatchError(f"watch: container {c.name!r} has no overlay of its own (read-only "
                             f"root): it can be watched only once it runs, through its mount — "
                             f"start it, then watch it")
        else:
            pid = _wait_pid(c)
            path, flags = f"/proc/{pid}/root", fanotify.FAN_MARK_MOUNT
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fanotify.mark(self._fan, fanotify.FAN_MARK_ADD | flags, MASK, fd, ".")
            host_mnt = _mnt_id(fd) if flags == fanotify.FAN_MARK_FILESYSTEM else None
        except OSError as e:
            raise WatchError(f"watch: cannot watch {c.name!r}: {e.strerror} ({path})") from None
        finally:
            os.close(fd)
        return host_mnt, os.path.join(bundle, "rootfs") if bundle else None

    # -- the thread --
    def _loop(self):
        try:
            while True:
                wait = [self._fan, self._wake] + ([self._pidfd] if self._pidfd is not None else [])
                ready = select.select(wait, [], [], self._timeout())[0]
                asked = self._asked          # the flushes asked for before this drain
                if self._wake in ready:
                    os.eventfd_read(self._wake)      # close() or flush() woke us
                self._drain()
                with self._lock:
                    self._settle(everyone=self._wake in ready)
                if self._stopping or self._pidfd in ready or self._ended():
                    self._drain()            # what the last processes did before init died
                    break
                with self._served_cv:
                    self._served = asked
                    self._served_cv.notify_all()
                self._tell()
        finally:
            self._finish()

    def _timeout(self):
        if self._settling:
            return max(0.0, min(_TICK, self._settling[0][0] - time.monotonic()))
        return _TICK

    def _ended(self):
        """Learn init (its PID namespace, a pidfd that wakes us when it exits), or see that the
        container ended before we ever did."""
        if self._pidfd is not None:
            return False
        c = self.container
        pid = c.pid
        if pid is None:
            # not made yet reads as "stopped" too: a container watched unborn has ended once the
            # sandbox has deleted it
            return c.status == "deleted" or (not self._unborn and c.status == "stopped")
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        self._pidns = _pidns(pid) or self._pidns
        return False

    def _drain(self):
        new = False
        while True:
            batch = fanotify.read(self._fan)
            if not batch:
                break
            for mask, fd, pid in batch:
                if mask & fanotify.FAN_Q_OVERFLOW:
                    self.lost = True
                if fd < 0:
                    continue
                try:
                    new |= self._event(mask, fd, pid)
                finally:
                    os.close(fd)
        if new:
            self._tell()

    def _event(self, mask, fd, pid) -> bool:
        if self._host_mnt is not None and _mnt_id(fd) == self._host_mnt:
            return False                 # the host, through its own mount of the overlay
        if pid == os.getpid() or self._outside(_pidns(pid)):
            return False
        path = self._path(fd)
        t = round(time.monotonic() - self._t0, 6)
        rows = []
        if mask & fanotify.FAN_OPEN_EXEC:
            rows.append("exec")
        elif mask & fanotify.FAN_OPEN:
            rows.append("open")
        key = (pid, path)
        if mask & fanotify.FAN_MODIFY and key not in self._writing:
            rows.append("modify")
            self._writing.add(key)
        if mask & fanotify.FAN_CLOSE_WRITE:
            self._writing.discard(key)
        command = self._command(pid, path if "exec" in rows else None)
        with self._lock:
            if "exec" not in rows:
                self._settle(pid)        # it ran its program: the earlier exec rows get its name
            for op in rows:
                if len(self._events) >= self.limit:
                    self.dropped += 1
                    continue
                if op == "exec":
                    self._settling.append((time.monotonic() + _SETTLE, pid, len(self._events)))
                self._events.append(FileEvent(t, pid, command, op, path))
                self.version += 1
        return bool(rows)

    def _command(self, pid, program=None):
        """Its name now; if it has ended since, the last name seen — or, for the exec of a
        process we never saw alive, the program's ("?" if none)."""
        now = _comm(pid)
        if now is None:
            now = self._names.get(pid) or (os.path.basename(program) if program else "?")
        self._names[pid] = now
        return now

    def _outside(self, ns):
        """Alive in a PID namespace that is not the container's (before we know the container's:
        in the host's own)."""
        if ns is None:
            return False
        return ns != self._pidns if self._pidns else ns == self._host_pidns

    def _path(self, fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        # named before the container's pivot_root (its init, still in the runtime): a host path
        p = self._prefix
        if p and (path == p or path.startswith(p + "/")):
            path = path[len(p):] or "/"
        return path

    def _settle(self, pid=None, everyone=False):
        """An exec's event comes as the program is opened, before the process takes its name:
        look again at its next event (`pid`), or a moment later (caller holds the lock)."""
        now, keep = time.monotonic(), []
        for when, p, i in self._settling:
            if p != pid and when > now and not everyone:
                keep.append((when, p, i))
                continue
            e = self._events[i]
            name = _comm(p)
            if name is not None and name != e.command:
                self._names[p] = name
                self._events[i] = replace(e, command=name)
                self.version += 1
        self._settling = keep

    def _tell(self):
        for fn in list(self._listeners):
            try:
                fn()
            except Exception:  # noqa: BLE001 — a broken listener must not stop the watch
                pass

    def _finish(self):
        with self._lock:
            if self.finished:
                return
            for attr in ("_fan", "_pidfd", "_wake"):
                fd = getattr(self, attr)
                if fd is not None:
                    setattr(self, attr, None)
                    os.close(fd)
            self._settling.clear()
            self.finished = True
        with self._served_cv:
            self._served_cv.notify_all()
        self._tell()


def matching(events, operation=None, path=None) -> list[FileEvent]:
    """The events of `operation` (None, "" or "all": every one) whose path contains `path`."""
    return [e for e in events if (operation in (None, "", "all") or e.operation == operation)
            and (not path or path in e.path)]


def check_filter(operation, path):
    """A filter's one-line error: an unknown operation, a path that is not text."""
    if operation not in (None, "", "all") and operation not in OPERATIONS:
        raise WatchError(f"filter: operation {operation!r} is not one of {', '.join(OPERATIONS)}")
    if path is not None and not isinstance(path, str):
        raise WatchError(f"filter: path must be text (a part of a path), not {path!r}")


def _wait_pid(c, timeout=10.0):
    """The container's init; a container still being made is waited for."""
    deadline = time.monotonic() + timeout
    while True:
        pid = c.pid
        if pid is not None:
            return pid
        if c.status in ("stopped", "deleted") or time.monotonic() > deadline:
            raise WatchError(f"watch: container {c.name!r} has no running init ({c.status})")
        time.sleep(0.01)


def _mnt_id(fd):
    """The mount an open file was reached through (global mount ids, as in mountinfo)."""
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    return None


def _pidns(pid):
    """The PID namespace of a live process ("pid:[4026531836]"); None once it has exited."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _comm(pid):
    """Its name (what ps shows: the program's file name, 15 bytes), None once it has exited."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().rstrip(b"\n").decode(errors="replace")
    except OSError:
        return None
