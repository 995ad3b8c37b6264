#!/usr/bin/env python3
"""Benchmark mrunc against runc (and crun when installed) on the busybox bundle.

Every measurement is repeated N times with the runtimes interleaved, the order turning each round
(A B C, B C A, C A B, ...), so that a slow moment of the machine hits all alike and going first
or after a given runtime favours none; the figures are medians. Per verb:

  --version  `R --version`: the floor of starting the program at all.
  run        `R run --bundle B ID` of `true`, until it returns.
  create, start, delete, and the whole create -> start -> wait -> delete of `true`.
  state, kill  `R state ID` and `R kill ID KILL` of a started `sleep` container.
  exec       `R exec ID true` in a `sleep` container started once: what every `podman exec` and
             Kubernetes exec probe costs.
  exec-seccomp  the same into a container with a seccomp profile shaped like the engines' default
             (tests/seccomp_profile.py: ~350 names), as podman and containerd always pass one.
             mrunc builds the filter on the first exec into a container and keeps it (the
             untimed warm-up round pays that); runc builds it on every exec.

For mrunc the wall time is split into the interpreter's start (`python -I -S -c "import posix;
posix._exit(0)"`: started, and ended as every mrunc verb ends, without the teardown; median over
the same rounds), the imports (from `-X importtime` of the same verb, run separately,
median) and the rest: the kernel work and mrunc's own code. Each verb's CPU time (user + system,
from wait4: the runtime and the children it waited for) is printed too: on a machine loaded by
other work, wall times stretch with the load and CPU times hardly do. Then each verb's peak RSS
(GNU time's %M), in separate rounds since GNU time adds a fork to the wall time.

Then mrunc's ratio to runc round by round: a round's two figures were taken a few milliseconds
apart, so their ratio cancels what the machine was doing then. Its median, and a 95 % confidence
interval of that median (from the order statistics: no assumption about how the times are
spread), say whether "faster than runc" is a finding or noise: only an interval wholly below 1
is.

Then the short verbs against the floor: mrunc's wall and CPU time next to the interpreter's
start alone — exiting as every mrunc verb does, without the interpreter's teardown (`-c "import
posix; posix._exit(0)"`: the floor), then `-c pass` (with it: ≈ 1–1.4 ms more) and `-c "import
os"` (which mrunc's short verbs do without) —, what mrunc adds above the floor, and the floor's
ratio to runc — the best a verb of a CPython runtime can reach.

Last, `--conc` (100) lifecycles of `true` run `--parallel` (10) at a time, as a batch per runtime,
`--conc-rounds` (3) times with the runtimes interleaved (A B C, B C A, C A B, ...: the order turns
each round, so that neither a slow moment nor going first favours one runtime): the median wall
time and CPU time of a batch, their ratio to runc's medians, and the failures of all rounds. A
batch's CPU time is user + system of every process it ran — the runtime commands, what they
waited for, and the container inits, which are re-parented to us and which we reap: the growth
of our RUSAGE_CHILDREN over the batch, measured alike for every runtime.

How we wait is what conmon and containerd's shim do: this process is a child subreaper
(PR_SET_CHILD_SUBREAPER), so the init that `create` leaves orphaned is re-parented to us and we
waitpid() on the pid from --pid-file; no polling interval is in the figures.

Each runtime gets a private --root under /run and unique container ids; every container is
deleted and the roots removed at the end, also on failure. Needs root. Usage:

    bench/bench.py [--n 20] [--only mrunc,runc] [--conc 100 --parallel 10 --conc-rounds 3]
                   [--bundle rootfs/bundle]
"""

import argparse
import ctypes
import json
import math
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PR_SET_CHILD_SUBREAPER = 36
VERBS = ("--version", "run", "create", "start", "state", "kill", "delete", "exec", "exec-seccomp",
         "lifecycle")
LABELS = {"lifecycle": "create→start→wait→delete", "exec-seccomp": "exec (seccomp profile)"}


class Failed(Exception):
    pass


def spawn(argv, errfile, env=None):
    """Run argv (stdin, stdout /dev/null; stderr to errfile, not a pipe: a created container
    inherits create's stdio, so a pipe would not see EOF until it exits).
    Return (exit status, seconds, CPU seconds: user + system of the child and of the children
    it waited for — unlike wall time, hardly changed by a loaded machine)."""
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    err = os.open(errfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env or os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
            (os.POSIX_SPAWN_DUP2, err, 2)])
        _, status, ru = os.wait4(pid, 0)
        dt = time.perf_counter() - t0
    finally:
        os.close(null)
        os.close(err)
    return os.waitstatus_to_exitcode(status), dt, ru.ru_utime + ru.ru_stime


class Runtime:
    def __init__(self, name, binary, root, tmp):
        self.name, self.binary, self.root, self.tmp = name, binary, root, tmp

    def call(self, *args, check=True, prefix=(), errfile=None):
        """One runtime command: (wall, CPU) seconds. Failed when it exits non-zero."""
        errfile = errfile or os.path.join(self.tmp, f"{self.name}.{threading.get_ident()}.err")
        argv = [*prefix, self.binary, *(["--root", self.root] if args[0] != "--version" else []),
                *args]
        rc, dt, cpu = spawn(argv, errfile)
        if check and rc != 0:
            with open(errfile, "rb") as f:
                msg = f.read().decode(errors="replace").strip()
            raise Failed(f"{self.name} {' '.join(args)}: exit {rc}: {msg}")
        return dt, cpu

    def cleanup(self, cid):
        """Untimed: remove the container if the runtime still knows it."""
        if os.path.exists(os.path.join(self.root, cid)):
            self.call("delete", "--force", cid, check=False)


def reap_strays():
    """Reap orphans re-parented to us (we are a subreaper) between measurements."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wait_init(rt, pidfile):
    with open(pidfile) as f:
        pid = int(f.read().strip())
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        raise Failed(f"{rt.name}: init pid {pid} is not our child (was it re-parented to us?)")
    return status


def lifecycle(rt, bundle, cid, out):
    """create -> start -> wait -> delete of `true`; each step's seconds into `out`."""
    pidfile = os.path.join(rt.tmp, f"{cid}.pid")
    try:
        t0 = time.perf_counter()
        out["create"] = rt.call("create", "--bundle", bundle, "--pid-file", pidfile, cid)
        out["start"] = rt.call("start", cid)
        status = wait_init(rt, pidfile)
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            raise Failed(f"{rt.name}: container {cid} ended with wait status {status:#x}")
        out["delete"] = rt.call("delete", cid)
        out["lifecycle"] = (time.perf_counter() - t0,
                            sum(out[v][1] for v in ("create", "start", "delete")))
    finally:
        rt.cleanup(cid)
    return out


def state_kill(rt, sleeper, cid, out):
    """state and kill KILL of a started `sleep` container (its create/start/delete untimed)."""
    pidfile = os.path.join(rt.tmp, f"{cid}.pid")
    try:
        rt.call("create", "--bundle", sleeper, "--pid-file", pidfile, cid)
        rt.call("start", cid)
        out["state"] = rt.call("state", cid)
        out["kill"] = rt.call("kill", cid, "KILL")
        wait_init(rt, pidfile)
        rt.call("delete", cid)
    finally:
        rt.cleanup(cid)
    return out


def one_round(rt, bundle, sleeper, tag, exec_in, seccomp_in):
    out = {"--version": rt.call("--version")}
    cid = f"{tag}-{rt.name}"
    try:
        out["run"] = rt.call("run", "--bundle", bundle, cid + "-r")
    finally:
        rt.cleanup(cid + "-r")
    lifecycle(rt, bundle, cid + "-l", out)
    state_kill(rt, sleeper, cid + "-k", out)
    out["exec"] = rt.call("exec", exec_in, "true")
    out["exec-seccomp"] = rt.call("exec", seccomp_in, "true")
    reap_strays()
    return out


# ---- mrunc's own split: interpreter start and imports ---------------------------------------

def interpreter_of(script):
    """The interpreter on the launcher's shebang line (or the sh prologue's exec), else ours."""
    with open(script, "rb") as f:
        head = f.read(512).decode(errors="replace").splitlines()
    if head and head[0].startswith("#!") and "python" in head[0]:
        return head[0][2:].split()[0]
    if len(head) > 1 and head[1].startswith("'''exec'"):
        return head[1].split('"')[1]
    return sys.executable


def top_level_imports(errfile):
    """{module: cumulative µs} of the top-level imports in a -X importtime report."""
    got = {}
    with open(errfile, errors="replace") as f:
        for line in f:
            if line.startswith("import time:") and line.count("|") == 2:
                _, cumulative, name = line[len("import time:"):].split("|")
                # a top-level import: its name indented by one space, not more
                if cumulative.strip().isdigit() and name[:1] == " " and name[1:2] != " ":
                    got[name.strip()] = int(cumulative)
    return got


def verb_pass(rt, bundle, sleeper, cid, prefix, errfile, after, seccomp_in):
    """Every verb once, each run as `*prefix runtime ...`; after(verb) once each has returned."""
    def one(verb, *args):
        rt.call(*args, prefix=prefix, errfile=errfile or os.path.join(rt.tmp, "pass.err"))
        after(verb)

    pidfile = os.path.join(rt.tmp, f"{cid}.pid")
    try:
        one("--version", "--version")
        one("run", "run", "--bundle", bundle, cid + "r")
        one("create", "create", "--bundle", sleeper, "--pid-file", pidfile, cid)
        one("start", "start", cid)
        one("state", "state", cid)
        one("exec", "exec", cid, "true")
        one("exec-seccomp", "exec", seccomp_in, "true")
        one("kill", "kill", cid, "KILL")
        wait_init(rt, pidfile)
        one("delete", "delete", cid)
    finally:
        rt.cleanup(cid)
        rt.cleanup(cid + "r")
        reap_strays()


def mrunc_imports(rt, python, bundle, sleeper, tag, n):
    """Each verb once per round under `python -IS -X importtime`: the median time (ms) of the
    imports beyond those the bare interpreter makes (`-c pass`) itself."""
    prefix = (python, "-I", "-S", "-X", "importtime")
    err = os.path.join(rt.tmp, "importtime.err")
    spawn([*prefix, "-c", "pass"], err)
    baseline = set(top_level_imports(err))
    got = {}

    def after(verb):
        ms = sum(us for m, us in top_level_imports(err).items() if m not in baseline) / 1000
        got.setdefault(verb, []).append(ms)

    for i in range(n):
        verb_pass(rt, bundle, sleeper, f"{tag}-imp{i}", prefix, err, after,
                  f"{tag}-{rt.name}-seccomp")
    return {v: statistics.median(ms) for v, ms in got.items()}


FLOOR = "python -I -S -c pass"


def peak_rss(runtimes, bundle, sleeper, tag, n, python):
    """{runtime: {verb: [KiB]}}, each verb run under GNU time (%M): wait4's ru_maxrss of our
    own child would be our RSS, not its — a child shares or copies our memory until it execs.
    Also {FLOOR: [KiB]}: the interpreter alone, what any verb of a Python runtime starts from."""
    got = {rt.name: {} for rt in runtimes}
    got[FLOOR] = []
    for i in range(n):
        out = os.path.join(runtimes[0].tmp, "rss.out")
        spawn(["/usr/bin/time", "-f", "%M", "-o", out, python, "-I", "-S", "-c", "pass"],
              os.devnull)
        with open(out) as f:
            got[FLOOR].append(int(f.read().split()[-1]))
        for rt in runtimes:
            out = os.path.join(rt.tmp, "rss.out")
            prefix = ("/usr/bin/time", "-f", "%M", "-o", out)

            def after(verb, rt=rt, out=out):
                with open(out) as f:
                    got[rt.name].setdefault(verb, []).append(int(f.read().split()[-1]))

            verb_pass(rt, bundle, sleeper, f"{tag}-rss{i}-{rt.name}", prefix, None, after,
                      f"{tag}-{rt.name}-seccomp")
    return got


def interpreter(python, tmp, code="pass"):
    """(wall, CPU) seconds of `python -I -S -c pass`: the floor of any mrunc command."""
    return spawn([python, "-I", "-S", "-c", code], os.path.join(tmp, "py.err"))[1:]


SHORT = ("--version", "start", "state", "kill", "delete")


def floor_report(results, floors):
    """The short verbs against the interpreter's start. `floors`: {label: [(wall, CPU)]}, the
    first the interpreter's start without its teardown, as every mrunc verb ends (os._exit). Its
    ÷runc is the best any verb of a CPython runtime can reach here: when it is above the target,
    no Python-side work can meet the target."""
    runc, mrunc = results["runc"], results["mrunc"]
    for what, i in (("wall", 0), ("CPU", 1)):
        print(f"\nthe floor, {what} (ms): mrunc's verb, the interpreter alone, what mrunc adds, "
              f"runc's verb; the floor's and mrunc's ratio to runc")
        print(f"{'verb':<12}{'mrunc':>8}" + "".join(f"{f:>12}" for f in floors) +
              f"{'mrunc-floor':>12}{'runc':>8}{'floor÷runc':>11}{'÷runc':>7}")
        for verb in SHORT:
            m, r = med(mrunc[verb], i), med(runc[verb], i)
            fl = [med(v, i) for v in floors.values()]
            print(f"{verb:<12}{m:>8.1f}" + "".join(f"{f:>12.1f}" for f in fl) +
                  f"{m - fl[0]:>12.1f}{r:>8.1f}{fl[0] / r:>11.2f}{m / r:>7.2f}")


# ---- concurrency -------------------------------------------------------------------------------

def children_cpu():
    """User + system seconds of all our children reaped so far, and of what they reaped. As a
    subreaper we also reap every orphan (the container inits), so its CPU time is in here too."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def machine_busy():
    """Seconds every CPU of the machine spent busy so far (user, nice, system, irq, softirq in
    /proc/stat): with the batch's own CPU taken off, what everything else on the machine used."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:8]]
    return (sum(ticks[0:3]) + ticks[5] + ticks[6]) / os.sysconf("SC_CLK_TCK")


def concurrent(rt, bundle, tag, total, parallel):
    """`total` lifecycles of `true`, `parallel` at a time: (wall seconds, CPU seconds of every
    process the batch ran, failures, first error, CPU seconds the rest of the machine used
    meanwhile, the bench's own included). With no CPU left idle a batch's wall time is about (its
    CPU + the rest's) ÷ CPUs: a batch slower at unchanged CPU, the rest's CPU up, waited for the
    CPUs the rest used."""
    errors = []

    def one(i):
        try:
            lifecycle(rt, bundle, f"{tag}-{rt.name}-c{i}", {})
        except Failed as e:
            errors.append(str(e))

    reap_strays()  # an earlier orphan's CPU time is not this batch's
    cpu0, busy0, t0 = children_cpu(), machine_busy(), time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, range(total)))
    wall, busy = time.perf_counter() - t0, machine_busy() - busy0
    reap_strays()  # this batch's orphans, if a failure left any
    cpu = children_cpu() - cpu0
    return wall, cpu, len(errors), (errors[0] if errors else ""), max(0.0, busy - cpu)


def concurrent_rounds(runtimes, bundle, tag, total, parallel, rounds):
    """concurrent() `rounds` times per runtime, interleaved, the order turned by one each round:
    {runtime: [(wall, CPU, failures, first error)]}."""
    got = {rt.name: [] for rt in runtimes}
    for r in range(rounds):
        k = r % len(runtimes)
        for rt in runtimes[k:] + runtimes[:k]:
            got[rt.name].append(concurrent(rt, bundle, f"{tag}-{r}", total, parallel))
    return got


def conc_report(conc, total, parallel):
    """Median wall and CPU seconds of a batch per runtime, their ratio to runc's, the failures."""
    rounds = len(next(iter(conc.values())))
    print(f"\n{total} lifecycles of `true`, {parallel} at a time: median of {rounds} rounds, "
          f"interleaved (s; CPU: user + system of every process of the batch, inits included; "
          f"others: CPU the rest of the machine used meanwhile)")
    wall = {nm: med(b, 0, 1) for nm, b in conc.items()}
    cpu = {nm: med(b, 1, 1) for nm, b in conc.items()}
    ratio = "runc" in conc
    print(f"  {'':<6}{'wall':>7}" + (f"{'÷runc':>7}" if ratio else "") + f"{'CPU':>7}" +
          (f"{'÷runc':>7}" if ratio else "") + "  failed  each round's wall/CPU/others")
    for nm, batches in conc.items():
        failures = sum(b[2] for b in batches)
        first = next((b[3] for b in batches if b[3]), "")
        print(f"  {nm:<6}{wall[nm]:>7.2f}" +
              (f"{wall[nm] / wall['runc']:>7.2f}" if ratio else "") + f"{cpu[nm]:>7.2f}" +
              (f"{cpu[nm] / cpu['runc']:>7.2f}" if ratio else "") +
              f"  {failures:>2} of {total * rounds}  " + " ".join(f"{b[0]:.2f}/{b[1]:.2f}/{b[4]:.2f}" for b in batches) +
              (f"\n    first failure: {first}" if first else ""))


# ---- report ------------------------------------------------------------------------------------

def med(values, i=0, scale=1000):
    """Median of the i-th item of each tuple (wall 0, CPU 1), in ms by default."""
    values = [v[i] if isinstance(v, tuple) else v for v in values]
    return statistics.median(values) * scale if values else float("nan")


def median_interval(values, level=0.95):
    """(median, low, high): the median and a distribution-free confidence interval of it. The
    interval's ends are the order statistics x(k) and x(n+1-k), with k the largest rank such that
    fewer than k of n values fall below the true median with probability <= (1 - level) / 2
    (Binomial(n, 1/2)); with fewer than 6 values there is no such k, and the ends are the extremes."""
    xs = sorted(values)
    n = len(xs)
    tail, k = 0.0, 0
    while True:
        tail += math.comb(n, k) / 2 ** n        # P(fewer than k + 1 below the median)
        if tail > (1 - level) / 2:
            break
        k += 1
    k = max(k, 1)
    return statistics.median(xs), xs[k - 1], xs[n - k]


def paired_report(results, n):
    """mrunc ÷ runc round by round (both figures of a round taken moments apart): the median
    ratio and its 95 % interval, wall and CPU."""
    print(f"\nmrunc ÷ runc paired by round, median of {n} ratios [95 % interval of the median]; "
          f"below 1 for sure only if the interval is")
    print(f"{'verb':<26}{'wall':>22}{'CPU':>22}")
    for verb in VERBS:
        line = f"{LABELS.get(verb, verb):<26}"
        for i in (0, 1):
            ratios = [m[i] / r[i] for m, r in zip(results["mrunc"][verb], results["runc"][verb])]
            mid, lo, hi = median_interval(ratios)
            line += f"{mid:>8.2f} [{lo:.2f}–{hi:.2f}]"
        print(line)


def report(names, results, n, imports, interp, rss):
    others = [nm for nm in names if nm != "mrunc"]
    ratio = "mrunc" in names and "runc" in names
    for what, i in (("wall time", 0), ("CPU time (user + system)", 1)):
        print(f"\n{what}, median of {n} (ms)" + (
            "; mrunc's split: interpreter start (-I -S, no teardown) + imports (-X importtime) + the "
            "rest (kernel work and mrunc's own code)" if i == 0 and "mrunc" in names else ""))
        head = f"{'verb':<26}" + "".join(f"{nm:>8}" for nm in names)
        if i == 0 and "mrunc" in names:
            head = f"{'verb':<26}{'mrunc':>8}{'interp':>8}{'imports':>8}{'rest':>8}" + \
                "".join(f"{o:>8}" for o in others)
        print(head + (f"{'÷runc':>7}" if ratio else ""))
        for verb in VERBS:
            line = f"{LABELS.get(verb, verb):<26}"
            if i == 0 and "mrunc" in names:
                times = 3 if verb == "lifecycle" else 1
                imp = (sum(imports.get(v, 0) for v in ("create", "start", "delete"))
                       if verb == "lifecycle" else imports.get(verb, float("nan")))
                m, start = med(results["mrunc"][verb]), times * med(interp)
                line += f"{m:>8.1f}{start:>8.1f}{imp:>8.1f}{m - start - imp:>8.1f}"
                line += "".join(f"{med(results[o][verb]):>8.1f}" for o in others)
            else:
                line += "".join(f"{med(results[nm][verb], i):>8.1f}" for nm in names)
            if ratio:
                line += f"{med(results['mrunc'][verb], i) / med(results['runc'][verb], i):>7.2f}"
            print(line)
        if i == 1 and "mrunc" in names:
            print(f"{'(python -I -S, no teardown)':<26}{med(interp, 1):>8.1f}")
    if not rss:
        return
    print(f"\npeak RSS, median of {len(rss[names[0]]['run'])} (MiB)")
    print(f"{'verb':<26}" + "".join(f"{nm:>8}" for nm in names))
    for verb in VERBS:
        if verb != "lifecycle":
            print(f"{verb:<26}" + "".join(f"{med(rss[nm][verb], 0, 1 / 1024):>8.1f}"
                                          for nm in names))
    print(f"{'(' + FLOOR + ')':<26}{med(rss[FLOOR], 0, 1 / 1024):>8.1f}")


UNIFIED = "/sys/fs/cgroup/unified"


def hybrid_with_v2_controllers():
    """crun refuses a hybrid layout whose cgroup2 mount has controllers ("cgroups in hybrid mode
    not supported, drop all controllers from cgroupv2"); this VM's has hugetlb."""
    try:
        with open(os.path.join(UNIFIED, "cgroup.controllers")) as f:
            return bool(f.read().split())
    except OSError:
        return False


def enter_legacy_view(argv):
    """Re-run the bench in a private mount namespace without the cgroup2 mount, so that crun runs
    at all: every runtime then sees the same pure cgroup v1 layout. Only the namespace's copy is
    unmounted (private propagation); the host's mounts are never touched."""
    host_ns = os.environ.get("MRUNC_BENCH_HOST_MNTNS")
    if host_ns is None:
        os.environ["MRUNC_BENCH_HOST_MNTNS"] = os.readlink("/proc/self/ns/mnt")
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private", "--",
                              sys.executable, *argv])
    if os.readlink("/proc/self/ns/mnt") == host_ns:
        sys.exit("bench: not in a private mount namespace; refusing to unmount anything")
    rc, _, _ = spawn(["/bin/umount", "-l", UNIFIED], os.devnull)
    if rc != 0:
        sys.exit(f"bench: umount {UNIFIED} in the bench's mount namespace failed")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20, help="rounds per runtime (20)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (1)")
    ap.add_argument("--only", help="comma-separated runtimes (default: mrunc,runc and crun if found)")
    ap.add_argument("--conc", type=int, default=100, help="concurrent lifecycles per runtime (100; 0: skip)")
    ap.add_argument("--parallel", type=int, default=10, help="... this many at a time (10)")
    ap.add_argument("--conc-rounds", type=int, default=3,
                    help="... that many batches per runtime, interleaved (3)")
    ap.add_argument("--bundle", default=os.path.join(REPO, "rootfs", "bundle"),
                    help="bundle whose config.json is used, with args set to ['true']")
    ap.add_argument("--mrunc", default=os.path.join(REPO, ".venv", "bin", "mrunc"))
    ap.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    ap.add_argument("--crun", default=shutil.which("crun") or "/usr/bin/crun")
    args = ap.parse_args()

    if os.geteuid() != 0:
        sys.exit("bench: needs root (make bench as root)")
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit(f"bench: prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")
    if args.only:
        names = args.only.split(",")
    else:
        names = ["mrunc", "runc"] + (["crun"] if os.access(args.crun, os.X_OK) else [])
    for name in names:
        if name not in ("mrunc", "runc", "crun"):
            sys.exit(f"bench: --only: unknown runtime {name!r} (mrunc, runc, crun)")
        if not os.access(getattr(args, name), os.X_OK):
            sys.exit(f"bench: {name} not found at {getattr(args, name)} (make setup)")

    legacy = "crun" in names and hybrid_with_v2_controllers()
    if legacy:
        enter_legacy_view([os.path.abspath(__file__), *sys.argv[1:]])

    # SIGTERM cleans up like Ctrl-C does (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = tempfile.mkdtemp(prefix="mrunc-bench.", dir="/run")
    tmp = os.path.join(base, "tmp")
    os.makedirs(tmp)
    with open(os.path.join(args.bundle, "config.json")) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    bundles = {}
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from seccomp_profile import default_profile
    for what, argv, seccomp in (("bundle", ["true"], None),
                                ("sleeper", ["sleep", "1000000"], None),
                                ("seccomp", ["sleep", "1000000"], default_profile())):
        bundles[what] = os.path.join(base, what)
        os.makedirs(bundles[what])
        config["process"]["args"] = argv
        config["linux"].pop("seccomp", None)
        if seccomp:
            config["linux"]["seccomp"] = seccomp
        with open(os.path.join(bundles[what], "config.json"), "w") as f:
            json.dump(config, f, indent=2)
    bundle, sleeper = bundles["bundle"], bundles["sleeper"]

    runtimes = [Runtime(nm, getattr(args, nm), os.path.join(base, nm), tmp) for nm in names]
    results = {rt.name: {} for rt in runtimes}
    tag = f"b{os.getpid()}"
    print(f"bench: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
          f"load average {loadavg()}; N={args.n} rounds (+{args.warmup} warm-up), interleaved "
          f"{' '.join(names)}", flush=True)
    if legacy:
        print(f"bench: in a private mount namespace without {UNIFIED} (crun refuses this "
              f"hybrid layout): all runtimes see cgroup v1 only", flush=True)
    py = interpreter_of(args.mrunc) if "mrunc" in names else sys.executable
    interp, interp_exit, interp_os, imports, rss, conc = [], [], [], {}, {}, {}
    extra_n = max(3, args.n // 4)
    try:
        for rt in runtimes:  # the containers that exec goes into (untimed)
            rt.call("run", "--detach", "--bundle", sleeper, f"{tag}-{rt.name}-sleeper")
            rt.call("run", "--detach", "--bundle", bundles["seccomp"], f"{tag}-{rt.name}-seccomp")
        for i in range(-args.warmup, args.n):
            interp.append(interpreter(py, tmp))
            interp_exit.append(interpreter(py, tmp, "import posix; posix._exit(0)"))
            interp_os.append(interpreter(py, tmp, "import os"))
            k = i % len(runtimes)
            for rt in runtimes[k:] + runtimes[:k]:
                t = one_round(rt, bundle, sleeper, f"{tag}-{i + args.warmup}",
                              f"{tag}-{rt.name}-sleeper", f"{tag}-{rt.name}-seccomp")
                if i >= 0:
                    for k, v in t.items():
                        results[rt.name].setdefault(k, []).append(v)
        if "mrunc" in names:
            mr = runtimes[names.index("mrunc")]
            imports = mrunc_imports(mr, py, bundle, sleeper, tag, extra_n)
        if os.access("/usr/bin/time", os.X_OK):
            rss = peak_rss(runtimes, bundle, sleeper, tag, extra_n, py)
        else:
            print("bench: no GNU time (/usr/bin/time): no peak RSS figures", file=sys.stderr)
        if args.conc and args.conc_rounds > 0:
            conc = concurrent_rounds(runtimes, bundle, tag, args.conc, args.parallel,
                                     args.conc_rounds)
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

    report(names, results, args.n, imports, interp_exit[args.warmup:] or interp_exit, rss)
    if "mrunc" in names and "runc" in names:
        paired_report(results, args.n)
        floor_report(results, {"no teardown": interp_exit[args.warmup:] or interp_exit,
                               "-c pass": interp[args.warmup:] or interp,
                               "import os": interp_os[args.warmup:] or interp_os})
    if conc:
        conc_report(conc, args.conc, args.parallel)
    print(f"\nload average at the end: {loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
