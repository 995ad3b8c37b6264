#!/usr/bin/env python3
"""Run the OCI validation suite (opencontainers/runtime-tools) against a runtime and print a table.

    run_suite.py --runtime-tools /path/to/built/runtime-tools [--runtime .venv/bin/mrunc]

The suite is not part of this repo and is not built here: build it by hand outside the repo
(docs/COMPLIANCE.md, "Testing against the OCI validation suite", says how). Its programs are
validation/*/*.t; each must run from the tree's root (it untars rootfs-<arch>.tar.gz and copies
./runtimetest into every bundle) and finds the runtime in $RUNTIME.

Why each program gets its own private mount namespace: one of them (delete_only_create_resources)
removes every namespace from the config, and a runtime that mounts without a mount namespace of
its own mounts in the caller's. So every program runs under `unshare -m --propagation private`,
and this script checks after each one that the root and mount table of the namespace it runs in
itself are unchanged — the host's, when run from a shell on the host.

A failing program is run once more (--retries): if it passes then, it is "flaky" — a race, in
the suite or the runtime, shown with its first failure. Each failure gets its reason from
docs/conformance-reasons.toml: "machine" (fails for any runtime
here), "suite" (a bug in the suite's own check) or "mrunc" (ours to fix). A failure without a
reason there, a timeout, or a changed host makes the exit status 1.
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REASONS = os.path.join(REPO, "docs", "conformance-reasons.toml")
CLASSES = {"machine": "this machine", "suite": "the suite's own bug", "mrunc": "mrunc"}
TAP_LINE = re.compile(r"^(not ok|ok)\b\s*(\d*)\s*-?\s*(.*?)\s*(?:#\s*(skip|todo)\b\s*(.*))?$", re.I)


class UsageError(Exception):
    """Bad arguments or an unbuilt tree: one line, exit 2."""


# ---- the tree ---------------------------------------------------------------------------------
def programs(tree):
    """The validation programs of a built runtime-tools tree, by name (validation/<n>/<n>.t)."""
    if not tree:
        raise UsageError("RUNTIME_TOOLS is not set: give the path of a built "
                         "opencontainers/runtime-tools tree "
                         "(make conformance RUNTIME_TOOLS=/path/to/runtime-tools)")
    validation = os.path.join(tree, "validation")
    if not os.path.isdir(validation):
        raise UsageError(f"{tree}: not a runtime-tools tree (no validation/ directory)")
    missing = [f for f in ("runtimetest", f"rootfs-{_goarch()}.tar.gz")
               if not os.path.isfile(os.path.join(tree, f))]
    names = sorted(d for d in os.listdir(validation)
                   if os.path.isfile(os.path.join(validation, d, d + ".go")))
    unbuilt = [n for n in names if not os.access(os.path.join(validation, n, n + ".t"), os.X_OK)]
    if unbuilt or not names:
        missing.append(f"{len(unbuilt)} of {len(names)} validation programs" if names
                       else "validation programs")
    if missing:
        raise UsageError(f"{tree}: not built (missing {', '.join(missing)}): "
                         "build its runtimetest and validation programs first (Go >= 1.21)")
    return names


def _goarch():
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "i686": "386"}.get(machine, machine)


def load_reasons(path):
    with open(path, "rb") as f:
        table = tomllib.load(f)
    for name, entry in table.items():
        if entry.get("class") not in CLASSES or not entry.get("why"):
            raise UsageError(f"{path}: [{name}] needs class = one of {sorted(CLASSES)} and a why")
    return table


# ---- one program, inside its own mount namespace -------------------------------------------
def host_view(work):
    """What a runtime must never change in the namespace that runs this script: its root, the
    mount on / (id, options, propagation), and no mount in the program's private work dir
    (where every bundle is). The rest of the mount table is not compared: on a shared machine
    other people's containers come and go."""
    st = os.stat("/")
    with open("/proc/self/mountinfo") as f:
        fields = [line.split(" - ")[0].split() for line in f]
    root_mount = [f for f in fields if f[4] == "/"]
    leaked = [f[4] for f in fields if f[4] == work or f[4].startswith(work + "/")]
    return {"root": [st.st_dev, st.st_ino], "root_mount": root_mount, "leaked": leaked}


def run_inner(prog, timeout, out_path):
    """In the private namespace: run one program with a timeout, and say whether / survived."""
    before = os.stat("/")
    # Every file is opened first: if a runtime pivot_roots this namespace, their paths are gone.
    with open(out_path + ".out", "wb") as out, open(out_path + ".err", "wb") as err, \
            open(out_path, "w") as result:
        p = subprocess.Popen([prog], stdout=out, stderr=err, start_new_session=True)
        try:
            rc, timed_out = p.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc, timed_out = p.wait(), True
        after = os.stat("/")
        same = (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)
        json.dump({"rc": rc, "timed_out": timed_out, "ns_root_intact": same}, result)


def run_program(tree, name, runtime, timeout, state_root=None):
    # An unpredictable name, writable by root only; 0711 so that a container's root in a user
    # namespace (linux_uid_mappings) can still reach its bundle, as it can under /tmp.
    work = tempfile.mkdtemp(prefix="mrunc-oci-")
    bundles = os.path.join(work, "tmp")
    os.mkdir(bundles)
    for d in (work, bundles):
        os.chmod(d, 0o711)
    result_path = os.path.join(work, "result.json")
    env = dict(os.environ, RUNTIME=runtime, TMPDIR=bundles)
    prog = os.path.join(tree, "validation", name, name + ".t")
    outer = host_view(work)
    states = _entries(state_root)
    try:
        try:
            subprocess.run(["unshare", "--mount", "--propagation", "private", "--",
                            sys.executable, os.path.abspath(__file__), "--inner", prog,
                            "--timeout", str(timeout), "--result", result_path],
                           cwd=tree, env=env, timeout=timeout + 60, check=False)
        except subprocess.TimeoutExpired:
            pass                # no result file: reported as a failure below
        res = _read_json(result_path) or {"rc": None, "timed_out": False, "ns_root_intact": False}
        res["stdout"] = _read(result_path + ".out")
        res["stderr"] = _read(result_path + ".err")
        res["leftovers"] = cleanup_containers(runtime, bundles)
        res["left"] = left_behind(runtime, state_root, _entries(state_root) - states)
        res["host_intact"] = host_view(work) == outer
        return classify(name, res)
    finally:
        remove_work_dir(work)


def run_with_retries(tree, name, runtime, timeout, state_root, retries):
    """A program that fails and then passes is "flaky": a race, in the suite or in the runtime,
    that the table must show rather than hide (its first failure stays in `detail`)."""
    first = run_program(tree, name, runtime, timeout, state_root)
    for _ in range(retries if first["result"] == "fail" else 0):
        again = run_program(tree, name, runtime, timeout, state_root)
        if again["result"] == "pass":
            return dict(again, result="flaky", detail=first["detail"], left=first["left"])
    return first


def remove_work_dir(work):
    """Remove the program's work dir, unless something is mounted in it: then removing could
    reach through a bind mount into the host's files, so leave it and say where it is."""
    if host_view(work)["leaked"]:
        print(f"conformance: mounts left under {work}: not removing it", file=sys.stderr)
        return
    shutil.rmtree(work, ignore_errors=True)


def cleanup_containers(runtime, bundles):
    """Containers the program left behind (bundle under our private TMPDIR): force-delete them."""
    p = subprocess.run([runtime, "list", "--format", "json"], capture_output=True, text=True)
    try:
        listed = json.loads(p.stdout or "[]") or []
    except json.JSONDecodeError:
        return []
    ours = [c["id"] for c in listed if str(c.get("bundle", "")).startswith(bundles + "/")]
    for cid in ours:
        subprocess.run([runtime, "delete", "--force", cid], capture_output=True)
    return ours


def left_behind(runtime, state_root, new_ids):
    """What a program's containers left after it (and after `delete --force`): state dirs the
    runtime no longer lists, and the cgroups named after them."""
    left = []
    for cid in sorted(new_ids):
        subprocess.run([runtime, "delete", "--force", cid], capture_output=True)
        left += [p for p in [os.path.join(state_root, cid)] + glob.glob(f"/sys/fs/cgroup/*/{cid}")
                 + glob.glob(f"/sys/fs/cgroup/{cid}") if os.path.isdir(p)]
    return left


def _entries(state_root):
    """The runtime's containers by state dir (created by the suite: it passes no --root)."""
    try:
        return set(os.listdir(state_root)) if state_root else set()
    except FileNotFoundError:
        return set()


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _read_json(path):
    text = _read(path)
    return json.loads(text) if text else None


# ---- results ---------------------------------------------------------------------------------
def parse_tap(text):
    """Counts of a TAP stream and the first failure. The suite reports some failures as a bare
    diagnostic block with an "error" key and no test line (a program that plans 0 tests and
    prints nothing else has passed); a block right after a test line belongs to that test."""
    counts = {"ok": 0, "not_ok": 0, "skip": 0, "errors": 0}
    failures, owner = [], None      # owner: the test line the next diagnostic block belongs to
    for block in _blocks(text.splitlines()):
        if isinstance(block, dict):
            if owner == "not ok" and failures and block.get("error"):
                failures[-1] += f" ({block['error']})"
            elif owner is None and block.get("error"):
                counts["errors"] += 1
                failures.append(block["error"])
            owner = None
            continue
        m = TAP_LINE.match(block)
        if not m:
            continue            # a test's description goes on over several lines
        owner = m.group(1).lower()
        if (m.group(4) or "").lower() == "skip":
            counts["skip"] += 1
        elif owner == "ok":
            counts["ok"] += 1
        else:
            counts["not_ok"] += 1
            failures.append(m.group(3))
    return counts, (failures[0] if failures else None)


def _blocks(lines):
    """Lines, with each indented `---` ... `...` diagnostic block folded into a dict of its
    first-line values (the suite writes them as JSON or YAML)."""
    i = 0
    while i < len(lines):
        if lines[i].strip() != "---":
            yield lines[i]
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() != "...":
            j += 1
        yield _diagnostic(lines[i + 1:j])
        i = j + 1


def _diagnostic(body):
    try:
        d = json.loads("\n".join(body))
    except json.JSONDecodeError:
        d = dict(re.findall(r"^\s*(\w+):\s*(.*)$", "\n".join(body), re.M))
    if not isinstance(d, dict):
        return {}
    return {k: str(v).strip().split("\n")[0][:200] for k, v in d.items()}


def classify(name, res):
    counts, failure = parse_tap(res["stdout"])
    said = _runtime_said(res["stderr"])
    if failure and said and re.fullmatch(r"exit status \d+", failure.split(" (")[0]):
        failure = None          # "not ok 1 - exit status 1": what the runtime said tells more
    detail = failure or said or f"exit status {res['rc']}"
    if not res["host_intact"] or not res["ns_root_intact"]:
        result, detail = (("HOST", "the root or mount table of the calling namespace changed")
                          if not res["host_intact"] else
                          ("NSROOT", "it pivot_rooted its private mount namespace (the caller's, "
                                     "had it not been run in one)"))
    elif res["timed_out"]:
        result, detail = "fail", "timed out"
    elif counts["not_ok"] or counts["errors"] or res["rc"] != 0:
        result = "fail"
    elif counts["skip"] and not counts["ok"]:
        result = "skip"
    else:
        result, detail = "pass", ""
    return {"program": name, "result": result, "tap": counts, "detail": detail,
            "leftovers": res["leftovers"], "left": res.get("left", []),
            "stdout": res["stdout"][-20000:], "stderr": res["stderr"][-4000:]}


def _runtime_said(stderr):
    """The first line of the program's stderr that is not the suite's own framing."""
    noise = re.compile(r"^(exit status \d+|failed to \w+ the container|Refer to: .*|Clean: .*)$")
    lines = [l.strip() for l in stderr.splitlines() if l.strip() and not noise.match(l.strip())]
    return lines[0][:200] if lines else ""


def print_table(results, reasons, out=sys.stdout):
    rows = [("program", "result", "ok/not ok/skip", "reason")]
    for r in results:
        reason = ""
        if r["result"] == "flaky":
            reason = f"failed once, then passed: {r['detail']}"
        elif r["result"] != "pass":
            known = reasons.get(r["program"])
            reason = (f"{CLASSES[known['class']]}: {known['why']}" if known
                      else f"UNEXPLAINED: {r['detail']}")
        if r["leftovers"]:
            reason += f" [force-deleted its containers: {', '.join(r['leftovers'])}]"
        if r["left"]:
            reason += f" [LEFT BEHIND: {', '.join(r['left'])}]"
        t = r["tap"]
        counts = f"{t['ok']}/{t['not_ok'] + t['errors']}/{t['skip']}"
        rows.append((r["program"], r["result"], counts, reason.strip()))
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:3], width)) + "  " + row[3], file=out)
    total = {k: sum(1 for r in results if r["result"] == k)
             for k in ("pass", "flaky", "fail", "skip", "HOST", "NSROOT")}
    print(f"\n{total['pass']} pass, {total['flaky']} flaky, {total['fail']} fail, {total['skip']} skip"
          + (f", {total['HOST']} CHANGED THE HOST" if total["HOST"] else "")
          + (f", {total['NSROOT']} MOVED THEIR NAMESPACE'S ROOT" if total["NSROOT"] else "")
          + f" of {len(results)} programs", file=out)


def verdict(results, reasons):
    """1 when something needs a human: an unexplained failure, a timeout, a changed root, state
    or cgroups left behind. A
    program listed as failing that now passes only gets a note (its reason is stale)."""
    bad = [r["program"] for r in results if r["result"] in ("HOST", "NSROOT") or r["left"]
           or r["detail"] == "timed out" or (r["result"] == "fail" and r["program"] not in reasons)]
    stale = [r["program"] for r in results if r["result"] == "pass" and r["program"] in reasons]
    for name in stale:
        print(f"note: {name} passes now: remove it from {os.path.relpath(REASONS, REPO)}")
    return 1 if bad else 0


# ---- main ------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runtime-tools", default=os.environ.get("RUNTIME_TOOLS", ""))
    ap.add_argument("--runtime", default=os.path.join(REPO, ".venv", "bin", "mrunc"))
    ap.add_argument("--reasons", default=REASONS)
    ap.add_argument("--state-root", help="the runtime's default state dir, checked for leftovers "
                    "(default: /run/<runtime name>, as for mrunc and runc)")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per program")
    ap.add_argument("--retries", type=int, default=1,
                    help="run a failing program again this many times: a pass then is 'flaky'")
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--check", action="store_true", help="only check that the tree is built")
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("only", nargs="*", help="program names (default: all)")
    a = ap.parse_args(argv)
    if a.inner:
        run_inner(a.inner, a.timeout, a.result)
        return 0
    try:
        names = programs(os.path.abspath(a.runtime_tools) if a.runtime_tools else "")
        if a.check:
            return 0
        if os.geteuid() != 0:
            raise UsageError("the OCI validation suite needs root")
        runtime = shutil.which(a.runtime)
        if not runtime:
            raise UsageError(f"--runtime {a.runtime}: no such program")
        runtime = os.path.abspath(runtime)     # the programs run from the suite's tree
        reasons = load_reasons(a.reasons) if runtime.endswith("mrunc") else {}
        unknown = sorted(set(a.only) - set(names))
        if unknown:
            raise UsageError(f"no such validation program: {', '.join(unknown)}")
    except (UsageError, OSError, tomllib.TOMLDecodeError) as e:
        print(f"conformance: {e}", file=sys.stderr)
        return 2
    tree = os.path.abspath(a.runtime_tools)
    state_root = a.state_root or os.path.join("/run", os.path.basename(runtime))
    results = []
    for name in a.only or names:
        print(f"  {name} ...", end="", flush=True, file=sys.stderr)
        results.append(run_with_retries(tree, name, runtime, a.timeout, state_root, a.retries))
        print(f" {results[-1]['result']}", file=sys.stderr)
    print(f"runtime: {runtime}\nsuite:   {tree}\n")
    print_table(results, reasons)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return verdict(results, reasons)


if __name__ == "__main__":
    sys.exit(main())
