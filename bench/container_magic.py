#!/usr/bin/env python3
"""The notebook's two speed targets (issue 13), measured:

1. `%%container` of `echo hi` at most 1.2x a plain `mrunc run`. Interleaved (A B C D A B C D ...)
   N times, each timed in wall clock AND in CPU (user+sys of every process involved, children
   included: on a loaded machine wall time stretches, CPU time hardly does):

     plain      `mrunc --root R run --bundle B ID` on the default bundle's config with args
                `echo hi`, its stdout read from a pipe (the command a user would type);
     same-cfg   the same command on the config.json the sandbox writes for the magic (overlay
                root, cgroup namespace, hostname): the runtime's share of any difference;
     magic      `%%container` + `echo hi` through a real IPython InteractiveShell in this process
                (options parsed, config written, overlay mounted, `mrunc run` started, its output
                streamed into the cell, the container deleted). Wall: until the cell returns. CPU:
                this process's own (all its threads) and its children's, including the overlay's
                unmount, which the notebook leaves to a thread after the cell returns;
     kernel     (--kernel) the same cell sent to a real ipykernel through jupyter_client, as
                JupyterLab sends it (output through the kernel's IOPub): wall from the execute
                request to its reply and the cell's output received; CPU from /proc/<kernel>/stat
                (its utime+stime and its waited-for children's), in clock ticks. --kernel also
                times a fresh kernel's first cells (`%load_ext mrunc`, the first `%%container`:
                imports, the sandbox made at first use), once.

2. A stepper walk of all phases under 1 s: a Stepper widget on `Sandbox.step("echo hi")`, Next
   pressed from `spec` to `exec`, each press timed (wall and CPU), as root, and (--as-user) as a
   real unprivileged user made for the run (useradd; userdel -r after), who steps rootless; with
   --kernel also a Stepper displayed in the kernel, Next sent as a cell (the widget's updates go
   out over IOPub). A press's CPU is the notebook side's (snapshot, diff, drawing); the runtime's
   is in the total, counted when the finished `mrunc run` is reaped.

Needs root and `make rootfs`. Usage:
    .venv/bin/python bench/container_magic.py [--n 30] [--kernel] [--as-user] [--json]
`make bench` runs it with --n 10 --kernel --as-user.
"""
import argparse
import contextlib
import io
import json
import os
import pwd
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
CELL = "echo hi\n"


# ---- clocks ------------------------------------------------------------------------------------

def cpu_now():
    """CPU seconds of this process (every thread) plus of the children it has waited for."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def proc_cpu(pid):
    """CPU seconds of `pid` and its waited-for children, from /proc/<pid>/stat (clock ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Timer:
    """with Timer() as t: ... -> t.wall, t.cpu (seconds)."""

    def __enter__(self):
        self._w, self._c = time.perf_counter(), cpu_now()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self._w, cpu_now() - self._c


def med_ms(values):
    return statistics.median(values) * 1000


def mean_ms(values):
    return statistics.fmean(values) * 1000


# ---- 1. %%container against `mrunc run` ---------------------------------------------------------

def plain_bundle(tmp):
    d = os.path.join(tmp, "plain")
    os.mkdir(d)
    with open(os.path.join(REPO, "rootfs", "bundle", "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["echo", "hi"]
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    return d


def cli_runner(mrunc, root):
    def run(bundle):
        cid = f"b-{uuid.uuid4().hex[:8]}"
        with Timer() as t:
            p = subprocess.run([*mrunc, "--root", root, "run", "--bundle", bundle, cid],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True)
        assert p.stdout == "hi\n" and p.returncode == 0, (p.stdout, p.stderr)
        return t.wall, t.cpu
    return run


def magic_runner(lab):
    from IPython.core.interactiveshell import InteractiveShell
    from mrunc.notebook.magics import ContainerMagics
    ip = InteractiveShell.instance()
    magics = ContainerMagics(ip, sandbox=lab)
    ip.register_magics(magics)

    def run():
        out = io.StringIO()
        with Timer() as t:
            with contextlib.redirect_stdout(out):
                ip.run_cell_magic("container", "", CELL)
            wall = time.perf_counter() - t._w
            for th in lab._cleaners:    # the overlay's unmount: CPU the cell costs, after it
                th.join()
            lab._cleaners.clear()
        assert out.getvalue() == "hi\n" and magics.last.exit_code == 0, out.getvalue()
        return wall, t.cpu
    return run


class KernelRunner:
    """A real ipykernel (jupyter_client), the extension loaded, cells sent as JupyterLab does."""

    def __init__(self, lab_root):
        from jupyter_client.manager import start_new_kernel
        env = {**os.environ, "PYTHONPATH": REPO, "MRUNC_LAB_ROOT": lab_root}
        self.km, self.kc = start_new_kernel(kernel_name="python3", startup_timeout=60, env=env)
        self.pid = self.km.provisioner.process.pid
        # a fresh kernel: what the first cells cost (imports, the sandbox made at first use)
        self.cold = {"%load_ext mrunc": self._timed("%load_ext mrunc"),
                     "first %%container": self._timed("%%container\n" + CELL)}

    def execute(self, code):
        """-> (wall s, stdout text) once the reply and the kernel's idle status are in."""
        t0 = time.perf_counter()
        msg_id = self.kc.execute(code)
        out, idle, reply = [], False, None
        while not idle:
            m = self.kc.get_iopub_msg(timeout=60)
            if m["parent_header"].get("msg_id") != msg_id:
                continue
            if m["msg_type"] == "stream":
                out.append(m["content"]["text"])
            elif m["msg_type"] == "error":
                raise RuntimeError("\n".join(m["content"]["traceback"]))
            elif m["msg_type"] == "status" and m["content"]["execution_state"] == "idle":
                idle = True
        reply = self.kc.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
        return time.perf_counter() - t0, "".join(out)

    def _timed(self, code):
        """-> (wall, kernel CPU) of one cell; a %%container's output checked."""
        c0 = proc_cpu(self.pid)
        wall, out = self.execute(code)
        assert out == "hi\n" or not code.startswith("%%container"), out
        return wall, proc_cpu(self.pid) - c0

    def __call__(self):
        return self._timed("%%container\n" + CELL)

    def stepper_walk(self):
        """A Stepper displayed in the kernel, Next pressed (as a cell: a click runs the same
        callback) until exec; the widget's updates go out over IOPub as in JupyterLab.
        -> {"phase": (wall, kernel CPU), ..., "total": (...)}; the total includes making the
        widget and deleting the container (the runtime's CPU is counted when it is reaped)."""
        from mrunc.phases import NAMES
        walk, c0, t0 = {}, proc_cpu(self.pid), time.perf_counter()
        self.execute("from mrunc.notebook import stepper as _stepper\n"
                     "from IPython.display import display as _display\n"
                     "_st = _stepper('echo hi'); _display(_st)")
        for phase in NAMES:
            c = proc_cpu(self.pid)
            wall, _ = self.execute(f"assert _st.session.upcoming == {phase!r}; _st.next(); "
                                   f"assert _st.error is None and not _st.session.steps[-1].error")
            walk[phase] = (wall, proc_cpu(self.pid) - c)
        self.execute("assert _st.session.done; _st.session.container.delete()")
        walk["total"] = (time.perf_counter() - t0, proc_cpu(self.pid) - c0)
        return walk

    def close(self):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=False)


def bench_magic(n, kernel=False):
    """{"plain"|"same-cfg"|"magic"|"kernel": [(wall, cpu), ...]} interleaved; with kernel, also
    "kernel-cold" (a fresh kernel's first cells) and "kernel-stepper" (walks in the kernel)."""
    from mrunc.sandbox import Sandbox, mrunc_command
    tag = uuid.uuid4().hex[:6]
    root = f"/run/mrunc-bench-magic-{tag}"
    tmp = tempfile.mkdtemp(prefix="mrunc-magic-bench-")
    lab = Sandbox(root=f"/run/mrunc-bench-lab-{tag}")
    mrunc = mrunc_command()
    k = None
    try:
        cli = cli_runner(mrunc, root)
        plain = plain_bundle(tmp)
        same = lab._prepare(None, ["echo", "hi"], f"same-{tag}", {})  # kept mounted for same-cfg
        runs = {"plain": lambda: cli(plain), "same-cfg": lambda: cli(same.bundle),
                "magic": magic_runner(lab)}
        if kernel:
            k = KernelRunner(f"/run/mrunc-bench-klab-{tag}")
            runs["kernel"] = k
            runs["empty-cell"] = lambda: k._timed("pass")  # the kernel's own round trip
        for _ in range(3):                          # warm up: imports, page cache
            for fn in runs.values():
                fn()
        times = {name: [] for name in runs}
        for _ in range(n):
            for name, fn in runs.items():
                times[name].append(fn())
        extra = {}
        if k is not None:
            extra["kernel-cold"] = k.cold
            k.stepper_walk()                        # warm-up: the widgets' imports
            extra["kernel-stepper"] = [k.stepper_walk() for _ in range(n)]
        return times, extra
    finally:
        if k is not None:
            k.close()
        lab.close()
        for cid in os.listdir(root) if os.path.isdir(root) else []:
            subprocess.run([*mrunc, "--root", root, "delete", "--force", cid], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


# ---- 2. a stepper walk -------------------------------------------------------------------------

def stepper_walks(n):
    """n walks of a Stepper from spec to exec: [{"phase": (wall, cpu), ..., "total": (..)}]."""
    import warnings
    from mrunc.notebook.widgets import Stepper
    from mrunc.sandbox import Sandbox
    walks = []
    # root: a state root of our own; a user: theirs (mrunc.userdirs)
    lab = Sandbox(root=f"/run/mrunc-bench-step-{uuid.uuid4().hex[:6]}" if os.geteuid() == 0 else None)
    try:
        for i in range(n + 1):                      # the first is a warm-up: imports
            walk = {}
            with Timer() as total:
                with warnings.catch_warnings():     # no kernel: widgets have no comm to open
                    warnings.simplefilter("ignore")
                    st = Stepper(lab.step("echo hi"))
                while not st.session.done:
                    phase = st.session.upcoming
                    with Timer() as t:
                        step = st.next()
                    assert step is not None and not step.error and st.error is None, \
                        (phase, st.error, step)
                    walk[phase] = (t.wall, t.cpu)
                st.session.container.delete()
            walk["total"] = (total.wall, total.cpu)
            if i:
                walks.append(walk)
    finally:
        lab.close()
    return walks


@contextlib.contextmanager
def a_user():
    """A real unprivileged user for the run, removed afterwards with whatever it left running."""
    name = f"mrbench{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True)
    uid = pwd.getpwnam(name).pw_uid
    try:
        yield name
    finally:
        for _ in range(50):
            left = [int(p) for p in os.listdir("/proc") if p.isdigit() and _owner(p) == uid]
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, 9)
            if subprocess.run(["userdel", "-r", name], capture_output=True).returncode in (0, 6):
                break
            time.sleep(0.2)


def _owner(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def stepper_walks_as_user(n):
    with a_user() as name:
        home = pwd.getpwnam(name).pw_dir
        p = subprocess.run(["runuser", "-u", name, "--", "env", "-i", f"HOME={home}", f"USER={name}",
                            "PATH=/usr/bin:/bin", sys.executable, os.path.abspath(__file__),
                            "--stepper-only", "--n", str(n), "--json"],
                           capture_output=True, text=True, cwd="/", timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"as {name}: {p.stderr.strip()[-2000:]}")
        return json.loads(p.stdout)["stepper"]


# ---- report ------------------------------------------------------------------------------------

def magic_lines(times, n):
    out = [f"%%container of `echo hi` vs `mrunc run`, interleaved, median of {n} (ms)",
           f"  {'':<10}{'wall':>8}{'CPU':>8}"]
    # the kernel's CPU comes in clock ticks: a median of them is one tick or the next, their
    # mean is what it costs
    med = {k: (med_ms([t[0] for t in v]),
               (mean_ms if k in ("kernel", "empty-cell") else med_ms)([t[1] for t in v]))
           for k, v in times.items()}
    for k, (w, c) in med.items():
        out.append(f"  {k:<10}{w:8.1f}{c:8.1f}")
    for k in ("magic", "kernel"):
        if k in med:
            for base in ("plain", "same-cfg"):
                out.append(f"  {k} / {base:<9} wall {med[k][0] / med[base][0]:5.2f}x   "
                           f"CPU {med[k][1] / med[base][1]:5.2f}x" +
                           ("   (target <= 1.2x)" if base == "plain" else ""))
    if "empty-cell" in med:
        # What a cell costs in any kernel (the request, IOPub, the reply) is not the magic's:
        # taken out, the rest is what %%container adds to a notebook's cell
        rest = med["kernel"][0] - med["empty-cell"][0]
        out.append(f"  (kernel - empty-cell) / plain   wall {rest / med['plain'][0]:5.2f}x   "
                   f"(an empty cell's round trip: {med['empty-cell'][0]:.1f} ms)")
    if "kernel" in med:
        out.append(f"  (kernel CPU: the mean, from /proc in {1000 / os.sysconf('SC_CLK_TCK'):.0f} ms clock ticks)")
    return out


def cold_lines(cold):
    return ["a fresh kernel's first cells (ms, wall / kernel CPU): " +
            ", ".join(f"{k} {w * 1000:.0f} / {c * 1000:.0f}" for k, (w, c) in cold.items())]


def stepper_lines(walks, who, ticks=False):
    phases = [p for p in walks[0] if p != "total"]
    out = [f"stepper walk spec → exec of `echo hi` {who}, median of {len(walks)} (ms)",
           "  " + "".join(f"{p[:10]:>11}" for p in [*phases, "total"])]
    for i, what, stat in ((0, "wall", med_ms), (1, "CPU" + (" (mean of ticks)" if ticks else ""),
                                                mean_ms if ticks else med_ms)):
        out.append(f"  {''.join(f'{stat([w[p][i] for w in walks]):11.1f}' for p in [*phases, 'total'])}"
                   f"   {what}")
    total = med_ms([w["total"][0] for w in walks])
    out.append(f"  whole walk {total:.0f} ms wall (target < 1000 ms)")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--kernel", action="store_true",
                    help="also through a real ipykernel (a cell, a fresh kernel's first cells, a "
                         "stepper walk)")
    ap.add_argument("--as-user", action="store_true", help="also a stepper walk as a new user")
    ap.add_argument("--no-stepper", action="store_true")
    ap.add_argument("--stepper-only", action="store_true")
    ap.add_argument("--json", action="store_true", help="the raw figures as JSON")
    a = ap.parse_args()
    if os.geteuid() != 0 and not a.stepper_only:
        sys.exit("container_magic.py: needs root (--stepper-only runs as anyone)")
    result, lines = {}, []
    if not a.stepper_only:
        result["magic"], extra = bench_magic(a.n, kernel=a.kernel)
        result.update(extra)
        lines += magic_lines(result["magic"], a.n)
        if "kernel-cold" in extra:
            lines += cold_lines(extra["kernel-cold"])
    if not a.no_stepper:
        result["stepper"] = stepper_walks(a.n)
        who = "as root" if os.geteuid() == 0 else f"as uid {os.geteuid()}, rootless"
        lines += stepper_lines(result["stepper"], who + ", no kernel")
        if "kernel-stepper" in result:
            lines += stepper_lines(result["kernel-stepper"], "in a kernel (Next as a cell; CPU: the kernel's)",
                                   ticks=True)
        if a.as_user and os.geteuid() == 0:
            result["stepper-user"] = stepper_walks_as_user(a.n)
            lines += stepper_lines(result["stepper-user"], "as a new unprivileged user, rootless, no kernel")
    if a.json:
        json.dump(result, sys.stdout)
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
