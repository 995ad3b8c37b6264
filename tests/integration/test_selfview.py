"""A student sees what root sees: the stepper's snapshots of a paused init are as complete for a
user without root as for root (mrunc.process.selfview).

Until it execs the program, init is not dumpable, so a caller without CAP_SYS_PTRACE cannot read
its /proc/<pid>/ns/*, root or exe. While stepping, init reports its own view of itself with every
phase. Checked here: (1) that view is true — at each pause it equals what root reads from outside;
(2) a real user (made by the test, removed afterwards) steps a container and root steps the very
same config.json: every phase's Diff names the same changes. One thing the host gives root and
not the student: a cgroup (no delegated subtree on a v1 host), so the cgroup is left out of (2).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid

import pytest

from conftest import REPO, ROOTFS

from mrunc import snapshot
from mrunc.sandbox import Sandbox

pytestmark = [pytest.mark.root, pytest.mark.userns,
              pytest.mark.skipif(not shutil.which("useradd"), reason="useradd is not installed")]


def _step_events(mr, bundle, cid):
    """Step `mrunc create --step-fd` through every phase: [(event, outside snapshot)]."""
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, "create", "--bundle",
                          bundle, "--step-fd", str(theirs.fileno()), cid], pass_fds=[theirs.fileno()],
                         cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    theirs.close()
    ours.settimeout(30)
    ch = ours.makefile("rwb", buffering=0)
    out = []
    try:
        for line in iter(ch.readline, b""):
            ev = json.loads(line)
            out.append((ev, snapshot.take(ev["pid"]) if ev.get("pid") else None))
            ch.write(b"continue\n")
        assert p.wait(30) == 0, p.stderr.read()
    finally:
        ours.close()
        if p.poll() is None:
            p.kill()
            p.wait()
    return out


@pytest.mark.parametrize("user_ns", [False, True], ids=["root-config", "user-namespace"])
def test_inits_own_view_is_what_root_reads_from_outside(mr, user_ns, tmp_path):
    def edit(cfg):
        cfg["hostname"] = "seen-inside"
        if user_ns:
            cfg["linux"]["namespaces"].append({"type": "user"})
            cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cid = mr.new_id()
    steps = _step_events(mr, mr.bundle(edit, args=["true"]), cid)
    assert [ev["phase"] for ev, _ in steps] == ["spec", "clone", "mount", "pivot_root", "cgroup",
                                                "security"]
    assert "view" not in steps[0][0]                # spec: the runtime's, before any fork
    for ev, outside in steps[1:]:
        view, at = ev["view"], ev["phase"]
        assert "errors" not in view, (at, view["errors"])
        assert view["ns"] == {n.kind: n.inode for n in outside.namespaces}, at
        assert tuple(view["root"]) == (outside.root.dev, outside.root.ino), at
        # (until pivot_root, other tests' mounts under /run and /tmp may come and go meanwhile:
        # the host's mount events reach init's mount table)
        assert _lasting(snapshot.parse_mountinfo(view["mountinfo"])) == _lasting(outside.mounts), at
        assert view["exe"] == outside.process.exe, at
        assert view["uid_map"].split() == [str(x) for m in outside.security.uid_map for x in m], at
        st = snapshot._status(view["status"])
        assert st["CapEff"] and snapshot._cap_names(int(st["CapEff"], 16)) == outside.security.effective
        assert st["NoNewPrivs"] == str(int(outside.security.no_new_privs)), at
        assert st["Seccomp"] == str(outside.security.seccomp), at
        assert view["hostname"] == outside.hostname, at
        assert view["ifflags"] == {"lo": view["ifflags"]["lo"]} and \
            bool(view["ifflags"]["lo"] & 1) == outside.interface("lo").up, at
    # and a snapshot made from the view alone (as a student's is, before exec) tells the same
    ev, outside = steps[-1]
    fake = _no_ns_proc(ev["pid"], tmp_path)
    assert snapshot.take(ev["pid"], inside=_nothing_inside, proc=fake).namespaces == ()
    blind = snapshot.take(ev["pid"], view=ev["view"], inside=_nothing_inside, proc=fake)
    assert blind.namespaces == outside.namespaces and blind.root == outside.root
    assert blind.process.exe == outside.process.exe and blind.error is None
    assert blind.hostname == "seen-inside" and any("read by the process itself" in n for n in blind.notes)
    assert mr.cli("delete", "--force", cid).returncode == 0


def _passing(path):
    return path.startswith(("/run/", "/tmp/", "/var/tmp/"))


def _lasting(mounts):
    return [m for m in mounts if not _passing(m.mount_point)]


def _nothing_inside(pid, enter, ifnames, proc):
    return {"error": "entering its namespaces needs CAP_SYS_ADMIN (run as root)"}


def _no_ns_proc(pid, where):
    """A /proc where this pid's ns/, root and exe cannot be read (what a student gets before
    exec): links to the real files but those, which fail (ELOOP, EINVAL) as EACCES would."""
    for p, real in ((str(pid), f"/proc/{pid}"), ("self", f"/proc/{os.getpid()}")):
        os.mkdir(where / p)
        for name in os.listdir(real):
            if p == str(pid) and name in ("ns", "root"):
                os.symlink(name, where / p / name)          # a link to itself: ELOOP
            elif p == str(pid) and name == "exe":
                os.mkdir(where / p / name)                  # readlink: EINVAL
            else:
                os.symlink(os.path.join(real, name), where / p / name)
    return str(where)


# ---- a real student ---------------------------------------------------------------------------

DRIVER = """
import json, sys
from mrunc.sandbox import Sandbox
with Sandbox() as lab:
    s = lab.step("exec sleep 600", name="twin")
    steps = s.run_to_end()
    print(json.dumps({"config": s.container.config, "errors": [st.error for st in steps],
                      "steps": [[st.phase, st.snapshot.to_dict() if st.snapshot else None]
                                for st in steps]}))
"""


@pytest.fixture(scope="module")
def student():
    from students import make_students
    for made in make_students(1):
        yield made[0]


def names(d):
    """What a Diff says changed, by name (no inode, device or pid numbers); the cgroup is left
    out (see the module's doc), and so are the host's passing mounts."""
    def cg(path):
        # and what other tests on this host mount and unmount meanwhile (under /run, /tmp)
        return "/sys/fs/cgroup" in path or _passing(path)
    return {
        "namespaces": sorted(c.what for c in d.namespaces), "isolated": sorted(d.isolated),
        "root": d.root is not None and (d.root.before.is_host, d.root.after.describe()),
        "mounts_added": sorted(m.mount_point for m in d.mounts_added if not cg(m.mount_point)),
        "mounts_removed": sorted(m.mount_point for m in d.mounts_removed if not cg(m.mount_point)),
        "mounts_moved": sorted(c.after.mount_point for c in d.mounts_moved if not cg(c.what)),
        "mounts_changed": sorted({(c.before.propagation_mode, c.after.propagation_mode,
                                   tuple(sorted(set(c.before.options) ^ set(c.after.options))))
                                  for c in d.mounts_changed if not cg(c.what)}),
        "caps": sorted((c.set, c.dropped, c.added) for c in d.caps),
        "security": sorted(c.what for c in d.security),
        "uts": sorted((c.what, c.after) for c in d.uts),
        "net": (d.net_ns_changed, sorted(i.name for i in d.interfaces)),
        "process": sorted(c.what for c in d.process),
    }


def _creds(snap):
    sec = snap.security
    return sec.uid_map, sec.gid_map, sec.effective, sec.bounding, sec.no_new_privs, sec.seccomp


def test_a_student_sees_every_change_root_sees(student, tmp_path):
    p = student.python(DRIVER, env=student.env(PYTHONPATH=REPO))
    assert p.returncode == 0, p.stderr
    theirs = json.loads(p.stdout)
    assert not any(theirs["errors"]), theirs["errors"]
    # root steps the very config the student's sandbox wrote (user namespace mapping the
    # student's uid, read-only busybox root, a tmpfs on /tmp)
    image = tmp_path / "image"
    image.mkdir()
    (image / "config.json").write_text(json.dumps(theirs["config"]))
    assert theirs["config"]["root"] == {"path": ROOTFS, "readonly": True}
    lab = Sandbox(root=f"/run/mrunc-twin-{uuid.uuid4().hex[:8]}", rootfs=ROOTFS)
    try:
        s = lab.step("exec sleep 600", name="twin", image=str(image), readonly=True, cgroupns=False)
        ours = [(st.phase, st.snapshot) for st in s.run_to_end()]
        assert not s.failed, s.error
    finally:
        lab.close()
    snaps = [(ph, snapshot.Snapshot.from_dict(d) if d else None) for ph, d in theirs["steps"]]
    assert [ph for ph, _ in snaps] == [ph for ph, _ in ours]
    for i in range(1, len(ours)):
        phase = ours[i][0]
        mine = snapshot.diff(ours[i - 1][1], ours[i][1])
        seen = snapshot.diff(snaps[i - 1][1], snaps[i][1])
        a, b = names(seen), names(mine)
        if phase == "clone":
            # what the clone step changes in credentials is relative to the runtime process it
            # forked from: root's (uid 0, every capability) or the student's (uid N, none). Both
            # start init the same (root of its user namespace, full sets): compare that instead.
            for part in ("caps", "security"):
                a.pop(part), b.pop(part)
            assert _creds(snaps[i][1]) == _creds(ours[i][1])
        if phase == "security":
            # setgroups([]) drops the caller's supplementary groups: the student's (allowed when its
            # maps come from /etc/subgid ranges, mrunc.security.subids), root's test process has
            # none to drop. Both end with none: compare that instead.
            assert snaps[i][1].security.groups == ours[i][1].security.groups == ()
            for d in (a, b):
                d["security"] = [w for w in d["security"] if w != "groups"]
        assert a == b, (phase, {k: (set(a[k]) ^ set(b[k])) if isinstance(a[k], list) else (a[k], b[k]) for k in a if a[k] != b[k]})
        # and nothing is missing: before exec, the student's parts came from init's own view
        assert snaps[i][1].error is None, (phase, snaps[i][1].error)
        assert all(n.inode is not None for n in snaps[i][1].namespaces if n.kind != "time"), phase
    # the student's clone step shows the isolation at all: the lesson the stepper is for
    clone = dict(snaps)["clone"]
    assert {n.kind for n in clone.namespaces if n.isolated} >= {"user", "pid", "mnt", "uts", "net", "ipc"}
