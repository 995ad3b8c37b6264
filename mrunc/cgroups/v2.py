"""cgroup v2: one tree, one directory per container, every controller's files side by side.

    /sys/fs/cgroup/mrunc/c1/{cgroup.procs, memory.max, cpu.max, pids.max, io.max, ...}

A controller's files only appear in a cgroup when its *parent* lists the controller in
`cgroup.subtree_control`, so creating a cgroup means enabling controllers from the root down
(runc enables every available one, which also makes usage figures available for `stats()`).

The OCI resources were designed for v1, so a few values are converted (runc's and crun's formulas):
- cpu.shares [2..262144] -> cpu.weight [1..10000]: 10 ** ((l*l + 125*l) / 612 - 7/34) rounded up,
  with l = log2(shares) — a quadratic in log2 that maps 2 -> 1, 1024 -> 100, 262144 -> 10000.
- memory.swap (memory+swap) -> memory.swap.max = swap - limit (equal values: 0, no swap).
- blockIO.weight [10..1000] -> io.weight [1..10000] = 1 + (w - 10) * 9999 // 990
  (io.bfq.weight takes the v1 value unconverted, and is preferred when BFQ is there).
Fields that only exist in v1 (swappiness, kernel memory, realtime cpu, net_cls/net_prio, leaf
weights) raise CgroupError instead of being dropped. `unified` writes raw v2 files, last.

Device rules have no file on v2: they become a small eBPF program attached to the cgroup
(devices_bpf.py builds it from the rule list, with the same meaning as v1's devices.allow/deny).
It is attached after every file was found present and before any is written: bpf() is the one
step that can only fail by trying. Rootless, device rules are left alone, as runc does (see
disabled.py for why that is safe; an unprivileged caller cannot load the program anyway).
"""

import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from mrunc import paths
from mrunc.errors import CgroupError

from . import FREEZER_V2, fs
from .base import R, Manager, given, nonzero
from .v1 import THROTTLES, _devnum, _rate, cpuset, pids, rdma  # noqa: F401  (same files on v2)
from .v1 import hugetlb as _v1_hugetlb


def shares_to_weight(shares):
    if shares <= 2:
        return 1
    if shares >= 262144:
        return 10000
    import math   # lazily: only needed for this conversion
    lg = math.log2(shares)
    return int(math.ceil(10 ** ((lg * lg + 125 * lg) / 612.0 - 7.0 / 34.0)))


def blkio_to_io_weight(weight):
    return 1 + (weight - 10) * 9999 // 990


def swap_max(swap, limit, f=R + ".memory"):
    """memory.swap.max from OCI memory.swap (memory+swap) and memory.limit; None = leave alone."""
    if limit == -1 and swap is None:
        return "max"            # no memory limit: no swap limit either (as on v1)
    if swap is None:
        return None
    if swap == -1:
        return "max"
    if limit == -1:
        return str(swap)
    if limit is None:
        raise CgroupError(f"{f}.swap: a swap limit needs a memory limit (v2 limits swap alone)")
    if swap < limit:
        raise CgroupError(f"{f}.swap: memory+swap limit {swap} is below the memory limit {limit}")
    return str(swap - limit)


def _max(v):
    return "max" if v == -1 else v


def _v1_only(obj, keys, f, why="not supported on cgroup v2"):
    for key in keys:
        if nonzero(obj, key) is not None:
            raise CgroupError(f"{f}.{key}: {why}")


def memory(d, mem, f=R + ".memory"):
    _v1_only(mem, ("kernel", "kernelTCP"), f, "not supported on cgroup v2 (kernel memory is "
             "always accounted within memory.max)")
    swappiness = given(mem, "swappiness")
    if swappiness is not None and swappiness != -1:
        raise CgroupError(f"{f}.swappiness: not supported on cgroup v2")
    if mem.get("disableOOMKiller"):
        raise CgroupError(f"{f}.disableOOMKiller: not supported on cgroup v2")
    if mem.get("useHierarchy") is False:
        raise CgroupError(f"{f}.useHierarchy: cgroup v2 is always hierarchical")
    limit, swap = nonzero(mem, "limit"), nonzero(mem, "swap")
    if mem.get("checkBeforeUpdate") and limit and limit > 0:
        usage = fs.read_int(fs.at(d, "memory.current"))
        if usage is not None and usage >= limit:
            raise CgroupError(f"{f}.limit: rejecting memory limit {limit} below current usage {usage}")
    w = []
    sw = swap_max(swap, limit, f)
    # Without swap accounting there is no memory.swap.max: "no swap limit" and "no swap" are
    # then already true, anything else is an error (from the existence check).
    if sw is not None and (fs.exists(fs.at(d, "memory.swap.max")) or sw not in ("max", "0")):
        w.append(("memory.swap.max", sw, f + ".swap"))
    if limit is not None:
        w.append(("memory.max", _max(limit), f + ".limit"))
    if nonzero(mem, "reservation") is not None:
        w.append(("memory.low", _max(mem["reservation"]), f + ".reservation"))
    return w


def _cpu_max(d):
    parts = (fs.read(fs.at(d, "cpu.max")) or "max 100000").split()
    return parts[0], parts[1] if len(parts) > 1 else "100000"


def cpu(d, c, f=R + ".cpu"):
    _v1_only(c, ("realtimeRuntime", "realtimePeriod"), f)
    w = []
    if given(c, "idle") is not None:
        w.append(("cpu.idle", c["idle"], f + ".idle"))
    shares = nonzero(c, "shares")
    if shares is not None:
        w.append(("cpu.weight", shares_to_weight(shares), f + ".shares"))
    quota, period, burst = nonzero(c, "quota"), nonzero(c, "period"), given(c, "burst")
    if burst is not None and quota is not None and quota > 0 and burst > quota:
        raise CgroupError(f"{f}.burst: {burst} exceeds the quota {quota}")
    cur_burst = fs.read_int(fs.at(d, "cpu.max.burst")) or 0
    if burst is not None and burst < cur_burst:   # shrink burst before quota can go below it
        w.append(("cpu.max.burst", burst, f + ".burst"))
    if quota is not None or period is not None:
        # cpu.max holds both numbers: keep the one not being set (runc resets it).
        cur_quota, cur_period = _cpu_max(d)
        q = cur_quota if quota is None else ("max" if quota < 0 else quota)
        p = cur_period if period is None else period
        w.append(("cpu.max", f"{q} {p}", f + (".quota" if quota is not None else ".period")))
    if burst is not None and burst >= cur_burst:
        w.append(("cpu.max.burst", burst, f + ".burst"))
    return w


def io(d, b, f=R + ".blockIO"):
    _v1_only(b, ("leafWeight",), f, "not supported on cgroup v2 (leaf weights were CFQ-only)")
    bfq = fs.exists(fs.at(d, "io.bfq.weight"))

    def weight(w, field):
        if not 10 <= w <= 1000:
            raise CgroupError(f"{field}: {w} is outside 10-1000")
        return w if bfq else blkio_to_io_weight(w)
    wfile = "io.bfq.weight" if bfq else "io.weight"
    w = []
    if nonzero(b, "weight") is not None:
        w.append((wfile, weight(b["weight"], f + ".weight"), f + ".weight"))
    for i, wd in enumerate(b.get("weightDevice") or []):
        fi = f"{f}.weightDevice[{i}]"
        _v1_only(wd, ("leafWeight",), fi, "not supported on cgroup v2 (leaf weights were CFQ-only)")
        if nonzero(wd, "weight") is None:
            raise CgroupError(f"{fi}.weight: missing (the only per-device weight on cgroup v2)")
        w.append((wfile, f"{_devnum(wd, fi)} {weight(wd['weight'], fi + '.weight')}", fi + ".weight"))
    for key, _, name in THROTTLES:
        for i, td in enumerate(b.get(key) or []):
            fi = f"{f}.{key}[{i}]"
            w.append(("io.max", f"{_devnum(td, fi)} {name}={_rate(td, fi)}", fi))
    return w


def hugetlb(d, limits, f=R + ".hugepageLimits"):
    return _v1_hugetlb(d, limits, f, suffix=".max")


def network(d, net, f=R + ".network"):
    if given(net, "classID") is not None:
        raise CgroupError(f"{f}.classID: not supported on cgroup v2 (net_cls is v1-only)")
    if (net or {}).get("priorities"):
        raise CgroupError(f"{f}.priorities: not supported on cgroup v2 (net_prio is v1-only)")
    return []


def devices(d, rules, f=R + ".devices"):
    """No file to write: the rules are checked here, with the rest, and V2Manager.set attaches
    the eBPF program (imported only when there are device rules: it is the one that needs ctypes)."""
    from . import devices_bpf
    devices_bpf.replay(rules, f)
    return []


# Files that move or kill processes: not resources, whatever `unified` says.
NOT_RESOURCES = ("cgroup.procs", "cgroup.threads", "cgroup.kill", "cgroup.freeze", "cgroup.type",
                 "cgroup.subtree_control")


def unified(d, values, f=R + ".unified"):
    w = []
    for key, value in (values or {}).items():
        field = f'{f}["{key}"]'
        ctrl, dot, knob = key.partition(".")
        if "/" in key or not ctrl or not dot or not knob or "\0" in key:
            raise CgroupError(f"{field}: must be a cgroup file name of the form CONTROLLER.KNOB")
        if key in NOT_RESOURCES:
            raise CgroupError(f"{field}: {key} manages processes, not resources")
        if not isinstance(value, str):
            raise CgroupError(f"{field}: the value must be a string")
        w.append((key, value, field))
    return w


class V2Manager(Manager):
    layout = "v2"
    _procs_order = ("",)
    plans_ahead = False     # planning enables controllers (_enable): see Manager.plans_ahead

    def __init__(self, mounts, paths, rootless=False, layout="v2"):
        super().__init__(mounts, paths, rootless)

    def kernel_memory_ignored(self):
        return ("kernel", "kernelTCP"), ("cgroup v2 has no separate kernel memory limits "
                                         "(kernel memory counts towards memory.max)")

    def _ancestors(self):
        """The cgroups above ours, from the mountpoint down (where subtree_control is written)."""
        mp, d = self.mounts[""][0], self.dir("")
        out, cur = [], mp
        for part in d[len(mp):].strip("/").split("/")[:-1]:
            out.append(cur)
            cur = paths.join(cur, part)
        out.append(cur)
        return out if d != mp else []

    def _make(self):
        super()._make()
        # Best effort, like runc: enable every controller each ancestor has. One that cannot be
        # enabled (busy, threaded, not delegated) shows up as a clear error only if a limit needs it.
        for a in self._ancestors():
            have = set((fs.read(paths.join(a, "cgroup.controllers")) or "").split())
            on = set((fs.read(paths.join(a, "cgroup.subtree_control")) or "").split())
            missing = sorted(have - on)
            if not missing:
                continue
            sc = paths.join(a, "cgroup.subtree_control")
            try:
                fs.write(sc, " ".join("+" + c for c in missing), sys=self.sys)
            except CgroupError:
                for c in missing:
                    try:
                        fs.write(sc, "+" + c, sys=self.sys)
                    except CgroupError:
                        pass

    def _enable(self, ctrl, field):
        """Make sure `ctrl` is enabled for our cgroup, or say precisely why it cannot be."""
        d = self.dir("")
        if ctrl in (fs.read(paths.join(d, "cgroup.controllers")) or "").split():
            return
        for a in self._ancestors():
            have = (fs.read(paths.join(a, "cgroup.controllers")) or "").split()
            if ctrl not in have:
                raise CgroupError(f"{field}: the {ctrl} controller is not available in {a} "
                                  f"(cgroup.controllers: {' '.join(have) or 'empty'})")
            if ctrl not in (fs.read(paths.join(a, "cgroup.subtree_control")) or "").split():
                fs.write(paths.join(a, "cgroup.subtree_control"), "+" + ctrl, field, self.sys)
        if ctrl not in (fs.read(paths.join(d, "cgroup.controllers")) or "").split():
            raise CgroupError(f"{field}: the {ctrl} controller is not enabled for {d}")

    def set(self, resources):
        res = resources or {}
        self.create()
        writes = self._checked_plan(res)
        if res.get("devices") is not None and not self.rootless:
            from . import devices_bpf
            devices_bpf.install(self.dir(""), res["devices"], sys=self.sys)
        self._write(writes)

    def _plan(self, res):
        d = self.dir("")
        c = res.get("cpu") or {}
        # runc's order; unified last so that it overrides what the conversions wrote.
        steps = [(pids, res.get("pids") or {}), (memory, res.get("memory") or {}),
                 (io, res.get("blockIO") or {}), (cpu, c), (cpuset, c),
                 (hugetlb, res.get("hugepageLimits") or []), (rdma, res.get("rdma") or {}),
                 (network, res.get("network") or {}), (unified, res.get("unified") or {})]
        if res.get("devices") is not None:
            steps.insert(0, (devices, res["devices"]))
        out = []
        for fn, value in steps:
            out += [(d, name, v, field) for name, v, field in fn(d, value)]
        for _, name, _, field in out:
            ctrl = name.split(".")[0]
            if ctrl != "cgroup":
                self._enable(ctrl, field)
        return out

    def _kill_file(self):
        return paths.join(self.dir(""), "cgroup.kill")  # 5.14+: the kernel kills the whole subtree

    # -- freezer ------------------------------------------------------------------------------
    def freezer_file(self):
        return paths.join(self.dir(""), FREEZER_V2)

    def can_freeze(self):
        return fs.exists(self.freezer_file())

    def freeze(self, timeout=10.0):
        if not self.can_freeze():
            raise CgroupError(f"cannot freeze {self.dir('')}: no cgroup.freeze (kernel older than 5.2?)")
        from . import freezer   # not for create and run, which only name its file
        freezer.freeze(self.freezer_file(), timeout, self.sys)

    def thaw(self):
        from . import freezer
        freezer.thaw(self.freezer_file(), self.sys)

    def freezer_state(self):
        from . import freezer
        return "frozen" if freezer.frozen(self.freezer_file()) else "thawed"
