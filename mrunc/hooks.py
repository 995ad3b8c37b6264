"""OCI hooks: programs the runtime runs at fixed points of the lifecycle, with the state on stdin.

    kind             when                                         where it runs
    prestart         create, mounts done, before pivot_root       runtime namespaces (deprecated)
    createRuntime    same point, after prestart                   runtime namespaces
    createContainer  same point, after createRuntime              container namespaces (init)
    startContainer   start, just before the user program          container namespaces (init)
    poststart        start, after the user program started        runtime namespaces
    poststop         delete, after the container is gone          runtime namespaces

A hook is {path, args (args[0] is argv[0]), env, timeout}. A failing hook fails the operation —
except poststop, whose failures are only warnings (the container is gone already), and poststart
in bundles older than runtime-spec 1.3.0 (whose text said: warn, and go on; see api.start).
"""
import os

from .errors import MruncError

# The status the create hooks (prestart, createRuntime, createContainer) read on stdin. runtime.md
# defines "creating" as lifecycle step 2 (the environment being made) and "created" as "after
# step 2"; these hooks are steps 3-5, so "created" (crun says so too; runc says "creating").
CREATE_STATUS = "created"


def run(config, kind, state, warn=None, sys=None):
    """Run every hook of `kind` in order. Raise MruncError (or warn, for poststop) on failure.
    `sys`: the Syscalls whose record each run joins (process "hook": its pid, time, status)."""
    for i, hook in enumerate((config.get("hooks") or {}).get(kind) or []):
        try:
            _run_one(hook, state, sys, kind)
        except MruncError as e:
            msg = f"hooks.{kind}[{i}]: {e}"
            if warn is None:
                raise MruncError(msg) from None
            warn(msg)


def run_in_container(config, kind, state, sys=None):
    """createContainer/startContainer: run by init, so inside the container's namespaces.
    The state's pid is init's pid as seen in the container's PID namespace."""
    run(config, kind, dict(state, pid=os.getpid()), sys=sys)


def _run_one(hook, state, sys=None, kind="hook"):
    path = hook["path"]
    args = hook.get("args") or [path]
    if sys is None:
        p = _spawn(hook, state)
    else:
        with sys.around(kind, path, *args[1:], who="hook") as call:  # createRuntime('/bin/x', …)
            p = _spawn(hook, state, call)
            call.ret = p.returncode
    if p.returncode != 0:
        out = (p.stderr or p.stdout).decode(errors="replace").strip().splitlines()
        detail = f": {out[-1]}" if out else ""
        raise MruncError(f"{path} exited with status {p.returncode}{detail}")


def _spawn(hook, state, call=None):
    """Run the hook, the state on its stdin; its CompletedProcess. `call` gets its pid."""
    import subprocess
    from .fastjson import dumps
    path = hook["path"]
    args = hook.get("args") or [path]
    env = hook.get("env")
    env = None if env is None else dict(kv.partition("=")[::2] for kv in env)
    try:
        p = subprocess.Popen([args[0], *args[1:]], executable=path, env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise MruncError(f"{path}: {e.strerror}") from None
    if call is not None:
        call.pid = p.pid
    try:
        out, err = p.communicate(dumps(state).encode(), timeout=hook.get("timeout"))
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise MruncError(f"{path}: timed out after {hook['timeout']}s (killed)") from None
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)
