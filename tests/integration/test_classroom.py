"""A class on one server: two real students (users the test creates, removed afterwards).

Each keeps containers in a directory of their own; neither can list, inspect, exec into, kill or
delete the other's — nor root's; and a directory one student made where the other's would go is
refused, never used."""
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from conftest import REPO, ROOTFS

pytestmark = [pytest.mark.root, pytest.mark.userns,
              pytest.mark.skipif(not shutil.which("useradd"), reason="useradd is not installed")]


class Student:
    def __init__(self, name):
        self.name = name
        pw = pwd.getpwnam(name)
        self.uid, self.home = pw.pw_uid, pw.pw_dir

    def env(self, **extra):
        """A login-like environment: no XDG_RUNTIME_DIR (a spawned notebook server has none)."""
        return {"HOME": self.home, "USER": self.name, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                **extra}

    def run(self, *argv, env=None, timeout=60):
        """argv as this user; output through files (a detached container keeps its stdio)."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            rc = subprocess.run(["runuser", "-u", self.name, "--", "env", "-i",
                                 *(f"{k}={v}" for k, v in (env or self.env()).items()), *argv],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd="/",
                                timeout=timeout).returncode
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(argv, rc, out.read(), err.read())

    def mrunc(self, *args, **kw):
        return self.run(sys.executable, "-m", "mrunc", *args, **kw)

    def python(self, code, **kw):
        return self.run(sys.executable, "-c", code, **kw)

    def bundle(self, cid, args):
        """A rootless bundle in the student's home (config from `mrunc spec --rootless`)."""
        d = os.path.join(self.home, cid)
        p = self.run("mkdir", d)
        assert p.returncode == 0, p.stderr
        p = self.mrunc("spec", "--rootless", "--bundle", d)
        assert p.returncode == 0, p.stderr
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        cfg["root"]["path"] = ROOTFS
        cfg["process"].update(terminal=False, args=args)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        return d

    def kill_leftovers(self):
        """Stop every process this test user still has, by pid."""
        for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
            try:
                if os.stat(f"/proc/{pid}").st_uid == self.uid:
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture(scope="module")
def students():
    for path in (REPO, sys.executable, ROOTFS):     # the test users must read the repo and .venv
        st = os.stat(path)
        assert st.st_mode & 0o005, f"{path} is not readable by other users"
    tag = uuid.uuid4().hex[:6]
    names = [f"mrca{tag}", f"mrcb{tag}"]
    made = []
    try:
        for n in names:
            subprocess.run(["useradd", "-m", "-s", "/bin/sh", n], check=True, capture_output=True)
            made.append(Student(n))
        yield made
    finally:
        for s in made:
            s.kill_leftovers()
        time.sleep(0.2)
        for s in made:
            subprocess.run(["userdel", "-r", s.name], capture_output=True)


def _one_line_error(p):
    lines = p.stderr.strip().splitlines()
    assert p.returncode != 0 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def test_each_student_has_a_private_state_dir_the_other_cannot_use(students):
    a, b = students
    bundle = a.bundle("sleeper", ["sleep", "600"])
    p = a.mrunc("run", "-d", "--bundle", bundle, "box")
    assert p.returncode == 0, p.stderr
    a_root = os.path.join(a.home, ".local", "state", "mrunc")
    for d, mode in ((a_root, 0o711), (os.path.dirname(a_root), 0o700)):  # ~/.local/state: 0700
        st = os.lstat(d)
        assert st.st_uid == a.uid and st.st_mode & 0o777 == mode, d
    assert os.path.isdir(os.path.join(a_root, "box"))
    assert json.loads(a.mrunc("state", "box").stdout)["status"] == "running"
    pid = json.loads(a.mrunc("state", "box").stdout)["pid"]

    assert json.loads(b.mrunc("list", "--format", "json").stdout or "null") is None
    assert b.mrunc("state", "box").returncode != 0              # not in B's own root
    for verb in (["list"], ["state", "box"], ["exec", "box", "true"], ["kill", "box", "KILL"],
                 ["delete", "--force", "box"]):
        line = _one_line_error(b.mrunc("--root", a_root, *verb))
        assert line == f"mrunc: state directory {a_root}: not yours (permission denied on the way to it)"
    # A's container is untouched, and A still has it
    assert json.loads(a.mrunc("state", "box").stdout)["pid"] == pid
    assert a.mrunc("delete", "--force", "box").returncode == 0
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_roots_containers_are_out_of_reach(students, tmp_path):
    _, b = students
    root_dir = f"/run/mrunc-classroom-{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, "-m", "mrunc", "spec", "--bundle", str(tmp_path)], check=True)
    with open(tmp_path / "config.json") as f:
        cfg = json.load(f)
    cfg["root"]["path"] = ROOTFS
    cfg["process"].update(terminal=False, args=["sleep", "600"])
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    mr = [sys.executable, "-m", "mrunc", "--root", root_dir]
    try:
        with tempfile.TemporaryFile() as out:
            assert subprocess.run([*mr, "run", "-d", "--bundle", str(tmp_path), "rootbox"],
                                  stdout=out, stderr=out, timeout=60).returncode == 0
        assert os.stat(root_dir).st_mode & 0o777 == 0o711      # as /run/mrunc: others may traverse
        for verb in (["list"], ["state", "rootbox"], ["exec", "rootbox", "true"],
                     ["kill", "rootbox", "KILL"], ["delete", "--force", "rootbox"]):
            line = _one_line_error(b.mrunc("--root", root_dir, *verb))
            assert line.startswith(f"mrunc: state directory {root_dir}: owned by uid 0 (root), "
                                   f"not you (uid {b.uid} ({b.name}))"), line
        st = json.loads(subprocess.run([*mr, "state", "rootbox"], capture_output=True, text=True).stdout)
        assert st["status"] == "running"
    finally:
        subprocess.run([*mr, "delete", "--force", "rootbox"], capture_output=True, timeout=60)
        shutil.rmtree(root_dir, ignore_errors=True)


def test_a_dir_the_other_student_made_first_is_refused_and_never_used(students):
    a, b = students
    # B creates, world-writable, where A's runtime dir would be if A's session pointed there
    # (and the sandbox's old /tmp/mrunc-lab-<uid> paths, the attack from the issue)
    trap = f"/tmp/mrunc-trap-{uuid.uuid4().hex[:8]}"
    old = [f"/tmp/mrunc-lab-{a.uid}", f"/tmp/mrunc-lab-{a.uid}.bundles"]
    made_old = [d for d in old if not os.path.lexists(d)]
    try:
        for d in [trap, *made_old]:
            assert b.run("mkdir", "-m", "777", d).returncode == 0
            assert b.run("chmod", "777", d).returncode == 0
        # the CLI with XDG_RUNTIME_DIR (or --root) naming B's dir
        line = _one_line_error(a.mrunc("list", env=a.env(XDG_RUNTIME_DIR=trap)))
        assert line == (f"mrunc: XDG_RUNTIME_DIR {trap}: owned by uid {b.uid} ({b.name}), "
                        f"not you (uid {a.uid} ({a.name})); refusing to use it (remove it, or "
                        f"choose another with --root)")
        bundle = a.bundle("hello", ["echo", "hello"])
        line = _one_line_error(a.mrunc("--root", trap, "run", "--bundle", bundle, "x"))
        assert f"state directory {trap}: owned by uid {b.uid}" in line
        # the notebook's sandbox, without XDG_RUNTIME_DIR: its own dirs, not /tmp
        p = a.python("from mrunc.sandbox import Sandbox\n"
                     "with Sandbox() as lab:\n"
                     "    r = lab.run('echo hi from $(hostname)', name='nb')\n"
                     "    print(lab.root, lab.work, r.exit_code, r.stdout.strip(), sep='|')\n")
        assert p.returncode == 0, p.stderr
        root, work, code, out = p.stdout.strip().splitlines()[-1].split("|")
        assert root == os.path.join(a.home, ".local", "state", "mrunc-lab") and work == root + ".bundles"
        assert code == "0" and out == "hi from nb"
        # a sandbox told to use B's dir refuses it, in one line, and writes nothing there
        p = a.python("from mrunc.sandbox import Sandbox, SandboxError\n"
                     f"try:\n    Sandbox(root={trap!r}).run('true')\n"
                     "except SandboxError as e:\n    print(e)\n")
        assert p.stdout.strip() == (f"sandbox directory {trap}: owned by uid {b.uid} ({b.name}), not you "
                                    f"(uid {a.uid} ({a.name})); refusing to use it (remove it, or "
                                    f"choose another with --root)"), p.stdout + p.stderr
        for d in [trap, *made_old]:
            assert os.listdir(d) == [], d
        assert not os.path.exists(trap + ".bundles")
    finally:
        for d in [trap, *made_old]:
            shutil.rmtree(d, ignore_errors=True)
