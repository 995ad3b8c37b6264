"""Phase "mount": a private view of the mounts, the rootfs bound on itself, then mounts[] in order."""
import errno
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)
import _stat as stat  # the C module under `stat`, as posix is under os

from .. import paths
from ..linux import (MOUNT_ATTR__ATIME, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME,
                     MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY,
                     MOUNT_ATTR_STRICTATIME, MS_BIND, MS_NOATIME, MS_NODEV, MS_NODIRATIME, MS_NOEXEC,
                     MS_NOSUID, MS_NOSYMFOLLOW, MS_PRIVATE, MS_RDONLY, MS_REC, MS_RELATIME, MS_REMOUNT,
                     MS_SLAVE, MS_STRICTATIME, MS_UNBINDABLE)
from ..cgroups.fs import unescape
from ..spec.mountopts import PROPAGATION_FLAGS, parse_mount_options
from .inroot import clean, fdpath, lstat_at, open_in_root, open_root
from .sources import opener

# The only places under /proc a mount may go (lxcfs fakes these files); any other mount there
# could hide what the kernel says, or fake a file we write to (S8, S9). Same list as runc's.
_PROC_BINDS_ALLOWED = frozenset((
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
))
MOUNTINFO = "/proc/self/mountinfo"
_ATIME = MS_NOATIME | MS_RELATIME | MS_STRICTATIME


def prepare_root(sys, config, bundle):
    """Cut propagation from us to the host, then make the rootfs a mount point; return its path.

    A new mount namespace starts as a copy of the host's, and on most hosts (systemd) every mount
    is *shared*: what we mount would appear on the host too, and our unmounts would unmount
    there. So the very first call makes `/` and everything under it a *slave* (MS_REC|MS_SLAVE):
    mounts made on the host still reach us (a USB stick, a volume plugged later), nothing of ours
    goes back (S19). linux.rootfsPropagation replaces that default.

    Then the rootfs is bound onto itself: pivot_root(2) only accepts a mount point as the new root,
    and a plain directory of the host's disk is not one.
    """
    prop = (config.get("linux") or {}).get("rootfsPropagation")
    flags = PROPAGATION_FLAGS[prop] if prop else MS_SLAVE | MS_REC
    if flags & MS_UNBINDABLE:
        # An unbindable mount cannot be the source of the bind below; finish_root applies it.
        flags = MS_PRIVATE | MS_REC
    sys.mount(None, "/", None, flags)
    rootfs = rootfs_path(config, bundle)
    if not (flags & MS_REC and flags & (MS_SLAVE | MS_PRIVATE)):
        _make_parent_private(sys, rootfs)
    sys.mount(rootfs, rootfs, None, MS_BIND | MS_REC)
    return rootfs


def rootfs_path(config, bundle):
    """root.path made absolute (relative to the bundle) with every symlink resolved — in the mount
    namespace we are in, which may be a joined one."""
    rootfs = paths.realpath(paths.join(bundle, config["root"]["path"]))
    if not paths.isdir(rootfs):
        raise NotADirectoryError(errno.ENOTDIR, f"root.path {rootfs}: not a directory", rootfs)
    return rootfs


def _make_parent_private(sys, rootfs):
    """pivot_root refuses a new root whose parent mount is shared, and a bind from a shared mount
    joins its peer group (it would show on the host). Only when `/` was not made rslave/rprivate
    can that be the case: then make the mount holding the rootfs private (it alone)."""
    best, shared = "", False
    with open(MOUNTINFO) as f:
        for line in f:
            fields = line.split(" - ")[0].split()
            mnt = unescape(fields[4])  # the kernel writes space, tab, newline, backslash as \\ooo
            if (rootfs + "/").startswith(mnt.rstrip("/") + "/") and len(mnt) >= len(best):
                best, shared = mnt, any(x.startswith("shared:") for x in fields[6:])
    if shared:
        sys.mount(None, best, None, MS_PRIVATE)


def mount_entries(sys, config, rootfs, bundle, skip=("cgroup", "cgroup2"), open_source=None):
    """Every mounts[] entry, in the order listed (the spec's MUST: /dev before /dev/pts).

    Filesystems of a type in `skip` wait for mount_cgroup_entries: a cgroup filesystem shows the
    cgroup namespace of whoever mounts it, and ours does not exist yet. `open_source(path,
    recursive)` gives each bind source as a BindSource; by default init opens it (see sources).
    """
    open_source = open_source or opener(sys)
    root_fd = open_root(rootfs)  # opened after prepare_root: the bind mount, not the directory
    try:
        for i, m in enumerate(config.get("mounts") or []):
            opts = m.get("options") or []
            if m.get("type") in skip and not {"bind", "rbind"} & set(opts):
                continue
            try:
                _mount_entry(sys, m, rootfs, root_fd, bundle, open_source)
            except OSError as e:
                raise OSError(e.errno, f"mounts[{i}] {m['destination']}: {e.strerror}",
                              m["destination"]) from None
    finally:
        os.close(root_fd)


def bind_cgroup_entries(sys, config, rootfs, dirs):
    """The cgroup entries of mounts[] when there is no cgroup namespace to mount them in.

    Three cases (process.parent._needs_cgroup_bind): a user namespace (the kernel lets it mount
    a cgroup filesystem only inside a cgroup namespace of its own), cgroup v1 (a fresh v1 mount
    would show the host's whole tree, so the container would read the root's limits, not its
    own), and cgroup v2 (a mount from the host's cgroup namespace resets the host's cgroup2
    options). Then do what runc does for the first two:
    bind the container's own cgroup directories from the host's hierarchies (read-only unless
    the entry says rw) — the container sees its own cgroup, never the host's tree (S15).
    `dirs` is [(name under the destination, host directory)]: one ("", dir) on a cgroup v2
    host, one per v1 hierarchy ("memory", "cpu,cpuacct"…) otherwise.
    Called before pivot_root, while the host's directories are still in sight. Always read-only:
    written to, the container's own cgroup directory would let it raise its own limits and pull
    any process it can name into its cgroup (validation refuses an explicit "rw").
    """
    keep = {"nosuid", "nodev", "noexec", "relatime"}
    entries = []
    for i, m in enumerate(config.get("mounts") or []):
        opts = m.get("options") or []
        if m.get("type") not in ("cgroup", "cgroup2") or {"bind", "rbind"} & set(opts):
            continue
        flags = [o for o in opts if o in keep] + ["ro"]
        dest = clean(m["destination"])
        at = f"mounts[{i}] {m['destination']}"
        if len(dirs) == 1 and dirs[0][0] == "":
            entries.append((at, {"destination": dest, "type": "bind", "source": dirs[0][1],
                                 "options": ["rbind", *flags]}))
            continue
        entries.append((at, {"tree": dest, "options": flags, "dirs": dirs}))
    # the runtime's own directories, in a cgroupfs open to all: opened by init itself, as
    # detached copies (open_tree), whose ro/nosuid… are set before they are attached
    open_source = opener(sys, detached=True)
    root_fd = open_root(rootfs)
    try:
        for at, e in entries:
            try:
                if "tree" in e:
                    _cgroup_tree(sys, e, rootfs, root_fd, open_source)
                else:
                    _mount_entry(sys, e, rootfs, root_fd, "/", open_source)
            except OSError as err:
                where = e.get("destination") or e.get("tree")
                raise OSError(err.errno, f"{at}: {where}: "
                                         f"{err.strerror}", err.filename) from None
    finally:
        os.close(root_fd)


def _cgroup_tree(sys, e, rootfs, root_fd, open_source):
    """cgroup v1 without a cgroup namespace: a tmpfs at the destination, in it each hierarchy's
    directory bound read-only, and the comount links (cpu -> cpu,cpuacct).

    The tmpfs is made with fsmount, so we hold its root by the fd that made it: a filesystem of
    ours, in our mount namespace alone — no other process can name anything in it, and no name
    in it can be swapped, moved or linked elsewhere. Its directories, binds and links are made
    by name in that fd, with none of the checks a path in the rootfs needs (inroot): there is
    nothing to race. Only the destination itself is looked up in the rootfs (and attached to).
    A kernel without fsmount (before 5.2): the same mounts, one mounts[] entry at a time."""
    dest, flags, dirs = e["tree"], e["options"], e["dirs"]
    names = [name for name, _ in dirs]
    attrs = 0
    for option, attr in (("nosuid", MOUNT_ATTR_NOSUID), ("nodev", MOUNT_ATTR_NODEV),
                         ("noexec", MOUNT_ATTR_NOEXEC)):
        attrs |= attr if option in flags else 0
    try:
        fs = sys.fsmount("tmpfs", attrs, (("source", "tmpfs"), ("mode", "755")))
    except OSError as err:
        if err.errno != errno.ENOSYS:
            raise
        _mount_entry(sys, {"destination": dest, "type": "tmpfs", "source": "tmpfs",
                           "options": [o for o in flags if o not in ("ro", "rw")] + ["mode=755"]},
                     rootfs, root_fd, "/", open_source)
        for name, host_dir in dirs:
            _mount_entry(sys, {"destination": f"{dest}/{name}", "type": "bind", "source": host_dir,
                               "options": ["rbind", *flags]}, rootfs, root_fd, "/", open_source)
        _comount_links(root_fd, rootfs, dest, names)
        return
    try:
        _refuse_unsafe(root_fd, dest, "tmpfs", None)
        fd = open_in_root(root_fd, rootfs, dest, create="dir")
        try:
            sys.move_mount(fs, fdpath(fd), "tmpfs")
        finally:
            os.close(fd)
        bind_flags, clear, _, _ = parse_mount_options(["rbind", *flags])
        for name, host_dir in dirs:
            if "/" in name or name in ("", ".", ".."):
                raise ValueError(f"cgroup hierarchy name {name!r}")
            os.mkdir(name, 0o755, dir_fd=fs)
            src = open_source(host_dir, True)
            try:
                done = _set_on_copy(sys, src, bind_flags, clear)
                sys.move_mount(src.fd, name, host_dir, dir_fd=fs)
            finally:
                src.close()
            if not done:    # no mount_setattr (before 5.12): remount the bind, by its name in fs
                at = f"{fdpath(fs)}/{name}"
                sys.mount(None, at, None, (bind_flags & ~MS_REC) | MS_REMOUNT |
                          kept_flags(at, bind_flags, clear))
        _make_comount_links(fs, names)
    finally:
        os.close(fs)


def _comount_links(root_fd, rootfs, dest, names):
    """cpu -> cpu,cpuacct: tools look for /sys/fs/cgroup/cpu whatever the host comounted."""
    fd = open_in_root(root_fd, rootfs, dest)
    try:
        _make_comount_links(fd, names)
    finally:
        os.close(fd)


def _make_comount_links(fd, names):
    for name in names:
        for alias in name.split(","):
            if alias != name and "=" not in alias and alias not in names:
                os.symlink(name, alias, dir_fd=fd)


def _mount_entry(sys, m, rootfs, root_fd, bundle, open_source):
    """One entry: refuse unsafe targets, make the mount point, mount, then what mount(2) could not
    do in the same call (bind flags, propagation)."""
    flags, clear, propagation, data = parse_mount_options(m.get("options"))
    dest = clean(m["destination"])
    bind = bool(flags & MS_BIND)
    remount = bind and flags & ~(MS_BIND | MS_REC)  # ro, nosuid…: not part of a bind itself
    # relative to the bundle; an absolute one stays
    src = open_source(paths.join(bundle, m["source"]), bool(flags & MS_REC)) if bind else None
    try:
        _refuse_unsafe(root_fd, dest, m.get("type"), src)
        fd = open_in_root(root_fd, rootfs, dest, create="file" if src and not src.is_dir() else "dir")
        try:
            if bind:
                if remount and src.how == "tree" and _set_on_copy(sys, src, flags, clear):
                    remount = 0  # the copy has them before it is attached: no remount
                src.attach(sys, fdpath(fd), flags)
            else:
                sys.mount(m.get("source"), fdpath(fd), m.get("type"), flags, data or None)
        finally:
            os.close(fd)
    finally:
        if src:
            src.close()  # a host fd: never left for the container
    if not propagation and not remount:
        return
    # Reopen: the fd we had is the directory *under* the new mount; these calls act on the mount.
    fd = open_in_root(root_fd, rootfs, dest)
    try:
        if remount:
            keep = kept_flags(fd, flags, clear)  # the fd itself: no lookup through /proc/self/fd
            sys.mount(None, fdpath(fd), None, (flags & ~MS_REC) | MS_REMOUNT | keep)
        for p in propagation:
            sys.mount(None, fdpath(fd), None, p)
    finally:
        os.close(fd)


# MS_* flag -> MOUNT_ATTR_* bit, for the per-mount flags a bind can carry
_ATTRS = ((MS_RDONLY, MOUNT_ATTR_RDONLY), (MS_NOSUID, MOUNT_ATTR_NOSUID), (MS_NODEV, MOUNT_ATTR_NODEV),
          (MS_NOEXEC, MOUNT_ATTR_NOEXEC), (MS_NODIRATIME, MOUNT_ATTR_NODIRATIME))
_no_setattr = []    # [True] once the kernel said ENOSYS (before 5.12): remount from then on


def _set_on_copy(sys, src, flags, clear):
    """A bind's ro, nosuid… set on the detached copy (mount_setattr) before it is attached; False
    where the kernel has no mount_setattr (the caller remounts, as before 5.12).

    The same outcome as the remount, in one call and without looking the new mount up again:
    the remount sets every per-mount flag anew, so it repeats what the mount had (kept_flags: a
    read-only or nosuid source stays so, and in a user namespace those flags are locked);
    mount_setattr changes only the bits it names — set what the entry sets, clear what it
    clears (rw, suid…), and the rest stays as the mount has it. Bits the remount dropped unless
    asked, it clears too: nosymfollow, and with an atime mode of the entry's, nodiratime. A
    flag the kernel locked (a user namespace's copy of a read-only mount) is refused with EPERM
    in both ways. Only the top mount, as the remount: an rbind's submounts keep their flags."""
    if _no_setattr:
        return False
    attr_set = attr_clr = 0
    for ms, attr in _ATTRS:
        if flags & ms:
            attr_set |= attr
        elif clear & ms:
            attr_clr |= attr
    if not flags & MS_NOSYMFOLLOW:
        attr_clr |= MOUNT_ATTR_NOSYMFOLLOW
    if (flags | clear) & _ATIME:  # the entry picks the atime mode (relatime: none of the bits)
        attr_clr |= MOUNT_ATTR__ATIME | (0 if flags & MS_NODIRATIME else MOUNT_ATTR_NODIRATIME)
        attr_set |= MOUNT_ATTR_NOATIME if flags & MS_NOATIME else \
            MOUNT_ATTR_STRICTATIME if flags & MS_STRICTATIME else 0
    try:
        sys.mount_setattr(src.fd, attr_set, attr_clr, src.path)
    except OSError as e:
        if e.errno != errno.ENOSYS:
            raise
        _no_setattr.append(True)
        return False
    return True


def _refuse_unsafe(root_fd, dest, fstype, src):
    """/proc, /sys and /dev are where a runtime writes security settings and makes devices: they
    must be the real thing (S8, S9, S13)."""
    top = dest.split("/")[1]
    if top in ("proc", "sys", "dev"):
        st = lstat_at(root_fd, top)  # None: made later, as a directory
        if st and stat.S_ISLNK(st.st_mode):
            raise PermissionError(errno.EPERM, f"/{top} in the rootfs is a symlink: refused", dest)
    if dest == "/proc" and fstype != "proc" and not (src and src.on_procfs()):
        raise PermissionError(errno.EPERM, "only a proc filesystem may be mounted on /proc", dest)
    if dest.startswith("/proc/") and dest not in _PROC_BINDS_ALLOWED:
        raise PermissionError(errno.EPERM, f"{dest} is inside /proc: only a few files (lxcfs-style) "
                              "may be mounted there", dest)


def kept_flags(path, flags=0, clear=0):
    """Flags of the mount at `path` (or of an fd we hold on it) that a remount must repeat,
    unless the entry cleared them.

    A remount sets *all* per-mount flags anew: leave out nosuid (or ro) and it is gone. That
    would be a quiet loss of protection — binding a read-only host mount with just "nosuid" would
    make it writable — and in a user namespace the kernel forbids it outright: flags of a mount
    inherited from a more privileged namespace are locked (EPERM). So we keep the mount's
    ro/nosuid/nodev/noexec (statvfs's ST_* bits equal MS_* for these) unless the entry clears one
    ("rw", "suid"...), and its atime mode unless the entry picks one.
    """
    f = os.statvfs(path).f_flag
    keep = f & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if not (flags | clear) & _ATIME:
        keep |= MS_NOATIME if f & os.ST_NOATIME else MS_RELATIME if f & os.ST_RELATIME else MS_STRICTATIME
        keep |= MS_NODIRATIME if f & os.ST_NODIRATIME else 0
    return keep & ~clear


def mount_cgroup_entries(sys, config, cgroup_version, v1_hierarchies=(), root="/"):
    """The cgroup filesystem entries of mounts[], once init is in its cgroup namespace.

    A cgroup filesystem mounted inside a new cgroup namespace has the container's own cgroup as
    its root: the container sees "/" and its own limits, not the host's tree. That is why this
    waits until the parent has moved init into its cgroup and init has unshared the namespace.

    cgroup_version "v2": one cgroup2 mount. Otherwise (v1 or hybrid host), runc's layout: a tmpfs,
    in it one directory per v1 hierarchy of the host — v1_hierarchies, [(dir name, options)] as
    read from the host's /proc/self/mountinfo before pivot_root, e.g. ("cpu,cpuacct",
    "cpu,cpuacct") — each a `cgroup` mount, symlinks cpu and cpuacct to the comounted one.
    Only ever called in a cgroup namespace init made: without one (none, or one joined by path)
    the parent has chosen bind_cgroup_entries — a cgroup2 mount from the host's cgroup namespace
    would reset the host's cgroup2 options (nsdelegate…), and a v1 mount shows the host's tree.
    If it were called without one, the mount would still be made read-only (S15).
    """
    own_ns = any(n.get("type") == "cgroup" and not n.get("path")
                 for n in (config.get("linux") or {}).get("namespaces") or [])
    for i, m in enumerate(config.get("mounts") or []):
        if m.get("type") not in ("cgroup", "cgroup2") or {"bind", "rbind"} & set(m.get("options") or []):
            continue
        flags, _, propagation, data = parse_mount_options(m.get("options"))
        flags |= 0 if own_ns else MS_RDONLY
        dest = paths.join(root, clean(m["destination"]).lstrip("/")).rstrip("/") or "/"
        try:
            paths.makedirs(dest, 0o755, exist_ok=True)  # after pivot_root: a symlink stays inside
            if cgroup_version == "v2":
                sys.mount("cgroup2", dest, "cgroup2", flags, data or None)
            else:
                _mount_cgroup_v1(sys, dest, flags, v1_hierarchies)
            for p in propagation:
                sys.mount(None, dest, None, p)
        except OSError as e:
            raise OSError(e.errno, f"mounts[{i}] {m['destination']}: {e.strerror}", dest) from None


def _mount_cgroup_v1(sys, dest, flags, hierarchies):
    base = flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
    sys.mount("tmpfs", dest, "tmpfs", base, "mode=755")
    for name, options in hierarchies:
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"cgroup hierarchy name {name!r}")
        paths.makedirs(paths.join(dest, name), 0o755, exist_ok=True)
        sys.mount("cgroup", paths.join(dest, name), "cgroup", flags & ~(MS_BIND | MS_REC), options)
        for alias in name.split(","):  # cpu -> cpu,cpuacct: tools look for /sys/fs/cgroup/cpu
            if alias != name and "=" not in alias and not paths.lexists(paths.join(dest, alias)):
                os.symlink(name, paths.join(dest, alias))
    # The tmpfs itself stays writable, as runc leaves it: it is the container's own, and what
    # matters — each hierarchy — was mounted read-only above when the entry says ro.
