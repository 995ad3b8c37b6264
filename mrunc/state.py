"""Where a container lives between two `mrunc` commands.

mrunc has no daemon: `create` returns as soon as the container's init is waiting, and every later
command (`start`, `state`, `kill`, `delete`) is a new process that must find the container again.
It finds it in a directory per container under the state root (`--root`, default /run/mrunc):

    /run/mrunc/<id>/state.json   what create learned: pid, its start time, bundle, config, cgroup
    /run/mrunc/<id>/exec.fifo    init blocks opening it for writing until `start` opens it to read

The status is *derived*, never stored, so it cannot go stale:
    init gone, a zombie, or a recycled pid (start time differs)  -> stopped
    exec.fifo still there                                        -> created
    cgroup frozen                                                -> paused
    otherwise                                                    -> running
"""
import errno
import os
import time

from . import fastjson

OCI_VERSION = "1.3.0"
STATE_FILE = "state.json"
FIFO = "exec.fifo"

# An id is made of these (no `re`: it costs a whole interpreter start on every verb).
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+.-")


def validate_id(cid):
    """Ids become directory names under --root: refuse anything that could walk out of it."""
    from .errors import UsageError
    if not cid:
        raise UsageError("container id: must not be empty")
    if not _ID_CHARS.issuperset(cid) or cid in (".", ".."):
        raise UsageError(f"container id {cid!r}: invalid (allowed: letters, digits, '_', '+', '.', '-')")
    if len(cid) > 1024:
        raise UsageError("container id: too long")


def proc_start_time(pid):
    """Field 22 of /proc/<pid>/stat (clock ticks since boot) and the state letter, or (None, None).

    A pid number can be reused after the process dies; (pid, start time) cannot.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None, None
    # comm may contain spaces and parens: split after the last ')'
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[19]), rest[0].decode()


def now_rfc3339():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def write_atomic(path, data, mode=0o600):
    """Write a temp file beside `path`, then rename: readers see the old file or the new one, whole."""
    tmp = os.path.join(os.path.dirname(path) or ".", "." + os.path.basename(path) + f".{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class Container:
    """One container's state directory. `status` is computed on every read."""

    def __init__(self, root, cid):
        self.root, self.id = root, cid
        self.dir = os.path.join(root, cid)
        self.data = None

    # -- lookup --
    @classmethod
    def load(cls, root, cid):
        from .errors import StateError
        validate_id(cid)
        c = cls(root, cid)
        try:
            with open(os.path.join(c.dir, STATE_FILE), "rb") as f:
                c.data = fastjson.loads(f.read())
        except FileNotFoundError:
            raise StateError(f"container {cid} does not exist") from None
        except (OSError, ValueError) as e:
            raise StateError(f"container {cid}: unreadable state: {e}") from None
        return c

    @classmethod
    def all(cls, root):
        try:
            names = sorted(os.listdir(root))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            try:
                out.append(cls.load(root, name))
            except Exception:  # a half-created dir of a concurrent create: not a container yet
                continue
        return out

    def reserve(self):
        """Claim the id: mkdir is atomic, so two creates of one id cannot both succeed."""
        from .errors import StateError
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(self.dir, 0o711)
        except FileExistsError:
            raise StateError(f"container with id {self.id} already exists") from None

    def save(self):
        write_atomic(os.path.join(self.dir, STATE_FILE), fastjson.dumps(self.data))

    def remove(self):
        """Remove the state dir and what is in it (flat: state.json, fifo, temp files)."""
        try:
            for name in os.listdir(self.dir):
                os.unlink(os.path.join(self.dir, name))
            os.rmdir(self.dir)
        except FileNotFoundError:
            pass

    # -- derived facts --
    @property
    def pid(self):
        return self.data.get("pid", 0)

    @property
    def config(self):
        return self.data["config"]

    def init_alive(self):
        start, st = proc_start_time(self.pid)
        return start is not None and start == self.data.get("start_time") and st not in ("Z", "X")

    def cgroup(self):
        """The cgroup manager, rebuilt from what create recorded (None when cgroups are disabled)."""
        cg = self.data.get("cgroup")
        if cg is None:
            return None
        from . import cgroups
        if cg.get("layout") == "disabled":
            # Never rebuilt: a directory that became writable since would give a manager for a
            # cgroup the container never joined — and maybe someone else's processes in it.
            return cgroups.DisabledManager("create used no cgroup", cg["path"], cg.get("rootless", False))
        return cgroups.manager(cg["path"], self.id, paths=cg.get("paths"),
                               rootless=cg.get("rootless", False))

    def status(self):
        if not self.pid or not self.init_alive():
            return "stopped"
        if os.path.exists(os.path.join(self.dir, FIFO)):
            return "created"
        try:
            mgr = self.cgroup()
            if mgr is not None and mgr.freezer_state() == "frozen":
                return "paused"
        except Exception:
            pass
        return "running"

    def oci_state(self):
        """The state object of runtime-spec runtime.md, plus runc's extra fields."""
        status = self.status()
        d = self.data
        return {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid if status != "stopped" else 0,
            "status": status,
            "bundle": d["bundle"],
            "rootfs": d["rootfs"],
            "created": d["created"],
            "owner": "",
            "annotations": d["config"].get("annotations") or {},
        }


def fifo_path(container_dir):
    return os.path.join(container_dir, FIFO)


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError as e:
        return e.errno == errno.EPERM


def wait_gone(pid, timeout=5.0):
    """Wait until pid is dead (reaped or a zombie). It may not be our child, so poll."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            wpid, _ = os.waitpid(pid, os.WNOHANG)
            if wpid == pid:
                return True
        except ChildProcessError:
            pass
        _, st = proc_start_time(pid)
        if st is None or st in ("Z", "X"):
            return True
        time.sleep(0.002)
    return False
