"""A student's self-check, rootless: a real unprivileged user (made for the test, removed after)
starts a container from Python and checks it with mrunc.notebook.grading — the user namespace's
id map (root inside is the student outside), its hostname (read through the user namespace), its
read-only root — and a limit the lab cannot set here is named as such, not as a wrong answer."""
import os
import shutil
import sys

import pytest

from students import make_students

pytestmark = [pytest.mark.root, pytest.mark.userns,
              pytest.mark.skipif(not shutil.which("useradd"), reason="useradd is not installed")]

STUDENT = """
from mrunc.sandbox import Sandbox
from mrunc.notebook import grading as g
lab = Sandbox()
try:
    c = lab.start(name="mine", hostname="mine", readonly=True, pids=10)
    r = g.check(c, g.uid_maps(0, {uid}), g.runs_as({uid}), g.own_namespace("user", "pid", "uts"),
                g.hostname("mine"), g.read_only("/"), g.own_root(), g.pid_one(), g.pids_limit(10))
    print(r.text())
finally:
    lab.close()
"""


@pytest.fixture(scope="module")
def student():
    yield from make_students(1)


def test_a_student_checks_a_rootless_container(student):
    (s,) = student
    p = s.python(STUDENT.format(uid=s.uid), env=s.env(PATH=f"{os.path.dirname(sys.executable)}:/usr/bin:/bin"))
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert lines[:9] == [
        f"✓ uid 0 inside maps to uid {s.uid} outside", f"✓ it runs as uid {s.uid} on the host",
        "✓ it has its own user namespace", "✓ it has its own pid namespace",
        "✓ it has its own uts namespace", "✓ its hostname is 'mine'",
        "✓ the mount at / is read-only", "✓ its / is not the host's /", "✓ it is PID 1 inside"], p.stdout
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return                          # pure cgroup v2: whether it is delegated is the host's matter
    # cgroup v1 (hybrid) here: nothing can be delegated to a user, and the check says so
    assert lines[9].startswith("✗ pids.max in its cgroup is 10 — pids.max is max (unlimited) — this lab "
                               "cannot set cgroup limits: "), p.stdout
