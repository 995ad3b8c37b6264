"""Device rules on cgroup v2: a tiny eBPF program the kernel runs on every device access.

cgroup v1 has a `devices` controller: write "a" to devices.deny, then "c 1:3 rwm" to devices.allow,
and the kernel keeps a list for the cgroup. cgroup v2 has no such files. Instead the runtime hands
the kernel a *program*, in eBPF (a small register machine whose programs the kernel verifies before
running them), of type BPF_PROG_TYPE_CGROUP_DEVICE, and attaches it to the container's cgroup. On
every mknod, and every open of a device node, by a process in that cgroup the kernel runs it on

    struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
        access_type = access << 16 | type        access: 1 mknod, 2 read, 4 write (or'ed)
                                                  type:   1 block, 2 char

and the program returns 1 (allow) or 0 (deny: the open or mknod fails with EPERM).

mrunc builds that program in pure Python, one 8-byte instruction at a time:

1. **Replay the rules as cgroup v1 would** (`replay`). The OCI list means "deny everything, then
   apply these rules in order", and v1's answer is not simply "the last matching rule wins": the
   kernel keeps a default (allow all or deny all) plus a list of *exceptions*. A rule that goes
   against the default adds an exception, and `allow c 1:3 r` then `allow c 1:3 w` merge into one
   exception `c 1:3 rw`. A rule that goes the default's way only takes access away from an
   exception with exactly the same type, major and minor: `deny c 1:* w` does not undo an earlier
   `allow c 1:3 rw`. A rule for all devices ("a") resets the default and drops every exception.
   mrunc replays the very writes `v1.devices()` makes, with those rules, so one list means the
   same thing on both cgroup versions (`allowed` is the kernel's check, the reference the tests
   compare the program, and a real v1 kernel, against).
2. **Emit the program** (`program`): load type, access, major and minor into registers, then one
   block per exception, "if it matches, return the verdict opposite to the default", and at the
   end return the default. All exceptions have the same verdict, so their order does not matter.
3. **Load and attach it** (`install`): bpf(BPF_PROG_LOAD) runs the verifier; bpf(BPF_PROG_ATTACH)
   puts the program on the cgroup directory's fd with BPF_F_ALLOW_MULTI (as runc: programs on the
   parent cgroups still run too, and an access goes through only if all of them allow it). The
   attachment holds a reference to the program, so mrunc closes its fd and may exit. An update
   attaches the new program in place of the old one (BPF_F_REPLACE: never a moment without a
   filter); removing the cgroup frees it. A list that allows everything needs no program: any
   filter of ours is detached.

`disassemble(program(rules))` lists the program in the kernel verifier's notation (the notebook
shows it). Only `install`, `load` and `attached` talk to the kernel (through Syscalls.bpf, which
records each call in the trace); the rest is plain Python.
"""

import _struct as struct  # struct's C module, built in (struct.py only re-exports it)
import errno
import os

from mrunc.errors import CgroupError

from .base import R

F = R + ".devices"

# ---- what the kernel passes the program (<linux/bpf.h>) ---------------------------------------
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
ACC_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE
TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
ACCESS = {"r": ACC_READ, "w": ACC_WRITE, "m": ACC_MKNOD}
ANY = 0xFFFFFFFF            # "*": the kernel's ~0 (so "4294967295" is a wildcard too, as in v1)
MAX_IMM = 0x7FFFFFFF        # an instruction's immediate is a signed 32-bit number

# ---- bpf(2) values ----------------------------------------------------------------------------
PROG_TYPE_CGROUP_DEVICE = 15     # enum bpf_prog_type
ATTACH_CGROUP_DEVICE = 6         # enum bpf_attach_type: BPF_CGROUP_DEVICE
F_ALLOW_MULTI, F_REPLACE = 2, 4  # attach flags
MAX_PROGS = 64                   # BPF_CGROUP_MAX_PROGS: per cgroup and attach type
LICENSE = b"Apache\0"            # any string: the program calls no GPL-only helper
LOG_SIZE = 256 << 10


def access_text(bits):
    return "".join(c for c in "rwm" if bits & ACCESS[c]) or "-"


def type_text(t):
    return {DEV_BLOCK: "b", DEV_CHAR: "c"}.get(t, str(t))


def _num(n):
    return "*" if n == ANY else str(n)


# ---- 1. the rules, replayed as cgroup v1 keeps them ---------------------------------------------

def _named(count):
    """Read-only attributes for the items of a tuple, by position — what collections.namedtuple
    gives, written out: importing `collections` cost every create and run on a cgroup v2 host
    ≈ 1 ms of CPU (this module builds their device program)."""
    return (property(lambda self, i=i: self[i]) for i in range(count))


class State(tuple):
    """v1's view of a device list: a default, and {(type, major, minor): access bits} that go
    against it (in the order the kernel keeps them). A tuple: (default_allow, exceptions)."""
    __slots__ = ()
    default_allow, exceptions = _named(2)

    def __new__(cls, default_allow, exceptions):
        return super().__new__(cls, (default_allow, exceptions))

    def allows_everything(self):
        return self.default_allow and not self.exceptions

    def lines(self):
        """Like v1's devices.list, plus what v1 does not show: the exceptions of an allow-all."""
        head = "a *:* rwm " + ("allowed" if self.default_allow else "denied")
        verdict = "denied" if self.default_allow else "allowed"
        return [head] + [f"{type_text(t)} {_num(ma)}:{_num(mi)} {access_text(acc)} {verdict}"
                         for (t, ma, mi), acc in self.exceptions.items()]


def _parse(text, field):
    """'c 1:3 rwm' -> (DEV_CHAR, 1, 3, rwm bits), read like the kernel reads a devices.allow line."""
    kind, numbers, access = text.split(" ")
    major, minor = (ANY if n == "*" else int(n) for n in numbers.split(":"))
    return (TYPES[kind], major, minor), sum(ACCESS[c] for c in set(access))


def replay(rules, f=F):
    """The State a v1 devices cgroup ends in after `v1.devices(rules)`'s writes (validating each
    rule on the way, with the same errors)."""
    from .v1 import devices as v1_writes
    default_allow, exceptions = True, {}
    for name, text, field in v1_writes(None, rules, f):
        allow = name == "devices.allow"
        if text == "a":                     # every device: a new default, no exceptions left
            default_allow, exceptions = allow, {}
            continue
        key, access = _parse(text, field)
        if allow == default_allow:          # goes the default's way: only trims an exact match
            left = exceptions.get(key, 0) & ~access
            if left:
                exceptions[key] = left
            else:
                exceptions.pop(key, None)
        else:                               # an exception: merged with an exact match, or added
            exceptions[key] = exceptions.get(key, 0) | access
    return State(default_allow, exceptions)


def allowed(state, dev_type, major, minor, access):
    """The kernel's v1 check of one access (bits) to one device, given a State.

    Default deny: some exception must match the device and grant *every* bit asked for.
    Default allow: no exception may match the device and share *any* bit asked for.
    """
    for (t, ma, mi), acc in state.exceptions.items():
        if t != dev_type or ma not in (ANY, major) or mi not in (ANY, minor):
            continue
        if state.default_allow and access & acc:
            return False
        if not state.default_allow and not access & ~acc:
            return True
    return state.default_allow


def evaluate(rules, dev_type, major, minor, access):
    """allowed(replay(rules), ...): the reference answer for an OCI rule list."""
    return allowed(replay(rules), dev_type, major, minor, access)


# ---- 2. the program ---------------------------------------------------------------------------
# struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; }, host byte order.
# code = operation | source | class (<linux/bpf_common.h>, <linux/bpf.h>).
BPF_LDX, BPF_ALU, BPF_JMP, BPF_ALU64 = 0x01, 0x04, 0x05, 0x07          # classes
BPF_W, BPF_H, BPF_B, BPF_DW = 0x00, 0x08, 0x10, 0x18                   # load sizes
BPF_MEM = 0x60                                                         # load mode
BPF_K, BPF_X = 0x00, 0x08                                              # source: imm or src_reg
BPF_AND, BPF_RSH, BPF_MOV = 0x50, 0x70, 0xB0                           # ALU operations
BPF_JA, BPF_JEQ, BPF_JSET, BPF_JNE, BPF_EXIT = 0x00, 0x10, 0x40, 0x50, 0x90   # JMP operations


class Insn(tuple):
    """One eBPF instruction, the tuple (code, dst, src, off, imm, comment); `comment` is for the
    listing only."""
    __slots__ = ()
    code, dst, src, off, imm, comment = _named(6)

    def __new__(cls, code, dst, src, off, imm, comment):
        return super().__new__(cls, (code, dst, src, off, imm, comment))

    def jumping(self, off):
        """The same instruction with jump offset `off`."""
        return Insn(self.code, self.dst, self.src, off, self.imm, self.comment)

    def encode(self):
        # dst_reg is the low nibble on little-endian hosts (the only ones _SYS knows: x86_64, arm64)
        return struct.pack("=BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm)


def ldx_w(dst, src, off, comment=""):
    """dst = *(u32 *)(src + off): read a context field (zero-extended)."""
    return Insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0, comment)


def alu32(op, dst, imm, comment=""):
    return Insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm, comment)


def mov(dst, imm, comment=""):
    return Insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm, comment)


def jump_if(op, dst, imm, off, comment=""):
    """if dst <op> imm goto +off (off counts instructions after this one; None: the next block)."""
    return Insn(BPF_JMP | op | BPF_K, dst, 0, off, imm, comment)


def goto(off, comment=""):
    return Insn(BPF_JMP | BPF_JA, 0, 0, off, 0, comment)


def exit_(comment=""):
    return Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0, comment)


def assemble(insns):
    return b"".join(i.encode() for i in insns)


# Registers: r1 holds the context pointer on entry, r0 the value returned at exit.
TYPE, ACC, MAJOR, MINOR = 2, 3, 4, 5


def program(rules, f=F):
    """The BPF_PROG_TYPE_CGROUP_DEVICE program enforcing an OCI device list (see the module doc)."""
    return emit(replay(rules, f))


def emit(state):
    """The program for a State: one block per exception between a prologue and the default."""
    verdict = 0 if state.default_allow else 1       # what a matching exception returns
    blocks = []
    for (t, major, minor), acc in state.exceptions.items():
        # Majors have 12 bits and minors 20: a larger number names no device, so the exception
        # can never match (and would not fit the signed 32-bit immediate of a comparison).
        if any(n != ANY and n > MAX_IMM for n in (major, minor)):
            continue
        blocks += _block(t, major, minor, acc, verdict)
    end = [mov(0, int(state.default_allow),
               ("no rule matched: " if blocks else "every device: ")
               + ("allow" if state.default_allow else "deny")), exit_()]
    if not blocks:
        return end
    return [
        ldx_w(TYPE, 1, 0, "r2 = ctx->access_type"),
        alu32(BPF_AND, TYPE, 0xFFFF, "r2 = the device's type (low 16 bits): 1 block, 2 char"),
        ldx_w(ACC, 1, 0, "r3 = ctx->access_type"),
        alu32(BPF_RSH, ACC, 16, "r3 = the access asked (high 16 bits): 1 mknod, 2 read, 4 write"),
        ldx_w(MAJOR, 1, 4, "r4 = ctx->major"),
        ldx_w(MINOR, 1, 8, "r5 = ctx->minor"),
    ] + blocks + end


def _block(t, major, minor, acc, verdict):
    """One exception: every test that fails jumps to the next block; if none does, return."""
    rule = f"{type_text(t)} {_num(major)}:{_num(minor)} {access_text(acc)}"
    block = [jump_if(BPF_JNE, TYPE, t, None,
                     f"rule {rule} ({'allow' if verdict else 'deny'}): not a "
                     f"{'char' if t == DEV_CHAR else 'block'} device? next rule")]
    if major != ANY:
        block.append(jump_if(BPF_JNE, MAJOR, major, None, f"major is not {major}? next rule"))
    if minor != ANY:
        block.append(jump_if(BPF_JNE, MINOR, minor, None, f"minor is not {minor}? next rule"))
    # The kernel asks for 1 to 3 access bits, never none: a rule for all of rwm needs no test.
    if acc != ACC_ALL and verdict:
        # An allow must grant every bit asked for: any bit outside it means "not this rule".
        rest = ACC_ALL & ~acc
        block.append(jump_if(BPF_JSET, ACC, rest, None, f"asks for {access_text(rest)}? next rule"))
    elif acc != ACC_ALL:
        # A deny takes effect if it shares any bit with the access asked for.
        block.append(jump_if(BPF_JSET, ACC, acc, 1, f"asks for {access_text(acc)}? deny"))
        block.append(goto(None, "no: next rule"))
    block += [mov(0, verdict, "allow" if verdict else "deny"), exit_()]
    n = len(block)
    return [i.jumping(n - k - 1) if i.off is None else i for k, i in enumerate(block)]


_ALU_OPS = {0x00: "+", 0x10: "-", 0x20: "*", 0x30: "/", 0x40: "|", 0x50: "&", 0x60: "<<",
            0x70: ">>", 0x90: "%", 0xA0: "^", 0xC0: "s>>"}
_JMP_OPS = {0x10: "==", 0x20: ">", 0x30: ">=", 0x40: "&", 0x50: "!=", 0x60: "s>", 0x70: "s>=",
            0xA0: "<", 0xB0: "<=", 0xC0: "s<", 0xD0: "s<="}
_SIZES = {BPF_W: "u32", BPF_H: "u16", BPF_B: "u8", BPF_DW: "u64"}


def disassemble(insns, raw=False):
    """A readable listing, one line per instruction, in the verifier's notation:

        0: r2 = *(u32 *)(r1 +0)        ; r2 = ctx->access_type
        6: if r2 != 0x2 goto +3 (10)   ; rule c 1:3 rwm (allow): not a char device? next rule

    raw=True puts the instruction's 8 bytes (hex) after the index. Decodes what `program` emits
    and the rest of the plain ALU/JMP/LDX classes; anything else is shown as its opcode.
    """
    out = []
    for pc, i in enumerate(insns):
        cls, op, src = i.code & 0x07, i.code & 0xF0, i.code & 0x08
        hexa = cls == BPF_JMP or op in (BPF_AND, 0x40, 0xA0)    # masks and compared numbers
        operand = f"r{i.src}" if src == BPF_X else (f"{i.imm:#x}" if hexa else str(i.imm))
        if cls == BPF_LDX and i.code & 0xE0 == BPF_MEM:
            text = f"r{i.dst} = *({_SIZES[i.code & 0x18]} *)(r{i.src} {i.off:+d})"
        elif cls in (BPF_ALU, BPF_ALU64) and (op == BPF_MOV or op in _ALU_OPS):
            reg = "w" if cls == BPF_ALU else "r"
            text = f"{reg}{i.dst} {'' if op == BPF_MOV else _ALU_OPS[op]}= {operand}"
        elif cls == BPF_JMP and op == BPF_EXIT:
            text = "exit"
        elif cls == BPF_JMP and op == BPF_JA:
            text = f"goto {i.off:+d} ({pc + 1 + i.off})"
        elif cls == BPF_JMP and op in _JMP_OPS:
            text = f"if r{i.dst} {_JMP_OPS[op]} {operand} goto {i.off:+d} ({pc + 1 + i.off})"
        else:
            text = f"(opcode {i.code:#04x})"
        head = f"{pc:3d}: " + (i.encode().hex(" ") + "  " if raw else "")
        out.append(f"{head}{text:<32}" + (f"; {i.comment}" if i.comment else "").rstrip())
    return [line.rstrip() for line in out]


# ---- 3. the kernel: load, attach, replace ------------------------------------------------------

def _why(e):
    return e.strerror or os.strerror(e.errno)     # "bpf(BPF_PROG_LOAD): Operation not permitted"


def load(insns, f=F, sys=None):
    """bpf(BPF_PROG_LOAD): the program's fd. The verifier's complaint, if any, ends the error."""
    from mrunc import linux
    sys = sys or linux.Syscalls()
    code, lic = bytearray(assemble(insns)), bytearray(LICENSE)

    def attempt(log):
        attr = bytearray(72)            # prog_type .. expected_attach_type of union bpf_attr
        struct.pack_into("=II", attr, 0, PROG_TYPE_CGROUP_DEVICE, len(insns))
        ptrs = {8: code, 16: lic}       # insns, license
        if log is not None:
            struct.pack_into("=II", attr, 24, 1, len(log))      # log_level 1, log_size
            ptrs[32] = log                                      # log_buf
        attr[48:48 + 13] = b"mrunc_devices"                     # prog_name (bpftool shows it)
        return sys.bpf(linux.BPF_PROG_LOAD, attr, ptrs, "BPF_PROG_TYPE_CGROUP_DEVICE",
                       f"{len(insns)} instructions", "mrunc_devices")

    log = bytearray(LOG_SIZE)
    try:
        try:
            return attempt(log)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            return attempt(None)       # a valid program with a long log: load it without one
    except OSError as e:
        msg = f"{f}: cannot load the eBPF device filter: {_why(e)}"
        said = [ln for ln in log.split(b"\0", 1)[0].decode(errors="replace").splitlines() if ln]
        if said:
            msg += "; the verifier said: " + " | ".join(said[-6:])
        elif e.errno in (errno.EPERM, errno.EACCES):
            msg += " (needs CAP_SYS_ADMIN, or CAP_BPF, in the initial user namespace)"
        elif e.errno in (errno.ENOSYS, errno.EINVAL):
            msg += " (needs a kernel with CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF)"
        raise CgroupError(msg) from e


def _query(dfd, sys=None, where=None):
    """Ids of the device programs attached to the cgroup itself (not its parents)."""
    from mrunc import linux
    ids = bytearray(4 * MAX_PROGS)
    attr = bytearray(40)
    struct.pack_into("=III", attr, 0, dfd, ATTACH_CGROUP_DEVICE, 0)
    struct.pack_into("=I", attr, 24, MAX_PROGS)                 # prog_cnt in: room; out: count
    (sys or linux.Syscalls()).bpf(linux.BPF_PROG_QUERY, attr, {16: ids}, where)  # prog_ids
    count = struct.unpack_from("=I", attr, 24)[0]
    return list(struct.unpack_from(f"={count}I", ids))


def _prog_fd(prog_id, sys=None):
    from mrunc import linux
    attr = bytearray(12)
    struct.pack_into("=I", attr, 0, prog_id)
    return (sys or linux.Syscalls()).bpf(linux.BPF_PROG_GET_FD_BY_ID, attr, None, prog_id)


def _attach(sys, cmd, dfd, pfd, where, flags=0, replace_fd=0):
    attr = bytearray(20)
    struct.pack_into("=IIIII", attr, 0, dfd, pfd, ATTACH_CGROUP_DEVICE, flags, replace_fd)
    names = "|".join(n for bit, n in ((F_ALLOW_MULTI, "BPF_F_ALLOW_MULTI"),
                                      (F_REPLACE, "BPF_F_REPLACE")) if flags & bit)
    sys.bpf(cmd, attr, None, where, "BPF_CGROUP_DEVICE", *([names] if names else []))


def attached(cgroup_dir):
    """Ids of the device filters on a cgroup directory ([] where nothing can be attached)."""
    from mrunc import linux
    dfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if linux.fstatfs_type(dfd) != linux.CGROUP2_SUPER_MAGIC:
            return []
        return _query(dfd)
    finally:
        os.close(dfd)


def install(cgroup_dir, rules, f=F, sys=None):
    """Make `rules` the one device filter of a cgroup v2 directory (see the module doc).

    Returns the instructions attached ([] when the rules allow everything and none is needed).
    `sys`: the Syscalls that makes (and records) the bpf calls.
    """
    from mrunc import linux
    sys = sys or linux.Syscalls()
    state = replay(rules, f)
    dfd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if linux.fstatfs_type(dfd) != linux.CGROUP2_SUPER_MAGIC:
            if state.allows_everything():
                return []           # nothing to enforce, and nothing can have been attached here
            raise CgroupError(f"{f}: {cgroup_dir} is not in a cgroup2 filesystem (an eBPF device "
                              f"filter attaches to a cgroup v2 directory)")
        try:
            old = _query(dfd, sys, cgroup_dir)
        except OSError as e:
            if state.allows_everything() and e.errno in (errno.EPERM, errno.ENOSYS, errno.EINVAL):
                return []           # we could not have attached anything either
            raise CgroupError(f"{f}: cannot list the eBPF device filters of {cgroup_dir}: "
                              f"{_why(e)}") from e
        if state.allows_everything():
            _detach_all(sys, dfd, old, cgroup_dir, f)
            return []
        insns = emit(state)
        pfd = load(insns, f, sys)
        try:
            _replace(sys, dfd, pfd, old, cgroup_dir, f)
        finally:
            os.close(pfd)           # the attachment keeps the program alive
        return insns
    finally:
        os.close(dfd)


def _replace(sys, dfd, pfd, old, where, f):
    from mrunc import linux
    if len(old) == 1:
        # One filter there (ours, from create): swap it atomically for the new one (Linux 5.6+).
        try:
            ofd = _prog_fd(old[0], sys)
        except OSError:
            ofd = None              # gone meanwhile
        if ofd is not None:
            try:
                _attach(sys, linux.BPF_PROG_ATTACH, dfd, pfd, where, F_ALLOW_MULTI | F_REPLACE, ofd)
                return
            except OSError as e:
                if e.errno != errno.EINVAL:     # EINVAL: a kernel without BPF_F_REPLACE
                    raise CgroupError(f"{f}: cannot attach the eBPF device filter to {where}: "
                                      f"{_why(e)}") from e
            finally:
                os.close(ofd)
    # Otherwise the new one first, then the old ones off: meanwhile both run, and an access goes
    # through only if both allow it, so the container never gets more than either list grants.
    try:
        _attach(sys, linux.BPF_PROG_ATTACH, dfd, pfd, where, F_ALLOW_MULTI)
    except OSError as e:
        raise CgroupError(f"{f}: cannot attach the eBPF device filter to {where}: {_why(e)}") from e
    _detach_all(sys, dfd, old, where, f)


def _detach_all(sys, dfd, ids, where, f):
    from mrunc import linux
    for prog_id in ids:
        try:
            ofd = _prog_fd(prog_id, sys)
        except OSError as e:
            if e.errno == errno.ENOENT:
                continue            # freed meanwhile
            raise CgroupError(f"{f}: cannot open eBPF program {prog_id} on {where}: {_why(e)}") from e
        try:
            _attach(sys, linux.BPF_PROG_DETACH, dfd, ofd, where)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise CgroupError(f"{f}: cannot detach eBPF program {prog_id} from {where}: "
                                  f"{_why(e)}") from e
        finally:
            os.close(ofd)
