"""Bad input of every kind: one line naming the problem, exit != 0, no traceback, nothing left behind
(no state dir, no mount, no cgroup, no process)."""
import glob
import json
import os

import pytest

pytestmark = pytest.mark.root


def _mountinfo():
    with open("/proc/self/mountinfo") as f:
        return sorted(" ".join(l.split()[3:5]) for l in f)


def _inits(root):
    """Container inits (any state, zombies included) forked by mrunc commands using `root`."""
    pids = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            if (open(f"{d}/comm").read().strip() == "mrunc:[init]"
                    and root.encode() in open(f"{d}/cmdline", "rb").read()):
                pids.append(d.split("/")[2])
        except OSError:
            pass
    return set(pids)


def _cgroup_dirs(cid):
    return glob.glob(f"/sys/fs/cgroup/*/mrunc/{cid}") + glob.glob(f"/sys/fs/cgroup/mrunc/{cid}") + \
        glob.glob(f"/sys/fs/cgroup/*/{cid}") + glob.glob(f"/sys/fs/cgroup/{cid}")


def _assert_clean_failure(mr, p, cid, expect):
    err = p.stderr.strip()
    assert p.returncode != 0, p
    assert "Traceback" not in p.stderr, p.stderr
    assert len(err.splitlines()) == 1, err
    assert expect in err, err
    assert not os.path.exists(os.path.join(mr.root, cid or "-none-"))
    if cid:
        assert _cgroup_dirs(cid) == []


def _set(path, value):
    def edit(cfg):
        *parents, last = path
        node = cfg
        for k in parents:
            node = node[k]
        if value is _DEL:
            del node[last]
        else:
            node[last] = value
    return edit


_DEL = object()

CONFIG_CASES = [
    ("missing root", _set(["root"], _DEL), "root"),
    ("missing process", _set(["process"], _DEL), "process"),
    ("rootfs missing", _set(["root", "path"], "/nonexistent/rootfs"), "root.path"),
    ("relative mount destination", lambda c: c["mounts"].append({"destination": "rel", "type": "tmpfs",
                                                                  "source": "tmpfs"}), "mounts["),
    ("unknown namespace", lambda c: c["linux"]["namespaces"].append({"type": "foo"}),
     'linux.namespaces[5].type'),
    ("duplicate namespace", lambda c: c["linux"]["namespaces"].append({"type": "pid"}),
     'duplicate'),
    ("uid as string", _set(["process", "user", "uid"], "0"), "process.user.uid"),
    ("empty args", _set(["process", "args"], []), "process.args"),
    ("relative cwd", _set(["process", "cwd"], "tmp"), "process.cwd"),
    ("unknown rlimit", _set(["process", "rlimits"], [{"type": "RLIMIT_FOO", "soft": 1, "hard": 1}]),
     "process.rlimits[0]"),
    ("program not found", _set(["process", "args"], ["/no/such/program"]), "no/such/program"),
    ("program not in PATH", _set(["process", "args"], ["nosuchprogram"]), "nosuchprogram"),
    ("unsupported field", _set(["linux", "intelRdt"], {"closID": "x"}), "linux.intelRdt"),
    ("unknown capability", lambda c: c["process"]["capabilities"]["bounding"].append("CAP_BOGUS"),
     'process.capabilities.bounding[3]: unknown capability "CAP_BOGUS"'),
    ("unknown seccomp action", _set(["linux", "seccomp"], {"defaultAction": "SCMP_ACT_FOO"}),
     "linux.seccomp.defaultAction"),
    ("bad mount fs type", lambda c: c["mounts"].append({"destination": "/mnt", "type": "nosuchfs",
                                                         "source": "x"}), "/mnt"),
    ("bind source missing", lambda c: c["mounts"].append({"destination": "/mnt", "type": "bind",
                                                           "source": "/nonexistent", "options": ["bind"]}),
     "/nonexistent"),
    ("namespace path missing", lambda c: c["linux"]["namespaces"].__setitem__(
        0, {"type": "pid", "path": "/proc/999999999/ns/pid"}), "namespace"),
    ("rlimit above hard limit", _set(["process", "rlimits"], [
        {"type": "RLIMIT_NOFILE", "soft": 1 << 40, "hard": 1 << 40}]), "RLIMIT_NOFILE"),
    ("unknown scheduler policy", _set(["process", "scheduler"], {"policy": "SCHED_FAST"}),
     "process.scheduler.policy"),
    ("io priority out of range", _set(["process", "ioPriority"], {"class": "IOPRIO_CLASS_BE", "priority": 9}),
     "process.ioPriority.priority"),
    ("unknown personality", lambda c: c["linux"].__setitem__("personality", {"domain": "LINUX64"}),
     "linux.personality.domain"),
    ("cgroup limit rejected", lambda c: c["linux"].__setitem__("resources", {"memory": {"limit": -5}}),
     "memory"),
]


@pytest.mark.parametrize("name,edit,expect", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_broken_config(mr, name, edit, expect):
    mounts = _mountinfo()
    cid = mr.new_id()
    b = mr.bundle(edit)
    p = mr.cli("create", "--bundle", b, cid)
    _assert_clean_failure(mr, p, cid, expect)
    assert _mountinfo() == mounts
    assert _inits(mr.root) == set()


def test_invalid_json(mr, tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    (d / "config.json").write_text('{"ociVersion": "1.0.0",')
    cid = mr.new_id()
    _assert_clean_failure(mr, mr.cli("create", "--bundle", str(d), cid), cid, "config.json")


def test_missing_bundle(mr):
    cid = mr.new_id()
    _assert_clean_failure(mr, mr.cli("create", "--bundle", "/nonexistent/bundle", cid), cid, "bundle")


@pytest.mark.parametrize("bad", ["../escape", "a/b", ".", "..", "has space", ""])
def test_bad_id(mr, bad):
    b = mr.bundle()
    p = mr.cli("create", "--bundle", b, bad)
    _assert_clean_failure(mr, p, None, "id")
    assert not os.path.exists("/run/escape")


def test_id_in_use(mr):
    cid = mr.new_id()
    b = mr.bundle(args=["sleep", "10"])
    mr.cli("create", "--bundle", b, cid, check=True)
    p = mr.cli("create", "--bundle", b, cid)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1
    assert "already exists" in p.stderr
    assert json.loads(mr.cli("state", cid).stdout)["status"] == "created"


@pytest.mark.parametrize("argv,expect", [
    (["frobnicate"], "unknown command"),
    (["create", "--no-such-flag", "x"], "unrecognized flag"),
    (["state"], "id"),
    (["start"], "id"),
    (["kill"], "id"),
    (["delete"], "id"),
    ([], "no command"),
    (["--log-format", "xml", "list"], "log-format"),
    (["--systemd-cgroup", "list"], "systemd"),
    (["create", "--preserve-fds", "-1", "x"], "preserve-fds"),
])
def test_bad_command_line(mr, argv, expect):
    p = mr.cli(*argv)
    _assert_clean_failure(mr, p, None, expect)


@pytest.mark.parametrize("verb", ["state", "start", "kill", "delete"])
def test_unknown_container(mr, verb):
    p = mr.cli(verb, "no-such-container")
    _assert_clean_failure(mr, p, None, "does not exist")


def test_json_log_has_error_line(mr, tmp_path):
    log = tmp_path / "log.json"
    p = mr.cli("--log", str(log), "--log-format", "json", "state", "nope")
    assert p.returncode != 0
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["level"] == "error" and "does not exist" in last["msg"]


def test_start_of_running_container(mr):
    cid = mr.new_id()
    mr.cli("run", "-d", "--bundle", mr.bundle(args=["sleep", "10"]), cid, check=True)
    p = mr.cli("start", cid)
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1 and "running" in p.stderr


@pytest.mark.skipif(os.path.exists("/sys/fs/selinux/enforce"), reason="this host has SELinux")
def test_mount_label_without_selinux_is_one_warning_and_the_container_runs(mr):
    """crun's choice (runc refuses): with no SELinux on the host there is no label to honour."""
    p = mr.run("echo", "ran", edit=_set(["linux", "mountLabel"], "system_u:object_r:container_file_t:s0"))
    assert p.returncode == 0 and p.stdout == "ran\n"
    assert p.stderr.splitlines() == [
        "mrunc: warning: linux.mountLabel: ignored: SELinux is not enabled on this host"]
