"""The security phase: what the container's program may do, set by init just before it execs.

Root's power is cut into ~41 **capabilities**: CAP_KILL (signal anyone's process),
CAP_NET_BIND_SERVICE (bind ports below 1024), CAP_SYS_ADMIN (mount, and far too much else). The
kernel checks a capability, not "is uid 0". Each process has five capability sets, 64-bit masks
shown in /proc/<pid>/status (CapInh, CapPrm, CapEff, CapBnd, CapAmb):

  effective    what the kernel checks right now.
  permitted    the ceiling of effective. A process may move caps between the two, and give caps
               up, but never add one to permitted — except through execve.
  inheritable  what may pass through execve into a program whose *file* carries the same
               inheritable file capabilities. Keep it empty unless asked: a non-empty default let
               unprivileged programs with file caps gain privileges (CVE-2022-29162).
  bounding     the ceiling of everything any execve can ever grant, setuid-root programs included.
               It only shrinks (PR_CAPBSET_DROP), and children inherit it: the container's limit.
  ambient      caps kept across execve of an ordinary program by a non-root user. Each must also
               be permitted and inheritable.

What execve does with them: a program run as **root** gets permitted = bounding (+ inheritable)
and effective = permitted, whatever we capset before — for root, the bounding set is what counts.
A program run as a **non-root** user gets only its ambient caps (if its file has no caps). So a
non-root user whose config lists caps but no ambient ones has none left after the exec.

**no_new_privs** is one bit, inherited and never cleared: from then on execve grants nothing —
setuid bits and file capabilities are ignored. It is also what lets an unprivileged process
install a seccomp filter.

The order (runc's standard_init_linux.go and finalizeNamespace do the same, for the same reasons):
  1. rlimits, oom_score_adj  raising a hard limit, lowering the OOM score need CAP_SYS_RESOURCE;
                             do it while we still have every capability.
  2. bounding set            PR_CAPBSET_DROP needs CAP_SETPCAP in effective, which setuid to a
                             non-root user clears: before the user changes.
  3. groups, gid, uid        setgroups/setresgid need CAP_SETGID, so before setresuid; around
                             setresuid PR_SET_KEEPCAPS=1, so permitted survives the uid change.
  4. capset                  after the uid change, which emptied effective: E, P, I as configured.
  5. ambient                 after capset: only a cap permitted *and* inheritable may be raised.
  6. no_new_privs            last of these; then seccomp, as late as possible (seccomp.py).
Without no_new_privs, installing a seccomp filter needs CAP_SYS_ADMIN, which 2-4 may take away:
then the filter is loaded between 1 and 2, while init still has every capability (runc's order).
"""
import posix as os  # os's C module: the same calls, without os's import (mrunc.paths)

from mrunc.linux import PR_SET_NO_NEW_PRIVS

from .capabilities import (CAPABILITIES, LAST_CAP, cap_mask, cap_names, cap_sets, drop_bounding,
                           host_last_cap, set_capabilities)
from .rlimits import RLIMITS, apply_oom_score_adj, apply_rlimits
from .user import DEFAULT_UMASK, setgroups_allowed, switch_user

__all__ = ["CAPABILITIES", "LAST_CAP", "RLIMITS", "DEFAULT_UMASK", "apply", "apply_capabilities",
           "apply_oom_score_adj", "apply_rlimits", "cap_mask", "cap_names", "cap_sets",
           "drop_bounding", "host_last_cap", "print_to_stderr", "set_capabilities",
           "set_no_new_privs", "setgroups_allowed", "switch_user"]


def print_to_stderr(msg):
    try:
        os.write(2, f"mrunc: warning: {msg}\n".encode())
    except OSError:
        pass


def set_no_new_privs(sys):
    try:
        sys.prctl(PR_SET_NO_NEW_PRIVS, 1)
    except OSError as e:
        raise OSError(e.errno, f"process.noNewPrivileges: prctl PR_SET_NO_NEW_PRIVS: "
                               f"{os.strerror(e.errno)}") from None


def apply_capabilities(sys, caps, warn=print_to_stderr):
    """Bounding, then capset and ambient, for a process whose user does not change. When it does,
    switch_user goes between the two halves, as in apply()."""
    masks, warnings = cap_sets(caps, uid=os.getuid())
    for w in warnings:
        warn(w)
    drop_bounding(sys, masks["bounding"])
    set_capabilities(sys, masks)


def apply(sys, process, warn=print_to_stderr, seccomp=None, proc=None):
    """The whole phase for `process` (config.json's process object), in the order above.
    Warnings (capabilities that cannot be granted) go to `warn`; errors are OSError (or SpecError)
    whose message starts with the JSON path.

    `seccomp` (a built security.seccomp.Seccomp) is loaded here only when noNewPrivileges is off;
    otherwise the caller loads it as its very last step before exec (`seccomp.load(sys)`).
    `proc` (a mrunc.procfs.Proc) is where /proc files are written and read; None: /proc."""
    process = process or {}
    # Work out the capability sets first: a config problem fails before anything is changed.
    uid = (process.get("user") or {}).get("uid", 0)
    masks, warnings = cap_sets(process.get("capabilities"), uid=uid)
    for w in warnings:
        warn(w)
    # 1. While we still hold CAP_SYS_RESOURCE (lost with the caps drop).
    apply_rlimits(sys, process.get("rlimits"))
    apply_oom_score_adj(sys, process.get("oomScoreAdj"), proc=proc)
    # Read /proc before a filter can be on: from then on only what the profile allows works, and
    # profiles that predate openat2 (the OCI validation suite's default one) refuse it.
    allow_setgroups = setgroups_allowed(proc)
    if seccomp is not None and not process.get("noNewPrivileges"):
        seccomp.load(sys)  # still root with CAP_SYS_ADMIN: the only time it can be loaded
    # 2. While we are still root with CAP_SETPCAP in effective.
    drop_bounding(sys, masks["bounding"])
    # 3. Groups, gid, uid (KEEPCAPS around setresuid keeps permitted), umask.
    switch_user(sys, process.get("user"), allow_setgroups)
    # 4-5. setuid emptied effective (non-root): set E/P/I as configured, then raise ambient.
    set_capabilities(sys, masks)
    # 6. Last: execve may grant nothing more from here. (With it, seccomp follows, late.)
    if process.get("noNewPrivileges"):
        set_no_new_privs(sys)
