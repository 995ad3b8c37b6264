"""A cgroup v2 subtree handed to an ordinary user: found, checked, and made ready for containers.

Only cgroup v2 can be delegated. A service manager does it by chowning a cgroup to the user
(systemd's `Delegate=`, e.g. user@UID.service or a JupyterHub SystemdSpawner unit); the user may
then create cgroups below it and move their own processes between them. Like podman, we find it
from our own cgroup (the `0::` line of /proc/self/cgroup) and read that cgroup's
`cgroup.controllers` to see which controllers we were given.

Two rules shape what we do with it:
- **No internal processes**: a cgroup with processes in it cannot enable controllers for its
  children. The notebook server and its kernels sit in the delegated cgroup itself, so before
  enabling anything we move them all into a leaf, `<subtree>/supervisor`. Containers then go
  beside it, `<subtree>/<id>` — exactly where a relative cgroupsPath resolves from inside the
  leaf (runc's rule: below the parent of the caller's cgroup).
- **Only our own**: every file we write (cgroup.procs, cgroup.subtree_control) must be writable
  by us — that is what delegation means; anything else is not ours to change.
"""
import os

from mrunc.errors import CgroupError

from . import fs
from .layout import hierarchies, own_cgroups, under_mount

LEAF = "supervisor"
WANTED = ("memory", "pids", "cpu")        # what the notebooks' limits need


class Subtree:
    """Our delegated subtree, or why there is none (`reason`)."""

    def __init__(self, path=None, reason=None):
        self.path, self.reason = path, reason

    @property
    def controllers(self):
        return (fs.read(os.path.join(self.path, "cgroup.controllers")) or "").split() if self.path else []

    @property
    def enabled(self):
        return (fs.read(os.path.join(self.path, "cgroup.subtree_control")) or "").split() if self.path else []

    def missing(self, wanted=WANTED):
        return [c for c in wanted if c not in self.controllers]

    def prepare(self, wanted=WANTED):
        """Move every process of the subtree's top into the leaf, then enable what we were given.
        Idempotent: a second kernel finds the leaf made and the controllers on."""
        want = [c for c in wanted if c in self.controllers and c not in self.enabled]
        if not want:
            return
        leaf = os.path.join(self.path, LEAF)
        os.makedirs(leaf, exist_ok=True)
        for _ in range(3):              # a process may fork while we move: until none is left
            pids = (fs.read(os.path.join(self.path, "cgroup.procs")) or "").split()
            if not pids:
                break
            for pid in pids:
                try:
                    fs.write(os.path.join(leaf, "cgroup.procs"), pid)
                except CgroupError:
                    pass                # gone meanwhile
        fs.write(os.path.join(self.path, "cgroup.subtree_control"), " ".join("+" + c for c in want))


def find(root="/sys/fs/cgroup", mountinfo="/proc/self/mountinfo", proc_cgroup="/proc/self/cgroup"):
    """The subtree delegated to us, from our own cgroup (or its parent when we are in its leaf)."""
    layout, mounts = hierarchies(root, mountinfo)
    if layout != "v2":
        what = {"none": "no cgroup filesystem is mounted",
                "v1": "this host uses cgroup v1", "hybrid": "this host uses cgroup v1 (hybrid)"}[layout]
        return Subtree(reason=f"{what}, and only cgroup v2 can be delegated to a user")
    mp, mount_root = mounts[""]
    own = under_mount(own_cgroups(proc_cgroup).get("", "/"), mount_root)
    top = os.path.dirname(own) if os.path.basename(own) == LEAF else own
    path = os.path.normpath(mp + top)
    for name in ("", "cgroup.procs", "cgroup.subtree_control"):
        if not os.access(os.path.join(path, name), os.W_OK):
            return Subtree(reason=f"your cgroup {path} is not delegated to uid {os.geteuid()} "
                                  f"({os.path.join(path, name) if name else 'the directory'} "
                                  "is not writable)")
    return Subtree(path)
