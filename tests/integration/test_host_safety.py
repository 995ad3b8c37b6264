"""Configs that share a namespace with the host never change the host (issue 8 §1).

Each config runs inside a namespace this test makes (`unshare -m --propagation private`, plus -u
or -n where the UTS or network namespace is shared): the "host" the container shares is a
throwaway copy, and hostprobe.py snapshots it before and after — the identity of "/", the whole
mount table, hostname, links, addresses and routes must be identical. The container is also
checked from inside: it really ran, in the busybox rootfs.
"""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from conftest import REPO, ROOTFS
from hostprobe import mount_points

pytestmark = pytest.mark.root

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostprobe.py")
SHARED_ROOT_ONLY = 'linux.namespaces has no "mount" entry: it would change the host\'s mounts'


def in_throwaway(mr, script, unshare=("-m",), setup="true"):
    """Run `script` ($MRUNC is the CLI) in new namespaces, between two snapshots of them."""
    env = dict(os.environ, MRUNC=f"{sys.executable} -m mrunc --root {mr.root}", T=str(mr.tmp))
    inner = f"{setup} && exec {sys.executable} {PROBE} \"$0\""
    p = subprocess.run(["unshare", *unshare, "--propagation", "private", "--", "sh", "-c", inner, script],
                       capture_output=True, text=True, timeout=180, cwd=REPO, env=env)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def assert_unchanged(r):
    before, after = r["before"], r["after"]
    assert "error" not in after, after
    for key in before:
        if key != "mountinfo":
            assert after[key] == before[key], f"the namespace's {key} changed"
    assert mount_changes(before["mountinfo"], after["mountinfo"], after["gone"]) == []
    assert after["host_cp"], "the outer namespace lost /usr/bin/cp: its root was replaced"


def mount_changes(before, after, gone):
    """Lines of mountinfo text added, or lost — unless another process deleted the mount point
    (see hostprobe.py): that unmounts it in every namespace."""
    old, new = before.splitlines(), after.splitlines()
    added = [f"+{line}" for line in new if line not in old]
    lost = [f"-{line}" for line, mp in zip(old, mount_points(before))
            if line not in new and mp not in set(gone)]
    return added + lost


def no_mount_ns(cfg):
    """What a config without a mount namespace may still ask for: no mounts of any kind."""
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "mount"]
    cfg["mounts"] = []
    cfg["linux"]["maskedPaths"] = []
    cfg["linux"]["readonlyPaths"] = []
    cfg["root"]["readonly"] = False


INSIDE = ("ls /bin/busybox; if [ -e /usr/bin/cp ]; then echo host-visible; else echo chrooted; fi; "
          "echo $$")


@pytest.mark.both_layouts
def test_no_mount_namespace_chroots_and_leaves_the_mounts_alone(mr):
    cid, cid2 = mr.new_id(), mr.new_id()

    def edit(cfg):
        no_mount_ns(cfg)
        cfg["process"]["oomScoreAdj"] = 123  # written through init's private procfs (no /proc here)
    b = mr.bundle(edit, args=["sh", "-c", INSIDE])
    sleeper = mr.bundle(edit, args=["sleep", "60"])
    r = in_throwaway(mr, f"""
        $MRUNC run --bundle {b} {cid} || exit 1
        $MRUNC run -d --pid-file $T/pid --bundle {sleeper} {cid2} >/dev/null 2>&1 || exit 2
        pid=$(cat $T/pid)
        readlink /proc/$pid/root; readlink /proc/$pid/ns/mnt; readlink /proc/self/ns/mnt
        cat /proc/$pid/oom_score_adj
        $MRUNC delete --force {cid2}""")
    assert r["rc"] == 0, r["stderr"]
    assert_unchanged(r)
    lines = r["stdout"].split()
    assert lines[:3] == ["/bin/busybox", "chrooted", "1"], r["stdout"]
    root, mnt, outer, oom = lines[3:7]
    assert root == os.path.realpath(ROOTFS)  # chroot'ed into the rootfs...
    assert mnt == outer                       # ...in the mount namespace it shares
    assert oom == "123"


def test_terminal_without_a_mount_namespace(mr):
    """No devpts of its own and no /dev/console bind: the pty comes from the /dev/ptmx of the
    mount table it shares (here through `script`, which gives `run` a terminal to attach)."""
    cid = mr.new_id()

    def edit(cfg):
        no_mount_ns(cfg)
        cfg["process"]["terminal"] = True
    b = mr.bundle(edit, args=["sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo tty-ok; ls /bin/busybox"])
    r = in_throwaway(mr, f"script -qec '$MRUNC run --bundle {b} {cid}' /dev/null")
    assert r["rc"] == 0, r
    assert_unchanged(r)
    assert "tty-ok" in r["stdout"] and "/bin/busybox" in r["stdout"], r["stdout"]


def test_mounts_are_refused_without_a_mount_namespace(mr):
    cid = mr.new_id()

    def edit(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "mount"]
    b = mr.bundle(edit, args=["true"])
    r = in_throwaway(mr, f"$MRUNC run --bundle {b} {cid}")
    assert_unchanged(r)
    assert r["rc"] != 0
    assert r["stderr"].strip() == (f"mrunc: mounts[0]: cannot mount without a new mount namespace "
                                   f"({SHARED_ROOT_ONLY})")
    assert not os.path.exists(os.path.join(mr.root, cid))  # refused before anything was made


def test_mount_namespace_joined_by_path_is_not_ours(mr):
    """Someone else's mount namespace: neither pivot_root nor a mount in it — it is entered with
    chroot — and a config that would mount there is refused."""
    cid, bad = mr.new_id(), mr.new_id()

    def edit(cfg):
        no_mount_ns(cfg)
        cfg["linux"]["namespaces"].append({"type": "mount", "path": "/proc/HOLDER/ns/mnt"})
    b = mr.bundle(edit, args=["sh", "-c", INSIDE])
    b_bad = mr.bundle(lambda c: [n.update(path="/proc/HOLDER/ns/mnt") for n in c["linux"]["namespaces"]
                                 if n["type"] == "mount"], args=["true"])
    r = in_throwaway(mr, f"""
        unshare -m --propagation private sleep 60 & holder=$!
        while [ "$(readlink /proc/$holder/ns/mnt)" = "$(readlink /proc/self/ns/mnt)" ]; do sleep 0.01; done
        sed -i "s/HOLDER/$holder/" {b}/config.json {b_bad}/config.json
        cat /proc/$holder/mountinfo > $T/holder.before; root_before=$(stat -L -c '%d:%i' /proc/$holder/root)
        $MRUNC run --bundle {b} {cid}; echo "rc=$?"
        $MRUNC run --bundle {b_bad} {bad} 2>&1; echo "rc=$?"
        cat /proc/$holder/mountinfo > $T/holder.after
        [ "$root_before" = "$(stat -L -c '%d:%i' /proc/$holder/root)" ] && echo holder-root-same
        kill $holder""")
    assert_unchanged(r)
    out = r["stdout"].splitlines()
    assert out[:4] == ["/bin/busybox", "chrooted", "1", "rc=0"], r
    assert "mounts[0]: cannot mount without a new mount namespace (the mount namespace is joined " \
           "by path (/proc/" in out[4] and out[5] == "rc=1", out
    assert out[6:] == ["holder-root-same"], out
    before, after = (open(mr.tmp / f"holder.{w}").read() for w in ("before", "after"))
    gone = [mp for mp in mount_points(before) if not os.path.lexists(mp)]
    assert mount_changes(before, after, gone) == [], "the joined namespace's mounts changed"


def test_no_uts_namespace_leaves_the_hostname_alone(mr):
    ok, own_path = mr.new_id(), mr.new_id()

    def shared(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "uts"]
        del cfg["hostname"]

    def own_path_with_hostname(cfg):
        [n.update(path="/proc/self/ns/uts") for n in cfg["linux"]["namespaces"] if n["type"] == "uts"]
        cfg["hostname"] = "renamed-by-container"
    b = mr.bundle(shared, args=["hostname"])
    b_bad = mr.bundle(own_path_with_hostname, args=["hostname"])
    r = in_throwaway(mr, f"$MRUNC run --bundle {b} {ok}; $MRUNC run --bundle {b_bad} {own_path} 2>&1",
                     unshare=("-m", "-u"), setup="hostname safety-outer")
    assert_unchanged(r)
    assert r["before"]["hostname"] == "safety-outer"
    assert r["stdout"].splitlines() == [
        "safety-outer",  # the container sees the namespace it shares
        "mrunc: hostname: unable to set hostname without a private UTS namespace"]


def test_no_network_namespace_touches_no_interface(mr):
    """A shared network namespace (none asked for, or the runtime's own by path): no link is
    brought up or down — the test namespace's lo stays down, its veth pair as it was."""
    absent, own_path = mr.new_id(), mr.new_id()

    def no_net(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]

    def net_by_own_path(cfg):
        cfg["linux"]["namespaces"].append({"type": "network", "path": "/proc/self/ns/net"})
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n.get("path") or
                                      n["type"] != "network"]
    script = "ip -o link show | cut -d: -f2 | tr -d ' '"
    b1 = mr.bundle(no_net, args=["sh", "-c", script])
    b2 = mr.bundle(net_by_own_path, args=["sh", "-c", script])
    r = in_throwaway(mr, f"$MRUNC run --bundle {b1} {absent} && $MRUNC run --bundle {b2} {own_path}",
                     unshare=("-m", "-n"),
                     setup="ip link add safety0 type veth peer name safety1 && "
                           "ip addr add 10.9.8.7/24 dev safety0 && ip link set safety0 up")
    assert r["rc"] == 0, r["stderr"]
    assert_unchanged(r)
    assert any("lo:" in line and "UP" not in line.split(">")[0] for line in r["after"]["links"]), r["after"]
    names = r["stdout"].split()
    assert names.count("safety0@safety1") == 2 or names.count("safety0") == 2, names  # it shared ours


@pytest.mark.both_layouts
def test_cgroup_mount_without_cgroup_namespace_is_read_only(mr):
    """S15: no cgroup namespace — the cgroup filesystem inside is never writable, whatever the
    entry says; "rw" is refused by name."""
    def no_ro(cfg):
        m = next(m for m in cfg["mounts"] if m["type"] == "cgroup")
        m["options"] = [o for o in m["options"] if o != "ro"]
    out = mr.sh("grep ' /sys/fs/cgroup' /proc/self/mountinfo | cut -d' ' -f5,6; "
                "mkdir /sys/fs/cgroup/pids/x 2>&1 || mkdir /sys/fs/cgroup/x 2>&1 || true", edit=no_ro)
    mounts = [line.split() for line in out.splitlines() if line.startswith("/sys/fs/cgroup")]
    cgroup_mounts = [m for m in mounts if m[0] != "/sys/fs/cgroup" or len(mounts) == 1]
    assert cgroup_mounts and all("ro" in opts.split(",") for _, opts in cgroup_mounts), out
    assert "Read-only file system" in out, out

    def rw(cfg):
        next(m for m in cfg["mounts"] if m["type"] == "cgroup")["options"].append("rw")
    p = mr.run("true", edit=rw)
    assert p.returncode != 0
    assert p.stderr.strip().startswith('mrunc: mounts[6].options[5]: "rw" on a cgroup filesystem needs '
                                       'a new cgroup namespace'), p.stderr


def _own_sleep():
    """A process of the test's own, outside any container: what kill --all must not reach."""
    return subprocess.Popen(["sleep", "120"])


def test_no_pid_namespace_kill_all_reaches_only_the_container(mr):
    foreign = _own_sleep()
    cid = mr.new_id()
    try:
        def edit(cfg):
            cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]
        b = mr.bundle(edit, args=["sh", "-c", "sleep 100 & sleep 100 & wait"])
        mr.cli("run", "-d", "--bundle", b, cid, check=True)
        procs = json.loads(mr.cli("ps", "--format", "json", cid, check=True).stdout)
        deadline = time.monotonic() + 10
        while len(procs) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            procs = json.loads(mr.cli("ps", "--format", "json", cid, check=True).stdout)
        assert len(procs) == 3 and foreign.pid not in procs, procs
        mr.cli("kill", "--all", cid, "KILL", check=True)
        deadline = time.monotonic() + 10
        while any(os.path.exists(f"/proc/{p}") and _state(p) != "Z" for p in procs) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(not os.path.exists(f"/proc/{p}") or _state(p) == "Z" for p in procs)
        assert foreign.poll() is None, "kill --all reached a process outside the container"
        mr.cli("delete", cid, check=True)
        assert foreign.poll() is None, "delete reached a process outside the container"
    finally:
        foreign.kill()
        foreign.wait()


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "X"


@pytest.mark.both_layouts
def test_cgroup_already_in_use_is_refused(mr):
    """A cgroupsPath naming a cgroup that holds someone else's process would hand it to kill --all
    and delete: create refuses it (runc's "not empty" check) and leaves it as it was."""
    from mrunc import cgroups
    name = f"/mrunc-safety-{uuid.uuid4().hex[:8]}"
    mgr = cgroups.manager(name, "x")
    foreign = _own_sleep()
    cid = mr.new_id()
    d = mgr.dirs()[0]
    try:
        mgr.create()
        with open(os.path.join(d, "cgroup.procs"), "w") as f:
            f.write(str(foreign.pid))
        p = mr.run("true", edit=lambda c: c["linux"].__setitem__("cgroupsPath", name))
        assert p.returncode != 0
        assert p.stderr.strip() == (f"mrunc: linux.cgroupsPath: the cgroup {d} already holds 1 "
                                    f"process(es) (pid {foreign.pid}): a container needs a cgroup "
                                    f"of its own"), p.stderr
        assert foreign.poll() is None and not os.path.exists(os.path.join(mr.root, cid))
        with open(os.path.join(d, "cgroup.procs")) as f:
            assert f.read().split() == [str(foreign.pid)]
    finally:
        foreign.send_signal(signal.SIGKILL)
        foreign.wait()
        mgr.remove()
