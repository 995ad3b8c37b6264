"""Calling C from Python with `_ctypes` alone: the few C types and the function-call machinery
that the syscall layer (mrunc.linux, mrunc.linux.seccomp) uses.

Why not `import ctypes`
-----------------------
`ctypes` is a Python package over the C extension `_ctypes`, which does all the work: C types,
structures, arrays, pointers, loading a library and calling into it. On import, the package
defines every C type C has (wide chars, long doubles, both byte orders of every structure…),
checks each one's size with `struct`, imports `types` and `ctypes._endian`, and makes a handle on
the Python library itself — none of which a container runtime uses. Measured on the project's
2-core VM (CPU time, isolated interpreter): `import ctypes` costs 3.2-3.7 ms and 1.0 MiB of peak
memory; `import _ctypes` 0.6-0.7 ms and 0.1 MiB, and this module ~0.1 ms more. `create`, `run`
and `exec` are started once per container by an engine, and pay it every time: with the package,
their peak memory was above runc's.

What `_ctypes` gives, and how this module uses it:
  * A C type is a subclass of `_SimpleCData` whose `_type_` is a `struct` format letter ("i" is
    int, "L" unsigned long, "Q" a 64-bit unsigned, "z" a char *, "P" a void *). As a field, an
    argument type or a result type, it converts to and from a Python int (bytes, None).
  * `Structure` with `_fields_` lays fields out as a C compiler would; `T * n` is the type of an
    array of n T's; `byref(x)` passes &x; `addressof`, `sizeof`, `from_buffer(bytearray)` (a C
    view of Python memory) are what their names say.
  * `dlopen(name, mode)` loads a library (None: this program and what it linked — libc) and
    `dlsym(handle, name)` gives a symbol's address.
  * A subclass of `CFuncPtr`, called with an address, is a C function you can call. Its
    `_flags_` say how to call it; with FUNCFLAG_USE_ERRNO, `_ctypes` saves errno right after
    the call, where `get_errno()` reads it (the interpreter may itself change errno before we
    look). `restype` is the result's C type, `argtypes` the parameters' (each argument is
    converted to it, or refused).
"""
import _ctypes
from _ctypes import Structure, addressof, byref, get_errno, sizeof  # noqa: F401  (re-exported)


def _c_type(name, letter):
    """A C type: a subclass of `_SimpleCData` named by its `struct` format letter."""
    return type(name, (_ctypes._SimpleCData,), {"_type_": letter})


# The C types, named as in C (<stdint.h> for the sized ones). Only those mrunc uses.
c_int, c_uint = _c_type("c_int", "i"), _c_type("c_uint", "I")
c_long, c_ulong = _c_type("c_long", "l"), _c_type("c_ulong", "L")
c_ushort, c_uint8 = _c_type("c_ushort", "H"), _c_type("c_uint8", "B")
c_uint64 = _c_type("c_uint64", "Q")
c_char = _c_type("c_char", "c")
c_char_p = _c_type("c_char_p", "z")     # const char *: bytes or None (NULL) in, bytes out
c_void_p = _c_type("c_void_p", "P")     # void *: an int, None, an array, byref(...)
c_int32, c_uint16, c_uint32 = c_int, c_ushort, c_uint
c_size_t = c_ulong      # on Linux, size_t is unsigned long on every ABI
POINTER = _ctypes.POINTER


class _Function(_ctypes.CFuncPtr):
    """A C function that reports failure in errno (libc, system calls), called the C way."""
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class Library:
    """A shared library and the functions we call in it, each an attribute made from its C
    prototype: `prototypes` maps a name to (result type, parameter types...); a result type of
    None is void. A `...` parameter list is a variadic function (syscall(2)): no conversion, each
    argument is passed as what it is (an int as an int, bytes as char *, None as NULL, byref(x)
    as &x; a c_uint(...) or c_size_t(...) as that type).

    Every symbol is looked up now (a library without one of them is refused here, an OSError),
    but its function object is made the first time it is asked for, then kept as an attribute:
    setting a prototype's types up costs more than the lookup, and a process calls few of the
    functions — `exec` none of the mount calls, the runtime side of `create` none of init's."""

    def __init__(self, name, prototypes):
        handle = _ctypes.dlopen(name, _ctypes.RTLD_LOCAL)     # OSError if it is not there
        self._symbols = {fname: (_ctypes.dlsym(handle, fname), proto)
                         for fname, proto in prototypes.items()}

    def __getattr__(self, fname):       # only for a function not made yet
        if fname.startswith("_"):       # (_symbols itself, before __init__ set it)
            raise AttributeError(fname)
        try:
            address, (restype, *argtypes) = self._symbols[fname]
        except KeyError:
            raise AttributeError(fname) from None
        fn = _Function(address)
        fn.restype = restype
        if argtypes != [...]:
            fn.argtypes = argtypes
        setattr(self, fname, fn)
        return fn


def char_array(data):
    """A C array of char holding a copy of `data` (bytes): memory C may read and write."""
    return (c_char * len(data)).from_buffer_copy(data)
