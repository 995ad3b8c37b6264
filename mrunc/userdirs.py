"""Directories that belong to one user: where a user's containers keep their state and bundles.

Many students share one server. Whatever a container depends on — its state (the pid `kill` will
signal, the config `delete` trusts) and its bundle (the config.json `run` reads) — must live
where no other user can create, replace or rename anything. A predictable path in a shared
directory such as /tmp fails that: another user can create `/tmp/mrunc-lab-1001` first and then
owns everything put in it.

So a state directory is used only after a check, every time:
- the path itself is a real directory (lstat: not a symlink) owned by the caller (euid),
  writable by nobody else (no group/other write bit);
- each directory above it (after resolving symlinks) is owned by root or the caller and is not
  writable by others — or is sticky (/tmp): there only an entry's owner may rename or remove it.

Where (runc's choice for the first two, the `--root` default):
    root                      /run/mrunc            (sandbox: /run/mrunc-lab)
    XDG_RUNTIME_DIR is set    $XDG_RUNTIME_DIR/mrunc  (the user's tmpfs, 0700, made at login)
    /run/user/<uid> is ours   /run/user/<uid>/mrunc   (a login session exists, the variable was lost)
    otherwise                 ~/.local/state/mrunc  (a spawned notebook server has no session)
"""
import posix as os  # os's C module: the same calls, without os's ≈ 1 ms import (mrunc.paths)
from _stat import S_IMODE, S_ISDIR, S_ISLNK, S_ISVTX   # and stat's

from . import paths


# root's runtime base, the FHS's /run: root's state roots are /run/mrunc and /run/mrunc-lab (runc's
# is /run/runc).
RUN = "/run"
# root's state root: the default of mrunc.api's functions (the CLI's is per user: default_root)
DEFAULT_ROOT = paths.join(RUN, "mrunc")


def __getattr__(name):
    """userdirs.UnsafeDir — mrunc.errors' (a directory someone else made or can write: refused),
    where its callers have it. Imported when asked for, or to refuse: a sound state root, as
    every command has, costs `state` no error classes (≈ 0.1 ms)."""
    if name == "UnsafeDir":
        from .errors import UnsafeDir
        return UnsafeDir
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _refused(msg):
    from .errors import UnsafeDir
    return UnsafeDir(msg)


def _who(uid):
    import pwd      # only to name a user in a refusal: not on the way of every command
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def check_private(path, what="state directory"):
    """Raise UnsafeDir unless `path` is a directory only the caller controls (see the module doc)."""
    euid = os.geteuid()
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise _refused(f"{what} {path}: does not exist") from None
    except PermissionError:
        raise _refused(f"{what} {path}: not yours (permission denied on the way to it)") from None
    if S_ISLNK(st.st_mode):
        raise _refused(f"{what} {path}: is a symlink (refusing it: it could point anywhere)")
    if not S_ISDIR(st.st_mode):
        raise _refused(f"{what} {path}: not a directory")
    if st.st_uid != euid:
        raise _refused(f"{what} {path}: owned by {_who(st.st_uid)}, not you ({_who(euid)}); "
                        "refusing to use it (remove it, or choose another with --root)")
    if st.st_mode & 0o022:
        raise _refused(f"{what} {path}: writable by group or others (mode "
                        f"{S_IMODE(st.st_mode):04o}); refusing to use it (chmod go-w it)")
    _check_ancestors(_real_parent(path), what, path)


def _real_parent(path):
    """The directory `path` is in, every symlink on the way resolved (as os.path.realpath would),
    from the kernel: `path` (a directory, not a symlink: checked) opened and its name read back."""
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        return paths.dirname(os.readlink(f"/proc/self/fd/{fd}"))
    finally:
        os.close(fd)


def _check_ancestors(d, what, path):
    """Nobody but root and the caller may rename or replace anything on the way to `path`."""
    euid = os.geteuid()
    while True:
        st = os.stat(d)
        if st.st_uid not in (0, euid):
            raise _refused(f"{what} {path}: {d} above it is owned by {_who(st.st_uid)}; "
                            "refusing to use it")
        if st.st_mode & 0o022 and not st.st_mode & S_ISVTX:
            raise _refused(f"{what} {path}: {d} above it is writable by others (mode "
                            f"{S_IMODE(st.st_mode):04o}, not sticky); refusing to use it")
        if d == "/":
            return
        d = paths.dirname(d)


def check_if_present(path, what="state directory"):
    """check_private, unless nothing is there yet (a directory we cannot even see is not nothing)."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return path
    except PermissionError:
        pass
    check_private(path, what)
    return path


def ensure_private(path, mode=0o700, what="state directory"):
    """Create `path` (and missing parents) if it is missing, then check it. Returns path."""
    try:
        paths.makedirs(path, mode=mode, exist_ok=True)
    except OSError as e:
        raise _refused(f"{what} {path}: cannot create it: {e.strerror}") from None
    check_private(path, what)
    return path


def runtime_base():
    """The caller's own runtime directory (see the module doc), checked; None for root."""
    euid = os.geteuid()
    if euid == 0:
        return None
    xdg = getenv("XDG_RUNTIME_DIR")
    if xdg:
        check_private(xdg, "XDG_RUNTIME_DIR")
        return xdg
    run_user = f"/run/user/{euid}"
    from .errors import UnsafeDir
    try:
        check_private(run_user, "runtime directory")
        return run_user
    except UnsafeDir:
        pass
    import pwd
    home = pwd.getpwuid(euid).pw_dir
    return ensure_private(paths.join(home, ".local", "state"), what="state base")


def getenv(name):
    """os.getenv(name): the environment as the program has it (a notebook may have changed
    it) — without importing os (≈ 1 ms) when nothing has: then nothing can have changed it, and
    posix's copy, as bytes, is that same environment (decoded as os decodes it)."""
    import sys
    if "os" in sys.modules:
        return sys.modules["os"].environ.get(name)
    value = os.environ.get(name.encode())
    return None if value is None else value.decode(sys.getfilesystemencoding(), "surrogateescape")


def default_root(name="mrunc"):
    """The default state root: /run/<name> for root, else <runtime_base>/<name>."""
    return paths.join(runtime_base() or RUN, name)
