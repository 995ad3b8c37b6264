"""How much a cgroup uses, and what it may use: one reader of the usage files for every caller.

Three callers want the numbers: `mrunc events` (runc's whole document: events.runc_stats), a
manager's `stats()` (update's error message, the sandbox's monitor) and the stepper's snapshots
(snapshot.read_cgroup, which finds the directories from a pid). They all read through `Files`,
and the everyday numbers come from one table, `summary`:

                 v1 (a directory per controller)               v2 (one directory)
    memory       memory.usage_in_bytes, max_usage_in_bytes,     memory.current, memory.peak,
                 limit_in_bytes; memory.oom_control oom_kill    memory.max; memory.events oom_kill
    cpu          cpuacct.usage (ns)                             cpu.stat usage_usec
    pids         pids.current, pids.max                         the same
    io           blkio.throttle.io_service_bytes_recursive      io.stat rbytes, wbytes
    cpu limit    cpu.cfs_quota_us, cpu.cfs_period_us,           cpu.max "quota period",
                 cpu.shares                                     cpu.weight

"No limit" is written "max" on v2 and as a huge number on v1 (PAGE_COUNTER_MAX pages); both
read as None in `summary`. A file that is missing (controller not there, kernel too old) or
cannot be read is unknown: None, never an error — usage is a report, not a command.
"""

from mrunc.errors import CgroupError

from . import fs

MAX_U64 = (1 << 64) - 1   # what runc reports for "max" (Go's MaxUint64)
UNLIMITED = 1 << 62       # a limit at or above this is none (v1: 0x7ffffffffffff000)


class Files:
    """The usage files of one cgroup. `dirs` maps a v1 controller ("memory", "cpuacct", …) to its
    directory; on v2 (`v2` true) the directory of key "" serves every controller."""

    def __init__(self, dirs, v2):
        self.dirs, self.v2 = dict(dirs), v2

    @classmethod
    def of(cls, mgr):
        """The files of a manager's cgroup (v1 reading for the hybrid layout's controllers)."""
        return cls({key: mgr.dir(key) for key in mgr.paths}, mgr.layout == "v2")

    def dir(self, ctrl):
        return self.dirs.get("" if self.v2 else ctrl)

    def text(self, ctrl, name):
        """The file's text, or None when it is missing or unreadable."""
        try:
            return fs.read(fs.at(self.dir(ctrl), name))
        except CgroupError:
            return None

    def exists(self, ctrl, name):
        return fs.exists(fs.at(self.dir(ctrl), name))

    def number(self, ctrl, name, default=None):
        """The file's first number; "max" is MAX_U64; `default` when missing or not a number."""
        words = (self.text(ctrl, name) or "").split()
        if not words:
            return default
        if words[0] == "max":
            return MAX_U64
        try:
            return int(words[0])
        except ValueError:
            return default

    def keyed(self, ctrl, name):
        """A flat-keyed file ("key value" lines: cpu.stat, memory.events) as a dict of ints."""
        try:
            return fs.read_keyed(fs.at(self.dir(ctrl), name))
        except CgroupError:
            return {}


def limit(n):
    """A limit as read, or None for "no limit"."""
    return None if n is None or n >= UNLIMITED else n


def summary(f):
    """The everyday numbers (the table in the module doc); None where unknown."""
    if f.v2:
        mem = ("memory.current", "memory.peak", "memory.max", "memory.events")
        usage = f.keyed("cpu", "cpu.stat").get("usage_usec")
    else:
        mem = ("memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.limit_in_bytes",
               "memory.oom_control")
        ns = f.number("cpuacct", "cpuacct.usage")
        usage = None if ns is None else ns // 1000
    return {"memory": {"current": f.number("memory", mem[0]), "peak": f.number("memory", mem[1]),
                       "limit": limit(f.number("memory", mem[2])),
                       "oom_kills": f.keyed("memory", mem[3]).get("oom_kill")},
            "cpu": {"usage_usec": usage},
            "pids": {"current": f.number("pids", "pids.current"),
                     "limit": limit(f.number("pids", "pids.max"))},
            "io": _io_bytes(f)}


def _io_bytes(f):
    """{"read_bytes", "write_bytes"} summed over the devices, or Nones without the file."""
    rd = wr = 0
    if f.v2:
        text = f.text("io", "io.stat")
        for line in (text or "").splitlines():
            for item in line.split()[1:]:
                key, _, value = item.partition("=")
                rd += int(value) if key == "rbytes" else 0
                wr += int(value) if key == "wbytes" else 0
    else:
        text = f.text("blkio", "blkio.throttle.io_service_bytes_recursive")
        for line in (text or "").splitlines():
            parts = line.split()           # "8:0 Read 100"; "Total 121" is a sum
            if len(parts) == 3:
                rd += int(parts[2]) if parts[1] == "Read" else 0
                wr += int(parts[2]) if parts[1] == "Write" else 0
    if text is None:
        return {"read_bytes": None, "write_bytes": None}
    return {"read_bytes": rd, "write_bytes": wr}


def cpu_limit(f):
    """(quota in µs per period, period in µs, weight): quota None = unlimited; the weight is v2's
    cpu.weight or v1's cpu.shares."""
    if f.v2:
        quota, period = ((f.text("cpu", "cpu.max") or "").split() + [None, None])[:2]
        return (None if quota in (None, "max") else int(quota),
                None if period is None else int(period), limit(f.number("cpu", "cpu.weight")))
    quota = f.number("cpu", "cpu.cfs_quota_us")
    return (quota if quota is not None and quota > 0 else None,
            limit(f.number("cpu", "cpu.cfs_period_us")), limit(f.number("cpu", "cpu.shares")))
