"""The security phase for real: a forked child applies it, then execs busybox, which reports what
the kernel made of it (/proc/self/status, umask, ulimit, oom_score_adj)."""
import os
import select
import signal
import time

import pytest

from mrunc import security
from mrunc.linux import Syscalls

BUSYBOX = "/bin/busybox"  # busybox-static: no libraries needed, whoever runs it
REPORT = ('cat /proc/self/status; echo "umask $(umask)"; '
          'echo "nofile $(ulimit -Sn) $(ulimit -Hn)"; echo "oom $(cat /proc/self/oom_score_adj)"')

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setuid, capset, bounding set)"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX),
                       reason="needs /bin/busybox (apt-get install busybox-static)"),
]

DEFAULT3 = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def run(process, before_exec=False, timeout=10):
    """Fork; the child applies `process` and execs busybox sh -c REPORT, its stdout and stderr on
    a pipe. Returns (exit status, output). With before_exec, the child first copies its own
    /proc/self/status to the pipe, between PRE and POST lines."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(r)
            os.dup2(w, 1)
            os.dup2(w, 2)
            security.apply(Syscalls(), process,
                           warn=lambda m: os.write(1, f"WARNING {m}\n".encode()))
            if before_exec:
                with open("/proc/self/status", "rb") as f:
                    os.write(1, b"PRE\n" + f.read() + b"POST\n")
            os.execv(BUSYBOX, ["busybox", "sh", "-c", REPORT])
        except BaseException as e:  # noqa: BLE001
            os.write(2, f"ERROR {getattr(e, 'strerror', None) or e}\n".encode())
        finally:
            os._exit(127)
    os.close(w)
    out, eof, deadline = b"", False, time.monotonic() + timeout
    try:
        while not eof and select.select([r], [], [], max(0, deadline - time.monotonic()))[0]:
            chunk = os.read(r, 65536)
            out, eof = out + chunk, not chunk
    finally:
        os.close(r)
        if not eof:  # timed out (or the read failed): the child must not outlive the test
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode()


def fields(text):
    """'CapEff:\t00000000a80425fb' lines -> {'CapEff': '00000000a80425fb'}, plus our own lines."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":\t") if ":\t" in line else line.partition(" ")
        if sep:
            out[key] = value.strip()
    return out


def caps(f, key):
    return security.cap_names(int(f[key], 16))


def test_runc_default_process_as_root():
    """runc spec's process: 3 caps, NOFILE 1024, noNewPrivileges. Root after execve gets permitted
    = effective = bounding; inheritable and ambient stay empty."""
    status, out = run({
        "user": {"uid": 0, "gid": 0},
        "capabilities": {k: DEFAULT3 for k in ("bounding", "effective", "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True})
    f = fields(out)
    assert status == 0, out
    want = sorted(DEFAULT3, key=security.CAPABILITIES.get)
    assert caps(f, "CapBnd") == caps(f, "CapEff") == caps(f, "CapPrm") == want
    assert f["CapInh"] == f["CapAmb"] == "0000000000000000"
    assert f["NoNewPrivs"] == "1"
    assert f["Uid"].split() == f["Gid"].split() == ["0"] * 4
    assert f["Groups"] == ""
    assert f["umask"] == "0022"  # unset: runc's default
    assert f["nofile"] == "1024 1024"
    assert "WARNING" not in out  # the ambient caps it asks for: root gets them via bounding


def test_oom_score_adj_unset_is_left_alone():
    with open("/proc/self/oom_score_adj") as fh:
        ours = fh.read().strip()
    status, out = run({"capabilities": {"bounding": DEFAULT3}})
    assert status == 0, out
    assert fields(out)["oom"] == ours


def test_non_root_user_with_ambient_caps():
    """A non-root user keeps across execve only its ambient caps: configure all five sets."""
    want = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    process = {
        "user": {"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 0o027},
        "capabilities": {"bounding": want + ["CAP_CHOWN"], "effective": want, "permitted": want,
                         "inheritable": want, "ambient": want},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                    {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}],
        "oomScoreAdj": 500,
        "noNewPrivileges": True,
    }
    status, out = run(process)
    f = fields(out)
    assert status == 0, out
    assert f["Uid"].split() == ["1000"] * 4
    assert f["Gid"].split() == ["1001"] * 4
    assert f["Groups"].split() == ["10", "20"]
    for key in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert caps(f, key) == want, key
    assert caps(f, "CapBnd") == ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert f["NoNewPrivs"] == "1"
    assert f["umask"] == "0027"
    assert f["nofile"] == "512 1024"
    assert f["oom"] == "500"
    assert "WARNING" not in out


def test_non_root_caps_without_ambient_end_at_execve():
    """KEEPCAPS + capset give the non-root user its caps up to the exec; without ambient, execve of
    an ordinary program then leaves it none (the lesson of the module docstring)."""
    want = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    status, out = run({"user": {"uid": 1000, "gid": 1000},
                       "capabilities": {"bounding": want, "effective": want, "permitted": want}},
                      before_exec=True)
    assert status == 0, out
    pre, _, post = out.partition("POST\n")
    pre, post = fields(pre), fields(post)
    assert pre["Uid"].split() == post["Uid"].split() == ["1000"] * 4
    assert caps(pre, "CapEff") == caps(pre, "CapPrm") == want
    assert caps(pre, "CapBnd") == caps(post, "CapBnd") == want
    assert post["CapEff"] == post["CapPrm"] == post["CapInh"] == "0000000000000000"
    assert post["NoNewPrivs"] == "0"


def test_root_gets_the_bounding_set_at_execve():
    """For root, execve sets permitted = effective = bounding, whatever capset said before."""
    status, out = run({"capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN"],
                                        "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}},
                      before_exec=True)
    assert status == 0, out
    pre, _, post = out.partition("POST\n")
    assert caps(fields(pre), "CapEff") == ["CAP_KILL"]
    assert caps(fields(post), "CapEff") == caps(fields(post), "CapPrm") == ["CAP_CHOWN", "CAP_KILL"]


def test_absent_capabilities_means_none():
    status, out = run({"user": {"uid": 0, "gid": 0}})
    f = fields(out)
    assert status == 0, out
    for key in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert f[key] == "0000000000000000", key


def test_rlimit_above_hard_limit_fails_with_a_named_error():
    """Raising NOFILE's hard limit needs CAP_SYS_RESOURCE (this machine's root lacks it); above
    fs.nr_open it fails even with it. Either way: EPERM, and one line naming the entry."""
    with open("/proc/self/status") as fh:
        cap_eff = int(fields(fh.read())["CapEff"], 16)
    value = 1048576
    if cap_eff >> security.CAPABILITIES["CAP_SYS_RESOURCE"] & 1:
        with open("/proc/sys/fs/nr_open") as fh:
            value = int(fh.read()) + 1
    status, out = run({"rlimits": [{"type": "RLIMIT_NOFILE", "soft": value, "hard": value}]})
    assert status == 127
    assert out == (f"ERROR process.rlimits[0]: setrlimit RLIMIT_NOFILE {value}/{value}: "
                   "Operation not permitted\n")
