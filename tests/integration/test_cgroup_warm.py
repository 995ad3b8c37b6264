"""The warm-up of the cgroup migration lock (mrunc.cgroups.warm) is a no-op for the host: the
runtime stays in its own cgroups, it writes only its own pid into its own cgroup.procs, nothing
when it may not write there, and none of it is in the trace."""
import os
import re
import shutil
import subprocess
import sys
import uuid

import pytest

from conftest import REPO

pytestmark = pytest.mark.root


def _own_cgroups(pid="self"):
    """{controllers field: path} of /proc/<pid>/cgroup."""
    with open(f"/proc/{pid}/cgroup") as f:
        return dict(line.rstrip("\n").split(":", 2)[1:] for line in f)


def _hierarchies():
    """[(controllers field, mountpoint, our cgroup path)] of the hierarchies mounted under
    /sys/fs/cgroup, read here rather than through mrunc's own parser (what is being tested)."""
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fstype, _src, opts = post.split()[:3]
            mp = pre.split()[4]
            if fstype == "cgroup2":
                mounts[""] = mp
            elif fstype == "cgroup":
                for o in opts.split(","):
                    mounts.setdefault(o, mp)
    out = []
    for ctrls, path in _own_cgroups().items():
        mp = mounts.get(ctrls.split(",")[0])
        if mp and mp.startswith("/sys/fs/cgroup"):
            out.append((ctrls, mp, path))
    return out


@pytest.fixture
def nested():
    """A cgroup of this test's own below ours, in every hierarchy: {controllers field: dir};
    removed afterwards."""
    name = f"mrunc-warm-{uuid.uuid4().hex[:8]}"
    made = {}
    try:
        for ctrls, mp, path in _hierarchies():
            parent = os.path.join(mp, path.lstrip("/"))
            made[ctrls] = d = os.path.join(parent, name)
            os.mkdir(d)
            if os.path.exists(os.path.join(mp, "tasks")):     # v1 cpuset: empty admits no one
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if os.path.exists(os.path.join(d, knob)):
                        with open(os.path.join(parent, knob)) as src, \
                                open(os.path.join(d, knob), "w") as dst:
                            dst.write(src.read())
        yield made
    finally:
        for d in made.values():
            for sub, _dirs, _files in os.walk(d, topdown=False):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass


def _hook_bundle(mr, out, cgroups_path=None):
    """A `true` bundle whose createRuntime hook — a child of the runtime, run while it creates —
    copies the runtime's /proc/<pid>/cgroup to `out`."""
    def edit(cfg):
        if cgroups_path:
            cfg["linux"]["cgroupsPath"] = cgroups_path
        cfg["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": [
            "sh", "-c", f"cat /proc/$PPID/cgroup > {out}"]}]}
    return mr.bundle(edit, args=["true"])


@pytest.mark.both_layouts
@pytest.mark.parametrize("cgroupns", [False, True], ids=["own-cgroups", "cgroupns-after-mount"])
def test_the_runtime_stays_in_its_own_cgroups(mr, nested, tmp_path, cgroupns):
    """In a cgroup of its own in every hierarchy; and then in a cgroup namespace made *after*
    /sys/fs/cgroup was mounted, where /proc/self/cgroup says "/" and the mounts' roots are
    "/..": a warm-up that trusted those paths would move the runtime into the host's root
    cgroup (the hook would then read "/.." paths)."""
    out = tmp_path / "runtime-cgroup"
    b = _hook_bundle(mr, out)

    def enter():
        for d in nested.values():
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write("0")
    prefix = ["unshare", "-C"] if cgroupns else []

    def run(bundle):
        cid = mr.new_id()
        return cid, subprocess.run([*prefix, sys.executable, "-m", "mrunc", "--root", mr.root,
                                    "run", "--bundle", bundle, cid], preexec_fn=enter, cwd=REPO,
                                   capture_output=True, text=True, timeout=60)
    cid, p = run(b)
    if cgroupns:
        # Where our cgroup is below the mount is unknown there: a relative cgroupsPath is
        # refused in one line (not put at the host's root), nothing left; an absolute one works.
        assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
        assert p.stderr.startswith("mrunc: linux.cgroupsPath: ") and "namespace" in p.stderr
        assert not os.path.exists(os.path.join(mr.root, cid)) and not out.exists()
        if list(nested) == [""]:
            # Pure v2 moves a process only within the namespace, and its root holds the runtime
            # (no internal processes: no container cgroup below it either): refused is all.
            return
        b = _hook_bundle(mr, out, cgroups_path=f"/mrunc-warm-{uuid.uuid4().hex[:8]}")
        cid, p = run(b)
    assert p.returncode == 0, p.stderr
    seen = dict(line.split(":", 2)[1:] for line in out.read_text().splitlines())
    mine = _own_cgroups()
    for ctrls, d in nested.items():
        # in the namespace, its root is where the runtime was put: "/"
        want = "/" if cgroupns else mine[ctrls].rstrip("/") + "/" + os.path.basename(d)
        assert seen[ctrls] == want, out.read_text()


STRACE = shutil.which("strace")
WRITE = re.compile(r'^(\d+) +write\(\d+<([^>]*/cgroup\.procs)>, "(\d+)"')
THREAD = re.compile(r"^(\d+) +clone3?\(.*CLONE_THREAD")


def _straced(argv, run=subprocess.run, **kw):
    """argv under strace -f: (its result, the runtime's pid, the strace lines)."""
    log = f"/tmp/mrunc-warm-strace-{uuid.uuid4().hex[:8]}"
    try:
        p = run(["strace", "-f", "-qq", "-y", "-e", "trace=write,clone,clone3", "-o", log, *argv],
                **kw)
        with open(log) as f:
            lines = f.read().splitlines()
    finally:
        if os.path.exists(log):
            os.unlink(log)
    return p, int(lines[0].split()[0]), lines


def _where_the_runtime_moves_init(cfg):
    """Only where the runtime still moves init through a cgroup.procs does it warm the lock: on
    v2, or (v1/hybrid host) for a user namespace that does not map the host's root, whose init
    is not born in its unified cgroup (test_cgroup_self_join.py: elsewhere, no thread)."""
    with open("/proc/self/mountinfo") as f:
        v1 = any(" - cgroup " in line for line in f)
    if v1:
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = cfg["linux"]["gidMappings"] = [
            {"containerID": 0, "hostID": 100000, "size": 65536}]


@pytest.mark.both_layouts
@pytest.mark.userns
@pytest.mark.skipif(STRACE is None, reason="strace is not installed (make setup installs it)")
def test_the_warm_up_writes_only_our_pid_to_our_cgroup_and_not_in_the_trace(mr):
    """Seen by strace: a thread of the runtime writes the runtime's own pid into a cgroup.procs
    that lists this test's pid (the runtime's parent, in the same cgroups) — and the trace has
    no call of it: every cgroup.procs write there moves init."""
    cid = mr.new_id()
    p, runtime, lines = _straced(
        [sys.executable, "-m", "mrunc", "--root", mr.root, "run", "--trace", "--bundle",
         mr.bundle(_where_the_runtime_moves_init, args=["true"]), cid], cwd=REPO,
        capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    threads = {int(m.group(1)) for m in map(THREAD.match, lines) if m}
    assert runtime in threads, "the runtime started no thread: no warm-up"
    own = [(m.group(2), m.group(3)) for m in map(WRITE.match, lines)
           if m and m.group(3) == str(runtime)]
    assert own, "no write of the runtime's pid into a cgroup.procs"
    for path, _pid in own:
        with open(path) as f:
            assert str(os.getpid()) in f.read().split(), f"{path} is not the runtime's own cgroup"
    traced = re.findall(r"write\('([^']*/cgroup\.procs)', '(\d+)'\)", p.stderr)
    assert traced and all(pid != str(runtime) for _, pid in traced), traced


@pytest.mark.userns
@pytest.mark.skipif(STRACE is None, reason="strace is not installed (make setup installs it)")
def test_no_warm_up_thread_where_the_user_may_not_write_its_cgroup():
    """A real unprivileged user, no delegated cgroup (this host; the VM's root cgroup): its own
    cgroup.procs is root's, so no thread starts and nothing is written to any cgroup.procs."""
    from students import make_students
    gen = make_students(1)
    (student,) = next(gen)
    try:
        b = student.bundle("warm", ["true"])
        argv = [sys.executable, "-m", "mrunc", "--root", os.path.join(student.home, "state"),
                "run", "--bundle", b, "warm"]
        p, runtime, lines = _straced(argv, run=lambda a, **kw: student.run(*a, **kw))
        if p.returncode != 0 and "user namespace" in p.stderr.lower():
            pytest.skip(f"no unprivileged user namespaces here: {p.stderr.strip()}")
        assert p.returncode == 0, p.stderr
        assert runtime not in {int(m.group(1)) for m in map(THREAD.match, lines) if m}
        assert not [line for line in lines if WRITE.match(line)]
    finally:
        next(gen, None)
