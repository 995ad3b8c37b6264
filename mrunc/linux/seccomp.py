"""libseccomp through ctypes: the few calls a runtime needs to turn linux.seccomp into a filter.

A seccomp filter is a small BPF program the kernel runs on every system call the process makes,
before the call does anything: it looks at the syscall number, the architecture and the six
arguments, and returns a verdict — allow, fail with an errno, kill, raise SIGSYS, log, ask a
tracer, or ask a supervisor over a "notify" fd. Writing that BPF by hand means knowing every
architecture's syscall numbers and multiplexed calls (x86's socketcall); libseccomp knows them, so
we describe rules ("mkdir -> ERRNO(EPERM)") and it generates and loads the program.

Why our own bindings and not a package (decided for mrunc, re-check if the needs grow):
  * `pyseccomp` (PyPI, ctypes, last release 0.1.2 in January 2021) costs ~25 ms to import, most of
    it `ctypes.util.find_library`, which runs `ldconfig -p` in a subprocess; it has no attribute
    for WAIT_KILLABLE_RECV; and it would be a second ctypes module beside mrunc.linux, which the
    architecture keeps as the only one. Debian's `python3-seccomp` only exists for the system
    interpreter, not for our venv.
  * What we need is a dozen functions with plain C types (below). Loading the library by its
    soname costs well under a millisecond, and only when a config asks for seccomp.

The library is loaded by `load_library()`, which init calls *before* pivot_root: afterwards the
host's /usr/lib is out of reach. Nothing here runs at import time except constants.

The name tables (OCI names -> libseccomp values) are here too, so the config checks, `features`
and the security phase share one source.
"""
import ctypes
import os

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

# OCI flag -> (libseccomp attribute, the kernel's SECCOMP_FILTER_FLAG_* bit)
FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": (ATTR_CTL_TSYNC, 1),
    "SECCOMP_FILTER_FLAG_LOG": (ATTR_CTL_LOG, 2),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (ATTR_CTL_SSB, 4),
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (ATTR_CTL_WAITKILL, 32),
}
_FLAG_NEW_LISTENER = 8

NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name: "no such syscall" (other negatives are pseudo-syscalls)

_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}.get(os.uname().machine)
_SECCOMP_SET_MODE_FILTER = 1


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp: argument index, operator, and one or two 64-bit values."""
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


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
        """The listener fd of a loaded filter that has SCMP_ACT_NOTIFY rules."""
        return _check(self._lib.seccomp_notify_fd(self._ctx), "seccomp_notify_fd")

    def export_pfc(self, fd):
        """Write the filter as readable pseudo-code to fd (for lessons and debugging)."""
        _check(self._lib.seccomp_export_pfc(self._ctx, fd), "seccomp_export_pfc")

    def release(self):
        if self._ctx:
            self._lib.seccomp_release(self._ctx)
            self._ctx = None


class Libseccomp:
    """libseccomp.so.2, with argument types declared for the functions we call."""

    def __init__(self, path="libseccomp.so.2"):
        lib = ctypes.CDLL(path)
        vp, u32, i, ui = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint
        for name, res, args in (
            ("seccomp_init", vp, [u32]),
            ("seccomp_release", None, [vp]),
            ("seccomp_arch_resolve_name", u32, [ctypes.c_char_p]),
            ("seccomp_arch_add", i, [vp, u32]),
            ("seccomp_attr_set", i, [vp, i, u32]),
            ("seccomp_syscall_resolve_name", i, [ctypes.c_char_p]),
            ("seccomp_rule_add_array", i, [vp, u32, i, ui, ctypes.POINTER(_ArgCmp)]),
            ("seccomp_load", i, [vp]),
            ("seccomp_notify_fd", i, [vp]),
            ("seccomp_export_pfc", i, [vp, i]),
            ("seccomp_version", ctypes.POINTER(_Version), []),
            ("seccomp_api_get", ui, []),
        ):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = res, args
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


def kernel_flag_supported(flag_bit):
    """Ask the kernel whether it knows a SECCOMP_FILTER_FLAG_* bit, without installing anything:
    seccomp(SET_MODE_FILTER, flags, NULL) checks the flags first (EINVAL if unknown), then fails
    on the NULL program (EFAULT) or on privileges (EACCES)."""
    if _SYS_SECCOMP is None:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if flag_bit == FLAGS["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"][1]:
        flag_bit |= _FLAG_NEW_LISTENER  # only valid together with a listener
    ret = libc.syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, ctypes.c_uint(flag_bit), None)
    return ret == -1 and ctypes.get_errno() != 22
