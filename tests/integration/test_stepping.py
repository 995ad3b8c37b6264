"""Stepping mode: the runtime pauses after each phase until told to continue (the notebook's stepper
is built on this). While paused we look at the real init process from outside."""
import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import REPO, ROOTFS, host_ns


def _ino(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino

pytestmark = pytest.mark.root


def _start_stepping(mr, cid, bundle):
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, "create", "--bundle", bundle,
                          "--step-fd", str(theirs.fileno()), cid], pass_fds=[theirs.fileno()],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    theirs.close()
    ours.settimeout(20)  # a protocol slip fails the test instead of hanging it
    return p, ours, ours.makefile("rwb", buffering=0)


@pytest.mark.both_layouts
def test_pause_at_each_phase_and_look(mr):
    cid = mr.new_id()
    def edit(cfg):
        cfg["hostname"] = "stepped"
        cfg["linux"]["namespaces"].append({"type": "cgroup"})
    b = mr.bundle(edit, args=["sh", "-c", "sleep 5"])
    p, sock, ch = _start_stepping(mr, cid, b)
    seen = {}
    try:
        while True:
            line = ch.readline()
            if not line:
                break
            ev = json.loads(line)
            assert ev["event"] == "phase-done", ev
            phase = ev["phase"]
            pid = ev.get("pid")
            if pid:
                seen[phase] = {
                    "ns": {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in ("mnt", "uts", "pid", "net", "cgroup")},
                    "root": _ino(f"/proc/{pid}/root"),
                    "comm": open(f"/proc/{pid}/comm").read().strip(),
                    "cgroup": open(f"/proc/{pid}/cgroup").read(),
                }
                # the process is paused: its state is stable between two reads
                assert os.path.exists(f"/proc/{pid}")
            else:
                seen[phase] = {}
            ch.write(b"continue\n")
        assert p.wait(15) == 0, p.stderr.read()
    finally:
        sock.close()
        if p.poll() is None:
            p.kill()
    assert list(seen) == ["spec", "clone", "mount", "pivot_root", "cgroup", "security"]
    clone = seen["clone"]
    for n in ("mnt", "uts", "pid", "net"):
        assert clone["ns"][n] != host_ns(n), n
    # the cgroup namespace is made in the cgroup phase, not in clone
    assert clone["ns"]["cgroup"] == host_ns("cgroup")
    assert seen["cgroup"]["ns"]["cgroup"] != host_ns("cgroup")
    # before pivot_root the root is still the host's; after it, the bundle's rootfs
    assert seen["mount"]["root"] == _ino("/")
    assert seen["pivot_root"]["root"] == _ino(ROOTFS)
    assert clone["comm"] == "mrunc:[init]"
    st = json.loads(mr.cli("state", cid, check=True).stdout)
    assert st["status"] == "created"


def test_abort_from_stepper_leaves_nothing(mr):
    cid = mr.new_id()
    b = mr.bundle(args=["true"])
    p, sock, ch = _start_stepping(mr, cid, b)
    pid = None
    try:
        for _ in range(3):  # spec, clone, mount
            ev = json.loads(ch.readline())
            pid = ev.get("pid") or pid
            if ev["phase"] == "mount":
                ch.write(b"abort\n")
                break
            ch.write(b"continue\n")
        rc = p.wait(15)
    finally:
        sock.close()
    err = p.stderr.read().decode()
    assert rc != 0 and "stopped by the stepper" in err
    assert not os.path.exists(os.path.join(mr.root, cid))
    assert pid and (not os.path.exists(f"/proc/{pid}") or
                    open(f"/proc/{pid}/stat").read().split()[2] == "Z")
