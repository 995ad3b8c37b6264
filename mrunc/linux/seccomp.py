"""libseccomp called from Python: the few calls a runtime needs to turn linux.seccomp into a filter.

A seccomp filter is a small BPF program the kernel runs on every system call the process makes,
before the call does anything: it looks at the syscall number, the architecture and the six
arguments, and returns a verdict — allow, fail with an errno, kill, raise SIGSYS, log, ask a
tracer, or ask a supervisor over a "notify" fd. Writing that BPF by hand means knowing every
architecture's syscall numbers and multiplexed calls (x86's socketcall); libseccomp knows them, so
we describe rules ("mkdir -> ERRNO(EPERM)") and it generates the program. We load it ourselves
with seccomp(2) (set_mode_filter), after putting a small stub of our own in front of it
(enosys_stub): that is how runc does it too, and it keeps the flags the kernel's business.

Why our own bindings and not a package (decided for mrunc, re-check if the needs grow):
  * `pyseccomp` (PyPI, ctypes, last release 0.1.2 in January 2021) costs ~25 ms to import, most of
    it `ctypes.util.find_library`, which runs `ldconfig -p` in a subprocess; it knows no
    WAIT_KILLABLE_RECV; and it would be a second module calling C beside mrunc.linux, which
    the architecture keeps as the only one (and it imports `ctypes`: mrunc.linux.ffi says why
    not). Debian's `python3-seccomp` only exists for the system interpreter, not for our venv.
    Neither would spare us the BPF stub and the seccomp(2) call.
  * What we need is a dozen functions with plain C types (below), called the way the rest of
    mrunc.linux calls libc (mrunc.linux.ffi). Loading the library by its
    soname costs well under a millisecond, and only when a config asks for seccomp. No new
    Python dependency; the system package libseccomp2 (>= 2.5) is in the Makefile's APT_PKGS.

The library is loaded by `load_library()`, which init calls *before* pivot_root: afterwards the
host's /usr/lib is out of reach. Nothing here runs at import time except constants.

The name tables (OCI names -> libseccomp values) are here too, so the config checks, `features`
and the security phase share one source.
"""
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from . import _FS_ENCODING, _FS_ERRORS, _libc
from .ffi import (POINTER, Library, Structure, addressof, byref, c_char_p, c_int, c_uint, c_uint32,
                  c_uint64, c_ushort, c_void_p, char_array, get_errno)

# --- actions (seccomp.h SCMP_ACT_*): OCI name -> (value, takes an errno/trace value) ---
ACTIONS = {
    "SCMP_ACT_KILL": (0x00000000, False),          # = KILL_THREAD
    "SCMP_ACT_KILL_THREAD": (0x00000000, False),
    "SCMP_ACT_KILL_PROCESS": (0x80000000, False),
    "SCMP_ACT_TRAP": (0x00030000, False),
    "SCMP_ACT_ERRNO": (0x00050000, True),          # | (errno & 0xffff)
    "SCMP_ACT_TRACE": (0x7ff00000, True),          # | (msg & 0xffff), for the ptracer
    "SCMP_ACT_ALLOW": (0x7fff0000, False),
    "SCMP_ACT_LOG": (0x7ffc0000, False),
    "SCMP_ACT_NOTIFY": (0x7fc00000, False),
}

# --- comparison operators (enum scmp_compare) ---
OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# --- architectures: the OCI names; libseccomp's own name is the lower-case rest ---
ARCHES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
)

# --- filter attributes (enum scmp_filter_attr) ---
ATTR_CTL_NNP = 3        # libseccomp sets no_new_privs itself on load unless told not to
ATTR_CTL_TSYNC = 4
ATTR_CTL_LOG = 6
ATTR_CTL_SSB = 7
ATTR_CTL_OPTIMIZE = 8   # 2 = binary tree of syscall numbers (long profiles)
ATTR_API_SYSRAWRC = 9   # return the kernel's errno from seccomp_load, not -ECANCELED
ATTR_CTL_WAITKILL = 10  # libseccomp >= 2.6

# OCI flag -> (libseccomp attribute, the kernel's SECCOMP_FILTER_FLAG_* bit). We load the program
# ourselves (see set_mode_filter), so it is the kernel's bit that counts.
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": (ATTR_CTL_TSYNC, 1),
    "SECCOMP_FILTER_FLAG_LOG": (ATTR_CTL_LOG, 2),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (ATTR_CTL_SSB, 4),
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (ATTR_CTL_WAITKILL, 32),
}
FLAG_NEW_LISTENER = 8     # return a notify fd (the filter has SCMP_ACT_NOTIFY rules)
FLAG_TSYNC_ESRCH = 16     # with TSYNC + NEW_LISTENER the kernel wants this one too
_FLAG_NAMES = {1: "TSYNC", 2: "LOG", 4: "SPEC_ALLOW", 8: "NEW_LISTENER", 16: "TSYNC_ESRCH",
               32: "WAIT_KILLABLE_RECV"}

# Architecture tokens the ENOSYS stub treats specially (libseccomp's = the kernel's AUDIT_ARCH_*,
# except x32: the kernel reports x86_64 and sets bit 30 of the syscall number)
ARCH_X86_64 = 0xC000003E
ARCH_X32 = 0x4000003E
X32_SYSCALL_BIT = 0x40000000
_ARCH_S390 = (0x16, 0x80000016)  # syscall 0 there multiplexes numbers the kernel doesn't know
ENOSYS = 38

NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name: "no such syscall" (other negatives are pseudo-syscalls)

_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}.get(os.uname().machine)
_SECCOMP_SET_MODE_FILTER = 1


class _ArgCmp(Structure):
    """struct scmp_arg_cmp: argument index, operator, and one or two 64-bit values."""
    _fields_ = [("arg", c_uint), ("op", c_int), ("datum_a", c_uint64), ("datum_b", c_uint64)]


class _Version(Structure):
    _fields_ = [("major", c_uint), ("minor", c_uint), ("micro", c_uint)]


def _check(ret, what):
    """libseccomp returns -errno (not -1 and errno)."""
    if ret < 0:
        raise OSError(-ret, f"{what}: {os.strerror(-ret)}")
    return ret


class Filter:
    """One scmp_filter_ctx: rules are added, then `load` installs the program in this process."""

    def __init__(self, lib, ctx):
        self._lib, self._ctx = lib, ctx

    def set_attr(self, attr, value):
        _check(self._lib.seccomp_attr_set(self._ctx, attr, value), f"seccomp_attr_set({attr})")

    def add_arch(self, token):
        """Filter this architecture too (the native one is always in). Already in: not an error."""
        ret = self._lib.seccomp_arch_add(self._ctx, token)
        if ret != -17:  # EEXIST
            _check(ret, "seccomp_arch_add")

    def add_rule(self, action, syscall_nr, conditions=()):
        """conditions: (index, operator, value, value_two) tuples, AND-ed together."""
        n = len(conditions)
        arr = (_ArgCmp * max(n, 1))(*[_ArgCmp(*c) for c in conditions])
        _check(self._lib.seccomp_rule_add_array(self._ctx, action, syscall_nr, n, arr),
               "seccomp_rule_add")

    def load(self):
        _check(self._lib.seccomp_load(self._ctx), "seccomp_load")

    def notify_fd(self):
        """The listener fd of a filter loaded by seccomp_load that has SCMP_ACT_NOTIFY rules."""
        return _check(self._lib.seccomp_notify_fd(self._ctx), "seccomp_notify_fd")

    def export_bpf(self):
        """The generated program, as the kernel takes it: struct sock_filter[] (8 bytes each).
        Through a memfd, which needs no filesystem (init calls this after pivot_root)."""
        fd = os.memfd_create("mrunc-seccomp", os.MFD_CLOEXEC)
        try:
            _check(self._lib.seccomp_export_bpf(self._ctx, fd), "seccomp_export_bpf")
            size = os.lseek(fd, 0, 2)     # SEEK_END: its size
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)

    def export_pfc(self, fd):
        """Write the filter as readable pseudo-code to fd (for lessons and debugging)."""
        _check(self._lib.seccomp_export_pfc(self._ctx, fd), "seccomp_export_pfc")

    def release(self):
        if self._ctx:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None


class Libseccomp:
    """libseccomp.so.2, with the C prototypes of the functions we call (<seccomp.h>):
    (result, parameters...); a scmp_filter_ctx is a void *."""

    def __init__(self, path="libseccomp.so.2"):
        vp, u32, i, ui = c_void_p, c_uint32, c_int, c_uint
        lib = Library(path, {
            "seccomp_init": (vp, u32),
            "seccomp_release": (None, vp),
            "seccomp_arch_resolve_name": (u32, c_char_p),
            "seccomp_arch_add": (i, vp, u32),
            "seccomp_attr_set": (i, vp, i, u32),
            "seccomp_syscall_resolve_name": (i, c_char_p),
            "seccomp_rule_add_array": (i, vp, u32, i, ui, POINTER(_ArgCmp)),
            "seccomp_load": (i, vp),
            "seccomp_notify_fd": (i, vp),
            "seccomp_export_pfc": (i, vp, i),
            "seccomp_export_bpf": (i, vp, i),
            "seccomp_syscall_resolve_name_arch": (i, u32, c_char_p),
            "seccomp_version": (POINTER(_Version),),
            "seccomp_api_get": (ui,),
            "seccomp_arch_native": (u32,),
        })
        self._lib = lib
        v = lib.seccomp_version().contents
        self.version = (v.major, v.minor, v.micro)

    @property
    def version_string(self):
        return ".".join(map(str, self.version))

    def api_level(self):
        """What the kernel + library can do: 3 adds KILL_PROCESS and LOG, 5 NOTIFY, 6 the
        notify fixes runc asks for, 7 WAIT_KILLABLE_RECV."""
        return self._lib.seccomp_api_get()

    def new_filter(self, default_action):
        ctx = self._lib.seccomp_init(default_action)
        if not ctx:
            raise OSError(22, f"seccomp_init(0x{default_action:08x}): "
                              "default action not supported by libseccomp or the kernel")
        return Filter(self._lib, ctx)

    def resolve_syscall(self, name):
        """Syscall number on the native architecture (or a negative pseudo-number for a call that
        only exists on another one, e.g. socketcall); None if libseccomp has never heard of it."""
        nr = self._lib.seccomp_syscall_resolve_name(name.encode())
        return None if nr == NR_SCMP_ERROR else nr

    def resolve_syscall_arch(self, token, name):
        """Syscall number on architecture `token` (x32's carry bit 30); None if unknown there."""
        nr = self._lib.seccomp_syscall_resolve_name_arch(token, name.encode())
        return None if nr == NR_SCMP_ERROR else nr

    def native_arch(self):
        return self._lib.seccomp_arch_native()

    @staticmethod
    def flag_supported(bit):
        """Whether the running kernel takes this SECCOMP_FILTER_FLAG_* bit."""
        return kernel_flag_supported(bit)

    def resolve_arch(self, oci_name):
        """SCMP_ARCH_X86_64 -> libseccomp's token, or None if this libseccomp lacks it."""
        token = self._lib.seccomp_arch_resolve_name(oci_name[len("SCMP_ARCH_"):].lower().encode())
        return token or None


_lib = None


def load_library():
    """The process-wide Libseccomp, loaded on first use. OSError if libseccomp is not installed."""
    global _lib
    if _lib is None:
        try:
            _lib = Libseccomp()
        except OSError as e:
            raise OSError(2, f"linux.seccomp needs libseccomp.so.2 (apt-get install libseccomp2): {e}") from None
    return _lib


def library_identity():
    """Which libseccomp file this process has mapped, as [path, version, device, inode, size,
    mtime_ns]: what a program built with it depends on (mrunc.security.seccompcache). The path
    is the one the dynamic loader chose (from /proc/self/maps, so read it before pivot_root);
    the file's identity changes when the package is upgraded. None if it is not mapped."""
    path = None
    with open("/proc/self/maps", "rb") as f:
        for line in f:
            name = line.rpartition(b" ")[2].strip()
            if b"/libseccomp.so" in name:
                path = name.decode(_FS_ENCODING, _FS_ERRORS)     # os.fsdecode
                break
    if path is None or _lib is None:
        return None
    st = os.stat(path)
    return [path, _lib.version_string, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def kernel_flag_supported(flag_bit):
    """Ask the kernel whether it knows a SECCOMP_FILTER_FLAG_* bit, without installing anything:
    seccomp(SET_MODE_FILTER, flags, NULL) checks the flags first (EINVAL if unknown), then fails
    on the NULL program (EFAULT) or on privileges (EACCES)."""
    if _SYS_SECCOMP is None:
        return False
    if flag_bit == FLAGS["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"][1]:
        flag_bit |= FLAG_NEW_LISTENER  # only valid together with a listener
    ret = _libc.syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, c_uint(flag_bit), None)
    return ret == -1 and get_errno() != 22


# ---- loading a program ourselves, with an ENOSYS stub in front (as runc does) ------------------------

class _Fprog(Structure):
    """struct sock_fprog: instruction count and a pointer to them."""
    _fields_ = [("len", c_ushort), ("filter", c_void_p)]


def flag_names(flags):
    return "|".join(n for b, n in _FLAG_NAMES.items() if flags & b) or "0"


def set_mode_filter(program, flags):
    """seccomp(SECCOMP_SET_MODE_FILTER, flags, program): install `program` (bytes of struct
    sock_filter) in this process. Returns the notify fd with FLAG_NEW_LISTENER, else None."""
    if _SYS_SECCOMP is None:
        raise OSError(38, f"seccomp: not supported on {os.uname().machine} by mrunc")
    buf = char_array(program)
    prog = _Fprog(len(program) // 8, addressof(buf))
    ret = _libc.syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, c_uint(flags), byref(prog))
    if ret == -1:
        err = get_errno()
        raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER, {flag_names(flags)}): {os.strerror(err)}")
    return ret if flags & FLAG_NEW_LISTENER else None


# classic BPF opcodes (linux/filter.h): what a seccomp program is made of
_LD_W_ABS, _JA, _JEQ, _JGT, _JSET, _RET = 0x20, 0x05, 0x15, 0x25, 0x45, 0x06


def enosys_stub(last):
    """A few instructions to put in front of a profile's program: a syscall numbered above the
    highest one the profile names (for its architecture) gets ENOSYS instead of the default.

    Why: an allow-list profile written before a syscall existed answers it with EPERM, and libc
    takes EPERM as "refused" where ENOSYS means "not here, use the old call" (clone3 -> clone,
    faccessat2 -> faccessat). runc prepends the same kind of stub.
    `last` maps libseccomp arch tokens to that highest number; the seccomp_data the program
    reads holds the syscall number at offset 0 and the AUDIT_ARCH at offset 4.
    """
    by_arch = {}
    for token, nr in last.items():
        by_arch.setdefault(ARCH_X86_64 if token == ARCH_X32 else token, {})[token] = nr
    code = [(_LD_W_ABS, 4, None, None)]
    for arch in sorted(by_arch):
        code.append((_JEQ, arch, f"arch-{arch}", None))
    code.append((_JA, "filter", None, None))
    for arch in sorted(by_arch):
        lasts = by_arch[arch]
        code += [("label", f"arch-{arch}"), (_LD_W_ABS, 0, None, None)]
        if arch == ARCH_X86_64:  # one AUDIT_ARCH, two tables: bit 30 says which
            code.append((_JSET, X32_SYSCALL_BIT, "x32", None))
            parts = [(ARCH_X86_64, None), (ARCH_X32, "x32")]
        else:
            if arch in _ARCH_S390:
                code.append((_JEQ, 0, "enosys", None))
            parts = [(arch, None)]
        for token, label in parts:
            if label:
                code.append(("label", label))
            if token in lasts:
                code.append((_JGT, lasts[token], "enosys", None))
            code.append((_JA, "filter", None, None))
    code += [("label", "enosys"), (_RET, ACTIONS["SCMP_ACT_ERRNO"][0] | ENOSYS, None, None),
             ("label", "filter")]
    return _assemble(code)


def _assemble(code):
    """(op, k, jump-if-true label, None) tuples and ("label", name) -> bytes. Conditional jumps
    are relative and 8-bit: fine for a stub of a few dozen instructions."""
    import _struct as struct    # struct's C module (built in), what struct.py re-exports
    where, pc = {}, 0
    for op, *rest in code:
        if op == "label":
            where[rest[0]] = pc
        else:
            pc += 1
    out, pc = [], 0
    for op, *rest in code:
        if op == "label":
            continue
        k, jt, jf = rest
        if op == _JA:
            k = where[k] - pc - 1
        jt = 0 if jt is None else where[jt] - pc - 1
        assert 0 <= jt <= 255 and k >= 0
        out.append(struct.pack("=HBBI", op, jt, 0, k))
        pc += 1
    return b"".join(out)
