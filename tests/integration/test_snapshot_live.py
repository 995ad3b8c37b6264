"""Snapshots of a real container, paused after every phase by the step protocol: each phase's
snapshot shows the change that phase must cause (the stepper's promise)."""
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import pytest
from conftest import REPO, ROOTFS, host_ns

from mrunc import snapshot

pytestmark = pytest.mark.root

LIMIT = 48 << 20


def _stat(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _step_through(mr, cid, bundle):
    """Run `create --step-fd`; snapshot the mrunc process at spec, then init after every phase."""
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, "create", "--bundle", bundle,
                          "--step-fd", str(theirs.fileno()), cid], pass_fds=[theirs.fileno()],
                         cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    theirs.close()
    ours.settimeout(20)
    ch = ours.makefile("rwb", buffering=0)
    snaps = {}
    try:
        while line := ch.readline():
            ev = json.loads(line)
            assert ev["event"] == "phase-done", ev
            # spec runs before any init exists: the "before" of clone is mrunc create itself
            snaps[ev["phase"]] = snapshot.take(ev.get("pid") or p.pid)
            ch.write(b"continue\n")
        assert p.wait(15) == 0, p.stderr.read()
    finally:
        ours.close()
        if p.poll() is None:
            p.kill()
    return snaps


def test_each_phase_shows_its_change(mr):
    cid = mr.new_id()

    def edit(cfg):
        cfg["hostname"] = "snapped"
        cfg["linux"]["namespaces"].append({"type": "cgroup"})
        cfg["linux"].setdefault("resources", {})["memory"] = {"limit": LIMIT}
    b = mr.bundle(edit, args=["sleep", "30"])
    snaps = _step_through(mr, cid, b)
    assert list(snaps) == ["spec", "clone", "mount", "pivot_root", "cgroup", "security"]
    for phase, s in snaps.items():
        assert s.error is None, (phase, s.error)
    d = {ph: snapshot.diff(snaps[a], snaps[ph]) for a, ph in zip(snaps, list(snaps)[1:])}

    # clone: new PID, mount, UTS (and net, ipc) namespaces; not yet a cgroup namespace
    clone = snaps["clone"]
    for kind in ("pid", "mnt", "uts", "net", "ipc"):
        assert clone.ns(kind).isolated and clone.ns(kind).inode != int(host_ns(kind)[len(kind) + 2:-1]), kind
    assert set(d["clone"].isolated) == {"pid", "mnt", "uts", "net", "ipc"}
    assert clone.ns("cgroup").isolated is False
    assert clone.process.comm == "mrunc:[init]" and clone.process.ns_pid == 1
    assert clone.root.is_host

    # mount: the rootfs and its /proc, /dev are mounted (still under the host's /)
    mount = snaps["mount"]
    added = {m.mount_point: m.fstype for m in d["mount"].mounts_added}
    assert added[ROOTFS + "/proc"] == "proc" and added[ROOTFS + "/dev"] == "tmpfs", added
    assert mount.mount_at(ROOTFS + "/dev/pts").fstype == "devpts"
    assert mount.root.is_host

    # pivot_root: / is the bundle's rootfs, the host's mounts are gone, the hostname is set
    piv = snaps["pivot_root"]
    assert (piv.root.dev, piv.root.ino) == _stat(ROOTFS) and not piv.root.is_host
    assert ROOTFS.endswith(piv.root.fs_root)
    assert d["pivot_root"].root and piv.mount_at("/proc").fstype == "proc"
    assert all(not m.mount_point.startswith(ROOTFS) for m in piv.mounts)
    assert piv.hostname == "snapped" and snaps["mount"].hostname == os.uname().nodename
    assert any(s.startswith("root switched (pivot_root)") for s in d["pivot_root"].summary())

    # cgroup: the limit is set, init is in its cgroup, and the cgroup namespace is new
    cg = snaps["cgroup"]
    assert cg.cgroup.memory_limit == LIMIT and cg.ns("cgroup").isolated
    assert d["cgroup"].isolated == ("cgroup",)
    assert f"memory limit set: {snapshot.human_bytes(LIMIT)} (was unlimited)" in d["cgroup"].summary()
    assert cg.cgroup.path != snaps["mount"].cgroup.path
    assert cg.cgroup.memory_current is not None and cg.cgroup.memory_current < LIMIT

    # security: the bounding set shrank, no_new_privs is on
    sec = snaps["security"]
    assert "CAP_SYS_ADMIN" in d["security"].dropped("bounding")
    assert "CAP_SYS_ADMIN" not in sec.security.bounding and sec.security.no_new_privs

    # exec: after start, the process is the user's program
    pid = json.loads(mr.cli("state", cid, check=True).stdout)["pid"]
    assert pid == sec.pid
    mr.cli("start", cid, check=True)
    for _ in range(100):
        after = snapshot.take(pid)
        if after.process and after.process.comm != "mrunc:[init]":
            break
    ex = snapshot.diff(sec, after)
    assert (ex.exec.before, ex.exec.after) == ("mrunc:[init]", "sleep")
    assert after.process.cmdline == ("sleep", "30") and after.process.exe.endswith("busybox")
    assert after.cgroup.memory_limit == LIMIT and after.hostname == "snapped"


def test_snapshot_is_fast_enough_to_poll(mr):
    """A live monitor polls snapshots; one must cost well under a frame of a slow chart."""
    cid = mr.new_id()

    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "cgroup"})
        cfg["linux"].setdefault("resources", {})["memory"] = {"limit": LIMIT}
    mr.cli("create", "--bundle", mr.bundle(edit, args=["sleep", "30"]), cid, check=True)
    pid = json.loads(mr.cli("state", cid, check=True).stdout)["pid"]
    snapshot.take(pid)                                  # imports, first-time costs
    times = [snapshot.take(pid).ms for _ in range(30)]
    print(f"snapshot of a container: median {statistics.median(times):.2f} ms, max {max(times):.2f} ms")
    assert statistics.median(times) < 20, times


def test_snapshot_after_the_container_exited(mr):
    cid = mr.new_id()
    mr.cli("create", "--bundle", mr.bundle(args=["true"]), cid, check=True)
    pid = json.loads(mr.cli("state", cid, check=True).stdout)["pid"]
    before = snapshot.take(pid)
    mr.cli("start", cid, check=True)
    for _ in range(200):
        s = snapshot.take(pid)
        if s.error:
            break
    assert s.error and before.error is None             # partial, never a traceback
    assert isinstance(snapshot.diff(before, s).summary(), list)


def test_rootless_reader_gets_the_hostname_through_the_user_namespace():
    """Without CAP_SYS_ADMIN the thread's setns is refused; a container with its own user namespace
    (owned by the reader) still shows its hostname, read by `nsenter --user --uts`."""
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    p = subprocess.Popen(nobody + ["unshare", "-Ur", "--uts", "--net", "sh", "-c",
                                   "hostname inner && exec sleep 30"], stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            if p.poll() is not None or open(f"/proc/{p.pid}/comm").read().strip() == "sleep":
                break
            time.sleep(0.01)
        if p.poll() is not None:
            pytest.skip(f"no unprivileged user namespaces here: {p.stderr.read().decode().strip()}")
        code = ("import json; from mrunc import snapshot as S; "
                f"s = S.take({p.pid}); print(json.dumps([s.hostname, s.notes, s.error]))")
        out = subprocess.run(nobody + ["env", "HOME=/tmp", sys.executable, "-c", code], cwd=REPO,
                             capture_output=True, text=True, timeout=30)
        hostname, notes, error = json.loads(out.stdout)
        assert hostname == "inner" and error is None
        assert "CAP_SYS_ADMIN" in notes[0] and "through its user namespace" in notes[0]
    finally:
        p.kill()
        p.wait()
