"""`mrunc run --trace` of real containers: every call of every process, in the phase it ran in.

The unit test (tests/unit/test_phase_record.py) pins the merge against a fake host; here the
kernel is real: the cgroup the runtime made and filled, the user namespace whose maps it wrote,
init's execve. The trace's text is parsed back into (phase, who, pid, call, args)."""
import ast
import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

from conftest import REPO, ROOTFS

pytestmark = pytest.mark.root

LINE = re.compile(r"^  (\w+)\[(\d+|\?)\]\s+(?:[\d.]+ ms)?\s+(\w+)\((.*)\)(?:  × \d+)?(?:  = (\S+))?$")
LIMIT = 48 << 20
PIDS_MAX = ("/sys/fs/cgroup/pids.max" if os.path.exists("/sys/fs/cgroup/cgroup.controllers")
            else "/sys/fs/cgroup/pids/pids.max")       # as the container sees its own cgroup
MAP = "0 100000 65536\n"


def parse(trace):
    """{phase: [(who, pid, call, args)]}, and the notes, from --trace's text."""
    phases, notes, cur = {}, [], None
    for line in trace.splitlines():
        if line.startswith("mrunc: phase "):
            cur = phases.setdefault(line.split()[2], [])
            continue
        m = LINE.match(line)
        if m and cur is not None:
            who, pid, call, args, _end = m.groups()
            try:
                parsed = list(ast.literal_eval(f"({args},)")) if args else []
            except (ValueError, SyntaxError):        # a folded run: 'path', {a, b, …}
                first, _, rest = args.partition(", {")
                parsed = [ast.literal_eval(first), "{" + rest]
            cur.append((who, int(pid) if pid.isdigit() else None, call, parsed))
        elif line.strip().startswith("^ "):
            notes.append((cur, line.strip()[2:]))
    return phases, notes


def calls(phase, who=None, call=None):
    return [c for c in phase if (who is None or c[0] == who) and (call is None or c[2] == call)]


@pytest.mark.both_layouts
@pytest.mark.userns
@pytest.mark.parametrize("cgroupns", [True, False], ids=["own-cgroupns", "cgroup-dirs-bound"])
def test_run_trace_shows_the_runtimes_cgroup_and_id_map_calls(mr, cgroupns):
    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = [
            {"containerID": 0, "hostID": 100000, "size": 65536}]
        if cgroupns:
            cfg["linux"]["namespaces"].append({"type": "cgroup"})
        cfg["linux"]["resources"] = {"memory": {"limit": LIMIT}, "pids": {"limit": 77}}
    cid = mr.new_id()
    p = mr.cli("run", "--trace", "--bundle", mr.bundle(edit, args=["cat", PIDS_MAX]), cid, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "77"      # the limit the trace says was written, seen from inside
    phases, notes = parse(p.stderr)
    assert list(phases) == ["spec", "clone", "mount", "pivot_root", "cgroup", "security", "exec"]

    # spec: the checks that really ran
    assert {"check_namespaces", "check_id_mappings", "check_resources"} <= \
        {c[3][0] for c in calls(phases["spec"], "runtime", "check")}

    # clone: the runtime writes the maps of the clone child, between its unshare and setresuid
    clone = phases["clone"]
    (unshare_user,) = [c for c in clone if c[2] == "unshare" and c[3] == ["CLONE_NEWUSER"]]
    child = unshare_user[1]
    maps = [c for c in calls(clone, "runtime", "write")]
    assert [c[3] for c in maps] == [[f"/proc/{child}/uid_map", MAP], [f"/proc/{child}/gid_map", MAP]]
    assert clone.index(unshare_user) < clone.index(maps[0])
    assert clone.index(maps[-1]) < clone.index(calls(clone, "clone", "setresuid")[0])

    # cgroup: the limits, then init moved in, by the runtime; mkdir in this phase or, when the
    # dirs are bound into the rootfs, in the mount phase, with the reason
    cg = phases["cgroup"]
    init_pid = next(c[1] for c in phases["security"] if c[0] == "init")
    writes = {os.path.basename(c[3][0]): c[3][1] for c in calls(cg, "runtime", "write")}
    assert writes["pids.max"] == "77"
    assert writes.get("memory.max", writes.get("memory.limit_in_bytes")) == str(LIMIT)
    procs = [c for c in calls(cg, "runtime", "write") if c[3][0].endswith("/cgroup.procs")]
    assert procs and all(c[3][1] == str(init_pid) for c in procs)
    first_proc = cg.index(procs[0])
    assert all(cg.index(c) < first_proc for c in calls(cg, "runtime", "write")
               if not c[3][0].endswith("/cgroup.procs"))
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):     # v2: the device filter
        bpf = [c[3][0] for c in calls(cg, "runtime", "bpf")]
        assert bpf[-2:] == ["BPF_PROG_LOAD", "BPF_PROG_ATTACH"], cg
        assert cg.index(calls(cg, "runtime", "bpf")[-1]) < first_proc
    made_in = "cgroup" if cgroupns else "mount"
    made = calls(phases[made_in], "runtime", "mkdir")
    assert made and any(c[3][0].endswith("/" + cid) for c in made), phases[made_in]
    assert not calls(phases["cgroup" if made_in == "mount" else "mount"], "runtime", "mkdir")
    if cgroupns:       # init's own cgroup namespace: made once it is in its cgroup
        (unshare,) = calls(cg, "init", "unshare")
        assert unshare[3] == ["CLONE_NEWCGROUP"] and cg.index(unshare) > cg.index(procs[-1])
    else:
        assert any(ph is phases["mount"] and "bound into the rootfs" in n for ph, n in notes)

    # exec: init's calls, sent through exec.fifo, ending with the execve of the resolved path
    ex = phases["exec"]
    assert calls(ex, "init", "open")[0][3][0] == "exec.fifo"
    assert calls(ex, "init", "execve")[-1][3] == ["/bin/cat", ["cat", PIDS_MAX]]
    assert calls(ex, "runtime", "read")[0][3][0].endswith("/exec.fifo")


@pytest.mark.userns
def test_trace_shows_the_runtimes_helper_opening_a_bind_source(mr, tmp_path):
    """Root, a user namespace and a bind mount: the runtime's helper opens the source from inside
    the container's mount namespace (mrunc.process.sources). Its calls are in the mount phase,
    under its own pid: sent home only because someone reads the record (SourceHelper's
    `recording`)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello").write_text("from the host\n")

    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = [
            {"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": str(src),
                              "options": ["rbind", "ro"]})
    p = mr.cli("run", "--trace", "--bundle", mr.bundle(edit, args=["cat", "/mnt/hello"]),
               mr.new_id(), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "from the host\n"
    mount = parse(p.stderr)[0]["mount"]
    (opened,) = [c for c in calls(mount, "runtime", "open_tree") if c[3][0] == str(src)]
    helper = opened[1]
    joined = [c for c in calls(mount, "runtime", "setns") if c[1] == helper]
    assert joined and mount.index(joined[0]) < mount.index(opened), mount
    assert helper not in {c[1] for c in calls(mount, "init")}


@pytest.mark.userns
def test_rootless_trace_shows_setgroups_and_the_maps(tmp_path):
    """As a user without privileges: setgroups "deny" first, then the maps — by the runtime."""
    home = tempfile.mkdtemp(prefix="mrunc-trace-")
    os.chmod(home, 0o755)
    try:
        os.chown(home, 65534, 65534)
        from mrunc import spec
        cfg = spec.default_config(rootless=True)
        cfg["root"]["path"] = ROOTFS
        cfg["process"].update(terminal=False, args=["true"])
        cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = [
            {"containerID": 0, "hostID": 65534, "size": 1}]
        with open(os.path.join(home, "config.json"), "w") as f:
            json.dump(cfg, f)
        p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env",
                            "HOME=" + home, "XDG_RUNTIME_DIR=" + home, sys.executable, "-m",
                            "mrunc", "--root", os.path.join(home, "state"), "run", "--trace",
                            "--bundle", home, "rootless-trace"],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
        if "unshare(CLONE_NEWUSER)" in p.stderr and p.returncode != 0:
            pytest.skip(f"no unprivileged user namespaces here: {p.stderr.strip()}")
        assert p.returncode == 0, p.stderr
        phases, _notes = parse(p.stderr)
        clone = phases["clone"]
        child = next(c[1] for c in clone if c[2] == "unshare" and c[3] == ["CLONE_NEWUSER"])
        assert [c[3] for c in calls(clone, "runtime", "write")] == [
            [f"/proc/{child}/setgroups", "deny"], [f"/proc/{child}/uid_map", "0 65534 1\n"],
            [f"/proc/{child}/gid_map", "0 65534 1\n"]]
        assert calls(phases["exec"], "init", "execve")[-1][3][0] == "/bin/true"
    finally:
        subprocess.run(["rm", "-rf", home])
