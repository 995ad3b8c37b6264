"""Where a container lives between two `mrunc` commands.

mrunc has no daemon: `create` returns as soon as the container's init is waiting, and every later
command (`start`, `state`, `kill`, `delete`) is a new process that must find the container again.
It finds it in a directory per container under the state root (`--root`, default /run/mrunc; not
root: the user's own, see mrunc.userdirs — checked before every use):

    /run/mrunc/<id>/state.json   what create learned: pid, its start time, bundle, cgroup, and
                                 of the config what start, state and delete need (see below)
    /run/mrunc/<id>/config.json  the bundle's config as create took it (update merges its limits in)
    /run/mrunc/<id>/exec.fifo    init blocks opening it for writing until `start` opens it to read

Every command reads state.json, and the short verbs in pure Python (mrunc.plainjson): the config
would be more than half of it, ≈ 0.2–0.3 ms of `state`, `start`, `kill` and `delete` to parse for
its annotations and two hook lists. So it has a file of its own, read only when asked
(Container.config), and state.json keeps the annotations and which kinds of hooks there are
(summary). A state.json of an older mrunc holds the whole config ("config"): still read so.

The status is *derived*, never stored, so it cannot go stale:
    "creator" recorded, and that runtime still alive (pid + start time)   -> creating
    "creator" recorded, the runtime gone (killed mid-create)             -> stopped (abandoned)
    init gone, a zombie, or a recycled pid (start time differs)          -> stopped
    exec.fifo still there and init not yet exec'd (comm "mrunc:[init]")  -> created
    cgroup frozen                                                        -> paused
    otherwise                                                            -> running

A container appears whole or not at all. `create` builds its directory under a hidden name
(`.new-<pid>-<start time>-<random>`: state.json saying "creating" with the runtime's pid and start time, the
cgroup paths it will use; config.json; exec.fifo), then renames it to `<id>` — one atomic step, which fails
if the id is taken. `delete` does the reverse: it renames `<id>` to `.old-<pid>-<start time>-<random>` before
emptying it. A hidden directory whose runtime is dead is debris of a killed create or delete; it
holds no process and no cgroup, and the next create or delete sweeps it away. So whenever a
runtime is SIGKILLed, the id is either free (the rename had not happened) or names a container
that `state` reports and `delete --force` removes — cgroups and init included: the abandoned
init is found through the recorded cgroup (and dies by itself: see process/init.py).

Every command that changes a container (create, start, kill, pause, resume, update, delete)
holds the container's lock: flock(2) on its directory. `state`, `list`, `ps` and `events` only
read, and take no lock: state.json and config.json are always replaced whole (write_atomic),
so they see the old record or the new one. flock is released by the kernel when the holder dies,
so a SIGKILL never leaves a stale lock; a waiter that then finds the directory gone (deleted
meanwhile) reports "does not exist". create holds the lock from before the rename until
state.json is final.
"""
import _thread
import posix as os  # os's C module: the same calls, without os's ≈ 1 ms import (mrunc.paths)
import sys
import time
from _stat import S_IFIFO   # the C module under `stat`, as posix is under os

from . import OCI_VERSION, paths
# state.json is read by every command and written by create and update alone, with
# mrunc.fastjson, which they have loaded anyway.


def _json_reader():
    """What reads state.json: mrunc.fastjson where a command has loaded it for its own work
    (exec: the init protocol; its _json is there already, and reading with it costs no memory
    more), else mrunc.plainjson — the short verbs, which load no shared library for it."""
    reader = sys.modules.get("mrunc.fastjson")
    if reader is None:
        from . import plainjson as reader
    return reader


STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
FIFO = "exec.fifo"
INIT_COMM = "mrunc:[init]"   # init's name (prctl PR_SET_NAME) until it execs the program
LOCK_TIMEOUT = 10.0          # seconds a command waits for another one on the same container

_HIDDEN = (".new-", ".old-")   # directories of a create or delete under way: see Container.reserve
SECCOMP_CACHE = ".seccomp"     # the user's kept seccomp programs (security.seccompcache): no id
# An id is made of these (no `re`: it costs a whole interpreter start on every verb).
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+.-")


def validate_id(cid):
    """Ids become directory names under --root: refuse anything that could walk out of it."""
    problem = _id_problem(cid)
    if problem:
        # mrunc.errors only now: `state` of a container that is there raises none (≈ 0.1 ms)
        from .errors import UsageError
        raise UsageError(problem)


def _id_problem(cid):
    if not cid:
        return "container id: must not be empty"
    if not _ID_CHARS.issuperset(cid) or cid in (".", ".."):
        return f"container id {cid!r}: invalid (allowed: letters, digits, '_', '+', '.', '-')"
    if cid.startswith(_HIDDEN):
        return (f"container id {cid!r}: ids starting with {' or '.join(_HIDDEN)} are "
                "reserved for mrunc's own use")
    if cid == SECCOMP_CACHE:
        return f"container id {cid!r}: reserved for mrunc's own use"
    if len(cid) > 1024:
        return "container id: too long"
    return None


def proc_stat(pid, dir_fd=None):
    """(start time, state letter, comm) from /proc/<pid>/stat, or (None, None, None). With
    `dir_fd`, an fd of /proc/<pid> already open, read through it: then it is that process or none.

    A pid number can be reused after the process dies; (pid, start time) cannot. The start time
    is field 22 (clock ticks since boot); comm is what prctl(PR_SET_NAME) or execve named it.
    """
    try:
        data = read_file(f"/proc/{pid}/stat" if dir_fd is None else "stat", dir_fd)
    except OSError:
        return None, None, None
    # comm may contain spaces and parens: it runs from the first '(' to the last ')'. Read as
    # str: bytes' rindex and split are interpreter code no other step of create runs, and the
    # kernel maps it 64 KiB at a time (0.1-0.2 MiB of create's peak RSS, docs/speed.md).
    text = data.decode(errors="replace")
    close = text.rindex(")")
    rest = text[close + 2:].split()
    return int(rest[19]), rest[0], text[text.index("(") + 1:close]


def read_file(path, dir_fd=None):
    """A small file's bytes through a plain fd: open, read to end-of-file, close. Every command
    reads state.json and /proc/<pid>/stat; a file object would add an fstat, an ioctl, two
    lseeks and a buffer to each."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        return read_all(fd)
    finally:
        os.close(fd)


def read_all(fd):
    """What is left to read of an open fd, to end-of-file."""
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def proc_start_time(pid):
    """(start time, state letter) of pid, or (None, None): see proc_stat."""
    return proc_stat(pid)[:2]


_OWN_START = {}    # {pid: start time}: see own_start_time


def own_start_time():
    """This process's start time: read once (create names its hidden directories and records
    itself as the creator; `run` deletes too), not once per use. By pid: a fork is another."""
    me = os.getpid()
    if me not in _OWN_START:
        _OWN_START[me] = proc_start_time(me)[0]
    return _OWN_START[me]


def alive_as(pid, start_time, dir_fd=None):
    """Is `pid` still the process that had `start_time` (and not a zombie)? `dir_fd`: see proc_stat."""
    start, st, _ = proc_stat(pid, dir_fd) if pid else (None, None, None)
    return start is not None and start == start_time and st not in ("Z", "X")


def pids_hidden(mountinfo="/proc/self/mountinfo"):
    """The hidepid= of our /proc, when it hides a rootless container's init from its own runtime;
    else None.

    Every status (created, running, stopped) is read from /proc/<init>/stat. Until its execve,
    init is not dumpable (so the container cannot ptrace it), so an unprivileged runtime has no
    ptrace access to it; a /proc mounted with hidepid=1/2/4 (systemd's ProtectProc=) then hides
    it: init would look "stopped" the moment create returns. Root (CAP_SYS_PTRACE) and members of
    the mount's gid= see every process."""
    if os.geteuid() == 0:
        return None
    try:
        with open(mountinfo) as f:
            lines = [line.split() for line in f]
    except OSError:
        return None
    procs = [ln for ln in lines if len(ln) > 4 and ln[4] == "/proc" and "-" in ln]
    if not procs:
        return None
    opts = dict(o.partition("=")[::2] for o in procs[-1][-1].split(","))  # the one on top
    hide = opts.get("hidepid", "0")
    if hide in ("0", "off"):
        return None
    gid = opts.get("gid")
    if gid and gid.isdigit() and (int(gid) == os.getegid() or int(gid) in os.getgroups()):
        return None
    return f"hidepid={hide}"


def now_rfc3339():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def write_atomic(path, data, mode=0o600):
    """Write a temp file beside `path`, then rename: readers see the old file or the new one, whole."""
    os.replace(write_beside(path, data, mode), path)


def write_beside(path, data, mode=0o600):
    """write_atomic's first half: `data` in a temp file beside `path`; its name, to be renamed
    onto `path` (now, or when the moment comes: Container.stage)."""
    # the temp name is unique per thread too: the notebook and the load test call us from threads
    tmp = paths.join(paths.dirname(path) or ".",
                     f".{paths.basename(path)}.{os.getpid()}.{_thread.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)
    return tmp


class Container:
    """One container's state directory. `status` is computed on every read.

    Loaded with lock=True it holds the container's lock until unlock() — or the end of a `with`
    block, or the process.
    """

    def __init__(self, root, cid):
        self.root, self.id = root, cid
        self.dir = paths.join(root, cid)
        self.data = None
        self._config = None     # config.json, once read (see config)
        self._lock = None
        self._saved = None      # _identity of the state.json save() wrote: see relock

    # -- lookup --
    @classmethod
    def load(cls, root, cid, lock=False):
        validate_id(cid)
        c = cls(root, cid)
        if lock:
            c._lock = lock_dir(c.dir)
            if c._lock is None:
                from .errors import StateError
                raise StateError(f"container {cid} does not exist")
        c._read()
        return c

    def _read(self):
        self._config = None
        try:
            self.data = _json_reader().loads(read_file(paths.join(self.dir, STATE_FILE)))
        except (OSError, ValueError) as e:
            from .errors import StateError
            self.unlock()
            if isinstance(e, FileNotFoundError):
                raise StateError(f"container {self.id} does not exist") from None
            raise StateError(f"container {self.id}: unreadable state: {e}") from None

    def relock(self):
        """The container this process recorded (save), locked again — `run`'s start and delete,
        after its create: state.json is read again only if it was replaced since (`update`
        writes a new file: another inode), not ≈ 0.2 ms of reading and parsing twice for
        nothing. Gone, or another container under the id: as load() says. The config is read
        again when asked (`update` replaces config.json alone)."""
        from .errors import StateError
        self._lock = lock_dir(self.dir)
        if self._lock is None:
            raise StateError(f"container {self.id} does not exist")
        try:
            st = os.stat(paths.join(self.dir, STATE_FILE))
        except OSError:
            st = None
        if st is None or _identity(st) != self._saved:
            self._read()
        self._config = None
        return self

    @classmethod
    def all(cls, root):
        try:
            names = sorted(os.listdir(root))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if name.startswith(_HIDDEN):  # a create or delete under way (or its debris)
                continue
            try:
                out.append(cls.load(root, name))
            except Exception:  # deleted meanwhile, or not a container: not listed
                continue
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.unlock()

    def unlock(self):
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    # -- making and removing the directory --
    def reserve(self, data, config=None):
        """Claim the id with `data` recorded ("creating"), `config` in config.json (and its
        summary in state.json), exec.fifo made and the lock held.

        The directory is filled under a hidden name and renamed to the id: rename(2) is atomic
        and fails when the id exists (a container directory is never empty), so two creates of
        one id cannot both succeed, and no one ever sees a container without its state.json.
        """
        from .errors import StateError
        from . import fastjson      # create's alone (and update's): they have loaded it anyway
        paths.makedirs(self.root, mode=0o711, exist_ok=True)
        sweep(self.root)
        tmp = self._hidden("new")
        os.mkdir(tmp, 0o711)
        try:
            self._lock = lock_dir(tmp)
            fifo = fifo_path(tmp)
            # mknod of a FIFO is mkfifo (the C library's mkfifo makes this very call); posix's
            # mkfifo is interpreter code nothing else runs, 64 KiB of create's peak (proc_stat)
            os.mknod(fifo, S_IFIFO | 0o622)
            os.chmod(fifo, 0o622)  # mknod obeys the umask; any uid may signal readiness
            if config is not None:
                data = {**data, **summary(config)}
                write_atomic(paths.join(tmp, CONFIG_FILE), fastjson.dumps(config))
            self.data, self._config = data, config
            write_atomic(paths.join(tmp, STATE_FILE), fastjson.dumps(data))
            os.rename(tmp, self.dir)
        except BaseException as e:
            import errno
            self.unlock()
            remove_flat(tmp)
            if isinstance(e, OSError) and e.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                raise StateError(f"container with id {self.id} already exists") from None
            raise

    def save(self, staged=None):
        """state.json from self.data — or `staged`, what stage() wrote of it, put in place."""
        from . import fastjson
        path = paths.join(self.dir, STATE_FILE)
        tmp = staged or write_beside(path, fastjson.dumps(self.data))
        st = os.stat(tmp)       # before the rename, which keeps the inode: ours, not a later one
        os.replace(tmp, path)
        self._saved = _identity(st)

    def save_config(self):
        """The config, changed (`update`), put in place of the old one: config.json — or, from an
        older mrunc, the state.json that holds it."""
        if "config" in self.data:
            return self.save()
        from . import fastjson
        write_atomic(paths.join(self.dir, CONFIG_FILE), fastjson.dumps(self.config))

    def stage(self, data):
        """Write `data` beside state.json, not in its place yet: save(staged) puts it there with
        one rename. (A create that fails removes the directory, and this with it.)"""
        from . import fastjson
        return write_beside(paths.join(self.dir, STATE_FILE), fastjson.dumps(data))

    def remove(self):
        """Remove the state dir: first renamed away, so the id is free at once and a delete killed
        halfway leaves only hidden debris (swept later), never a container without its state."""
        tmp = self._hidden("old")
        try:
            os.rename(self.dir, tmp)
        except FileNotFoundError:
            return
        remove_flat(tmp)

    def _hidden(self, kind):
        """.new-<pid>-<start>-<random> / .old-…: the runtime's pid and start time tell sweep()
        when it is debris (its runtime is gone). (The random part in hex as an int formats it,
        not bytes.hex(): see proc_stat.)"""
        rand = int.from_bytes(os.urandom(4), "little")
        return paths.join(self.root, f".{kind}-{os.getpid()}-{own_start_time()}-{rand:08x}")

    # -- derived facts --
    @property
    def pid(self):
        return self.data.get("pid", 0)

    @property
    def config(self):
        """The config create took (see the module's doc): read from config.json the first time,
        by the commands that need more of it than state.json says."""
        if self._config is None:
            self._config = self.data["config"] if "config" in self.data else self._read_config()
        return self._config

    def _read_config(self):
        try:
            return _json_reader().loads(read_file(paths.join(self.dir, CONFIG_FILE)))
        except (OSError, ValueError) as e:
            from .errors import StateError
            if isinstance(e, FileNotFoundError):
                raise StateError(f"container {self.id} does not exist") from None
            raise StateError(f"container {self.id}: unreadable config: {e}") from None

    def _summary(self):
        """What state.json keeps of the config (summary) — derived from the config itself in a
        state.json of an older mrunc, which holds the whole of it."""
        d = self.data
        return summary(d["config"]) if "config" in d else d

    def annotations(self):
        return self._summary()["annotations"]

    def hooks_config(self, kind):
        """The config, if it has hooks of `kind` (poststart: start; poststop: delete); else None,
        and config.json is not read. Asked while the lock is held: the hooks run after it is
        released (delete: with the directory gone), from what is returned."""
        return self.config if kind in self._summary().get("hook_kinds", ()) else None

    @property
    def creator(self):
        """{"pid", "start_time"} of the create still making this container, else None."""
        return self.data.get("creator")

    def init_alive(self):
        return alive_as(self.pid, self.data.get("start_time"))

    def cgroup(self):
        """The cgroup manager, rebuilt from what create recorded (None when cgroups are disabled)."""
        cg = self.data.get("cgroup")
        if cg is None:
            return None
        from . import cgroups
        from .cgroups import recorded
        if cg.get("layout") == "disabled":
            # Never rebuilt: a directory that became writable since would give a manager for a
            # cgroup the container never joined — and maybe someone else's processes in it.
            return cgroups.DisabledManager("create used no cgroup", cg["path"], cg.get("rootless", False))
        # where the hierarchies are mounted, as create found them; from an older mrunc: found again
        found = (cg["layout"], cg["mounts"]) if recorded.usable(cg) else None
        mgr = cgroups.manager(cg["path"], self.id, paths=cg.get("paths"),
                              rootless=cg.get("rootless", False), found=found)
        mgr.created = list(cg.get("created") or [])  # remove() takes these too, when empty
        return mgr

    def freezer(self):
        """The container's freezer file (mrunc.cgroups.freezer), or None: no cgroup, or no freezer."""
        cg = self.data.get("cgroup")
        if cg is None:
            return None
        from .cgroups import recorded
        if recorded.usable(cg):
            return cg["freezer"]
        return self.cgroup().freezer_file()     # a state.json from an older mrunc

    def signal_cgroup(self, signum):
        """Signal every process of the container's cgroup (mrunc.cgroups.freezer.signal_all); False,
        nothing signalled, without a cgroup or with init no longer in it. By what create
        recorded, without the managers; from an older mrunc's state.json, through them."""
        cg = self.data.get("cgroup")
        if cg is None or cg.get("layout") == "disabled":
            return False
        from .cgroups import recorded
        if recorded.usable(cg):
            return recorded.signal_all(cg, self.pid, signum)
        mgr = self.cgroup()
        if self.pid not in mgr.pids():
            return False
        mgr.kill_all(signum)
        return True

    def remove_cgroup(self):
        """rmdir the container's cgroup — SIGKILLing first whatever is still in it (a process
        that outlived init). Empty, as a stopped container's cgroup is, it goes by the
        directories create recorded, without rebuilding the manager."""
        cg = self.data.get("cgroup")
        if cg is None:
            return
        from .cgroups import recorded
        if not recorded.usable(cg):
            self.cgroup().remove()
        elif not recorded.remove_if_empty(cg):
            if recorded.holds_processes(cg):
                self.cgroup().remove()
            else:
                from .cgroups import fs
                fs.remove(cg["dirs"], cg.get("created") or [])

    def status(self, paused=True):
        """The status, derived (see the module's doc). paused=False: a paused container is
        "running" too, and no cgroup is read — for kill, which signals either."""
        creator = self.creator
        if creator:
            # a create still at work, or one killed halfway: abandoned, nothing to start
            return "creating" if alive_as(creator["pid"], creator["start_time"]) else "stopped"
        start, st, comm = proc_stat(self.pid) if self.pid else (None, None, None)
        if start is None or start != self.data.get("start_time") or st in ("Z", "X"):
            return "stopped"
        # exec.fifo outlives a `start` killed after it released init: the program's name says
        if comm == INIT_COMM and paths.exists(paths.join(self.dir, FIFO)):
            return "created"
        if not paused:
            return "running"
        try:
            freezer_file = self.freezer()
            if freezer_file is not None:
                from .cgroups import freezer
                if freezer.frozen(freezer_file):
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
            "pid": self.pid if status not in ("stopped", "creating") else 0,
            "status": status,
            "bundle": d["bundle"],
            "rootfs": d["rootfs"],
            "created": d["created"],
            "owner": "",
            "annotations": self.annotations(),
        }


def summary(config):
    """What state.json keeps of the config: all that `state` and `list` print of it, and whether
    `start` and `delete` have hooks to run (only then do they read config.json)."""
    return {"annotations": config.get("annotations") or {},
            "hook_kinds": [kind for kind, hooks in (config.get("hooks") or {}).items() if hooks]}


def _identity(st):
    """Which file state.json is: replaced whole every time (write_atomic), a new one has another
    inode — or, where inode numbers are reused, another mtime or size."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def lock_dir(path, timeout=LOCK_TIMEOUT):
    """flock(LOCK_EX) the directory `path`; return the fd that holds it, or None if `path` is
    gone — also when it went while we waited (a delete that held the lock removed it)."""
    import fcntl
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    delay, deadline = 0.0005, None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            deadline = deadline or time.monotonic() + timeout
            if time.monotonic() > deadline:
                os.close(fd)
                from .errors import StateError  # only now: start, kill, delete raise none
                raise StateError(f"container {paths.basename(path)} is busy: another mrunc "
                                 f"command has held its lock for {timeout:g} s") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
    held = os.fstat(fd)
    try:
        now = os.stat(path)
    except FileNotFoundError:
        now = None
    if now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
        os.close(fd)
        return None
    return fd


def sweep(root):
    """Remove the debris of creates and deletes that were killed halfway: hidden directories
    whose runtime is dead. They hold at most state.json, config.json, exec.fifo and a temp file
    (see the module's doc)."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(_HIDDEN):
            parts = name.split("-")         # .new, pid, start time, random (see _hidden)
            ours = len(parts) == 4 and parts[1].isdigit() and parts[2].isdigit()
            if not (ours and alive_as(int(parts[1]), int(parts[2]))):
                remove_flat(paths.join(root, name))


def remove_leftover(root, cid):
    """A directory named like the container but without state.json (from an older mrunc, or
    made by hand): not a container; delete --force removes it so the id can be used again."""
    d = paths.join(root, cid)
    if paths.isdir(d) and not paths.exists(paths.join(d, STATE_FILE)):
        Container(root, cid).remove()


def remove_flat(d):
    """Remove a state directory and what is in it (flat: state.json, config.json, fifo, temp files)."""
    try:
        for name in os.listdir(d):
            try:
                os.unlink(paths.join(d, name))
            except FileNotFoundError:
                pass
        os.rmdir(d)
    except FileNotFoundError:
        pass


def fifo_path(container_dir):
    return paths.join(container_dir, FIFO)


def wait_gone(pid, timeout=5.0):
    """Wait until pid is dead (a zombie, or reaped); False if it still lives after `timeout`
    seconds. It may not be our child (its parent reaps it then); if it is ours, we reap it.
    How, without polling: mrunc.gone (imported only by the commands that wait)."""
    from .gone import all_gone
    return all_gone([pid], timeout)
