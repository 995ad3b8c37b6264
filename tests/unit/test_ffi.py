"""mrunc.linux.ffi: calling C with `_ctypes` alone — prototypes, errno, structures, the kernel's
layouts — and that the syscall layer never imports the `ctypes` package."""
import errno
import os
import subprocess
import sys

import _ctypes
import pytest

from mrunc import linux
from mrunc.linux import fanotify, ffi


def test_prototypes_call_libc_and_keep_errno():
    libc = ffi.Library(None, {"getpid": (ffi.c_int,), "close": (ffi.c_int, ffi.c_int)})
    assert libc.getpid() == os.getpid()
    assert libc.close(-1) == -1 and ffi.get_errno() == errno.EBADF


def test_argtypes_refuse_what_c_would_misread():
    with pytest.raises(_ctypes.ArgumentError):
        linux._libc.mount("not bytes", b"/x", b"tmpfs", 0, None)


def test_variadic_syscall_passes_ints_bytes_and_arrays():
    """syscall(2) has no prototype: write(2) through it, with a char array, lands in a pipe."""
    r, w = os.pipe()
    try:
        sys_write = 1 if os.uname().machine == "x86_64" else 64
        buf = ffi.char_array(b"hello")
        assert linux._libc.syscall(sys_write, w, buf, ffi.c_size_t(5)) == 5
        assert os.read(r, 10) == b"hello"
        assert linux._libc.syscall(sys_write, -1, buf, ffi.c_size_t(5)) == -1
        assert ffi.get_errno() == errno.EBADF
    finally:
        os.close(r)
        os.close(w)


def test_functions_are_made_on_first_use_and_a_missing_one_is_refused_at_once():
    """A prototype object is made when its function is first asked for (a process calls few);
    every symbol is still looked up when the library is loaded."""
    libc = ffi.Library(None, {"getpid": (ffi.c_int,), "getppid": (ffi.c_int,)})
    assert "getpid" not in vars(libc)
    assert libc.getpid() == os.getpid() and "getpid" in vars(libc) and "getppid" not in vars(libc)
    assert libc.getpid is libc.getpid
    with pytest.raises(AttributeError):
        libc.getuid         # not declared
    with pytest.raises(OSError):
        ffi.Library(None, {"mrunc_no_such_function": (ffi.c_int,)})


def test_a_missing_library_is_an_oserror():
    with pytest.raises(OSError):
        ffi.Library("libmrunc-no-such-library.so.9", {})


@pytest.mark.parametrize("struct, size", [
    (linux._CloneArgs, 88),       # struct clone_args up to .cgroup (CLONE_ARGS_SIZE_VER2)
    (linux._OpenHow, 24),         # struct open_how (OPEN_HOW_SIZE_VER0)
    (linux._Rlimit, 16),          # struct rlimit64
    (linux._CapHeader, 8),        # struct __user_cap_header_struct
    (linux._CapData, 12),         # struct __user_cap_data_struct
    (fanotify._Event, 24),        # FAN_EVENT_METADATA_LEN
])
def test_structures_have_the_kernels_sizes(struct, size):
    assert ffi.sizeof(struct) == size


def test_the_syscall_layer_imports_no_ctypes_package():
    code = ("import sys; import mrunc.linux, mrunc.linux.seccomp, mrunc.linux.fanotify; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ctypes', 'struct')))")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(linux.__file__))))
    out = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = [{root!r}]; "
                          + code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
