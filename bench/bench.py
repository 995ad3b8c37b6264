#!/usr/bin/env python3
"""Benchmark mrunc against runc on the busybox bundle: containers of `true`.

Three measurements, each repeated N times, the runtimes interleaved (A B A B ...)
so that a slow moment of the machine hits both alike:

  run        `R --root ROOT run --bundle B ID`, wall time until it returns.
  lifecycle  create -> start -> wait -> delete, wall time of the whole, and of
             each step:
               create  `R --root ROOT create --bundle B --pid-file F ID`
               start   `R --root ROOT start ID`
               wait    until the container's init has exited
               delete  `R --root ROOT delete ID`
  exec       `R --root ROOT exec ID true` in a container of each runtime that
             runs `sleep` all along (started once, untimed): wall time until
             exec returns with true's exit status — what every `podman exec`
             and Kubernetes exec probe costs.

How we wait is the same for both runtimes and is what conmon and containerd's
shim do: this process is a child subreaper (PR_SET_CHILD_SUBREAPER), so the init
that `create` leaves orphaned is re-parented to us and we waitpid() on the pid
from --pid-file. No polling interval is in the figures.

Each runtime gets a private --root under /run and unique container ids; every
container is deleted and the roots removed at the end, also on failure.
Needs root. Usage:

    bench/bench.py [--n 20] [--only mrunc|runc] [--bundle rootfs/bundle]
"""

import argparse
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PR_SET_CHILD_SUBREAPER = 36


class Failed(Exception):
    pass


class Runtime:
    def __init__(self, name, binary, root, errfile):
        self.name, self.binary, self.root, self.errfile = name, binary, root, errfile

    def cmd(self, *args):
        return [self.binary, "--root", self.root, *args]

    def call(self, *args, check=True):
        """Run one runtime command; return its wall time in seconds.

        stderr goes to a file, not a pipe: with terminal false the container
        inherits create's stdio, so a pipe would not see EOF until it exits."""
        with open(self.errfile, "w+b") as err:
            t0 = time.perf_counter()
            p = subprocess.run(self.cmd(*args), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err)
            dt = time.perf_counter() - t0
            if check and p.returncode != 0:
                err.seek(0)
                msg = err.read().decode(errors="replace").strip()
                raise Failed(f"{self.name} {' '.join(args)}: exit {p.returncode}: {msg}")
        return dt

    def cleanup(self, cid):
        """Untimed: remove the container if the runtime still knows it."""
        if os.path.exists(os.path.join(self.root, cid)):
            self.call("delete", "--force", cid, check=False)


def reap_strays():
    """Reap orphans re-parented to us (we are a subreaper) between iterations."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def bench_run(rt, bundle, cid):
    try:
        return {"run": rt.call("run", "--bundle", bundle, cid)}
    finally:
        rt.cleanup(cid)


def bench_lifecycle(rt, bundle, cid, tmp):
    pidfile = os.path.join(tmp, f"{cid}.pid")
    times = {}
    try:
        t0 = time.perf_counter()
        times["create"] = rt.call("create", "--bundle", bundle, "--pid-file", pidfile, cid)
        with open(pidfile) as f:
            pid = int(f.read().strip())
        times["start"] = rt.call("start", cid)
        t2 = time.perf_counter()
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            raise Failed(f"{rt.name}: init pid {pid} is not our child (was it re-parented to us?)")
        t3 = time.perf_counter()
        times["wait"] = t3 - t2
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            raise Failed(f"{rt.name}: container {cid} ended with wait status {status:#x}")
        times["delete"] = rt.call("delete", cid)
        times["lifecycle"] = time.perf_counter() - t0
        return times
    finally:
        rt.cleanup(cid)


def bench_exec(rt, cid):
    return {"exec": rt.call("exec", cid, "true")}


def median_ms(values):
    return statistics.median(values) * 1000 if values else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20, help="containers per runtime and measurement (20)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (1)")
    ap.add_argument("--only", choices=["mrunc", "runc"], help="benchmark one runtime only")
    ap.add_argument("--bundle", default=os.path.join(REPO, "rootfs", "bundle"),
                    help="bundle whose config.json is used, with args set to ['true']")
    ap.add_argument("--mrunc", default=os.path.join(REPO, ".venv", "bin", "mrunc"))
    ap.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("bench: needs root (make bench as root)")
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"bench: prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")

    names = [args.only] if args.only else ["mrunc", "runc"]
    for name in names:
        binary = getattr(args, name)
        if not os.access(binary, os.X_OK):
            sys.exit(f"bench: {name} not found at {binary} (make setup)")

    # SIGTERM cleans up like Ctrl-C does (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = tempfile.mkdtemp(prefix="mrunc-bench.", dir="/run")
    tmp = os.path.join(base, "tmp")
    bundle = os.path.join(base, "bundle")
    os.makedirs(tmp)
    os.makedirs(bundle)
    with open(os.path.join(args.bundle, "config.json")) as f:
        config = json.load(f)
    config["process"]["args"] = ["true"]
    config["process"]["terminal"] = False
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    sleeper = os.path.join(base, "sleeper")
    os.makedirs(sleeper)
    config["process"]["args"] = ["sleep", "1000000"]
    with open(os.path.join(sleeper, "config.json"), "w") as f:
        json.dump(config, f, indent=2)

    runtimes = [Runtime(n, getattr(args, n), os.path.join(base, n), os.path.join(tmp, f"{n}.err"))
                for n in names]
    results = {rt.name: {} for rt in runtimes}
    tag = f"b{os.getpid()}"
    print(f"bench: {args.n} containers of `true` per runtime and measurement "
          f"(+{args.warmup} warm-up), interleaved {' '.join(names)}", flush=True)
    try:
        for rt in runtimes:  # the containers that exec goes into (untimed)
            rt.call("run", "--detach", "--bundle", sleeper, f"{tag}-{rt.name}-sleeper")
        for i in range(-args.warmup, args.n):
            for what in ("run", "lifecycle", "exec"):
                for rt in runtimes:
                    cid = f"{tag}-{rt.name}-{what}-{i + args.warmup}"
                    if what == "run":
                        t = bench_run(rt, bundle, cid)
                    elif what == "exec":
                        t = bench_exec(rt, f"{tag}-{rt.name}-sleeper")
                    else:
                        t = bench_lifecycle(rt, bundle, cid, tmp)
                    reap_strays()
                    if i >= 0:
                        for k, v in t.items():
                            results[rt.name].setdefault(k, []).append(v)
    except Failed as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        for rt in runtimes:
            if os.path.isdir(rt.root):
                for cid in os.listdir(rt.root):
                    rt.call("delete", "--force", cid, check=False)
        reap_strays()
        shutil.rmtree(base, ignore_errors=True)

    rows = [("run", "run"), ("create→start→wait→delete", "lifecycle"),
            ("  create", "create"), ("  start", "start"), ("  wait", "wait"),
            ("  delete", "delete"), ("exec true (running)", "exec")]
    header = f"{'median of ' + str(args.n):<26}" + "".join(f"{n + ' ms':>11}" for n in names)
    if len(names) == 2:
        header += f"{'mrunc/runc':>12}"
    print(header)
    for label, key in rows:
        meds = [median_ms(results[n].get(key, [])) for n in names]
        line = f"{label:<26}" + "".join(f"{m:>11.1f}" for m in meds)
        if len(names) == 2:
            line += f"{meds[0] / meds[1]:>12.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
