"""What `mrunc events` reports: usage statistics in runc's JSON shape, and OOM kills as they happen.

**Statistics.** Engines and dashboards already parse `runc events`, so `runc_stats(mgr)` gives the
same document from the same files (runc's `types.Stats`; numbers are bytes and nanoseconds):

    cpu.usage.total/kernel/user          v1 cpuacct.usage, cpuacct.stat (ticks)   v2 cpu.stat *_usec
    cpu.usage.percpu(_kernel|_user)      v1 cpuacct.usage_percpu, usage_all       v2 (none)
    cpu.throttling                       cpu.stat nr_periods, nr_throttled, throttled_time/_usec
    cpuset                               cpuset.cpus, cpuset.mems (+ v1's flags)  v2 *.effective
    memory.usage {limit,usage,max,failcnt}  v1 memory.{limit_in_bytes,usage_in_bytes,
                                         max_usage_in_bytes,failcnt}  v2 memory.{max,current,peak},
                                         memory.events "max"
    memory.swap                          v1 memory.memsw.*   v2 swap.current + memory.current
                                         (runc reports memory+swap on v2 too, as v1 did)
    memory.kernel / kernelTCP            v1 memory.kmem.* / memory.kmem.tcp.*   v2 zero
    memory.cache, memory.raw             memory.stat ("cache" on v1, "file" on v2)
    pids {current, limit}                pids.current, pids.max ("max" -> 0, no limit)
    blkio.ioServiceBytesRecursive, ioServicedRecursive   v1 blkio.{bfq,throttle}.*_recursive
                                         v2 io.stat rbytes/wbytes, rios/wios
    hugetlb {"2MB": {usage,max,failcnt}}
JSON follows Go's encoding of runc's structs: fields tagged `omitempty` vanish when zero (so an
idle container prints `"throttling":{}`), and "no limit" is 2^64-1 on v2 where the file says max.

**OOM events.** When a cgroup's memory use cannot get below its limit, the kernel's OOM killer
kills a process in it. Being told, rather than polling, is different per version:
- v1: open an *eventfd* and `memory.oom_control`, write "<eventfd> <fd>" to `cgroup.event_control`:
  the kernel then adds 1 to the eventfd at every OOM in the cgroup (and also when the cgroup is
  removed — so a wakeup with the directory gone means "container gone", not "OOM").
- v2: `memory.events` has an `oom_kill` counter; the kernel wakes poll(POLLPRI) on that file when a
  counter changes. Compare the counter with the last value seen.
`OomWatcher.wait(timeout)` hides the difference: it sleeps up to `timeout` and returns how many
OOM events came.
"""

import os
import select

from . import fs
from .usage import MAX_U64, Files


def _omitempty(obj, *keys):
    """Drop the keys Go's omitempty would drop (zero numbers, empty lists and maps)."""
    for k in keys:
        if not obj.get(k):
            obj.pop(k, None)
    return obj


def _cpulist(text):
    """"0-2,4" -> [0, 1, 2, 4]"""
    out = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out += list(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            return []
    return out


def _entry(limit=0, usage=0, max_=0, failcnt=0):
    return _omitempty({"limit": min(limit, MAX_U64), "usage": usage, "max": max_,
                       "failcnt": failcnt}, "usage", "max")


def _blkio_entries(text):
    """Lines "8:0 Read 100" (v1) -> [{major, minor, op, value}] with omitempty."""
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue            # "Total 121": a sum, not an entry
        major, _, minor = parts[0].partition(":")
        out.append(_omitempty({"major": int(major), "minor": int(minor), "op": parts[1],
                               "value": int(parts[2])}, "major", "minor", "op", "value"))
    return out


_CPUSET_FLAGS = ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                 "memory_spread_page", "memory_spread_slab", "memory_pressure",
                 "sched_load_balance", "sched_relax_domain_level")


def _cpuset(f):
    cpus = f.text("cpuset", "cpuset.cpus.effective" if f.v2 else "cpuset.cpus")
    mems = f.text("cpuset", "cpuset.mems.effective" if f.v2 else "cpuset.mems")
    out = {"cpus": _cpulist(cpus)}
    # runc's struct order: cpus, cpu_exclusive, mems, then the other flags
    out["cpu_exclusive"] = 0 if f.v2 else f.number("cpuset", "cpuset.cpu_exclusive", 0)
    out["mems"] = _cpulist(mems)
    for flag in _CPUSET_FLAGS[1:]:
        out[flag] = 0 if f.v2 else f.number("cpuset", "cpuset." + flag, 0)
    return _omitempty(out, "cpus", "mems")


def _hugetlb(f):
    out = {}
    d = f.dir("hugetlb")
    if not d or not os.path.isdir(d):
        return out
    suffix = ".max" if f.v2 else ".limit_in_bytes"
    for name in sorted(os.listdir(d)):
        if not (name.startswith("hugetlb.") and name.endswith(suffix)) or ".rsvd." in name:
            continue
        size = name[len("hugetlb."):-len(suffix)]
        p = f"hugetlb.{size}."
        if f.v2:
            entry = {"usage": f.number("hugetlb", p + "current", 0), "max": 0,
                     "failcnt": f.keyed("hugetlb", p + "events").get("max", 0)}
        else:
            entry = {"usage": f.number("hugetlb", p + "usage_in_bytes", 0),
                     "max": f.number("hugetlb", p + "max_usage_in_bytes", 0),
                     "failcnt": f.number("hugetlb", p + "failcnt", 0)}
        out[size] = _omitempty(entry, "usage", "max")
    return out


def _stats_v1(f):
    ticks = os.sysconf("SC_CLK_TCK") or 100
    percpu_user, percpu_kernel = [], []
    for line in (f.text("cpuacct", "cpuacct.usage_all") or "").splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3:
            percpu_user.append(int(parts[1]))
            percpu_kernel.append(int(parts[2]))
    times = f.keyed("cpuacct", "cpuacct.stat")
    usage = {"total": f.number("cpuacct", "cpuacct.usage", 0),
             "percpu": [int(x) for x in (f.text("cpuacct", "cpuacct.usage_percpu") or "").split()],
             "percpu_kernel": percpu_kernel, "percpu_user": percpu_user,
             "kernel": times.get("system", 0) * 10**9 // ticks,
             "user": times.get("user", 0) * 10**9 // ticks}
    st = f.keyed("cpu", "cpu.stat")
    throttling = {"periods": st.get("nr_periods", 0), "throttledPeriods": st.get("nr_throttled", 0),
                  "throttledTime": st.get("throttled_time", 0)}

    def mem(prefix):
        if not f.exists("memory", prefix + ".limit_in_bytes"):
            return _entry()
        return _entry(*(f.number("memory", prefix + suffix, 0) for suffix in
                        (".limit_in_bytes", ".usage_in_bytes", ".max_usage_in_bytes", ".failcnt")))
    raw = f.keyed("memory", "memory.stat")
    memory = {"cache": raw.get("cache", 0), "usage": mem("memory"), "swap": mem("memory.memsw"),
              "kernel": mem("memory.kmem"), "kernelTCP": mem("memory.kmem.tcp"),
              "raw": dict(sorted(raw.items()))}

    kind = "blkio.bfq." if f.exists("blkio", "blkio.bfq.io_service_bytes_recursive") else "blkio.throttle."
    blkio = {"ioServiceBytesRecursive": _blkio_entries(f.text("blkio", kind + "io_service_bytes_recursive")),
             "ioServicedRecursive": _blkio_entries(f.text("blkio", kind + "io_serviced_recursive"))}
    pids = {"current": f.number("pids", "pids.current", 0), "limit": f.number("pids", "pids.max", 0)}
    return _document(usage, throttling, _cpuset(f), memory, pids, blkio, _hugetlb(f))


def _stats_v2(f):
    st = f.keyed("cpu", "cpu.stat")
    usage = {"total": st.get("usage_usec", 0) * 1000, "kernel": st.get("system_usec", 0) * 1000,
             "user": st.get("user_usec", 0) * 1000}
    throttling = {"periods": st.get("nr_periods", 0), "throttledPeriods": st.get("nr_throttled", 0),
                  "throttledTime": st.get("throttled_usec", 0) * 1000}
    raw = f.keyed("memory", "memory.stat")
    current, limit = f.number("memory", "memory.current", 0), f.number("memory", "memory.max", MAX_U64)
    events = f.keyed("memory", "memory.events")
    swap = _entry()
    if f.exists("memory", "memory.swap.current"):
        swap_max = f.number("memory", "memory.swap.max", MAX_U64)
        swap = _entry(MAX_U64 if swap_max == MAX_U64 else swap_max + limit,
                      f.number("memory", "memory.swap.current", 0) + current)
    memory = {"cache": raw.get("file", 0),
              "usage": _entry(limit, current, f.number("memory", "memory.peak", 0), events.get("max", 0)),
              "swap": swap, "kernel": _entry(), "kernelTCP": _entry(),
              "raw": dict(sorted(raw.items()))}
    blkio = {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}
    table = {"rbytes": ("ioServiceBytesRecursive", "Read"), "wbytes": ("ioServiceBytesRecursive", "Write"),
             "rios": ("ioServicedRecursive", "Read"), "wios": ("ioServicedRecursive", "Write")}
    for line in (f.text("io", "io.stat") or "").splitlines():
        dev, *items = line.split()
        major, _, minor = dev.partition(":")
        for item in items:
            key, _, value = item.partition("=")
            if key in table:
                name, op = table[key]
                blkio[name].append(_omitempty({"major": int(major), "minor": int(minor), "op": op,
                                               "value": int(value)}, "major", "minor", "value"))
    pids = {"current": f.number("pids", "pids.current", 0), "limit": f.number("pids", "pids.max", 0)}
    return _document(usage, throttling, _cpuset(f), memory, pids, blkio, _hugetlb(f))


def _document(usage, throttling, cpuset, memory, pids, blkio, hugetlb):
    if pids["limit"] == MAX_U64:
        pids["limit"] = 0
    return {
        "cpu": {"usage": _omitempty(usage, "total", "percpu", "percpu_kernel", "percpu_user"),
                "throttling": _omitempty(throttling, "periods", "throttledPeriods", "throttledTime")},
        "cpuset": cpuset,
        "memory": _omitempty(memory, "cache", "raw"),
        "pids": _omitempty(pids, "current", "limit"),
        "blkio": _omitempty(blkio, *list(blkio)),
        "hugetlb": hugetlb,
        "intel_rdt": {},
        "network_interfaces": None,
    }


def runc_stats(mgr):
    """The `data` of a runc stats event for this cgroup (None without cgroups, like runc)."""
    if mgr is None or mgr.layout in ("disabled", "none"):
        return None
    f = Files.of(mgr)
    return _stats_v2(f) if f.v2 else _stats_v1(f)


class OomWatcher:
    """Wait for OOM events of one cgroup (see the module doc). Always close() it."""

    def __init__(self, mgr):
        self.mgr, self.fds, self.efd, self.events_fd, self.count = mgr, [], None, None, 0
        layout = getattr(mgr, "layout", "none")
        if layout in ("v1", "hybrid"):
            d = mgr.dir("memory")
            if d and fs.exists(os.path.join(d, "cgroup.event_control")):
                self.dir = d
                self.efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
                ctl = os.open(os.path.join(d, "memory.oom_control"), os.O_RDONLY | os.O_CLOEXEC)
                self.fds = [self.efd, ctl]
                fs.write(os.path.join(d, "cgroup.event_control"), f"{self.efd} {ctl}")
        elif layout == "v2":
            d = mgr.dir("")
            path = os.path.join(d, "memory.events")
            if fs.exists(path):
                self.dir = d
                self.events_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                self.fds = [self.events_fd]
                self.count = self._oom_kills()

    def _oom_kills(self):
        try:
            data = os.pread(self.events_fd, 4096, 0).decode()
        except OSError:
            return self.count
        for line in data.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return self.count

    def wait(self, timeout):
        """Sleep up to `timeout` seconds or until the kernel reports; return the new OOM events."""
        if self.efd is not None:
            ready, _, _ = select.select([self.efd], [], [], max(timeout, 0))
            if not ready:
                return 0
            try:
                os.eventfd_read(self.efd)
            except BlockingIOError:
                return 0
            # The kernel also signals the eventfd when the cgroup goes away: that is no OOM.
            return 1 if os.path.isdir(self.dir) else 0
        if self.events_fd is not None:
            p = select.poll()
            p.register(self.events_fd, select.POLLPRI | select.POLLERR)
            p.poll(max(timeout, 0) * 1000)
            now = self._oom_kills()
            new, self.count = max(now - self.count, 0), now
            return new
        select.select([], [], [], max(timeout, 0))
        return 0

    def close(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds, self.efd, self.events_fd = [], None, None
