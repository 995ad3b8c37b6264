"""Real students for the classroom tests: users the test creates (useradd) and removes (userdel),
and how to run things as them."""
import json
import os
import pwd
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager

from conftest import REPO, ROOTFS


class Student:
    def __init__(self, name):
        self.name = name
        pw = pwd.getpwnam(name)
        self.uid, self.home = pw.pw_uid, pw.pw_dir

    def env(self, **extra):
        """A login-like environment: no XDG_RUNTIME_DIR (a spawned notebook server has none)."""
        return {"HOME": self.home, "USER": self.name, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                **extra}

    def run(self, *argv, env=None, timeout=60, cgroup=None):
        """argv as this user (started in `cgroup`, a v2 directory, if given); output through
        files (a detached container keeps its stdio)."""
        move = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup] if cgroup else []
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            rc = subprocess.run([*move, "runuser", "-u", self.name, "--", "env", "-i",
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


def make_students(n=2):
    for path in (REPO, sys.executable, ROOTFS):     # the test users must read the repo and .venv
        st = os.stat(path)
        assert st.st_mode & 0o005, f"{path} is not readable by other users"
    tag = uuid.uuid4().hex[:6]
    names = [f"mrc{chr(97 + i)}{tag}" if n <= 26 else f"mrc{i}x{tag}" for i in range(n)]
    made = []
    try:
        for name in names:
            subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True)
            made.append(Student(name))
        yield made
    finally:
        for s in made:
            s.kill_leftovers()
        for s in made:                  # userdel refuses while a (dying) process is the user's
            deadline = time.monotonic() + 10
            while subprocess.run(["userdel", "-r", s.name], capture_output=True).returncode not in (0, 6, 12) \
                    and time.monotonic() < deadline:
                s.kill_leftovers()
                time.sleep(0.2)


def subid_ranges(name):
    """{"uid": [(first, count)...], "gid": [...]}: the user's lines in /etc/subuid and /etc/subgid."""
    from mrunc.security import subids
    uid = pwd.getpwnam(name).pw_uid
    return {k: subids.ranges(k, user=name, uid=uid) for k in ("uid", "gid")}


def usermod(name, *args):
    p = subprocess.run(["usermod", *args, name], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


def drop_subids(name):
    """Remove every range of `name` (useradd adds one by itself where /etc/subuid exists), with
    shadow's own tool: it locks the files and keeps everyone else's lines."""
    for kind, flag in (("uid", "--del-subuids"), ("gid", "--del-subgids")):
        for first, count in subid_ranges(name)[kind]:
            usermod(name, flag, f"{first}-{first + count - 1}")


@contextmanager
def delegated_cgroup(student):
    """/sys/fs/cgroup/<x> chowned to `student` (the directory, cgroup.procs,
    cgroup.subtree_control, cgroup.threads: what systemd chowns for Delegate=), cgroup v2 only.
    Removed afterwards, leaf first, its processes killed."""
    from mrunc.cgroups import fs
    cg = f"/sys/fs/cgroup/mrunc-student-{uuid.uuid4().hex[:8]}"
    os.mkdir(cg)
    for name in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
        os.chown(os.path.join(cg, name), student.uid, -1)
    try:
        yield cg
    finally:
        for pid in fs.procs(cg):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for d in fs.subdirs_leaf_first(cg):
            fs.rmdir(d)
