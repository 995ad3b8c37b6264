"""The lifecycle of runtime-spec runtime.md, checked from outside (state) and inside (busybox)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from conftest import REPO, host_ns

pytestmark = pytest.mark.root


def _sleeper(mr, script="while :; do sleep 0.05; done", edit=None):
    return mr.bundle(edit, args=["sh", "-c", script])


@pytest.mark.both_layouts
def test_pid_file_and_state_through_lifecycle(mr):
    b = _sleeper(mr)
    cid = mr.new_id()
    pidfile = os.path.join(str(mr.tmp), "init.pid")
    mr.cli("create", "--bundle", b, "--pid-file", pidfile, cid, check=True)
    raw = open(pidfile).read()
    assert raw.isdigit() and not raw.endswith("\n"), repr(raw)  # no trailing newline, like runc
    st = json.loads(mr.cli("state", cid, check=True).stdout)
    assert st["status"] == "created" and st["pid"] == int(raw)
    assert st["id"] == cid and st["bundle"] == b and st["ociVersion"]
    assert "annotations" in st and st["created"].endswith("Z")
    # created: the user program has not run — init is still mrunc's, waiting on exec.fifo
    assert open(f"/proc/{raw}/comm").read().strip() == "mrunc:[init]"
    assert mr.cli("start", cid).returncode == 0
    assert json.loads(mr.cli("state", cid).stdout)["status"] == "running"
    assert open(f"/proc/{raw}/comm").read().strip() == "sh"
    # start twice: MUST fail without effect
    p = mr.cli("start", cid)
    assert p.returncode != 0 and "running" in p.stderr
    # delete of a running container without --force: refused
    p = mr.cli("delete", cid)
    assert p.returncode != 0 and "not stopped" in p.stderr
    assert mr.cli("kill", cid, "KILL").returncode == 0
    deadline = time.time() + 5
    while json.loads(mr.cli("state", cid).stdout)["status"] != "stopped":
        assert time.time() < deadline, "container did not stop after SIGKILL"
        time.sleep(0.05)
    p = mr.cli("kill", cid, "TERM")
    assert p.returncode != 0 and "not running" in p.stderr
    assert mr.cli("delete", cid).returncode == 0
    p = mr.cli("state", cid)
    assert p.returncode != 0 and "does not exist" in p.stderr
    assert not os.path.exists(os.path.join(mr.root, cid))


def test_delete_created_container_kills_init(mr):
    cid = mr.new_id()
    pidfile = os.path.join(str(mr.tmp), "pid")
    mr.cli("create", "--bundle", _sleeper(mr), "--pid-file", pidfile, cid, check=True)
    pid = int(open(pidfile).read())
    assert mr.cli("delete", cid).returncode == 0
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def _session_and_group(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[3]), int(fields[2])  # session, process group


def test_init_leads_its_own_session(mr):
    """Without a terminal too, init is in a session and process group of its own, not the
    caller's (as runc's): the caller's Ctrl-C is not the container's, and CPU shared per session
    (autogroups) is not shared with the caller's."""
    cid = mr.new_id()
    pidfile = os.path.join(str(mr.tmp), "pid")
    mr.cli("create", "--bundle", _sleeper(mr), "--pid-file", pidfile, cid, check=True)
    pid = int(open(pidfile).read())
    assert _session_and_group(pid) == (pid, pid)
    assert os.getsid(0) != pid
    mr.cli("start", cid, check=True)
    assert open(f"/proc/{pid}/comm").read().strip() == "sh"
    assert _session_and_group(pid) == (pid, pid)  # the user's program keeps it
    mr.cli("delete", "--force", cid, check=True)


@pytest.mark.parametrize("sig", ["15", "TERM", "SIGTERM", "term"])
def test_kill_signal_forms_reach_the_program(mr, sig):
    cid = mr.new_id()
    b = _sleeper(mr, "trap 'echo got-term > /dev/shm/x; exit 7' TERM; while :; do sleep 0.05; done")
    mr.cli("run", "-d", "--bundle", b, cid, check=True)
    time.sleep(0.2)  # let sh install its trap
    assert mr.cli("kill", cid, sig).returncode == 0
    deadline = time.time() + 5
    while json.loads(mr.cli("state", cid).stdout)["status"] != "stopped":
        assert time.time() < deadline
        time.sleep(0.05)


def test_kill_rejects_bad_signal(mr):
    cid = mr.new_id()
    mr.cli("create", "--bundle", _sleeper(mr), cid, check=True)
    p = mr.cli("kill", cid, "NOPE")
    assert p.returncode != 0 and "invalid signal" in p.stderr
    assert json.loads(mr.cli("state", cid).stdout)["status"] == "created"


@pytest.mark.both_layouts
def test_run_exit_code_propagates(mr):
    assert mr.run("sh", "-c", "exit 42").returncode == 42
    assert mr.run("true").returncode == 0


def _run_in_background(mr, cid, bundle):
    """`mrunc run` in the foreground of a child process; return it once the container runs."""
    p = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, "run", "--bundle", bundle, cid],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 10
    while True:
        st = mr.cli("state", cid)
        if st.returncode == 0 and json.loads(st.stdout)["status"] == "running":
            return p
        if time.time() > deadline:
            p.kill()
            p.wait()
            raise AssertionError("container never reached running")
        time.sleep(0.05)


def test_run_exit_code_when_killed_by_signal(mr):
    cid = mr.new_id()
    p = _run_in_background(mr, cid, _sleeper(mr))
    try:
        mr.cli("kill", cid, "KILL", check=True)
        assert p.wait(10) == 128 + 9
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_run_forwards_signals_to_the_container(mr):
    cid = mr.new_id()
    p = _run_in_background(mr, cid, _sleeper(mr, "trap 'exit 3' USR1; while :; do sleep 0.05; done"))
    try:
        time.sleep(0.2)  # let sh install its trap
        p.send_signal(signal.SIGUSR1)
        assert p.wait(10) == 3
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_create_inherits_stdio(mr):
    """terminal: false — the container writes to create's stdout, as runtime-tools expects."""
    cid = mr.new_id()
    b = mr.bundle(args=["sh", "-c", "echo out-$$; echo err >&2"])
    out = os.path.join(str(mr.tmp), "out")
    with open(out, "w") as f:
        subprocess.run([sys.executable, "-m", "mrunc", "--root", mr.root, "create", "--bundle", b, cid],
                       stdout=f, stderr=subprocess.DEVNULL, check=True, cwd=REPO)
    mr.cli("start", cid, check=True)
    deadline = time.time() + 5
    while "out-1" not in open(out).read():
        assert time.time() < deadline, open(out).read()
        time.sleep(0.05)


def test_console_socket_receives_working_pty(mr):
    sock_path = os.path.join(str(mr.tmp), "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    cid = mr.new_id()

    def edit(cfg):
        cfg["process"]["terminal"] = True
        cfg["process"]["args"] = ["sh", "-c", "tty; [ -t 0 ] && echo stdin-is-tty; "
                                  ": < /dev/tty && echo has-ctty; stty size"]
        cfg["process"]["consoleSize"] = {"height": 33, "width": 111}

    b = mr.bundle(edit)
    p = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, "create", "--bundle", b,
                          "--console-socket", sock_path, cid], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    srv.settimeout(10)
    conn, _ = srv.accept()
    _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    assert p.wait(10) == 0, p.stderr.read()
    assert len(fds) == 1
    master = fds[0]
    mr.cli("start", cid, check=True)
    out = b""
    deadline = time.time() + 5
    while b"111" not in out and time.time() < deadline:
        try:
            out += os.read(master, 4096)
        except OSError:
            break
    os.close(master)
    conn.close()
    srv.close()
    text = out.decode()
    assert "/dev/pts/" in text or "/dev/console" in text, text
    assert "stdin-is-tty" in text and "has-ctty" in text and "33 111" in text, text


def test_terminal_without_console_socket_is_refused(mr):
    b = mr.bundle(lambda c: c["process"].__setitem__("terminal", True))
    p = mr.cli("create", "--bundle", b, mr.new_id())
    assert p.returncode != 0 and "console-socket" in p.stderr
    assert os.listdir(mr.root) == [] if os.path.isdir(mr.root) else True


def test_list_and_state_json(mr):
    cid = mr.new_id()
    mr.cli("create", "--bundle", _sleeper(mr), cid, check=True)
    lst = json.loads(mr.cli("list", "--format", "json", check=True).stdout)
    assert [s["id"] for s in lst] == [cid] and lst[0]["status"] == "created"
    assert mr.cli("list", "-q", check=True).stdout.split() == [cid]
    table = mr.cli("list", check=True).stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "PID", "STATUS"] and cid in table[1]
    mr.cli("delete", cid, check=True)
    assert mr.cli("list", "--format=json", check=True).stdout.strip() == "null"


@pytest.mark.parametrize("annotations", [{"plain": "yes", "n": "1"},
                                         {"org.x/\u00e9": 'say "hi"\tnow', "path": "a\\b"}])
def test_state_prints_what_json_prints(mr, annotations):
    """`state` reads state.json and prints the state without json (mrunc.plainjson): its text is
    json.dumps(state, indent=2) all the same — with plain annotations, and with ones json
    escapes (read and printed by json's C accelerator then)."""
    cid = mr.new_id()
    b = mr.bundle(lambda c: c.__setitem__("annotations", annotations), args=["sleep", "100"])
    mr.cli("create", "--bundle", b, cid, check=True)
    out = mr.cli("state", cid, check=True).stdout
    st = json.loads(out)
    assert st["annotations"] == annotations and st["status"] == "created" and st["id"] == cid
    assert out == json.dumps(st, indent=2) + "\n"
    mr.cli("delete", cid, check=True)


def test_same_id_twice_is_refused_without_effect(mr):
    cid = mr.new_id()
    b = _sleeper(mr)
    mr.cli("create", "--bundle", b, cid, check=True)
    pid = json.loads(mr.cli("state", cid).stdout)["pid"]
    p = mr.cli("create", "--bundle", b, cid)
    assert p.returncode != 0 and "already exists" in p.stderr
    st = json.loads(mr.cli("state", cid).stdout)
    assert st["status"] == "created" and st["pid"] == pid


def test_trace_prints_every_phase_with_calls(mr):
    b = mr.bundle(args=["true"])
    p = mr.cli("run", "--trace", "--bundle", b, mr.new_id())
    assert p.returncode == 0, p.stderr
    for phase in ("spec", "clone", "mount", "pivot_root", "cgroup", "security"):
        assert f"phase {phase}" in p.stderr, p.stderr
    assert "unshare(" in p.stderr and "pivot_root(" in p.stderr and "mount(" in p.stderr


def test_version_and_features():
    p = subprocess.run([sys.executable, "-m", "mrunc", "--version"], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0 and p.stdout.startswith("mrunc version ")
    p = subprocess.run([sys.executable, "-m", "mrunc", "features"], capture_output=True, text=True, cwd=REPO)
    f = json.loads(p.stdout)
    assert f["ociVersionMin"] == "1.0.0" and set(f["linux"]["namespaces"]) >= {"pid", "mount", "user"}


def test_spec_writes_config_runc_can_read(tmp_path):
    p = subprocess.run([sys.executable, "-m", "mrunc", "spec", "--bundle", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0, p.stderr
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["process"]["args"] == ["sh"] and cfg["root"]["path"] == "rootfs"
    p = subprocess.run([sys.executable, "-m", "mrunc", "spec", "--bundle", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO)
    assert p.returncode != 0 and "exists" in p.stderr


def test_host_namespaces_untouched_by_create(mr):
    before = {k: host_ns(k) for k in ("mnt", "net", "pid", "uts", "ipc")}
    mr.sh("true")
    assert before == {k: host_ns(k) for k in before}


@pytest.mark.both_layouts
def test_delete_removes_the_parent_cgroups_create_made(mr):
    """A nested cgroupsPath makes its parents too; `delete` (another process) removes them again,
    from what create recorded — a fuzzed "a/b/c" once left /a/b in every hierarchy."""
    import glob
    top = f"mrunc-nest-{uuid.uuid4().hex[:8]}"
    cid = mr.new_id()
    b = mr.bundle(lambda c: c["linux"].__setitem__("cgroupsPath", f"/{top}/inner/{cid}"),
                  args=["sleep", "100"])
    tops = lambda: glob.glob(f"/sys/fs/cgroup/*/{top}") + glob.glob(f"/sys/fs/cgroup/{top}")  # noqa: E731
    try:
        mr.cli("run", "-d", "--bundle", b, cid, check=True)
        assert all(os.path.isdir(f"{t}/inner/{cid}") for t in tops()) and tops(), \
            "the container's nested cgroup was not made"
        mr.cli("delete", "--force", cid, check=True)
        assert tops() == [], f"delete left the parents it made: {tops()}"
    finally:
        for t in tops():        # the test's own directories, whatever happened (empty by now)
            for d in (f"{t}/inner/{cid}", f"{t}/inner", t):
                if os.path.isdir(d):
                    os.rmdir(d)
