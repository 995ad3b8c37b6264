"""End to end with a real JupyterHub: two students (real users the test creates), their servers
started through the REST API, a %%container cell in each over the kernel's websocket. Neither can
see or touch the other's containers, and nothing of either is left once their servers stop.

(Limits — a fork bomb or a memory hog of one student not disturbing the other — need a delegated
cgroup v2 subtree; this host is cgroup v1, so they are tested in the cgroup v2 VM through the same
sandbox code: test_classroom.py::test_doctor_passes_and_notebook_limits_work_in_a_delegated_subtree.)"""
import json
import os
import sys
import tempfile

import pytest

from hub import Hub
from students import make_students

pytest.importorskip("jupyterhub")
pytestmark = [pytest.mark.root, pytest.mark.userns, pytest.mark.slow]

MRUNC = os.path.join(os.path.dirname(sys.executable), "mrunc")


@pytest.fixture(scope="module")
def classroom():
    for students in make_students(2):
        hub = Hub([s.name for s in students], tempfile.mkdtemp(prefix="mrunc-hub-"))
        try:
            hub.start()
            yield hub, students
        finally:
            hub.stop()


def _processes_of(uid):
    out = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and os.stat(f"/proc/{p}").st_uid == uid:
                out.append(int(p))
        except OSError:
            pass
    return out


def _describe(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[:2]
        return f"{cmd or '?'} (state {state[0]}, parent {state[1]})"
    except OSError:
        return "gone"


def test_two_students_on_a_real_hub(classroom):
    hub, (a, b) = classroom
    kernels = {}
    for s in (a, b):
        hub.start_server(s.name)
        kernels[s.name] = k = hub.kernel(s.name)
        out, err, error = k.execute("%load_ext mrunc")
        assert error is None, err
    ka, kb = kernels[a.name], kernels[b.name]

    # a cell in each: the container runs as the student (root inside a user namespace)
    for s, k in ((a, ka), (b, kb)):
        out, err, error = k.execute(f"%%container --name hello-{s.name}\necho hello from $(hostname) as $(id -u)")
        assert error is None and f"hello from hello-{s.name} as 0" in out, (out, err, error)
    out, err, error = ka.execute("%%container --keep --name keeper\necho kept")
    assert error is None and "kept" in out, (out, err)
    out, _, error = ka.execute("from mrunc import notebook\nlab = notebook.sandbox()\n"
                               "print(lab.root, lab.get('keeper').pid, lab.get('keeper').status)")
    a_root, keeper_pid, status = out.split()
    assert a_root == os.path.join(a.home, ".local", "state", "mrunc-lab") and status == "running"
    assert os.stat(f"/proc/{keeper_pid}").st_uid == a.uid

    # B sees none of it, and can touch none of it
    code = ("import os, subprocess, json\nfrom mrunc import notebook\n"
            "print(json.dumps({'mine': [r['name'] for r in notebook.sandbox().ps()],"
            f" 'list': subprocess.run([{MRUNC!r}, '--root', {a_root!r}, 'list'], capture_output=True, text=True).stderr,"
            f" 'delete': subprocess.run([{MRUNC!r}, '--root', {a_root!r}, 'delete', '-f', 'keeper'], capture_output=True, text=True).stderr}}))\n"
            f"try:\n    os.kill({keeper_pid}, 9)\nexcept PermissionError as e:\n    print('kill:', e.strerror)\n")
    out, err, error = kb.execute(code)
    assert error is None, (err, error)
    seen = json.loads(out.splitlines()[0])
    assert seen["mine"] == []                       # B's own sandbox: nothing of A's
    for verb in ("list", "delete"):
        assert seen[verb] == f"mrunc: state directory {a_root}: not yours (permission denied on the way to it)\n"
    assert out.splitlines()[1] == "kill: Operation not permitted"
    out, _, _ = ka.execute("print(lab.get('keeper').status)")
    assert out.strip() == "running"

    # servers stop: nothing of either student is left
    for k in kernels.values():
        k.close()
    for s in (a, b):
        hub.stop_server(s.name)
    import time
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (_processes_of(a.uid) or _processes_of(b.uid)):
        time.sleep(0.2)
    left = {p: _describe(p) for p in _processes_of(a.uid) + _processes_of(b.uid)}
    assert left == {}
    for s in (a, b):
        lab = os.path.join(s.home, ".local", "state", "mrunc-lab")
        for d in (lab, lab + ".bundles"):
            assert not os.path.exists(d) or os.listdir(d) == [], (d, os.listdir(d))
    with open("/proc/self/mountinfo") as f:
        assert not [ln for ln in f if a.home in ln or b.home in ln]
