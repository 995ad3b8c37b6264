"""`mrunc exec`: a new process in a running (or created) container, checked from inside.

Each test starts a container whose init is `sleep` (run -d), execs into it with busybox, and
compares what the new process sees with what init has (namespaces, cgroup, root) or with what
the flags asked (env, cwd, user, capabilities, no_new_privs).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO, ROOTFS

pytestmark = pytest.mark.root

NS = ("mnt", "pid", "net", "uts", "ipc", "user", "cgroup", "time")
CAP_SYS_ADMIN = 21


def running(mr, edit=None):
    """A running container whose init sleeps; (id, init's host pid)."""
    cid = mr.new_id()
    mr.cli("run", "-d", "--bundle", mr.bundle(edit, args=["sleep", "1000000"]), cid, check=True)
    return cid, json.loads(mr.cli("state", cid, check=True).stdout)["pid"]


def ex(mr, cid, *args, **kw):
    """`mrunc exec [flags] ID CMD...`: flags are the args before cid's position (use `--` style
    explicit lists: ex(mr, cid, "sh", "-c", "..."), or pass flags=[...])."""
    flags = kw.pop("flags", [])
    return mr.cli("exec", *flags, cid, *args, **kw)


def ok(mr, cid, script, flags=(), **kw):
    p = ex(mr, cid, "sh", "-c", script, flags=list(flags), **kw)
    assert p.returncode == 0, f"exec failed ({p.returncode}): {p.stderr}"
    return p.stdout


def status_fields(text):
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def one_line_error(p):
    assert p.returncode != 0, p.stdout
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def gone(pid, timeout=10.0):
    """Poll until pid is gone (or a zombie): it is not our child, we cannot wait for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except (FileNotFoundError, ProcessLookupError):
            return True     # reaped (between the open and the read: ESRCH, seen once in the VM)
        time.sleep(0.02)
    return False


# ---------------------------------------------------------------- joining the container

@pytest.mark.both_layouts
def test_exec_joins_init_namespaces_cgroup_and_root(mr):
    cid, pid = running(mr)
    out = ok(mr, cid, "for n in " + " ".join(NS) + "; do echo $n $(readlink /proc/self/ns/$n); done;"
             " echo ROOT $(ls /); echo CG; cat /proc/self/cgroup")
    ns_part, _, cg_inside = out.partition("CG\n")
    seen = {}
    for line in ns_part.splitlines():
        key, _, value = line.partition(" ")
        seen[key] = value
    for n in NS:
        if os.path.exists(f"/proc/{pid}/ns/{n}"):
            assert seen[n] == os.readlink(f"/proc/{pid}/ns/{n}"), (n, out)
    assert seen["ROOT"].split() == sorted(os.listdir(ROOTFS)), out
    # no cgroup namespace in this config: the paths read the same from the host
    assert cg_inside == open(f"/proc/{pid}/cgroup").read(), out


@pytest.mark.both_layouts
def test_exec_with_cgroup_namespace_sees_inits_cgroup(mr):
    """With a cgroup namespace, the new process is in init's cgroup *and* its namespace (so both
    read "/"), because it moved into the cgroup before joining the namespace."""
    cid, pid = running(mr, lambda c: c["linux"]["namespaces"].append({"type": "cgroup"}))
    out = ok(mr, cid, "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup")
    mine, theirs = out.split("--\n")
    assert mine == theirs, out
    assert all(line.endswith(":/") for line in mine.splitlines()), out
    assert os.readlink(f"/proc/{pid}/ns/cgroup") in ok(mr, cid, "readlink /proc/self/ns/cgroup")


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/time"), reason="no time namespaces")
def test_exec_joins_time_namespace(mr):
    cid, pid = running(mr, lambda c: c["linux"]["namespaces"].append({"type": "time"}))
    out = ok(mr, cid, "readlink /proc/self/ns/time; readlink /proc/self/ns/time_for_children")
    assert out.split() == [os.readlink(f"/proc/{pid}/ns/time")] * 2, out


@pytest.mark.cgroup_v2
def test_exec_into_cgroup_with_enabled_controllers_joins_inits_cgroup(mr):
    """A container that manages cgroups itself: init moved into a child cgroup, controllers
    enabled for the children. cgroup v2 then refuses processes in the container's own cgroup
    ("no internal processes", EBUSY): the new process goes where init is, as with runc."""
    cid, pid = running(mr)
    top = "/sys/fs/cgroup" + open(f"/proc/{pid}/cgroup").read().strip().split(":", 2)[2]
    os.mkdir(f"{top}/leaf")
    with open(f"{top}/leaf/cgroup.procs", "w") as f:
        f.write(str(pid))
    with open(f"{top}/cgroup.subtree_control", "w") as f:
        f.write("+pids")
    out = ok(mr, cid, "cat /proc/self/cgroup")
    assert out == open(f"/proc/{pid}/cgroup").read() and out.strip().endswith("/leaf"), out


@pytest.mark.userns
def test_exec_joins_user_namespace(mr):
    def edit(cfg):
        cfg["linux"]["namespaces"] += [{"type": "user"}, {"type": "cgroup"}]
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    cid, pid = running(mr, edit)
    out = ok(mr, cid, "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user").splitlines()
    assert out[0] == "0"
    assert out[1].split() == ["0", "100000", "65536"]
    assert out[2] == os.readlink(f"/proc/{pid}/ns/user")
    out = ok(mr, cid, "id -u; id -g", flags=["--user", "1000:1000"]).split()
    assert out == ["1000", "1000"]


def test_exec_into_created_container(mr):
    """Allowed before start (runc allows it too): init waits on exec.fifo, the namespaces exist."""
    cid = mr.new_id()
    mr.cli("create", "--bundle", mr.bundle(args=["sleep", "1000000"]), cid, check=True)
    pid = json.loads(mr.cli("state", cid).stdout)["pid"]
    out = ok(mr, cid, "echo in-created; readlink /proc/self/ns/pid; cat /proc/1/comm").splitlines()
    assert out[0] == "in-created"
    assert out[1] == os.readlink(f"/proc/{pid}/ns/pid")
    assert out[2] == "mrunc:[init]"
    assert json.loads(mr.cli("state", cid).stdout)["status"] == "created"


API_WITHOUT_CLONE3 = """
import errno, os, sys
from mrunc import api, linux

def no_clone3(fd):  # a kernel before 5.7
    raise OSError(errno.ENOSYS, "clone3: Function not implemented")

linux.fork_into_cgroup = no_clone3
before = os.readlink("/proc/self/ns/pid_for_children"), linux.Syscalls().prctl(3)
rc = api.exec(sys.argv[2], ["cat", "/proc/self/cgroup"], sys.argv[1])
after = os.readlink("/proc/self/ns/pid_for_children"), linux.Syscalls().prctl(3)
print("rc", rc, "same" if before == after else f"changed {before} -> {after}", flush=True)
"""


@pytest.mark.both_layouts
def test_api_exec_without_clone3_and_the_caller_is_left_as_it_was(mr):
    """Without clone3 the process moves itself into the v2 cgroup; and the API caller's children
    are born in its own PID namespace again, and it is as dumpable as before."""
    cid, pid = running(mr)
    p = subprocess.run([sys.executable, "-c", API_WITHOUT_CLONE3, mr.root, cid], cwd=REPO,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    cgroup, _, last = p.stdout.rpartition("rc ")
    assert last.split() == ["0", "same"], p.stdout
    assert cgroup == open(f"/proc/{pid}/cgroup").read(), p.stdout


# ---------------------------------------------------------------- the process object and flags

def test_env_and_overrides(mr):
    cid, _ = running(mr)
    env = ok(mr, cid, "env", flags=["-e", "TERM=dumb", "--env", "FOO=bar"]).splitlines()
    assert "TERM=dumb" in env and "TERM=xterm" not in env, env
    assert "FOO=bar" in env
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in env
    assert "HOME=/root" in env  # runc's rule: from the container's /etc/passwd when not set


def test_cwd(mr):
    cid, _ = running(mr)
    assert ok(mr, cid, "pwd").strip() == "/"
    assert ok(mr, cid, "pwd", flags=["--cwd", "/tmp"]).strip() == "/tmp"


def test_user_and_additional_gids(mr):
    cid, _ = running(mr)
    out = ok(mr, cid, "id -u; id -g; grep ^Groups /proc/self/status",
             flags=["--user", "1000:1000", "-g", "10", "--additional-gids", "20"]).splitlines()
    assert out[:2] == ["1000", "1000"]
    assert out[2].split()[1:] == ["10", "20"], out
    assert ok(mr, cid, "id -u; id -g", flags=["-u", "7"]).split() == ["7", "0"]  # gid: config's


def test_capabilities_as_configured_and_cap_adds_to_bounding_effective_permitted(mr):
    cid, pid = running(mr)
    init = status_fields(open(f"/proc/{pid}/status").read())
    mine = status_fields(ok(mr, cid, "cat /proc/self/status"))
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert mine[key] == init[key], (key, mine[key], init[key])
    added = status_fields(ok(mr, cid, "cat /proc/self/status", flags=["--cap", "CAP_SYS_ADMIN"]))
    for key in ("CapPrm", "CapEff", "CapBnd"):
        assert int(added[key], 16) == int(init[key], 16) | 1 << CAP_SYS_ADMIN, key
    assert int(added["CapInh"], 16) == 0 and int(added["CapAmb"], 16) == 0  # CVE-2022-29162


@pytest.mark.parametrize("unknown", ["CAP_UNKNOWN", "CAP_SYS_ADMIN2"])
def test_cap_unknown_is_skipped_with_a_warning_and_the_process_runs(mr, unknown):
    """runc (and crun): an unknown or unavailable --cap is ignored with a warning, and the process
    runs with the caps it would have had plus the known ones asked for."""
    cid, pid = running(mr)
    init = status_fields(open(f"/proc/{pid}/status").read())
    p = ex(mr, cid, "sh", "-c", "echo ran; cat /proc/self/status",
           flags=["--cap", unknown, "--cap", "CAP_SYS_ADMIN"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "ran"
    assert p.stderr.splitlines() == [
        f"mrunc: warning: exec --cap: ignoring unknown or unavailable capabilities: {unknown} "
        f"(this kernel's cap_last_cap is {open('/proc/sys/kernel/cap_last_cap').read().strip()})"]
    got = status_fields(p.stdout)
    for key in ("CapPrm", "CapEff", "CapBnd"):
        assert int(got[key], 16) == int(init[key], 16) | 1 << CAP_SYS_ADMIN, key
    assert int(got["CapInh"], 16) == 0 and int(got["CapAmb"], 16) == 0
    # alone: the process runs with exactly the container's own sets
    p = ex(mr, cid, "cat", "/proc/self/status", flags=["--cap", unknown])
    assert p.returncode == 0 and "ignoring unknown or unavailable capabilities" in p.stderr
    got = status_fields(p.stdout)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert got[key] == init[key], key


def test_no_new_privs(mr):
    cid, _ = running(mr, lambda c: c["process"].__setitem__("noNewPrivileges", False))
    assert status_fields(ok(mr, cid, "cat /proc/self/status"))["NoNewPrivs"] == "0"
    out = ok(mr, cid, "cat /proc/self/status", flags=["--no-new-privs"])
    assert status_fields(out)["NoNewPrivs"] == "1"


def test_process_json(mr):
    """-p: the file is the whole process; the process flags are ignored, as by runc."""
    cid, _ = running(mr)
    proc = {"args": ["sh", "-c", "echo $X; id -u; pwd; echo ${TERM:-none}"], "env": ["PATH=/bin", "X=1"],
            "cwd": "/etc", "user": {"uid": 5, "gid": 5}, "terminal": False}
    path = mr.tmp / "process.json"
    path.write_text(json.dumps(proc))
    p = ex(mr, cid, flags=["-p", str(path), "-e", "TERM=ignored"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1", "5", "/etc", "none"]
    path.write_text(json.dumps(dict(proc, args=[])))
    assert "process.args" in one_line_error(ex(mr, cid, flags=["--process", str(path)]))


def test_preserve_fds(mr):
    cid, _ = running(mr)
    data = mr.tmp / "data"
    data.write_text("through fd 3\n")
    p = subprocess.run(["sh", "-c", f'exec "$0" "$@" 3<{data}', sys.executable, "-m", "mrunc",
                        "--root", mr.root, "exec", "--preserve-fds", "1", cid,
                        "sh", "-c", "cat <&3; ls /proc/self/fd"],
                       capture_output=True, text=True, cwd=REPO, timeout=30)
    assert p.returncode == 0, p.stderr
    words = p.stdout.split()
    assert words[:3] == ["through", "fd", "3"]
    assert words[3:] == ["0", "1", "2", "3", "4"], p.stdout  # 3 preserved, 4 is ls's own


def test_preserved_fds_must_have_been_passed(mr):
    cid, _ = running(mr)
    p = ex(mr, cid, "true", flags=["--preserve-fds", "2"])
    assert "fd 3 was not passed" in one_line_error(p) and p.returncode == 255


def test_no_fd_leaks_into_the_container(mr):
    """Only stdio reaches the program, even when the caller of exec leaks fds to it."""
    cid, _ = running(mr)
    leak = os.open(ROOTFS, os.O_RDONLY | os.O_DIRECTORY)  # a host directory: the worst kind
    try:
        p = mr.cli("exec", cid, "ls", "/proc/self/fd", pass_fds=(leak,))
    finally:
        os.close(leak)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["0", "1", "2", "3"], p.stdout  # 3: ls's own directory fd


def test_cwd_through_proc_self_fd_is_refused(mr):
    """CVE-2024-21626: no cwd that reaches outside the container through a leaked fd."""
    cid, _ = running(mr)
    for n in range(3, 21):
        p = ex(mr, cid, "pwd", flags=["--cwd", f"/proc/self/fd/{n}"])
        msg = one_line_error(p)
        assert p.returncode == 255 and "cwd" in msg, (n, p.stdout, msg)


def _tmpfs_tmp(cfg):
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                          "options": ["nosuid", "nodev", "mode=1777"]})


def _deny_mkdir(action="SCMP_ACT_ERRNO", nnp=True, **extra):
    def edit(cfg):
        _tmpfs_tmp(cfg)
        cfg["process"]["noNewPrivileges"] = nnp
        cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", **extra,
                                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}]}
    return edit


@pytest.mark.parametrize("nnp", [True, False], ids=["no_new_privs", "without_no_new_privs"])
def test_seccomp_of_the_container_applies(mr, nnp):
    """linux.seccomp filters the exec'd process too (loaded last with noNewPrivileges; before the
    capabilities are dropped without it, as for init)."""
    cid, _ = running(mr, _deny_mkdir(nnp=nnp))
    out = ok(mr, cid, "mkdir /tmp/x 2>&1; touch /tmp/f && echo touched; "
                      "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status")
    assert "Operation not permitted" in out and "touched" in out, out
    f = dict(line.split(":\t") for line in out.splitlines() if ":\t" in line)
    assert f["Seccomp"] == "2" and f["Seccomp_filters"] == "1", out
    assert f["NoNewPrivs"] == ("1" if nnp else "0")


_DENIED = ("mkdir /tmp/x 2>&1; touch /tmp/f && echo touched; "
           "grep -E '^Seccomp_filters:' /proc/self/status")


def _allow_all_bpf():
    """A one-instruction seccomp program: return SECCOMP_RET_ALLOW."""
    import struct
    return struct.pack("=HBBI", 0x06, 0, 0, 0x7FFF0000)


def _runtime_maps(mr, cid):
    """/proc/<pid>/maps of a foreground `mrunc exec` while its process runs."""
    p = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, "exec", cid,
                          "sleep", "1000"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _children(p.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _children(p.pid), "exec's process did not start"
        with open(f"/proc/{p.pid}/maps") as f:
            return f.read()
    finally:
        p.terminate()   # forwarded to the process: both end
        p.wait(timeout=10)


def _children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return f.read().split()


def test_seccomp_program_is_built_once_and_kept_in_the_state_dir(mr):
    """Create keeps the program init built in the container's state dir (seccomp.bpf, ours,
    0600); every exec loads it as it is, without libseccomp — the first one too. A file that
    someone else could have written, or built from another profile, is not trusted: built again
    (and rewritten)."""
    cid, _ = running(mr, _deny_mkdir())
    cache = os.path.join(mr.root, cid, "seccomp.bpf")
    assert os.path.exists(cache)
    # The first exec loads it without libseccomp: the waiting runtime never mapped it.
    assert "libseccomp" not in _runtime_maps(mr, cid)
    assert "Operation not permitted" in ok(mr, cid, _DENIED)
    st = os.stat(cache)
    assert (st.st_mode & 0o7777, st.st_uid) == (0o600, os.geteuid())
    with open(cache, "rb") as f:
        kept = f.read()
    head = kept.partition(b"\n")[0]
    from mrunc.security.seccomp import exec_key
    # headed with the container's profile, as one string
    with open(os.path.join(mr.root, cid, "config.json")) as f:
        profile = json.load(f)["linux"]["seccomp"]
    assert json.loads(head)["config"] == exec_key(profile)

    def plant(first_line, mode):
        meta = json.loads(first_line)
        meta["insns"] = len(_allow_all_bpf()) // 8   # whole: a cut file is not trusted either
        with open(cache, "wb") as f:
            f.write(json.dumps(meta).encode() + b"\n" + _allow_all_bpf())
        os.chmod(cache, mode)

    # Used as it is: a kept program that allows everything lets mkdir through — proof that
    # the second exec loaded the file rather than building the filter again.
    plant(head, 0o600)
    out = ok(mr, cid, _DENIED)
    assert "Operation not permitted" not in out and "touched" in out, out
    assert "Seccomp_filters:\t1" in out, out
    # Writable by others: ignored, the real filter is built and the file rewritten.
    plant(head, 0o666)
    out = ok(mr, cid, _DENIED)
    assert "Operation not permitted" in out and "touched" in out, out
    with open(cache, "rb") as f:
        assert f.read() == kept
    assert os.stat(cache).st_mode & 0o7777 == 0o600
    # Built from another profile (the key differs): ignored likewise.
    other = json.loads(head)
    other["config"] = exec_key(dict(profile, syscalls=[{"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"}]))
    plant(json.dumps(other).encode(), 0o600)
    assert "Operation not permitted" in ok(mr, cid, _DENIED)
    with open(cache, "rb") as f:
        assert f.read() == kept


_NOTIF_RECV, _NOTIF_SEND = 0xC0502100, 0xC0182101  # SECCOMP_IOCTL_NOTIF_RECV / _SEND


def _agent(path, states):
    """A seccomp agent: for each listener fd it gets (init's, then the exec'd processes'), keep
    the state sent with it and answer every notified call with -ENOMEDIUM."""
    import fcntl
    import struct
    import threading
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(2)

    def serve(fd):
        while True:
            buf = bytearray(80)
            try:
                fcntl.ioctl(fd, _NOTIF_RECV, buf)
            except OSError:
                return os.close(fd)  # the filter's last user exited
            nid = struct.unpack_from("=Q", buf)[0]
            fcntl.ioctl(fd, _NOTIF_SEND, bytearray(struct.pack("=QqiI", nid, 0, -123, 0)))

    def accept():
        for _ in range(3):
            conn, _ = srv.accept()
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 1)
            conn.close()
            states.append(json.loads(data))
            threading.Thread(target=serve, args=(fds[0],), daemon=True).start()
        srv.close()

    threading.Thread(target=accept, daemon=True).start()


def test_seccomp_notify_sends_the_exec_listener_to_the_agent(mr):
    states = []
    path = str(mr.tmp / "agent.sock")
    _agent(path, states)
    cid, init = running(mr, _deny_mkdir("SCMP_ACT_NOTIFY", listenerPath=path))
    pidfile = mr.tmp / "exec.pid"
    out = ok(mr, cid, "mkdir /tmp/x 2>&1; echo done", flags=["--pid-file", str(pidfile)])
    assert "No medium found" in out and "done" in out, out
    assert [s["pid"] for s in states] == [init, int(pidfile.read_text())]
    assert states[1]["state"]["id"] == cid and states[1]["state"]["status"] == "running"
    # Every exec loads the program create kept (seccomp.bpf): a listener all the same.
    assert os.path.exists(os.path.join(mr.root, cid, "seccomp.bpf"))
    out = ok(mr, cid, "mkdir /tmp/y 2>&1; echo done", flags=["--pid-file", str(pidfile)])
    assert "No medium found" in out and "done" in out, out
    assert [s["pid"] for s in states][2:] == [int(pidfile.read_text())]


def test_process_is_out_of_reach_until_it_execs(mr):
    """CVE-2016-9962 / CVE-2019-5736: until execve, the new process is mrunc's code on the host's
    interpreter, holding host fds (init's root, its socket to the runtime). A seccomp agent
    holds it at the execve call — after its capabilities were dropped to the container's, so a
    process of another container sharing the PID namespace has the same uid and caps — and
    that process must not reach its fds, cwd or /proc/<pid>/exe: it is not dumpable."""
    import fcntl
    import struct
    import threading
    path = str(mr.tmp / "agent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(2)
    held, release = {}, threading.Event()

    def serve(fd, hold):  # continue every call; hold the first one of the exec'd process
        while True:
            buf = bytearray(80)
            try:
                fcntl.ioctl(fd, _NOTIF_RECV, buf)
            except OSError:
                return os.close(fd)
            nid, pid = struct.unpack_from("=QI", buf)
            if hold and not held:
                held["pid"] = pid
                release.wait(20)
            fcntl.ioctl(fd, _NOTIF_SEND, bytearray(struct.pack("=QqiI", nid, 0, 0, 1)))  # CONTINUE

    def accept():
        for i in range(2):  # init's listener (at create), then the exec'd process's
            conn, _ = srv.accept()
            _, fds, _, _ = socket.recv_fds(conn, 1 << 16, 1)
            conn.close()
            threading.Thread(target=serve, args=(fds[0], i == 1), daemon=True).start()
        srv.close()

    threading.Thread(target=accept, daemon=True).start()

    def edit(cfg):
        cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
                                   "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_NOTIFY"}]}
    cid, init = running(mr, edit)
    late = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, "exec", cid, "true"],
                            cwd=REPO)
    try:
        deadline = time.monotonic() + 10
        while "pid" not in held and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "pid" in held, "the exec'd process never reached execve"
        status = status_fields(open(f"/proc/{held['pid']}/status").read())
        assert int(status["CapEff"], 16) == 0x20000420  # the container's 3 caps: already dropped
        nspid = status["NSpid"].split()[-1]

        def join(cfg):
            for n in cfg["linux"]["namespaces"]:
                if n["type"] == "pid":
                    n["path"] = f"/proc/{init}/ns/pid"
        # (root may list /proc/N/fd; following an fd needs ptrace access)
        out = mr.sh(f"for f in /proc/{nspid}/fd/*; do readlink $f; done || echo fd-denied; "
                    f"readlink /proc/{nspid}/exe || echo exe-denied; "
                    f"readlink /proc/{nspid}/cwd || echo cwd-denied", edit=join)
        assert out.split() == ["fd-denied", "exe-denied", "cwd-denied"], out
    finally:
        release.set()
    assert late.wait(10) == 0


# ---------------------------------------------------------------- exit status, stdio, signals

@pytest.mark.both_layouts
def test_exit_status_and_signals(mr):
    cid, _ = running(mr)
    assert ex(mr, cid, "sh", "-c", "exit 7").returncode == 7
    assert ex(mr, cid, "sh", "-c", "kill -9 $$").returncode == 128 + 9
    assert ex(mr, cid, "true").returncode == 0


def test_program_starts_with_no_signal_blocked_or_ignored(mr):
    """Python ignores SIGPIPE and SIGXFSZ, and mrunc exec blocks signals until it can forward
    them: an ignored or blocked signal would survive execve. Neither reaches the program."""
    cid, _ = running(mr)
    p = ex(mr, cid, "cat", "/proc/self/status")
    assert p.returncode == 0, p.stderr
    f = status_fields(p.stdout)
    # signals 32 and 33 are glibc's own (no program can use them): whatever the caller of the
    # test left there is out of scope
    glibc = (1 << 31) | (1 << 32)
    assert int(f["SigBlk"], 16) & ~glibc == 0 and int(f["SigIgn"], 16) & ~glibc == 0, (f["SigBlk"], f["SigIgn"])


def test_stdin_is_piped_through(mr):
    cid, _ = running(mr)
    p = ex(mr, cid, "cat", input="hi\nthere\n")
    assert p.returncode == 0 and p.stdout == "hi\nthere\n", p


def test_signals_are_forwarded(mr):
    """SIGTERM to `mrunc exec` reaches the process; the status says it was killed by it."""
    cid, _ = running(mr)
    p = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, "exec", cid, "sh", "-c",
                          "echo ready; exec sleep 100"], stdout=subprocess.PIPE, cwd=REPO)
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 128 + signal.SIGTERM
    p.stdout.close()


# ---------------------------------------------------------------- detached

HELPER = """
import ctypes, os, subprocess, sys
ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER, as conmon and the shim are
rc = subprocess.call(sys.argv[2:])
pid = int(open(sys.argv[1]).read())
_, status = os.waitpid(pid, 0)
print(rc, os.waitstatus_to_exitcode(status))
"""


@pytest.mark.both_layouts
def test_detach_pid_file_process_in_container_and_orphaned(mr):
    cid, init = running(mr)
    pidfile = mr.tmp / "exec.pid"
    p = ex(mr, cid, "sleep", "30", flags=["-d", "--pid-file", str(pidfile)])
    assert p.returncode == 0, p.stderr
    raw = pidfile.read_text()
    assert raw.isdigit() and not raw.endswith("\n"), repr(raw)  # as runc: no newline
    pid = int(raw)
    try:
        for n in ("pid", "mnt", "net"):
            assert os.readlink(f"/proc/{pid}/ns/{n}") == os.readlink(f"/proc/{init}/ns/{n}")
        assert open(f"/proc/{pid}/cgroup").read() == open(f"/proc/{init}/cgroup").read()
        assert open(f"/proc/{pid}/comm").read().strip() == "sleep"
        ppid = int(status_fields(open(f"/proc/{pid}/status").read())["PPid"])
        assert ppid != os.getpid()  # not left to us: mrunc exited, it was re-parented upwards
        assert pid in json.loads(mr.cli("ps", "--format", "json", cid).stdout)
    finally:
        os.kill(pid, signal.SIGKILL)
    assert gone(pid)


def test_detached_process_is_reaped_by_the_callers_subreaper(mr):
    """conmon's contract: exec -d returns 0, the caller (a subreaper) waits on the pid file's pid
    and gets the process's own exit status."""
    cid, _ = running(mr)
    pidfile = str(mr.tmp / "exec.pid")
    helper = subprocess.run(
        [sys.executable, "-c", HELPER, pidfile, sys.executable, "-m", "mrunc", "--root", mr.root,
         "exec", "--detach", "--pid-file", pidfile, cid, "sh", "-c", "sleep 0.2; exit 5"],
        capture_output=True, text=True, cwd=REPO, timeout=30)
    assert helper.stdout.split() == ["0", "5"], helper


def test_tty_with_console_socket(mr):
    """-d -t --console-socket: we are the socket server, we get a working pty master."""
    cid, _ = running(mr)
    path = str(mr.tmp / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(10)
    p = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, "exec", "-d", "-t",
                          "--console-socket", path, cid, "sh", "-c",
                          "tty; [ -t 0 ] && echo stdin-tty; read x; echo got-$x"],
                         cwd=REPO, stderr=subprocess.PIPE)
    conn, _ = srv.accept()
    _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    conn.close()
    srv.close()
    assert p.wait(10) == 0, p.stderr.read()
    p.stderr.close()
    master = fds[0]
    try:
        out = _read_until(master, b"stdin-tty")
        assert b"/dev/pts/" in out, out
        os.write(master, b"hello\n")
        assert b"got-hello" in _read_until(master, b"got-hello")
    finally:
        os.close(master)


def test_tty_in_the_foreground_attaches_our_terminal(mr):
    """-t without a console socket: mrunc copies between its own terminal and the pty, and
    exits with the process's status."""
    import pty
    cid, _ = running(mr)
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, "exec", "-t", cid,
                          "sh", "-c", "tty; [ -t 1 ] && echo out-tty; exit 3"],
                         stdin=slave, stdout=slave, stderr=slave, cwd=REPO)
    os.close(slave)
    try:
        out = _read_until(master, b"out-tty")
        assert p.wait(10) == 3
    finally:
        os.close(master)
    assert b"/dev/pts/" in out, out


def _read_until(fd, want, timeout=10.0):
    import select
    out, deadline = b"", time.monotonic() + timeout
    while want not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


# ---------------------------------------------------------------- errors: one line, exit 255

def test_errors_are_one_line(mr):
    cid, _ = running(mr)
    p = ex(mr, cid, "nosuchcommand")
    assert "executable file not found in $PATH" in one_line_error(p) and p.returncode == 255
    p = ex(mr, cid, "true", flags=["--user", "nobody"])
    assert "--user" in one_line_error(p) and p.returncode == 255
    # --cap CAP_NOPE only warns (test_cap_unknown_is_skipped_...); a process file is config.json's
    path = mr.tmp / "process.json"
    path.write_text(json.dumps({"args": ["true"], "cwd": "/",
                                "capabilities": {"bounding": ["CAP_NOPE"]}}))
    p = ex(mr, cid, flags=["--process", str(path)])
    assert one_line_error(p) == ('mrunc: exec failed: process.capabilities.bounding[0]: '
                                 'unknown capability "CAP_NOPE"') and p.returncode == 255
    p = ex(mr, cid, "true", flags=["-d", "-t"])
    assert "--console-socket is required" in one_line_error(p)      # the rules of create too
    p = ex(mr, cid, "true", flags=["--console-socket", str(mr.tmp / "x.sock")])
    assert "--console-socket given but process.terminal is false" in one_line_error(p)
    p = ex(mr, cid, "true", flags=["-t", "--console-socket", str(mr.tmp / "x.sock")])
    assert "--console-socket given without --detach" in one_line_error(p)
    p = ex(mr, cid, flags=[])
    assert "args" in one_line_error(p)
    assert "does not exist" in one_line_error(ex(mr, "t-no-such-container", "true"))


def test_exec_in_stopped_container_fails(mr):
    cid, _ = running(mr)
    mr.cli("kill", cid, "KILL", check=True)
    deadline = time.monotonic() + 5
    while json.loads(mr.cli("state", cid).stdout)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    p = ex(mr, cid, "true")
    assert "cannot exec in a stopped container" in one_line_error(p) and p.returncode == 255


def test_exec_in_paused_container(mr):
    cid, _ = running(mr)
    mr.cli("pause", cid, check=True)
    try:
        p = ex(mr, cid, "true")
        assert "paused" in one_line_error(p) and "--ignore-paused" in p.stderr
        # --ignore-paused: the process joins the frozen cgroup and waits there for resume
        late = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, "exec",
                                 "--ignore-paused", cid, "echo", "thawed"], cwd=REPO,
                                stdout=subprocess.PIPE)
        time.sleep(0.5)
        assert late.poll() is None
    finally:
        mr.cli("resume", cid, check=True)
    out, _ = late.communicate(timeout=10)
    assert late.returncode == 0 and out == b"thawed\n"
