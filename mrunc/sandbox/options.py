"""Keyword options -> config.json: memory="64M", cpus=0.5, pids=20, cap_drop="ALL", user="mrunc",
network="none" … each becomes the field of runc's default config that the runtime reads."""
from __future__ import annotations

import copy
import os
import re

from .errors import SandboxError
from .host import busybox_rootfs


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.I)


def parse_size(value) -> int:
    """Bytes from 67108864, "64M", "64MiB", "1.5g", "512k" (binary units, as docker)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise SandboxError(f"memory: invalid size {value!r} (bytes, or a number with k, M, G: 64M)")
        n = int(float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower()))
    if n <= 0:
        raise SandboxError(f"memory: must be positive, not {value!r}")
    return n


def cap_name(name) -> str:
    n = str(name).strip().upper()
    return n if n.startswith("CAP_") or n == "ALL" else "CAP_" + n


def _all_caps():
    from ..security.capabilities import CAPABILITIES
    return sorted(CAPABILITIES, key=CAPABILITIES.get)


def _lookup(rootfs, file, name):
    """uid/gid of `name` in the rootfs's /etc/passwd or /etc/group."""
    try:
        with open(os.path.join(rootfs, "etc", file)) as f:
            for line in f:
                fields = line.strip().split(":")
                if len(fields) > 3 and fields[0] == name:
                    return int(fields[2]), int(fields[3]) if file == "passwd" else None
    except OSError:
        pass
    raise SandboxError(f"user: no {'user' if file == 'passwd' else 'group'} {name!r} in the "
                       f"container's /etc/{file}")


def parse_user(user, rootfs):
    """{"uid", "gid"} from 1000, "1000:1000", "mrunc", "mrunc:lab"."""
    name, _, group = str(user).partition(":")
    if name.isdigit():
        uid, gid = int(name), int(name)
    else:
        uid, gid = _lookup(rootfs, "passwd", name)
    if group:
        gid = int(group) if group.isdigit() else _lookup(rootfs, "group", group)[0]
    return {"uid": uid, "gid": gid}


def build_config(args, *, rootfs=None, base=None, name=None, memory=None, cpus=None, pids=None,
                 hostname=None, readonly=False, user=None, cap_add=(), cap_drop=(), network="none",
                 env=None, cwd=None, cgroupns=True, mounts=()) -> dict:
    """The config.json for `args` on `rootfs`, from runc's default config (or `base`) + options.

    memory -> linux.resources.memory.limit     cpus -> cpu.quota / cpu.period (100 ms periods)
    pids   -> linux.resources.pids.limit       network "none": own network namespace, only lo;
    "host": no network namespace               cap_add/cap_drop -> every capability set listed
    cgroupns -> a cgroup namespace, so the container sees its own cgroup as "/" (docker's default
    on cgroup v2).                      mounts -> appended to mounts[] (OCI entries: volumes are
    {"destination", "type": "bind", "source", "options": ["rbind", "ro", ...]}).
    """
    from .. import spec
    cfg = copy.deepcopy(base) if base is not None else spec.default_config()
    rootfs = rootfs or busybox_rootfs()
    proc = cfg.setdefault("process", {})
    proc["terminal"] = False            # no tty in a notebook: output goes to pipes
    if args is not None:
        proc["args"] = [str(a) for a in args]
    cfg["root"] = {"path": rootfs, "readonly": bool(readonly)}
    if hostname or name:
        cfg["hostname"] = hostname or name
    linux = cfg.setdefault("linux", {})
    res = linux.setdefault("resources", {})
    if memory is not None:
        res.setdefault("memory", {})["limit"] = parse_size(memory)
    if cpus is not None:
        c = _positive("cpus", cpus, float, "a number")
        res["cpu"] = {**res.get("cpu", {}), "quota": max(1000, round(c * 100000)), "period": 100000}
    if pids is not None:
        res["pids"] = {"limit": _positive("pids", pids, int, "a whole number")}
    namespaces = linux.setdefault("namespaces", [])
    if network not in ("none", "host"):
        raise SandboxError(f"network: {network!r} is not supported (none, host)")
    if network == "host":
        namespaces[:] = [n for n in namespaces if n.get("type") != "network"]
    elif not any(n.get("type") == "network" for n in namespaces):
        namespaces.append({"type": "network"})
    if cgroupns and not any(n.get("type") == "cgroup" for n in namespaces):
        namespaces.append({"type": "cgroup"})
    if user is not None:
        proc["user"] = parse_user(user, rootfs)
    _edit_caps(proc, cap_add, cap_drop)
    if env:
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        merged = dict(e.split("=", 1) for e in proc.get("env", []) if "=" in e)
        merged.update({str(k): str(v) for k, v in items})
        proc["env"] = [f"{k}={v}" for k, v in merged.items()]
    if cwd:
        if not str(cwd).startswith("/"):
            raise SandboxError(f"cwd: must be an absolute path, not {cwd!r}")
        proc["cwd"] = str(cwd)
    if mounts:
        cfg.setdefault("mounts", []).extend(copy.deepcopy(list(mounts)))
    return cfg


def _positive(option, value, kind, words):
    """`value` as a positive `kind` (int, float), or the one-line error naming `option`."""
    try:
        n = kind(value)
    except (TypeError, ValueError):
        raise SandboxError(f"{option}: not {words}: {value!r}") from None
    if n <= 0:
        raise SandboxError(f"{option}: must be positive, not {value!r}")
    return n


def _edit_caps(proc, add, drop):
    if isinstance(add, str):
        add = [add]
    if isinstance(drop, str):
        drop = [drop]
    add, drop = [cap_name(c) for c in add or ()], [cap_name(c) for c in drop or ()]
    if not add and not drop:
        return
    known = _all_caps()
    for c in add + drop:
        if c != "ALL" and c not in known:
            raise SandboxError(f"unknown capability {c} (known: CAP_CHOWN … {known[-1]})")
    caps = proc.setdefault("capabilities", {})
    for which in ("bounding", "effective", "permitted", "ambient"):
        have = list(caps.get(which, []))
        if "ALL" in drop:
            have = []
        have = [c for c in have if c not in drop]
        for c in (known if "ALL" in add else add):
            if c not in have and c not in drop:
                have.append(c)
        caps[which] = have



# The empty directories of the image a rootless container gets a tmpfs on: its root is the host's
# image, read-only and root's, where container root (your uid) cannot create a file or a mount
# point (podman mounts a tmpfs on /run in every container, too).
ROOTLESS_TMPFS = ("/tmp", "/run")


def _single_id_maps(linux):
    """Are these the maps of `mrunc spec --rootless` — our uid and gid only, in a new user namespace?"""
    from ..security import subids
    new_userns = any(n.get("type") == "user" and not n.get("path") for n in linux.get("namespaces") or [])
    return new_userns and all(subids.is_own_only(k, linux.get(f"{k}Mappings") or []) for k in ("uid", "gid"))


def rootless_ready(config, id_maps=None) -> dict:
    """A copy of a bundle's config that a user without privileges can run, made the way
    `mrunc spec --rootless` makes the default one: a user namespace mapping only your uid and gid
    to root (a hand-written config has none, and without it unshare(CLONE_NEWPID…) is refused),
    the default mounts a user namespace cannot make (devpts with gid=5) in their rootless form, no
    device rules (not ours to set), a tmpfs on /dev if it has none (for the default devices), and
    a tmpfs on /tmp and /run to write in. A config that has a user namespace already is the
    author's choice: only the tmpfs are added. `id_maps` ({"uid": [...], "gid": [...]}): the maps
    to use instead of the single-id one (a student's subordinate ranges: Sandbox.id_maps)."""
    from .. import spec
    cfg = copy.deepcopy(config)
    linux = cfg.setdefault("linux", {})
    namespaces = linux.setdefault("namespaces", [])
    if not any(n.get("type") == "user" for n in namespaces):
        rootless = spec.default_config(rootless=True)
        namespaces.append({"type": "user"})
        for key in ("uidMappings", "gidMappings"):
            linux[key] = rootless["linux"][key]
        (linux.get("resources") or {}).pop("devices", None)
        # a default mount the user namespace cannot make is swapped for its rootless form
        root_form = {m["destination"]: m for m in spec.default_config()["mounts"]}
        rootless_form = {m["destination"]: m for m in rootless["mounts"]}
        has_net = any(n.get("type") == "network" for n in namespaces)
        cfg["mounts"] = [rootless_form[m["destination"]]
                         if m == root_form.get(m.get("destination")) and (m["type"] != "sysfs" or not has_net)
                         else m for m in cfg.get("mounts") or []]
    if id_maps and _single_id_maps(linux):
        # the single-id map (`mrunc spec --rootless`'s, or the one just added) was nobody's
        # choice: the student's ranges replace it
        linux.update(uidMappings=copy.deepcopy(id_maps["uid"]), gidMappings=copy.deepcopy(id_maps["gid"]))
    mounts = cfg.setdefault("mounts", [])
    have = {m.get("destination") for m in mounts}
    if "/dev" not in have:          # the runtime's default devices need a /dev of the container's
        mounts.insert(0, next(m for m in spec.default_config()["mounts"] if m["destination"] == "/dev"))
    mounts.extend({"destination": d, "type": "tmpfs", "source": "tmpfs",
                   "options": ["nosuid", "nodev", "mode=1777" if d == "/tmp" else "mode=755",
                               "size=65536k"]}
                  for d in ROOTLESS_TMPFS if d not in have)
    return cfg
