"""Resource limits (`process.rlimits[]`) and the OOM killer's score (`process.oomScoreAdj`).

Both are inherited across fork and execve, so setting them on init sets them for the container's
program. Both can be raised past their current ceiling only with CAP_SYS_RESOURCE, and that
capability only counts in the *initial* user namespace: a container in its own user namespace
cannot raise them itself. runc 1.1.5 therefore sets rlimits from the parent with prlimit(2) and
oom_score_adj before entering the user namespace; pass `pid` to do the same. Setting a limit to the
value it already has always works, so init may apply them again afterwards.
"""

from mrunc.errors import SpecError
from mrunc.spec.consts import RLIMITS


def apply_rlimits(sys, rlimits, pid=None):
    """setrlimit each `{type, soft, hard}` in order (prlimit on `pid` if given); getrlimit then
    returns exactly soft/hard. Unknown or duplicate types are config errors (the spec: MUST error),
    checked before any limit is changed. Errors start with the JSON path:
    `process.rlimits[0]: setrlimit RLIMIT_NOFILE 1048576/1048576: Operation not permitted`.
    """
    todo, seen = [], {}
    for i, rl in enumerate(rlimits or ()):
        path, kind = f"process.rlimits[{i}]", rl.get("type")
        if kind not in RLIMITS:
            raise SpecError(f"{path}.type: unknown rlimit {kind!r}")
        if kind in seen:
            raise SpecError(f"{path}.type: duplicate {kind} (also {seen[kind]})")
        seen[kind] = path
        todo.append((path, kind, rl.get("soft"), rl.get("hard")))
    for path, kind, soft, hard in todo:
        try:
            if pid is None:
                sys.setrlimit(RLIMITS[kind], soft, hard, kind)
            else:
                sys.prlimit(pid, RLIMITS[kind], soft, hard, kind)
        except OSError as e:
            raise OSError(e.errno, f"{path}: {e.strerror}") from None


def apply_oom_score_adj(sys, value, pid="self", proc=None):
    """Write /proc/<pid>/oom_score_adj, only when the config sets it: unset MUST leave it alone
    (the container keeps the runtime's, as a forked child would). Lowering it needs
    CAP_SYS_RESOURCE; raising it (easier to kill) never does. Written below `proc` (a
    mrunc.procfs.Proc; the runtime's /proc when None), never through a path from "/" (S8, S12)."""
    if value is None:
        return
    from mrunc.procfs import Proc
    handle = proc or Proc.at("/proc")
    try:
        handle.write(sys, f"{pid}/oom_score_adj", str(value), "process.oomScoreAdj")
    finally:
        if proc is None:
            handle.close()


def explain_emfile(rlimits, e):
    """An EMFILE in init after a low RLIMIT_NOFILE is that limit's doing, not the file's: name the
    rlimit (init itself still opens a few files before exec). Returns e otherwise."""
    import errno
    if not isinstance(e, OSError) or e.errno != errno.EMFILE:
        return e
    for i, rl in enumerate(rlimits or ()):
        if rl.get("type") == "RLIMIT_NOFILE":
            return OSError(e.errno, f"process.rlimits[{i}]: RLIMIT_NOFILE soft limit {rl.get('soft')} "
                                    f"leaves the runtime too few file descriptors before exec: "
                                    f"{e.strerror}", e.filename)
    return e
