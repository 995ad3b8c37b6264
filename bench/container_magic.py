#!/usr/bin/env python3
"""What `%%container` costs over a plain `mrunc run`, for `echo hi` (issue 4: at most 1.2x).

Three ways to run `echo hi` in a busybox container, interleaved (A B C A B C ...) N times from this
one process, which plays the notebook kernel:

  plain      `mrunc --root R run --bundle rootfs/bundle-copy ID` with the default bundle's config
             (args = echo hi), wall time until it returns (its stdout to a pipe we read).
  same-cfg   the same command on the config.json the sandbox writes for the magic (overlay root,
             cgroup namespace, hostname): the runtime's share of any difference.
  magic      `%%container` + `echo hi` through a real IPython shell (InteractiveShell.run_cell_magic):
             options parsed, config written, overlay mounted, `mrunc run` started and its output
             streamed into the cell, the container deleted; the overlay is unmounted after the
             cell returns (on a thread), as in the notebook.

Prints the medians and the ratios. Needs root and `make rootfs`. Usage:
    .venv/bin/python bench/container_magic.py [--n 30]
"""
import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("container_magic.py: needs root")
    from IPython.core.interactiveshell import InteractiveShell
    from mrunc.notebook.magics import ContainerMagics
    from mrunc.sandbox import Sandbox, mrunc_command

    tag = uuid.uuid4().hex[:6]
    root = f"/run/mrunc-bench-magic-{tag}"
    tmp = tempfile.mkdtemp(prefix="mrunc-magic-bench-")
    lab = Sandbox(root=f"/run/mrunc-bench-lab-{tag}")
    ip = InteractiveShell.instance()
    magics = ContainerMagics(ip, sandbox=lab)
    ip.register_magics(magics)
    mrunc = mrunc_command()
    try:
        plain = os.path.join(tmp, "plain")
        os.mkdir(plain)
        cfg = json.load(open(os.path.join(REPO, "rootfs", "bundle", "config.json")))
        cfg["process"]["args"] = ["echo", "hi"]
        json.dump(cfg, open(os.path.join(plain, "config.json"), "w"))
        # the magic's own config, kept mounted for the same-cfg runs
        same = lab._prepare(None, ["echo", "hi"], f"same-{tag}", {})

        def run_cli(bundle):
            cid = f"b-{uuid.uuid4().hex[:8]}"
            t0 = time.perf_counter()
            p = subprocess.run([*mrunc, "--root", root, "run", "--bundle", bundle, cid],
                               stdin=subprocess.DEVNULL, capture_output=True, text=True)
            dt = time.perf_counter() - t0
            assert p.stdout == "hi\n", (p.stdout, p.stderr)
            return dt

        def run_magic():
            out = io.StringIO()
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(out):
                ip.run_cell_magic("container", "", "echo hi\n")
            dt = time.perf_counter() - t0
            assert out.getvalue() == "hi\n" and magics.last.exit_code == 0, out.getvalue()
            return dt

        for _ in range(3):                          # warm up: imports, page cache
            run_cli(plain), run_cli(same.bundle), run_magic()
        times = {"plain": [], "same-cfg": [], "magic": []}
        for _ in range(a.n):
            times["plain"].append(run_cli(plain))
            times["same-cfg"].append(run_cli(same.bundle))
            times["magic"].append(run_magic())
        med = {k: statistics.median(v) * 1000 for k, v in times.items()}
        print(f"echo hi, median of {a.n} (ms):")
        for k, v in med.items():
            q = statistics.quantiles([t * 1000 for t in times[k]], n=4)
            print(f"  {k:<9} {v:7.1f}   (quartiles {q[0]:.1f} .. {q[2]:.1f})")
        print(f"  %%container / plain mrunc run    = {med['magic'] / med['plain']:.3f}x")
        print(f"  %%container / same config by CLI = {med['magic'] / med['same-cfg']:.3f}x")
    finally:
        lab.close()
        for cid in os.listdir(root) if os.path.isdir(root) else []:
            subprocess.run([*mrunc, "--root", root, "delete", "--force", cid], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
