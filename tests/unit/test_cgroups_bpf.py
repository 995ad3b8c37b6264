"""The cgroup v2 device filter without a kernel: the rules replayed as v1 keeps them (the reference
evaluator), the eBPF program built from them run in a small interpreter written here, the listing,
the bpf(2) calls against a fake kernel, and how V2Manager.set uses it all. No root needed.

The reference evaluator itself is checked against a real v1 kernel, and the program against a
real v2 kernel, in tests/integration/test_cgroups_host.py.
"""

import errno
import json
import os
import random
import shutil
import struct
import subprocess
import sys

import pytest

from mrunc import linux
from mrunc.cgroups import devices_bpf as d
from mrunc.cgroups.v2 import V2Manager
from mrunc.errors import CgroupError

B, C = d.DEV_BLOCK, d.DEV_CHAR
M, R_, W = d.ACC_MKNOD, d.ACC_READ, d.ACC_WRITE
RW, RWM = R_ | W, R_ | W | M


def rule(allow, kind="a", major=None, minor=None, access="rwm"):
    r = {"allow": allow, "type": kind, "access": access}
    if major is not None:
        r["major"] = major
    if minor is not None:
        r["minor"] = minor
    return r


DENY_ALL = rule(False)
ALLOW_ALL = rule(True)
# runc's (and `mrunc spec`'s) default: linux.resources.devices = [deny all]
RUNC_DEFAULT = [{"allow": False, "access": "rwm"}]
# What container engines send: deny all, mknod of anything, then the usual devices.
ENGINE = [DENY_ALL,
          rule(True, "c", -1, -1, "m"), rule(True, "b", -1, -1, "m"),
          rule(True, "c", 1, 3, "rwm"),     # /dev/null
          rule(True, "c", 1, 5, "rwm"),     # /dev/zero
          rule(True, "c", 1, 7, "rwm"),     # /dev/full
          rule(True, "c", 5, 0, "rwm"),     # /dev/tty
          rule(True, "c", 1, 8, "rwm"),     # /dev/random
          rule(True, "c", 1, 9, "rwm"),     # /dev/urandom
          rule(True, "c", 136, None, "rwm"),  # /dev/pts/*
          rule(True, "c", 5, 2, "rwm"),     # /dev/ptmx
          rule(True, "c", 10, 200, "rwm")]  # /dev/net/tun


# ---- a tiny eBPF interpreter for the instructions the generator emits ---------------------------

U64 = (1 << 64) - 1


def sext(imm):
    return imm & U64        # a 32-bit immediate, sign-extended to 64 bits


def run(insns, dev_type, major, minor, access):
    """Run the program on one bpf_cgroup_dev_ctx; return r0. Fails on anything a verifier would
    reject in this subset: unknown opcode, uninitialised register, a jump out or backwards,
    a context read other than an aligned u32 field, falling off the end."""
    ctx = {0: (access << 16) | dev_type, 4: major, 8: minor}
    regs = {1: "ctx"}
    pc, steps = 0, 0
    while True:
        assert 0 <= pc < len(insns), f"pc {pc} outside the program"
        steps += 1
        assert steps <= len(insns), "a loop"
        i = insns[pc]
        assert 0 <= i.dst <= 10 and 0 <= i.src <= 10
        nxt = pc + 1
        if i.code == 0x61:                                  # ldx w: dst = *(u32 *)(src + off)
            assert regs.get(i.src) == "ctx" and i.off in ctx, i
            regs[i.dst] = ctx[i.off]
        elif i.code in (0x54, 0x74):                        # alu32 and/rsh imm
            v = regs[i.dst]
            assert isinstance(v, int), f"r{i.dst} read before it was set"
            v = (v & sext(i.imm)) if i.code == 0x54 else ((v & 0xFFFFFFFF) >> i.imm)
            regs[i.dst] = v & 0xFFFFFFFF                    # 32-bit ops zero the upper half
        elif i.code == 0xB7:                                # mov64 imm
            regs[i.dst] = sext(i.imm)
        elif i.code in (0x55, 0x45, 0x05):                  # jne / jset imm, ja
            assert i.off >= 0, "backward jump"
            if i.code == 0x05:
                taken = True
            else:
                v = regs.get(i.dst)
                assert isinstance(v, int), f"r{i.dst} read before it was set"
                taken = v != sext(i.imm) if i.code == 0x55 else bool(v & sext(i.imm))
            if taken:
                nxt = pc + 1 + i.off
                assert nxt < len(insns), "jump past the end"
        elif i.code == 0x95:                                # exit
            assert isinstance(regs.get(0), int), "exit with r0 unset"
            return regs[0]
        else:
            raise AssertionError(f"opcode {i.code:#x} not in the subset")
        pc = nxt


def agree(rules, majors, minors):
    """[(case, program says, evaluator says)] where they disagree."""
    insns = d.program(rules)
    state = d.replay(rules)
    bad = []
    for t in (B, C):
        for ma in majors:
            for mi in minors:
                for acc in range(1, 8):
                    want = d.allowed(state, t, ma, mi, acc)
                    got = run(insns, t, ma, mi, acc)
                    if got != int(want):
                        bad.append(((t, ma, mi, acc), got, want))
    return bad


def probe_numbers(rules):
    """Each number a rule names, its neighbours, and 0."""
    nums = {0}
    for r in rules:
        for key in ("major", "minor"):
            n = r.get(key)
            if n is not None and 0 <= n < (1 << 31):
                nums |= {n, n + 1, max(n - 1, 0)}
    return sorted(nums)


# ---- the reference evaluator: v1's semantics -------------------------------------------------

EVALUATOR_TABLE = [
    # (rules, (type, major, minor, access), allowed?)
    (RUNC_DEFAULT, (C, 1, 3, R_), False),
    ([], (C, 1, 3, M), False),                                       # [] also means deny all
    (ENGINE, (C, 1, 3, RW), True),
    (ENGINE, (C, 1, 3, R_), True),
    (ENGINE, (C, 1, 4, R_), False),
    (ENGINE, (C, 1, 4, M), True),                                    # c *:* m
    (ENGINE, (B, 8, 0, M), True),                                    # b *:* m
    (ENGINE, (B, 8, 0, R_), False),
    (ENGINE, (C, 136, 7, RW), True),                                 # c 136:* rwm
    (ENGINE, (B, 136, 7, R_), False),                                # a char rule is not a block one
    (ENGINE, (C, 10, 200, W), True),
    (ENGINE, (C, 10, 201, W), False),
    # allows for the same device merge: r then w gives rw
    ([DENY_ALL, rule(True, "c", 1, 3, "r"), rule(True, "c", 1, 3, "w")], (C, 1, 3, RW), True),
    # ...but not across a wildcard: each exception must grant everything asked by itself
    ([DENY_ALL, rule(True, "c", 1, None, "r"), rule(True, "c", 1, 3, "w")], (C, 1, 3, RW), False),
    ([DENY_ALL, rule(True, "c", 1, None, "r"), rule(True, "c", 1, 3, "w")], (C, 1, 3, W), True),
    ([DENY_ALL, rule(True, "c", 1, None, "r"), rule(True, "c", 1, 3, "w")], (C, 1, 9, R_), True),
    # a deny only trims an allow with exactly the same type, major and minor
    ([DENY_ALL, rule(True, "c", 1, 3, "rw"), rule(False, "c", 1, 3, "w")], (C, 1, 3, W), False),
    ([DENY_ALL, rule(True, "c", 1, 3, "rw"), rule(False, "c", 1, 3, "w")], (C, 1, 3, R_), True),
    ([DENY_ALL, rule(True, "c", 1, 3, "rw"), rule(False, "c", 1, None, "w")], (C, 1, 3, W), True),
    ([DENY_ALL, rule(True, "c", None, None, "rwm"), rule(False, "c", 5, 1)], (C, 5, 1, R_), True),
    # allow all, then denies: any shared access bit denies
    ([ALLOW_ALL, rule(False, "c", 1, 3, "r")], (C, 1, 3, RW), False),
    ([ALLOW_ALL, rule(False, "c", 1, 3, "r")], (C, 1, 3, W), True),
    ([ALLOW_ALL, rule(False, "c", 1, 3, "r")], (C, 1, 5, R_), True),
    ([ALLOW_ALL, rule(False, "b", None, 0, "w")], (B, 8, 0, W), False),
    ([ALLOW_ALL, rule(False, "b", None, 0, "w")], (B, 8, 1, W), True),
    # an allow in allow-all mode takes a deny back, exactly
    ([ALLOW_ALL, rule(False, "c", 1, 3), rule(True, "c", 1, 3, "rw")], (C, 1, 3, M), False),
    ([ALLOW_ALL, rule(False, "c", 1, 3), rule(True, "c", 1, 3, "rw")], (C, 1, 3, RW), True),
    # a rule for all devices starts over
    ([rule(True, "c", 1, 3), DENY_ALL, rule(True, "c", 1, 5)], (C, 1, 3, R_), False),
    ([rule(True, "c", 1, 3), DENY_ALL, rule(True, "c", 1, 5)], (C, 1, 5, R_), True),
    ([DENY_ALL, rule(True, "c", 1, 3), ALLOW_ALL], (C, 9, 9, RWM), True),
    # 4294967295 is the kernel's "*"
    ([DENY_ALL, rule(True, "c", 4294967295, 3, "r")], (C, 7, 3, R_), True),
]


@pytest.mark.parametrize("rules,case,want", EVALUATOR_TABLE)
def test_evaluator_table(rules, case, want):
    assert d.evaluate(rules, *case) is want
    assert run(d.program(rules), *case) == int(want)


def test_replay_keeps_what_v1_keeps():
    s = d.replay([DENY_ALL, rule(True, "c", 1, 3, "r"), rule(True, "c", 1, 3, "w"),
                  rule(True, "b", None, 0, "m"), rule(False, "c", 1, None, "w"),
                  rule(True, "c", 7, 7, "rw"), rule(False, "c", 7, 7, "rw")])
    assert s == d.State(False, {(C, 1, 3): RW, (B, d.ANY, 0): M})
    assert s.lines() == ["a *:* rwm denied", "c 1:3 rw allowed", "b *:0 m allowed"]
    s = d.replay([ALLOW_ALL, rule(False, "c", 1, 3, "rw"), rule(True, "c", 1, 3, "w")])
    assert s == d.State(True, {(C, 1, 3): R_})
    assert d.replay([DENY_ALL, ALLOW_ALL]).allows_everything()
    assert d.replay([ALLOW_ALL, rule(False, "c", 1, 3), rule(True, "c", 1, 3)]).allows_everything()


def test_rule_errors_are_the_v1_ones():
    with pytest.raises(CgroupError, match=r"^linux\.resources\.devices\[1\]\.type: 'x' is not"):
        d.replay([DENY_ALL, {"allow": True, "type": "x"}])
    with pytest.raises(CgroupError, match=r"^linux\.resources\.devices\[0\]\.major: 4294967296 is out"):
        d.replay([rule(True, "c", 1 << 32, 0)])
    with pytest.raises(CgroupError, match=r"^linux\.resources\.devices\[0\]: a rule for all devices"):
        d.program([{"allow": True, "access": "r"}])


# ---- the program --------------------------------------------------------------------------------

def test_runc_default_list_is_two_instructions():
    insns = d.program(RUNC_DEFAULT)
    assert d.disassemble(insns) == ["  0: r0 = 0                          ; every device: deny",
                                    "  1: exit"]
    assert d.assemble(insns) == bytes.fromhex("b700000000000000" "9500000000000000")
    assert d.program([]) == insns
    assert run(insns, C, 1, 3, R_) == 0


@pytest.mark.skipif(not shutil.which("runc"), reason="runc is not installed")
def test_runc_spec_default_devices(tmp_path):
    subprocess.run(["runc", "spec"], cwd=tmp_path, check=True)
    devices = json.loads((tmp_path / "config.json").read_text())["linux"]["resources"]["devices"]
    assert devices == RUNC_DEFAULT
    assert d.program(devices) == d.program(RUNC_DEFAULT)


def test_allow_all_program():
    assert d.disassemble(d.program([ALLOW_ALL])) == [
        "  0: r0 = 1                          ; every device: allow", "  1: exit"]


def test_engine_list_program_shape():
    insns = d.program(ENGINE)
    # prologue (6) + one block per allowed device, + the default (2)
    blocks = [i for i in insns if i.comment.startswith("rule ")]
    assert [i.comment.split(" (")[0] for i in blocks] == [
        "rule c *:* m", "rule b *:* m", "rule c 1:3 rwm", "rule c 1:5 rwm", "rule c 1:7 rwm",
        "rule c 5:0 rwm", "rule c 1:8 rwm", "rule c 1:9 rwm", "rule c 136:* rwm",
        "rule c 5:2 rwm", "rule c 10:200 rwm"]
    assert len(insns) == 6 + 2 * 4 + 8 * 5 + 4 + 2 == 60
    assert agree(ENGINE, probe_numbers(ENGINE), probe_numbers(ENGINE)) == []


@pytest.mark.parametrize("rules", [r for r, _, _ in EVALUATOR_TABLE[::3]] + [ENGINE])
def test_program_agrees_with_evaluator(rules):
    nums = probe_numbers(rules)
    assert agree(rules, nums, nums) == []


def random_rules(rng):
    out = []
    if rng.random() < 0.8:
        out.append(rule(rng.random() < 0.3))
    for _ in range(rng.randrange(0, 11)):
        kind = "a" if rng.random() < 0.08 else rng.choice("bcc")
        if kind == "a":
            out.append(rule(rng.random() < 0.5))
            continue
        access = "".join(c for c in "rwm" if rng.random() < 0.5) or "r"
        out.append(rule(rng.random() < 0.6, kind, rng.choice([1, 2, -1, None]),
                        rng.choice([0, 1, -1, None]), access))
    return out


def test_program_agrees_with_evaluator_on_random_lists():
    rng = random.Random(20240601)
    lists = [random_rules(rng) for _ in range(500)]
    for rules in lists:
        assert agree(rules, [0, 1, 2, 3], [0, 1, 2]) == [], rules


def test_numbers_no_device_can_have_are_left_out():
    big = (1 << 31) + 5
    rules = [DENY_ALL, rule(True, "c", big, 3), rule(True, "c", 1, big), rule(True, "c", 1, 3, "r")]
    insns = d.program(rules)
    assert [i.comment for i in insns if i.comment.startswith("rule ")] == [
        "rule c 1:3 r (allow): not a char device? next rule"]
    assert all(-(1 << 31) <= i.imm < (1 << 31) for i in insns)
    assert agree(rules, [0, 1, 2], [2, 3, 4]) == []


def test_deny_block_uses_jset_then_goto():
    rules = [ALLOW_ALL, rule(False, "c", 1, 3, "r")]
    assert d.disassemble(d.program(rules))[6:] == [
        "  6: if r2 != 0x2 goto +6 (13)       ; rule c 1:3 r (deny): not a char device? next rule",
        "  7: if r4 != 0x1 goto +5 (13)       ; major is not 1? next rule",
        "  8: if r5 != 0x3 goto +4 (13)       ; minor is not 3? next rule",
        "  9: if r3 & 0x2 goto +1 (11)        ; asks for r? deny",
        " 10: goto +2 (13)                    ; no: next rule",
        " 11: r0 = 0                          ; deny",
        " 12: exit",
        " 13: r0 = 1                          ; no rule matched: allow",
        " 14: exit"]


def test_disassemble_allow_list_with_raw_bytes():
    lines = d.disassemble(d.program([DENY_ALL, rule(True, "c", 136, None, "rw")]), raw=True)
    assert lines == [
        "  0: 61 12 00 00 00 00 00 00  r2 = *(u32 *)(r1 +0)            ; r2 = ctx->access_type",
        "  1: 54 02 00 00 ff ff 00 00  w2 &= 0xffff                    ; r2 = the device's type "
        "(low 16 bits): 1 block, 2 char",
        "  2: 61 13 00 00 00 00 00 00  r3 = *(u32 *)(r1 +0)            ; r3 = ctx->access_type",
        "  3: 74 03 00 00 10 00 00 00  w3 >>= 16                       ; r3 = the access asked "
        "(high 16 bits): 1 mknod, 2 read, 4 write",
        "  4: 61 14 04 00 00 00 00 00  r4 = *(u32 *)(r1 +4)            ; r4 = ctx->major",
        "  5: 61 15 08 00 00 00 00 00  r5 = *(u32 *)(r1 +8)            ; r5 = ctx->minor",
        "  6: 55 02 04 00 02 00 00 00  if r2 != 0x2 goto +4 (11)       ; rule c 136:* rw (allow): "
        "not a char device? next rule",
        "  7: 55 04 03 00 88 00 00 00  if r4 != 0x88 goto +3 (11)      ; major is not 136? next rule",
        "  8: 45 03 02 00 01 00 00 00  if r3 & 0x1 goto +2 (11)        ; asks for m? next rule",
        "  9: b7 00 00 00 01 00 00 00  r0 = 1                          ; allow",
        " 10: 95 00 00 00 00 00 00 00  exit",
        " 11: b7 00 00 00 00 00 00 00  r0 = 0                          ; no rule matched: deny",
        " 12: 95 00 00 00 00 00 00 00  exit"]


def test_disassemble_other_instructions():
    ins = [d.Insn(0xBF, 1, 6, 0, 0, ""),          # r1 = r6 (alu64 mov reg)
           d.Insn(0x07, 1, 0, 0, -8, ""),         # r1 += -8
           d.Insn(0x5D, 1, 2, 1, 0, ""),          # if r1 != r2 goto +1
           d.Insn(0x71, 0, 1, 3, 0, "byte"),      # r0 = *(u8 *)(r1 +3)
           d.Insn(0x85, 0, 0, 0, 14, "")]         # call (not decoded)
    assert d.disassemble(ins) == ["  0: r1 = r6", "  1: r1 += -8", "  2: if r1 != r2 goto +1 (4)",
                                  "  3: r0 = *(u8 *)(r1 +3)             ; byte",
                                  "  4: (opcode 0x85)"]


# ---- bpf(2) against a fake kernel ---------------------------------------------------------------

class FakeKernel:
    """Decodes the union bpf_attr each call passes, like the kernel would, and keeps the
    attachments of one cgroup fd. `fail` = {cmd: errno} makes a command fail."""

    def __init__(self, attached=(), fail=None, log=None):
        self.attached = list(attached)       # prog ids, in attach order
        self.progs = {}                      # fd -> id
        self.next_id, self.next_fd = 100, 500
        self.calls, self.fail, self.log = [], dict(fail or {}), log
        self.loaded = []

    def __call__(self, cmd, attr, pointers=None):
        name = linux._BPF_NAMES[cmd]
        self.calls.append(name)
        if cmd in self.fail:
            if cmd == linux.BPF_PROG_LOAD and self.log and 32 in (pointers or {}):
                pointers[32][:len(self.log)] = self.log
            raise OSError(self.fail[cmd], f"bpf({name}): {os.strerror(self.fail[cmd])}")
        if cmd == linux.BPF_PROG_LOAD:
            prog_type, n = struct.unpack_from("=II", attr, 0)
            assert prog_type == 15 and bytes(pointers[16]) == b"Apache\0"
            assert len(pointers[8]) == 8 * n
            assert bytes(attr[48:62]) == b"mrunc_devices\0"
            self.loaded.append(bytes(pointers[8]))
            return self._new_prog()
        if cmd == linux.BPF_PROG_QUERY:
            fd, atype, flags = struct.unpack_from("=III", attr, 0)
            assert atype == 6 and flags == 0 and struct.unpack_from("=I", attr, 24)[0] == 64
            struct.pack_into(f"={len(self.attached)}I", pointers[16], 0, *self.attached)
            struct.pack_into("=I", attr, 24, len(self.attached))
            return 0
        if cmd == linux.BPF_PROG_GET_FD_BY_ID:
            pid = struct.unpack_from("=I", attr, 0)[0]
            fd = self.next_fd = self.next_fd + 1
            self.progs[fd] = pid
            return fd
        if cmd in (linux.BPF_PROG_ATTACH, linux.BPF_PROG_DETACH):
            target, pfd, atype, flags, rfd = struct.unpack_from("=IIIII", attr, 0)
            assert atype == 6
            pid = self.progs[pfd]
            if cmd == linux.BPF_PROG_DETACH:
                self.attached.remove(pid)
                self.calls[-1] += f" {pid}"
            elif flags == d.F_ALLOW_MULTI | d.F_REPLACE:
                self.attached[self.attached.index(self.progs[rfd])] = pid
                self.calls[-1] += f" {pid} replacing {self.progs[rfd]}"
            else:
                assert flags == d.F_ALLOW_MULTI
                self.attached.append(pid)
                self.calls[-1] += f" {pid}"
            return 0
        raise AssertionError(name)

    def _new_prog(self):
        self.next_id += 1
        self.next_fd += 1
        self.progs[self.next_fd] = self.next_id
        return self.next_fd


@pytest.fixture
def kernel(monkeypatch, tmp_path):
    """A FakeKernel behind mrunc.linux.bpf; the temp dir passes for a cgroup2 directory; fds the
    fake hands out are 'closed' without touching real ones."""
    k = FakeKernel()
    monkeypatch.setattr(linux, "bpf", k)
    monkeypatch.setattr(linux, "fstatfs_type", lambda fd: linux.CGROUP2_SUPER_MAGIC)
    real_close = os.close
    monkeypatch.setattr(os, "close", lambda fd: None if fd in k.progs else real_close(fd))
    return k


LIST = [DENY_ALL, rule(True, "c", 1, 3)]


def test_install_first_time(kernel, tmp_path):
    insns = d.install(str(tmp_path), LIST)
    assert insns == d.program(LIST) and kernel.loaded == [d.assemble(insns)]
    assert kernel.calls == ["BPF_PROG_QUERY", "BPF_PROG_LOAD", "BPF_PROG_ATTACH 101"]
    assert kernel.attached == [101]


def test_install_replaces_the_one_there(kernel, tmp_path):
    kernel.attached = [7]
    d.install(str(tmp_path), LIST)
    assert kernel.calls == ["BPF_PROG_QUERY", "BPF_PROG_LOAD", "BPF_PROG_GET_FD_BY_ID",
                            "BPF_PROG_ATTACH 101 replacing 7"]
    assert kernel.attached == [101]


def test_install_without_bpf_f_replace_attaches_then_detaches(kernel, tmp_path):
    kernel.attached = [7]
    real = kernel.__call__

    def old_kernel(cmd, attr, pointers=None):
        if cmd == linux.BPF_PROG_ATTACH and struct.unpack_from("=I", attr, 12)[0] & d.F_REPLACE:
            raise OSError(errno.EINVAL, "bpf(BPF_PROG_ATTACH): Invalid argument")
        return real(cmd, attr, pointers)
    linux.bpf = old_kernel                                  # undone by monkeypatch
    d.install(str(tmp_path), LIST)
    assert kernel.attached == [101]
    assert kernel.calls[-3:] == ["BPF_PROG_ATTACH 101", "BPF_PROG_GET_FD_BY_ID", "BPF_PROG_DETACH 7"]


def test_install_over_several_keeps_only_ours(kernel, tmp_path):
    kernel.attached = [7, 8]
    d.install(str(tmp_path), LIST)
    assert kernel.calls[2:] == ["BPF_PROG_ATTACH 101", "BPF_PROG_GET_FD_BY_ID", "BPF_PROG_DETACH 7",
                                "BPF_PROG_GET_FD_BY_ID", "BPF_PROG_DETACH 8"]
    assert kernel.attached == [101]


def test_allow_all_detaches_and_loads_nothing(kernel, tmp_path):
    kernel.attached = [7]
    assert d.install(str(tmp_path), [DENY_ALL, ALLOW_ALL]) == []
    assert kernel.calls == ["BPF_PROG_QUERY", "BPF_PROG_GET_FD_BY_ID", "BPF_PROG_DETACH 7"]
    assert kernel.attached == []


def test_allow_all_where_bpf_is_refused_is_fine(kernel, tmp_path):
    kernel.fail = {linux.BPF_PROG_QUERY: errno.EPERM}
    assert d.install(str(tmp_path), [ALLOW_ALL]) == []


def test_not_a_cgroup2_directory(kernel, tmp_path, monkeypatch):
    monkeypatch.setattr(linux, "fstatfs_type", lambda fd: 0xEF53)
    assert d.install(str(tmp_path), [ALLOW_ALL]) == []
    assert d.attached(str(tmp_path)) == []
    with pytest.raises(CgroupError, match=rf"^linux\.resources\.devices: {tmp_path} is not in a "
                                          rf"cgroup2 filesystem"):
        d.install(str(tmp_path), LIST)
    assert kernel.calls == []


@pytest.mark.parametrize("err,hint", [
    (errno.EPERM, "Operation not permitted (needs CAP_SYS_ADMIN, or CAP_BPF, in the initial user "
                  "namespace)"),
    (errno.ENOSYS, "Function not implemented (needs a kernel with CONFIG_BPF_SYSCALL and "
                   "CONFIG_CGROUP_BPF)"),
])
def test_load_refused(kernel, tmp_path, err, hint):
    kernel.fail = {linux.BPF_PROG_LOAD: err}
    with pytest.raises(CgroupError) as e:
        d.install(str(tmp_path), LIST)
    assert str(e.value) == ("linux.resources.devices: cannot load the eBPF device filter: "
                            f"bpf(BPF_PROG_LOAD): {hint}")


def test_verifier_log_ends_the_message(kernel, tmp_path):
    kernel.fail = {linux.BPF_PROG_LOAD: errno.EACCES}
    kernel.log = b"\n".join(f"line {n}".encode() for n in range(10)) + b"\nR0 !read_ok\n\0"
    with pytest.raises(CgroupError) as e:
        d.install(str(tmp_path), LIST)
    assert str(e.value) == ("linux.resources.devices: cannot load the eBPF device filter: "
                            "bpf(BPF_PROG_LOAD): Permission denied; the verifier said: "
                            "line 5 | line 6 | line 7 | line 8 | line 9 | R0 !read_ok")
    assert kernel.attached == []


def test_log_too_small_loads_without_log(kernel, tmp_path):
    seen = []
    real = kernel.__call__

    def k(cmd, attr, pointers=None):
        if cmd == linux.BPF_PROG_LOAD:
            seen.append(struct.unpack_from("=II", attr, 24))
            if 32 in pointers:
                raise OSError(errno.ENOSPC, "bpf(BPF_PROG_LOAD): No space left on device")
        return real(cmd, attr, pointers)
    linux.bpf = k
    d.install(str(tmp_path), LIST)
    assert seen == [(1, d.LOG_SIZE), (0, 0)] and kernel.attached == [101]


def test_attach_refused(kernel, tmp_path):
    kernel.fail = {linux.BPF_PROG_ATTACH: errno.EPERM}
    with pytest.raises(CgroupError, match=rf"^linux\.resources\.devices: cannot attach the eBPF "
                                          rf"device filter to {tmp_path}: bpf\(BPF_PROG_ATTACH\): "
                                          rf"Operation not permitted$"):
        d.install(str(tmp_path), LIST)


def test_linux_bpf_fills_pointers(monkeypatch):
    """linux.bpf puts each buffer's address at its offset, and the kernel's writes show."""
    import ctypes
    got = {}

    class FakeLibc:
        @staticmethod
        def syscall(nr, cmd, raw, size):
            got.update(nr=nr, cmd=cmd.value, size=size.value)
            addr = struct.unpack_from("=Q", bytes(raw), 8)[0]
            got["pointed"] = ctypes.string_at(addr, 4)
            ctypes.memmove(addr, b"OUT!", 4)                 # the kernel writes into the buffer
            raw[24] = 9                                       # ... and into attr
            return 42
    monkeypatch.setattr(linux, "_libc", FakeLibc)
    attr, buf = bytearray(32), bytearray(b"in..")
    assert linux.bpf(linux.BPF_PROG_QUERY, attr, {8: buf}) == 42
    assert got == {"nr": linux._SYS["bpf"], "cmd": 16, "size": 32, "pointed": b"in.."}
    assert buf == b"OUT!" and attr[24] == 9


# ---- V2Manager.set ----------------------------------------------------------------------------

@pytest.fixture
def v2dir(tmp_path):
    root = tmp_path / "cg"
    (root / "c1").mkdir(parents=True)
    for name, text in {"cgroup.controllers": "pids", "cgroup.subtree_control": "pids",
                       "cgroup.procs": ""}.items():
        (root / name).write_text(text)
    for name, text in {"cgroup.controllers": "pids", "cgroup.procs": "", "pids.max": "max"}.items():
        (root / "c1" / name).write_text(text)
    return root


def mgr(root, rootless=False):
    return V2Manager({"": (str(root), "/")}, {"": "/c1"}, rootless)


@pytest.fixture
def installs(monkeypatch):
    calls = []
    monkeypatch.setattr(d, "install", lambda path, rules, sys=None: calls.append((path, rules)))
    return calls


def test_set_attaches_the_filter_before_writing(v2dir, installs, monkeypatch):
    order = []
    monkeypatch.setattr(d, "install", lambda path, rules, sys=None: order.append(("install", path, rules)))
    from mrunc.cgroups import fs
    real = fs.write
    monkeypatch.setattr(fs, "write", lambda p, v, f=None, sys=None: order.append(("write", p)) or real(p, v, f, sys))
    mgr(v2dir).set({"pids": {"limit": 5}, "devices": LIST})
    assert order == [("install", f"{v2dir}/c1", LIST), ("write", f"{v2dir}/c1/pids.max")]
    assert (v2dir / "c1" / "pids.max").read_text() == "5"


def test_set_checks_everything_before_the_filter(v2dir, installs):
    with pytest.raises(CgroupError, match=r"memory\.limit: the memory controller is not available"):
        mgr(v2dir).set({"memory": {"limit": 1 << 20}, "devices": LIST})
    with pytest.raises(CgroupError, match=r"devices\[1\]\.type: 'x'"):
        mgr(v2dir).set({"pids": {"limit": 5}, "devices": [DENY_ALL, {"allow": True, "type": "x"}]})
    assert installs == [] and (v2dir / "c1" / "pids.max").read_text() == "max"


def test_set_without_devices_or_rootless_leaves_filters_alone(v2dir, installs):
    mgr(v2dir).set({"pids": {"limit": 5}})
    mgr(v2dir).set({"devices": None})
    mgr(v2dir, rootless=True).set({"devices": LIST})
    assert installs == []
    mgr(v2dir).set({"devices": []})
    assert installs == [(f"{v2dir}/c1", [])]


def test_set_through_the_fake_kernel(v2dir, kernel):
    m = mgr(v2dir)
    m.set({"devices": LIST})
    m.set({"devices": [DENY_ALL, rule(True, "c", 1, 5)]})
    assert kernel.attached == [102]
    assert kernel.loaded[-1] == d.assemble(d.program([DENY_ALL, rule(True, "c", 1, 5)]))
    m.set({"devices": [ALLOW_ALL]})
    assert kernel.attached == []


def test_device_filter_module_is_imported_lazily():
    import sys
    code = "import sys; from mrunc import cgroups; print('mrunc.cgroups.devices_bpf' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_program_builder_imports_nothing_heavy():
    """Every create and run on a cgroup v2 host imports this module (the device filter): no
    `collections` (≈ 1 ms of CPU for namedtuple), nor anything else test_imports calls heavy.
    Checked in a fresh isolated interpreter, on any host (test_imports runs the verbs on this
    host's layout only)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(d.__file__))))
    code = (f"import sys; sys.path[:0] = [{root!r}]; import mrunc.cgroups.devices_bpf; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('collections', 'ctypes', 'struct', 're', 'enum', 'json', 'functools')))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
