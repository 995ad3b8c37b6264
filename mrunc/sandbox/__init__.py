"""Containers from Python: the API the notebook magics and widgets are built on.

    from mrunc.sandbox import Sandbox
    with Sandbox() as lab:
        lab.run("echo hello from $(hostname)", memory="64M")       # output streams, returns the status
        c = lab.start("sleep 1000", name="web", pids=20)           # a running container
        session = lab.step("echo hi; sleep 60", memory="32M")     # pause at every phase
        step = session.next()                                      # spec, clone, mount, ... exec

**Who forks.** A Jupyter kernel is a multi-threaded process: it must never fork, and it cannot
unshare a user namespace (EINVAL for a threaded caller). So the sandbox never makes a container
itself. Every container is made by a short-lived `mrunc` command, and one of those stays behind as
the container's parent: `mrunc run` is a *child subreaper*, so it waits for the container's init
and knows its exit status (as conmon or containerd's shim do for runc). The kernel only starts
that process and reads what it writes. Reading state (status, cgroup usage, /proc snapshots) is
plain file reading and is done in the kernel, which is cheap.

**Stepping.** `step()` runs `mrunc run --step-fd N` with one end of a socketpair as fd N: after each
phase the runtime writes one JSON line (`{"event": "phase-done", "phase": "clone", "ms": …,
"calls": […], "pid": …}`) and waits for `continue` (or `abort`). Between two phases the container's
init is paused, and `mrunc.snapshot` reads it from /proc — and, for what a user without root
cannot read there (init is not dumpable until it execs), from init's own report of itself, which
comes with each phase (mrunc.process.selfview). The last step is `start`: the runtime
releases init, which execs the program.

**Files.** A sandbox has a private state root (`--root`, default $MRUNC_LAB_ROOT or /run/mrunc-lab;
rootless: the user's own, $XDG_RUNTIME_DIR/mrunc-lab or ~/.local/state/mrunc-lab — see
mrunc.userdirs; both directories are checked, owner and mode, before every use) and, beside it, a
directory per container (`<root>.bundles/<name>`) with the generated config.json, the output log
and, unless the container is read-only, an overlay: the shared busybox rootfs as the lower layer,
the container's writes in an upper directory of its own — so containers never change the image,
as with docker. `close()` (also at exit, at a Jupyter kernel's shutdown, and for a `with` block)
deletes every container the sandbox made and those directories, then calls what `at_close(fn)`
was given (a notebook's own host directory); a sandbox that finds the leftovers of a dead one
cleans them.

**Where each idea lives.**

    options.py    keyword options -> config.json (build_config, parse_size, parse_user)
    lab.py        Sandbox: the state root, making containers, ps, watch, lab networks, close and sweep
    container.py  Container: its bundle and overlay, state, start/wait/kill/stop/exec/delete
    run.py        Run: a foreground run's output as it comes; RunResult, describe_exit
    stepping.py   StepSession and Step: one phase per next(), a snapshot at every pause
    host.py       what this host allows (root, rootless, nothing) and where the rootfs is
    errors.py     SandboxError, Unavailable: the one line a cell shows
"""
from .container import Container
from .errors import SandboxError, Unavailable
from .host import REPO, ROOTLESS_NOTE, busybox_rootfs, check_available, mrunc_command
from .lab import LIMITS, Sandbox
from .options import build_config, cap_name, parse_size, parse_user, rootless_ready
from .run import FOREVER, Run, RunResult, describe_exit
from .stepping import Step, StepSession
from ..phases import NAMES as PHASES   # the one list of phases

__all__ = ["Sandbox", "Container", "Run", "RunResult", "Step", "StepSession", "SandboxError",
           "Unavailable", "PHASES", "FOREVER", "LIMITS", "REPO", "ROOTLESS_NOTE", "build_config",
           "busybox_rootfs", "cap_name", "check_available", "describe_exit", "mrunc_command",
           "parse_size", "parse_user", "rootless_ready"]
