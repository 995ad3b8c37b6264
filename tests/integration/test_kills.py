"""SIGKILL at every phase (issue 8 §3): the runtime, or the container's init, dies mid-way.

Whatever dies when, `mrunc delete --force ID` then succeeds and leaves nothing — no state dir,
no cgroup dir in any hierarchy, no mount, no process of ours, no lock — and the id can be used
again. The pauses come from stepping mode (--step-fd, as tests/integration/test_stepping.py);
the random kills from a fixed seed, so a failure can be replayed.
"""
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import REPO, ROOTFS

pytestmark = pytest.mark.root

PHASES = ["spec", "clone", "mount", "pivot_root", "cgroup", "security"]


# ---------------------------------------------------------------- what must be left: nothing

def _cgroup_mounts():
    """Mount points of every cgroup hierarchy (v1 ones and the unified tree)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2"):
                out.append(fields[4])
    return out


def _our_processes(mr, cid):
    """Live processes this test made for `cid`: an mrunc command or an init not yet exec'd
    (its cmdline is still create's) naming our private --root and the id. Zombies hold nothing
    and their reaper (not us) decides when they go."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat", "rb") as f:
                st = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if mr.root.encode() in args and cid.encode() in args and st != b"Z":
            found.append(int(pid))
    return found


def _bundle_mounts(paths):
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if any(p in line for p in paths)]


def assert_nothing_left(mr, cid, bundle, mounts_before):
    """No state dir (nor hidden debris of one), cgroup dir, mount, process or lock of `cid`."""
    deadline = time.monotonic() + 5
    while _our_processes(mr, cid) and time.monotonic() < deadline:
        time.sleep(0.05)  # a process SIGKILLed a moment ago may still be exiting
    assert _our_processes(mr, cid) == []
    if os.path.isdir(mr.root):
        assert [n for n in os.listdir(mr.root) if n == cid or n.startswith((".new-", ".old-"))] == []
    cgs = [os.path.join(mp, cid) for mp in _cgroup_mounts() if os.path.exists(os.path.join(mp, cid))]
    assert cgs == [], f"cgroup dirs left: {cgs}"
    assert _bundle_mounts([bundle, ROOTFS]) == mounts_before
    # The lock is gone with the directory: the same id is created and deleted again (a stale
    # lock would fail both with "busy").
    mr.cli("create", "--bundle", bundle, cid, check=True)
    mr.cli("delete", "--force", cid, check=True)
    assert not os.path.exists(os.path.join(mr.root, cid))


def _bundle(mr, args=("sleep", "100")):
    """A new id and its bundle, with cgroupsPath /<id>: the container's cgroup is then
    <mount point>/<id> in every hierarchy."""
    cid = mr.new_id()
    return cid, mr.bundle(lambda cfg: cfg["linux"].__setitem__("cgroupsPath", "/" + cid),
                          args=list(args))


# ---------------------------------------------------------------- stepping

class _Stepping:
    """`mrunc create --step-fd` in the background: .p the process, .ch the stepper's channel.
    On leaving: the channel closed, create ended (killed if need be), .stderr its message."""

    def __init__(self, mr, cid, bundle):
        self.err = tempfile.TemporaryFile("w+")
        self.sock, theirs = socket.socketpair()
        self.p = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, "create",
                                   "--bundle", bundle, "--step-fd", str(theirs.fileno()), cid],
                                  pass_fds=[theirs.fileno()], cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=self.err)
        theirs.close()
        self.sock.settimeout(30)
        self.ch = self.sock.makefile("rwb", buffering=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.err.seek(0)
        self.stderr = self.err.read().strip()
        self.err.close()


def _pause_at(ch, phase):
    """Continue through the phases before `phase`; return the phase-done event of `phase`."""
    while True:
        line = ch.readline()
        assert line, f"create ended before phase {phase}"
        ev = json.loads(line)
        assert ev["event"] == "phase-done", ev
        if ev["phase"] == phase:
            return ev
        ch.write(b"continue\n")


def _continue_to_end(ch, first=True):
    """Answer "continue" to the phase it is paused at and to every later one, until create
    ends (closes the channel; a reset when it ended with our answer unread)."""
    try:
        if first:
            ch.write(b"continue\n")
        while ch.readline():
            ch.write(b"continue\n")
    except (ConnectionResetError, BrokenPipeError):
        pass


@pytest.mark.both_layouts
@pytest.mark.parametrize("phase", PHASES)
def test_kill_runtime_paused_at_phase(mr, phase):
    """`mrunc create` SIGKILLed while paused after `phase`: its init must not survive it, and
    delete --force cleans up whatever the phase had made."""
    cid, bundle = _bundle(mr)
    before = _bundle_mounts([bundle, ROOTFS])
    with _Stepping(mr, cid, bundle) as s:
        ev = _pause_at(s.ch, phase)
        s.p.kill()
        s.p.wait(10)
    init = ev.get("pid")
    if init:  # its create is gone: init goes too, by itself
        deadline = time.monotonic() + 5
        while _alive(init) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(init), f"init {init} outlived its create (phase {phase})"
    st = mr.cli("state", cid)
    if st.returncode == 0:  # the id may still be claimed; then it reads as abandoned
        assert json.loads(st.stdout)["status"] == "stopped"
    d = mr.cli("delete", "--force", cid)
    assert d.returncode == 0, d.stderr
    assert_nothing_left(mr, cid, bundle, before)


@pytest.mark.both_layouts
@pytest.mark.parametrize("phase", PHASES[1:] + ["created"])
def test_kill_init_at_phase(mr, phase):
    """The container's init SIGKILLed while create is paused after `phase` (or once created):
    create fails with one line naming the phase and the signal, and nothing is left."""
    cid, bundle = _bundle(mr)
    before = _bundle_mounts([bundle, ROOTFS])
    with _Stepping(mr, cid, bundle) as s:
        if phase == "created":
            _continue_to_end(s.ch)
            assert s.p.wait(30) == 0
            init = json.loads(mr.cli("state", cid, check=True).stdout)["pid"]
        else:
            init = _pause_at(s.ch, phase)["pid"]
        os.kill(init, signal.SIGKILL)
        _continue_to_end(s.ch)
        rc = s.p.wait(30)
    msg = s.stderr
    if phase == "created":
        st = json.loads(mr.cli("state", cid, check=True).stdout)
        assert st["status"] == "stopped" and st["pid"] == 0
    else:
        assert rc != 0
        lines = msg.splitlines()
        assert len(lines) == 1 and "init died during phase" in lines[0] \
            and "killed by SIGKILL" in lines[0], msg
        # create cleaned up after itself already
        assert not os.path.exists(os.path.join(mr.root, cid))
    d = mr.cli("delete", "--force", cid)
    assert d.returncode == 0, d.stderr
    assert_nothing_left(mr, cid, bundle, before)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def test_killing_the_clone_child_is_one_line(mr):
    """SIGKILL the first child of create — the clone child, or init once it is re-parented:
    the error is one line naming who died, in which phase, of what; never a broken pipe. The
    clone child lives for a millisecond or so: try until a kill lands."""
    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 65536}]
    bundle = mr.bundle(edit, args=["true"])
    failures = []
    for _ in range(10):
        cid = mr.new_id()
        with _Stepping(mr, cid, bundle) as s:
            _pause_at(s.ch, "spec")
            s.ch.write(b"continue\n")
            try:
                os.kill(_wait_child(s.p.pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
            _continue_to_end(s.ch, first=False)
            rc = s.p.wait(30)
        msg = s.stderr
        mr.cli("delete", "--force", cid)
        if rc != 0:
            failures.append(msg)
            assert not os.path.exists(os.path.join(mr.root, cid))
        if len(failures) >= 3:
            break
    assert failures, "no kill landed in 10 tries"
    for msg in failures:
        assert len(msg.splitlines()) == 1 and "died during phase" in msg \
            and "(killed by SIGKILL)" in msg and "Broken pipe" not in msg, msg


def _wait_child(ppid, timeout=10):
    """The first child of `ppid` (from /proc/<ppid>/task/*/children)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{ppid}/task/{ppid}/children") as f:
            kids = f.read().split()
        if kids:
            return int(kids[0])
        time.sleep(0.001)
    raise AssertionError(f"process {ppid} never forked")


# ---------------------------------------------------------------- random moments

def _popen(mr, *args):
    return subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_kills_at_random_moments(mr):
    """create, start, exec and delete, each SIGKILLed after a random delay (seeded): afterwards
    delete --force leaves nothing and the id is reusable."""
    rng = random.Random(8)
    for i in range(12):
        verb = ("create", "start", "exec", "delete")[i % 4]
        cid, bundle = _bundle(mr)
        before = _bundle_mounts([bundle, ROOTFS])
        if verb != "create":
            mr.cli("create", "--bundle", bundle, cid, check=True)
        if verb in ("exec", "delete"):
            mr.cli("start", cid, check=True)
        args = {"create": ("create", "--bundle", bundle, cid), "start": ("start", cid),
                "exec": ("exec", cid, "sleep", "100"), "delete": ("delete", "--force", cid)}[verb]
        # create: mostly its first 100 ms, where the state dir is made (the pauses of the
        # stepping tests cover its later phases)
        delay = rng.uniform(0, 0.1 if verb == "create" else 0.25)
        p = _popen(mr, *args)
        time.sleep(delay)
        p.kill()
        p.wait()
        d = mr.cli("delete", "--force", cid)
        assert d.returncode == 0, f"{verb} killed after {delay * 1000:.0f} ms: {d.stderr}"
        assert_nothing_left(mr, cid, bundle, before)


def test_run_of_a_program_that_exits_at_once_never_fails(mr):
    """start reads exec.fifo to its end: a program that has exited by the time start looks
    (here, under CPU load) is a success, never "init died before it could be started"."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        bundle = mr.bundle(args=["echo", "out"])
        fails = []
        for _ in range(25):
            r = mr.cli("run", "--bundle", bundle, mr.new_id())
            if r.returncode != 0 or r.stdout != "out\n":
                fails.append((r.returncode, r.stdout, r.stderr))
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert fails == []
