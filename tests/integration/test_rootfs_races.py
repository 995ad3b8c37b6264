"""The two racing pitfalls, raced for real (S7 and S12).

S7 (CVE-2024-45310): a process sharing a volume with the container swaps a directory on a mount
target's path for a symlink out of the rootfs while `create` makes the target. S12
(CVE-2025-52881): a racer bind-mounts another procfs file over the one the runtime is about to
write. In both, the runtime may lose a race (fail cleanly), never write or create outside.
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, copy_rootfs, flipping

pytestmark = pytest.mark.root


def test_mount_target_in_a_volume_swapped_for_a_symlink(mr, tmp_path):
    """S7 through `create`: vol/sub flips between a directory and a symlink to a host directory
    while containers bind something at /vol/sub/a/b, many times over. Nothing is ever made in the
    host directory; the containers that win see their mount inside."""
    rootfs, vol, outside, data = (tmp_path / n for n in ("rootfs", "vol", "outside", "data"))
    copy_rootfs(rootfs)  # in-root creation may land in the image
    for d in (vol, outside, data):
        d.mkdir()
    (data / "marker").write_text("bound\n")

    def edit(cfg):
        cfg["root"] = {"path": str(rootfs), "readonly": False}
        cfg["mounts"] += [
            {"destination": "/vol", "type": "bind", "source": str(vol), "options": ["rbind"]},
            {"destination": "/vol/sub/a/b", "type": "bind", "source": str(data), "options": ["rbind"]}]
    b = mr.bundle(edit, args=["cat", "/vol/sub/a/b/marker"])
    ran = 0
    with flipping(vol, outside):
        for _ in range(25):
            p = mr.cli("run", "--bundle", b, mr.new_id())
            errors = [line for line in p.stderr.splitlines() if line.startswith("mrunc:")]
            assert "Traceback" not in p.stderr and len(errors) <= 1, p.stderr
            ran += p.returncode == 0 and p.stdout == "bound\n"
    assert os.listdir(outside) == [], "create made something outside the rootfs"
    assert ran > 0, "no container won a race: the test proves nothing"


RACE = r"""
import errno, json, os, subprocess, sys, threading, time
from mrunc import linux, procfs
T = sys.argv[1]
sysc = linux.Syscalls()
os.makedirs(f"{T}/proc")
sysc.mount("proc", f"{T}/proc", "proc")            # "the container's /proc": racers can mount on it
other = subprocess.Popen(["sleep", "60"])            # whose oom_score_adj a redirected write would hit
target, decoy = f"{T}/proc/{os.getpid()}/oom_score_adj", f"/proc/{other.pid}/oom_score_adj"
stop = threading.Event()

def swap():
    while not stop.is_set():
        try:
            sysc.mount(decoy, target, None, linux.MS_BIND)   # another procfs file, over ours
            sysc.umount2(target, linux.MNT_DETACH)
        except OSError:
            pass

t = threading.Thread(target=swap, daemon=True)
t.start()
out = {}
for kind, handle in (("at", procfs.Proc.at(f"{T}/proc")), ("private", procfs.Proc.new(sysc))):
    landed = refused = i = 0
    deadline = time.monotonic() + 10
    # the raced handle: until both outcomes were seen (or 10 s); the private one: 300 writes
    while (refused < 5 or landed < 5) if kind == "at" else i < 300:
        if kind == "at" and time.monotonic() > deadline:
            break
        i += 1
        time.sleep(0)  # let the swapper run
        value = str(100 + i % 400)
        try:
            handle.write(sysc, "self/oom_score_adj", value, "race")
        except OSError as e:
            assert e.errno == errno.EXDEV, e      # the bind is another mount: refused, not followed
            refused += 1
            continue
        with open("/proc/self/oom_score_adj") as f:
            assert f.read().strip() == value
        landed += 1
    out[kind] = [landed, refused, handle.private]
    handle.close()
stop.set()
t.join()
with open(decoy) as f:
    out["decoy"] = f.read().strip()
other.kill()
print(json.dumps(out))
"""


@pytest.mark.skipif(not __import__("mrunc.linux").linux.has_openat2(), reason="needs openat2")
def test_procfs_write_with_a_racing_bind_mount(tmp_path):
    """S12: a thread keeps bind-mounting another process's oom_score_adj over ours while we write
    ours through mrunc.procfs, in a mount namespace of the test's own. Through a handle on the
    raced /proc, each write lands in the real file or is refused (EXDEV); through the private
    procfs instance (init's), there is nothing to race: every write lands. The other process's
    file is never written."""
    p = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c", RACE,
                        str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    landed, refused, _ = out["at"]
    assert landed > 0 and refused > 0, out  # the race was really run, and really lost sometimes
    assert out["private"] == [300, 0, True], out
    assert out["decoy"] == "0", out
