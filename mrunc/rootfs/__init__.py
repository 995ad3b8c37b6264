"""The container's filesystem: what it sees as "/", and what is mounted where.

A mount namespace is a private copy of the host's mount table; a new one starts as an exact
copy. Init, already in its own mount namespace, turns that copy into the container's view, in
an order where each step needs the one before:

  mount phase (the host's tree is still our "/"):
    prepare_root    make "/" rslave, so nothing we mount leaks to the host; bind the rootfs on
                    itself, because pivot_root wants a mount point
    mount_entries   mounts[] in order (/proc, /dev, /dev/pts...), each target looked up *inside*
                    the rootfs, never through a symlink out of it (see inroot); each bind source
                    mounted from an fd — opened by the runtime in a user namespace (see sources)
    setup_dev       /dev/null & co, linux.devices, /dev/fd links, the /dev/console placeholder
    bind_cgroup_entries   no cgroup namespace of the container's own: a cgroup filesystem
                    mounted there would show (v1) or reconfigure (v2) the host's hierarchy, or
                    cannot be mounted (user namespace): bind the container's own cgroup dirs —
                    which the runtime makes now, in this phase (a trace shows its mkdirs here)
  pivot_root phase:
    pivot           the rootfs becomes "/", the host's tree is detached
    set_hostname, apply_sysctl   (sysctl before readonly_paths: that makes /proc/sys read-only)
    mask_paths, readonly_paths   hide or freeze parts of /proc and /sys
    bind_console    terminal: true — the pty over /dev/console
  cgroup phase (in the new cgroup namespace):
    mount_cgroup_entries   the cgroup filesystem, which shows that namespace's view (only with
                    a cgroup namespace of the container's own: else it was bound already)
    finish_root     root.readonly, rootfsPropagation: last, nothing is made in "/" after it

Without a mount namespace of its own (none asked for, or one joined by path) the mount table is
someone else's — the host's — and none of the above may touch it: init only resolves the rootfs
(rootfs_path), makes process.cwd in it and enters it with enter_by_chroot. Validation has
refused everything that would need a mount (spec.checks.check_without_mount_namespace).

Every call that changes the kernel's state goes through the `sys` object (mrunc.linux), which
logs it; making directories and empty files for mount points is done directly.
"""
from .dev import bind_console, setup_dev
from .inroot import mkdir_in_root
from .mounts import bind_cgroup_entries, mount_cgroup_entries, mount_entries, prepare_root, rootfs_path
from .pivot import (apply_sysctl, enter_by_chroot, finish_root, mask_paths, pivot, readonly_paths,
                    set_hostname)

__all__ = ["prepare_root", "mount_entries", "bind_cgroup_entries", "setup_dev", "mkdir_in_root", "pivot", "mask_paths",
           "readonly_paths", "set_hostname", "apply_sysctl", "bind_console",
           "mount_cgroup_entries", "finish_root", "rootfs_path", "enter_by_chroot"]
