"""Snapshots: what a process looks like from outside, and what changed between two looks.

A container is an ordinary process; everything that makes it a container is visible in /proc from
the host. `take(pid)` reads it all into plain frozen data, `diff(before, after)` says what changed,
and `Diff.summary()` says it in words. The stepper takes one snapshot of the paused init process
after every phase, so the diff of two snapshots is exactly what that phase did.

Where each part comes from (all readable by root from outside, without entering the container):

  namespaces   /proc/<pid>/ns/<kind> are links named like "pid:[4026532210]". The number is the
               namespace's inode: two processes are in the same namespace iff the numbers match.
               "Host" means the caller (or `host_pid`).
  mounts       /proc/<pid>/mountinfo: one line per mount of the process's mount namespace, paths as
               seen from the process's root (mounts outside its root are not listed — after
               pivot_root the host's mounts vanish from it). Each line has an id and a parent id: a
               tree. "shared:N" / "master:N" / "unbindable" (or nothing: private) is propagation.
  root         stat(/proc/<pid>/root) gives the (device, inode) of the process's root directory;
               compare with the host's. The mount at "/" in its mountinfo tells which directory of
               which filesystem it is.
  cgroup       /proc/<pid>/cgroup (paths relative to *our* cgroup namespace, so the host's path even
               after the container unshared its own); the files live where the host mounted the
               hierarchies (found in the host's mountinfo): v2 memory.max, v1 memory.limit_in_bytes…
  security     /proc/<pid>/status: CapInh/CapPrm/CapEff/CapBnd/CapAmb (hex masks), NoNewPrivs,
               Seccomp (0 off, 1 strict, 2 filter), Seccomp_filters, Uid/Gid; /proc/<pid>/uid_map.
  network      /proc/<pid>/net/* is the *process's* network namespace: net/dev (interfaces and
               counters), if_inet6 (IPv6 addresses), fib_trie + route (IPv4 addresses), route
               (the IPv4 routing table), arp (the neighbour table: addresses it has resolved).
  processes    /proc/*/stat (the parent pid is field 4) gives the tree under the pid.

Two things only a process *inside* a namespace can see: the UTS hostname (uname() answers for the
caller's UTS namespace; no /proc file shows another's) and interface up/down flags (an ioctl on a
socket, which belongs to the caller's network namespace). For those a short-lived *thread* calls
setns(2) into the container's UTS/net namespace, reads, and exits. A thread, not a process: setns
of UTS and net namespaces is per thread (only user and mount namespaces need a single-threaded
caller), so nothing forks — the Jupyter kernel must never fork — and it costs ~0.1 ms instead of
~3 ms for `nsenter … hostname`. Entering needs CAP_SYS_ADMIN. Without it (rootless), the hostname
of a container with its own user namespace is read by `nsenter --user --uts` (the user namespace
can only be entered by a single-threaded process); what stays unreadable is None, and `notes`
says why.

**A process that is not dumpable** (the runtime's init, until it execs the program: see
mrunc.process.selfview) keeps /proc/<pid>/ns/*, root and exe closed to a caller without
CAP_SYS_PTRACE — a student without root sees no namespace at all. While stepping, init reports its
own view of itself at every pause; `take(pid, view=…)` uses it for each part it could not read
from outside (the same data, read from the other side), and a note says which.

A snapshot never raises for a process that exits under it: every part is read on its own, and
what failed is named in `error` (the rest of the snapshot is still good).
"""
from __future__ import annotations

import dataclasses
import errno
import functools
import os
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from mrunc.cgroups import usage
from mrunc.cgroups.fs import unescape  # mountinfo's \ooo escapes, read the same way everywhere
from mrunc.process.selfview import NS_KINDS, if_flags, interfaces

__all__ = ["take", "diff", "read_cgroup", "parse_mountinfo", "parse_routes", "parse_arp",
           "look_inside", "human_bytes", "Snapshot", "Diff", "Namespace", "Mount", "Root", "Cgroup",
           "Security", "Interface", "Route", "Neighbour", "Proc",
           "Change", "CapChange", "NS_KINDS", "NS_MEANING", "CAP_SETS"]

# What a namespace of its own gives a process (the teaching line next to each row).
NS_MEANING = {
    "mnt": "its own mount table",
    "uts": "its own hostname",
    "ipc": "its own System V IPC and POSIX message queues",
    "pid": "its own process numbers (it is PID 1 inside)",
    "net": "its own network stack: interfaces, addresses, routes, ports",
    "user": "its own user and group ids",
    "cgroup": "its own cgroup appears as / inside",
    "time": "its own boot and monotonic clocks",
}
CAP_SETS = ("inheritable", "permitted", "effective", "bounding", "ambient")
_STATUS_CAPS = {"CapInh": "inheritable", "CapPrm": "permitted", "CapEff": "effective",
                "CapBnd": "bounding", "CapAmb": "ambient"}
SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}


# ---- the data ------------------------------------------------------------------------------------

def _freeze(v):
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


def _thaw(v):
    if isinstance(v, (list, tuple)):
        return [_thaw(x) for x in v]
    if isinstance(v, dict):
        return {k: _thaw(x) for k, x in v.items()}
    return v


class _Data:
    """Frozen records that round-trip through JSON: to_dict() / from_dict().

    `_nested` names the fields holding other records: {"field": Cls} or {"field": [Cls]} (a tuple).
    """
    _nested: ClassVar[dict] = {}

    def to_dict(self) -> dict:
        """Plain dicts, lists, str, int, float, bool and None: what json.loads gives back."""
        return _thaw(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict):
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            v, sub = d[f.name], cls._nested.get(f.name)
            if v is None or sub is None:
                kw[f.name] = _freeze(v)
            elif isinstance(sub, list):
                kw[f.name] = tuple(sub[0].from_dict(x) for x in v)
            else:
                kw[f.name] = sub.from_dict(v)
        return cls(**kw)


@dataclass(frozen=True)
class Namespace(_Data):
    kind: str                   # mnt, uts, ipc, pid, net, user, cgroup, time
    inode: int | None           # None: the kernel has no such namespace type, or unreadable
    host_inode: int | None

    @property
    def isolated(self) -> bool | None:
        if self.inode is None or self.host_inode is None:
            return None
        return self.inode != self.host_inode


@dataclass(frozen=True)
class Mount(_Data):
    id: int
    parent: int
    dev: str                    # "major:minor" of the filesystem
    root: str                   # which directory of that filesystem is mounted here ("/" unless a bind)
    mount_point: str            # as seen from the process's root
    options: tuple[str, ...]    # per-mount: rw/ro, nosuid, nodev, noexec, relatime…
    propagation: tuple[str, ...]  # shared:N, master:N, propagate_from:N, unbindable; () = private
    fstype: str
    source: str
    super_options: tuple[str, ...]  # of the filesystem (superblock)

    @property
    def propagation_mode(self) -> str:
        tags = [p.split(":")[0] for p in self.propagation]
        if "unbindable" in tags:
            return "unbindable"
        mode = [m for m, t in (("shared", "shared"), ("slave", "master")) if t in tags]
        return "+".join(mode) or "private"

    @property
    def what(self):
        """What is mounted: the filesystem, which directory of it, from what source."""
        return (self.dev, self.root, self.fstype, self.source)

    @property
    def key(self):
        """Identity across mount namespaces, where ids mean nothing: what, and where."""
        return (self.mount_point, self.root, self.fstype, self.source)

    @property
    def readonly(self) -> bool:
        return "ro" in self.options

    def describe(self) -> str:
        return f"{self.fstype} on {self.mount_point}"


@dataclass(frozen=True)
class Root(_Data):
    dev: int
    ino: int
    host_dev: int | None
    host_ino: int | None
    fs_root: str | None = None  # the mount at "/": its directory within its filesystem…
    source: str | None = None   # …its source (device) and type
    fstype: str | None = None

    @property
    def is_host(self) -> bool:
        return (self.dev, self.ino) == (self.host_dev, self.host_ino)

    def describe(self) -> str:
        if self.is_host:
            return "the host's /"
        return self.fs_root if self.fs_root and self.fs_root != "/" else \
            f"{self.fstype or '?'} {self.source or ''}".strip()


@dataclass(frozen=True)
class Cgroup(_Data):
    version: str                        # v1, v2, hybrid (v1 controllers + a v2 tree)
    path: str                           # the cgroup the limits come from (v2's, or v1 memory's)
    paths: tuple[tuple[str, str], ...]  # (controllers, path) per line of /proc/<pid>/cgroup
    memory_current: int | None = None   # bytes
    memory_peak: int | None = None
    memory_limit: int | None = None     # None = unlimited
    oom_kills: int | None = None
    pids_current: int | None = None
    pids_limit: int | None = None
    cpu_usage_usec: int | None = None   # total CPU time used
    cpu_quota_usec: int | None = None   # per period; None = unlimited
    cpu_period_usec: int | None = None
    cpu_weight: int | None = None       # v2 cpu.weight, or v1 cpu.shares

    @property
    def cpus(self) -> float | None:
        """The CPU limit in CPUs (quota / period), None if unlimited."""
        if self.cpu_quota_usec is None or not self.cpu_period_usec:
            return None
        return self.cpu_quota_usec / self.cpu_period_usec


@dataclass(frozen=True)
class Security(_Data):
    uid: tuple[int, ...]                # real, effective, saved, filesystem
    gid: tuple[int, ...]
    groups: tuple[int, ...]
    inheritable: tuple[str, ...]
    permitted: tuple[str, ...]
    effective: tuple[str, ...]
    bounding: tuple[str, ...]
    ambient: tuple[str, ...]
    no_new_privs: bool
    seccomp: int                        # 0 disabled, 1 strict, 2 filter
    seccomp_filters: int | None
    uid_map: tuple[tuple[int, int, int], ...] = ()   # (inside, outside, count) as seen by us
    gid_map: tuple[tuple[int, int, int], ...] = ()

    def caps(self, which: str) -> tuple[str, ...]:
        return getattr(self, which)

    @property
    def seccomp_mode(self) -> str:
        return SECCOMP_MODES.get(self.seccomp, str(self.seccomp))


@dataclass(frozen=True)
class Interface(_Data):
    name: str
    up: bool | None                     # None: could not enter the namespace to ask
    loopback: bool | None
    addresses: tuple[str, ...]          # "127.0.0.1/8", "::1/128"
    rx_bytes: int = 0
    tx_bytes: int = 0


@dataclass(frozen=True)
class Route(_Data):
    dst: str                            # "default" or "10.89.0.0/24"
    gateway: str | None                 # None: on the link itself
    dev: str

    def describe(self) -> str:
        return f"{self.dst}" + (f" via {self.gateway}" if self.gateway else "") + f" dev {self.dev}"


@dataclass(frozen=True)
class Neighbour(_Data):
    address: str
    mac: str
    dev: str


@dataclass(frozen=True)
class Proc(_Data):
    pid: int
    ppid: int
    comm: str
    state: str
    cmdline: tuple[str, ...]
    ns_pid: int | None = None           # its pid inside its own pid namespace
    exe: str | None = None
    start_time: int | None = None       # clock ticks after boot: with pid, identifies a process
    threads: int | None = None
    children: tuple[Proc, ...] = ()

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


Proc._nested = {"children": [Proc]}


@dataclass(frozen=True)
class Snapshot(_Data):
    pid: int
    taken_at: float = 0.0               # time.time()
    ms: float = 0.0                     # how long taking it took
    process: Proc | None = None         # the process and the tree under it
    namespaces: tuple[Namespace, ...] = ()
    root: Root | None = None
    mounts: tuple[Mount, ...] = ()
    cgroup: Cgroup | None = None
    security: Security | None = None
    hostname: str | None = None
    domainname: str | None = None
    network: tuple[Interface, ...] = ()
    notes: tuple[str, ...] = ()         # what could not be read, and why (not an error)
    error: str | None = None            # what failed (the process exited?); the rest is valid
    routes: tuple[Route, ...] = ()      # IPv4
    neighbours: tuple[Neighbour, ...] = ()

    _nested: ClassVar[dict] = {"process": Proc, "namespaces": [Namespace], "root": Root,
                               "mounts": [Mount], "cgroup": Cgroup, "security": Security,
                               "network": [Interface], "routes": [Route],
                               "neighbours": [Neighbour]}

    def ns(self, kind: str) -> Namespace | None:
        return next((n for n in self.namespaces if n.kind == kind), None)

    def mount_at(self, path: str) -> Mount | None:
        """The top mount at `path` (the last one mounted there)."""
        return next((m for m in reversed(self.mounts) if m.mount_point == path), None)

    def interface(self, name: str) -> Interface | None:
        return next((i for i in self.network if i.name == name), None)


# ---- reading /proc -------------------------------------------------------------------------------

def _read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def _read_or(path, default=None):
    try:
        return _read(path)
    except OSError:
        return default


def parse_mountinfo(text: str) -> tuple[Mount, ...]:
    """`36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`."""
    out = []
    for line in text.splitlines():
        pre, sep, post = line.partition(" - ")
        f, tail = pre.split(" "), post.split(" ")
        if not sep or len(f) < 6 or len(tail) < 2:
            continue
        out.append(Mount(id=int(f[0]), parent=int(f[1]), dev=f[2], root=unescape(f[3]),
                         mount_point=unescape(f[4]), options=tuple(f[5].split(",")),
                         propagation=tuple(f[6:]), fstype=tail[0], source=unescape(tail[1]),
                         super_options=tuple(tail[2].split(",")) if len(tail) > 2 else ()))
    return tuple(out)


def _ns_inode(link):
    try:
        target = os.readlink(link)          # "pid:[4026531836]"
    except FileNotFoundError:
        return None
    return int(target[target.index("[") + 1:-1])


def _status(text):
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def _ints(s):
    return tuple(int(x) for x in s.split())


def _id_map(text):
    return tuple(_ints(line) for line in (text or "").splitlines() if line.strip())


def _stat(text):
    """/proc/<pid>/stat -> (comm, state, ppid, start_time). comm may hold spaces and ')'."""
    head, _, rest = text.rpartition(")")
    comm = head.split("(", 1)[1]
    f = rest.split()
    return comm, f[0], int(f[1]), int(f[19])


def _cap_names(mask):
    from mrunc.security.capabilities import cap_names
    return tuple(cap_names(mask))


def _security(status, uid_map, gid_map):
    caps = {name: _cap_names(int(status[key], 16)) for key, name in _STATUS_CAPS.items()
            if key in status}
    filters = status.get("Seccomp_filters")
    return Security(uid=_ints(status.get("Uid", "")), gid=_ints(status.get("Gid", "")),
                    groups=_ints(status.get("Groups", "")), no_new_privs=status.get("NoNewPrivs") == "1",
                    seccomp=int(status.get("Seccomp", "0")),
                    seccomp_filters=int(filters) if filters is not None else None,
                    uid_map=_id_map(uid_map), gid_map=_id_map(gid_map),
                    **{name: caps.get(name, ()) for name in CAP_SETS})


def _process_tree(pid, proc):
    """The process and every descendant. Who is whose child comes from the kernel's own lists,
    /proc/<n>/task/<t>/children (one per thread: the children that thread made); where those
    cannot be read (a kernel without CONFIG_PROC_CHILDREN, a /proc made for a test), from the
    parent pid in every process's stat — reading the whole host's /proc, ~30x more files."""
    try:
        mine = _proc_entry(pid, proc)
    except (OSError, IndexError, ValueError):
        raise ProcessLookupError(f"process {pid} has exited") from None
    try:
        _child_pids(pid, proc)
        children = _children_listed(proc)
    except OSError:
        children = _children_by_parent(proc)

    def build(entry, depth=0):
        p, comm, state, ppid, start = entry
        cmd = _read_or(f"{proc}/{p}/cmdline", "")
        kids = tuple(build(k, depth + 1) for k in sorted(children(p))) if depth < 20 else ()
        return Proc(pid=p, ppid=ppid, comm=comm, state=state, start_time=start,
                    cmdline=tuple(cmd.split("\0")[:-1]) if cmd else (), children=kids)
    return build(mine)


def _proc_entry(pid, proc):
    """(pid, comm, state, ppid, start time) from /proc/<pid>/stat."""
    return (pid, *_stat(_read(f"{proc}/{pid}/stat")))


def _child_pids(pid, proc):
    """The pids of `pid`'s children: every thread's `children` list (OSError if unreadable)."""
    task = f"{proc}/{pid}/task"
    return {int(c) for t in os.listdir(task) for c in _read(f"{task}/{t}/children").split()}


def _children_listed(proc):
    def children(p):
        try:
            pids = _child_pids(p, proc)
        except OSError:
            return []                       # exited while we looked
        out = []
        for c in pids:
            try:
                out.append(_proc_entry(c, proc))
            except (OSError, IndexError, ValueError):
                continue
        return out
    return children


def _children_by_parent(proc):
    kids = {}
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        try:
            entry = _proc_entry(int(name), proc)
        except (OSError, IndexError, ValueError):
            continue                        # exited while we looked
        kids.setdefault(entry[3], []).append(entry)
    return lambda p: kids.get(p, ())


def read_cgroup(pid, proc="/proc", host="self", fsroot="/", manager=None) -> Cgroup:
    """The cgroup of `pid` with its limits and usage, read where the host mounted the hierarchies."""
    lines = [ln.split(":", 2) for ln in _read(f"{proc}/{pid}/cgroup").splitlines() if ln.count(":") >= 2]
    paths = tuple((ctrl or "(v2)", path) for _hier, ctrl, path in lines)
    host_mounts = [m for m in parse_mountinfo(_read(f"{proc}/{host}/mountinfo"))
                   if m.fstype in ("cgroup", "cgroup2")]
    v1 = any(ctrl for _h, ctrl, _p in lines)
    v2 = any(h == "0" and not ctrl for h, ctrl, _p in lines)
    version = "hybrid" if v1 and v2 else "v1" if v1 else "v2"

    def where(ctrl, path):
        for m in host_mounts:
            if (m.fstype == "cgroup2") if not ctrl else \
                    (m.fstype == "cgroup" and ctrl in m.super_options):
                rel = path[len(m.root):] if m.root != "/" and path.startswith(m.root) else path
                return os.path.join(fsroot, m.mount_point.lstrip("/"), rel.lstrip("/"))
        return None

    own = {}
    for _h, ctrl, path in lines:
        for c in ctrl.split(",") if ctrl else [""]:
            own[c] = path
    if version == "v2" or (version == "hybrid" and "memory" not in own):
        main = own.get("", "/")
    else:
        main = own.get("memory", next(iter(own.values()), "/"))

    # The one reader of usage files (mrunc.cgroups.usage), over the directories found above.
    files = usage.Files({c: where(c, p) for c, p in own.items()}, version == "v2")
    numbers = [usage.summary(files)]
    if manager is not None:                 # the manager knows its cgroup even if the pid is gone
        numbers.append(manager.stats())
    stats = {}
    for s in numbers:                       # the manager's, where known, over the pid's
        for key, value in (("memory_current", s["memory"]["current"]), ("memory_peak", s["memory"]["peak"]),
                           ("memory_limit", s["memory"]["limit"]), ("oom_kills", s["memory"]["oom_kills"]),
                           ("pids_current", s["pids"]["current"]), ("pids_limit", s["pids"]["limit"]),
                           ("cpu_usage_usec", s["cpu"]["usage_usec"])):
            if value is not None or key not in stats:
                stats[key] = value
    quota, period, weight = usage.cpu_limit(files)
    return Cgroup(version=version, path=main, paths=paths, cpu_quota_usec=quota,
                  cpu_period_usec=period, cpu_weight=weight, **stats)


def _ipv4(hex_le):
    """/proc/net/route writes addresses as little-endian hex."""
    return struct.unpack("!I", struct.pack("<I", int(hex_le, 16)))[0]


def _v4_addresses(fib_trie, route):
    """{interface: ["a.b.c.d/len"]} from fib_trie's local /32 entries, placed by the routes."""
    local, cur = [], None
    for line in (fib_trie or "").splitlines():
        s = line.strip()
        if s.startswith("|--"):
            cur = s[3:].strip()
        elif s.startswith("/32 host LOCAL") and cur and cur not in local:
            local.append(cur)
    nets = []                               # (network, mask, iface), longest prefix first
    for line in (route or "").splitlines()[1:]:
        f = line.split()
        if len(f) >= 8 and int(f[7], 16):
            nets.append((_ipv4(f[1]), _ipv4(f[7]), f[0]))
    nets.sort(key=lambda n: -n[1])
    out = {}
    for a in local:
        n = struct.unpack("!I", socket.inet_aton(a))[0]
        if a.startswith("127."):
            out.setdefault("lo", []).append(f"{a}/8")
            continue
        for net, mask, iface in nets:
            if n & mask == net:
                out.setdefault(iface, []).append(f"{a}/{bin(mask).count('1')}")
                break
        else:
            out.setdefault("?", []).append(f"{a}/32")
    return out


def parse_routes(route) -> tuple[Route, ...]:
    """/proc/<pid>/net/route: Iface Destination Gateway Flags … Mask …, addresses in little-endian
    hex; flag 0x2 (RTF_GATEWAY) says the gateway column counts."""
    out = []
    for line in (route or "").splitlines()[1:]:
        f = line.split()
        if len(f) < 8:
            continue
        dst, mask = _ipv4(f[1]), _ipv4(f[7])
        via = socket.inet_ntoa(struct.pack("!I", _ipv4(f[2]))) if int(f[3], 16) & 2 else None
        out.append(Route("default" if mask == 0 else
                         f"{socket.inet_ntoa(struct.pack('!I', dst))}/{bin(mask).count('1')}", via, f[0]))
    return tuple(out)


def parse_arp(arp) -> tuple[Neighbour, ...]:
    """/proc/<pid>/net/arp: IP address, HW type, Flags, HW address, Mask, Device; flags 0x2 is a
    complete entry (an incomplete one is still being asked for)."""
    out = []
    for line in (arp or "").splitlines()[1:]:
        f = line.split()
        if len(f) >= 6 and int(f[2], 16) & 2:
            out.append(Neighbour(f[0], f[3], f[5]))
    return tuple(out)


def _network(pid, proc, flags):
    base = f"{proc}/{pid}/net"
    dev = _read(f"{base}/dev")
    v4 = _v4_addresses(_read_or(f"{base}/fib_trie"), _read_or(f"{base}/route"))
    v6 = {}
    for line in (_read_or(f"{base}/if_inet6") or "").splitlines():
        f = line.split()
        if len(f) == 6:
            v6.setdefault(f[5], []).append(
                f"{socket.inet_ntop(socket.AF_INET6, bytes.fromhex(f[0]))}/{int(f[2], 16)}")
    out = []
    for line in dev.splitlines()[2:]:
        name, _, counters = line.partition(":")
        name, c = name.strip(), counters.split()
        fl = (flags or {}).get(name)
        out.append(Interface(name=name, up=None if fl is None else bool(fl & 1),
                             loopback=(name == "lo") if fl is None else bool(fl & 8),
                             addresses=tuple(v4.get(name, []) + v6.get(name, [])),
                             rx_bytes=int(c[0]), tx_bytes=int(c[8])))
    return tuple(out)


# ---- what only a thread inside the namespaces can see ----------------------------------------------

def look_inside(pid, enter, ifnames, proc="/proc"):
    """Hostname, domainname and interface flags as the process sees them.

    `enter` lists the namespaces ("uts", "net") the process does not share with us; for those a
    fresh thread setns()es in first (see the module doc). Returns a dict, with "error" when
    something could not be read.

    Without CAP_SYS_ADMIN (a rootless caller) setns is refused. If the container has a user
    namespace of its own, owned by the caller, entering *that* first gives the rights to enter the
    rest — but setns into a user namespace needs a single-threaded process, so that one is done by
    `nsenter --user --uts` in a subprocess (~3 ms; fork+exec, not a fork of this process).
    """
    out = {}

    def work():
        try:
            if enter:
                from mrunc.linux import CLONE_NEWNET, CLONE_NEWUTS, Syscalls
                sc = Syscalls()
                for kind in enter:
                    path = f"{proc}/{pid}/ns/{kind}"
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        sc.setns(fd, {"uts": CLONE_NEWUTS, "net": CLONE_NEWNET}[kind], path)
                    finally:
                        os.close(fd)
            out["hostname"] = os.uname().nodename
            dom = (_read_or("/proc/sys/kernel/domainname") or "").strip()
            out["domainname"] = None if dom in ("", "(none)") else dom   # "(none)": never set
            out["flags"] = if_flags(ifnames)
        except OSError as e:
            out["error"] = f"{e.strerror or e}"
            if e.errno == errno.EPERM:
                out["error"] = "entering its namespaces needs CAP_SYS_ADMIN (run as root)"

    if not enter:
        work()
        return out
    t = threading.Thread(target=work, name="mrunc-snapshot-setns", daemon=True)
    t.start()
    t.join(5)
    own_userns = _ns_inode(f"{proc}/{pid}/ns/user") != _ns_inode(f"{proc}/self/ns/user")
    if "error" in out and "uts" in enter and own_userns:
        name = _hostname_through_userns(pid)
        if name is not None:
            out["hostname"] = name
            out["error"] = (f"interface states: {out['error']} "
                            f"(the hostname was read through its user namespace)")
    return out


def _hostname_through_userns(pid):
    import shutil
    import subprocess
    nsenter = shutil.which("nsenter")
    if not nsenter:
        return None
    try:
        r = subprocess.run([nsenter, "--target", str(pid), "--user", "--uts", "--preserve-credentials",
                            "uname", "-n"], capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


# ---- take ----------------------------------------------------------------------------------------

def _gone(base):
    """Exited: its /proc directory is gone, or only a zombie is left (nothing to read in it)."""
    try:
        return _stat(_read(f"{base}/stat"))[1] in ("Z", "X")
    except (OSError, IndexError, ValueError):
        return True


def take(pid: int, *, host_pid: int | None = None, cgroup_manager=None, proc: str = "/proc",
         fsroot: str = "/", inside=look_inside, view: dict | None = None) -> Snapshot:
    """A Snapshot of process `pid`, compared with the host (the caller, or `host_pid`).

    `cgroup_manager` (a mrunc.cgroups manager) supplies usage numbers via its `stats()`. `view`
    is what the process reported of itself (mrunc.process.selfview: the stepper's paused init):
    each part that cannot be read from outside is taken from it, and a note says which. `proc`,
    `fsroot` (where the host's cgroup mount points are) and `inside` exist for tests.
    """
    t0 = time.perf_counter()
    host = "self" if host_pid is None else str(host_pid)
    base = f"{proc}/{pid}"
    parts, errors, notes, by_init = {}, [], [], []

    def part(name, fn, own=None):
        try:
            parts[name] = fn()
            return
        except Exception as e:              # a live monitor must never see a traceback
            error = (f"{name}: process {pid} has exited" if _gone(base) else
                     f"{name}: {type(e).__name__}: {e}")
        if own is not None and view is not None:
            try:                            # what the process told us of itself, if it did
                parts[name] = own()
                by_init.append(name)
                return
            except (KeyError, TypeError, ValueError):
                pass
        errors.append(error)

    if not os.path.isdir(base):
        return Snapshot(pid=pid, taken_at=time.time(), error=f"no process {pid}")

    def process():
        status = _status(_read(f"{base}/status"))
        tree = _process_tree(pid, proc)
        ns_pids = _ints(status.get("NSpid", ""))
        try:
            exe = os.readlink(f"{base}/exe")
        except OSError:
            exe = None                      # a kernel thread, or no permission
            if view is not None and view.get("exe"):
                exe = view["exe"]
                by_init.append("exe")
        parts["status"] = status
        return dataclasses.replace(tree, ns_pid=ns_pids[-1] if ns_pids else None, exe=exe,
                                   threads=int(status.get("Threads", 0)) or None)

    def namespaces(inode):
        out = []
        for kind in NS_KINDS:
            ino = inode(kind)
            if ino is None and not os.path.exists(base):
                raise ProcessLookupError(pid)
            out.append(Namespace(kind, ino, _ns_inode(f"{proc}/{host}/ns/{kind}")))
        return tuple(out)

    def root(dev_ino):
        st, hst = dev_ino(), os.stat(f"{proc}/{host}/root")
        top = next((m for m in reversed(parts.get("mounts", ())) if m.mount_point == "/"), None)
        return Root(st[0], st[1], hst.st_dev, hst.st_ino, top and top.root,
                    top and top.source, top and top.fstype)

    def outside_root():
        st = os.stat(f"{base}/root")
        return st.st_dev, st.st_ino

    part("process", process)
    part("namespaces", lambda: namespaces(lambda kind: _ns_inode(f"{base}/ns/{kind}")),
         own=lambda: namespaces(view["ns"].__getitem__))
    part("mounts", lambda: parse_mountinfo(_read(f"{base}/mountinfo")),
         own=lambda: parse_mountinfo(view["mountinfo"]))
    part("root", lambda: root(outside_root), own=lambda: root(lambda: tuple(view["root"])))
    part("cgroup", lambda: read_cgroup(pid, proc, host, fsroot, cgroup_manager))
    if "status" not in parts and view is not None and "status" in view:
        parts["status"] = _status(view["status"])
        by_init.append("status")
    if "status" in parts:
        maps = {m: _read_or(f"{base}/{m}") for m in ("uid_map", "gid_map")}
        for m in maps:
            if maps[m] is None and view is not None and view.get(m) is not None:
                maps[m] = view[m]
        part("security", lambda: _security(parts["status"], maps["uid_map"], maps["gid_map"]))
    part("ifnames", lambda: interfaces(_read(f"{base}/net/dev")))

    nss = {n.kind: n for n in parts.get("namespaces", ())}
    enter = [k for k in ("uts", "net") if k in nss and nss[k].isolated]
    if "namespaces" not in parts:
        # Not knowing its namespaces, we cannot know whose hostname uname() would give: never
        # show ours as its.
        seen = {"error": "its namespaces could not be read"}
    else:
        try:
            seen = inside(pid, enter, parts.get("ifnames", []), proc) if os.path.isdir(base) else {}
        except Exception as e:              # same: say it, don't raise it
            seen = {"error": str(e)}
    if "error" in seen and view is not None and "hostname" in view:
        seen = {"hostname": view["hostname"], "domainname": view.get("domainname"),
                "flags": view.get("ifflags")}
        by_init.append("hostname and interface states")
    if "error" in seen:
        notes.append(f"not everything inside could be read: {seen['error']}")
    if by_init:
        notes.append(f"read by the process itself ({', '.join(by_init)}): from outside, only "
                     "CAP_SYS_PTRACE can read a process that is not dumpable, as the runtime's "
                     "init is until it execs the program")
    part("network", lambda: _network(pid, proc, seen.get("flags")))
    part("routes", lambda: parse_routes(_read_or(f"{base}/net/route")))      # no IPv4: none
    part("neighbours", lambda: parse_arp(_read_or(f"{base}/net/arp")))

    return Snapshot(pid=pid, taken_at=time.time(), ms=round((time.perf_counter() - t0) * 1000, 3),
                    process=parts.get("process"), namespaces=parts.get("namespaces", ()),
                    root=parts.get("root"), mounts=parts.get("mounts", ()), cgroup=parts.get("cgroup"),
                    security=parts.get("security"), hostname=seen.get("hostname"),
                    domainname=seen.get("domainname"), network=parts.get("network", ()),
                    routes=parts.get("routes", ()), neighbours=parts.get("neighbours", ()),
                    notes=tuple(notes), error="; ".join(errors) or None)


# ---- diff ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change(_Data):
    what: str
    before: Any
    after: Any


@dataclass(frozen=True)
class CapChange(_Data):
    set: str
    dropped: tuple[str, ...]
    added: tuple[str, ...]
    kept: int


@dataclass(frozen=True)
class Diff(_Data):
    namespaces: tuple[Change, ...] = ()         # what=kind, before/after = inodes
    isolated: tuple[str, ...] = ()              # kinds newly isolated from the host
    mount_ns_changed: bool = False              # mounts were matched by what they are, not by id
    mounts_added: tuple[Mount, ...] = ()
    mounts_removed: tuple[Mount, ...] = ()
    mounts_changed: tuple[Change, ...] = ()     # options or propagation; before/after are Mounts
    mounts_moved: tuple[Change, ...] = ()       # same mount, new mount point (pivot_root, MS_MOVE)
    mounts_kept: int = 0
    root: Change | None = None                  # before/after are Roots
    cgroup: tuple[Change, ...] = ()             # path, memory_limit, pids_limit, cpus, cpu_weight
    caps: tuple[CapChange, ...] = ()
    security: tuple[Change, ...] = ()           # no_new_privs, seccomp, seccomp_filters, uid, gid, maps
    uts: tuple[Change, ...] = ()                # hostname, domainname
    net_ns_changed: bool = False
    interfaces: tuple[Interface, ...] = ()      # all of them, when the network namespace changed
    interfaces_added: tuple[Interface, ...] = ()
    interfaces_removed: tuple[Interface, ...] = ()
    interfaces_changed: tuple[Change, ...] = ()
    process: tuple[Change, ...] = ()            # pid, comm, exe, cmdline
    routes_added: tuple[Route, ...] = ()
    routes_removed: tuple[Route, ...] = ()

    @property
    def exec(self) -> Change | None:
        """Same process, new program: what execve did (comm, else exe)."""
        if any(c.what == "pid" for c in self.process):
            return None
        return next((c for c in self.process if c.what in ("comm", "exe")), None)

    @property
    def added_ids(self) -> set:
        return {m.id for m in self.mounts_added}

    @property
    def changed_ids(self) -> set:
        return {c.after.id for c in self.mounts_changed}

    @property
    def moved_ids(self) -> dict:
        return {c.after.id: c.before.mount_point for c in self.mounts_moved}

    def dropped(self, which: str) -> tuple[str, ...]:
        return next((c.dropped for c in self.caps if c.set == which), ())

    def added_caps(self, which: str) -> tuple[str, ...]:
        return next((c.added for c in self.caps if c.set == which), ())

    def __bool__(self):
        return bool(self._lines)

    def summary(self) -> list[str]:
        return list(self._lines)

    @functools.cached_property
    def _lines(self) -> tuple[str, ...]:
        # A Diff is frozen: its summary is made once. The pages ask `if diff` per mount drawn.
        return tuple(_summary(self))


def _changes(pairs):
    return tuple(Change(what, a, b) for what, a, b in pairs if a != b)


def _match_mounts(before, after, by_id):
    """(added, removed, [(old, new)] pairs of the same mount).

    In one mount namespace a mount keeps its id when it moves (pivot_root), but a freed id is
    reused at once by the next mount: the same id is the same mount only if what it mounts matches.
    Across namespaces ids mean nothing; match by what and where."""
    if by_id:
        old = {m.id: m for m in before}
        pairs = [(old[m.id], m) for m in after if m.id in old and old[m.id].what == m.what]
        kept_old, kept_new = {b.id for b, _ in pairs}, {a.id for _, a in pairs}
        return ([m for m in after if m.id not in kept_new], [m for m in before if m.id not in kept_old],
                pairs)
    pool = {}
    for m in before:
        pool.setdefault(m.key, []).append(m)
    added, pairs = [], []
    for m in after:
        if pool.get(m.key):
            pairs.append((pool[m.key].pop(0), m))
        else:
            added.append(m)
    return added, [m for ms in pool.values() for m in ms], pairs


def diff(before: Snapshot, after: Snapshot) -> Diff:
    """What changed from `before` to `after` (two snapshots of the same container, in order)."""
    d = {}
    ns_b = {n.kind: n for n in before.namespaces}
    ns = [Change(n.kind, ns_b[n.kind].inode, n.inode) for n in after.namespaces
          if n.kind in ns_b and ns_b[n.kind].inode != n.inode and n.inode is not None]
    d["namespaces"] = tuple(ns)
    d["isolated"] = tuple(c.what for c in ns if after.ns(c.what).isolated and not ns_b[c.what].isolated)

    mnt_b, mnt_a = before.ns("mnt"), after.ns("mnt")
    same_ns = bool(mnt_b and mnt_a and mnt_b.inode == mnt_a.inode)
    if before.mounts or after.mounts:
        added, removed, pairs = _match_mounts(before.mounts, after.mounts, same_ns)
        d["mount_ns_changed"] = not same_ns
        d["mounts_added"], d["mounts_removed"] = tuple(added), tuple(removed)
        d["mounts_moved"] = tuple(Change(b.mount_point, b, a) for b, a in pairs
                                  if b.mount_point != a.mount_point)
        d["mounts_changed"] = tuple(Change(a.mount_point, b, a) for b, a in pairs
                                    if b.options != a.options or b.propagation_mode != a.propagation_mode)
        d["mounts_kept"] = len(pairs)

    if before.root and after.root and (before.root.dev, before.root.ino) != (after.root.dev, after.root.ino):
        d["root"] = Change("root", before.root, after.root)

    cb, ca = before.cgroup, after.cgroup
    if cb and ca:
        d["cgroup"] = _changes([("path", cb.path, ca.path),
                                ("memory_limit", cb.memory_limit, ca.memory_limit),
                                ("pids_limit", cb.pids_limit, ca.pids_limit), ("cpus", cb.cpus, ca.cpus),
                                ("cpu_weight", cb.cpu_weight, ca.cpu_weight)])

    sb, sa = before.security, after.security
    if sb and sa:
        caps = []
        for which in CAP_SETS:
            b, a = sb.caps(which), sa.caps(which)
            if b != a:
                caps.append(CapChange(which, tuple(c for c in b if c not in a),
                                      tuple(c for c in a if c not in b), len(set(a) & set(b))))
        d["caps"] = tuple(caps)
        d["security"] = _changes([("no_new_privs", sb.no_new_privs, sa.no_new_privs),
                                  ("seccomp", sb.seccomp, sa.seccomp),
                                  ("seccomp_filters", sb.seccomp_filters, sa.seccomp_filters),
                                  ("uid", sb.uid, sa.uid), ("gid", sb.gid, sa.gid),
                                  ("groups", sb.groups, sa.groups),
                                  ("uid_map", sb.uid_map, sa.uid_map), ("gid_map", sb.gid_map, sa.gid_map)])

    d["uts"] = _changes([(k, getattr(before, k), getattr(after, k)) for k in ("hostname", "domainname")
                         if getattr(after, k) is not None])

    net_b, net_a = before.ns("net"), after.ns("net")
    d["net_ns_changed"] = bool(net_b and net_a and net_b.inode != net_a.inode)
    if d["net_ns_changed"]:
        d["interfaces"] = after.network
    ib, ia = {i.name: i for i in before.network}, {i.name: i for i in after.network}
    d["interfaces_added"] = tuple(i for n, i in ia.items() if n not in ib)
    d["interfaces_removed"] = tuple(i for n, i in ib.items() if n not in ia)
    # up/down unknown on one side (the namespace could not be entered) is no change
    d["interfaces_changed"] = tuple(Change(n, ib[n], i) for n, i in ia.items() if n in ib and
                                    (ib[n].addresses != i.addresses or None not in (ib[n].up, i.up)
                                     and ib[n].up != i.up))
    d["routes_added"] = tuple(r for r in after.routes if r not in before.routes)
    d["routes_removed"] = tuple(r for r in before.routes if r not in after.routes)

    pb, pa = before.process, after.process
    if pb and pa:
        d["process"] = _changes([("pid", pb.pid, pa.pid), ("comm", pb.comm, pa.comm),
                                 ("exe", pb.exe, pa.exe), ("cmdline", pb.cmdline, pa.cmdline)])
    return Diff(**d)


# ---- words ---------------------------------------------------------------------------------------

def human_bytes(n):
    if n is None:
        return "unlimited"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _few(items, n=5):
    items = list(items)
    more = f", and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _idmap(m):
    return ", ".join(f"{i}→{o}" + (f" (+{c - 1})" if c > 1 else "") for i, o, c in m) or "none"


_LIMIT_WORDS = {"memory_limit": ("memory limit", human_bytes),
                "pids_limit": ("pids limit", lambda v: "unlimited" if v is None else f"{v} processes"),
                "cpus": ("CPU limit", lambda v: "unlimited" if v is None else f"{v:.2f} CPUs"),
                "cpu_weight": ("CPU weight", lambda v: "default" if v is None else str(v))}


def _summary(d: Diff) -> list[str]:
    out = []
    p = {c.what: c for c in d.process}
    if "pid" in p:
        out.append(f"now looking at process {p['pid'].after}"
                   + (f" ({p['comm'].after})" if "comm" in p else "") + f", not {p['pid'].before}")
    elif d.exec:
        ex = p.get("exe")
        out.append(f"the process exec'd a new program: {p['comm'].before if 'comm' in p else ex.before} → "
                   f"{p['comm'].after if 'comm' in p else ex.after}"
                   + (f" ({ex.after})" if ex and ex.after else ""))

    for c in d.namespaces:
        kind = {"mnt": "mount", "net": "network"}.get(c.what, c.what)
        if c.what in d.isolated:
            out.append(f"{kind} namespace is now isolated (inode {c.after}): {NS_MEANING.get(c.what, '')}")
        else:
            out.append(f"{kind} namespace changed (inode {c.before} → {c.after})")

    if d.root:
        out.append(f"root switched (pivot_root): / is now {d.root.after.describe()}, "
                   f"no longer {d.root.before.describe()}")
    if d.mount_ns_changed and d.mounts_kept and not d.mounts_added:
        out.append(f"the new mount namespace starts as a copy: the same {_plural(d.mounts_kept, 'mount')}")
    if d.mounts_added:
        out.append(f"{_plural(len(d.mounts_added), 'mount')} added: "
                   + _few(m.describe() for m in d.mounts_added))
    if d.mounts_moved:
        out.append(f"{_plural(len(d.mounts_moved), 'mount')} now seen from the new root: "
                   + _few(f"{c.before.mount_point} is now {c.after.mount_point}" for c in d.mounts_moved))
    if d.mounts_removed:
        what = "gone with the old root" if d.root else "removed"
        out.append(f"{_plural(len(d.mounts_removed), 'mount')} {what}: "
                   + _few(m.mount_point for m in d.mounts_removed))
    props = Counter((c.before.propagation_mode, c.after.propagation_mode) for c in d.mounts_changed
                    if c.before.propagation_mode != c.after.propagation_mode)
    for (b, a), n in props.items():
        why = ": mount events no longer travel between it and the host" if a == "private" else ""
        out.append(f"{_plural(n, 'mount')} now {a} (was {b}){why}")
    opts = [c for c in d.mounts_changed if c.before.options != c.after.options]
    if opts:
        def delta(c):
            gone = [o for o in c.before.options if o not in c.after.options]
            new = [o for o in c.after.options if o not in c.before.options]
            return f"{c.after.mount_point} ({', '.join(['+' + o for o in new] + ['-' + o for o in gone])})"
        out.append(f"options changed on {_plural(len(opts), 'mount')}: " + _few(delta(c) for c in opts))

    for c in d.cgroup:
        if c.what == "path":
            out.append(f"moved into cgroup {c.after} (was {c.before})")
        else:
            word, fmt = _LIMIT_WORDS[c.what]
            verb = "set" if c.before is None else "removed" if c.after is None else "changed"
            out.append(f"{word} {verb}: {fmt(c.after)} (was {fmt(c.before)})")

    same = {}                                   # sets that changed alike are told once
    for c in d.caps:
        same.setdefault((c.dropped, c.added, c.kept), []).append(c.set)
    for (dropped, added, kept), sets in same.items():
        bits = []
        if dropped:
            bits.append(f"{len(dropped)} dropped ({_few(dropped, 4)})")
        if added:
            bits.append(f"{len(added)} added ({_few(added, 4)})")
        out.append(f"{_few(sets)} capabilities: {', '.join(bits)}; {kept} kept")
    for c in d.security:
        if c.what == "no_new_privs":
            out.append("no_new_privs is now set: execve can never grant privileges again "
                       "(setuid bits and file capabilities are ignored)" if c.after else
                       "no_new_privs is now clear")
        elif c.what == "seccomp":
            out.append(f"seccomp is now in {SECCOMP_MODES.get(c.after, c.after)} mode "
                       f"(was {SECCOMP_MODES.get(c.before, c.before)})")
        elif c.what == "seccomp_filters":
            out.append(f"{_plural(c.after or 0, 'seccomp filter')} installed (was {c.before or 0})")
        elif c.what in ("uid", "gid"):
            out.append(f"{c.what} is now {c.after[1] if len(c.after) > 1 else c.after} "
                       f"(was {c.before[1] if len(c.before) > 1 else c.before})")
        elif c.what == "groups":
            out.append(f"supplementary groups: {list(c.after) or 'none'} (were {list(c.before) or 'none'})")
        else:
            out.append(f"{c.what.replace('_', ' ')} is now {_idmap(c.after)} (was {_idmap(c.before)})")

    for c in d.uts:
        out.append(f"{c.what} is now {c.after!r} (was {c.before!r})" if c.before is not None
                   else f"{c.what} is {c.after!r}")

    def iface(i):
        state = "" if i.up is None else " up" if i.up else " down"
        return f"{i.name}{state}" + (f" {', '.join(i.addresses)}" if i.addresses else "")
    if d.net_ns_changed:
        out.append("its network stack has only: " + (_few(iface(i) for i in d.interfaces) or "no interface")
                   + (f" (the host's {_few(i.name for i in d.interfaces_removed)} are not in it)"
                      if d.interfaces_removed else ""))
    else:
        for i in d.interfaces_added:
            out.append(f"interface {iface(i)} added")
        for i in d.interfaces_removed:
            out.append(f"interface {i.name} removed")
        for c in d.interfaces_changed:
            out.append(f"interface {iface(c.after)} (was {iface(c.before)})")
    if not d.net_ns_changed:
        out += [f"route {r.describe()} added" for r in d.routes_added]
        out += [f"route {r.describe()} removed" for r in d.routes_removed]
    return out
