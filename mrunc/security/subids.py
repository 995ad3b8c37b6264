"""Subordinate ids: how a user without privileges gives a container more than one uid.

The kernel lets an unprivileged process write one line into a user namespace's uid_map: its own
uid, size 1 (the single-id map — you are root inside, and nobody else exists). Anything more —
root plus the 65536 uids an `adduser` inside expects — must come from ids the administrator set
aside for that user in /etc/subuid and /etc/subgid (`alice:100000:65536`, by name or by uid). The
setuid helpers newuidmap and newgidmap (package uidmap) check the request against those files and
write the map as root. podman, runc and crun use the same helpers.

We check first, before anything is made, so a mapping that was never delegated fails in one line
that names it; the helper checks again (it is the one that decides).
"""
import os

from ..errors import MruncError, SpecError

FILES = {"uid": "/etc/subuid", "gid": "/etc/subgid"}
HELPERS = {"uid": "newuidmap", "gid": "newgidmap"}


def _own(kind):
    return os.geteuid() if kind == "uid" else os.getegid()


def user_name():
    import pwd
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return None


def ranges(kind, user=None, uid=None, path=None):
    """[(first host id, count)] delegated to `user` (name) or `uid` in /etc/sub{kind}, in file
    order. Lines are `name-or-uid:first:count`; anything else is skipped, as the helpers do."""
    uid = os.geteuid() if uid is None else uid
    user = user_name() if user is None else user
    out = []
    try:
        with open(path or FILES[kind]) as f:
            text = f.read()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in (user, str(uid)) and parts[1].isdigit() and parts[2].isdigit():
            out.append((int(parts[1]), int(parts[2])))
    return out


def helper(kind):
    """The path of newuidmap/newgidmap, or None when it is not installed."""
    name = HELPERS[kind]
    for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        path = os.path.join(d or ".", name)
        if os.path.isabs(path) and os.access(path, os.X_OK):
            return path
    return None


def helper_problem(kind):
    """Why new{kind}map cannot write a map for us (None: it can). A setuid program gains nothing
    under no_new_privs (systemd's NoNewPrivileges=, JupyterHub SystemdSpawner's disable_user_sudo)."""
    name, path = HELPERS[kind], helper(kind)
    if path is None:
        return f"{name} is not installed (package uidmap)"
    st = os.stat(path)
    if not (st.st_mode & 0o4000 and st.st_uid == 0):        # S_ISUID
        return f"{path} is not setuid root (reinstall uidmap)"
    if _no_new_privs():
        return f"no_new_privs is set on this process (systemd NoNewPrivileges=?): setuid {name} cannot work"
    return None


def _no_new_privs():
    try:
        with open("/proc/self/status") as f:
            return any(line.split() == ["NoNewPrivs:", "1"] for line in f)
    except OSError:
        return False


def is_own_only(kind, maps):
    """The map the kernel takes from us without a helper: our own id, one id, one line."""
    return len(maps) == 1 and maps[0]["hostID"] == _own(kind) and maps[0]["size"] == 1


def needs_helper(config, kind):
    """Rootless, a new user namespace whose {kind} map is more than our own id."""
    if os.geteuid() == 0:
        return False
    linux = config.get("linux") or {}
    if not any(n.get("type") == "user" and not n.get("path") for n in linux.get("namespaces") or []):
        return False
    return not is_own_only(kind, linux.get(f"{kind}Mappings") or [])


def check(config):
    """Before anything is made: every host id a rootless config maps must be ours — our own id,
    or inside a range delegated to us — and the helper must be able to write the map.
    Raise SpecError naming the first mapping that is not."""
    for kind in ("uid", "gid"):
        if not needs_helper(config, kind):
            continue
        key = f"linux.{kind}Mappings"
        have = ranges(kind)
        for i, m in enumerate(config["linux"][f"{kind}Mappings"]):
            first, last = m["hostID"], m["hostID"] + m["size"] - 1
            if (first == last == _own(kind)) or any(s <= first and last < s + n for s, n in have):
                continue
            ids = f"host id {first} is" if first == last else f"host ids {first}-{last} are"
            who = user_name()
            who = f'user "{who}"' if who else f"uid {os.geteuid()}"
            raise SpecError(f"{key}[{i}]: {ids} not delegated to {who} in {FILES[kind]}")
        problem = helper_problem(kind)
        if problem:
            raise SpecError(f"{key}: mapping more than your own {kind} needs {HELPERS[kind]}, but {problem}")


def write(sys, pid, kind, maps):
    """Have new{kind}map write process `pid`'s {kind}_map. Recorded by `sys` as one call of the
    runtime: the helper's name, the pid, and the lines it was asked to write."""
    import subprocess
    lines = [f"{m['containerID']} {m['hostID']} {m['size']}" for m in maps]
    argv = [helper(kind), str(pid)] + " ".join(lines).split()
    sys.note = f"the setuid helper writes /proc/{pid}/{kind}_map: ranges from {FILES[kind]}"
    try:
        with sys.around(HELPERS[kind], pid, *lines) as call:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            call.ret = p.returncode
    finally:
        sys.note = None
    if p.returncode != 0:
        said = (p.stderr or p.stdout).decode(errors="replace").strip().splitlines()
        raise MruncError(f"linux.{kind}Mappings: {HELPERS[kind]} failed (status {p.returncode})"
                         + (f": {said[-1]}" if said else ""))


def sandbox_maps():
    """The maps a notebook sandbox gives a student's containers, as podman does: 0 → the student,
    1.. → their delegated ranges, in order. ({"uid": [...], "gid": [...]}, None), or
    (None, why not) when the single-id map must do."""
    maps = {}
    for kind in ("uid", "gid"):
        have = ranges(kind)
        if not have:
            return None, f"no range for you in {FILES[kind]}"
        problem = helper_problem(kind)
        if problem:
            return None, problem
        out, next_id = [{"containerID": 0, "hostID": _own(kind), "size": 1}], 1
        for first, count in have:
            out.append({"containerID": next_id, "hostID": first, "size": count})
            next_id += count
        maps[kind] = out
    return maps, None
