"""linux.seccomp without root: the named check against a corpus of broken profiles, and the
translation from OCI JSON to libseccomp calls, checked on a recording fake of the library."""
import copy
import json
import os
import socket
import tempfile

import pytest

from mrunc import spec
from mrunc.errors import SpecError
from mrunc.linux import RecordingSyscalls
from mrunc.linux import seccomp as lsc
from mrunc.security import seccomp as sc

ALLOW = lsc.ACTIONS["SCMP_ACT_ALLOW"][0]
ERRNO = lsc.ACTIONS["SCMP_ACT_ERRNO"][0]


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "rootfs").mkdir()
    return str(tmp_path)


def with_seccomp(profile):
    config = spec.default_config()
    config["linux"]["seccomp"] = profile
    return config


def error_of(profile, bundle):
    with pytest.raises(SpecError) as info:
        spec.validate(with_seccomp(profile), bundle, warn=lambda m: None)
    return str(info.value)


GOOD = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "defaultErrnoRet": 38,
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG"],
    "listenerPath": "/run/agent.sock",
    "listenerMetadata": "hello",
    "syscalls": [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["ptrace"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
    ],
}


def test_good_profile_passes(bundle):
    spec.validate(with_seccomp(GOOD), bundle, warn=lambda m: pytest.fail(m))


def test_null_seccomp_is_absent(bundle):
    spec.validate(with_seccomp(None), bundle, warn=lambda m: None)


def test_everything_features_advertises_is_accepted(bundle):
    doc = spec.features()["linux"]["seccomp"]
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": doc["archs"],
               "flags": doc["knownFlags"], "listenerPath": "/run/a.sock",
               "syscalls": [{"names": ["getpid"], "action": a} for a in doc["actions"]]}
    profile["syscalls"] += [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO",
                             "args": [{"index": 1, "value": 1, "op": op}]} for op in doc["operators"]]
    spec.validate(with_seccomp(profile), bundle, warn=lambda m: None)


def _rule(**kw):
    return {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", **kw}


BAD = [
    ("not an object", "SCMP_ACT_ALLOW", "linux.seccomp: expected object"),
    ("no default", {}, "linux.seccomp.defaultAction: required"),
    ("unknown default", {"defaultAction": "SCMP_ACT_FOO"},
     'linux.seccomp.defaultAction: unknown action "SCMP_ACT_FOO"'),
    ("default notify", {"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/a"},
     "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"),
    ("errnoRet with allow", {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1},
     "linux.seccomp.defaultErrnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_ALLOW"),
    ("errnoRet with kill", {"defaultAction": "SCMP_ACT_KILL_PROCESS", "defaultErrnoRet": 1},
     "linux.seccomp.defaultErrnoRet: only valid with"),
    ("errnoRet negative", {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1},
     "linux.seccomp.defaultErrnoRet: expected unsigned 16-bit integer, got -1"),
    ("errnoRet string", {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": "EPERM"},
     'linux.seccomp.defaultErrnoRet: expected integer, got "EPERM"'),
    ("unknown arch", {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "x86_64"]},
     'linux.seccomp.architectures[1]: unknown architecture "x86_64"'),
    ("arch list not array", {"defaultAction": "SCMP_ACT_ALLOW", "architectures": "SCMP_ARCH_X86"},
     "linux.seccomp.architectures: expected array"),
    ("unknown flag", {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FOO"]},
     'linux.seccomp.flags[0]: unknown flag "SECCOMP_FILTER_FLAG_FOO"'),
    ("metadata without listener", {"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"},
     "linux.seccomp.listenerMetadata: set without linux.seccomp.listenerPath"),
    ("listener path too long", {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/" + "a" * 120},
     "linux.seccomp.listenerPath: longer than a unix socket path"),
    ("syscalls not array", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}},
     "linux.seccomp.syscalls: expected array"),
    ("no names", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]},
     "linux.seccomp.syscalls[0].names: required"),
    ("empty names", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [_rule(names=[])]},
     "linux.seccomp.syscalls[0].names: must have at least one entry"),
    ("empty name", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [_rule(names=["read", ""])]},
     "linux.seccomp.syscalls[0].names[1]: must not be empty"),
    ("no action", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"]}]},
     "linux.seccomp.syscalls[0].action: required"),
    ("bad action", {"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [_rule(), _rule(), _rule(), _rule(action="SCMP_ACT_FOO")]},
     'linux.seccomp.syscalls[3].action: unknown action "SCMP_ACT_FOO"'),
    ("rule errnoRet with log", {"defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [_rule(action="SCMP_ACT_LOG", errnoRet=1)]},
     "linux.seccomp.syscalls[0].errnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not SCMP_ACT_LOG"),
    ("rule errnoRet too big", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [_rule(errnoRet=70000)]},
     "linux.seccomp.syscalls[0].errnoRet: expected unsigned 16-bit integer, got 70000"),
    ("notify without listener", {"defaultAction": "SCMP_ACT_ALLOW",
                                 "syscalls": [_rule(action="SCMP_ACT_NOTIFY")]},
     "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"),
    ("notify on sendmsg", {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
                           "syscalls": [_rule(action="SCMP_ACT_NOTIFY", names=["mkdir", "sendmsg"])]},
     'linux.seccomp.syscalls[0].names[1]: SCMP_ACT_NOTIFY cannot be used for "sendmsg"'),
    ("args not array", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [_rule(args={})]},
     "linux.seccomp.syscalls[0].args: expected array"),
    ("arg without index", {"defaultAction": "SCMP_ACT_ALLOW",
                           "syscalls": [_rule(args=[{"value": 1, "op": "SCMP_CMP_EQ"}])]},
     "linux.seccomp.syscalls[0].args[0].index: required"),
    ("arg index 6", {"defaultAction": "SCMP_ACT_ALLOW",
                     "syscalls": [_rule(args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}])]},
     "linux.seccomp.syscalls[0].args[0].index: must be between 0 and 5, got 6"),
    ("arg without value", {"defaultAction": "SCMP_ACT_ALLOW",
                           "syscalls": [_rule(args=[{"index": 0, "op": "SCMP_CMP_EQ"}])]},
     "linux.seccomp.syscalls[0].args[0].value: required"),
    ("arg value negative", {"defaultAction": "SCMP_ACT_ALLOW",
                            "syscalls": [_rule(args=[{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}])]},
     "linux.seccomp.syscalls[0].args[0].value: expected unsigned 64-bit integer, got -1"),
    ("arg valueTwo too big", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [_rule(args=[
        {"index": 0, "value": 1, "valueTwo": 2**64, "op": "SCMP_CMP_MASKED_EQ"}])]},
     "linux.seccomp.syscalls[0].args[0].valueTwo: expected unsigned 64-bit integer"),
    ("arg without op", {"defaultAction": "SCMP_ACT_ALLOW",
                        "syscalls": [_rule(args=[{"index": 0, "value": 1}])]},
     "linux.seccomp.syscalls[0].args[0].op: required"),
    ("bad op", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [_rule(args=[
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 1, "op": "SCMP_CMP_LIKE"}])]},
     'linux.seccomp.syscalls[0].args[1].op: unknown operator "SCMP_CMP_LIKE"'),
]


@pytest.mark.parametrize("name,profile,expect", BAD, ids=[b[0] for b in BAD])
def test_bad_profile(bundle, name, profile, expect):
    assert error_of(profile, bundle).startswith(expect)


def test_seccomp_is_no_longer_unsupported():
    assert "linux.seccomp" not in spec.UNSUPPORTED


# ---- translation: OCI JSON -> libseccomp calls ------------------------------------------------------

class FakeLib:
    """Records what a Seccomp asks of libseccomp; knows a handful of x86_64 and x86 syscalls."""
    NR = {"read": 0, "write": 1, "mkdir": 83, "personality": 135, "clone": 56, "socket": 41,
          "ptrace": 101, "getpid": 39, "socketcall": -101, "futex_waitv": 449}
    NR_X86 = {"read": 3, "write": 4, "mkdir": 39, "personality": 136, "clone": 120,
              "socket": 359, "ptrace": 26, "getpid": 20, "socketcall": 102, "futex_waitv": 449}
    ARCH = {"SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_X86": 0x40000003}
    version_string = "9.9.9"
    PROGRAM = b"\x06\x00\x00\x00\x00\x00\xff\x7f"  # ret ALLOW: what libseccomp would generate

    def __init__(self, api=6, kernel_flags=0x3F):
        self.calls, self.api, self.kernel_flags = [], api, kernel_flags

    def api_level(self):
        return self.api

    def flag_supported(self, bit):
        return bool(self.kernel_flags & bit)

    def resolve_syscall(self, name):
        return self.NR.get(name)

    def resolve_syscall_arch(self, token, name):
        return (self.NR if token == 0xC000003E else self.NR_X86).get(name)

    def resolve_arch(self, name):
        return self.ARCH.get(name)

    def new_filter(self, default):
        self.calls.append(("init", hex(default)))
        lib = self

        class F:
            def set_attr(self, attr, value):
                lib.calls.append(("attr", attr, value))

            def add_arch(self, token):
                lib.calls.append(("arch", hex(token)))

            def add_rule(self, action, nr, conds=()):
                lib.calls.append(("rule", hex(action), nr, [tuple(c) for c in conds]))

            def export_bpf(self):
                lib.calls.append(("export_bpf",))
                return lib.PROGRAM

        return F()


def build(profile, **kw):
    lib = FakeLib(**kw)
    return sc.Seccomp(profile, lib=lib), lib.calls


X86_64_ONLY = dict(GOOD, architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])


def test_translation_calls():
    s, calls = build(X86_64_ONLY)
    eq, masked = lsc.OPERATORS["SCMP_CMP_EQ"], lsc.OPERATORS["SCMP_CMP_MASKED_EQ"]
    assert calls == [
        ("init", hex(ERRNO | 38)),
        ("attr", lsc.ATTR_CTL_NNP, 0),              # no_new_privs is the config's, not libseccomp's
        ("arch", "0xc000003e"), ("arch", "0x40000003"),
        ("rule", hex(ALLOW), 0, []), ("rule", hex(ALLOW), 1, []),
        ("rule", hex(lsc.ACTIONS["SCMP_ACT_NOTIFY"][0]), 83, []),
        ("rule", hex(ALLOW), 135, [(0, eq, 0, 0)]),
        ("rule", hex(ALLOW), 56, [(0, masked, 2114060288, 0)]),
        ("rule", hex(0x7FF00000 | 7), 101, []),   # TRACE with errnoRet 7
    ]
    assert s.notify and s.rules == 6 and s.skipped == []
    assert s.flags == 2 | lsc.FLAG_NEW_LISTENER   # LOG, and a listener for the NOTIFY rule
    assert s.last == {}  # the default already answers ENOSYS (38): no stub


def test_unknown_arch_for_the_library_is_a_clear_error():
    with pytest.raises(OSError, match=r"linux.seccomp.architectures\[2\]: SCMP_ARCH_X32 is not known "
                                      r"to libseccomp 9.9.9"):
        build(GOOD)


def test_default_errno_is_eperm():
    _, calls = build({"defaultAction": "SCMP_ACT_ERRNO",
                      "syscalls": [{"names": ["ptrace"], "action": "SCMP_ACT_TRACE"}]})
    assert calls[0] == ("init", hex(ERRNO | 1))
    assert calls[-1] == ("rule", hex(0x7FF00000 | 1), 101, [])


def test_kill_means_kill_thread():
    _, calls = build({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_KILL"},
        {"names": ["socket"], "action": "SCMP_ACT_KILL_PROCESS"},
        {"names": ["getpid"], "action": "SCMP_ACT_TRAP"},
        {"names": ["read"], "action": "SCMP_ACT_LOG"}]})
    assert [c[1] for c in calls if c[0] == "rule"] == ["0x0", "0x80000000", "0x30000", "0x7ffc0000"]


def test_rules_equal_to_the_default_are_skipped():
    """libseccomp refuses them; runc skips them silently (errno values count)."""
    s, calls = build({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]})
    assert [c for c in calls if c[0] == "rule"] == [("rule", hex(ERRNO | 13), 0, [])]


def test_unknown_syscall_names_are_skipped():
    debug = []
    s = sc.Seccomp({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "future_call_2077", "write"], "action": "SCMP_ACT_ALLOW"}]},
        lib=FakeLib(), debug=debug.append)
    assert s.skipped == ["future_call_2077"] and s.rules == 2
    assert "future_call_2077" in debug[0]
    assert "1 unknown names skipped" in s.summary()


def test_pseudo_syscalls_are_rules_too():
    """socketcall is x86-only: libseccomp gives a negative pseudo-number, which it maps per arch."""
    _, calls = build({"defaultAction": "SCMP_ACT_ALLOW",
                      "syscalls": [{"names": ["socketcall"], "action": "SCMP_ACT_ERRNO"}]})
    assert calls[-1] == ("rule", hex(ERRNO | 1), -101, [])


def test_two_conditions_on_one_argument_become_two_rules():
    """libseccomp cannot AND two comparisons of the same argument: runc adds one rule each."""
    ne, gt, eq = (lsc.OPERATORS[o] for o in ("SCMP_CMP_NE", "SCMP_CMP_GT", "SCMP_CMP_EQ"))
    _, calls = build({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 8, "op": "SCMP_CMP_NE"}, {"index": 0, "value": 100, "op": "SCMP_CMP_GT"}]},
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [
            {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 1, "op": "SCMP_CMP_EQ"}]}]})
    rules = [c for c in calls if c[0] == "rule"]
    assert rules == [("rule", hex(ERRNO | 1), 135, [(0, ne, 8, 0)]),
                     ("rule", hex(ERRNO | 1), 135, [(0, gt, 100, 0)]),
                     ("rule", hex(ERRNO | 1), 41, [(0, eq, 2, 0), (1, eq, 1, 0)])]


def test_long_profiles_ask_for_the_binary_tree():
    _, calls = build({"defaultAction": "SCMP_ACT_ERRNO",
                      "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}] * 33})
    assert ("attr", lsc.ATTR_CTL_OPTIMIZE, 2) in calls


# ---- flags: the kernel's bits, checked against the running kernel ---------------------------------

def _flags(flags, notify=False, **kw):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "flags": flags, "listenerPath": "/a",
               "syscalls": [{"names": ["mkdir"],
                             "action": "SCMP_ACT_NOTIFY" if notify else "SCMP_ACT_ERRNO"}]}
    return build(profile, **kw)[0].flags


def test_flags_are_the_kernels_bits():
    assert _flags(["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]) == 2 | 4
    assert _flags(["SECCOMP_FILTER_FLAG_TSYNC"]) == 1
    assert _flags([], notify=True) == lsc.FLAG_NEW_LISTENER


def test_tsync_with_a_listener_needs_tsync_esrch():
    assert _flags(["SECCOMP_FILTER_FLAG_TSYNC"], notify=True) == 1 | 8 | 16


def test_wait_killable_recv_only_with_a_listener():
    assert _flags(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"], notify=True) == 8 | 32
    assert _flags(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]) == 0


def test_flag_the_kernel_lacks_is_a_clear_error():
    with pytest.raises(OSError, match=r"linux.seccomp.flags\[1\]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV "
                                      r"is not supported by this kernel"):
        _flags(["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
               kernel_flags=0x1F)


def test_notify_needs_api_level_6():
    with pytest.raises(OSError, match="SCMP_ACT_NOTIFY needs libseccomp"):
        build({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
               "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}, api=5)


# ---- the ENOSYS stub ----------------------------------------------------------------------------------

def run_bpf(program, nr, arch):
    """A tiny classic-BPF interpreter, enough for the stub: returns the RET value, or None when
    the stub falls through to the program behind it."""
    import struct
    insns = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    data = {0: nr, 4: arch}
    pc, acc = 0, 0
    while pc < len(insns):
        op, jt, jf, k = insns[pc]
        if op == 0x20:
            acc = data[k]
        elif op == 0x06:
            return k
        elif op == 0x05:
            pc += k
        else:
            taken = {0x15: acc == k, 0x25: acc > k, 0x45: bool(acc & k)}[op]
            pc += jt if taken else jf
        pc += 1
    return None


ENOSYS_RET = ERRNO | 38
X86, X86_64, X32 = 0x40000003, lsc.ARCH_X86_64, lsc.ARCH_X32


def test_stub_x86_64_x32_and_x86():
    stub = lsc.enosys_stub({X86_64: 456, X32: 0x40000000 | 440, X86: 462})
    assert run_bpf(stub, 456, X86_64) is None and run_bpf(stub, 457, X86_64) == ENOSYS_RET
    assert run_bpf(stub, 0, X86_64) is None
    assert run_bpf(stub, 0x40000000 | 440, X86_64) is None          # x32: own table
    assert run_bpf(stub, 0x40000000 | 441, X86_64) == ENOSYS_RET
    assert run_bpf(stub, 462, X86) is None and run_bpf(stub, 463, X86) == ENOSYS_RET
    assert run_bpf(stub, 10**6, 0xC00000B7) is None                 # aarch64: not listed


def test_stub_without_x32_leaves_x32_calls_to_the_filter():
    stub = lsc.enosys_stub({X86_64: 300})
    assert run_bpf(stub, 0x40000000 | 5, X86_64) is None and run_bpf(stub, 301, X86_64) == ENOSYS_RET


def test_stub_s390x_syscall_0_is_enosys():
    stub = lsc.enosys_stub({0x80000016: 400})
    assert run_bpf(stub, 0, 0x80000016) == ENOSYS_RET and run_bpf(stub, 1, 0x80000016) is None


def _stubbed(profile):
    return build(dict({"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]}, **profile))[0]


def test_stub_uses_the_highest_syscall_any_rule_names_per_arch():
    s = _stubbed({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "mkdir"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["socket"], "action": "SCMP_ACT_KILL"}]})
    assert s.last == {X86_64: 83, X86: 359}   # mkdir on x86_64, socket on x86
    assert s.program().startswith(lsc.enosys_stub(s.last))
    assert s.program().endswith(FakeLib.PROGRAM)
    assert "ENOSYS above the newest syscall named" in s.summary()


@pytest.mark.parametrize("profile", [
    {"defaultAction": "SCMP_ACT_ALLOW"},
    {"defaultAction": "SCMP_ACT_LOG"},
    {"defaultAction": "SCMP_ACT_TRACE"},
    {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38},
], ids=["allow", "log", "trace", "errno-enosys"])
def test_no_stub_when_the_default_lets_calls_through_or_says_enosys(profile):
    s = _stubbed(dict(profile, syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_KILL"}]))
    assert s.last == {} and s.program() == FakeLib.PROGRAM


def test_no_stub_without_architectures():
    """runc only stubs the architectures a profile lists."""
    s = build({"defaultAction": "SCMP_ACT_KILL_PROCESS",
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]})[0]
    assert s.last == {}


# ---- loading ------------------------------------------------------------------------------------------

class FakeSys:
    def __init__(self, fd=None, error=None):
        self.log, self.fd, self.error = [], fd, error

    def seccomp_load(self, program, flags, what):
        if self.error:
            raise OSError(self.error, os.strerror(self.error))
        self.log.append((program, flags, what))
        return self.fd


def test_load_once_and_hand_the_listener_fd_over():
    s, calls = build({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/a",
                      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})
    r, w = os.pipe()
    os.close(r)
    got = []
    s.on_notify_fd = lambda fd: got.append(os.fstat(fd).st_ino)
    sys = FakeSys(fd=w)
    s.load(sys)
    s.load(sys)
    assert len(sys.log) == 1 and s.loaded
    program, flags, what = sys.log[0]
    assert program == FakeLib.PROGRAM and flags == lsc.FLAG_NEW_LISTENER
    assert what == "default SCMP_ACT_ALLOW, 1 rules"
    assert len(got) == 1
    with pytest.raises(OSError):
        os.fstat(w)  # init closed its copy: the program must not inherit the listener


def test_load_error_names_the_missing_capability():
    s, _ = build({"defaultAction": "SCMP_ACT_ALLOW"})
    with pytest.raises(OSError, match="without process.noNewPrivileges, loading a filter needs CAP_SYS_ADMIN"):
        s.load(FakeSys(error=13))
    assert not s.loaded


def test_a_program_the_kernel_cannot_take_is_a_clear_error(monkeypatch):
    s, _ = build({"defaultAction": "SCMP_ACT_ALLOW"})
    monkeypatch.setattr(FakeLib, "PROGRAM", b"\0" * 8 * 4097)
    with pytest.raises(OSError, match="the filter is 4097 BPF instructions, the kernel takes at most 4096"):
        s.load(FakeSys())


def test_syscalls_records_the_load():
    sys = RecordingSyscalls()
    sys.seccomp_load(b"\0" * 80, 2 | 8, "what")
    assert sys.log == [("seccomp_load", (b"\0" * 80, 10, "what"))]
    assert lsc.flag_names(2 | 8) == "LOG|NEW_LISTENER"


# ---- the order in the security phase ----------------------------------------------------------------

class Marker:
    """Stands for a built Seccomp: records where in the call sequence it was loaded."""

    def __init__(self):
        self.loaded = False

    def load(self, sys):
        if not self.loaded:
            sys._rec("SECCOMP")
            self.loaded = True


def _sequence(nnp):
    from mrunc import security
    sys = RecordingSyscalls()
    m = Marker()
    security.apply(sys, {"user": {"uid": 1000, "gid": 1000}, "noNewPrivileges": nnp,
                         "capabilities": {"bounding": ["CAP_KILL"]}}, warn=lambda w: None, seccomp=m)
    m.load(sys)  # what security_phase does last
    return [n if n != "prctl" else f"prctl{a[0]}" for n, a in sys.log]


def test_without_no_new_privs_the_filter_goes_in_before_the_caps_are_dropped():
    seq = _sequence(False)
    assert seq.index("SECCOMP") < seq.index("prctl24")  # PR_CAPBSET_DROP
    assert seq.index("SECCOMP") < seq.index("setresuid") < seq.index("capset")
    assert "prctl38" not in seq


def test_with_no_new_privs_the_filter_goes_in_last():
    seq = _sequence(True)
    assert seq[-2:] == ["prctl38", "SECCOMP"]  # PR_SET_NO_NEW_PRIVS, then the filter


def test_security_phase_loads_after_the_program_is_found(monkeypatch):
    from mrunc.process import init
    order = []
    monkeypatch.setattr(init, "scheduling", lambda sys, config: None)
    monkeypatch.setattr(init, "check_cwd", lambda cwd: order.append("check cwd") or (1, 2))
    monkeypatch.setattr(init, "enter_cwd", lambda cwd, checked: order.append("cwd"))
    monkeypatch.setattr(init, "find_executable", lambda n, env: order.append("lookup") or "/bin/sh")

    class S:
        def __init__(self):
            self.loaded, self.on_notify_fd = False, None

        def load(self, sys):
            order.append("load")
            self.loaded = True

    monkeypatch.setattr(init, "_build_seccomp", lambda sys, cfg: S())
    monkeypatch.setattr("mrunc.security.apply", lambda sys, process, seccomp=None, **kw: order.append("apply"))
    config = {"process": {"args": ["sh"], "noNewPrivileges": True},
              "linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}}
    assert init.security_phase(RecordingSyscalls(), config) == "/bin/sh"
    # the cwd is checked (getcwd) before apply(), which loads the filter without noNewPrivileges
    assert order == ["check cwd", "apply", "cwd", "lookup", "load"]


# ---- the seccomp agent's message --------------------------------------------------------------------

def test_listener_message_shape():
    config = {"linux": {"seccomp": {"listenerPath": "/x", "listenerMetadata": "meta"}}}
    state = {"ociVersion": "1.3.0", "id": "c1", "status": "creating", "pid": 42, "bundle": "/b",
             "annotations": {}}
    msg = json.loads(sc.listener_message(config, state, 42))
    assert msg == {"ociVersion": "1.3.0", "fds": ["seccompFd"], "pid": 42, "metadata": "meta",
                   "state": state}


def test_send_to_listener_passes_the_fd(tmp_path):
    path = str(tmp_path / "agent.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    r, w = os.pipe()
    config = {"linux": {"seccomp": {"listenerPath": path}}}
    try:
        sc.send_to_listener(config, {"id": "c1"}, 7, r)
        conn, _ = srv.accept()
        data, fds, _, _ = socket.recv_fds(conn, 65536, 4)
        conn.close()
        assert json.loads(data)["state"] == {"id": "c1"} and json.loads(data)["metadata"] == ""
        assert len(fds) == 1 and os.fstat(fds[0]).st_ino == os.fstat(r).st_ino
        os.close(fds[0])
    finally:
        srv.close()
        os.close(r)
        os.close(w)


def test_send_to_missing_listener_names_the_path(tmp_path):
    path = str(tmp_path / "nobody.sock")
    with pytest.raises(OSError, match=f"linux.seccomp.listenerPath {path}: No such file"):
        sc.send_to_listener({"linux": {"seccomp": {"listenerPath": path}}}, {}, 1, 0)


# ---- the real library (no root needed: nothing is loaded) -------------------------------------------

def test_real_libseccomp_builds_a_podman_sized_profile():
    lib = lsc.load_library()
    assert lib.version >= (2, 5, 0)
    assert lib.resolve_syscall("mkdir") is not None and lib.resolve_syscall("no_such_call") is None
    assert lib.resolve_arch("SCMP_ARCH_X86_64") and lib.resolve_arch("SCMP_ARCH_NOPE") is None
    from seccomp_profile import default_profile  # tests/seccomp_profile.py
    s = sc.Seccomp(default_profile())
    assert s.rules > 250
    with tempfile.TemporaryFile() as f:  # a pipe would fill up: the text is ~100 KB
        s.filter.export_pfc(f.fileno())
        f.seek(0)
        text = f.read()
    assert b'filter for syscall "mkdir"' in text and b"action ERRNO(1)" in text
    program = s.program()
    assert len(program) % 8 == 0 and program.startswith(lsc.enosys_stub(s.last))
    named = [lib.resolve_syscall_arch(lsc.ARCH_X86_64, n) for r in default_profile()["syscalls"]
             for n in r["names"]]
    assert s.last[lsc.ARCH_X86_64] == max(n for n in named if n is not None)  # the newest named
    assert s.last[lsc.ARCH_X32] & lsc.X32_SYSCALL_BIT
    s.filter.release()


def test_copy_does_not_share_state():
    a = copy.deepcopy(X86_64_ONLY)
    b = copy.deepcopy(a)
    build(a)
    assert a == b  # building never edits the config


# ---- exec's cache: the program as create (or the first exec) built it --------------------------------------

CFG = {"defaultAction": "SCMP_ACT_ERRNO",
       "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}


def _kept(tmp_path, cfg=CFG, bpf=FakeLib.PROGRAM * 3, flags=lsc.FLAG_NEW_LISTENER):
    path = str(tmp_path / sc.EXEC_CACHE)
    with open(path, "wb") as f:
        f.write(sc.Program(bpf, flags, "default SCMP_ACT_ERRNO, 1 rules").dump(cfg))
    os.chmod(path, 0o600)
    return path


def test_a_kept_program_reads_back_as_it_was_built(tmp_path):
    prog = sc.Program.read(_kept(tmp_path), copy.deepcopy(CFG))
    assert (prog.program(), prog.flags, prog.summary()) == \
        (FakeLib.PROGRAM * 3, lsc.FLAG_NEW_LISTENER, "default SCMP_ACT_ERRNO, 1 rules")


def test_a_kept_program_loads_like_a_built_one():
    """The same seccomp(2) call, flags and summary in the trace as Seccomp.load would make."""
    sys = RecordingSyscalls()
    prog = sc.Program(FakeLib.PROGRAM * 2, 0, "default SCMP_ACT_ERRNO, 1 rules")
    prog.load(sys)
    prog.load(sys)   # once only
    assert [tuple(c[:2]) for c in sys.log] == [
        ("seccomp_load", (FakeLib.PROGRAM * 2, 0, "default SCMP_ACT_ERRNO, 1 rules"))]
    assert prog.loaded


@pytest.mark.parametrize("spoil", ["other config", "group-writable", "symlink", "odd length",
                                   "no newline", "bad header", "incomplete header", "missing"])
def test_a_kept_program_not_to_be_trusted_is_ignored(tmp_path, spoil):
    path = _kept(tmp_path, bpf=FakeLib.PROGRAM + (b"\0" if spoil == "odd length" else b""))
    cfg = copy.deepcopy(CFG)
    if spoil == "other config":
        cfg["syscalls"][0]["names"] = ["write"]
    elif spoil == "group-writable":
        os.chmod(path, 0o620)
    elif spoil == "symlink":
        os.rename(path, path + ".real")
        os.symlink(path + ".real", path)
    elif spoil == "no newline":
        with open(path, "wb") as f:
            f.write(FakeLib.PROGRAM)
    elif spoil == "bad header":
        with open(path, "wb") as f:
            f.write(b"{not json\n" + FakeLib.PROGRAM)
    elif spoil == "incomplete header":
        with open(path, "wb") as f:
            f.write(json.dumps({"config": CFG, "flags": 0}).encode() + b"\n" + FakeLib.PROGRAM)
    elif spoil == "missing":
        os.unlink(path)
    assert sc.Program.read(path, cfg) is None


def test_exec_program_loads_the_kept_one_without_building(tmp_path, monkeypatch):
    _kept(tmp_path, cfg=sc.exec_key(CFG))
    monkeypatch.setattr(sc.Program, "build", classmethod(lambda cls, cfg: pytest.fail("built")))
    prog = sc.exec_program(copy.deepcopy(CFG), str(tmp_path), lambda p, d: pytest.fail("written"))
    assert prog.program() == FakeLib.PROGRAM * 3


def test_exec_program_builds_and_keeps_it_or_goes_on_without(tmp_path, monkeypatch):
    built = sc.Program(FakeLib.PROGRAM, 0, "built now")
    monkeypatch.setattr(sc.Program, "build", classmethod(lambda cls, cfg: built))
    written = {}
    assert sc.exec_program(CFG, str(tmp_path), written.__setitem__) is built
    assert written == {str(tmp_path / sc.EXEC_CACHE): built.dump(sc.exec_key(CFG))}

    def refuse(path, data):
        raise PermissionError(13, "read-only state dir")
    assert sc.exec_program(CFG, str(tmp_path), refuse) is built   # no cache: still a filter
