"""`process.user`: who the container's program runs as — groups, gid, uid — and its umask."""
import errno
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from mrunc.linux import PR_SET_KEEPCAPS

# runc 1.1.5 (finalizeRootfs) sets umask 0022 when process.user.umask is unset, rather than keep
# the caller's as the spec suggests (SHOULD). We follow runc: a container must not behave
# differently depending on the umask of whoever ran `mrunc create` (a shell, conmon, containerd).
DEFAULT_UMASK = 0o022


def setgroups_allowed(proc=None):
    """False when /proc/self/setgroups says "deny": an unprivileged user namespace's writer of
    gid_map must deny setgroups (since Linux 3.19), or dropping a group could grant access.
    Read below `proc` (a mrunc.procfs.Proc) when given: the container's /proc may be anything."""
    try:
        fd = proc.open("self/setgroups") if proc else os.open("/proc/self/setgroups", os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        return os.read(fd, 64).strip() != b"deny"
    finally:
        os.close(fd)


def _call(path, what, fn, *args):
    try:
        fn(*args)
    except OSError as e:
        raise OSError(e.errno, f"{path}: {what}: {os.strerror(e.errno)}") from None


def switch_user(sys, user, allow_setgroups=None):
    """setgroups(additionalGids), setresgid(gid), setresuid(uid), then the umask.

    Groups and gid first: once uid is not 0 we no longer have CAP_SETGID to change them.
    setgroups is called even with an empty list (as runc does) so the runtime's own supplementary
    groups never reach the container. Where setgroups is denied (user namespace), an empty list is
    skipped quietly and a non-empty one is an error.

    Changing uid from 0 to non-0 clears the permitted and effective capability sets, unless the
    process has set PR_SET_KEEPCAPS: we set it around setresuid so that the permitted set survives
    and set_capabilities can then hand the configured caps to a non-root user. It is cleared again
    right after (execve would clear it anyway). Also: any credential change resets the
    parent-death signal (PR_SET_PDEATHSIG), so a caller relying on one must set it again.
    `allow_setgroups` defaults to reading /proc/self/setgroups.
    """
    user = user or {}
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    gids = user.get("additionalGids") or []
    if allow_setgroups is None:
        allow_setgroups = setgroups_allowed()
    if allow_setgroups:
        _call("process.user.additionalGids", f"setgroups {gids}", sys.setgroups, gids)
    elif gids:
        raise OSError(errno.EPERM, "process.user.additionalGids: setgroups is denied in this user "
                      "namespace (/proc/self/setgroups says deny)")
    _call("process.user.gid", f"setresgid {gid}", sys.setresgid, gid)
    _call("process.user", "prctl PR_SET_KEEPCAPS 1", sys.prctl, PR_SET_KEEPCAPS, 1)
    _call("process.user.uid", f"setresuid {uid}", sys.setresuid, uid)
    _call("process.user", "prctl PR_SET_KEEPCAPS 0", sys.prctl, PR_SET_KEEPCAPS, 0)
    umask = user.get("umask")
    sys.umask(DEFAULT_UMASK if umask is None else umask)
