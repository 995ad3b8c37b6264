"""No notebook closes its lab in a last cell (that would end every stepper's session, so a teacher
who ran all could not walk one): the lab is closed when the kernel stops. Here a real kernel runs a
notebook top to bottom, then a stepper is left half-walked (a container paused mid-create), and the
kernel is asked to shut down as JupyterLab asks it: afterwards nothing of it may be left — no state
or bundle directory, no host directory of the notebook's, no container process, no cgroup, no mount.
Everything looked for is named by what the kernel itself reported (its sandboxes' roots and cgroup
tags, its containers' pids), so other users' containers on the machine do not count."""
import json
import os
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.root, pytest.mark.slow]

# After the notebook: one more session, walked to the middle (its runtime paused after `cgroup`,
# the container's cgroup and init made), and what the kernel has, as JSON.
PROBE = """
import json as _json, os as _os
from mrunc.sandbox import lab as _lab
_half = lab.step("sleep 600", name="half")
while _half.current != "cgroup" and not _half.done:
    _half.next()
assert _half.current == "cgroup", _half
_labs = list(_lab._OPEN)
print("PROBE", _json.dumps({
    "kernel": _os.getpid(),
    "tags": [s.tag for s in _labs],
    "paths": [p for s in _labs for p in (s.root, s.work)] + [globals().get("host_dir", "/nonexistent")],
    "pids": [c.pid for s in _labs for c in s.containers.values() if c.pid],
}))
"""


def code_cells(name):
    nb = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def leftovers(probe):
    """What of the kernel's sandboxes is still on the host, in words (empty: nothing)."""
    left = [f"{p} exists" for p in probe["paths"] if os.path.exists(p)]
    left += [f"pid {pid} runs" for pid in probe["pids"] + [probe["kernel"]]
             if os.path.exists(f"/proc/{pid}")]
    tags = [f"mrunc-lab-{t}-" for t in probe["tags"]]
    for pid in filter(str.isdigit, os.listdir("/proc")):        # a container's forked children too
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                if any(t in f.read() for t in tags):
                    left.append(f"pid {pid} is in a cgroup of the lab")
        except OSError:
            pass
    for top in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", top)
        if os.path.isdir(d) and not os.path.islink(d):
            left += [f"cgroup {d}/{e}" for e in os.listdir(d) if any(e.startswith(t) for t in tags)]
    with open("/proc/self/mountinfo") as f:
        mounts = f.read().splitlines()
    left += [f"mount {line.split()[4]}" for line in mounts
             if any(f" {p}/" in line or f" {p} " in line for p in probe["paths"])]
    return left


# the notebooks with steppers; pivot-root-vs-chroot has a second sandbox (its chroot breakout's)
LABS = {"pivot-root-vs-chroot": 2, "oci-bundle-lifecycle": 1, "networking": 1}


@pytest.mark.parametrize("name", LABS)
def test_nothing_is_left_when_the_kernel_stops(name):
    from jupyter_client.manager import KernelManager
    root = f"/run/mrunc-kernelend-{uuid.uuid4().hex[:8]}"
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(REPO / "notebooks"), env={**os.environ, "MRUNC_LAB_ROOT": root})
    kc = km.client()
    kc.start_channels()
    out = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")
    probe = None
    try:
        kc.wait_for_ready(timeout=60)
        for i, code in enumerate([*code_cells(name), PROBE]):
            reply = kc.execute_interactive(code, timeout=120, output_hook=hook)
            assert reply["content"]["status"] == "ok", f"code cell {i}: {''.join(out)[-2000:]}"
        probe = json.loads(next(x for x in "".join(out).splitlines() if x.startswith("PROBE "))[6:])
        # what is looked for afterwards is there now: the check can fail
        assert len(probe["tags"]) == LABS[name] and len(probe["pids"]) >= 2, probe
        before = leftovers(probe)
        assert any(x.startswith("cgroup ") for x in before) and \
            any(x.endswith("is in a cgroup of the lab") for x in before), before
        # as JupyterLab does: a shutdown request, then (after a grace period) a kill
        km.shutdown_kernel(now=False)
        deadline = time.monotonic() + 30
        while leftovers(probe) and time.monotonic() < deadline:
            time.sleep(0.25)
        assert leftovers(probe) == []
    finally:
        kc.stop_channels()
        if km.is_alive():
            km.shutdown_kernel(now=True)
        if probe is not None and leftovers(probe):     # failed: remove what the lab should have
            import shutil
            from mrunc.sandbox import Sandbox
            for r in probe["paths"][:-1:2]:
                lab = Sandbox(root=r, check=False)
                lab.sweep()
                lab.close()
            shutil.rmtree(probe["paths"][-1], ignore_errors=True)
