"""The kernel calls a container runtime makes, and the only package that calls C.

A container is not a thing the kernel knows about: it is an ordinary process on which a runtime
made a handful of system calls — unshare/setns (namespaces), mount/pivot_root (a new root),
sethostname, prctl, capset. Python 3.11 wraps some of them (os.setresuid, os.setgroups, os.mknod,
os.chroot, resource.setrlimit); the rest are reached here through libc, with the C-calling core
of ctypes (`_ctypes`) and the few C types and prototypes we need (mrunc.linux.ffi, which says
why not the `ctypes` package: it costs create, run and exec ≈ 3 ms and 1 MiB each).

Every privileged call goes through a `Syscalls` object — one per process: the runtime's, the
clone child's, init's. That gives us:
  * errors that name the syscall and the path (`OSError(EPERM, "mount proc on /proc: ...")`),
    raised as the right subclass (PermissionError, FileNotFoundError…);
  * a log of what the kernel was asked: each entry a `Call` — (name, args), plus who made it
    (runtime / clone / init / hook) and its pid, when (wall clock, comparable across processes),
    how long it took and how it ended (errno). The runtime merges its own log with init's, by
    time, into one record per phase (mrunc.record), which `--trace` prints and the stepper shows;
  * a `RecordingSyscalls` fake that logs and does nothing, so unit tests check the exact call
    sequence without root.

This module imports nothing of mrunc's (imports flow one way, towards the kernel).
"""
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)
import sys
from errno import errorcode as _ERRNO_NAMES
from time import perf_counter as _perf, time as _now

from .ffi import (Library, Structure, addressof, byref, c_char, c_char_p, c_int, c_long, c_size_t,
                  c_uint, c_uint32, c_uint64, c_ulong, c_void_p, char_array, get_errno, sizeof)

# --- constants (from <linux/sched.h>, <sys/mount.h>, <linux/prctl.h>, <linux/capability.h>) ---
CLONE_FS = 0x00000200  # not a namespace: a thread's own root and cwd (process.sources)
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# OCI namespace type -> (clone flag, name of the file in /proc/<pid>/ns)
NAMESPACES = {
    "user": (CLONE_NEWUSER, "user"),
    "pid": (CLONE_NEWPID, "pid"),
    "mount": (CLONE_NEWNS, "mnt"),
    "network": (CLONE_NEWNET, "net"),
    "uts": (CLONE_NEWUTS, "uts"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
    "time": (CLONE_NEWTIME, "time"),
}

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_FORCE = 1
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# open_tree(2) and move_mount(2), Linux 5.2+ (<linux/mount.h>, <fcntl.h>)
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_SYMLINKS = 0x10
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000

# openat2(2) resolve flags (<linux/openat2.h>): how a path may be looked up, enforced by the kernel
RESOLVE_NO_XDEV = 0x01        # never cross a mount point (a bind mount on the way is EXDEV)
RESOLVE_NO_MAGICLINKS = 0x02  # no /proc/<pid>/fd/N, /proc/<pid>/root…: they jump anywhere
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08        # never leave the directory the lookup starts from
RESOLVE_IN_ROOT = 0x10        # that directory is "/": ".." and absolute symlinks stay in it

# fsopen/fsmount (<linux/mount.h>): a filesystem instance mounted nowhere
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70       # the atime mode: RELATIME (0), NOATIME, STRICTATIME
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
_FSOPEN_CLOEXEC = 1
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_FSMOUNT_CLOEXEC = 1

PROC_SUPER_MAGIC = 0x9FA0  # statfs f_type of procfs (<linux/magic.h>)
CGROUP2_SUPER_MAGIC = 0x63677270  # ... and of cgroup2 ("cgrp")

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# bpf(2) commands (<linux/bpf.h>, enum bpf_cmd) — the ones the cgroup v2 device filter uses
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16
_BPF_NAMES = {v: k for k, v in globals().items() if k.startswith("BPF_")}

# syscall numbers that glibc 2.36 has no wrapper for (x86_64 / aarch64); calls added since
# Linux 5.1 have one number on every architecture
_SYS = {
    "x86_64": {"pivot_root": 155, "setns": 308, "bpf": 321, "ioprio_set": 251, "sched_setattr": 314},
    "aarch64": {"pivot_root": 41, "setns": 268, "bpf": 280, "ioprio_set": 30, "sched_setattr": 274},
}[os.uname().machine]
# newer calls share one number on every architecture
_SYS.update(open_tree=428, move_mount=429, fsopen=430, fsconfig=431, fsmount=432, close_range=436,
            openat2=437, mount_setattr=442)

# libc's functions we call, from their C prototypes: (result, parameters...). syscall(2) is
# variadic: each call passes its arguments in the C types that system call takes.
_libc = Library(None, {
    "syscall": (c_long, ...),
    "unshare": (c_int, c_int),                              # int unshare(int flags)
    "mount": (c_int, c_char_p, c_char_p, c_char_p, c_ulong, c_char_p),  # source, target, type, flags, data
    "umount2": (c_int, c_char_p, c_int),
    "sethostname": (c_int, c_char_p, c_size_t),
    "setdomainname": (c_int, c_char_p, c_size_t),
    "prlimit": (c_int, c_int, c_int, c_void_p, c_void_p),   # pid, resource, *new, *old
    "prctl": (c_int, c_int, c_ulong, c_ulong, c_ulong, c_ulong),
    "capget": (c_int, c_void_p, c_void_p),                  # header, data[2]
    "capset": (c_int, c_void_p, c_void_p),
    "personality": (c_int, c_ulong),
    "fstatfs": (c_int, c_int, c_void_p),
})


class _CapHeader(Structure):
    _fields_ = [("version", c_uint32), ("pid", c_int)]


class _CapData(Structure):
    _fields_ = [("effective", c_uint32), ("permitted", c_uint32), ("inheritable", c_uint32)]


class _OpenHow(Structure):
    _fields_ = [("flags", c_uint64), ("mode", c_uint64), ("resolve", c_uint64)]


class _MountAttr(Structure):
    _fields_ = [("attr_set", c_uint64), ("attr_clr", c_uint64), ("propagation", c_uint64),
                ("userns_fd", c_uint64)]


class _Rlimit(Structure):
    _fields_ = [("cur", c_uint64), ("max", c_uint64)]


# How os.fsencode turns a str path into the bytes C is given
_FS_ENCODING, _FS_ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _b(s):
    if s is None:
        return None     # NULL
    s = os.fspath(s)
    return s if isinstance(s, bytes) else s.encode(_FS_ENCODING, _FS_ERRORS)


def _check(ret, what, path=None):
    """libc convention: -1 and errno. Raise OSError(errno, what, path) so Python picks the subclass."""
    if ret == -1:
        err = get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return ret


class Call(tuple):
    """One entry of a Syscalls log: the tuple (name, args), which is what tests compare, and
    as attributes who made it and its pid, `t` (time.time() at the start: init's and the
    runtime's clocks agree, whatever a time namespace does to CLOCK_MONOTONIC), `ms`, and how
    it ended: `errno` (a name, "EPERM") or `ret` (a non-zero result: a new fd). `note` says why
    a call ran where it did, when that is not obvious."""

    who, pid, t, ms, ret, errno, note = "runtime", None, 0.0, None, None, None, None


class Syscalls:
    """The real thing. Every call is appended to `self.log` as a Call before it is made; when it
    returns, the Call gets its duration and outcome. `who` and `pid` name the process."""

    # Name each /proc/self/fd/N argument by where it points (_readable: a readlink per call)?
    # Only when someone will read the log: init, whose mounts all go onto such fds, turns it off
    # when nobody traces (process.init.clone_child).
    readable = True
    # Keep a log at all? Init turns it off when nobody will read it (an engine's create): each
    # call is then made as before, errors raised as before, and no Call is built or timed.
    keeping = True

    def __init__(self, who="runtime", pid=None):
        self.log = []
        self.who, self.pid = who, pid or os.getpid()
        self.note = None    # set while a batch of calls needs one explanation (see Call.note)

    def _rec(self, name, *args):
        if not self.keeping:
            return Call((name, args))  # for a caller that sets its fields; kept nowhere
        c = Call((name, tuple(map(_readable, args)) if self.readable else args))
        d = c.__dict__
        d["who"], d["pid"], d["t"] = self.who, self.pid, _now()
        if self.note:
            d["note"] = self.note
        self.log.append(c)
        return c

    def take_log(self):
        """Return and clear the calls made since the last take (one phase's worth)."""
        log, self.log = self.log, []
        return log

    def add(self, name, *args, t, ms, who=None, pid=None, ret=None, err=None):
        """Record a call timed by the caller: made by other means (a socket send, a child
        process) or seen from here (a hook's run, the outcome of init's execve)."""
        c = self._rec(name, *args)
        c.t, c.ms = t, round(ms, 3)
        if who:
            c.who, c.pid = who, pid
        if err is not None:
            c.errno = _ERRNO_NAMES.get(err, str(err)) if isinstance(err, int) else err
        elif ret:
            c.ret = ret
        return c

    def around(self, name, *args, who=None):
        """`with sys.around("sendmsg", path, "SCM_RIGHTS"):` — record what the block does (a
        library's call: libseccomp, a socket), with its time and errno. The Call is what `as`
        gives, to set `ret` or `pid` on."""
        return _Around(self, name, args, who)

    # -- files: a cgroup is a directory (writes: see write_file below) --
    def mkdir(self, path, mode=0o755):
        self._rec("mkdir", path, oct(mode))
        os.mkdir(path, mode)

    # -- namespaces --
    def unshare(self, flags):
        self._rec("unshare", flags_names(flags))
        _check(_libc.unshare(flags), f"unshare({flags_names(flags)})")

    def setns(self, fd, nstype, path=None):
        self._rec("setns", path or fd, flags_names(nstype))
        _check(_libc.syscall(_SYS["setns"], c_int(fd), c_int(nstype)),
               f"setns({flags_names(nstype)})", path)

    # -- mounts --
    def mount(self, source, target, fstype, flags=0, data=None):
        # The flags' names (≈2 µs) only for a log that is kept, or an error
        if self.keeping:
            self._rec("mount", source, target, fstype, mount_flags_names(flags), data)
        if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) == -1:
            _check(-1, f"mount {source or fstype} on {target} ({mount_flags_names(flags)})", target)

    def open_tree(self, path, recursive=False):
        """A copy of the mount at `path` — with its submounts if `recursive` — attached nowhere
        yet (OPEN_TREE_CLONE): a bind mount in waiting. Returns its fd, for move_mount; closing
        the fd unmounts a copy that was never attached. Raises ENOSYS before Linux 5.2."""
        flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
        names = "OPEN_TREE_CLONE" + ("|AT_RECURSIVE" if recursive else "")
        self._rec("open_tree", path, names)
        ret = _libc.syscall(_SYS["open_tree"], c_int(_AT_FDCWD), _b(path), c_uint(flags))
        return _check(ret, f"open_tree {path} ({names})", path)

    def move_mount(self, tree_fd, target, source=None, dir_fd=None):
        """Attach the detached mount `tree_fd` (from open_tree) at `target`. `source`, the path
        it was copied from, only names it in the log and errors: the fd itself reads as "/".
        T_SYMLINKS: follow a symlink at the target, as mount(2) does — /proc/self/fd/N is one.
        With `dir_fd`, `target` is a name in that directory, and a symlink there is not followed."""
        where = target if dir_fd is None else f"/proc/self/fd/{dir_fd}/{target}"
        self._rec("move_mount", source or tree_fd, where)
        flags = MOVE_MOUNT_F_EMPTY_PATH | (MOVE_MOUNT_T_SYMLINKS if dir_fd is None else 0)
        ret = _libc.syscall(_SYS["move_mount"], c_int(tree_fd), b"",
                            c_int(_AT_FDCWD if dir_fd is None else dir_fd), _b(target), c_uint(flags))
        _check(ret, f"move_mount {source or tree_fd} on {where}", where)

    def mount_setattr(self, fd, attr_set, attr_clr, source=None):
        """Set and clear per-mount attributes (MOUNT_ATTR_*) of the mount `fd` is the root of —
        that mount alone, not its submounts — leaving every other attribute as it is (Linux
        5.12+; ENOSYS before). On a detached copy (open_tree) this is a bind's "ro, nosuid…"
        before it is attached: no remount, so nothing to look up again and no flags to repeat.
        `source` only names it in the log and errors."""
        if self.keeping:
            self._rec("mount_setattr", source or fd, mount_attr_names(attr_set),
                      mount_attr_names(attr_clr))
        attr = _MountAttr(attr_set, attr_clr, 0, 0)
        ret = _libc.syscall(_SYS["mount_setattr"], c_int(fd), b"", c_uint(_AT_EMPTY_PATH),
                            byref(attr), c_size_t(sizeof(attr)))
        _check(ret, f"mount_setattr {source or fd}", source)

    def umount2(self, target, flags=0):
        self._rec("umount2", target, flags)
        _check(_libc.umount2(_b(target), flags), "umount2", target)

    def pivot_root(self, new_root, put_old):
        self._rec("pivot_root", new_root, put_old)
        _check(_libc.syscall(_SYS["pivot_root"], _b(new_root), _b(put_old)), "pivot_root", new_root)

    def fsmount(self, fstype, attrs=0, options=()):
        """A new instance of filesystem `fstype`, attached to no directory: returns an fd of its
        root (fsopen, fsconfig CREATE, fsmount; Linux 5.2+). No path leads to such a mount, so
        no other process can look into it or mount over anything inside it; it is gone once the
        fd is closed. Nothing in any mount table changes. `options`: (key, value) strings, as
        mount(2)'s data "key=value" ("source" names it in the mount table)."""
        data = ",".join(f"{k}={v}" for k, v in options)
        self._rec("fsmount", fstype, attrs, *([data] if data else []))
        fs = _check(_libc.syscall(_SYS["fsopen"], _b(fstype), c_uint(_FSOPEN_CLOEXEC)),
                    f"fsopen {fstype}")
        try:
            for key, value in options:
                _check(_libc.syscall(_SYS["fsconfig"], c_int(fs), c_uint(_FSCONFIG_SET_STRING),
                                     _b(key), _b(value), c_int(0)), f"fsconfig {fstype} {key}")
            _check(_libc.syscall(_SYS["fsconfig"], c_int(fs), c_uint(_FSCONFIG_CMD_CREATE),
                                 None, None, c_int(0)), f"fsconfig {fstype} create")
            return _check(_libc.syscall(_SYS["fsmount"], c_int(fs), c_uint(_FSMOUNT_CLOEXEC),
                                        c_uint(attrs)), f"fsmount {fstype}")
        finally:
            os.close(fs)

    def chroot(self, path):
        self._rec("chroot", path)
        os.chroot(path)

    def mknod(self, path, mode, device):
        self._rec("mknod", path, oct(mode), device)
        os.mknod(path, mode, device)

    def chown(self, path, uid, gid):
        """lchown: a symlink swapped in at `path` is changed itself, never what it points to."""
        self._rec("chown", path, uid, gid)
        os.chown(path, uid, gid, follow_symlinks=False)

    # -- identity --
    def sethostname(self, name):
        self._rec("sethostname", name)
        raw = name.encode()
        _check(_libc.sethostname(raw, len(raw)), "sethostname")

    def setdomainname(self, name):
        self._rec("setdomainname", name)
        raw = name.encode()
        _check(_libc.setdomainname(raw, len(raw)), "setdomainname")

    def setgroups(self, gids):
        self._rec("setgroups", list(gids))
        os.setgroups(gids)

    def setresgid(self, gid):
        self._rec("setresgid", gid)
        os.setresgid(gid, gid, gid)

    def setresuid(self, uid):
        self._rec("setresuid", uid)
        os.setresuid(uid, uid, uid)

    def setrlimit(self, resource_no, soft, hard, name=None):
        """Our own limits; soft/hard are the kernel's u64 (2**64-1 is RLIM_INFINITY)."""
        self._rec("setrlimit", name or resource_no, soft, hard)
        self._prlimit(0, resource_no, soft, hard, f"setrlimit {name or resource_no} {soft}/{hard}")

    def prlimit(self, pid, resource_no, soft, hard, name=None):
        """Another process's limits: the parent sets init's before init enters a user namespace,
        where raising a hard limit is no longer possible (CAP_SYS_RESOURCE counts in the initial ns)."""
        self._rec("prlimit", pid, name or resource_no, soft, hard)
        self._prlimit(pid, resource_no, soft, hard, f"prlimit {pid} {name or resource_no} {soft}/{hard}")

    @staticmethod
    def _prlimit(pid, resource_no, soft, hard, what):
        # libc prlimit, not resource.setrlimit: that one turns EPERM/EINVAL into errno-less
        # ValueErrors and cannot take 2**64-1.
        new = _Rlimit(soft, hard)
        _check(_libc.prlimit(pid, resource_no, byref(new), None), what)

    def umask(self, mask):
        self._rec("umask", oct(mask))
        return os.umask(mask)

    # -- process attributes --
    def prctl(self, option, arg2=0, arg3=0, arg4=0, arg5=0):
        if self.keeping:
            self._rec("prctl", *_prctl_readable(option, arg2, arg3))
        return _check(_libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")

    def set_name(self, name):
        """PR_SET_NAME: what `ps` and /proc/<pid>/comm show (15 bytes max)."""
        buf = char_array(name.encode()[:15] + b"\0")
        _check(_libc.prctl(PR_SET_NAME, addressof(buf), 0, 0, 0), "prctl(PR_SET_NAME)")

    def capget(self, pid=0):
        """Return (effective, permitted, inheritable) as 64-bit masks."""
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
        data = (_CapData * 2)()
        _check(_libc.capget(byref(hdr), data), "capget")
        return tuple(getattr(data[0], f) | (getattr(data[1], f) << 32)
                     for f in ("effective", "permitted", "inheritable"))

    def capset(self, effective, permitted, inheritable):
        self._rec("capset", hex(effective), hex(permitted), hex(inheritable))
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        for i in (0, 1):
            data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
            data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
            data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
        _check(_libc.capset(byref(hdr), data), "capset")

    # -- scheduling, I/O priority, execution domain (process.scheduler, ioPriority, personality) --
    def sched_setattr(self, policy, flags=0, nice=0, priority=0, runtime=0, deadline=0, period=0):
        """struct sched_attr (linux/sched/types.h): size, policy, flags, nice, priority, then
        the SCHED_DEADLINE runtime/deadline/period in ns, then two utilisation clamps."""
        import _struct as struct    # built in: after pivot_root no .py of the host can be imported
        self._rec("sched_setattr", policy, flags, nice, priority, runtime, deadline, period)
        attr = struct.pack("=IIQiIQQQII", 56, policy, flags, nice, priority, runtime, deadline,
                           period, 0, 0)
        _check(_libc.syscall(_SYS["sched_setattr"], 0, char_array(attr), 0), "sched_setattr")

    def ioprio_set(self, io_class, level):
        self._rec("ioprio_set", io_class, level)
        # IOPRIO_WHO_PROCESS = 1, who 0 = ourselves; the class sits above 13 bits of level
        _check(_libc.syscall(_SYS["ioprio_set"], 1, 0, (io_class << 13) | level), "ioprio_set")

    def personality(self, persona):
        self._rec("personality", hex(persona))
        _check(_libc.personality(persona), "personality")

    def seccomp_load(self, program, flags=0, what=""):
        """seccomp(SECCOMP_SET_MODE_FILTER): install a BPF program (struct sock_filter[], from
        mrunc.security.seccomp) in this process, for good. Returns the notify fd, if asked for."""
        from .seccomp import flag_names, set_mode_filter
        self._rec("seccomp", "SECCOMP_SET_MODE_FILTER", flag_names(flags),
                  f"{len(program) // 8} instructions", what)
        return set_mode_filter(program, flags)

    # -- network --
    def link_up(self, ifname):
        """Set IFF_UP on an interface with two ioctls (SIOCGIFFLAGS/SIOCSIFFLAGS).

        A new network namespace has only `lo`, and it is down. Bringing it up is one flag: an ioctl
        does it in microseconds, where importing a netlink library costs ~120 ms on every create.
        """
        import _socket      # not socket: its import pulls in enum and selectors (≈ 5 ms)
        import _struct as struct    # the C module under struct (built in: imported for free)
        import fcntl
        self._rec("ioctl", "SIOCSIFFLAGS", ifname, "IFF_UP")
        s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        try:
            ifr = struct.pack("16sH", ifname.encode(), 0)
            flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, ifr))[1]  # SIOCGIFFLAGS
            fcntl.ioctl(s, 0x8914, struct.pack("16sH", ifname.encode(), flags | 1))  # SIOCSIFFLAGS
        finally:
            s.close()

    # -- plain file writes to /proc, logged like syscalls since they change kernel state --
    def write_file(self, path, data, truncate=False):
        """open and write(2) once. `truncate`: O_TRUNC, for a cgroup file (which ignores it) that
        a unit test's fake tree holds as a plain file."""
        self._rec("write", path, data)
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | (os.O_TRUNC if truncate else 0))
        try:
            _write(fd, data, path)
        finally:
            os.close(fd)

    def write_fd(self, path, data, *, fd):
        """write(2) to `fd`, a file we opened (and checked) ourselves; `path` only names it."""
        self._rec("write", path, data)
        _write(fd, data, path)

    def bpf(self, cmd, attr, pointers=None, *shown):
        """bpf(2) (see the module function `bpf`); `shown`: what the trace says it is about."""
        self._rec("bpf", _BPF_NAMES.get(cmd, cmd), *shown)
        return bpf(cmd, attr, pointers)

    def cloexec_from(self, first):
        """Mark every fd >= `first` close-on-exec (fcntl FD_CLOEXEC): the fd table a program
        gets is stdio and the preserved fds, nothing else of ours (S3)."""
        try:
            fds = [int(n) for n in os.listdir("/proc/self/fd")]
        except (FileNotFoundError, NotADirectoryError):
            fds = []        # no /proc (after pivot_root into a rootfs without one)
        fds = sorted(fd for fd in fds if fd >= first)
        self._rec("fcntl", "F_SETFD", "FD_CLOEXEC", fds)
        for fd in fds:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass    # the listing's own fd, closed since

    def execve(self, path, args, env, before=None):
        """Become the program. Recorded first, with no outcome: when it works nothing of ours
        runs any more; whoever waits for it (`start`, on exec.fifo) sees how it went.
        `before(log)`, if given, gets the log up to and including this call, just before it."""
        self._rec("execve", path, list(args))
        if before is not None:
            before(self.take_log())
        os.execve(path, args, env)


class _Around:
    __slots__ = ("sys", "name", "args", "who", "t", "t0", "call")

    def __init__(self, sys, name, args, who):
        self.sys, self.name, self.args, self.who = sys, name, args, who
        self.call = Call((name, args))

    def __enter__(self):
        self.t, self.t0 = _now(), _perf()
        return self.call

    def __exit__(self, kind, err, tb):
        ms = (_perf() - self.t0) * 1000
        c = self.sys.add(self.name, *self.args, t=self.t, ms=ms, who=self.who,
                         pid=self.call.pid, ret=self.call.ret,
                         err=None if err is None else getattr(err, "errno", None) or type(err).__name__)
        if self.call.note:
            c.note = self.call.note
        return False


def _timed(method):
    """Wrap a Syscalls method: the Call it logs gets the duration and the errno or result."""
    def timed(self, *args, **kw):
        if not self.keeping:
            return method(self, *args, **kw)
        log = self.log
        n, t0 = len(log), _perf()
        try:
            ret = method(self, *args, **kw)
        except OSError as e:
            if len(self.log) > n:
                c = self.log[n]
                c.ms = round((_perf() - t0) * 1000, 3)
                c.errno = _ERRNO_NAMES.get(e.errno, str(e.errno))
            raise
        if len(log) > n:
            c = log[n]
            c.ms = round((_perf() - t0) * 1000, 3)
            if ret and type(ret) is int:
                c.ret = ret
        return ret
    timed.__name__, timed.__doc__ = method.__name__, method.__doc__
    return timed


# Every method that logs a call gets its duration and outcome (those that log none: no effect).
for _name, _fn in list(vars(Syscalls).items()):
    if not _name.startswith("_") and callable(_fn) and _name not in ("take_log", "add", "around",
                                                                    "capget", "set_name"):
        setattr(Syscalls, _name, _timed(_fn))


def _write(fd, data, path):
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
    except OSError as e:
        raise OSError(e.errno, f"write {data!r} to {path}: {e.strerror}", path) from None


def openat2(dirfd, path, flags, resolve, mode=0):
    """openat(2) with `resolve` rules (RESOLVE_*) the kernel enforces on the whole lookup, atomically
    (Linux 5.6+; OSError ENOSYS before). A lookup, like os.open: not a Syscalls method."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    ret = _libc.syscall(_SYS["openat2"], c_int(dirfd), _b(path), byref(how), c_size_t(sizeof(how)))
    return _check(ret, f"openat2 {path}", path)


_openat2_ok = None


def has_openat2():
    """Does this kernel have openat2? Asked once (an older one answers ENOSYS)."""
    global _openat2_ok
    if _openat2_ok is None:
        try:
            os.close(openat2(-100, "/", os.O_PATH, 0))  # -100: AT_FDCWD
            _openat2_ok = True
        except OSError:
            _openat2_ok = False
    return _openat2_ok


def close_range(first, last):
    """Close every fd from `first` to `last` in one call (Linux 5.9+); False, having closed
    nothing, where the kernel has none (ENOSYS) or a filter forbids it. Our own fds, as
    os.close: not a Syscalls method."""
    return _libc.syscall(_SYS["close_range"], c_uint(first), c_uint(last), c_uint(0)) == 0


def fstatfs_type(fd):
    """f_type of the filesystem holding fd (PROC_SUPER_MAGIC...): os.statvfs does not give it.

    Read-only, so not a Syscalls method: it changes nothing and there is nothing to fake.
    """
    buf = (c_long * 16)()  # struct statfs (120 bytes on 64-bit); f_type is its first long
    _check(_libc.fstatfs(fd, buf), "fstatfs")
    return buf[0]


def prepare_fork():
    """Make now the C functions both sides of create's fork call first — the runtime opening
    /proc to write id maps, init opening its own /proc and resolving its mounts' paths (openat2,
    fstatfs): made once before the fork, not once in each process after it, where making one
    (≈ 50 µs the first time) also copies every page it writes."""
    has_openat2()
    return _libc.fstatfs


def bpf(cmd, attr, pointers=None):
    """bpf(2): `attr` is a bytearray holding the command's `union bpf_attr` fields; the kernel may
    write back into it (BPF_PROG_QUERY's count). `pointers` maps an offset in attr to a bytearray
    whose address goes there (instructions, license, log buffer, id array): the kernel reads and
    writes those in place. Returns the syscall's result (a new fd for LOAD and GET_FD_BY_ID).

    The kernel call itself; the cgroups package makes it through Syscalls.bpf, which records it.
    """
    keep = []          # the C views must outlive the call
    for off, buf in (pointers or {}).items():
        view = (c_char * len(buf)).from_buffer(buf)
        keep.append(view)
        c_uint64.from_buffer(attr, off).value = addressof(view)
    raw = (c_char * len(attr)).from_buffer(attr)
    ret = _libc.syscall(_SYS["bpf"], c_int(cmd), raw, c_uint(len(attr)))
    return _check(ret, f"bpf({_BPF_NAMES.get(cmd, cmd)})")


CLONE_PARENT = 0x00008000
CLONE_INTO_CGROUP = 0x200000000
_SYS_CLONE3 = 435  # the same number on x86_64 and aarch64 (the generic table)


class _CloneArgs(Structure):
    _fields_ = [(name, c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls",
        "set_tid", "set_tid_size", "cgroup")]


def fork_into_cgroup(cgroup_fd):
    """fork(), the child born in the cgroup v2 directory `cgroup_fd` (an O_PATH fd is enough):
    clone3(CLONE_INTO_CGROUP), Linux 5.7+. Returns like os.fork: 0 in the child, its pid here.

    Why: moving a process into a cgroup afterwards (writing cgroup.procs) takes a global lock
    whose first writer waits for an RCU grace period — 5-15 ms asleep in the kernel. A process
    born in the cgroup takes only the cheap side of that lock.

    A raw clone3 skips what os.fork() does around fork(2) for the interpreter (after-fork hooks,
    locks re-initialised for the threads that vanish) and glibc's own bookkeeping (the thread id
    it caches): call it only from a single-threaded process whose child goes on to exec. Raises
    OSError: ENOSYS (no clone3), E2BIG (clone3 without the cgroup field, before 5.7), EBUSY (a
    cgroup that has enabled controllers for its children), EACCES (not ours to write).
    Not a Syscalls method: like os.fork, it is how a process is made, not a change to record.
    """
    return _clone3(_CloneArgs(flags=CLONE_INTO_CGROUP, exit_signal=17, cgroup=cgroup_fd),  # SIGCHLD
                   "clone3(CLONE_INTO_CGROUP)")


def fork_as_sibling():
    """fork(), the child born as our *parent's* child, not ours: clone3(CLONE_PARENT), Linux 5.3+.
    Returns like os.fork: 0 in the child, here its pid in our PID namespace.

    Why: a process that joined a PID namespace (setns) is not in it itself, only its children
    are; when that process is a short-lived helper of the runtime, CLONE_PARENT makes the child
    the runtime's own — it waits for it and gets its exit status — and the helper just exits
    (runc's nsexec forks its stages the same way). The child's exit signal is the helper's
    (SIGCHLD): clone3 wants exit_signal 0 with CLONE_PARENT (else EINVAL). Same caveats as
    fork_into_cgroup: single-threaded callers whose child execs."""
    return _clone3(_CloneArgs(flags=CLONE_PARENT), "clone3(CLONE_PARENT)")


def _clone3(args, what):
    ret = _libc.syscall(_SYS_CLONE3, byref(args), c_size_t(sizeof(args)))
    return _check(ret, what)


# Capability numbers -> names (linux/capability.h); the position is the number.
CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

_PR_NAMES = {PR_SET_PDEATHSIG: "PR_SET_PDEATHSIG", PR_SET_DUMPABLE: "PR_SET_DUMPABLE",
             PR_SET_KEEPCAPS: "PR_SET_KEEPCAPS", PR_SET_NAME: "PR_SET_NAME",
             PR_CAPBSET_DROP: "PR_CAPBSET_DROP", PR_SET_CHILD_SUBREAPER: "PR_SET_CHILD_SUBREAPER",
             PR_SET_NO_NEW_PRIVS: "PR_SET_NO_NEW_PRIVS", PR_CAP_AMBIENT: "PR_CAP_AMBIENT"}


def _cap(n):
    return CAP_NAMES[n] if 0 <= n < len(CAP_NAMES) else str(n)


def _prctl_readable(option, arg2, arg3):
    """prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN) reads better in a trace than prctl(24, 21)."""
    name = _PR_NAMES.get(option, option)
    if option == PR_CAPBSET_DROP:
        return name, _cap(arg2)
    if option == PR_CAP_AMBIENT:
        sub = {PR_CAP_AMBIENT_RAISE: "PR_CAP_AMBIENT_RAISE",
               PR_CAP_AMBIENT_CLEAR_ALL: "PR_CAP_AMBIENT_CLEAR_ALL"}.get(arg2, arg2)
        return (name, sub, _cap(arg3)) if arg2 == PR_CAP_AMBIENT_RAISE else (name, sub)
    return name, arg2


def _readable(arg):
    """Mounts go onto /proc/self/fd/N (the inode that was checked, not a path that could be swapped);
    the log shows where that fd points, which is what a reader of the trace wants to see."""
    if isinstance(arg, str) and arg.startswith("/proc/self/fd/"):
        fd, _, rest = arg[14:].partition("/")
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return arg
        return target + ("/" + rest if rest else "")
    return arg


def flags_names(flags):
    """CLONE_NEWPID|CLONE_NEWNS… for the trace (what a reader wants to see, not a number)."""
    names = [f"CLONE_NEW{n.upper() if n != 'mnt' else 'NS'}" for _, (bit, n) in NAMESPACES.items()
             if flags & bit]
    if flags & CLONE_FS:
        names.append("CLONE_FS")
    return "|".join(names) or hex(flags)


_MS_NAMES = None   # [(flag, name)] of every MS_ constant: made on first use (a walk of the globals)


def mount_flags_names(flags):
    """MS_BIND|MS_REC… for the trace and for errors: not needed by a create nobody traces."""
    global _MS_NAMES
    if _MS_NAMES is None:
        _MS_NAMES = [(v, k[3:]) for k, v in sorted(globals().items()) if k.startswith("MS_")]
    return "|".join(n for v, n in _MS_NAMES if flags & v) or "0"


def mount_attr_names(attrs):
    """RDONLY|NOSUID… of MOUNT_ATTR_* bits, for the trace and errors ("0": none)."""
    names = ["ATIME"] if attrs & MOUNT_ATTR__ATIME == MOUNT_ATTR__ATIME else []
    names += [k[11:] for k, v in globals().items() if k.startswith("MOUNT_ATTR_") and attrs & v and
              not k.startswith("MOUNT_ATTR__") and not (names and v & MOUNT_ATTR__ATIME)]
    return "|".join(names) or "0"


def __getattr__(name):
    """RecordingSyscalls, the unit tests' fake, from mrunc.linux.recording: no create, run or
    exec needs it."""
    if name == "RecordingSyscalls":
        from .recording import RecordingSyscalls
        return RecordingSyscalls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# fanotify(7), which only `mrunc watch` uses, is in mrunc.linux.fanotify (not paid for by create).
