"""`mrunc exec` by an ordinary user into the rootless container it runs (issue 12).

Real users, made for the test and removed after (students.py); each gets a /run/user/<uid> as a
login would (0700, its own), so its default --root is $XDG_RUNTIME_DIR/mrunc. Checked from the
host as root: the exec'd process is in the container's pid, mount, user, uts and ipc namespaces
(the /proc/<pid>/ns inodes of init's), none of them the host's; from inside: the container's
hostname, root and PID 1, and exit statuses come through. Another student is refused.
"""
import json
import os
import shutil
import sys
import uuid

import pytest

from students import delegated_cgroup, make_students

pytestmark = [pytest.mark.root, pytest.mark.userns,
              pytest.mark.skipif(not shutil.which("useradd"), reason="useradd is not installed")]

JOINED = ("pid", "mnt", "user", "uts", "ipc")     # what `mrunc spec --rootless` unshares


@pytest.fixture(scope="module")
def pair():
    """Two students, each with its own runtime dir; (a, b, env_a, env_b)."""
    gen = make_students(2)
    a, b = next(gen)
    runs, envs = [], []
    try:
        for s in (a, b):
            run = f"/run/user/{s.uid}"
            os.makedirs(run, mode=0o700)
            runs.append(run)
            os.chown(run, s.uid, s.uid)
            os.chmod(run, 0o700)
            envs.append(s.env(XDG_RUNTIME_DIR=run))
        yield a, b, envs[0], envs[1]
    finally:
        for s, env in zip((a, b), envs):
            root = os.path.join(f"/run/user/{s.uid}", "mrunc")
            for cid in os.listdir(root) if os.path.isdir(root) else []:
                s.mrunc("delete", "--force", cid, env=env)
        for run in runs:
            shutil.rmtree(run, ignore_errors=True)
        gen.close()                     # kills what is left of theirs, then userdel


@pytest.fixture(scope="module")
def box(pair):
    """Student a's running rootless container (init: sleep); (id, init's host pid, hostname)."""
    a, _b, env, _ = pair
    cid, host = f"rx-{uuid.uuid4().hex[:6]}", f"rlx{uuid.uuid4().hex[:6]}"
    d = a.bundle(cid, ["sleep", "100000"])
    path = os.path.join(d, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["hostname"] = host
    with open(path, "w") as f:
        json.dump(cfg, f)
    p = a.mrunc("run", "-d", "--bundle", d, cid, env=env)
    assert p.returncode == 0, p.stderr
    p = a.mrunc("state", cid, env=env)
    assert p.returncode == 0, p.stderr
    return cid, json.loads(p.stdout)["pid"], host


def ns(pid, name):
    return os.readlink(f"/proc/{pid}/ns/{name}")


def test_exec_joins_the_containers_namespaces(pair, box):
    a, _b, env, _ = pair
    cid, init, _host = box
    pid_file = os.path.join(a.home, "exec.pid")
    p = a.mrunc("exec", "--detach", "--pid-file", pid_file, cid, "sleep", "100000", env=env)
    assert p.returncode == 0, p.stderr
    with open(pid_file) as f:
        pid = int(f.read())
    try:
        for name in JOINED:
            assert ns(pid, name) == ns(init, name), name
            assert ns(pid, name) != ns(os.getpid(), name), f"{name}: still the host's"
        st = dict(line.split(":\t", 1) for line in open(f"/proc/{pid}/status").read().splitlines()
                  if ":\t" in line)
        assert len(st["NSpid"].split()) == 2, st["NSpid"]      # a pid here and one in there
        assert st["Uid"].split()[0] == str(a.uid)               # root inside is the student outside
        assert os.readlink(f"/proc/{pid}/root") == os.readlink(f"/proc/{init}/root")
    finally:
        os.kill(pid, 9)


def test_exec_sees_the_container(pair, box):
    a, _b, env, _ = pair
    cid, _init, host = box
    p = a.mrunc("exec", cid, "sh", "-c", "hostname; echo $$; cat /proc/1/cmdline; echo; id -u; "
                "test -e /bin/busybox && echo busybox; test -e /home/" + a.name + " || echo no-host",
                env=env)
    assert p.returncode == 0, p.stderr
    hostname, me, one, uid, busybox, no_host = p.stdout.splitlines()
    assert hostname == host
    assert int(me) > 1 and one.split("\0")[0] == "sleep"      # a new pid in the container's space
    assert uid == "0" and busybox == "busybox" and no_host == "no-host"


def test_exit_statuses_come_through(pair, box):
    a, _b, env, _ = pair
    cid = box[0]
    assert a.mrunc("exec", cid, "sh", "-c", "exit 7", env=env).returncode == 7
    assert a.mrunc("exec", cid, "sh", "-c", "kill -9 $$", env=env).returncode == 128 + 9
    p = a.mrunc("exec", cid, "no-such-program", env=env)
    assert p.returncode != 0 and "no-such-program" in p.stderr and "Traceback" not in p.stderr


def test_exec_flags(pair, box):
    a, _b, env, _ = pair
    cid = box[0]
    p = a.mrunc("exec", "-e", "FOO=bar", "--cwd", "/etc", cid, "sh", "-c", "echo $FOO; pwd", env=env)
    assert (p.returncode, p.stdout) == (0, "bar\n/etc\n"), p.stderr


CONSOLE = """
import socket, subprocess, sys, os
path = os.path.join(os.environ["HOME"], "console.sock")
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(1)
p = subprocess.run([sys.executable, "-m", "mrunc", "exec", "--tty", "--detach", "--console-socket",
                    path, {cid!r}, "sh", "-c", "tty; test -t 0 && echo a-tty"], capture_output=True, text=True)
assert p.returncode == 0, p.stderr
conn, _ = srv.accept()
_, fds, _, _ = socket.recv_fds(conn, 100, 1)
out = b""
while True:
    try:
        chunk = os.read(fds[0], 1024)
    except OSError:                 # EIO: the last slave closed
        break
    if not chunk:
        break
    out += chunk
print(out.decode().replace("\\r", ""), end="")
"""


def test_exec_tty_with_console_socket(pair, box):
    a, _b, env, _ = pair
    p = a.python(CONSOLE.format(cid=box[0]), env=env)
    assert p.returncode == 0, p.stderr
    tty, is_tty = p.stdout.splitlines()
    assert tty.startswith("/dev/pts/") and is_tty == "a-tty", p.stdout


def one_line(p):
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def test_another_student_is_refused(pair, box):
    a, b, _env_a, env_b = pair
    cid = box[0]
    theirs = os.path.join(f"/run/user/{a.uid}", "mrunc")
    line = one_line(b.mrunc("--root", theirs, "exec", cid, "true", env=env_b))
    assert f"state directory {theirs}: not yours" in line, line
    line = one_line(b.mrunc("exec", cid, "true", env=env_b))
    assert f"container {cid} does not exist" in line, line
    # a state file of b's own that names a's init (pid and start time): the kernel says no
    mine = os.path.join(f"/run/user/{b.uid}", "mrunc")
    forged = os.path.join(mine, "forged")
    os.makedirs(forged, 0o711)
    for name in ("state.json", "config.json"):
        shutil.copy(os.path.join(theirs, cid, name), forged)
    for path in (mine, forged, os.path.join(forged, "state.json"), os.path.join(forged, "config.json")):
        os.chown(path, b.uid, b.uid)
    try:
        line = one_line(b.mrunc("exec", "forged", "true", env=env_b))
        assert line.endswith("permission denied: the container's init is not yours"), line
    finally:
        shutil.rmtree(forged)


def test_exec_into_a_created_container_says_start_it(pair):
    """Init is not dumpable until it runs the program (CVE-2019-5736), so its /proc/<pid>/ns
    belong to root: a student cannot enter it before `start` — and is told so."""
    a, _b, env, _ = pair
    cid = f"rc-{uuid.uuid4().hex[:6]}"
    d = a.bundle(cid, ["sleep", "100000"])
    assert a.mrunc("create", "--bundle", d, cid, env=env).returncode == 0
    try:
        line = one_line(a.mrunc("exec", cid, "true", env=env))
        assert "`mrunc start` it first" in line, line
        assert a.mrunc("start", cid, env=env).returncode == 0
        p = a.mrunc("exec", cid, "sh", "-c", "echo $$", env=env)
        assert p.returncode == 0 and int(p.stdout) > 1, p.stderr
    finally:
        a.mrunc("delete", "--force", cid, env=env)


SANDBOX = """
import os
from mrunc.sandbox import Sandbox
lab = Sandbox()
try:
    c = lab.start(name="box", hostname="sbx")
    r = c.exec(["sh", "-c", "hostname; for n in pid mnt user; do readlink /proc/self/ns/$n; done"])
    print(r.returncode, r.stderr.strip() or "-")
    print(r.stdout, end="")
    print(*(os.readlink(f"/proc/{c.pid}/ns/{n}") for n in ("pid", "mnt", "user")))
    print(*(os.readlink(f"/proc/self/ns/{n}") for n in ("pid", "mnt", "user")))
    print(c.exec("exit 5").returncode, c.exec("pwd; echo $X", cwd="/tmp", env={"X": "y"}).stdout.split())
finally:
    lab.close()
"""


def test_sandbox_exec_as_a_student(pair):
    a, _b, env, _ = pair
    p = a.python(SANDBOX, env=dict(env, PATH=f"{os.path.dirname(sys.executable)}:/usr/bin:/bin"))
    assert p.returncode == 0, p.stderr[-2000:]
    status, hostname, *inside = p.stdout.splitlines()
    assert status == "0 -" and hostname == "sbx", p.stdout
    exec_ns, init_ns, host_ns, last = inside[:3], inside[3].split(), inside[4].split(), inside[5]
    assert exec_ns == init_ns, p.stdout
    assert not set(exec_ns) & set(host_ns), p.stdout
    assert last == "5 ['/tmp', 'y']", p.stdout


DELEGATED = """
from mrunc.sandbox import Sandbox
lab = Sandbox()
try:
    c = lab.start(name="lim", pids=20)
    r = c.exec(["sh", "-c", "cat /proc/self/cgroup /proc/1/cgroup /sys/fs/cgroup/pids.max; echo $$"])
    print(r.returncode, r.stderr.strip() or "-")
    print(r.stdout, end="")
    print(open("/proc/%d/cgroup" % c.pid).read(), end="")
finally:
    lab.close()
"""


@pytest.mark.cgroup_v2
def test_exec_joins_a_delegated_cgroup(pair):
    """In the cgroup v2 VM, with a subtree delegated to the student: the exec'd process is born in
    the container's cgroup (clone3 CLONE_INTO_CGROUP, by the student), under its limits."""
    a, _b, env, _ = pair
    with delegated_cgroup(a) as cg:
        p = a.python(DELEGATED, cgroup=cg, timeout=300,
                     env=dict(env, PATH=f"{os.path.dirname(sys.executable)}:/usr/bin:/bin"))
        assert p.returncode == 0, p.stderr[-2000:]
    status, mine, inits, pids_max, me, host_view = p.stdout.splitlines()
    assert status == "0 -", p.stdout
    assert mine == inits and ".." not in mine, p.stdout     # init's cgroup, seen from its namespace
    assert pids_max == "20" and int(me) > 1, p.stdout
    assert host_view == f"0::{cg[len('/sys/fs/cgroup'):]}/lim", p.stdout
