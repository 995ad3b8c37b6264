"""Rootless: an ordinary user runs a container (user namespace mapping only their own uid; no
cgroup unless a subtree is delegated to them — said once, not silently)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO, ROOTFS

pytestmark = [pytest.mark.root, pytest.mark.userns]

NOBODY = 65534


def _as_nobody(*args, cwd, env=None):
    return subprocess.run(["runuser", "-u", "nobody", "--", sys.executable, "-m", "mrunc", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, PYTHONPATH=REPO, XDG_RUNTIME_DIR=cwd, **(env or {})))


@pytest.fixture
def home():
    import pathlib
    import tempfile
    d = pathlib.Path(tempfile.mkdtemp(prefix="mrunc-rootless-", dir="/tmp"))  # pytest's tmp is 0700
    os.chown(d, NOBODY, NOBODY)
    yield d
    # a container left behind would be nobody's: delete it as nobody
    state = d / "state"
    if state.is_dir():
        for cid in os.listdir(state):
            _as_nobody("--root", str(state), "delete", "--force", cid, cwd=str(d))
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(not shutil.which("runuser"), reason="runuser (util-linux) is not installed")
def test_rootless_run_as_nobody(home):
    p = _as_nobody("spec", "--rootless", cwd=str(home))
    assert p.returncode == 0, p.stderr
    cfg = json.loads((home / "config.json").read_text())
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": NOBODY, "size": 1}]
    cfg["root"]["path"] = ROOTFS
    cfg["process"].update(terminal=False, args=["sh", "-c", "id -u; cat /proc/self/uid_map; "
                                                "cat /proc/self/setgroups; echo $$"])
    (home / "config.json").write_text(json.dumps(cfg))
    p = _as_nobody("--root", str(home / "state"), "run", "--bundle", str(home), "rl-1", cwd=str(home))
    assert p.returncode == 0, p.stderr
    uid, umap, setgroups, pid = p.stdout.split("\n")[:4]
    assert uid == "0" and umap.split() == ["0", str(NOBODY), "1"]
    assert setgroups == "deny" and pid == "1"
    # the missing cgroup is said once, not on every container
    assert p.stderr.count("warning: no cgroup") == 1, p.stderr
    q = _as_nobody("--root", str(home / "state"), "run", "--bundle", str(home), "rl-2", cwd=str(home))
    assert q.returncode == 0 and "warning" not in q.stderr, q.stderr
