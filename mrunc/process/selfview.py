"""init's own view of itself, reported at each pause of the stepper.

A snapshot (mrunc.snapshot) reads the paused init from outside, in /proc/<pid>. Root can read all
of it. A user without root cannot read half of it before `exec`: init is *not dumpable* until it
execs the user's program (clone_child says why: no process of the container may ptrace it or open
/proc/<pid>/exe, the host's interpreter), and the kernel then guards /proc/<pid>/ns/*,
/proc/<pid>/root and /proc/<pid>/exe as it guards ptrace: only a caller with CAP_SYS_PTRACE gets
in. The hostname and the interfaces' up/down flags can only be seen from inside the namespaces
anyway, and entering them needs CAP_SYS_ADMIN.

So, when someone is stepping, init looks at itself and sends what it sees home with each phase
report: a process may always read its own /proc/self, whatever its dumpable flag. That costs the
container nothing — init stays non-dumpable, nothing is opened to anyone, and the report goes only
to the runtime that made init, and on to the caller who asked to step (the container's owner).
The snapshot uses a part of it only where its own reading from outside failed, and says so.

    {"ns": {"mnt": 4026532210, …},   inode of each /proc/self/ns link (None: no such kind)
     "root": [dev, ino],             stat("/"): init's root directory
     "exe": path,                    /proc/self/exe: the interpreter init runs in
     "mountinfo": text,  "status": text,  "uid_map": text,  "gid_map": text,
     "hostname": str,  "domainname": str | None,
     "ifflags": {"lo": 73, …},       SIOCGIFFLAGS of each interface of init's network namespace
     "errors": {part: "why"}}        what init could not read (a seccomp filter may forbid it)

Not the cgroup: /proc/<pid>/cgroup is open to anyone, and names the host's path, where the
limits are read; init's own would name the root of its cgroup namespace ("/").

Files are read through `proc`, init's private procfs handle (mrunc.procfs) once it has one (from
the mount phase on): after pivot_root the container's own /proc is whatever the image and the
mounts made of it, and must not be believed. Before that, /proc is still the runtime's.

Imported before pivot_root, like everything init runs later (init._preload): so only C modules
and what init has imported already.
"""
import _socket
import fcntl
import os
import struct

NS_KINDS = ("mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time")  # as mrunc.snapshot
_FILES = ("mountinfo", "status", "uid_map", "gid_map")
_SIOCGIFFLAGS = 0x8913


def report(proc=None):
    """What init sees of itself now (the dict above); never raises."""
    out, errors = {}, {}

    def part(name, fn):
        try:
            out[name] = fn()
        except Exception as e:  # noqa: BLE001 — a view with a hole still helps; say what is missing
            errors[name] = f"{type(e).__name__}: {e}"

    part("ns", lambda: _namespaces(proc))
    part("root", lambda: list(_root()))
    part("exe", lambda: _in_self(proc, lambda d: os.readlink("exe", dir_fd=d)))
    for name in _FILES:
        part(name, lambda name=name: _read(proc, f"self/{name}"))
    part("hostname", lambda: os.uname().nodename)
    part("domainname", lambda: _domainname(proc))
    part("ifflags", lambda: if_flags(interfaces(_read(proc, "self/net/dev"))))
    if errors:
        out["errors"] = errors
    return out


def _read(proc, rel):
    fd = proc.open(rel) if proc is not None else os.open(f"/proc/{rel}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            data = os.read(fd, 65536)
            if not data:
                return b"".join(chunks).decode("utf-8", "surrogateescape")
            chunks.append(data)
    finally:
        os.close(fd)


def _in_self(proc, fn):
    """fn(fd of our /proc/self directory)."""
    if proc is not None:
        d = proc.open("self", os.O_PATH | os.O_DIRECTORY)
    else:
        d = os.open("/proc/self", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return fn(d)
    finally:
        os.close(d)


def _namespaces(proc):
    """{kind: inode}: a namespace link reads "pid:[4026531836]"; a kind this kernel lacks, None."""
    def read(d):
        out = {}
        for kind in NS_KINDS:
            try:
                link = os.readlink(f"ns/{kind}", dir_fd=d)
            except FileNotFoundError:
                out[kind] = None
                continue
            out[kind] = int(link[link.index("[") + 1:-1])
        return out
    return _in_self(proc, read)


def _root():
    """(device, inode) of our root directory: what stat(/proc/<pid>/root) gives from outside."""
    st = os.stat("/")
    return st.st_dev, st.st_ino


def _domainname(proc):
    name = _read(proc, "sys/kernel/domainname").strip()
    return None if name in ("", "(none)") else name


def interfaces(net_dev):
    """The interface names in a /proc/<pid>/net/dev text (two header lines, then "name: counters")."""
    return [line.partition(":")[0].strip() for line in net_dev.splitlines()[2:]]


def if_flags(names):
    """{interface: flags} of the interfaces `names` of the caller's network namespace (flag 1:
    up, 8: loopback); the kernel answers SIOCGIFFLAGS only for the asker's own namespace."""
    out = {}
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        for name in names:
            req = struct.pack("16sH14x", name.encode()[:15], 0)
            try:
                out[name] = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
            except OSError:
                pass
    finally:
        s.close()
    return out
