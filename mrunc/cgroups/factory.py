"""The cgroup manager for a container: which layout the host has, where the container's cgroup
goes (linux.cgroupsPath), and the device rules every container gets. See the package's doc.

Finding the layout reads /proc/self/mountinfo: `create` needs that, and so does any command
given a state.json from before create recorded the hierarchies (mrunc.cgroups.recorded); the
short verbs need neither. Of the managers, only the one the layout asks for is imported: a v1 or
hybrid host never loads the v2 manager, nor a host with cgroups the disabled one (each costs
`create`, `run` and `exec` ≈ 0.1-0.2 ms of CPU to import).
"""

import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from mrunc import paths
from mrunc.errors import CgroupError

from .layout import below_mount, clean, detect, hierarchies, own_cgroups

__all__ = ["manager", "detect", "resolve", "Manager", "V1Manager", "V2Manager",
           "DisabledManager", "CgroupError"]


def resolve(cgroups_path, container_id, layout, mounts, proc_cgroup="/proc/self/cgroup"):
    """{hierarchy key: path inside that hierarchy} for linux.cgroupsPath (see the module doc)."""
    inner = clean(cgroups_path or "")
    if cgroups_path and inner in ("", "/"):
        raise CgroupError(f"linux.cgroupsPath: {cgroups_path!r} names the cgroup of the caller or "
                          f"the root; give a path below it")
    if not inner:
        inner = clean(container_id or "")
        if inner in ("", "/"):
            raise CgroupError(f"container id {container_id!r} cannot name a cgroup")
    if inner.startswith("/"):
        return {key: inner for key in mounts}
    own = own_cgroups(proc_cgroup)
    out = {}
    for key, (mp, mount_root) in mounts.items():
        base = below_mount(own.get(key, "/"), mount_root)
        if base is None:
            # A cgroup namespace made after the mount: our cgroup is somewhere below the mount's
            # root, but where is not said ("/.."). Guessing the root would put the container
            # outside the caller's cgroup — out of the limits it runs under.
            raise CgroupError(
                f"linux.cgroupsPath: {inner!r} is relative to the runtime's own cgroup, which "
                f"{mp} does not show (mounted from {mount_root!r}: a cgroup namespace made after "
                f"the mount); give an absolute linux.cgroupsPath, or mount the cgroup filesystem "
                f"inside the namespace")
        if layout == "v2":
            base = paths.dirname(base)
        out[key] = paths.normpath(paths.join(base, inner))
    return out


def _delegated(mgr):
    """Can this (unprivileged) caller create and join the cgroups? Looks at each nearest
    existing directory: it must be writable, and so must its cgroup.procs."""
    for d in mgr.dirs():
        p = d
        while not paths.isdir(p) and paths.dirname(p) != p:
            p = paths.dirname(p)
        if not (os.access(p, os.W_OK) and os.access(paths.join(p, "cgroup.procs"), os.W_OK)):
            return False, p
    return True, None


def manager(cgroups_path, container_id, root="/sys/fs/cgroup", rootless=False, *, paths=None,
            mountinfo="/proc/self/mountinfo", proc_cgroup="/proc/self/cgroup", found=None):
    """The cgroup manager for a container: V2Manager, V1Manager (v1 and hybrid) or DisabledManager.

    Deterministic from its arguments (and, for relative paths, the caller's own cgroup): pass
    `paths` (a previous `mgr.paths`) to rebuild exactly the same manager from a state file, and
    `found` (its (layout, mounts), as create recorded them) to skip reading mountinfo again.
    """
    layout, mounts = found or hierarchies(root, mountinfo)
    if layout == "none":
        from .disabled import DisabledManager
        return DisabledManager(f"no cgroup filesystem is mounted under {root}",
                               clean(cgroups_path or "") or "/" + clean(container_id or ""),
                               rootless)
    if paths is None:
        paths = resolve(cgroups_path, container_id, layout, mounts, proc_cgroup)
    paths = {k: v for k, v in paths.items() if k in mounts}
    mgr = _manager_class(layout)(mounts, paths, rootless, layout)
    if rootless:
        ok, where = _delegated(mgr)
        if not ok:
            from .disabled import DisabledManager
            return DisabledManager(f"running rootless and {where} is not delegated to uid "
                                   f"{os.geteuid()} (no writable cgroup subtree), so no cgroup "
                                   f"is used", mgr.path, rootless)
    return mgr


def _manager_class(layout):
    """V2Manager for a pure v2 host, V1Manager for v1 and hybrid (the controllers are v1)."""
    if layout == "v2":
        from .v2 import V2Manager
        return V2Manager
    from .v1 import V1Manager
    return V1Manager


_CLASSES = {"Manager": "base", "V1Manager": "v1", "V2Manager": "v2", "DisabledManager": "disabled"}


def __getattr__(name):
    """The manager classes by name (mrunc.cgroups.V2Manager…), imported when first asked for."""
    if name not in _CLASSES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = __import__(f"{__package__}.{_CLASSES[name]}", fromlist=[name])
    return getattr(module, name)


# What every container may use whatever its config says, as runc grants it: creating any device
# node (m), and the standard nodes — null, zero, full, random, urandom, tty, ptmx, the pty slaves
# (136:*), tun. Without these, `sh -c 'echo > /dev/null'` fails in the default config, whose only
# rule is "deny everything". No rule for 5:1: /dev/console in a container is a bind mount of a
# pty slave (136:*), never the host's console (runc's list has none either).
_ALWAYS_ALLOWED = [("c", None, None, "m"), ("b", None, None, "m"),
                   ("c", 1, 3, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 7, "rwm"), ("c", 1, 8, "rwm"),
                   ("c", 1, 9, "rwm"), ("c", 5, 0, "rwm"), ("c", 5, 2, "rwm"),
                   ("c", 136, None, "rwm"), ("c", 10, 200, "rwm")]


def device_rules(config):
    """The device rules to apply: the config's, then the always-allowed ones, then one allow rule
    per `linux.devices` node the config asks to be created (else it could not be opened)."""
    lin = config.get("linux") or {}
    rules = list((lin.get("resources") or {}).get("devices") or [])
    for typ, major, minor, access in _ALWAYS_ALLOWED:
        rules.append({"allow": True, "type": typ, "major": major, "minor": minor, "access": access})
    for d in lin.get("devices") or []:
        if d.get("type") in ("c", "b", "u"):
            rules.append({"allow": True, "type": "c" if d["type"] == "u" else d["type"],
                          "major": d.get("major"), "minor": d.get("minor"), "access": "rwm"})
    return rules
