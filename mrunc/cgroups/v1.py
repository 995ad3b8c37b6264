"""cgroup v1: one tree ("hierarchy") per controller, so one directory per controller per container.

    /sys/fs/cgroup/memory/mrunc/c1/memory.limit_in_bytes
    /sys/fs/cgroup/cpu/mrunc/c1/cpu.cfs_quota_us
    /sys/fs/cgroup/pids/mrunc/c1/pids.max      ... and the process is written into each cgroup.procs

Each controller below is a short function from an OCI `linux.resources` object to the list of
(file, value, JSON path) it writes — nothing is written until every field was found possible.
The function gets the controller's directory (None if that controller is not mounted) only to read
the current state where the write order depends on it.

On a hybrid host (v1 controllers + a cgroup2 tree at /sys/fs/cgroup/unified) the container also
joins the unified tree, as runc does, so its cgroup looks the same in every line of
/proc/<pid>/cgroup; the controllers (and so every limit) stay on v1.

0 means "unset" for the numeric fields (as in runc); pids.limit 0 is a real limit.
"""

import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from mrunc import paths
from mrunc.errors import CgroupError

from . import FREEZER_V1, fs
from .base import R, Manager, device_rule, given, nonzero


def kmem_limit_works(release=None):
    """Linux 5.16 made memory.kmem.limit_in_bytes a no-op (the write succeeds and changes
    nothing), so the kernel version is the only way to know before writing."""
    parts = (release or os.uname().release).split(".")
    try:
        return (int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)) < (5, 16)
    except (ValueError, IndexError):
        return False


def memory(d, mem, f=R + ".memory"):
    limit, swap = nonzero(mem, "limit"), nonzero(mem, "swap")
    if limit == -1 and swap is None and fs.exists(fs.at(d, "memory.memsw.limit_in_bytes")):
        swap = -1   # "no memory limit" means no memory+swap limit either
    if limit is not None and swap is not None and limit > 0 and 0 < swap < limit:
        raise CgroupError(f"{f}.swap: memory+swap limit {swap} is below the memory limit {limit}")
    if mem.get("checkBeforeUpdate") and limit and limit > 0:
        usage = fs.read_int(fs.at(d, "memory.usage_in_bytes"))
        if usage is not None and usage >= limit:
            raise CgroupError(f"{f}.limit: rejecting memory limit {limit} below current usage {usage}")
    w = []
    lim = ("memory.limit_in_bytes", limit, f + ".limit")
    sw = ("memory.memsw.limit_in_bytes", swap, f + ".swap")
    if limit is not None and swap is not None:
        # The kernel keeps memsw >= limit at every step: when memsw grows, write it first.
        cur = fs.read_int(fs.at(d, "memory.limit_in_bytes"))
        w += [sw, lim] if swap == -1 or (cur is not None and cur < swap) else [lim, sw]
    elif limit is not None:
        w.append(lim)
    elif swap is not None:
        w.append(sw)
    if nonzero(mem, "reservation") is not None:
        w.append(("memory.soft_limit_in_bytes", mem["reservation"], f + ".reservation"))
    if nonzero(mem, "kernel") is not None:
        if not kmem_limit_works():
            raise CgroupError(f"{f}.kernel: not supported by this kernel (Linux 5.16 and later "
                              f"ignore memory.kmem.limit_in_bytes)")
        w.append(("memory.kmem.limit_in_bytes", mem["kernel"], f + ".kernel"))
    if nonzero(mem, "kernelTCP") is not None:
        w.append(("memory.kmem.tcp.limit_in_bytes", mem["kernelTCP"], f + ".kernelTCP"))
    if mem.get("disableOOMKiller"):
        w.append(("memory.oom_control", 1, f + ".disableOOMKiller"))
    swappiness = given(mem, "swappiness")
    if swappiness is not None and swappiness != -1:
        if not 0 <= swappiness <= 100:
            raise CgroupError(f"{f}.swappiness: {swappiness} is outside 0-100")
        w.append(("memory.swappiness", swappiness, f + ".swappiness"))
    if given(mem, "useHierarchy") is not None:
        w.append(("memory.use_hierarchy", int(bool(mem["useHierarchy"])), f + ".useHierarchy"))
    return w


def cpu(d, c, f=R + ".cpu"):
    w = []
    shares = nonzero(c, "shares")
    if shares is not None:
        if not 2 <= shares <= 262144:
            raise CgroupError(f"{f}.shares: {shares} is outside 2-262144")
        w.append(("cpu.shares", shares, f + ".shares"))
    if nonzero(c, "period") is not None:
        w.append(("cpu.cfs_period_us", c["period"], f + ".period"))
    quota = nonzero(c, "quota")
    if quota is not None:
        w.append(("cpu.cfs_quota_us", quota, f + ".quota"))
    burst = given(c, "burst")
    if burst is not None:
        if quota is not None and quota > 0 and burst > quota:
            raise CgroupError(f"{f}.burst: {burst} exceeds the quota {quota}")
        w.append(("cpu.cfs_burst_us", burst, f + ".burst"))
    if given(c, "idle") is not None:
        w.append(("cpu.idle", c["idle"], f + ".idle"))
    if nonzero(c, "realtimePeriod") is not None:
        w.append(("cpu.rt_period_us", c["realtimePeriod"], f + ".realtimePeriod"))
    if nonzero(c, "realtimeRuntime") is not None:
        w.append(("cpu.rt_runtime_us", c["realtimeRuntime"], f + ".realtimeRuntime"))
    return w


def cpuset(d, c, f=R + ".cpu"):
    w = []
    if given(c, "cpus"):
        w.append(("cpuset.cpus", c["cpus"], f + ".cpus"))
    if given(c, "mems"):
        w.append(("cpuset.mems", c["mems"], f + ".mems"))
    return w


def pids(d, p, f=R + ".pids"):
    limit = given(p, "limit")
    if limit is None:
        return []
    return [("pids.max", "max" if limit < 0 else limit, f + ".limit")]


def _devnum(entry, field):
    major, minor = entry.get("major"), entry.get("minor")
    if not isinstance(major, int) or not isinstance(minor, int) or major < 0 or minor < 0:
        raise CgroupError(f"{field}: major and minor device numbers are required")
    return f"{major}:{minor}"


THROTTLES = (("throttleReadBpsDevice", "read_bps_device", "rbps"),
             ("throttleWriteBpsDevice", "write_bps_device", "wbps"),
             ("throttleReadIOPSDevice", "read_iops_device", "riops"),
             ("throttleWriteIOPSDevice", "write_iops_device", "wiops"))


def _rate(entry, field):
    if not isinstance(entry.get("rate"), int):
        raise CgroupError(f"{field}.rate: required")
    return entry["rate"]


def page_size(h, field):
    """"2MB" -> file names like hugetlb.2MB.max; anything else could name another file."""
    size = h.get("pageSize")
    if not isinstance(size, str) or size[-2:] not in ("KB", "MB", "GB") or not size[:-2].isdigit():
        raise CgroupError(f"{field}.pageSize: {size!r} is not a page size like 2MB or 1GB")
    if not isinstance(h.get("limit"), int):
        raise CgroupError(f"{field}.limit: required")
    return size


def blkio(d, b, f=R + ".blockIO"):
    w = []
    # CFQ's blkio.weight when present, else BFQ's (runc's order). Neither: the check fails on it.
    if fs.exists(fs.at(d, "blkio.weight")) or not fs.exists(fs.at(d, "blkio.bfq.weight")):
        wfile, wdev = "blkio.weight", "blkio.weight_device"
    else:
        wfile, wdev = "blkio.bfq.weight", "blkio.bfq.weight_device"
    if nonzero(b, "weight") is not None:
        w.append((wfile, b["weight"], f + ".weight"))
    if nonzero(b, "leafWeight") is not None:
        w.append(("blkio.leaf_weight", b["leafWeight"], f + ".leafWeight"))
    for i, wd in enumerate(b.get("weightDevice") or []):
        fi = f"{f}.weightDevice[{i}]"
        if wd.get("weight") is None and wd.get("leafWeight") is None:
            raise CgroupError(f"{fi}: give weight or leafWeight (or both)")
        if nonzero(wd, "weight") is not None:
            w.append((wdev, f"{_devnum(wd, fi)} {wd['weight']}", fi + ".weight"))
        if nonzero(wd, "leafWeight") is not None:
            w.append(("blkio.leaf_weight_device", f"{_devnum(wd, fi)} {wd['leafWeight']}", fi + ".leafWeight"))
    for key, name, _ in THROTTLES:
        for i, td in enumerate(b.get(key) or []):
            fi = f"{f}.{key}[{i}]"
            w.append((f"blkio.throttle.{name}", f"{_devnum(td, fi)} {_rate(td, fi)}", fi))
    return w


def hugetlb(d, limits, f=R + ".hugepageLimits", suffix=".limit_in_bytes"):
    """The fault limit, and the reservation limit (.rsvd.) where the kernel has it (5.7+): a
    reservation limit fails mmap() up front instead of SIGBUS-ing at first touch."""
    w = []
    for i, h in enumerate(limits or []):
        prefix = f"hugetlb.{page_size(h, f'{f}[{i}]')}"
        w.append((prefix + suffix, h["limit"], f"{f}[{i}].limit"))
        if fs.exists(fs.at(d, prefix + ".rsvd" + suffix)):
            w.append((prefix + ".rsvd" + suffix, h["limit"], f"{f}[{i}].limit"))
    return w


def net_cls(d, net, f=R + ".network"):
    if given(net, "classID") is None:
        return []
    return [("net_cls.classid", net["classID"], f + ".classID")]


def net_prio(d, net, f=R + ".network"):
    return [("net_prio.ifpriomap", f"{p['name']} {p['priority']}", f"{f}.priorities[{i}]")
            for i, p in enumerate((net or {}).get("priorities") or [])]


def rdma(d, devs, f=R + ".rdma"):
    w = []
    for dev, limits in (devs or {}).items():
        parts = [dev]
        if limits.get("hcaHandles") is not None:
            parts.append(f"hca_handle={limits['hcaHandles']}")
        if limits.get("hcaObjects") is not None:
            parts.append(f"hca_object={limits['hcaObjects']}")
        if len(parts) == 1:
            raise CgroupError(f"{f}.{dev}: give hcaHandles or hcaObjects (or both)")
        w.append(("rdma.max", " ".join(parts), f"{f}.{dev}"))
    return w


def devices(d, rules, f=R + ".devices"):
    """Deny everything, then replay the rules in order (the kernel keeps one list per cgroup)."""
    w = [("devices.deny", "a", f)]
    for i, rule in enumerate(rules):
        allow, text = device_rule(rule, f"{f}[{i}]")
        w.append(("devices.allow" if allow else "devices.deny", text, f"{f}[{i}]"))
    return w


class V1Manager(Manager):
    layout = "v1"
    _procs_order = ("freezer", "pids", "memory", "devices", "cpu", "cpuacct", "cpuset", "blkio",
                    "name=systemd", "")

    def __init__(self, mounts, paths, rootless=False, layout="v1"):
        super().__init__(mounts, paths, rootless)
        self.layout = layout

    def v1_dirs(self):
        """The directories of the v1 hierarchies (not the unified tree of a hybrid host)."""
        unified = self.dir("")
        return [d for d in self.dirs() if d != unified]

    def kernel_memory_ignored(self):
        if kmem_limit_works():
            return (), ""
        return ("kernel",), ("Linux 5.16 and later have no kernel memory limit (kernel memory "
                             "counts towards the memory limit)")

    def _make(self):
        super()._make()
        # A new cpuset cgroup starts with no cpus and no mems, and a task cannot join it then:
        # copy the parent's down every level that is still empty (runc does the same).
        d = self.dir("cpuset")
        if d:
            mp = self.mounts["cpuset"][0]
            cur = mp
            for part in d[len(mp):].strip("/").split("/"):
                if not part:
                    continue
                parent, cur = cur, paths.join(cur, part)
                for name in ("cpuset.cpus", "cpuset.mems"):
                    mine = fs.read(paths.join(cur, name))
                    if mine is not None and not mine.strip():
                        fs.write(paths.join(cur, name), fs.read(paths.join(parent, name)) or "",
                                 sys=self.sys)

    def _plan(self, res):
        if res.get("unified"):
            raise CgroupError(f"{R}.unified: not supported on cgroup v1 "
                              f"(unified keys are cgroup v2 files; this host is {self.layout})")
        c, net = res.get("cpu") or {}, res.get("network") or {}
        steps = [("cpuset", cpuset, c), ("memory", memory, res.get("memory") or {}),
                 ("cpu", cpu, c), ("pids", pids, res.get("pids") or {}),
                 ("blkio", blkio, res.get("blockIO") or {}),
                 ("hugetlb", hugetlb, res.get("hugepageLimits") or []),
                 ("net_cls", net_cls, net), ("net_prio", net_prio, net),
                 ("rdma", rdma, res.get("rdma") or {})]
        if res.get("devices") is not None:
            steps.insert(0, ("devices", devices, res["devices"]))
        out = []
        for key, fn, value in steps:
            d = self.dir(key)
            for name, v, field in fn(d, value):
                if d is None:
                    mounted = " ".join(sorted(k for k in self.mounts if k)) or "none"
                    raise CgroupError(f"{field}: the {key} controller is not mounted "
                                      f"(cgroup v1 controllers here: {mounted})")
                out.append((d, name, v, field))
        return out

    # -- freezer ------------------------------------------------------------------------------
    def freezer_file(self):
        return fs.at(self.dir("freezer"), FREEZER_V1)

    def can_freeze(self):
        return self.dir("freezer") is not None

    def freeze(self, timeout=10.0):
        if not self.can_freeze():
            raise CgroupError(f"cannot freeze {self.path}: the freezer controller is not mounted")
        from . import freezer   # not for create and run, which only name its file
        freezer.freeze(self.freezer_file(), timeout, self.sys)

    def thaw(self):
        if self.can_freeze():
            from . import freezer
            freezer.thaw(self.freezer_file(), self.sys)

    def freezer_state(self):
        if not self.can_freeze():
            return "thawed"
        from . import freezer
        return "frozen" if freezer.frozen(self.freezer_file()) else "thawed"
