"""End to end with a real JupyterHub: two students (real users the test creates), their servers
started through the REST API, a %%container cell in each over the kernel's websocket. Neither can
see or touch the other's containers, and nothing of either is left once their servers stop.

(Limits — a fork bomb or a memory hog of one student not disturbing the other — need a delegated
cgroup v2 subtree; this host is cgroup v1, so they are tested in the cgroup v2 VM through the same
sandbox code: test_classroom.py::test_doctor_passes_and_notebook_limits_work_in_a_delegated_subtree.)"""
import os
import tempfile

import pytest

from hub import Hub, reach_for, wait_until_gone
from students import make_students

pytest.importorskip("jupyterhub")
pytestmark = [pytest.mark.root, pytest.mark.userns, pytest.mark.slow]


@pytest.fixture(scope="module")
def classroom():
    for students in make_students(2):
        hub = Hub([s.name for s in students], tempfile.mkdtemp(prefix="mrunc-hub-"))
        try:
            hub.start()
            yield hub, students
        finally:
            hub.stop()


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
    seen = reach_for(kb, a_root, "keeper", keeper_pid)
    assert seen["mine"] == []                       # B's own sandbox: nothing of A's
    for verb in ("list", "delete"):
        assert seen[verb] == f"mrunc: state directory {a_root}: not yours (permission denied on the way to it)\n"
    assert seen["kill"] == "Operation not permitted"
    out, _, _ = ka.execute("print(lab.get('keeper').status)")
    assert out.strip() == "running"

    # servers stop: nothing of either student is left
    for k in kernels.values():
        k.close()
    for s in (a, b):
        hub.stop_server(s.name)
    assert wait_until_gone(a.uid, b.uid) == {}
    for s in (a, b):
        lab = os.path.join(s.home, ".local", "state", "mrunc-lab")
        for d in (lab, lab + ".bundles"):
            assert not os.path.exists(d) or os.listdir(d) == [], (d, os.listdir(d))
    with open("/proc/self/mountinfo") as f:
        assert not [ln for ln in f if a.home in ln or b.home in ln]
