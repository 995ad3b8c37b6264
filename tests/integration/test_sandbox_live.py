"""The notebook API on real containers (root): stepping through every phase and checking, from the
snapshot of the paused init, the change that phase must cause; %%container in a real shell; OOM
kills seen by RunResult and by the live monitor; keep/exec/rm; the kernelspec in a real kernel;
and that a closed sandbox leaves nothing behind (processes, mounts, cgroups, directories)."""
import json
import os
import time
import uuid

import pytest

from conftest import ROOTFS, host_ns

from mrunc.sandbox import PHASES, Sandbox, SandboxError

pytestmark = pytest.mark.root
MiB = 1 << 20


@pytest.fixture
def lab():
    if not os.path.exists(os.path.join(ROOTFS, "bin", "busybox")):
        pytest.fail(f"busybox rootfs missing at {ROOTFS}: run `make rootfs`")
    sb = Sandbox(root=f"/run/mrunc-labtest-{uuid.uuid4().hex[:8]}", rootfs=ROOTFS)
    try:
        yield sb
    finally:
        names = list(sb.containers)
        sb.close()
        assert_nothing_left(sb, names)


def assert_nothing_left(sb, names):
    assert not os.path.exists(sb.root) and not os.path.exists(sb.work)
    with open("/proc/self/mountinfo") as f:
        assert sb.work not in f.read()
    for name in names:
        for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
            assert name not in dirnames, f"cgroup of {name} left in {dirpath}"
            if dirpath.count("/") > 6:
                dirnames[:] = []


@pytest.mark.both_layouts        # and in the cgroup v2 VM (make test-v2)
def test_each_phase_shows_its_change(lab):
    s = lab.step(args=["sleep", "600"], memory="32M", pids=20, hostname="stepped")
    steps = {}
    for step in s:
        assert step.error is None, step.error
        steps[step.phase] = step
    assert list(steps) == list(PHASES)
    snap = {p: st.snapshot for p, st in steps.items()}
    # spec: no container process yet; we look at the runtime itself, on the host
    assert all(not n.isolated for n in snap["spec"].namespaces if n.inode is not None)
    # clone: new PID, mount, UTS (and IPC, network) namespaces; the cgroup one comes later
    for kind in ("pid", "mnt", "uts", "ipc", "net"):
        assert snap["clone"].ns(kind).isolated, kind
    assert f"pid:[{snap['clone'].ns('pid').inode}]" != host_ns("pid")
    assert not snap["clone"].ns("cgroup").isolated
    assert set(steps["clone"].diff.isolated) >= {"pid", "mnt", "uts"}
    assert snap["clone"].process.comm == "mrunc:[init]"
    # mount: the rootfs (our overlay) bound, /proc, /dev... mounted under it; / still the host's
    merged = os.path.join(lab.work, s.name, "rootfs")
    added = {m.mount_point for m in steps["mount"].diff.mounts_added}
    assert {merged, merged + "/proc", merged + "/dev"} <= added
    assert snap["mount"].root.is_host
    # pivot_root: / is now the bundle's rootfs, the host's mounts are gone
    st = os.stat(merged)
    assert (snap["pivot_root"].root.dev, snap["pivot_root"].root.ino) == (st.st_dev, st.st_ino)
    assert not snap["pivot_root"].root.is_host and snap["pivot_root"].mount_at("/").fstype == "overlay"
    assert steps["pivot_root"].diff.root is not None
    assert not any(m.mount_point.startswith(lab.work) for m in snap["pivot_root"].mounts)
    assert snap["pivot_root"].hostname == "stepped"
    # cgroup: limits set, in its own cgroup, and a new cgroup namespace
    cg = snap["cgroup"].cgroup
    assert cg.memory_limit == 32 * MiB and cg.pids_limit == 20
    assert s.name in cg.path
    assert snap["cgroup"].ns("cgroup").isolated and "cgroup" in steps["cgroup"].diff.isolated
    assert {c.what for c in steps["cgroup"].diff.cgroup} >= {"path", "memory_limit", "pids_limit"}
    # security: three capabilities left, no_new_privs
    sec = snap["security"].security
    assert set(sec.bounding) == {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
    assert sec.no_new_privs and steps["security"].diff.dropped("bounding")
    # exec: the same process is now the user's program
    ex = snap["exec"]
    assert ex.pid == snap["security"].pid and ex.process.comm == "sleep"
    assert ex.process.cmdline == ("sleep", "600")
    assert steps["exec"].diff.exec is not None
    c = s.container
    assert c.status == "running" and c.pid == ex.pid
    # every phase was timed and its calls recorded
    assert all(steps[p].ms > 0 for p in PHASES)
    assert any(call[0] == "pivot_root" for call in steps["pivot_root"].calls)


def test_abort_leaves_nothing(lab):
    s = lab.step("sleep 600", memory="16M")
    s.next()
    s.next()
    pid = s.steps[-1].pid
    s.next()
    s.abort()
    assert s.done and s.error == "aborted"
    assert not os.path.exists(os.path.join(lab.root, s.name))
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert not lab.containers


def test_a_failing_phase_comes_back_as_a_step(lab, tmp_path):
    from mrunc import spec
    cfg = spec.default_config()
    cfg["root"]["path"] = ROOTFS
    cfg["process"]["args"] = ["true"]
    cfg["mounts"].append({"destination": "/data", "type": "bind", "source": str(tmp_path / "missing"),
                          "options": ["bind"]})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    s = lab.step(image=str(tmp_path), readonly=True)
    steps = s.run_to_end()
    assert [x.phase for x in steps][-1] == "mount"
    assert s.failed and "missing" in steps[-1].error
    assert not lab.containers and not os.listdir(lab.root)


def test_container_magic(lab, capfd):
    from IPython.core.interactiveshell import InteractiveShell
    from mrunc.notebook.magics import ContainerMagics
    ip = InteractiveShell.instance()
    magics = ContainerMagics(ip, sandbox=lab)
    ip.register_magics(magics)
    ip.run_cell_magic("container", "--memory 32M --hostname box",
                      "echo hi; hostname; cat /sys/fs/cgroup/memory.max "
                      "/sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; touch /x && echo wrote")
    out = capfd.readouterr().out
    assert out.split() == ["hi", "box", str(32 * MiB), "wrote"]
    assert magics.last.exit_code == 0 and not lab.containers
    assert not os.path.exists(os.path.join(ROOTFS, "x"))           # the write went to the overlay
    ip.run_cell_magic("container", "--readonly --user mrunc --cap-drop ALL", "id -u; touch /y; exit 7")
    o = capfd.readouterr()
    assert o.out.strip() == "1000" and "Read-only file system" in o.err
    assert "exited with status 7" in o.err
    ip.run_cell_magic("container", "--keep --name kept", "echo first")
    assert "kept keeps running" in capfd.readouterr().out
    ip.run_line_magic("container_exec", "kept echo $(( 6 * 7 )) from $(hostname)")
    assert capfd.readouterr().out.strip() == "42 from kept"
    ip.run_line_magic("container_ps", "")
    assert "kept  running" in capfd.readouterr().out
    ip.run_line_magic("container_rm", "kept")
    assert "removed kept" in capfd.readouterr().out and not lab.containers


@pytest.mark.both_layouts        # and in the cgroup v2 VM (make test-v2)
def test_oom_kill_is_reported(lab):
    r = lab.run("s=x; while true; do s=\"$s$s\"; done", memory="24M")
    assert r.exit_code == 137 and r.oom_killed
    assert "OOM killer" in r.describe() and "24.0 MiB" in r.describe()


@pytest.mark.both_layouts        # and in the cgroup v2 VM (make test-v2)
def test_monitor_sees_an_oom_kill_as_it_happens(lab):
    from mrunc.notebook.widgets import Monitor
    c = lab.start("sleep 0.5; awk 'BEGIN { while (1) { s = s sprintf(\"%262144s\", \"\"); "
                  "system(\"sleep 0.02\") } }'; echo awk: $?; sleep 0.3", memory="24M", name="hog")
    m = Monitor(c, interval=0.05)
    # generous: in the cgroup v2 VM (software emulation) every fork+exec of awk's system() is ~50×
    # slower, and 24 MiB takes ~100 of them
    assert m.wait(120)
    kinds = [k for _t, k, _x in m.events]
    assert kinds == ["oom", "exit"], m.events
    oom_t = m.events[0][0]
    before = [s for s in m.samples if s["t"] < oom_t]
    assert len(before) >= 5 and max(s["memory"] for s in before) > 12 * MiB   # seen climbing
    assert "OOM killed" in m.chart.value
    assert c.exit_code == 0 and "awk: 137" in c.logs()


def test_lifecycle_api(lab):
    c = lab.create("echo started", name="made")
    assert c.status == "created" and c.pid
    c.start()
    deadline = time.time() + 5
    while c.status != "stopped" and time.time() < deadline:
        time.sleep(0.02)
    assert c.status == "stopped" and "started" in c.logs()
    c.delete()
    assert c.status == "deleted" and "made" not in lab.containers
    bg = lab.start(name="bg", pids=5)
    assert bg.wait(0.2) is None and bg.status == "running"
    assert bg.stats()["pids"]["limit"] == 5
    snap = bg.snapshot()
    assert snap.process.comm == "sleep" and snap.ns("pid").isolated
    assert bg.stop(timeout=1) == 137 and bg.status == "stopped"


def test_start_returns_a_running_container_a_check_can_look_at(lab, tmp_path):
    # a graded check calls snapshot() right after start(): it must see the program, never None
    c = lab.start(args=["sleep", "600"], name="checked", memory="64M")
    snap = c.snapshot()
    assert c.status == "running" and snap is not None and snap.pid == c.pid
    assert snap.process.comm == "sleep" and snap.ns("pid").isolated and snap.ns("net").isolated
    assert snap.cgroup.memory_limit == 64 * MiB
    # a program that ends at once: start still returns (the container ran), with its status
    quick = lab.start("exit 3", name="quick")
    assert quick.wait(10) == 3 and quick.status == "stopped" and quick.snapshot() is None
    # a container that cannot be made: the runtime's one line, and nothing left of it
    with pytest.raises(SandboxError) as e:
        lab.start(args=["/no/such/program"], name="broken")
    assert "/no/such/program" in str(e.value) and "\n" not in str(e.value)
    assert "broken" not in lab.containers and not os.path.exists(os.path.join(lab.work, "broken"))
    assert not os.path.exists(os.path.join(lab.root, "broken"))


def test_sweep_removes_what_a_dead_kernel_left(lab):
    c = lab.start(name="orphan")
    deadline = time.time() + 10
    while c.status != "running" and time.time() < deadline:
        time.sleep(0.01)
    with open(os.path.join(c.bundle, "owner"), "w") as f:
        f.write("999999 1\n")                   # a sandbox that no longer exists
    other = Sandbox(root=lab.root, rootfs=ROOTFS)          # sweeps at start
    assert not os.path.exists(c.bundle)
    assert c.shim.wait(10) is not None
    other.close()


def test_kernelspec_starts_a_kernel_with_the_magics(tmp_path, lab, monkeypatch):
    from jupyter_client.manager import start_new_kernel
    from mrunc import kernelspec
    where = kernelspec.install(prefix=str(tmp_path))
    spec = json.loads(open(os.path.join(where, "kernel.json")).read())
    assert spec["display_name"] == "Python 3 (mrunc)" and spec["argv"][-2:] == ["--ext", "mrunc"]
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    km, kc = start_new_kernel(kernel_name="mrunc", startup_timeout=60)
    try:
        outs = []
        kc.execute_interactive("%%container\necho hello from $(hostname)", timeout=60,
                               output_hook=lambda m: outs.append(m["content"].get("text", "")))
        assert "hello from lab-" in "".join(outs)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    assert not os.path.exists("/run/mrunc-lab") or not [n for n in os.listdir("/run/mrunc-lab")
                                                        if n.startswith("lab-")]


def test_a_seccomp_container_keeps_its_program_until_the_sandbox_closes(lab, tmp_path):
    """The lab's creates keep built seccomp programs in its root (security.seccompcache), so a
    second container of the same profile loads it; the root is the sandbox's own and goes at
    close with them (the fixture checks nothing is left)."""
    from seccomp_profile import default_profile
    with open(os.path.join(os.path.dirname(ROOTFS), "bundle", "config.json")) as f:
        cfg = json.load(f)
    cfg["root"]["path"] = ROOTFS
    cfg["linux"]["seccomp"] = default_profile()
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    for name in ("first", "second"):
        c = lab.start(args=["sleep", "100"], name=name, image=str(tmp_path))
        with open(f"/proc/{c.pid}/status") as f:
            assert "Seccomp:\t2" in f.read()          # confined, built or kept
        c.stop(timeout=1)
    kept = os.listdir(os.path.join(lab.root, ".seccomp"))
    assert len(kept) == 1, kept                       # one profile, one program
