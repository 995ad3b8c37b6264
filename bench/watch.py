#!/usr/bin/env python3
"""What the file-access monitor (mrunc.watch) costs, and how soon an access shows.

  latency   a container writes the time (busybox `adjtimex`: the kernel's clock, to the µs) into
            /tmp/tN, 200 times, 10 ms apart, watched; for each FAN_MODIFY row, the time the watch
            read it minus the time written. An upper bound: it includes the write itself.
  overhead  a container opens /etc/passwd N times in one shell (`: < /etc/passwd`: no fork, the
            worst case), then runs `cat /etc/passwd` M times (fork + exec + open: a script's usual
            step), timed inside by adjtimex; without and with a watch, interleaved, R rounds. The
            difference is what fanotify (each event, its fd) and our reading thread cost.

Prints medians. Needs root and `make rootfs`. Usage:
    .venv/bin/python bench/watch.py [--opens 20000] [--commands 500] [--rounds 4]
"""
import argparse
import os
import re
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from mrunc.sandbox import Sandbox  # noqa: E402


def clock(text):
    """Every time adjtimex printed, as seconds."""
    secs = re.findall(r"tv_sec:\s*(\d+)", text)
    usecs = re.findall(r"tv_usec:\s*(\d+)", text)
    return [int(s) + int(u) / 1e6 for s, u in zip(secs, usecs, strict=True)]


def latency(lab, n=200):
    run = lab.stream(f"i=0; while [ $i -lt {n} ]; do adjtimex > /tmp/t$i; cat /tmp/t$i; "
                     "i=$((i+1)); sleep 0.01; done", name="latency", watch=True)
    w = run.watch
    wall0 = time.time() - (time.monotonic() - w._t0)   # the watch's time 0, on the wall clock
    stamps = clock("".join(text for _, text in run))   # /tmp/t0, /tmp/t1, ... in order
    w.wait(10)
    written = {e.path: (wall0 + e.time - stamps[int(e.path[6:])]) * 1000
               for e in w.filter(operation="modify", path="/tmp/t")}
    ms = sorted(written.values())
    print(f"latency: {len(ms)} writes; median {statistics.median(ms):.2f} ms, "
          f"p90 {ms[int(0.9 * len(ms))]:.2f} ms, max {ms[-1]:.2f} ms")


def timed(lab, label, body, count, rounds):
    """`body` run `count` times in one container, without and with a watch, interleaved."""
    script = f"adjtimex; i=0; while [ $i -lt {count} ]; do {body}; i=$((i+1)); done; adjtimex"
    took = {False: [], True: []}
    for r in range(rounds):
        for watched in (False, True):
            run = lab.stream(script, name=f"{label}-{r}-{int(watched)}", watch=watched)
            a, b = clock("".join(text for _, text in run))
            took[watched].append(b - a)
            if watched:
                run.watch.wait(10)
                rows = len(run.watch.events)
    plain, watched = (statistics.median(took[k]) for k in (False, True))
    print(f"{label}: {count} x `{body}`, median of {rounds}: {plain:.3f} s plain, {watched:.3f} s "
          f"watched: {plain / count * 1e6:.1f} -> {watched / count * 1e6:.1f} µs each "
          f"({(watched - plain) / count * 1e6:+.1f} µs, {(watched / plain - 1) * 100:+.0f}%); "
          f"{rows} rows")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--opens", type=int, default=20000)
    ap.add_argument("--commands", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=4)
    a = ap.parse_args()
    with Sandbox(root=f"/run/mrunc-bench-{uuid.uuid4().hex[:8]}") as lab:
        latency(lab)
        timed(lab, "opens", ": < /etc/passwd", a.opens, a.rounds)        # no fork: the worst case
        timed(lab, "commands", "cat /etc/passwd > /dev/null", a.commands, a.rounds)  # fork+exec


if __name__ == "__main__":
    main()
