"""Capabilities: names <-> bit masks, and the calls that give a process its five sets.

The name table is `mrunc.spec.consts.CAPABILITIES` (one table for the checks, `features` and this
phase). Masks are what the kernel speaks: bit N is capability N, as in /proc/<pid>/status
(`CapEff: 00000000a80425fb`) and capget/capset.
"""
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from mrunc.errors import SpecError
from mrunc.linux import (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, PR_CAP_AMBIENT_RAISE,
                         PR_CAPBSET_DROP)
from mrunc.spec.consts import CAPABILITIES, CAPABILITY_SETS

_BY_NUMBER = sorted(CAPABILITIES, key=CAPABILITIES.get)  # number -> name
LAST_CAP = len(_BY_NUMBER) - 1  # the last one this table names (40, CAP_CHECKPOINT_RESTORE)

_host_last_cap = None


def cap_names(mask):
    """Mask -> names, lowest bit first. Bits this table cannot name (a newer kernel's) come out as
    their number, as libcap prints them."""
    return [_BY_NUMBER[n] if n <= LAST_CAP else str(n)
            for n in range(mask.bit_length()) if mask >> n & 1]


def cap_mask(names, last_cap=LAST_CAP, skipped=None):
    """Names -> mask. A name we don't know, or a cap above `last_cap` (the running kernel's, see
    host_last_cap), raises ValueError; or, if `skipped` is a list, goes there and is left out."""
    mask = 0
    for name in names:
        n = CAPABILITIES.get(name)
        if n is None or n > last_cap:
            if skipped is None:
                raise ValueError(f"unknown capability {name!r}" if n is None else
                                 f"{name} is not in this kernel (cap_last_cap is {last_cap})")
            skipped.append(name)
            continue
        mask |= 1 << n
    return mask


def unavailable_warning(where, names, last_cap):
    """The one wording for capabilities that are skipped, config.json's and `exec --cap`'s alike
    (runc's words: engines and users grep for them)."""
    return (f"{where}: ignoring unknown or unavailable capabilities: {', '.join(names)} "
            f"(this kernel's cap_last_cap is {last_cap})")


def host_last_cap():
    """The highest capability number the running kernel knows, read once. A 5.4 kernel stops at
    37 (CAP_AUDIT_READ): asking it to keep CAP_BPF is asking for something it doesn't have."""
    global _host_last_cap
    if _host_last_cap is None:
        try:
            # os.open, not open(): no buffered text file set up for three bytes — in init, a
            # fork, that set-up's writes copied ≈ 60 pages (0.2 ms of CPU)
            fd = os.open("/proc/sys/kernel/cap_last_cap", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _host_last_cap = int(os.read(fd, 16))
            finally:
                os.close(fd)
        except (OSError, ValueError):
            _host_last_cap = LAST_CAP
    return _host_last_cap


def cap_sets(caps, last_cap=None, uid=None):
    """`process.capabilities` -> ({set name: mask}, [warnings]). Touches nothing.

    Absent (None) gives five empty sets: runc 1.1.5 (finalizeNamespace) then drops every
    capability, and so do we; an absent key inside it is an empty set too. The spec says caps that
    cannot be granted are logged and skipped, not fatal; so are, with a warning each:
      * caps the running kernel doesn't have (and names we don't know: validation refuses those
        in config.json), all in one warning;
      * effective caps not in permitted (capset would refuse: permitted is effective's ceiling);
      * inheritable caps not in bounding (capset refuses those too);
      * ambient caps not in both permitted and inheritable (the raise would fail with EPERM;
        runc 1.1.5 ignores that error silently, we say so) — except, for `uid` 0, those in
        bounding: execve gives root every bounding cap anyway, so the program does get them.
        (`runc spec`'s default lists ambient caps without inheritable ones: for root, no warning.)
    Inheritable is exactly what is listed: nothing is added (CVE-2022-29162).
    """
    last = host_last_cap() if last_cap is None else last_cap
    if caps is not None and not isinstance(caps, dict):
        raise SpecError("process.capabilities: must be an object")
    caps = caps or {}
    masks, warnings, skipped = {}, [], []
    for key in CAPABILITY_SETS:
        names = caps.get(key) or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise SpecError(f"process.capabilities.{key}: must be an array of strings")
        masks[key] = cap_mask(names, last, skipped)
    if skipped:
        # One cap listed in four sets is one cause: one line. (Validation has refused names
        # that are no capability at all; what is left here are the ones this kernel lacks.)
        warnings.append(unavailable_warning("process.capabilities", dict.fromkeys(skipped), last))

    def limit(key, allowed, why, quiet=0):
        extra = masks[key] & ~allowed
        masks[key] &= allowed
        if extra & ~quiet:
            names = ", ".join(cap_names(extra & ~quiet))
            warnings.append(f"process.capabilities.{key}: ignoring {names}: {why}")

    limit("effective", masks["permitted"], "not in permitted")
    limit("inheritable", masks["bounding"], "not in bounding")
    limit("ambient", masks["permitted"] & masks["inheritable"],
          "an ambient capability must also be permitted and inheritable",
          quiet=masks["bounding"] if uid == 0 else 0)
    return masks, warnings


def _named(path, what, e):
    return OSError(e.errno, f"{path}: {what}: {os.strerror(e.errno)}")


def drop_bounding(sys, bounding, last_cap=None):
    """PR_CAPBSET_DROP every capability of the kernel's that is not in `bounding` (a mask).

    Needs CAP_SETPCAP in the effective set: call it while still root, before switch_user.
    Dropping one that is already gone is harmless, so we don't read the set first: the trace shows
    one call per capability removed from the container's world.
    """
    last = host_last_cap() if last_cap is None else last_cap
    for n in range(last + 1):
        if not bounding >> n & 1:
            try:
                sys.prctl(PR_CAPBSET_DROP, n)
            except OSError as e:
                raise _named("process.capabilities.bounding", f"PR_CAPBSET_DROP {_BY_NUMBER[n]}",
                             e) from None


def set_capabilities(sys, masks):
    """capset(effective, permitted, inheritable), then the ambient set.

    After switch_user: changing uid from 0 clears effective (permitted survives thanks to
    KEEPCAPS), so this is what gives a non-root user its effective caps back. Ambient comes last
    because the kernel only lets a cap into ambient if it is permitted and inheritable *now*. We
    clear ambient first so a set inherited by the runtime itself cannot leak into the container.
    """
    try:
        sys.capset(masks["effective"], masks["permitted"], masks["inheritable"])
    except OSError as e:
        raise _named("process.capabilities", "capset", e) from None
    what = "PR_CAP_AMBIENT_CLEAR_ALL"
    try:
        sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        for n in range(masks["ambient"].bit_length()):
            if masks["ambient"] >> n & 1:
                what = f"PR_CAP_AMBIENT_RAISE {_BY_NUMBER[n]}"
                sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, n)
    except OSError as e:
        raise _named("process.capabilities.ambient", what, e) from None
