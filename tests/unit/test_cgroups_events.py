"""`events` without a kernel: runc's stats document built from fake v1 and v2 cgroup trees, the
v2 OOM counter, and the command-line quantities (sizes, Go durations). No root needed."""

import json
import os

import pytest

from mrunc import cgroups
from mrunc.cgroups import events
from mrunc.cgroups.events import MAX_U64, OomWatcher, runc_stats
from mrunc.cgroups.units import go_duration, ram_in_bytes
from mrunc.errors import UsageError


def put(d, files):
    os.makedirs(d, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(d, name), "w") as f:
            f.write(text + "\n")


V1 = {
    "cpuacct": {"cpuacct.usage": "3000000", "cpuacct.usage_percpu": "1000000 2000000",
                "cpuacct.usage_all": "cpu user system\n0 0 1000000\n1 2000000 0",
                "cpuacct.stat": "user 2\nsystem 1"},
    "cpu": {"cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0"},
    "cpuset": {"cpuset.cpus": "0-2,5", "cpuset.mems": "0", "cpuset.cpu_exclusive": "0",
               "cpuset.mem_hardwall": "0", "cpuset.mem_exclusive": "0",
               "cpuset.memory_migrate": "0", "cpuset.memory_spread_page": "0",
               "cpuset.memory_spread_slab": "0", "cpuset.memory_pressure": "0",
               "cpuset.sched_load_balance": "1", "cpuset.sched_relax_domain_level": "-1"},
    "memory": {"memory.limit_in_bytes": "67108864", "memory.usage_in_bytes": "4096",
               "memory.max_usage_in_bytes": "8192", "memory.failcnt": "0",
               "memory.memsw.limit_in_bytes": "9223372036854771712",
               "memory.memsw.usage_in_bytes": "4096", "memory.memsw.max_usage_in_bytes": "8192",
               "memory.memsw.failcnt": "0",
               "memory.kmem.tcp.limit_in_bytes": "9223372036854771712",
               "memory.kmem.tcp.usage_in_bytes": "0", "memory.kmem.tcp.max_usage_in_bytes": "0",
               "memory.kmem.tcp.failcnt": "0",
               "memory.stat": "cache 0\nrss 4096\ntotal_rss 4096"},
    "pids": {"pids.current": "2", "pids.max": "max"},
    "blkio": {"blkio.throttle.io_service_bytes_recursive": "8:0 Read 100\n8:0 Write 20\nTotal 120",
              "blkio.throttle.io_serviced_recursive": "8:0 Read 1\n8:0 Write 0\nTotal 1"},
    "freezer": {"freezer.state": "THAWED"},
}


def v1_tree(tmp_path, leaf="/c1"):
    root = tmp_path / "cg1"
    for ctrl, files in V1.items():
        put(root / ctrl, {"tasks": "", "cgroup.procs": ""})
        put(str(root / ctrl) + leaf, dict(files, tasks="", **{"cgroup.procs": ""}))
    return cgroups.manager(leaf, "c1", root=str(root), mountinfo=None)


def v2_tree(tmp_path, **extra):
    root = tmp_path / "cg2"
    put(root, {"cgroup.controllers": "cpu memory pids io", "cgroup.subtree_control": "",
               "cgroup.procs": ""})
    files = {"cgroup.procs": "", "cgroup.controllers": "cpu memory pids io",
             "cpu.stat": "usage_usec 5000\nuser_usec 3000\nsystem_usec 2000\nnr_periods 10\n"
                         "nr_throttled 4\nthrottled_usec 700",
             "memory.current": "4096", "memory.max": "max", "memory.peak": "8192",
             "memory.swap.current": "0", "memory.swap.max": "0",
             "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1",
             "memory.stat": "anon 4096\nfile 12288", "pids.current": "1", "pids.max": "20",
             "cpuset.cpus.effective": "0-1", "cpuset.mems.effective": "0",
             "io.stat": "8:0 rbytes=100 wbytes=20 rios=1 wios=2 dbytes=0 dios=0"}
    files.update(extra)
    put(root / "c1", files)
    return cgroups.manager("/c1", "c1", root=str(root), mountinfo=None)


def test_v1_stats_document(tmp_path):
    d = runc_stats(v1_tree(tmp_path))
    assert list(d) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                       "network_interfaces"]
    tick = 10**9 // os.sysconf("SC_CLK_TCK")
    assert d["cpu"] == {"usage": {"total": 3000000, "percpu": [1000000, 2000000],
                                  "percpu_kernel": [1000000, 0], "percpu_user": [0, 2000000],
                                  "kernel": tick, "user": 2 * tick},
                        "throttling": {}}                        # zeros omitted, as Go does
    assert d["cpuset"]["cpus"] == [0, 1, 2, 5] and d["cpuset"]["mems"] == [0]
    assert d["cpuset"]["sched_relax_domain_level"] == -1
    m = d["memory"]
    assert "cache" not in m                                      # 0: omitted
    assert m["usage"] == {"limit": 67108864, "usage": 4096, "max": 8192, "failcnt": 0}
    assert m["swap"]["limit"] == 9223372036854771712
    assert m["kernel"] == {"limit": 0, "failcnt": 0}             # no kmem files: a zero entry
    assert m["kernelTCP"] == {"limit": 9223372036854771712, "failcnt": 0}
    assert m["raw"] == {"cache": 0, "rss": 4096, "total_rss": 4096}
    assert d["pids"] == {"current": 2}                           # no limit: omitted
    assert d["blkio"] == {"ioServiceBytesRecursive": [
        {"major": 8, "op": "Read", "value": 100}, {"major": 8, "op": "Write", "value": 20}],
        "ioServicedRecursive": [{"major": 8, "op": "Read", "value": 1}, {"major": 8, "op": "Write"}]}
    assert d["hugetlb"] == {} and d["intel_rdt"] == {} and d["network_interfaces"] is None
    assert json.loads(json.dumps(d)) == d


def test_v2_stats_document(tmp_path):
    d = runc_stats(v2_tree(tmp_path))
    assert d["cpu"] == {"usage": {"total": 5000000, "kernel": 2000000, "user": 3000000},
                        "throttling": {"periods": 10, "throttledPeriods": 4, "throttledTime": 700000}}
    m = d["memory"]
    assert m["cache"] == 12288
    assert m["usage"] == {"limit": MAX_U64, "usage": 4096, "max": 8192, "failcnt": 3}
    assert m["swap"] == {"limit": MAX_U64, "usage": 4096, "failcnt": 0}   # memory + swap, as v1
    assert m["kernel"] == {"limit": 0, "failcnt": 0}
    assert d["pids"] == {"current": 1, "limit": 20}
    assert d["cpuset"]["cpus"] == [0, 1] and d["cpuset"]["mems"] == [0]
    assert d["blkio"]["ioServiceBytesRecursive"] == [{"major": 8, "op": "Read", "value": 100},
                                                     {"major": 8, "op": "Write", "value": 20}]
    assert d["blkio"]["ioServicedRecursive"] == [{"major": 8, "op": "Read", "value": 1},
                                                 {"major": 8, "op": "Write", "value": 2}]


def test_v2_swap_limit_is_memory_plus_swap(tmp_path):
    m = runc_stats(v2_tree(tmp_path, **{"memory.max": "1000", "memory.swap.max": "500",
                                        "memory.swap.current": "7"}))["memory"]
    assert m["swap"] == {"limit": 1500, "usage": 4103, "failcnt": 0}


def test_no_cgroup_no_data():
    assert runc_stats(None) is None
    assert runc_stats(cgroups.DisabledManager("rootless")) is None


def test_v2_oom_watcher_counts_new_oom_kills(tmp_path):
    mgr = v2_tree(tmp_path)
    w = OomWatcher(mgr)
    try:
        assert w.wait(0) == 0                                    # 1 kill before: not new
        put(mgr.dir(""), {"memory.events": "max 9\noom 3\noom_kill 3"})
        assert w.wait(0) == 2
        assert w.wait(0) == 0
    finally:
        w.close()
    assert w.fds == []


def test_watcher_without_memory_controller_just_sleeps():
    w = OomWatcher(cgroups.DisabledManager("none"))
    assert w.wait(0.01) == 0
    w.close()


def test_v1_watcher_registers_an_eventfd(tmp_path, monkeypatch):
    mgr = v1_tree(tmp_path)
    put(mgr.dir("memory"), {"cgroup.event_control": "", "memory.oom_control": "oom_kill 0"})
    w = OomWatcher(mgr)
    try:
        with open(os.path.join(mgr.dir("memory"), "cgroup.event_control")) as f:
            efd, ctl = map(int, f.read().split())
        assert (efd, ctl) == (w.fds[0], w.fds[1])
        assert w.wait(0) == 0
        os.eventfd_write(efd, 1)                     # what the kernel does at an OOM
        assert w.wait(0) == 1
    finally:
        w.close()


def test_v1_eventfd_wakeup_after_the_cgroup_went_is_no_oom(tmp_path, monkeypatch):
    mgr = v1_tree(tmp_path)
    put(mgr.dir("memory"), {"cgroup.event_control": "", "memory.oom_control": "oom_kill 0"})
    w = OomWatcher(mgr)
    try:
        monkeypatch.setattr(events.os.path, "isdir", lambda p: False)
        os.eventfd_write(w.fds[0], 1)                # the kernel's "cgroup removed" wakeup
        assert w.wait(0) == 0
    finally:
        w.close()


@pytest.mark.parametrize("text, want", [
    ("100", 100), ("100M", 100 << 20), ("100m", 100 << 20), ("1.5g", 3 << 29), ("512k", 512 << 10),
    ("512 KiB", 512 << 10), ("2gb", 2 << 30), ("1T", 1 << 40), ("0", 0)])
def test_ram_in_bytes(text, want):
    assert ram_in_bytes(text) == want


@pytest.mark.parametrize("text", ["", "-1", "12Q", "M", "1..2M", "1.2.3", "10 M B"])
def test_ram_in_bytes_refuses(text):
    with pytest.raises(UsageError, match="invalid size"):
        ram_in_bytes(text, "memory")


@pytest.mark.parametrize("text, want", [
    ("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0), ("1.5h", 5400.0), ("0", 0.0), ("2us", 2e-6),
    ("2\u00b5s", 2e-6), ("100ns", 1e-7), ("+3s", 3.0), ("-1s", -1.0), (".5s", 0.5)])
def test_go_duration(text, want):
    assert go_duration(text) == pytest.approx(want)


@pytest.mark.parametrize("text", ["", "5", "1x", "s", "1s2", "1 s", "--1s"])
def test_go_duration_refuses(text):
    with pytest.raises(UsageError, match="invalid duration"):
        go_duration(text, "--interval")


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_events_stats_and_snapshots_read_the_same_numbers(tmp_path, layout):
    """One reader (mrunc.cgroups.usage): runc's document, Manager.stats and the snapshot of a pid
    in that cgroup (found through its /proc/<pid>/cgroup and the host's mountinfo) agree."""
    from mrunc import snapshot
    if layout == "v1":
        mgr = v1_tree(tmp_path)
        cgroup = "".join(f"{i}:{c}:/c1\n" for i, c in enumerate(V1, 2))
        mounts = "".join(f"{40 + i} 31 0:{30 + i} / /cg1/{c} rw - cgroup cgroup rw,{c}\n"
                         for i, c in enumerate(V1))
        want = {"memory": {"current": 4096, "peak": 8192, "limit": 64 << 20, "oom_kills": None},
                "cpu": {"usage_usec": 3000}, "pids": {"current": 2, "limit": None},
                "io": {"read_bytes": 100, "write_bytes": 20}}
    else:
        mgr = v2_tree(tmp_path)
        cgroup, mounts = "0::/c1\n", "30 23 0:26 / /cg2 rw - cgroup2 cgroup2 rw\n"
        want = {"memory": {"current": 4096, "peak": 8192, "limit": None, "oom_kills": 1},
                "cpu": {"usage_usec": 5000}, "pids": {"current": 1, "limit": 20},
                "io": {"read_bytes": 100, "write_bytes": 20}}
    put(tmp_path / "proc" / "7", {"cgroup": cgroup})
    put(tmp_path / "proc" / "1", {"mountinfo": mounts})
    assert mgr.stats() == want
    snap = snapshot.read_cgroup(7, str(tmp_path / "proc"), "1", str(tmp_path))
    assert (snap.memory_current, snap.memory_peak, snap.memory_limit, snap.oom_kills) == \
        tuple(want["memory"].values())
    assert (snap.cpu_usage_usec, snap.pids_current, snap.pids_limit) == \
        (want["cpu"]["usage_usec"], *want["pids"].values())
    doc = runc_stats(mgr)
    usage = doc["memory"]["usage"]
    assert (usage["usage"], usage["max"], usage["limit"]) == \
        (4096, 8192, want["memory"]["limit"] or MAX_U64)
    assert doc["cpu"]["usage"]["total"] == want["cpu"]["usage_usec"] * 1000
    assert doc["pids"] == {k: v for k, v in want["pids"].items() if v}
    io = doc["blkio"]["ioServiceBytesRecursive"]
    assert [(e["op"], e["value"]) for e in io] == [("Read", 100), ("Write", 20)]
