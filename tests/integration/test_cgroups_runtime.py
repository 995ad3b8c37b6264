"""Resource control through the real CLI: limits that bite, update, pause/resume, events, ps,
kill --all, delete — checked from inside the container (busybox) where possible.

    .venv/bin/python -m pytest -q tests/integration/test_cgroups_runtime.py               # v1 here
    ../shared/tools/cgroup2-vm -- .venv/bin/python -m pytest -q -m cgroup_v2 \\
        tests/integration/test_cgroups_runtime.py                                         # pure v2

Every test is parametrized by the layout it needs (`v1` covers hybrid hosts); only the host's
runs. Containers get a cgroup namespace where the test reads /sys/fs/cgroup from inside, so the
container's own cgroup is the root of what it sees. The `mr` fixture deletes (--force) every
container, and so its cgroup, even when a test fails.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from mrunc import cgroups
from mrunc.cgroups.layout import hierarchies, under_mount

LAYOUT = cgroups.detect()
V1 = pytest.param("v1", marks=[pytest.mark.cgroup_v1, pytest.mark.skipif(
    LAYOUT not in ("v1", "hybrid"), reason=f"needs cgroup v1 controllers; this host is {LAYOUT}")])
V2 = pytest.param("v2", marks=[pytest.mark.cgroup_v2, pytest.mark.skipif(
    LAYOUT != "v2", reason=f"needs pure cgroup v2 (run through ../shared/tools/cgroup2-vm); "
                           f"this host is {LAYOUT}")])
BOTH = [V1, V2]
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create cgroups")]

MiB = 1 << 20
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# In the VM (TCG emulation) everything is ~20-50x slower: scale the waits, not the assertions.
SLOW = 8 if LAYOUT == "v2" else 1


def inside(layout, controller, name):
    """Where a cgroup file is seen from inside a container with its own cgroup namespace."""
    return f"/sys/fs/cgroup/{name}" if layout == "v2" else f"/sys/fs/cgroup/{controller}/{name}"


def edit(resources=None, cgroupns=True, out=None, caps=()):
    def _edit(cfg):
        lin = cfg["linux"]
        for key, value in (resources or {}).items():
            if key == "devices":
                lin["resources"]["devices"] += value
            else:
                lin["resources"][key] = value
        if cgroupns:
            lin["namespaces"].append({"type": "cgroup"})
        if out is not None:
            cfg["mounts"].append({"destination": "/tmp", "type": "bind", "source": str(out),
                                  "options": ["rbind", "rw"]})
        for cap in caps:
            for kind in ("bounding", "effective", "permitted"):
                cfg["process"]["capabilities"][kind].append(cap)
    return _edit


def outdir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def start(mr, script, **kw):
    """`run -d` a busybox `sh -c script`; return the id."""
    cid = mr.new_id()
    b = mr.bundle(edit(**kw), args=["sh", "-c", script])
    mr.cli("run", "-d", "--bundle", b, cid, check=True)
    return cid


def state(mr, cid):
    return json.loads(mr.cli("state", cid, check=True).stdout)


def saved(mr, cid):
    with open(os.path.join(mr.root, cid, "state.json")) as f:
        return json.load(f)


def manager(mr, cid):
    cg = saved(mr, cid)["cgroup"]
    return cgroups.manager(cg["path"], cid, paths=cg["paths"])


def host_file(mr, cid, controller, name):
    mgr = manager(mr, cid)
    with open(os.path.join(mgr.dir("" if mgr.layout == "v2" else controller), name)) as f:
        return f.read().strip()


def wait_for(check, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def one_line_error(p, *words):
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mrunc: "), p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


class Popen:
    """A long-running mrunc command (events), stdout to a file, killed if still running."""

    def __init__(self, mr, tmp_path, *args):
        self.out = tmp_path / f"popen-{len(os.listdir(tmp_path))}.out"
        self.f = open(self.out, "w")
        self.p = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, *args],
                                  stdout=self.f, stderr=subprocess.STDOUT, cwd=REPO)

    def lines(self):
        return [json.loads(x) if x.startswith("{") else x for x in read(self.out).splitlines()]

    def close(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.f.close()


@pytest.fixture
def popen(mr, tmp_path):
    made = []

    def make(*args):
        made.append(Popen(mr, tmp_path, *args))
        return made[-1]
    yield make
    for p in made:
        p.close()


# ---- limits that bite --------------------------------------------------------------------------

@pytest.mark.parametrize("layout", BOTH)
def test_memory_limit_oom_kills_and_events_reports_it(mr, tmp_path, popen, layout):
    out = outdir(tmp_path)
    # `tail` keeps the last 10 lines of its input: /dev/zero has no newline, so it keeps it all.
    cid = start(mr, "while [ ! -e /tmp/go ]; do sleep 0.1; done; tail /dev/zero; "
                    "echo tail=$? > /tmp/result",
                resources={"memory": {"limit": 32 * MiB, "swap": 32 * MiB}}, out=out)
    ev = popen("events", "--interval", "1s", cid)
    wait_for(lambda: ev.lines(), 20, "the first stats event")      # the OOM watch is set up
    (out / "go").write_text("")
    assert ev.p.wait(timeout=60 * SLOW) == 0, ev.lines()          # events ends with the container
    assert read(out / "result").strip() == "tail=137"               # SIGKILLed by the OOM killer
    lines = ev.lines()
    assert {"type": "oom", "id": cid} in lines, lines
    stats = [e for e in lines if e.get("type") == "stats"]
    assert stats and stats[0]["id"] == cid
    assert stats[0]["data"]["memory"]["usage"]["limit"] == 32 * MiB


@pytest.mark.parametrize("layout", BOTH)
def test_pids_limit_makes_fork_fail(mr, layout):
    p = mr.run("sh", "-c", f"cat {inside(layout, 'pids', 'pids.max')}; "
                           "for i in 1 2 3 4 5 6 7 8; do sleep 10 & done; echo all started",
               edit=edit({"pids": {"limit": 5}}))
    assert p.stdout.splitlines()[0] == "5"
    assert "can't fork" in p.stderr and "all started" not in p.stdout, (p.stdout, p.stderr)
    assert p.returncode != 0


@pytest.mark.parametrize("layout", BOTH)
def test_cpu_quota_slows_a_busy_loop(mr, layout):
    """A busy loop for ≈ 2 s with and without a 20% quota. The share of a CPU the kernel gave the
    loop (utime+stime of the shell that runs it, over its life by /proc/uptime) is what the quota
    caps, whatever else the machine runs; loop counts are compared only when the unlimited loop
    got the CPU to show a difference (on a loaded machine it may get 20% of a core on its own)."""
    stat = inside(layout, "cpu", "cpu.stat")
    script = (f"read t0 _ < /proc/uptime; i=0; "
              f"trap 'echo $i; echo $t0; cat /proc/uptime /proc/$$/stat {stat}; exit 0' TERM; "
              "(sleep 2; kill $$) & while :; do i=$((i+1)); done")
    tick = os.sysconf("SC_CLK_TCK")

    def count(resources):
        p = mr.run("sh", "-c", script, edit=edit(resources), timeout=60 * SLOW)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.split("\n")
        elapsed = float(lines[2].split()[0]) - float(lines[1])   # the loop's life, by uptime
        fields = lines[3].rsplit(")", 1)[1].split()      # after "pid (comm)": state is [0]
        cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime, seconds
        stat = dict(line.split() for line in lines[4:] if line.strip())
        return int(lines[0]), cpu / elapsed, stat
    free, free_share, _ = count({})
    slow, slow_share, cpustat = count({"cpu": {"quota": 20000, "period": 100000}})
    assert slow_share <= 0.2 * 1.5, (slow_share, "of a CPU under a 20% quota")
    if free_share >= 0.5:            # the machine had half a core to give: the quota shows
        assert free / slow > 2.5, (free, slow, free_share, slow_share)
        assert cpustat["nr_throttled"] != "0"      # the kernel says so too


@pytest.mark.parametrize("layout", BOTH)
def test_device_deny_rule_makes_open_fail(mr, layout):
    """/dev/fuse (10:229): allowed rw, then read denied by a later rule. The node is made inside
    (CAP_MKNOD), so only the cgroup decides: open for read is EPERM, open for write is not."""
    rules = [{"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
             {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "r"}]
    p = mr.run("sh", "-c", "mknod /dev/x c 10 229 || exit 9; (true < /dev/x); echo read=$?; "
                           "(true > /dev/x); echo write=$?",
               edit=edit({"devices": rules}, cgroupns=False, caps=["CAP_MKNOD"]))
    assert p.returncode == 0, p.stderr
    assert "read=1" in p.stdout and "can't open /dev/x: Operation not permitted" in p.stderr
    # allowed: opens (or, without the fuse driver, fails for another reason than EPERM)
    assert p.stderr.count("Operation not permitted") == 1, p.stderr


# ---- update ------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", BOTH)
def test_update_changes_the_limits_of_a_running_container(mr, tmp_path, layout):
    out = outdir(tmp_path)
    files = [inside(layout, "memory", "memory.max" if layout == "v2" else "memory.limit_in_bytes"),
             inside(layout, "pids", "pids.max"),
             inside(layout, "cpu", "cpu.max" if layout == "v2" else "cpu.cfs_quota_us")]
    cid = start(mr, f"while :; do cat {' '.join(files)} > /tmp/limits; sleep 0.2; done",
                resources={"memory": {"limit": 64 * MiB}, "pids": {"limit": 50}}, out=out)

    def seen():   # the loop rewrites the file: retry until it is whole
        return wait_for(lambda: (lambda v: v if len(v) == 3 and all(v) else None)(
            read(out / "limits").split("\n")[:3]), what="a whole /tmp/limits")

    quota = "max 100000" if layout == "v2" else "-1"
    wait_for(lambda: seen() == [str(64 * MiB), "50", quota], what="the initial limits")
    mr.cli("update", "--memory", "48M", "--pids-limit", "33", "--cpu-quota", "30000",
           "--cpu-period", "100000", cid, check=True)
    quota = "30000 100000" if layout == "v2" else "30000"
    wait_for(lambda: seen() == [str(48 * MiB), "33", quota], what="the flags' limits inside")

    # --resources from stdin and from a file: a bare linux.resources object
    mr.cli("update", "--resources", "-", cid, input='{"pids": {"limit": 44}}', check=True)
    wait_for(lambda: seen()[1] == "44", what="pids.max 44 from stdin")
    res = tmp_path / "res.json"
    res.write_text(json.dumps({"memory": {"limit": 40 * MiB}}))
    mr.cli("update", "-r", str(res), cid, check=True)
    wait_for(lambda: seen()[0] == str(40 * MiB), what="memory 40M from a file")
    assert host_file(mr, cid, "pids", "pids.max") == "44"

    # the state file keeps the merged limits for the next update
    with open(os.path.join(mr.root, cid, "config.json")) as f:
        r = json.load(f)["linux"]["resources"]
    assert r["memory"] == {"limit": 40 * MiB} and r["pids"] == {"limit": 44}
    assert r["cpu"] == {"quota": 30000, "period": 100000}

    # checkBeforeUpdate refuses a limit below the current usage, and changes nothing
    p = mr.cli("update", "-r", "-", cid, input='{"memory": {"limit": 4096, "checkBeforeUpdate": true}}')
    one_line_error(p, "linux.resources.memory.limit", "below current usage")
    assert seen()[0] == str(40 * MiB)
    if layout == "v1":      # without the check, v1 refuses what it cannot reclaim (v2 OOM-kills)
        one_line_error(mr.cli("update", "--memory", "4k", cid), "unable to set memory limit to 4096")
    one_line_error(mr.cli("update", "-r", "-", cid, input='{"memory": {"limit": "x"}}'),
                   "linux.resources.memory.limit")
    one_line_error(mr.cli("update", "-r", "-", cid, input="{nope"), "invalid JSON")
    one_line_error(mr.cli("update", "--memory", "12Q", cid), "invalid size")
    mr.cli("kill", cid, "KILL", check=True)
    wait_for(lambda: state(mr, cid)["status"] == "stopped", what="stopped")
    one_line_error(mr.cli("update", "--pids-limit", "9", cid), "container not running")


# ---- pause / resume ----------------------------------------------------------------------------

@pytest.mark.parametrize("layout", BOTH)
def test_pause_freezes_and_resume_thaws(mr, tmp_path, layout):
    out = outdir(tmp_path)
    cid = start(mr, "i=0; while :; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done", out=out)
    count = lambda: int(read(out / "n").strip() or 0)   # noqa: E731
    wait_for(lambda: count() > 2, what="the counter")
    pid = state(mr, cid)["pid"]

    mr.cli("pause", cid, check=True)
    assert state(mr, cid)["status"] == "paused"
    proc_state = read(f"/proc/{pid}/status").split("State:")[1].split()[0]
    assert proc_state in ("D", "S"), proc_state          # v1 freezer: D; v2: S
    assert manager(mr, cid).freezer_state() == "frozen"
    before = count()
    time.sleep(0.5 * min(SLOW, 4))
    assert count() == before, "the counter moved while paused"
    one_line_error(mr.cli("pause", cid), "container not running")
    # kill takes a paused container as a running one (it reads no freezer: see api.kill)
    mr.cli("kill", cid, "CONT", check=True)
    assert state(mr, cid)["status"] == "paused"

    mr.cli("resume", cid, check=True)
    assert state(mr, cid)["status"] == "running"
    wait_for(lambda: count() > before + 2, what="the counter to move again")
    one_line_error(mr.cli("resume", cid), "container not paused")

    # a paused container can be deleted --force (thawed, killed, cgroup removed)
    mr.cli("pause", cid, check=True)
    mgr = manager(mr, cid)
    mr.cli("delete", "--force", cid, check=True)
    assert not mgr.exists()
    one_line_error(mr.cli("pause", cid), "does not exist")

    created = mr.new_id()
    mr.cli("create", "--bundle", mr.bundle(args=["true"]), created, check=True)
    one_line_error(mr.cli("pause", created), "container not running (status created)")


# ---- ps, kill --all, events --stats --------------------------------------------------------------

@pytest.mark.parametrize("layout", BOTH)
def test_ps_lists_the_container_processes_and_kill_all_ends_them(mr, layout):
    cid = start(mr, "sleep 1000 & sleep 1000 & wait", cgroupns=False)
    init = state(mr, cid)["pid"]
    pids = wait_for(lambda: (lambda p: p if len(p) == 3 else None)(
        json.loads(mr.cli("ps", "--format", "json", cid, check=True).stdout)), what="3 processes")
    assert init in pids
    for pid in pids:
        assert read(f"/proc/{pid}/cmdline").split("\0")[0] in ("sh", "sleep")

    table = mr.cli("ps", cid, check=True).stdout.splitlines()
    assert "PID" in table[0].split() and len(table) == 4
    col = table[0].split().index("PID")
    assert sorted(int(line.split()[col]) for line in table[1:]) == sorted(pids)
    table = mr.cli("ps", cid, "-o", "pid,comm", check=True).stdout.splitlines()   # ps's own options
    assert table[0].split() == ["PID", "COMMAND"] and len(table) == 4

    mr.cli("kill", "--all", cid, "KILL", check=True)
    wait_for(lambda: json.loads(mr.cli("ps", "-f", "json", cid).stdout) == [], what="no process left")
    assert state(mr, cid)["status"] == "stopped"
    one_line_error(mr.cli("ps", "-f", "json", "nosuchid"), "does not exist")


@pytest.mark.parametrize("layout", BOTH)
def test_events_stats_has_runcs_shape(mr, popen, layout):
    cid = start(mr, "sleep 1000 & sleep 1000", cgroupns=False,
                resources={"memory": {"limit": 64 * MiB}, "pids": {"limit": 20}})
    p = mr.cli("events", "--stats", cid, check=True)
    assert len(p.stdout.splitlines()) == 1
    ev = json.loads(p.stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    d = ev["data"]
    assert list(d) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                       "network_interfaces"]
    assert d["pids"] == {"current": 2, "limit": 20}
    assert d["memory"]["usage"]["limit"] == 64 * MiB and d["memory"]["usage"]["usage"] > 0
    assert {"limit", "failcnt"} <= set(d["memory"]["swap"]) and isinstance(d["memory"]["raw"], dict)
    assert d["cpu"]["usage"]["total"] > 0 and "throttling" in d["cpu"]
    # repeating stats, Go-style interval, until the container stops
    ev = popen("events", "--interval=300ms", cid)
    wait_for(lambda: len(ev.lines()) >= 2, what="two stats events")
    mr.cli("kill", cid, "KILL", check=True)
    assert ev.p.wait(timeout=20 * SLOW) == 0
    assert all(e["type"] == "stats" for e in ev.lines())
    one_line_error(mr.cli("events", "--stats", cid), "is not running")
    one_line_error(mr.cli("events", "--interval", "5", cid), "invalid duration")


# ---- delete ------------------------------------------------------------------------------------

def _named(cid):
    """Every directory called `cid` in any cgroup hierarchy on the host."""
    found = []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(top, d) for d in dirs if d == cid]
    return found


@pytest.mark.parametrize("layout", BOTH)
def test_delete_leaves_no_cgroup_directory(mr, layout):
    """Default cgroupsPath: <the caller's cgroup>/<id> in each hierarchy (on v2 beside it)."""
    cid = start(mr, "sleep 1000", cgroupns=False)
    dirs = manager(mr, cid).dirs()
    assert dirs and all(os.path.isdir(d) and d.endswith("/" + cid) for d in dirs)
    assert sorted(_named(cid)) == sorted(dirs)
    mr.cli("delete", "--force", cid, check=True)
    assert _named(cid) == []


@pytest.mark.parametrize("layout", BOTH)
def test_delete_kills_what_is_left_in_the_cgroup(mr, layout):
    """Without a pid namespace, a child outlives init: the container is stopped, but its cgroup
    is not empty. delete (no --force) kills the child and removes the cgroup."""
    cid = mr.new_id()
    b = mr.bundle(lambda cfg: cfg["linux"].update(namespaces=[
        n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]),
        args=["sh", "-c", "sleep 1000 & sleep 0.2"])
    mr.cli("run", "-d", "--bundle", b, cid, check=True)
    wait_for(lambda: state(mr, cid)["status"] == "stopped", what="init to exit")
    mgr = manager(mr, cid)
    left = mgr.pids()
    assert len(left) == 1 and read(f"/proc/{left[0]}/cmdline").startswith("sleep")
    mr.cli("delete", cid, check=True)
    assert _named(cid) == []
    stat = read(f"/proc/{left[0]}/stat")                   # gone, or a zombie nobody reaped yet
    assert not stat or stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"), stat


@pytest.mark.parametrize("layout", BOTH)
def test_delete_removes_the_cgroups_made_below_the_containers(mr, layout):
    """A container may make cgroups below its own (systemd or a runtime inside it does): its
    cgroup cannot be removed before them. delete removes each directory at once when it can,
    and otherwise walks it for its children and removes them deepest first."""
    cid = start(mr, "sleep 1000", cgroupns=False)
    made = [os.path.join(d, "made-inside", "deeper") for d in saved(mr, cid)["cgroup"]["dirs"]]
    for sub in made:
        os.makedirs(sub, exist_ok=True)     # two names may be one hierarchy (cpu, cpuacct)
    assert all(os.path.isdir(sub) for sub in made)
    mr.cli("kill", cid, "KILL", check=True)
    wait_for(lambda: state(mr, cid)["status"] == "stopped", what="init to die")
    mr.cli("delete", cid, check=True)
    assert _named(cid) == []
    assert [sub for sub in made if os.path.exists(sub)] == []


@pytest.mark.parametrize("layout", BOTH)
def test_delete_force_returns_once_every_process_is_dead(mr, layout):
    """A running container whose init ignores SIGTERM, with children that SIGKILL to init does
    not take along (no pid namespace): delete --force SIGKILLs every process of the cgroup and
    waits (asleep on pidfds: mrunc.gone) — when it returns, each one is dead (a zombie
    at most, read at that very moment), and no cgroup or state is left."""
    cid = mr.new_id()
    b = mr.bundle(lambda cfg: cfg["linux"].update(namespaces=[
        n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]),
        args=["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000 & sleep 1000 & wait"])
    mr.cli("run", "-d", "--bundle", b, cid, check=True)
    mgr = manager(mr, cid)
    pids = wait_for(lambda: len(mgr.pids()) == 4 and mgr.pids(), what="init and 3 children")
    mr.cli("kill", cid, "TERM", check=True)                # ignored: it keeps running
    assert state(mr, cid)["status"] == "running"
    mr.cli("delete", "--force", cid, check=True)
    stats = [read(f"/proc/{pid}/stat") for pid in pids]    # gone, or a zombie nobody reaped yet
    assert all(not s or s.rsplit(")", 1)[1].split()[0] in ("Z", "X") for s in stats), stats
    assert _named(cid) == [] and not os.path.exists(os.path.join(mr.root, cid))


# ---- what create records for the later commands (mrunc.cgroups.recorded) ----------------------

RECORDED = ("mounts", "dirs", "freezer")


def rewrite_state(mr, cid, change):
    """Edit the container's state.json in place (same file: its owner and mode stay)."""
    path = os.path.join(mr.root, cid, "state.json")
    data = saved(mr, cid)
    change(data["cgroup"])
    with open(path, "w") as f:
        json.dump(data, f)


@pytest.mark.parametrize("layout", BOTH)
def test_create_records_where_the_cgroup_is(mr, layout):
    """Each recorded directory holds init (the kernel's cgroup.procs), every hierarchy init is
    in is recorded, and the freezer file is the one of init's cgroup."""
    cid = start(mr, "sleep 1000", cgroupns=False)
    pid = state(mr, cid)["pid"]
    cg = saved(mr, cid)["cgroup"]
    kernel = _cgroup_dirs_of(pid)
    assert set(kernel.values()) <= set(cg["dirs"])
    for d in cg["dirs"]:
        assert str(pid) in read(os.path.join(d, "cgroup.procs")).split(), d
    assert {k: tuple(v) for k, v in cg["mounts"].items()} == dict(hierarchies()[1])
    assert cg["freezer"] == (os.path.join(kernel[""], "cgroup.freeze") if layout == "v2"
                             else os.path.join(kernel["freezer"], "freezer.state"))


@pytest.mark.parametrize("layout", BOTH)
def test_a_state_file_from_an_older_mrunc_still_works(mr, layout):
    """No mounts/dirs/freezer in state.json (written before create recorded them): every verb
    finds the cgroup again, as create did."""
    cid = start(mr, "sleep 1000", cgroupns=False)
    rewrite_state(mr, cid, lambda cg: [cg.pop(k) for k in RECORDED])
    assert not set(RECORDED) & set(saved(mr, cid)["cgroup"])
    mr.cli("pause", cid, check=True)
    assert state(mr, cid)["status"] == "paused"
    assert manager(mr, cid).freezer_state() == "frozen"
    mr.cli("resume", cid, check=True)
    assert state(mr, cid)["status"] == "running" and manager(mr, cid).freezer_state() == "thawed"
    assert _named(cid)
    mr.cli("kill", cid, "KILL", check=True)
    wait_for(lambda: state(mr, cid)["status"] == "stopped", what="init to die")
    mr.cli("delete", cid, check=True)
    assert _named(cid) == []


@pytest.mark.parametrize("layout", BOTH)
def test_recorded_paths_outside_the_cgroup_tree_are_not_trusted(mr, tmp_path, layout):
    """A recorded directory or freezer file outside /sys/fs/cgroup makes the whole record
    untrusted: a decoy "frozen" file does not make the container paused, delete does not rmdir
    a decoy directory, and the real cgroup is still found and removed."""
    cid = start(mr, "sleep 1000", cgroupns=False)
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    if layout == "v2":
        freeze = decoy / "cgroup.freeze"
        freeze.write_text("1\n")
        (decoy / "cgroup.events").write_text("populated 1\nfrozen 1\n")
    else:
        freeze = decoy / "freezer.state"
        freeze.write_text("FROZEN\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    rewrite_state(mr, cid, lambda cg: cg.update(dirs=cg["dirs"] + [str(empty)], freezer=str(freeze)))
    assert state(mr, cid)["status"] == "running"
    mr.cli("pause", cid, check=True)                # the real freezer, found again
    assert state(mr, cid)["status"] == "paused" and manager(mr, cid).freezer_state() == "frozen"
    mr.cli("delete", "--force", cid, check=True)
    assert _named(cid) == [] and empty.is_dir() and freeze.exists()


# ---- same limits, same files as runc -------------------------------------------------------------

def _cgroup_dirs_of(pid):
    """{file-owning controller: directory} for a process, from /proc/<pid>/cgroup."""
    layout, mounts = hierarchies()
    out = {}
    for line in read(f"/proc/{pid}/cgroup").splitlines():
        _, ctrls, path = line.split(":", 2)
        for c in (ctrls.split(",") if ctrls else [""]):
            if c in mounts and (layout == "v2" or c):
                mp, mroot = mounts[c]
                out[c] = os.path.join(mp, under_mount(path, mroot).lstrip("/"))
    return out


FILES = {"v1": [("memory", "memory.limit_in_bytes"), ("memory", "memory.soft_limit_in_bytes"),
                ("memory", "memory.memsw.limit_in_bytes"), ("cpu", "cpu.shares"),
                ("cpu", "cpu.cfs_quota_us"), ("cpu", "cpu.cfs_period_us"),
                ("cpuset", "cpuset.cpus"), ("cpuset", "cpuset.mems"), ("pids", "pids.max"),
                ("devices", "devices.list")],
         # cpu.weight skipped: runc 1.1.5 converts shares with an older formula
         "v2": [("", "memory.max"), ("", "memory.low"), ("", "memory.swap.max"), ("", "cpu.max"),
                ("", "cpuset.cpus"), ("", "cpuset.mems"), ("", "pids.max")]}


@pytest.mark.runc
@pytest.mark.parametrize("layout", BOTH)
def test_same_limits_read_back_the_same_as_runc(mr, tmp_path, layout):
    resources = {"memory": {"limit": 64 * MiB, "reservation": 32 * MiB, "swap": 96 * MiB},
                 "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
                 "pids": {"limit": 77}}
    if layout == "v2" and not os.path.exists("/sys/fs/cgroup/memory.swap.max"):
        del resources["memory"]["swap"]                   # no swap accounting in this kernel
    # v2: a cgroup namespace, because runc (1.1) mounts cgroup2 in the host's cgroup namespace
    # without one, and that resets the host hierarchy's nsdelegate/memory_recursiveprot (mrunc
    # binds instead): the host guard would rightly blame this test.
    bundle = mr.bundle(edit(resources, cgroupns=layout == "v2"), args=["sleep", "1000"])
    runc_root, rid = str(tmp_path / "runc-state"), "r" + mr.new_id()
    if layout == "v2":
        runc_root = f"/run/mrunc-test-runc-{rid}"            # no sockets on the VM's 9p share
    runc = [shutil.which("runc"), "--root", runc_root]
    try:
        # stdio to files: the detached container keeps them open (a pipe would never see EOF)
        with open(tmp_path / "runc.err", "w") as err:
            rc = subprocess.run([*runc, "run", "-d", "--bundle", bundle, rid], timeout=60,
                                stdin=subprocess.DEVNULL, stdout=err, stderr=err).returncode
        assert rc == 0, read(tmp_path / "runc.err")
        rpid = json.loads(subprocess.run([*runc, "state", rid], check=True, capture_output=True,
                                         text=True).stdout)["pid"]
        cid = mr.new_id()
        mr.cli("run", "-d", "--bundle", bundle, cid, check=True)
        theirs, ours = _cgroup_dirs_of(rpid), _cgroup_dirs_of(state(mr, cid)["pid"])
        for ctrl, name in FILES[layout]:
            want = read(os.path.join(theirs[ctrl], name)).strip()
            got = read(os.path.join(ours[ctrl], name)).strip()
            assert want, f"runc wrote no {name}"
            if name == "devices.list":      # the kernel lists exceptions in the order they came
                want, got = sorted(want.splitlines()), sorted(got.splitlines())
            assert got == want, name
    finally:
        subprocess.run([*runc, "delete", "--force", rid], capture_output=True, timeout=60)
        shutil.rmtree(runc_root, ignore_errors=True)


@pytest.mark.parametrize("layout", BOTH)
def test_kernel_memory_limits_the_kernel_lacks_warn_once_and_the_container_runs(mr, layout):
    """runc: memory.kernel and kernelTCP are ignored with a warning where the kernel has no such
    limit (Linux 5.16+ for kernel on v1; cgroup v2 has neither); the rest of the limits apply.
    v1 still has memory.kmem.tcp.limit_in_bytes: there kernelTCP is written."""
    from mrunc.cgroups.v1 import kmem_limit_works
    res = {"memory": {"limit": 64 * MiB, "kernel": 32 * MiB, "kernelTCP": 16 * MiB}}
    if layout == "v2":
        files, ignored, want = ["memory.max"], "kernel, kernelTCP", [str(64 * MiB)]
    else:
        files = ["memory.limit_in_bytes", "memory.kmem.tcp.limit_in_bytes"]
        ignored, want = "kernel", [str(64 * MiB), str(16 * MiB)]
        if kmem_limit_works():
            pytest.skip("this kernel still has kernel memory limits: nothing is ignored")
    cat = " ".join(inside(layout, "memory", f) for f in files)
    p = mr.run("cat", *cat.split(), edit=edit(res))
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == want
    assert p.stderr.splitlines() == [f"mrunc: warning: linux.resources.memory: ignoring {ignored}: "
                                     + ("cgroup v2 has no separate kernel memory limits (kernel "
                                        "memory counts towards memory.max)" if layout == "v2" else
                                        "Linux 5.16 and later have no kernel memory limit (kernel "
                                        "memory counts towards the memory limit)")]
