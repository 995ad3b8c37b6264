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


def run(config, kind, state, warn=None):
    """Run every hook of `kind` in order. Raise MruncError (or warn, for poststop) on failure."""
    for i, hook in enumerate((config.get("hooks") or {}).get(kind) or []):
        try:
            _run_one(hook, state)
        except MruncError as e:
            msg = f"hooks.{kind}[{i}]: {e}"
            if warn is None:
                raise MruncError(msg) from None
            warn(msg)


def run_in_container(config, kind, state):
    """createContainer/startContainer: run by init, so inside the container's namespaces.
    The state's pid is init's pid as seen in the container's PID namespace."""
    run(config, kind, dict(state, pid=os.getpid()))


def _run_one(hook, state):
    import subprocess
    from .fastjson import dumps
    path = hook["path"]
    args = hook.get("args") or [path]
    env = hook.get("env")
    env = None if env is None else dict(kv.partition("=")[::2] for kv in env)
    try:
        p = subprocess.run([args[0], *args[1:]], executable=path, input=dumps(state).encode(),
                           env=env, capture_output=True, timeout=hook.get("timeout"))
    except subprocess.TimeoutExpired:
        raise MruncError(f"{path}: timed out after {hook['timeout']}s (killed)") from None
    except OSError as e:
        raise MruncError(f"{path}: {e.strerror}") from None
    if p.returncode != 0:
        out = (p.stderr or p.stdout).decode(errors="replace").strip().splitlines()
        detail = f": {out[-1]}" if out else ""
        raise MruncError(f"{path} exited with status {p.returncode}{detail}")
