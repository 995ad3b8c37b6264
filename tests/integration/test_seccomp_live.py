"""linux.seccomp for real: `mrunc run` with a profile, checked from inside with busybox (the
checks and the translation to libseccomp calls are in tests/unit/test_seccomp.py).

Each test edits the default config (readonly root, 3 capabilities, noNewPrivileges) and puts a
tmpfs on /tmp, so a refused mkdir there can only be the filter's doing.
"""
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading

import pytest

from seccomp_profile import default_profile
from test_rootless import _as_nobody, home  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.root]

EPERM_TEXT = "Operation not permitted"


def tmp_tmpfs(cfg):
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                          "options": ["nosuid", "nodev", "mode=1777"]})


def with_profile(profile, also=None):
    def edit(cfg):
        tmp_tmpfs(cfg)
        cfg["linux"]["seccomp"] = profile
        if also:
            also(cfg)
    return edit


def deny(names, action="SCMP_ACT_ERRNO", **extra):
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": names, "action": action, **extra}]}


def status_fields(text):
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


@pytest.mark.both_layouts
def test_errno_denies_mkdir_and_nothing_else(mr):
    out = mr.sh("mkdir /tmp/x 2>&1; echo rc=$?; touch /tmp/f && echo touched; ls / | grep -c . ;"
                "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status",
                edit=with_profile(deny(["mkdir", "mkdirat"])))
    assert f"mkdir: can't create directory '/tmp/x': {EPERM_TEXT}" in out
    assert "rc=1" in out and "touched" in out
    f = status_fields(out)
    assert f["Seccomp"] == "2" and f["Seccomp_filters"] == "1" and f["NoNewPrivs"] == "1"


def test_no_seccomp_means_mode_0(mr):
    out = mr.sh("grep -E '^Seccomp' /proc/self/status")
    assert status_fields(out) == {"Seccomp": "0", "Seccomp_filters": "0"}


def test_rule_errno_ret(mr):
    out = mr.sh("mkdir /tmp/x 2>&1; true",
                edit=with_profile(deny(["mkdir"], errnoRet=28)))  # ENOSPC
    assert "No space left on device" in out


def test_default_errno_ret(mr):
    """An allow-list profile whose default answer is EOPNOTSUPP instead of EPERM."""
    profile = dict(default_profile(), defaultErrnoRet=95)
    out = mr.sh("unshare -m true 2>&1; echo rc=$?", edit=with_profile(profile))
    assert "Operation not supported" in out and "rc=1" in out


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_KILL", "SCMP_ACT_TRAP"])
def test_killing_actions_end_the_caller_with_sigsys(mr, action):
    out = mr.sh("mkdir /tmp/x; echo status=$?", edit=with_profile(deny(["mkdir"], action)))
    assert "status=159" in out  # 128 + SIGSYS (31)


def test_kill_process_on_the_containers_program(mr):
    p = mr.run("mkdir", "/tmp/x", edit=with_profile(deny(["mkdir"], "SCMP_ACT_KILL_PROCESS")))
    assert p.returncode == 159, p.stderr


def test_log_allows(mr):
    out = mr.sh("mkdir /tmp/x && echo made", edit=with_profile(deny(["mkdir"], "SCMP_ACT_LOG")))
    assert "made" in out


def test_trace_without_tracer_is_enosys(mr):
    out = mr.sh("mkdir /tmp/x 2>&1; true", edit=with_profile(deny(["mkdir"], "SCMP_ACT_TRACE")))
    assert "Function not implemented" in out


def test_argument_filter(mr):
    """personality(PER_LINUX32) refused, personality(PER_LINUX) allowed; socket(AF_INET, ...)
    refused (args[0] == 2) while other families still get as far as the kernel."""
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]}
    out = mr.sh("linux32 uname -m 2>&1; linux64 uname -m; nc 127.0.0.1 1 2>&1; nc ::1 1 2>&1; true",
                edit=with_profile(profile))
    assert f"linux32: personality(0x8): {EPERM_TEXT}" in out
    assert "x86_64" in out.splitlines()
    assert out.count("Permission denied") == 1  # AF_INET's socket(); ::1 fails another way


def test_masked_eq_on_clone_flags(mr):
    """The engines' rule: clone is allowed only when no CLONE_NEW* flag is set."""
    out = mr.sh("echo forked | cat; unshare -f -p true 2>&1; echo rc=$?",
                edit=with_profile(default_profile()))
    assert "forked" in out and EPERM_TEXT in out and "rc=1" in out


def _sys_admin(cfg):
    for key in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][key].append("CAP_SYS_ADMIN")


def test_big_profile_runs_a_shell_and_refuses_mount_and_unshare(mr):
    """An engine-sized allow-list (~350 names, ERRNO default). CAP_SYS_ADMIN is granted, so a
    refused mount is the filter's doing, not the missing capability's (control run below)."""
    script = ("echo ok; ls / | grep -c .; mount -t tmpfs t /mnt 2>&1; echo mount=$?; "
              "unshare -m true 2>&1; echo unshare=$?; grep ^Seccomp /proc/self/status")
    out = mr.sh(script, edit=with_profile(default_profile(), also=_sys_admin))
    lines = out.splitlines()
    assert lines[0] == "ok" and int(lines[1]) > 10
    assert "mount: permission denied" in out and "mount=1" in out  # busybox's words for EPERM
    assert f"unshare(0x20000): {EPERM_TEXT}" in out and "unshare=1" in out
    assert status_fields(out)["Seccomp_filters"] == "1"
    control = mr.sh(script, edit=lambda c: (tmp_tmpfs(c), _sys_admin(c)))
    assert "mount=0" in control and "Seccomp:\t0" in control


def test_without_no_new_privs_as_a_plain_user(mr):
    """noNewPrivileges false and uid 1000 without CAP_SYS_ADMIN: the filter can only go in
    before the user switch and the capability drop, while init is still root (as runc does)."""
    def also(cfg):
        cfg["process"]["noNewPrivileges"] = False
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    profile = default_profile()
    profile["syscalls"][0]["names"].remove("mkdir")
    profile["syscalls"].append({"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28})
    out = mr.sh("id -u; mkdir /tmp/x 2>&1; grep -E '^(Seccomp|NoNewPrivs|CapEff)' /proc/self/status",
                edit=with_profile(profile, also=also))
    f = status_fields(out)
    assert out.splitlines()[0] == "1000"
    assert f["NoNewPrivs"] == "0" and f["Seccomp"] == "2" and f["Seccomp_filters"] == "1"
    assert f["CapEff"] == "0000000000000000"
    assert "No space left on device" in out


def test_a_profile_without_openat2_and_no_new_privs_off(mr):
    """The filter goes in early (noNewPrivileges false): what init does after it must not need a
    syscall an older profile lacks — openat2, which init's /proc reads use (the OCI validation
    suite's default profile has no openat2: every one of its programs failed create)."""
    def also(cfg):
        cfg["process"]["noNewPrivileges"] = False
    out = mr.sh("echo ran; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
                edit=with_profile(deny(["openat2"]), also=also))
    f = status_fields(out)
    assert out.splitlines()[0] == "ran"
    assert f["Seccomp"] == "2" and f["NoNewPrivs"] == "0"


def test_unknown_syscall_names_are_skipped(mr):
    profile = default_profile()
    profile["syscalls"][0]["names"] += ["a_syscall_from_2077", "another_one"]
    assert mr.sh("echo ok", edit=with_profile(profile)).strip() == "ok"


@pytest.mark.parametrize("flag", ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW"])
def test_supported_flags(mr, flag):
    profile = dict(deny(["mkdir"]), flags=[flag])
    out = mr.sh("mkdir /tmp/x 2>&1; grep ^Seccomp: /proc/self/status", edit=with_profile(profile))
    assert EPERM_TEXT in out and "Seccomp:\t2" in out


def test_wait_killable_recv_without_a_listener_is_harmless(mr):
    from mrunc import spec
    if "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" not in spec.features()["linux"]["seccomp"]["supportedFlags"]:
        pytest.skip("this kernel has no SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (5.19+)")
    profile = dict(deny(["mkdir"]), flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    assert EPERM_TEXT in mr.sh("mkdir /tmp/x 2>&1; true", edit=with_profile(profile))


def old_profile():
    """The engine-shaped profile as it would have been written for an older kernel: nothing
    named above newfstatat (262 on x86_64). unshare (272) is newer than all of it."""
    from mrunc.linux import seccomp as lsc
    lib = lsc.load_library()
    profile = default_profile()
    for rule in profile["syscalls"]:
        rule["names"] = [n for n in rule["names"]
                         if 0 <= (lib.resolve_syscall_arch(lsc.ARCH_X86_64, n) or -1) <= 262]
    profile["syscalls"] = [r for r in profile["syscalls"] if r["names"]]
    profile["architectures"] = ["SCMP_ARCH_X86_64"]
    return profile


def test_syscalls_newer_than_the_profile_get_enosys(mr):
    """Not EPERM: libc reads ENOSYS as "use the older call" (runc prepends the same stub)."""
    out = mr.sh("unshare -m true 2>&1; mount -t tmpfs t /mnt 2>&1; true", edit=with_profile(old_profile()))
    assert "unshare(0x20000): Function not implemented" in out     # 272 > 262: ENOSYS
    assert "mount: permission denied" in out                      # 165, not allowed: EPERM


def test_bad_profile_fails_create_with_the_json_path(mr):
    profile = deny(["mkdir"])
    profile["syscalls"][0]["args"] = [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}]
    p = mr.run("true", edit=with_profile(profile))
    assert p.returncode != 0
    assert 'linux.seccomp.syscalls[0].args[0].op: unknown operator "SCMP_CMP_ALMOST"' in p.stderr


# ---- SCMP_ACT_NOTIFY: a seccomp agent in this test ---------------------------------------------------

_NOTIF_RECV = 0xC0502100   # SECCOMP_IOCTL_NOTIF_RECV: _IOWR('!', 0, struct seccomp_notif) (80 bytes)
_NOTIF_SEND = 0xC0182101   # SECCOMP_IOCTL_NOTIF_SEND: _IOWR('!', 1, struct seccomp_notif_resp) (24)


class Agent(threading.Thread):
    """Accepts one connection at `path`, keeps the Container Process State and the listener fd,
    and answers every notified syscall with -ENOMEDIUM (a value nothing else would produce)."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.state, self.fds, self.calls = None, [], []

    def run(self):
        conn, _ = self.srv.accept()
        data, self.fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
        conn.close()
        self.state = json.loads(data)
        fd = self.fds[0]
        while True:
            buf = bytearray(80)
            try:
                fcntl.ioctl(fd, _NOTIF_RECV, buf)
            except OSError:
                return  # ENOENT: the filter's last user exited
            nid, pid, _flags, nr = struct.unpack_from("=QIIi", buf)
            self.calls.append(nr)
            fcntl.ioctl(fd, _NOTIF_SEND, bytearray(struct.pack("=QqiI", nid, 0, -123, 0)))

    def close(self):
        self.srv.close()
        for fd in self.fds:
            os.close(fd)


@pytest.mark.parametrize("flags", [[], ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]],
                         ids=["plain", "wait-killable-recv"])
def test_notify_sends_state_and_fd_to_the_agent(mr, tmp_path, flags):
    from mrunc import spec
    if not set(flags) <= set(spec.features()["linux"]["seccomp"]["supportedFlags"]):
        pytest.skip(f"this kernel lacks {flags}")
    path = str(tmp_path / "agent.sock")
    agent = Agent(path)
    agent.start()
    try:
        profile = dict(deny(["mkdir"], "SCMP_ACT_NOTIFY"), listenerPath=path,
                       listenerMetadata="course=containers", flags=flags)
        out = mr.sh("mkdir /tmp/x 2>&1; mkdir /tmp/y 2>&1; touch /tmp/z && echo touched",
                    edit=with_profile(profile))
        agent.join(10)
        assert out.count("No medium found") == 2 and "touched" in out
        st = agent.state
        assert st["fds"] == ["seccompFd"] and st["metadata"] == "course=containers"
        assert st["state"]["status"] == "creating" and st["state"]["pid"] == st["pid"] > 0
        assert st["state"]["id"] == mr.ids[-1] and st["ociVersion"]
        assert agent.calls == [83, 83]  # mkdir, twice
    finally:
        agent.close()


def test_notify_without_agent_fails_create(mr, tmp_path):
    path = str(tmp_path / "nobody.sock")
    p = mr.run("true", edit=with_profile(dict(deny(["mkdir"], "SCMP_ACT_NOTIFY"), listenerPath=path)))
    assert p.returncode != 0
    assert f"linux.seccomp.listenerPath {path}" in p.stderr
    assert not [d for d in os.listdir(mr.root) if d in mr.ids]  # create cleaned up


# ---- runc parity -------------------------------------------------------------------------------------

PROBE = r"""
grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status
mkdir /tmp/d 2>&1 && echo mkdir-ok
unshare -m true 2>&1; echo "unshare=$?"
mount -t tmpfs t /mnt 2>&1; echo "mount=$?"
linux32 uname -m 2>&1; linux64 uname -m
nc 127.0.0.1 1 2>&1 | head -1
ls / | wc -l
echo end
"""


@pytest.mark.runc
@pytest.mark.parametrize("variant", ["engine-default", "deny-list", "no-nnp-user", "old-profile"])
def test_same_as_runc(mr, tmp_path, variant):
    from conftest import base_config
    from test_runc_parity import _assert_same, _runc
    cfg = base_config()
    cfg["process"]["args"] = ["sh", "-c", PROBE]
    if variant == "engine-default":
        profile = default_profile()
    elif variant == "deny-list":
        profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}]}
    elif variant == "old-profile":
        profile = old_profile()
        cfg["process"]["args"] = ["sh", "-c", PROBE.replace("| head -1", "").replace("| wc -l", "")]
    else:
        profile = default_profile()
        cfg["process"]["noNewPrivileges"] = False
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    with_profile(profile)(cfg)
    ours = mr.cli("run", "--bundle", mr.bundle(lambda c: c.update(json.loads(json.dumps(cfg)))),
                  mr.new_id(), stdin=subprocess.DEVNULL)
    theirs = _runc(tmp_path, cfg)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.splitlines()[-1] == "end"
    _assert_same(ours.stdout.splitlines(), theirs.stdout.splitlines())


# ---- podman's own profile (the ~27 KB one it writes into every config.json) ---------------------------

PODMAN_PROBE = ("grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status; "
                "unshare -m true 2>&1; mount -t tmpfs t /mnt 2>&1; linux32 uname -m; "
                "mkdir /tmp/d && echo mkdir-ok; echo end")


@pytest.mark.podman
@pytest.mark.runc
@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("podman"), reason="podman is not installed")
def test_podman_default_profile_same_as_runc(tmp_path):
    """podman generates config.json with its default seccomp profile; the container must see
    the same under mrunc as under runc. Private store, --network none, nothing left behind."""
    from conftest import REPO, ROOTFS
    mrunc = os.path.join(os.path.dirname(sys.executable), "mrunc")
    conf = tmp_path / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\n'
                    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    'runtime_supports_json = ["mrunc"]\n'
                    f'[engine.runtimes]\nmrunc = ["{mrunc}"]\n')
    env = dict(os.environ, CONTAINERS_CONF=str(conf))
    store = tempfile.mkdtemp(prefix="mr-pm-", dir="/tmp")  # podman: runroot < 50 characters
    podman = ["podman", "--root", f"{store}/root", "--runroot", f"{store}/run",
              "--storage-driver", "overlay"]

    def pm(*args, check=True):
        p = subprocess.run([*podman, *args], env=env, capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL, cwd=REPO)
        assert not check or p.returncode == 0, p.stderr
        return p

    tar = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", ROOTFS, "-cf", str(tar), "."], check=True)
    # podman passes no --root: the runtimes use their default state roots, /run/mrunc and /run/runc
    new_roots = [d for d in ("/run/mrunc", "/run/runc") if not os.path.exists(d)]
    # and mrunc's create keeps the profile's program there (mrunc.security.seccompcache)
    new_cache = not os.path.exists("/run/mrunc/.seccomp")
    try:
        pm("import", str(tar), "localhost/mrunc-seccomp-test")
        out = {rt: pm("--runtime", rt, "run", "--rm", "--network", "none",
                      "localhost/mrunc-seccomp-test", "sh", "-c", PODMAN_PROBE).stdout
               for rt in ("runc", "mrunc")}
    finally:
        pm("rm", "--all", "--force", check=False)
        pm("rmi", "--all", "--force", check=False)  # not `system reset`: it also drops networks
        subprocess.run(["umount", "-R", store], capture_output=True)  # storage's own mounts
        shutil.rmtree(store, ignore_errors=True)
        if new_cache:
            from mrunc.security import seccompcache
            seccompcache.forget("/run/mrunc")
        for d in new_roots:  # ours, and empty once the containers are gone
            try:
                os.rmdir(d)
            except OSError:
                pass
    assert "Seccomp:\t2" in out["mrunc"] and "end" in out["mrunc"]
    assert "unshare(0x20000): Operation not permitted" in out["mrunc"]
    assert out["mrunc"] == out["runc"]


def test_a_profile_that_kills_init_itself_says_so(mr):
    """init makes a few calls between loading the filter and exec (the phase report first): a
    profile that kills on them fails create with a message that says what happened."""
    profile = dict(default_profile(), defaultAction="SCMP_ACT_KILL_PROCESS")
    del profile["defaultErrnoRet"]
    profile["syscalls"][0]["names"].remove("sendto")
    p = mr.run("true", edit=with_profile(profile))
    assert p.returncode != 0
    assert "security: container init was killed by its own seccomp filter (SIGSYS)" in p.stderr
    assert not [d for d in os.listdir(mr.root) if d in mr.ids]  # nothing left behind


def test_the_stepper_sees_the_filter_arrive_in_the_security_phase(mr):
    """What the notebook shows: paused after each phase, init's /proc status says seccomp is off
    until the security phase, then filter mode with one filter — and the program inherits it."""
    from test_snapshot_live import _step_through

    from mrunc import snapshot
    cid = mr.new_id()
    snaps = _step_through(mr, cid, mr.bundle(with_profile(default_profile()), args=["sleep", "30"]))
    before, sec = snaps["cgroup"], snaps["security"]
    assert (before.security.seccomp, before.security.seccomp_filters) == (0, 0)
    assert (sec.security.seccomp, sec.security.seccomp_filters) == (2, 1)
    assert sec.security.seccomp_mode == "filter"
    text = "\n".join(snapshot.diff(before, sec).summary())
    assert "seccomp is now in filter mode (was disabled)" in text
    mr.cli("start", cid, check=True)
    pid = json.loads(mr.cli("state", cid, check=True).stdout)["pid"]
    for _ in range(100):
        after = snapshot.take(pid)
        if after.process and after.process.comm == "sleep":
            break
    assert (after.security.seccomp, after.security.seccomp_filters) == (2, 1)


@pytest.mark.userns
@pytest.mark.parametrize("nnp", [True, False], ids=["nnp", "no-nnp"])
@pytest.mark.skipif(not shutil.which("runuser"), reason="runuser (util-linux) is not installed")
def test_rootless_container_gets_its_filter(home, nnp):
    """An ordinary user's container: without noNewPrivileges the filter is loaded with the
    CAP_SYS_ADMIN init has in its own user namespace, which is enough for the kernel."""
    from conftest import ROOTFS
    p = _as_nobody("spec", "--rootless", cwd=str(home))
    assert p.returncode == 0, p.stderr
    cfg = json.loads((home / "config.json").read_text())
    cfg["root"]["path"] = ROOTFS
    cfg["process"].update(terminal=False, noNewPrivileges=nnp, args=[
        "sh", "-c", "mkdir /tmp/x 2>&1; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"])
    with_profile(deny(["mkdir"], errnoRet=28))(cfg)
    (home / "config.json").write_text(json.dumps(cfg))
    p = _as_nobody("--root", str(home / "state"), "run", "--bundle", str(home), "rl-sc", cwd=str(home))
    assert p.returncode == 0, p.stderr
    f = status_fields(p.stdout)
    assert "No space left on device" in p.stdout
    assert f["Seccomp"] == "2" and f["NoNewPrivs"] == ("1" if nnp else "0")


@pytest.mark.parametrize("nnp", [False, True], ids=["filter-before-user", "filter-last"])
def test_a_profile_that_blocks_getcwd_still_runs_in_its_cwd(mr, nnp):
    """The cwd check (CVE-2024-21626) must not need a syscall the filter may block: without
    noNewPrivileges the filter is loaded before the user and the cwd are set. The program runs in
    process.cwd (read through /proc, not getcwd), and getcwd is refused as the profile says;
    `exec` into it gets the same filter and the same check."""
    def also(cfg):
        cfg["process"]["noNewPrivileges"] = nnp
        cfg["process"]["cwd"] = "/etc"
    edit = with_profile(deny(["getcwd"]), also)
    cid = mr.new_id()
    script = "sleep 1000"
    mr.cli("run", "-d", "--bundle", mr.bundle(edit, args=["sh", "-c", script]), cid, check=True)
    pid = json.loads(mr.cli("state", cid, check=True).stdout)["pid"]
    assert os.readlink(f"/proc/{pid}/cwd").endswith("/etc")
    p = mr.cli("exec", "--cwd", "/usr", cid, "sh", "-c", "readlink /proc/self/cwd; /bin/pwd; echo rc=$?")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "/usr" and lines[-1] == "rc=1" and "Traceback" not in p.stderr


def test_libseccomp_is_mapped_only_for_a_config_with_a_profile(mr, tmp_path):
    """Memory: libseccomp (≈ 0.2 MiB mapped, and ≈ 1 MiB more for the filter it builds from an
    engine's default profile) is loaded only when linux.seccomp asks for it — seen in the maps of
    a created init waiting for `start`, which has loaded everything it will use by then."""
    maps = {}
    for name, edit in (("none", None), ("profile", with_profile(deny(["mkdir"])))):
        pid_file = tmp_path / f"{name}.pid"
        mr.cli("create", "--bundle", mr.bundle(edit, args=["true"]), "--pid-file", str(pid_file),
               mr.new_id(), check=True)
        with open(f"/proc/{int(pid_file.read_text())}/maps") as f:
            maps[name] = f.read()
    assert "libseccomp" not in maps["none"]
    assert "libseccomp" in maps["profile"]   # the check sees it when it is there
