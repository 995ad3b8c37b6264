"""A stand-in for the `mrunc` CLI that speaks the step protocol without root: `run` reports the
phases on --step-fd (pid: its own), then execs the config's args on the host. For unit tests of
mrunc.sandbox's process handling (tests/unit/test_sandbox.py, test_magics.py).

FAKE_FAIL_AT=<phase>: report an error event at that phase and exit 1, as the runtime does.
"""
import json
import os
import signal
import sys
import time

PHASES = ("spec", "clone", "mount", "pivot_root", "cgroup", "security")


def cfg_args(bundle):
    with open(os.path.join(bundle, "config.json")) as f:
        return json.load(f)["process"]["args"]


def undo(d):
    """What the runtime does when create fails or is aborted: nothing is left."""
    for f in ("pid", "state.json"):
        try:
            os.unlink(os.path.join(d, f))
        except OSError:
            pass
    try:
        os.rmdir(d)
    except OSError:
        pass


def main(argv):
    root = argv[argv.index("--root") + 1]
    rest = argv[argv.index("--root") + 2:]
    verb, args = rest[0], rest[1:]
    name = args[-1] if args else ""
    d = os.path.join(root, name)
    if verb == "run":
        step_fd = int(args[args.index("--step-fd") + 1]) if "--step-fd" in args else None
        bundle = args[args.index("--bundle") + 1]
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "pid"), "w") as f:
            f.write(str(os.getpid()))
        if step_fd is not None:
            ch = os.fdopen(step_fd, "r+b", buffering=0)
            for phase in PHASES:
                if os.environ.get("FAKE_FAIL_AT") == phase:
                    ch.write(json.dumps({"event": "error", "phase": phase,
                                         "message": f"{phase}: mount /nope: no such file"}).encode() + b"\n")
                    sys.stderr.write(f"mrunc: {phase}: mount /nope: no such file\n")
                    undo(d)
                    return 1
                ev = {"event": "phase-done", "phase": phase, "ms": 1.5, "calls": [["fake", phase]]}
                if phase != "spec":
                    ev["pid"] = os.getpid()
                ch.write(json.dumps(ev).encode() + b"\n")
                line = ch.readline().strip()
                if line != b"continue":
                    sys.stderr.write(f"mrunc: {phase}: stopped by the stepper ({line.decode() or 'closed'})\n")
                    undo(d)
                    return 1
            # The exec phase, as the runtime reports it once init has exec'd (no answer awaited):
            # a child of ours waits for our exec, then says so.
            me = os.getpid()
            if os.fork() == 0:
                for _ in range(5000):   # 5 s at most (an exec that fails: no report)
                    with open(f"/proc/{me}/cmdline", "rb") as f:
                        if f.read().split(b"\0")[0] == cfg_args(bundle)[0].encode():
                            break
                    time.sleep(0.001)
                else:
                    os._exit(1)
                ch.write(json.dumps({"event": "phase-done", "phase": "exec", "ms": 1.5,
                                     "calls": [{"call": "execve", "args": cfg_args(bundle),
                                                "who": "init", "pid": me}],
                                     "pid": me}).encode() + b"\n")
                os._exit(0)
            ch.close()
        with open(os.path.join(bundle, "config.json")) as f:
            cfg = json.load(f)
        with open(f"/proc/{os.getpid()}/stat", "rb") as f:
            start = int(f.read().rsplit(b")", 1)[1].split()[19])
        state = {"id": name, "pid": os.getpid(), "start_time": start, "bundle": bundle,
                 "rootfs": cfg["root"]["path"], "created": "2026-01-01T00:00:00Z", "config": cfg,
                 "cgroup": None}
        with open(os.path.join(d, "state.json"), "w") as f:
            json.dump(state, f)
        sys.stdout.flush()
        os.execvp(cfg["process"]["args"][0], cfg["process"]["args"])
    if verb == "kill":
        try:
            with open(os.path.join(root, args[-2], "pid")) as f:
                os.kill(int(f.read()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        return 0
    if verb == "delete":
        undo(d)
        return 0
    sys.stderr.write(f"mrunc: fake: {verb} not faked\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
