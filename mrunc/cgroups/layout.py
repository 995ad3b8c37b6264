"""Where the cgroup filesystems are mounted, and where a container's cgroup goes in each.

Finding the hierarchies ("layout"):
- **v2** (unified): `<root>/cgroup.controllers` exists — one tree, one directory per cgroup.
- **v1**: `<root>/<name>/tasks` exists for one or more hierarchies (`memory`, `cpu,cpuacct`, …),
  each with its own directory per cgroup.
- **hybrid**: v1 hierarchies plus a cgroup2 tree at `<root>/unified` that systemd uses for process
  tracking; controllers stay on v1 (a controller lives in one tree only).
- **none**: nothing mounted.
Which controllers a v1 mount carries is read from /proc/self/mountinfo when the root is a real
mount point, otherwise from the directory names (that is how test trees are built).

Only `create` (and a command given a state.json from before create recorded all this:
mrunc.cgroups.recorded) needs it.
"""

import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from mrunc import paths

from .fs import exists, read, unescape

# v1 controllers a container is put into (runc's list; named hierarchies other than systemd's are
# left alone). "" is the unified (v2) tree.
V1_CONTROLLERS = ("cpuset", "devices", "memory", "cpu", "cpuacct", "pids", "blkio", "hugetlb",
                  "net_cls", "net_prio", "perf_event", "freezer", "rdma", "misc", "name=systemd")


# ---- paths ------------------------------------------------------------------------------------

def clean(path):
    """runc's CleanPath: normalise, and keep a relative path from climbing out with "..".

    "" stays "", "/a/../b" -> "/b", "../../x" -> "x", ".." -> "".
    """
    if not path:
        return ""
    norm = paths.normpath("/" + path)          # "/.." is "/", so nothing climbs above the top
    norm = "/" + norm.lstrip("/")                # normpath keeps a leading "//"
    if path.startswith("/"):
        return norm
    return norm[1:]


def own_cgroups(proc_cgroup="/proc/self/cgroup"):
    """{controller: path} of the calling process ("" = the v2 line "0::/path")."""
    out = {}
    for line in (read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for name in parts[1].split(",") if parts[1] else [""]:
            out.setdefault(name, parts[2])
    return out


def under_mount(path, mount_root):
    """A path from /proc/self/cgroup, made relative to where its hierarchy is mounted."""
    rel = below_mount(path, mount_root)
    return (path or "/") if rel is None else rel


def below_mount(path, mount_root):
    """Like under_mount, but None when `path` is not at or below the mount's root: then the mount
    does not show that cgroup (e.g. a cgroup namespace made after the mount: its root is "/..")."""
    if path is None:
        return None
    if mount_root in ("", "/"):
        return path or "/"
    if path != mount_root and not path.startswith(mount_root.rstrip("/") + "/"):
        return None
    return "/" + path[len(mount_root):].lstrip("/")


# ---- layout -----------------------------------------------------------------------------------

def _mounts(mountinfo):
    """(fstype, mountpoint, mount_root, super_options) of every cgroup/cgroup2 mount."""
    out = []
    for line in (read(mountinfo) or "").splitlines() if mountinfo else []:
        pre, sep, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        out.append((tail[0], unescape(fields[4]), unescape(fields[3]), tail[2].split(",")))
    return out


def hierarchies(root="/sys/fs/cgroup", mountinfo="/proc/self/mountinfo"):
    """(layout, {key: (mountpoint, mount_root)}) for the cgroup filesystems under `root`.

    key is a v1 controller name ("memory", "name=systemd") or "" for the unified tree. Controllers
    mounted together ("cpu,cpuacct") share one mountpoint.
    """
    root = paths.normpath(root)
    mounts = _mounts(mountinfo)
    if exists(paths.join(root, "cgroup.controllers")):
        mroot = next((r for t, mp, r, _ in mounts if t == "cgroup2" and mp == root), "/")
        return "v2", {"": (root, mroot)}

    found = {}
    for fstype, mp, mroot, opts in mounts:
        if fstype == "cgroup" and paths.dirname(mp) == root:
            for name in opts:
                if name in V1_CONTROLLERS:
                    found.setdefault(name, (mp, mroot))
    if not found:  # not a real mount (a test tree): go by directory names
        try:
            names = sorted(os.listdir(root))
        except OSError:
            names = []
        for entry in names:
            mp = paths.join(root, entry)
            if paths.islink(mp) or not exists(paths.join(mp, "tasks")):
                continue
            for name in entry.split(","):
                name = "name=systemd" if name == "systemd" else name
                if name in V1_CONTROLLERS:
                    found.setdefault(name, (mp, "/"))
    unified = paths.join(root, "unified")
    if found and exists(paths.join(unified, "cgroup.controllers")):
        mroot = next((r for t, mp, r, _ in mounts if t == "cgroup2" and mp == unified), "/")
        found[""] = (unified, mroot)
        return "hybrid", found
    if found:
        return "v1", found
    return "none", {}


def detect(root="/sys/fs/cgroup", mountinfo="/proc/self/mountinfo"):
    """"v2", "v1", "hybrid" or "none": how cgroups are mounted under `root`."""
    return hierarchies(root, mountinfo)[0]
