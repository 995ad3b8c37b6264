"""What this host lets the sandbox do: root, rootless (a user namespace of one's own), or nothing —
and where the rootfs and the `mrunc` command are."""
from __future__ import annotations

import os
import sys

from .errors import Unavailable

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check_available(rootfs=None) -> bool:
    """True if containers can be made as root here, False if only rootless ones (not root, but
    user namespaces allowed); raise Unavailable, saying why, when none can."""
    path = rootfs or busybox_rootfs()
    if not os.path.lexists(os.path.join(path, "bin", "sh")):
        raise Unavailable(f"no root filesystem at {path} (bin/sh missing): run `make rootfs`")
    if os.geteuid() == 0:
        return True
    why = _userns_unavailable()
    if why:
        raise Unavailable(
            f"containers need root here, and this kernel runs as uid {os.geteuid()}: creating "
            "namespaces, mounts and cgroups for another process needs CAP_SYS_ADMIN, and the "
            f"rootless way (a user namespace of your own) is closed: {why}. Start JupyterLab as "
            "root (`sudo make lab`).")
    return False


def _userns_unavailable():
    """Why an unprivileged user cannot make a user namespace here (None: they can)."""
    for path, bad in (("/proc/sys/kernel/unprivileged_userns_clone", "0"),
                      ("/proc/sys/user/max_user_namespaces", "0")):
        try:
            with open(path) as f:
                if f.read().strip() == bad:
                    return f"{path} is {bad}"
        except OSError:
            pass
    return None


ROOTLESS_NOTE = ("running rootless (uid {uid}, a user namespace maps it to root inside): the root "
                 "filesystem is read-only with a tmpfs on /tmp and /run (an overlay needs root), only "
                 "uid 0 exists inside; while stepping, init reports its own view until it "
                 "execs (from outside it needs CAP_SYS_PTRACE), and a running container's "
                 "interfaces show no up/down state (entering its network namespace needs "
                 "CAP_SYS_ADMIN).")


def rootless_note(id_maps=None, single_why=None):
    """ROOTLESS_NOTE, saying which map the containers get: the single-id one (and why, when
    ranges were looked for), or uid 0 and the student's subordinate ranges (`id_maps`)."""
    note = ROOTLESS_NOTE.format(uid=os.geteuid())
    if id_maps:
        top = sum(m["size"] for m in id_maps["uid"]) - 1
        ranges = ", ".join(f"{m['hostID']}-{m['hostID'] + m['size'] - 1}" for m in id_maps["uid"][1:])
        return note.replace("only uid 0 exists inside", f"uids 0-{top} exist inside (0 is you, "
                            f"1-{top} your subordinate ids {ranges} from /etc/subuid, written by "
                            "newuidmap/newgidmap: files chowned to them show those owners outside)")
    if single_why:
        return note.replace("only uid 0 exists inside", f"only uid 0 exists inside (a single-id "
                            f"map: {single_why})")
    return note


def busybox_rootfs():
    """The bundled busybox rootfs (`make rootfs`), or $MRUNC_ROOTFS."""
    return os.environ.get("MRUNC_ROOTFS") or os.path.join(REPO, "rootfs", "busybox")


def mrunc_command():
    """How to run the CLI: the `mrunc` script beside this interpreter, else `python -m mrunc`."""
    exe = os.path.join(os.path.dirname(sys.executable), "mrunc")
    if os.access(exe, os.X_OK):
        return [exe]
    return [sys.executable, "-m", "mrunc"]



def delegated_subtree_problem():
    """Why this user gets no limits, or None once the delegated subtree is ready."""
    from ..cgroups import delegation
    from ..errors import CgroupError
    sub = delegation.find()
    if sub.path is None:
        return sub.reason
    try:
        sub.prepare()
    except CgroupError as e:
        return f"{sub.path} is delegated, but its controllers could not be enabled: {e}"
    return None


def mark_warned():
    from ..process.parent import warned_mark
    mark = warned_mark()
    if mark:
        try:
            open(mark, "a").close()
        except OSError:
            pass

