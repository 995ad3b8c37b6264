"""A class at once: N real students (users made for the run, removed after) on a real JupyterHub,
each starting a server and running %%container cells at the same time — as hubtraf does for a
plain hub. Prints the latencies (p50/p95) and what one student's server, kernel and container
use, for docs/classroom.md.

    make classroom-load            # 30 students, 3 cells each (STUDENTS=… CELLS=…)
"""
import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "tests", "integration"), os.path.join(HERE, "..", "tests")]

from hub import Hub                     # noqa: E402
from students import make_students      # noqa: E402

CELL = "%%container --memory 64M --pids 64\necho hello from $(hostname); ls /bin | wc -l"


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS"))
    except (OSError, StopIteration):
        return 0


def usage_of(uid):
    """RSS (kB) of every process of this uid, by kind."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.stat(f"/proc/{p}").st_uid != uid:
                continue
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        text = b" ".join(cmd).decode(errors="replace")
        kind = ("server" if "jupyterhub-singleuser" in text else "kernel" if "ipykernel" in text
                else "watchdog" if "mrunc.labwatch" in text else "shim" if "mrunc" in text else "container")
        out[kind] = out.get(kind, 0) + rss_kb(int(p))
    return out


def student(hub, s, cells, results, errors, delay):
    time.sleep(delay)                   # a class does not click in the same millisecond
    try:
        t0 = time.monotonic()
        hub.start_server(s.name, timeout=600)
        results["start"].append(time.monotonic() - t0)
        k = hub.kernel(s.name)
        k.execute("%load_ext mrunc", timeout=300)
        for i in range(cells):
            t = time.monotonic()
            out, err, error = k.execute(CELL, timeout=300)
            results["cell"].append(time.monotonic() - t)
            if error or "hello from" not in out:
                errors.append(f"{s.name} cell {i}: {error or err.strip()[-200:] or out!r}")
            else:
                results["ok"].append(1)
        results["usage"].append(usage_of(s.uid))
        k.close()
    except Exception as e:  # noqa: BLE001 — one student's failure is reported, the run goes on
        errors.append(f"{s.name}: {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=int(os.environ.get("STUDENTS", 30)))
    ap.add_argument("--cells", type=int, default=int(os.environ.get("CELLS", 3)))
    ap.add_argument("--spread", type=float, default=10.0, help="seconds over which the students arrive")
    a = ap.parse_args()
    results, errors = {"start": [], "cell": [], "ok": [], "usage": []}, []
    for students in make_students(a.students):
        hub = Hub([s.name for s in students], tempfile.mkdtemp(prefix="mrunc-load-"))
        try:
            hub.start()
            t0 = time.monotonic()
            threads = [threading.Thread(target=student, args=(hub, s, a.cells, results, errors,
                                                              i * a.spread / len(students)))
                       for i, s in enumerate(students)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - t0
            for s in students:
                try:
                    hub.stop_server(s.name, timeout=120)
                except Exception as e:  # noqa: BLE001
                    errors.append(f"{s.name}: stop: {e}")
        finally:
            hub.stop()
    ok = len(results["ok"])
    print(f"{a.students} students x {a.cells} cells on {os.cpu_count()} CPUs, arriving over {a.spread:.0f} s: "
          f"{ok}/{a.students * a.cells} cells ok, {wall:.0f} s in all")
    for name in ("start", "cell"):
        v = results[name]
        if v:
            print(f"  {name:<6} p50 {statistics.median(v):6.2f} s   p95 {pct(v, 95):6.2f} s   max {max(v):6.2f} s")
    if results["usage"]:
        kinds = sorted({k for u in results["usage"] for k in u})
        print("  RSS per student (median): " + ", ".join(
            f"{k} {statistics.median(u.get(k, 0) for u in results['usage']) / 1024:.0f} MiB" for k in kinds))
    for e in errors[:20]:
        print("  FAILED", e)
    return 1 if errors or ok < a.students * a.cells else 0


if __name__ == "__main__":
    sys.exit(main())
