"""On a cgroup v1 (or hybrid) host, init moves itself into its v1 cgroups — "0" into each `tasks`
file, opened by the runtime and handed over once the limits are written — and, on a hybrid host,
is born in its cgroup of the unified tree (clone3 CLONE_INTO_CGROUP): nobody writes a pid into a
cgroup.procs, so nobody waits for the kernel's migration lock, and the warm-up thread
(mrunc.cgroups.warm) is not started. Checked against the kernel (/proc/<pid>/cgroup, the limit
files), the trace (who made which call, in which order) and strace (what really ran)."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO
from mrunc import cgroups
from test_cgroup_warm import STRACE, THREAD, _hierarchies, _straced
from test_trace import calls, parse

LAYOUT = cgroups.detect()
pytestmark = [pytest.mark.root, pytest.mark.cgroup_v1,
              pytest.mark.skipif(LAYOUT not in ("v1", "hybrid"),
                                 reason=f"needs cgroup v1 controllers; this host is {LAYOUT}")]
LIMIT = 48 << 20
NOT_HOST_ROOT = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def _limits(cfg):
    cfg["linux"]["resources"] = {"memory": {"limit": LIMIT}, "pids": {"limit": 77}}


def _mounted():
    """{controllers field of /proc/<pid>/cgroup: mountpoint} of the hierarchies mounted under
    /sys/fs/cgroup (read by the test, not by mrunc's parser)."""
    return {ctrls: mp for ctrls, mp, _path in _hierarchies()}


def _cgroups_of(pid):
    with open(f"/proc/{pid}/cgroup") as f:
        return dict(line.rstrip("\n").split(":", 2)[1:] for line in f)


def test_init_is_in_every_cgroup_with_its_limits_before_the_program_runs(mr):
    """After `create` (the program has not run: init waits on exec.fifo), init is in the
    container's cgroup of every hierarchy, v1 and unified, and the limits are there."""
    cid = mr.new_id()
    p = mr.cli("create", "--bundle", mr.bundle(_limits, args=["true"]), cid, timeout=60)
    assert p.returncode == 0, p.stderr
    st = json.loads(mr.cli("state", cid).stdout)
    assert st["status"] == "created"
    seen = _cgroups_of(st["pid"])
    mounted = _mounted()
    assert set(mounted) <= set(seen), (mounted, seen)
    for ctrls, mp in mounted.items():
        assert seen[ctrls].endswith("/" + cid), (ctrls, seen[ctrls])
    pids, memory = (os.path.join(mounted[c], seen[c].lstrip("/")) for c in ("pids", "memory"))
    with open(os.path.join(pids, "pids.max")) as f:
        assert f.read().strip() == "77"
    with open(os.path.join(memory, "memory.limit_in_bytes")) as f:
        assert int(f.read()) == LIMIT
    with open(os.path.join(pids, "tasks")) as f:
        assert f.read().split() == [str(st["pid"])]      # init, one thread, and no one else


@pytest.mark.parametrize("userns", [None, "host-root"], ids=["no-userns", "userns-host-root"])
def test_trace_shows_init_joining_after_the_limits(mr, userns):
    """The record's truth: the runtime writes the limits, then init writes "0" into the `tasks`
    file of each v1 cgroup, in the cgroup phase; on a hybrid host the runtime made the unified
    cgroup before init was forked, and the clone child forked init into it (clone phase).
    Nobody writes a cgroup.procs."""
    def edit(cfg):
        _limits(cfg)
        if userns:
            cfg["linux"]["namespaces"].append({"type": "user"})
            cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = [
                {"containerID": 0, "hostID": 0, "size": 65536}]
    cid = mr.new_id()
    p = mr.cli("run", "--trace", "--bundle", mr.bundle(edit, args=["true"]), cid, timeout=60)
    assert p.returncode == 0, p.stderr
    phases, _notes = parse(p.stderr)
    init_pid = next(c[1] for c in phases["security"] if c[0] == "init")
    cg = phases["cgroup"]
    tasks = calls(cg, "init", "write")
    assert tasks and all(c[3][0].endswith("/tasks") and c[3][1] == "0" and c[1] == init_pid
                         for c in tasks), tasks
    mounted = _mounted()
    v1 = {mp for k, mp in mounted.items() if k}
    assert {c[3][0].rsplit("/", 1)[0].split("/")[3] for c in tasks} == \
        {mp.split("/")[3] for mp in v1}          # one per v1 hierarchy
    limits = [c for c in calls(cg, "runtime", "write")
              if os.path.basename(c[3][0]) in ("pids.max", "memory.limit_in_bytes")]
    assert len(limits) == 2
    assert max(cg.index(c) for c in limits) < cg.index(tasks[0])
    every = [c for ph in phases.values() for c in ph]
    assert not [c for c in every if c[2] == "write" and c[3][0].endswith("/cgroup.procs")]
    if "" in mounted:      # hybrid: born in the unified cgroup
        clone = phases["clone"]
        (born,) = calls(clone, "clone", "clone3")
        assert born[3][0] == "CLONE_INTO_CGROUP" and born[3][1].startswith(mounted[""])
        assert born[3][1].endswith("/" + cid)
        (made,) = [c for c in calls(clone, "runtime", "mkdir") if c[3][0] == born[3][1]]
        assert clone.index(made) < clone.index(born)


WRITE = re.compile(r'^(\d+) +write\(\d+<([^>]*/(?:cgroup\.procs|tasks))>, "(\d+)"')


def _run_straced(mr, edit):
    """`mrunc run` of a `true` bundle under strace: (the runtime's pid, its threads' parents,
    [(writer pid, cgroup.procs or tasks path, what was written)])."""
    p, runtime, lines = _straced(
        [sys.executable, "-m", "mrunc", "--root", mr.root, "run", "--bundle",
         mr.bundle(edit, args=["true"]), mr.new_id()], cwd=REPO, capture_output=True,
        text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    threads = {int(m.group(1)) for m in map(THREAD.match, lines) if m}
    return runtime, threads, [m.groups() for m in map(WRITE.match, lines) if m]


@pytest.mark.skipif(STRACE is None, reason="strace is not installed (make setup installs it)")
def test_no_warm_up_and_no_procs_write_where_init_joins_itself(mr):
    """Seen by strace: the runtime starts no thread (no warm-up: nothing to warm for), nothing
    is written into any cgroup.procs, and "0" goes into `tasks` from one process, init."""
    runtime, threads, writes = _run_straced(mr, _limits)
    assert runtime not in threads
    assert not [w for w in writes if w[1].endswith("/cgroup.procs")], writes
    tasks = [w for w in writes if w[1].endswith("/tasks")]
    assert len(tasks) == len([k for k in _mounted() if k])
    assert {w[2] for w in tasks} == {"0"} and len({w[0] for w in tasks}) == 1
    assert int(tasks[0][0]) != runtime


@pytest.mark.userns
@pytest.mark.skipif(STRACE is None, reason="strace is not installed (make setup installs it)")
def test_a_user_namespace_without_the_host_root_still_joins_with_the_warm_up(mr):
    """A user namespace that maps root to an unprivileged host uid: init still joins its v1
    cgroups itself (the `tasks` files were opened by the runtime, whose credentials v1 checks),
    but may not be born in the unified cgroup of a hybrid host: there the runtime moves it
    through cgroup.procs, after warming the lock (its thread writes its own pid)."""
    def edit(cfg):
        _limits(cfg)
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = NOT_HOST_ROOT
    runtime, threads, writes = _run_straced(mr, edit)
    tasks = [w for w in writes if w[1].endswith("/tasks")]
    assert len(tasks) == len([k for k in _mounted() if k]) and {w[2] for w in tasks} == {"0"}
    init = int(tasks[0][0])
    procs = [w for w in writes if w[1].endswith("/cgroup.procs")]
    if "" in _mounted():
        assert [w for w in procs if w[2] == str(init)], writes        # the unified tree
        assert runtime in threads
    else:
        assert not [w for w in procs if w[2] == str(init)], writes
