#!/usr/bin/env python3
"""Load: many container lifecycles at once, watched all the while (issue 8 §4).

N lifecycles, P at a time, each one container running `sleep`:

    create -> start -> state (must say running) -> update ×2 at once -> kill KILL
           -> state until stopped -> delete -> state (must say "does not exist")

The two concurrent `update --pids-limit` calls race on one container: with the per-container
lock, the limit in the container's config.json is the one in the cgroup's pids.max; without it,
one update could write the cgroup last and the other config.json last. Meanwhile a poller runs
`mrunc state` on a live id and `mrunc list --format json` every 50 ms: every answer must be valid
JSON with a known status, or the one-line "does not exist" of a container deleted under it —
never a traceback, "unreadable state", or a half-made container.

Prints failures (each with the command and its output) and the timings of each verb; exit
status 1 on any failure. Every container is deleted and the private --root removed at the end.
Needs root. Usage:

    bench/load.py [--n 100] [--parallel 10] [--poll-ms 50] [--bundle rootfs/bundle] [--mrunc M]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATUSES = {"creating", "created", "running", "paused", "stopped"}
STATE_KEYS = {"ociVersion", "id", "pid", "status", "bundle"}


class Load:
    def __init__(self, bundle, root, mrunc=(sys.executable, "-m", "mrunc")):
        self.bundle, self.root, self.mrunc = bundle, root, list(mrunc)
        self.failures, self.times, self.polls = [], {}, {"state": 0, "list": 0}
        self.live = set()
        self.lock = threading.Lock()

    # -- one command --
    def call(self, *args, timed=None):
        """Run `mrunc --root R ARGS`; return (rc, stdout, stderr). A created container inherits
        create's stdio: its output goes to a file, never a pipe we would wait on."""
        t0 = time.perf_counter()
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            rc = subprocess.run([*self.mrunc, "--root", self.root, *args], stdout=out,
                                stderr=err, stdin=subprocess.DEVNULL, cwd=REPO,
                                timeout=60).returncode
            out.seek(0)
            err.seek(0)
            res = rc, out.read(), err.read()
        if timed:
            with self.lock:
                self.times.setdefault(timed, []).append(time.perf_counter() - t0)
        return res

    def fail(self, what, res=None):
        with self.lock:
            self.failures.append(what + (f": rc={res[0]} out={res[1]!r} err={res[2]!r}"
                                         if res else ""))

    def check(self, what, res, ok=lambda rc, out, err: rc == 0):
        if not ok(*res):
            self.fail(what, res)
            return False
        return True

    # -- a lifecycle --
    def lifecycle(self, cid):
        if not self.check(f"create {cid}", self.call("create", "--bundle", self.bundle, cid,
                                                      timed="create")):
            return
        with self.lock:
            self.live.add(cid)
        try:
            self._started(cid)
        finally:
            with self.lock:
                self.live.discard(cid)
            res = self.call("delete", "--force", cid, timed="delete")
            self.check(f"delete {cid}", res)
            self.check(f"state {cid} after delete", self.call("state", cid),
                       lambda rc, out, err: rc != 0 and err.strip().endswith("does not exist"))

    def _started(self, cid):
        if not self.check(f"start {cid}", self.call("start", cid, timed="start")):
            return
        res = self.call("state", cid, timed="state")
        if not self.check(f"state {cid}", res, lambda rc, out, err: rc == 0
                          and _state_ok(out, cid) and json.loads(out)["status"] == "running"):
            return
        self._racing_updates(cid)
        if not self.check(f"kill {cid}", self.call("kill", cid, "KILL", timed="kill")):
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            res = self.call("state", cid)
            if res[0] == 0 and _state_ok(res[1], cid) and json.loads(res[1])["status"] == "stopped":
                return
            time.sleep(0.02)
        self.fail(f"state {cid} never said stopped after kill", res)

    def _racing_updates(self, cid):
        """Two updates of one container at once: config.json and the cgroup must agree after."""
        limits = [str(random.randint(100, 900)) for _ in range(2)]
        ts = [threading.Thread(target=lambda n=n: self.check(
            f"update {cid} --pids-limit {n}", self.call("update", "--pids-limit", n, cid,
                                                        timed="update"))) for n in limits]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        try:
            with open(os.path.join(self.root, cid, "state.json")) as f:
                st = json.load(f)
            with open(os.path.join(self.root, cid, "config.json")) as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            self.fail(f"state.json or config.json of {cid} after updates: {e}")
            return
        recorded = str(config["linux"]["resources"]["pids"]["limit"])
        paths = st["cgroup"]["paths"]
        pids_dir = next((os.path.join(mp, paths[key].lstrip("/")) for key, mp in _mounts()
                         if key in paths and key in ("pids", "")), None)
        if pids_dir is None:
            return
        with open(os.path.join(pids_dir, "pids.max")) as f:
            actual = f.read().strip()
        if recorded not in limits or actual != recorded:
            self.fail(f"update race on {cid}: config.json says {recorded}, pids.max says {actual} "
                      f"(updates: {limits})")

    # -- the poller --
    def poll(self, stop, interval):
        while not stop.is_set():
            t0 = time.monotonic()
            with self.lock:
                live = sorted(self.live)
            if live:
                cid = random.choice(live)
                res = self.call("state", cid)
                self.polls["state"] += 1
                self.check(f"poll: state {cid}", res, lambda rc, out, err: (
                    rc == 0 and _state_ok(out, cid)) or (
                    rc != 0 and err.count("\n") == 1 and err.strip().endswith("does not exist")))
            res = self.call("list", "--format", "json")
            self.polls["list"] += 1
            self.check("poll: list --format json", res,
                       lambda rc, out, err: rc == 0 and _list_ok(out))
            stop.wait(max(0.0, interval - (time.monotonic() - t0)))

    def run(self, n, parallel, interval=0.05):
        """Run n lifecycles, `parallel` at a time, with the poller; return the wall time."""
        stop = threading.Event()
        poller = threading.Thread(target=self.poll, args=(stop, interval))
        poller.start()
        ids = iter([f"load-{os.getpid()}-{i}" for i in range(n)])
        t0 = time.perf_counter()

        def worker():
            for cid in ids:  # a list iterator: next() is atomic under the GIL
                self.lifecycle(cid)
        workers = [threading.Thread(target=worker) for _ in range(parallel)]
        try:
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        finally:
            stop.set()
            poller.join()
        return time.perf_counter() - t0

    def cleanup(self):
        if os.path.isdir(self.root):
            for cid in os.listdir(self.root):
                if not cid.startswith("."):
                    self.call("delete", "--force", cid)
            shutil.rmtree(self.root, ignore_errors=True)


def _state_ok(text, cid):
    try:
        st = json.loads(text)
    except ValueError:
        return False
    return STATE_KEYS <= set(st) and st["id"] == cid and st["status"] in STATUSES


def _list_ok(text):
    try:
        states = json.loads(text)
    except ValueError:
        return False
    return states is None or all(STATE_KEYS <= set(s) and s["status"] in STATUSES
                                 for s in states)


def _mounts():
    """(controller key, mount point) of the cgroup hierarchies: "" for the unified tree."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype, opts = fields[fields.index("-") + 1], fields[-1].split(",")
            if fstype == "cgroup2":
                out.append(("", fields[4]))
            elif fstype == "cgroup":
                out.extend((o, fields[4]) for o in opts if o not in ("rw", "ro"))
    return out


def report(load, wall, n, parallel):
    lines = [f"{n} lifecycles, {parallel} at a time: {wall:.1f} s wall, "
             f"{len(load.failures)} failures; poller: {load.polls['state']} state, "
             f"{load.polls['list']} list"]
    lines.append(f"  {'verb':<8} {'n':>4} {'median':>8} {'p95':>8} {'max':>8}  (ms)")
    for verb in ("create", "start", "state", "update", "kill", "delete"):
        ts = sorted(load.times.get(verb, []))
        if ts:
            p95 = ts[min(len(ts) - 1, int(len(ts) * 0.95))]
            lines.append(f"  {verb:<8} {len(ts):>4} {statistics.median(ts) * 1000:8.1f} "
                         f"{p95 * 1000:8.1f} {ts[-1] * 1000:8.1f}")
    lines += [f"  FAIL {f}" for f in load.failures]
    return "\n".join(lines)


def sleeper_bundle(base, where):
    """A copy of bundle `base` whose container runs `sleep 1000` (rootfs made absolute)."""
    with open(os.path.join(base, "config.json")) as f:
        cfg = json.load(f)
    root = cfg["root"]["path"]
    cfg["root"]["path"] = root if os.path.isabs(root) else os.path.join(os.path.abspath(base), root)
    cfg["process"]["args"] = ["sleep", "1000"]
    cfg["process"]["terminal"] = False
    with open(os.path.join(where, "config.json"), "w") as f:
        json.dump(cfg, f)
    return where


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--parallel", type=int, default=10)
    ap.add_argument("--poll-ms", type=float, default=50)
    ap.add_argument("--bundle", default=os.path.join(REPO, "rootfs", "bundle"))
    # The launcher, as an engine runs mrunc (bench.py's default too); `python -m mrunc` would add
    # site and .pth processing to every one of the thousands of calls
    ap.add_argument("--mrunc", default=os.path.join(REPO, ".venv", "bin", "mrunc"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/load.py: needs root")
    tmp = tempfile.mkdtemp(prefix="mrunc-load-")
    mrunc = (a.mrunc,) if os.access(a.mrunc, os.X_OK) else (sys.executable, "-m", "mrunc")
    load = Load(sleeper_bundle(a.bundle, tmp), tempfile.mkdtemp(prefix="mrunc-load-", dir="/run"),
                mrunc)
    try:
        wall = load.run(a.n, a.parallel, a.poll_ms / 1000)
    finally:
        load.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print(report(load, wall, a.n, a.parallel))
    sys.exit(1 if load.failures else 0)


if __name__ == "__main__":
    main()
