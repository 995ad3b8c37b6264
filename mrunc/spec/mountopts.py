"""Mount options: how `"options": ["nosuid", "mode=755"]` becomes the arguments of mount(2).

mount(2) takes two different things that config.json mixes in one list:
- **flags**, an integer of MS_* bits the VFS understands for every filesystem (`ro`, `nosuid`,
  `noexec`, `bind`…). Some options *clear* a bit instead (`rw`, `suid`, `exec`), which only
  matters when a later option or a remount would otherwise keep it;
- **data**, a comma-separated string handed to the filesystem itself (`mode=755`, `size=65536k`,
  `gid=5`). Any option we do not know is data, as the spec says: only the filesystem can judge it.

Propagation (`private`, `rslave`…) is a third kind: it cannot be combined with a mount, it is a
separate mount(2) call on the mount point afterwards, so it comes back as its own list.

"""

from mrunc.errors import SpecError

# The MS_* bits live once, in mrunc.linux (the one module that talks to the kernel).
from mrunc.linux import (MS_BIND, MS_DIRSYNC, MS_I_VERSION, MS_LAZYTIME,  # noqa: E402
                         MS_MANDLOCK, MS_NOATIME, MS_NODEV, MS_NODIRATIME, MS_NOEXEC,
                         MS_NOSUID, MS_NOSYMFOLLOW, MS_PRIVATE, MS_RDONLY, MS_REC, MS_RELATIME,
                         MS_REMOUNT, MS_SHARED, MS_SILENT, MS_SLAVE, MS_STRICTATIME,
                         MS_SYNCHRONOUS, MS_UNBINDABLE)

# option -> (clear, flag): clear=False sets the bit, clear=True removes it.
MOUNT_FLAGS = {
    "defaults": (False, 0),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "nosuid": (False, MS_NOSUID),
    "suid": (True, MS_NOSUID),
    "nodev": (False, MS_NODEV),
    "dev": (True, MS_NODEV),
    "noexec": (False, MS_NOEXEC),
    "exec": (True, MS_NOEXEC),
    "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS),
    "dirsync": (False, MS_DIRSYNC),
    "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK),
    "nomand": (True, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "atime": (True, MS_NOATIME),
    "nodiratime": (False, MS_NODIRATIME),
    "diratime": (True, MS_NODIRATIME),
    "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME),
    "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "lazytime": (False, MS_LAZYTIME),
    "nolazytime": (True, MS_LAZYTIME),
    "iversion": (False, MS_I_VERSION),
    "noiversion": (True, MS_I_VERSION),
    "silent": (False, MS_SILENT),
    "loud": (True, MS_SILENT),
    "nosymfollow": (False, MS_NOSYMFOLLOW),  # Linux 5.10+
    "symfollow": (True, MS_NOSYMFOLLOW),
    "bind": (False, MS_BIND),
    "rbind": (False, MS_BIND | MS_REC),
}

# Propagation option -> the flags of the separate mount(2) call that changes it ("r" = recursive).
PROPAGATION_FLAGS = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# Options the spec defines that need more than mount(2) and that mrunc does not do yet. Passing
# them on as filesystem data would be wrong: a bind mount ignores its data, so "rro" would be
# silently dropped and the mount left writable. Refused instead; delete a name when it lands.
UNSUPPORTED_MOUNT_OPTIONS = frozenset((
    "tmpcopyup",  # copy the directory's old contents into the new tmpfs
    "idmap", "ridmap",  # ID-mapped mounts: mount_setattr(MOUNT_ATTR_IDMAP)
    # recursive attributes: mount_setattr(AT_RECURSIVE), Linux 5.12+
    "rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec", "rnoatime", "ratime",
    "rnodiratime", "rdiratime", "rrelatime", "rnorelatime", "rstrictatime", "rnostrictatime",
    "rnosymfollow", "rsymfollow",
))


def parse_mount_options(options):
    """Split a mounts[i].options list into (flags, clear_flags, propagation, data).

    flags: MS_* bits to pass to mount(2). clear_flags: bits an option explicitly cleared (a
    remount needs them to know what to drop). propagation: flags for the follow-up mount(2) calls,
    in order. data: the unknown options, comma-joined, for the filesystem. Later options win, as
    with mount(8): ["ro", "rw"] is read-write.
    """
    flags = clear_flags = 0
    propagation, data = [], []
    for option in options or ():
        if option in MOUNT_FLAGS:
            clear, flag = MOUNT_FLAGS[option]
            if clear:
                flags &= ~flag
                clear_flags |= flag
            else:
                flags |= flag
                clear_flags &= ~flag
        elif option in PROPAGATION_FLAGS:
            propagation.append(PROPAGATION_FLAGS[option])
        elif option in UNSUPPORTED_MOUNT_OPTIONS:
            # validate() refuses these with the JSON path; this guards callers that skipped it.
            raise SpecError(f'mount option "{option}": not supported by mrunc yet')
        else:
            data.append(option)
    return flags, clear_flags, propagation, ",".join(data)
