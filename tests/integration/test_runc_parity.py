"""The same bundle must give the same observable result under `runc run` and `mrunc run`."""
import json
import subprocess
import uuid

import pytest

pytestmark = [pytest.mark.root, pytest.mark.runc]

# What a process can see of its container. Numbers that differ between any two runs (inode
# numbers, mount ids, pids of helpers) are left out; everything else must match exactly.
PROBE = r"""
echo "pid=$$ ppid=$PPID"; id; hostname; pwd; umask
env | sort
grep -E '^(Cap|NoNewPrivs|Seccomp:|Groups|Uid|Gid)' /proc/self/status
ulimit -a
cat /proc/self/oom_score_adj
awk '{split($0,a," - "); split(a[1],f," "); split(a[2],g," "); print f[5], f[6], g[1], g[3]}' /proc/self/mountinfo | sort
ls -l /dev | awk '{print $1, $3, $4, $5, $6, $NF}' | sort
for l in fd stdin stdout stderr ptmx; do echo "/dev/$l -> $(readlink /dev/$l)"; done
ls /sys/class/net; cat /sys/class/net/lo/operstate
cat /proc/self/cgroup | sed 's#:/.*#:<path>#'
touch /x 2>&1 | sed 's/^touch: //'
cat /proc/keys | wc -c; ls /proc/acpi | wc -l
echo end
"""


def _runc(tmp_path, bundle_cfg):
    b = tmp_path / f"runc-{uuid.uuid4().hex[:6]}"
    b.mkdir()
    (b / "config.json").write_text(json.dumps(bundle_cfg))
    root = f"/run/runc-parity-{uuid.uuid4().hex[:8]}"
    cid = f"p-{uuid.uuid4().hex[:8]}"
    try:
        p = subprocess.run(["runc", "--root", root, "run", "--bundle", str(b), cid],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run(["runc", "--root", root, "delete", "--force", cid], capture_output=True)
        subprocess.run(["rm", "-rf", root])
    return p


def _both(mr, tmp_path, edit=None):
    from conftest import base_config
    cfg = base_config()
    cfg["process"]["args"] = ["sh", "-c", PROBE]
    if edit:
        edit(cfg)
    ours = mr.cli("run", "--bundle", mr.bundle(lambda c: c.update(json.loads(json.dumps(cfg)))),
                  mr.new_id(), stdin=subprocess.DEVNULL)
    theirs = _runc(tmp_path, cfg)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    return ours.stdout.splitlines(), theirs.stdout.splitlines()


def _assert_same(ours, theirs):
    import difflib
    diff = list(difflib.unified_diff(theirs, ours, "runc", "mrunc", lineterm="", n=0))
    assert not diff, "\n".join(diff)


def test_default_config_same_as_runc(mr, tmp_path):
    ours, theirs = _both(mr, tmp_path)
    assert ours[-1] == "end"
    _assert_same(ours, theirs)


def test_user_and_limits_same_as_runc(mr, tmp_path):
    def edit(cfg):
        cfg["hostname"] = "parity"
        p = cfg["process"]
        p["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [1001], "umask": 0o077}
        p["cwd"] = "/tmp"
        p["env"] += ["FOO=bar baz"]
        p["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512}]
        p["oomScoreAdj"] = 200
        p["capabilities"]["bounding"] += ["CAP_CHOWN"]
        p["capabilities"]["permitted"] += ["CAP_CHOWN"]
        p["capabilities"]["effective"] += ["CAP_CHOWN"]
        p["noNewPrivileges"] = False
    ours, theirs = _both(mr, tmp_path, edit)
    _assert_same(ours, theirs)
