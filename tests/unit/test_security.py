"""The security phase, as the exact sequence of kernel calls it asks for (no root needed)."""
import errno
import json
import os
import resource
import shutil
import subprocess
import sys as pysys

import pytest

from mrunc import security
from mrunc.errors import SpecError
from mrunc.linux import (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAP_AMBIENT_RAISE,
                         PR_CAPBSET_DROP, PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS, RecordingSyscalls)
from mrunc.security import capabilities as caps_mod
from mrunc.security import user as user_mod

DEFAULT3 = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")


@pytest.fixture(autouse=True)
def host(monkeypatch):
    """Pin what apply() reads from the host: a 41-capability kernel, setgroups allowed."""
    monkeypatch.setattr(caps_mod, "_host_last_cap", 40)
    monkeypatch.setattr(user_mod, "setgroups_allowed", lambda: True)


@pytest.fixture(scope="module")
def runc_process(tmp_path_factory):
    """The process object of `runc spec` (runc 1.1.5): what most bundles start from."""
    if not shutil.which("runc"):
        pytest.skip("needs the runc binary for `runc spec`")
    d = tmp_path_factory.mktemp("runc-spec")
    subprocess.run(["runc", "spec"], cwd=d, check=True)
    return json.loads((d / "config.json").read_text())["process"]


class FailOn:
    """A Syscalls stand-in that records like RecordingSyscalls and fails one call with `err`."""

    def __init__(self, name, err=errno.EPERM, message=None, when=lambda *a: True):
        self.log, self.name, self.err, self.message, self.when = [], name, err, message, when

    def __getattr__(self, name):
        def call(*args, **_kw):  # keyword arguments (write_fd's fd) are not logged
            self.log.append((name, args))
            if name == self.name and self.when(*args):
                raise OSError(self.err, self.message or f"{name}: {os.strerror(self.err)}")
            return 0
        return call


def mask(*names):
    return security.cap_mask(names)


def drops(keep):
    return [("prctl", (PR_CAPBSET_DROP, n)) for n in range(41) if not keep >> n & 1]


def run(process, **kw):
    sys, warnings = RecordingSyscalls(), []
    security.apply(sys, process, warn=warnings.append, **kw)
    return sys.log, warnings


# ---------------------------------------------------------------- names and masks

def test_table_has_all_41_caps():
    assert len(security.CAPABILITIES) == 41
    assert security.CAPABILITIES["CAP_CHOWN"] == 0
    assert security.CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert security.CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert security.LAST_CAP == 40


def test_names_and_masks():
    docker = 0xa80425fb  # Docker's default CapEff, as /proc/<pid>/status shows it
    names = security.cap_names(docker)
    assert names[:3] == ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"]
    assert "CAP_SYS_ADMIN" not in names and len(names) == 14
    assert security.cap_mask(names) == docker
    assert security.cap_names(0) == []
    assert security.cap_names((1 << 41) - 1) == list(security.CAPABILITIES)
    assert security.cap_names(1 << 41 | 1) == ["CAP_CHOWN", "41"]  # a newer kernel's bit
    assert mask("CAP_KILL", "CAP_KILL") == 1 << 5


def test_cap_mask_unknown_and_unavailable():
    with pytest.raises(ValueError, match="unknown capability 'CAP_FOO'"):
        security.cap_mask(["CAP_FOO"])
    with pytest.raises(ValueError, match="CAP_BPF is not in this kernel"):
        security.cap_mask(["CAP_BPF"], last_cap=38)
    skipped = []
    assert security.cap_mask(["CAP_KILL", "CAP_FOO", "cap_kill", "CAP_BPF"], 38, skipped) == 1 << 5
    assert skipped == ["CAP_FOO", "cap_kill", "CAP_BPF"]


def test_cap_sets_warns_once_and_skips_unavailable():
    """One cap the kernel lacks, listed in three sets, is one cause: one line (runc's words)."""
    masks, warnings = security.cap_sets({
        "bounding": ["CAP_KILL", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"],
        "permitted": ["CAP_KILL", "CAP_BPF"], "effective": ["CAP_KILL", "CAP_BPF"]}, last_cap=38)
    assert masks == {"bounding": 1 << 5, "permitted": 1 << 5, "effective": 1 << 5,
                     "inheritable": 0, "ambient": 0}
    assert warnings == [
        "process.capabilities: ignoring unknown or unavailable capabilities: CAP_BPF, "
        "CAP_CHECKPOINT_RESTORE (this kernel's cap_last_cap is 38)",
    ]


def test_cap_sets_skips_what_cannot_be_granted():
    config = {
        "bounding": ["CAP_KILL", "CAP_CHOWN"], "permitted": ["CAP_KILL"],
        "effective": ["CAP_KILL", "CAP_CHOWN"], "inheritable": ["CAP_KILL", "CAP_NET_RAW"],
        "ambient": ["CAP_KILL", "CAP_CHOWN", "CAP_SYS_ADMIN"]}
    masks, warnings = security.cap_sets(config)
    assert masks["effective"] == masks["inheritable"] == masks["ambient"] == mask("CAP_KILL")
    assert warnings == [
        "process.capabilities.effective: ignoring CAP_CHOWN: not in permitted",
        "process.capabilities.inheritable: ignoring CAP_NET_RAW: not in bounding",
        "process.capabilities.ambient: ignoring CAP_CHOWN, CAP_SYS_ADMIN: an ambient capability "
        "must also be permitted and inheritable",
    ]
    # root: CAP_CHOWN is in bounding, so execve grants it anyway; CAP_SYS_ADMIN is really lost
    masks, warnings = security.cap_sets(config, uid=0)
    assert masks["ambient"] == mask("CAP_KILL")
    assert warnings[-1] == ("process.capabilities.ambient: ignoring CAP_SYS_ADMIN: an ambient "
                            "capability must also be permitted and inheritable")


def test_cap_sets_absent_means_all_empty():
    assert security.cap_sets(None) == (dict.fromkeys(SETS, 0), [])


def test_cap_sets_rejects_wrong_types():
    with pytest.raises(SpecError, match=r"^process.capabilities.bounding: must be an array"):
        security.cap_sets({"bounding": "CAP_KILL"})
    with pytest.raises(SpecError, match=r"^process.capabilities: must be an object"):
        security.cap_sets(["CAP_KILL"])


# ---------------------------------------------------------------- the call sequence

def test_runc_default_process(runc_process):
    """runc spec: 3 caps in bounding/effective/permitted (and ambient, which it cannot grant:
    no inheritable), NOFILE 1024, noNewPrivileges, root."""
    assert runc_process["capabilities"]["bounding"] == DEFAULT3
    log, warnings = run(runc_process)
    keep = mask(*DEFAULT3)
    assert log == [
        ("setrlimit", (7, 1024, 1024, "RLIMIT_NOFILE")),
        *drops(keep),
        ("setgroups", ([],)),
        ("setresgid", (0,)),
        ("prctl", (PR_SET_KEEPCAPS, 1)),
        ("setresuid", (0,)),
        ("prctl", (PR_SET_KEEPCAPS, 0)),
        ("umask", (0o022,)),
        ("capset", (keep, keep, 0)),  # inheritable stays empty: not configured (S14)
        ("prctl", (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)),
        ("prctl", (PR_SET_NO_NEW_PRIVS, 1)),
    ]
    assert len(drops(keep)) == 38
    # Its ambient caps cannot be raised (no inheritable) but, for root, execve grants the whole
    # bounding set anyway: the program gets them, nothing to warn about.
    assert warnings == []


def test_runc_default_caps_for_a_non_root_user(runc_process):
    """The same caps for uid 1000: without ambient, execve leaves it none — that is worth a word."""
    log, warnings = run(dict(runc_process, user={"uid": 1000, "gid": 1000}))
    keep = mask(*DEFAULT3)
    assert ("capset", (keep, keep, 0)) in log
    assert warnings == ["process.capabilities.ambient: ignoring CAP_KILL, CAP_NET_BIND_SERVICE, "
                        "CAP_AUDIT_WRITE: an ambient capability must also be permitted and "
                        "inheritable"]


def test_non_root_user_with_caps():
    caps = ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]
    log, warnings = run({
        "user": {"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 0o027},
        "capabilities": {"bounding": caps + ["CAP_KILL"], "effective": caps, "permitted": caps},
        "oomScoreAdj": 500})
    keep, m = mask(*caps, "CAP_KILL"), mask(*caps)
    assert warnings == []
    assert log == [
        ("write_fd", ("/proc/self/oom_score_adj", "500")),
        *drops(keep),
        ("setgroups", ([10, 20],)),
        ("setresgid", (1001,)),
        ("prctl", (PR_SET_KEEPCAPS, 1)),
        ("setresuid", (1000,)),
        ("prctl", (PR_SET_KEEPCAPS, 0)),
        ("umask", (0o027,)),
        ("capset", (m, m, 0)),
        ("prctl", (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)),
    ]


def test_ambient_caps_raised_after_capset():
    caps = ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
    log, warnings = run({"user": {"uid": 1000, "gid": 1000},
                         "capabilities": dict.fromkeys(SETS, caps)})
    m = mask(*caps)
    assert warnings == []
    assert log[-4:] == [
        ("capset", (m, m, m)),
        ("prctl", (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)),
        ("prctl", (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 5)),
        ("prctl", (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 10)),
    ]


def test_absent_capabilities_drop_everything():
    """As runc 1.1.5: no process.capabilities = no capabilities at all."""
    log, warnings = run({"user": {"uid": 0, "gid": 0}})
    assert warnings == []
    assert log[:41] == drops(0)
    assert log[41:] == [
        ("setgroups", ([],)), ("setresgid", (0,)), ("prctl", (PR_SET_KEEPCAPS, 1)),
        ("setresuid", (0,)), ("prctl", (PR_SET_KEEPCAPS, 0)), ("umask", (0o022,)),
        ("capset", (0, 0, 0)), ("prctl", (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL))]


def test_bounding_follows_the_host_kernel(monkeypatch):
    monkeypatch.setattr(caps_mod, "_host_last_cap", 37)  # a 5.4 kernel: no PERFMON, BPF, CR
    log, warnings = run({"capabilities": {"bounding": ["CAP_KILL", "CAP_BPF"]}})
    assert [c for c in log if c[1][:1] == (PR_CAPBSET_DROP,)] == \
        [("prctl", (PR_CAPBSET_DROP, n)) for n in range(38) if n != 5]
    assert warnings == ["process.capabilities: ignoring unknown or unavailable capabilities: "
                        "CAP_BPF (this kernel's cap_last_cap is 37)"]


def test_unset_fields_are_left_alone():
    log, _ = run({"capabilities": {}})
    names = [c[0] for c in log]
    assert "write_fd" not in names and "setrlimit" not in names  # oom_score_adj, rlimits unset
    assert ("prctl", (PR_SET_NO_NEW_PRIVS, 1)) not in log


# ---------------------------------------------------------------- user

def test_setgroups_denied():
    sys = RecordingSyscalls()
    security.switch_user(sys, {"uid": 5, "gid": 6}, allow_setgroups=False)
    assert [c[0] for c in sys.log] == ["setresgid", "prctl", "setresuid", "prctl", "umask"]
    with pytest.raises(PermissionError) as e:
        security.switch_user(RecordingSyscalls(), {"uid": 5, "gid": 6, "additionalGids": [7]},
                             allow_setgroups=False)
    assert e.value.strerror.startswith("process.user.additionalGids: setgroups is denied")


@pytest.mark.parametrize("call, message", [
    ("setgroups", "process.user.additionalGids: setgroups [7]: Operation not permitted"),
    ("setresgid", "process.user.gid: setresgid 6: Operation not permitted"),
    ("setresuid", "process.user.uid: setresuid 5: Operation not permitted"),
])
def test_user_errors_name_the_field(call, message):
    with pytest.raises(PermissionError) as e:
        security.switch_user(FailOn(call), {"uid": 5, "gid": 6, "additionalGids": [7]}, True)
    assert e.value.strerror == message


# ---------------------------------------------------------------- errors name the JSON path

def test_capability_errors_name_the_field():
    with pytest.raises(PermissionError) as e:
        security.apply(FailOn("prctl", when=lambda op, *a: op == PR_CAPBSET_DROP), {})
    assert e.value.strerror == \
        "process.capabilities.bounding: PR_CAPBSET_DROP CAP_CHOWN: Operation not permitted"
    with pytest.raises(PermissionError) as e:
        security.apply(FailOn("capset"), {})
    assert e.value.strerror == "process.capabilities: capset: Operation not permitted"
    all5 = dict.fromkeys(SETS, ["CAP_KILL"])
    with pytest.raises(PermissionError) as e:
        raise_fails = FailOn("prctl",
                             when=lambda *a: a[:2] == (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE))
        security.apply(raise_fails, {"capabilities": all5})
    assert e.value.strerror == \
        "process.capabilities.ambient: PR_CAP_AMBIENT_RAISE CAP_KILL: Operation not permitted"
    with pytest.raises(OSError) as e:
        security.apply(FailOn("prctl", errno.EINVAL, when=lambda op, *a: op == PR_SET_NO_NEW_PRIVS),
                       {"noNewPrivileges": True})
    assert e.value.strerror == \
        "process.noNewPrivileges: prctl PR_SET_NO_NEW_PRIVS: Invalid argument"


def test_oom_score_adj_error():
    with pytest.raises(PermissionError) as e:
        security.apply_oom_score_adj(FailOn("write_fd", errno.EACCES), -1000)
    assert e.value.strerror == "process.oomScoreAdj: write_fd: Permission denied"


# ---------------------------------------------------------------- rlimits

def test_rlimits_in_order_and_by_pid():
    rls = [{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
           {"type": "RLIMIT_CORE", "soft": 0, "hard": 2**64 - 1}]
    sys = RecordingSyscalls()
    security.apply_rlimits(sys, rls)
    security.apply_rlimits(sys, rls, pid=4242)
    assert sys.log == [
        ("setrlimit", (7, 512, 1024, "RLIMIT_NOFILE")),
        ("setrlimit", (4, 0, 2**64 - 1, "RLIMIT_CORE")),
        ("prlimit", (4242, 7, 512, 1024, "RLIMIT_NOFILE")),
        ("prlimit", (4242, 4, 0, 2**64 - 1, "RLIMIT_CORE")),
    ]


def test_rlimit_numbers_match_the_resource_module():
    assert len(security.RLIMITS) == 16
    for name, number in security.RLIMITS.items():
        assert getattr(resource, name, number) == number, name  # (resource lacks RLIMIT_LOCKS)


def test_rlimit_config_errors_before_any_change():
    sys = RecordingSyscalls()
    with pytest.raises(SpecError, match=r"^process.rlimits\[1\].type: unknown rlimit 'RLIMIT_FOO'"):
        security.apply_rlimits(sys, [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                                     {"type": "RLIMIT_FOO", "soft": 1, "hard": 1}])
    with pytest.raises(SpecError, match=r"^process.rlimits\[2\].type: duplicate RLIMIT_NOFILE "
                                        r"\(also process.rlimits\[0\]\)"):
        security.apply_rlimits(sys, [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                                     {"type": "RLIMIT_CORE", "soft": 1, "hard": 1},
                                     {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}])
    assert sys.log == []


def test_rlimit_eperm_names_the_entry():
    # The message of Syscalls.setrlimit, prefixed with the JSON path (the real call: integration).
    sys = FailOn("setrlimit", when=lambda no, *a: no == 7,
                 message="setrlimit RLIMIT_NOFILE 1048576/1048576: Operation not permitted")
    big = {"type": "RLIMIT_NOFILE", "soft": 1048576, "hard": 1048576}
    with pytest.raises(PermissionError) as e:
        security.apply(sys, {"rlimits": [big]})
    assert e.value.strerror == \
        "process.rlimits[0]: setrlimit RLIMIT_NOFILE 1048576/1048576: Operation not permitted"
    assert [c[0] for c in sys.log] == ["setrlimit"]  # nothing after the failure


def test_import_is_light():
    """On every container start: beyond mrunc.linux and mrunc.spec (loaded by then anyway), this
    package imports only itself — no enum, dataclasses or resource."""
    code = ("import sys, mrunc.linux, mrunc.spec; before = set(sys.modules); "
            "import mrunc.security; print(*sorted(set(sys.modules) - before))")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([pysys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=root)
    assert {m for m in out.stdout.split() if not m.startswith("mrunc.security")} <= {"errno"}


def test_setgroups_is_read_before_the_filter_is_loaded(monkeypatch):
    """Without noNewPrivileges the filter goes in before the user change; reading
    /proc/self/setgroups (openat2) must come first: older profiles refuse openat2 with EPERM."""
    order = []
    monkeypatch.setattr(security, "setgroups_allowed", lambda proc=None: order.append("read") or True)

    class Filter:
        def load(self, sys):
            order.append("filter")
    security.apply(RecordingSyscalls(), {"user": {"uid": 0, "gid": 0}}, seccomp=Filter(),
                   warn=lambda m: None)
    assert order == ["read", "filter"]
