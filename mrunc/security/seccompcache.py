"""security.seccompcache: the seccomp programs a user's creates built, kept for the next create.

Every engine (podman, containerd) passes the same default profile on every create: ~350 syscall
names, three architectures. Turning that into BPF costs libseccomp ~10 ms of CPU and init
1.45 MiB of memory (0.3 to map the library, 0.7 for the rules, 0.4 to generate the program) —
the same bytes each time. So a create looks here first: when this profile was built before,
init loads the kept program as it is, and never maps libseccomp.

**The key** is everything the program depends on, but the library:
  * the profile — linux.seccomp without listenerPath/listenerMetadata (where the notify fd goes,
    not what the program does), keys sorted, so an equal profile in another order is the same;
  * the machine (libseccomp's native architecture is the one it was compiled for), the kernel
    release (which flags and actions the kernel takes decides what we ask of libseccomp);
  * mrunc's own generator: the two seccomp modules (the ENOSYS stub, how rules are split);
  * how the dynamic loader finds libraries: /etc/ld.so.cache (ldconfig rewrites it whenever a
    library is installed) and LD_LIBRARY_PATH.
Its SHA-256 names the entry (the first half) and heads it (whole), and a lookup compares that:
the entry does not repeat the profile, which create would parse for nothing.
**The library** (its version, its generated code) cannot be known without mapping it — the very
cost we spare — so init, which maps it to build, records which file it was (path, version,
device, inode, size, mtime: linux.seccomp.library_identity) and a lookup stats that path: an
upgraded libseccomp is another file, and the entry is built again.

**Where**: <state root>/.seccomp/, in the caller's own state root (--root, or
userdirs.default_root: /run/mrunc for root, $XDG_RUNTIME_DIR/mrunc for a user) — checked at every
use as userdirs checks a state dir: ours, nobody else may write it or anything above it. An entry
is used only if it is a regular file we own that group and others may not write, and whole (its
length is in its header): anything else is ignored and built again. Written as a temp file renamed
into place; at most KEEP entries, the least recently used go first.
"""
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from .. import paths, userdirs
from ..errors import MruncError
from ..state import SECCOMP_CACHE as DIR   # an id state.validate_id refuses: never a container's
from .seccomp import Program

KEEP = 8           # entries kept per user: a few engines' profiles, each ~10–30 KiB


def cache_dir(root):
    return paths.join(root, DIR)


def key(cfg):
    """(file name, SHA-256) of what the program depends on, but libseccomp."""
    import _sha256
    from ..linux import seccomp as lsc
    from . import seccomp as sc
    u = os.uname()
    material = {
        "seccomp": {k: v for k, v in cfg.items() if k not in ("listenerPath", "listenerMetadata")},
        "machine": u.machine, "kernel": u.release,
        "generator": [_file_id(m.__file__) for m in (sc, lsc)],
        "loader": [_file_id("/etc/ld.so.cache"), userdirs.getenv("LD_LIBRARY_PATH")],
    }
    digest = _sha256.sha256(repr(_canonical(material)).encode()).hexdigest()   # (see exec_key)
    return digest[:32], digest


def _canonical(value):
    """Dict keys in order, recursively: the same profile written in another order hashes the same."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _file_id(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def lookup(root, cfg, sys):
    """The program kept for profile `cfg` under state root `root`, or None: not kept, or not to be
    trusted (then it is built again, and `store` replaces it). The read is in `sys`'s record;
    the key is the program's meta["config"]."""
    name, digest = key(cfg)
    path = paths.join(cache_dir(root), name)
    with sys.around("read", path) as call:
        try:
            userdirs.check_private(cache_dir(root), "seccomp cache")
        except MruncError:
            prog = None     # none yet, or not ours: never read from it
        else:
            prog = Program.read(path, digest)
        if prog is not None and not _same_library(prog.meta.get("library")):
            prog = None
        call.note = ("seccomp program kept by an earlier create: libseccomp not needed"
                     if prog else "no seccomp program kept for this profile: init builds it")
    if prog is not None:
        _touch(path)
    return prog


def for_create(root, state_dir, cfg, sys):
    """What create's clone child asks, before it enters any namespace (init.clone_child): the
    kept program for `cfg`, also kept for the container's execs (in `state_dir`); or None, and
    init builds it. There, not in the runtime: these imports and reads then weigh on two short
    processes, not on the runtime, whose memory is create's peak."""
    from .seccomp import exec_key, keep_for_exec
    prog = lookup(root, cfg, sys)
    if prog is not None:
        prog.origin = "kept by an earlier create (the user's seccomp cache)"
        keep_for_exec(state_dir, exec_key(cfg), prog)
    return prog


def forget(root):
    """Remove the programs kept under state root `root`: a sandbox's root is its own, and goes
    with it (mrunc.sandbox.lab: Sandbox.close), the programs its containers built too."""
    from ..state import remove_flat
    remove_flat(cache_dir(root))


def _same_library(lib):
    """Is the libseccomp that built it still the file the loader would map?"""
    if not isinstance(lib, list) or len(lib) != 6 or not isinstance(lib[0], str):
        return False
    return _file_id(lib[0]) == [lib[0]] + lib[2:]


def _touch(path):
    """Recently used: eviction goes by mtime."""
    try:
        os.utime(path)
    except OSError:
        pass


def store(root, digest, prog, library, sys):
    """Keep `prog`, built by `library` (linux.seccomp.library_identity) from the profile whose
    key is `digest`, for the next create. Best effort: a cache that cannot be written only
    means building next time."""
    from ..state import write_atomic
    if not library:
        return
    d = cache_dir(root)
    path = paths.join(d, digest[:32])
    try:
        with sys.around("rename", path, "seccomp program kept for the next create"):
            userdirs.ensure_private(d, what="seccomp cache")
            write_atomic(path, prog.dump(digest, library=library))
        _evict(d)
    except (OSError, MruncError):
        pass


def _evict(d):
    """At most KEEP entries: the least recently used go (temp files of a crashed write too)."""
    entries = []
    with os.scandir(d) as it:
        for e in it:
            entries.append((e.stat(follow_symlinks=False).st_mtime_ns, e.path))
    entries.sort()
    for _, path in entries[:-KEEP]:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
