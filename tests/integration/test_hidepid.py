"""A student's notebook server under systemd's ProtectProc=invisible: its /proc is mounted with
hidepid=invisible, and a rootless container's init (not dumpable until its execve) is hidden from
the student's own runtime. Before, `run` hung forever there; now create refuses at once, in one
line naming the cause and the fix, and leaves nothing behind. Reproduced without systemd: a
private mount namespace (the host's /proc is never touched) with its own /proc, hidepid=invisible,
and a real user made for the test."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from students import make_students

pytestmark = [pytest.mark.root, pytest.mark.userns,
              pytest.mark.skipif(not shutil.which("useradd"), reason="useradd is not installed")]

# as the student, in a mount namespace of its own whose /proc is hidepid=invisible; `timeout`
# kills the student's python itself (setpriv execs it), so the old hang fails the test and ends
HIDDEN = ["unshare", "-m", "--propagation", "private", "sh", "-c",
          'mount -t proc -o hidepid=invisible proc /proc && exec "$@"', "sh"]
DEADLINE = 60
ONE_LINE = ("mrunc: /proc is mounted with hidepid=invisible (systemd ProtectProc=): a rootless runtime "
            "cannot see its container's init there; remove ProtectProc= from the unit (or mount /proc "
            "without hidepid=)")


@pytest.fixture(scope="module")
def student():
    made = make_students(1)
    try:
        yield next(made)[0]
    finally:
        made.close()                    # its teardown: kill leftovers, userdel


def _as(student, hidden, *argv):
    import pwd
    pw = pwd.getpwnam(student.name)
    env = {**student.env(), "PYTHONPATH": REPO}
    cmd = [*(HIDDEN if hidden else []), "timeout", "-s", "KILL", str(DEADLINE),
           "setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
           "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv]
    return subprocess.run(cmd, capture_output=True, text=True, cwd="/", stdin=subprocess.DEVNULL,
                          timeout=DEADLINE + 30)


def _live(student):
    """Pids the student still runs (pgrep: 1 = none)."""
    p = subprocess.run(["pgrep", "-u", student.name], capture_output=True, text=True)
    return p.stdout.split()


def test_mrunc_run_under_hidepid_fails_fast_in_one_line(student):
    bundle = student.bundle("hp", ["echo", "hi"])
    state = os.path.join(student.home, "state")
    # the same bundle runs where /proc shows everything: the setup is sound
    ok = _as(student, False, sys.executable, "-m", "mrunc", "--root", state, "run", "--bundle", bundle, "c0")
    assert ok.returncode == 0 and ok.stdout == "hi\n", ok.stderr
    p = _as(student, True, sys.executable, "-m", "mrunc", "--root", state, "run", "--bundle", bundle, "c1")
    assert p.returncode == 1, f"status {p.returncode} (-9: hung until killed): {p.stderr}"
    assert p.stdout == ""
    assert p.stderr.splitlines() == [ONE_LINE], p.stderr
    assert not os.path.exists(state) or os.listdir(state) == []
    assert _live(student) == []


def test_sandbox_and_doctor_under_hidepid(student):
    code = ("import json\n"
            "from mrunc.sandbox import Sandbox\n"
            "from mrunc import doctor\n"
            "proc, = [c.status for c in doctor.run_checks() if c.name == '/proc']\n"
            "with Sandbox() as lab:\n"
            "    r = lab.run('echo hi')\n"
            "    print(json.dumps([proc, lab.notes, r.exit_code, r.stdout, r.stderr]))\n")
    p = _as(student, True, sys.executable, "-c", code)
    assert p.returncode == 0, f"status {p.returncode} (-9: hung until killed): {p.stderr}"
    proc, notes, code_, out, err = json.loads(p.stdout.splitlines()[-1])
    assert proc == "FAIL"
    assert any(n.startswith("/proc: mounted with hidepid=invisible") and "ProtectProc=" in n
               for n in notes), notes
    # the run fails as a failed command does in the sandbox: status 1, the one line on stderr
    assert code_ == 1 and out == ""
    assert err.splitlines() == [ONE_LINE], err
    assert _live(student) == []
    # and where /proc shows everything, the same sandbox runs and doctor says ok
    q = _as(student, False, sys.executable, "-c", code)
    assert q.returncode == 0, q.stderr
    proc, notes, code_, out, err = json.loads(q.stdout.splitlines()[-1])
    assert proc == "ok" and (code_, out) == (0, "hi\n"), (notes, err)
