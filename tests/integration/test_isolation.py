"""What the default config must do to a process, checked from inside the container with busybox."""
import json
import os

import pytest

from conftest import host_ns

pytestmark = pytest.mark.root

NS_FILES = ("ipc", "mnt", "net", "pid", "uts")  # runc's default config: no cgroup namespace


def _ns_inside(mr, edit=None):
    out = mr.sh("for n in cgroup ipc mnt net pid time user uts; do echo $n $(readlink /proc/self/ns/$n); done",
                edit=edit)
    return dict(line.split(" ", 1) for line in out.splitlines())


@pytest.mark.both_layouts
def test_pid1_and_hostname(mr):
    out = mr.sh("echo $$; hostname", edit=lambda c: c.__setitem__("hostname", "box-under-test"))
    assert out.split() == ["1", "box-under-test"]


def test_default_namespaces_differ_from_host(mr):
    inside = _ns_inside(mr)
    for n in NS_FILES:
        assert inside[n] != host_ns(n), n
    # not requested in the default config: shared with the host
    assert inside["user"] == host_ns("user")
    assert inside["time"] == host_ns("time")
    assert inside["cgroup"] == host_ns("cgroup")


def test_namespace_not_requested_is_shared(mr):
    def edit(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]
    inside = _ns_inside(mr, edit)
    assert inside["net"] == host_ns("net")
    assert inside["mnt"] != host_ns("mnt")


def test_time_namespace(mr):
    inside = _ns_inside(mr, lambda c: c["linux"]["namespaces"].append({"type": "time"}))
    assert inside["time"] != host_ns("time")


@pytest.mark.userns
def test_user_namespace_without_cgroup_namespace_binds_its_cgroup(mr):
    """No cgroup namespace: the kernel refuses a cgroup mount in a user namespace, so (as runc)
    the container's own cgroup directories are bound at /sys/fs/cgroup, read-only."""
    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["resources"] = {"pids": {"limit": 42}}
    out = mr.sh("cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; "
                "touch /sys/fs/cgroup/pids/x 2>&1 || true; id -u", edit=edit)
    lines = out.splitlines()
    assert lines[0] == "42", out
    assert "Read-only file system" in lines[1] or "Permission denied" in lines[1], out
    assert lines[-1] == "0"


@pytest.mark.userns
def test_bound_cgroup_dirs_are_read_only_for_a_root_mapped_to_root(mr):
    """S15 where the container's root is the host's (uid 0 mapped to 0): the bound cgroup
    directories are read-only mounts — a write is refused by the mount, not by permissions —
    nosuid, nodev, noexec, in a nosuid/nodev/noexec tmpfs, mode 755 (as runc lays them out)."""
    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
        for m in cfg["mounts"]:  # (gid 5 is not mapped)
            m["options"] = [o for o in m.get("options") or [] if o != "gid=5"]
    out = mr.sh("cat /proc/self/mountinfo; echo ===; stat -c %a /sys/fs/cgroup; "
                "for d in /sys/fs/cgroup/*/; do touch $d/x 2>&1; done; true", edit=edit)
    info, rest = out.split("===\n")
    mounts = {}
    for line in info.splitlines():
        f = line.split()
        if f[4].startswith("/sys/fs/cgroup"):
            mounts[f[4]] = (set(f[5].split(",")), f[f.index("-") + 1])
    assert mounts.pop("/sys/fs/cgroup")[1] == "tmpfs"
    tmpfs_opts = [set(line.split()[5].split(",")) for line in info.splitlines()
                  if line.split()[4] == "/sys/fs/cgroup"][-1]
    assert {"nosuid", "nodev", "noexec"} <= tmpfs_opts, info
    binds = {m: o for m, (o, t) in mounts.items() if m.count("/") == 4}
    assert binds, info
    for m, opts in binds.items():
        assert {"ro", "nosuid", "nodev", "noexec"} <= opts, (m, info)
    lines = rest.splitlines()
    assert lines[0] == "755", out
    assert len(lines) - 1 == len(binds) and all("Read-only file system" in x for x in lines[1:]), out


def test_rootless_spec_runs_as_root(mr, tmp_path):
    """`mrunc spec --rootless` (runc's rootless config: user namespace, no cgroup namespace, /sys
    bound from the host) runs, as it does under runc."""
    import subprocess
    import sys
    from conftest import REPO, ROOTFS
    d = tmp_path / "rl"
    d.mkdir()
    subprocess.run([sys.executable, "-m", "mrunc", "spec", "--rootless", "--bundle", str(d)], check=True,
                   cwd=REPO)
    cfg = json.loads((d / "config.json").read_text())
    cfg["root"]["path"] = ROOTFS
    cfg["process"].update(terminal=False, args=["sh", "-c", "id -u; cat /proc/self/uid_map"])
    p = mr.cli("run", "--bundle", mr.bundle(lambda c: (c.clear(), c.update(cfg))), mr.new_id())
    assert p.returncode == 0, p.stderr
    uid, umap = p.stdout.splitlines()[:2]
    assert uid == "0" and umap.split()[:2] == ["0", "0"], p.stdout


@pytest.mark.userns
def test_user_namespace_with_mappings(mr):
    def edit(cfg):
        cfg["linux"]["namespaces"] += [{"type": "user"}, {"type": "cgroup"}]
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    out = mr.sh("id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user", edit=edit)
    lines = out.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2] != host_ns("user")


def test_join_namespace_by_path(mr):
    """A second container joins the first one's network and UTS namespaces (path given)."""
    cid = mr.new_id()
    b = mr.bundle(lambda c: c.__setitem__("hostname", "first"),
                  args=["sh", "-c", "while :; do sleep 0.05; done"])
    mr.cli("run", "-d", "--bundle", b, cid, check=True)
    pid = json.loads(mr.cli("state", cid).stdout)["pid"]

    def edit(cfg):
        del cfg["hostname"]  # set, it would rename the shared UTS namespace (runc does the same)
        for n in cfg["linux"]["namespaces"]:
            if n["type"] in ("network", "uts"):
                n["path"] = f"/proc/{pid}/ns/{'net' if n['type'] == 'network' else 'uts'}"
    out = mr.sh("hostname; readlink /proc/self/ns/net", edit=edit)
    host, net = out.split()
    assert host == "first"
    assert net == os.readlink(f"/proc/{pid}/ns/net")


def test_joining_wrong_namespace_type_fails_cleanly(mr):
    def edit(cfg):
        for n in cfg["linux"]["namespaces"]:
            if n["type"] == "network":
                n["path"] = "/proc/self/ns/uts"
    p = mr.run("true", edit=edit)
    assert p.returncode != 0
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert "namespace" in p.stderr


def _mounts(mr, edit=None):
    out = mr.sh("cat /proc/self/mountinfo", edit=edit)
    mounts = {}
    for line in out.splitlines():
        pre, _, post = line.partition(" - ")
        f = pre.split()
        fstype, src, sopts = post.split()[:3]
        mounts[f[4]] = {"opts": set(f[5].split(",")), "type": fstype, "super": set(sopts.split(","))}
    return mounts


@pytest.mark.both_layouts
def test_default_mounts_with_options(mr):
    m = _mounts(mr)
    assert m["/proc"]["type"] == "proc"
    assert m["/dev"]["type"] == "tmpfs" and "nosuid" in m["/dev"]["opts"]
    assert m["/dev/pts"]["type"] == "devpts" and {"nosuid", "noexec"} <= m["/dev/pts"]["opts"]
    assert m["/dev/shm"]["type"] == "tmpfs" and {"nosuid", "nodev", "noexec"} <= m["/dev/shm"]["opts"]
    assert m["/dev/mqueue"]["type"] == "mqueue"
    assert m["/sys"]["type"] == "sysfs" and "ro" in m["/sys"]["opts"]
    assert "/sys/fs/cgroup" in m
    assert "ro" in m["/"]["opts"]  # root.readonly: true in the default config
    # masked paths: a file bound over by /dev/null, directories covered by a read-only tmpfs
    assert "/proc/keys" in m and "/proc/acpi" in m
    assert "ro" in m["/proc/sys"]["opts"]  # readonly path


def test_readonly_root_refuses_writes(mr):
    out = mr.sh("touch /newfile 2>&1; echo rc=$?")
    assert "Read-only file system" in out and "rc=1" in out


def test_writable_root_when_not_readonly(mr, tmp_path):
    # a private copy of a tiny rootfs so the shared busybox tree stays clean
    from conftest import copy_rootfs
    root = tmp_path / "rootfs"
    copy_rootfs(root)

    def edit(cfg):
        cfg["root"] = {"path": str(root), "readonly": False}
    out = mr.sh("touch /newfile && echo ok", edit=edit)
    assert out.strip() == "ok" and (root / "newfile").exists()


def test_masked_paths_unreadable(mr):
    out = mr.sh("cat /proc/keys | wc -c; ls /proc/acpi | wc -l; ls /sys/firmware | wc -l")
    assert out.split() == ["0", "0", "0"]  # a file masked by /dev/null, dirs by an empty tmpfs


@pytest.mark.both_layouts
def test_devices_and_links(mr):
    out = mr.sh("for d in null zero full random urandom tty; do stat -c '%n %t:%T %a' /dev/$d; done;"
                "for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done;"
                "echo hi > /dev/null && head -c 3 /dev/zero | wc -c")
    lines = out.splitlines()
    assert lines[0] == "/dev/null 1:3 666"
    assert lines[1] == "/dev/zero 1:5 666"
    assert lines[5].startswith("/dev/tty 5:0")
    assert lines[6:11] == ["/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2", "pts/ptmx"]
    assert lines[11] == "3"


@pytest.mark.both_layouts
def test_env_cwd_user_groups_umask_rlimits(mr):
    def edit(cfg):
        p = cfg["process"]
        p["env"] = ["PATH=/bin:/usr/bin:/sbin", "GREETING=hello world"]
        p["cwd"] = "/tmp"
        p["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [1001, 1002], "umask": 0o027}
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512},
                        {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}]
    out = mr.sh('echo "$GREETING"; pwd; id -u; id -g; id -G; umask; ulimit -n; '
                'grep "Max processes" /proc/self/limits', edit=edit)
    lines = out.splitlines()
    assert lines[0] == "hello world"
    assert lines[1] == "/tmp"
    assert lines[2:4] == ["1000", "1000"]
    assert set(lines[4].split()) == {"1000", "1001", "1002"}
    assert lines[5] == "0027"
    assert lines[6] == "512"
    assert lines[7].split()[2:4] == ["100", "200"]


@pytest.mark.both_layouts
def test_capabilities_of_default_config(mr):
    out = mr.sh("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status; grep NoNewPrivs /proc/self/status")
    caps = dict(line.split(":\t") for line in out.splitlines())
    # AUDIT_WRITE(29), KILL(5), NET_BIND_SERVICE(10)
    want = (1 << 29) | (1 << 5) | (1 << 10)
    assert int(caps["CapBnd"], 16) == want
    assert int(caps["CapEff"], 16) == want and int(caps["CapPrm"], 16) == want
    assert int(caps["CapInh"], 16) == 0 and int(caps["CapAmb"], 16) == 0
    assert caps["NoNewPrivs"].strip() == "1"


def test_oom_score_adj(mr):
    out = mr.sh("cat /proc/self/oom_score_adj", edit=lambda c: c["process"].__setitem__("oomScoreAdj", 123))
    assert out.strip() == "123"


def test_loopback_is_up_in_new_network_namespace(mr):
    out = mr.sh("cat /sys/class/net/lo/operstate /sys/class/net/lo/flags; ls /sys/class/net")
    state, flags, *ifaces = out.split()
    assert int(flags, 16) & 1  # IFF_UP
    assert ifaces == ["lo"]


def test_only_stdio_fds_reach_the_program(mr):
    out = mr.sh("ls /proc/self/fd")
    assert sorted(out.split()) == ["0", "1", "2", "3"]  # 3 = the directory ls is reading


@pytest.mark.both_layouts
def test_cgroup_namespace_root(mr):
    """With a cgroup namespace, made after init joined its cgroup, that cgroup is "/" inside."""
    out = mr.sh("readlink /proc/self/ns/cgroup; cat /proc/self/cgroup",
                edit=lambda c: c["linux"]["namespaces"].append({"type": "cgroup"}))
    ns, out = out.split("\n", 1)
    assert ns != host_ns("cgroup")
    for line in out.splitlines():
        assert line.rsplit(":", 1)[1] == "/", out


def test_created_init_is_not_dumpable(mr):
    """Until exec, init is mrunc's own code running the host's interpreter. A process of another
    container sharing its PID namespace (same uid, same caps) must not reach the host's interpreter
    through /proc/1/exe (CVE-2019-5736): init is not dumpable."""
    cid = mr.new_id()
    mr.cli("create", "--bundle", mr.bundle(args=["sleep", "10"]), cid, check=True)
    pid = json.loads(mr.cli("state", cid).stdout)["pid"]

    def join(cfg):
        for n in cfg["linux"]["namespaces"]:
            if n["type"] == "pid":
                n["path"] = f"/proc/{pid}/ns/pid"
    out = mr.sh("readlink /proc/1/exe || echo exe-denied; readlink /proc/1/cwd || echo cwd-denied; "
                "readlink /proc/$$/exe", edit=join)
    assert out.split() == ["exe-denied", "cwd-denied", "/bin/busybox"], out


@pytest.mark.parametrize("fd", range(3, 9))
def test_cwd_through_proc_self_fd_is_refused(mr, fd):
    """CVE-2024-21626: a cwd of /proc/self/fd/N must never land on a host directory."""
    p = mr.run("sh", "-c", "pwd; ls", edit=lambda c: c["process"].__setitem__("cwd", f"/proc/self/fd/{fd}"))
    assert p.returncode != 0 and "cwd" in p.stderr, (p.stdout, p.stderr)
    assert "state.json" not in p.stdout and "exec.fifo" not in p.stdout


def test_scheduler_policy_and_nice(mr):
    def edit(cfg):
        cfg["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 7}
    out = mr.sh("grep -E '^policy' /proc/self/sched; cut -d' ' -f19 /proc/self/stat", edit=edit)
    policy, nice = out.splitlines()
    assert policy.split()[-1] == "3" and nice == "7"  # SCHED_BATCH = 3


def test_io_priority(mr):
    out = mr.sh("ionice -p $$", edit=lambda c: c["process"].__setitem__(
        "ioPriority", {"class": "IOPRIO_CLASS_IDLE", "priority": 0}))
    assert out.strip() == "idle", out


def test_personality_linux32(mr):
    out = mr.sh("uname -m", edit=lambda c: c["linux"].__setitem__("personality", {"domain": "LINUX32"}))
    assert out.strip() in ("i686", "armv8l", "armv7l"), out


def test_time_namespace_offsets(mr):
    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "time"})
        cfg["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 1000, "nanosecs": 0},
                                       "monotonic": {"secs": 3600, "nanosecs": 0}}
    inside = float(mr.sh("cut -d' ' -f1 /proc/uptime", edit=edit))
    host = float(open("/proc/uptime").read().split()[0])
    assert inside - host > 86400 * 1000 - 60, (inside, host)


def test_time_offsets_need_a_new_time_namespace(mr):
    p = mr.run("true", edit=lambda c: c["linux"].__setitem__("timeOffsets", {"boottime": {"secs": 5}}))
    assert p.returncode != 0 and "linux.timeOffsets" in p.stderr and "time namespace" in p.stderr


def test_program_starts_with_default_sigpipe(mr):
    """Python ignores SIGPIPE; an ignored signal survives execve. The container's program must not
    inherit that (`yes | head` would print errors forever instead of ending)."""
    out = mr.sh("grep SigIgn /proc/self/status")
    ign = int(out.split()[1], 16)
    assert not ign & (1 << (13 - 1)) and not ign & (1 << (25 - 1)), out  # SIGPIPE, SIGXFSZ
