"""The config fuzzer's driver: mutated configs through mrunc, in a namespace of its own.

    .venv/bin/python tests/fuzz_driver.py --seed 1 --validate 2000 --cli 100 --containers 200

It re-executes itself under `unshare -m -u -i -n --propagation private` (root only), so whatever
a case does to mounts, the hostname, IPC or the network can only reach that throwaway namespace;
a config that shares a namespace shares the driver's. It is a child subreaper, so any process a
case leaves behind becomes its child and is found.

Three kinds of cases (see fuzzing.py for the edits):
  validate    spec.validate in-process: ok, or one SpecError line starting with a JSON path of the
              config; nothing else (no other exception, no repeated warning).
  cli         configs that validation refuses, through `mrunc create`: exit != 0, exactly the same
              one line on stderr, no state dir; and broken files (truncated, nested too deep,
              not UTF-8).
  containers  `mrunc run` of mostly-valid configs, then `delete --force`: success, or one error
              line; never a traceback or a hang; and afterwards nothing left — no state dir, no
              cgroup dir named after the id (or the run's prefix) in any hierarchy, no mount (the
              driver's mount table byte-identical), no process, no change to the driver's root.

Prints one JSON report on stdout ({"validate": {...}, "cli": {...}, "containers": {...},
"failures": [...]}); each failure also goes to --failures DIR as a replayable case. Exit status 1
if any case failed.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import fuzzing  # noqa: E402

ROOTFS = os.path.join(REPO, "rootfs", "busybox")
MRUNC = [sys.executable, "-m", "mrunc"]
IN_NS = "MRUNC_FUZZ_IN_NAMESPACE"


def main(argv=None):
    a = _args(argv)
    if os.environ.get(IN_NS) != "1":
        if os.geteuid() != 0:
            sys.exit("fuzz_driver: needs root (it runs containers in a namespace of its own)")
        env = dict(os.environ, **{IN_NS: "1"})
        os.execvpe("unshare", ["unshare", "-m", "-u", "-i", "-n", "--propagation", "private",
                               sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)
    from mrunc.linux import PR_SET_CHILD_SUBREAPER, Syscalls
    Syscalls().prctl(PR_SET_CHILD_SUBREAPER, 1)
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` removes our dirs
    work = tempfile.mkdtemp(prefix="mrunc-fuzz-")
    state_root = tempfile.mkdtemp(prefix="mrunc-fuzz-state-", dir="/run")
    report = {"seed": a.seed, "failures": []}
    try:
        rootfs = fuzzing.make_fuzz_rootfs(ROOTFS, work)
        fuzz = Fuzz(a, work, rootfs, state_root, report)
        report["token"] = fuzz.token  # in every container id and cgroup name of this run
        report["validate"] = fuzz.validate(a.validate)
        report["cli"] = fuzz.cli(a.cli)
        report["containers"] = fuzz.containers(a.containers)
        if a.replay:
            report["replay"] = fuzz.replay(a.replay)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(state_root, ignore_errors=True)
    print(json.dumps(report, indent=1, default=str))
    total = sum(report.get(k, {}).get("cases", 0) for k in ("validate", "cli", "containers", "replay"))
    print(f"fuzz_driver: seed {a.seed}: {total} cases, {len(report['failures'])} failed",
          file=sys.stderr)
    return 1 if report["failures"] else 0


def _args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=int(os.environ.get("MRUNC_FUZZ_SEED", "1")))
    p.add_argument("--validate", type=int, default=0, help="in-process validation cases")
    p.add_argument("--cli", type=int, default=0, help="refused configs through `mrunc create`")
    p.add_argument("--containers", type=int, default=0, help="`mrunc run` cases")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a case is a hang")
    p.add_argument("--failures", help="directory to save failing cases in (replayable)")
    p.add_argument("--replay", help="a corpus directory: run its container cases, each must give "
                                    "exactly its recorded outcome")
    return p.parse_args(argv)


class Fuzz:
    def __init__(self, a, work, rootfs, state_root, report):
        from mrunc import spec
        self.a, self.work, self.state_root, self.report = a, work, state_root, report
        self.token = uuid.uuid4().hex[:8]
        self.why = {}
        self.base = spec.default_config()
        self.base["root"]["path"] = rootfs
        self.base["process"]["terminal"] = False
        self.base["process"]["args"] = ["sh", "-c", "echo fuzz-ok"]

    def rng(self, kind, i):
        return random.Random(f"{self.a.seed}-{kind}-{i}")

    def fail(self, kind, i, edits, problem, detail=""):
        case = {"kind": kind, "seed": self.a.seed, "case": i, "edits": edits, "problem": problem,
                "detail": detail[-2000:]}
        self.report["failures"].append(case)
        if self.a.failures:
            os.makedirs(self.a.failures, exist_ok=True)
            with open(os.path.join(self.a.failures, f"{kind}-{self.a.seed}-{i}.json"), "w") as f:
                json.dump(case, f, indent=1)

    def bundle(self, config_text):
        d = tempfile.mkdtemp(dir=self.work, prefix="bundle-")
        with open(os.path.join(d, "config.json"), "wb") as f:
            f.write(config_text if isinstance(config_text, bytes) else config_text.encode())
        return d

    # ---- in-process validation ----------------------------------------------------------------
    def validate(self, n):
        counts = {"cases": n, "ok": 0, "refused": 0}
        for i in range(n):
            rng = self.rng("validate", i)
            edits = fuzzing.edits_for(rng, self.base, fuzzing.VALIDATION_EDITS, rng.randint(1, 3))
            outcome, _, problem = fuzzing.judge_validation(fuzzing.apply(self.base, edits), self.work)
            counts["ok" if outcome == "ok" else "refused"] += 1
            if problem:
                self.fail("validate", i, edits, problem)
        return counts

    # ---- the CLI on refused configs and broken files ----------------------------------------------
    def cli(self, n):
        counts = {"cases": 0, "refused": 0}
        i = 0
        while counts["cases"] < n:
            rng = self.rng("cli", i)
            edits = fuzzing.edits_for(rng, self.base, fuzzing.VALIDATION_EDITS, rng.randint(1, 3))
            config = fuzzing.apply(self.base, edits)
            b = self.bundle(fuzzing.dumps(config))   # a relative root.path is the bundle's
            outcome, warnings, _ = fuzzing.judge_validation(config, b)
            i += 1
            if outcome == "ok":
                shutil.rmtree(b)
                continue   # a container case: the container fuzz's job
            counts["cases"] += 1
            self._cli_case(i, edits, b, f"mrunc: {outcome}", counts)
        for name, text in _broken_files():
            counts["cases"] += 1
            self._cli_case(name, [], self.bundle(text), None, counts)
        return counts

    def _cli_case(self, i, edits, b, expect, counts):
        cid = f"fz-{self.token}-c{i}"
        p = self.mrunc("create", "--bundle", b, cid)
        lines = [l for l in p.stderr.splitlines() if not l.startswith("mrunc: warning: ")]
        problem = None
        if p.returncode == 0:
            problem = "create succeeded"
            self.mrunc("delete", "--force", cid)
        elif "Traceback" in p.stderr or len(lines) != 1:
            problem = "not one line"
        elif expect is not None and lines[0] != expect:
            problem = f"CLI says {lines[0]!r}, validation said {expect!r}"
        elif os.path.exists(os.path.join(self.state_root, cid)):
            problem = "state dir left behind"
        else:
            counts["refused"] += 1
        if problem:
            self.fail("cli", i, edits, problem, p.stderr)
        shutil.rmtree(b, ignore_errors=True)

    # ---- real containers ------------------------------------------------------------------------
    def containers(self, n):
        counts = {"cases": n, "ran": 0, "refused": 0, "seconds": 0.0}
        t0 = time.monotonic()
        for i in range(n):
            rng = self.rng("container", i)
            edits = fuzzing.container_edits(rng, self.base, self.work)
            config = fuzzing.apply(self.base, edits)
            outcome = self._container_case(i, edits, config)
            counts[outcome] = counts.get(outcome, 0) + 1
        counts["seconds"] = round(time.monotonic() - t0, 1)
        counts["why refused"] = dict(sorted(self.why.items(), key=lambda kv: -kv[1])[:25])
        return counts

    def _container_case(self, i, edits, config):
        """`run` removes the container when its program exits (as runc's): so right after it,
        nothing may be left. `delete --force` only cleans up after a failed case."""
        cid = f"fz-{self.token}-{i}"
        b = self.bundle(fuzzing.dumps(config))
        before = _host_view()
        problem, detail, outcome = None, "", "ran"
        try:
            p = self.mrunc("run", "--bundle", b, cid, timeout=self.a.timeout)
        except subprocess.TimeoutExpired as e:
            p, problem, detail = None, f"hang: no answer in {self.a.timeout}s", e.stderr or ""
        if p is not None:
            detail = p.stderr
            problem = _judge_run(config, p)
            if p.returncode != 0 and _error_lines(p.stderr):
                outcome = "refused"
                why = _error_lines(p.stderr)[0][:60]
                self.why[why] = self.why.get(why, 0) + 1
        left = self._leftovers(cid, before)
        if left:
            problem = problem or "left behind: " + "; ".join(left)
            d = self.mrunc("delete", "--force", cid)
            if "Traceback" in d.stderr:
                detail += "\ndelete --force: " + d.stderr
            _children()   # reap what the delete killed
        if problem:
            self.fail("container", i, edits, problem, detail)
            outcome = "failed"
        shutil.rmtree(b, ignore_errors=True)
        return outcome

    def replay(self, corpus):
        """The corpus's container cases (`"run": true`): the outcome must be the recorded one —
        the error line (`expect`), or "ok" with exactly the recorded warnings."""
        counts = {"cases": 0}
        for name in sorted(os.listdir(corpus)):
            with open(os.path.join(corpus, name)) as f:
                case = json.load(f)
            if not case.get("run"):
                continue
            counts["cases"] += 1
            config = fuzzing.apply(self.base, case["edits"])
            before = _host_view()
            cid = f"fz-{self.token}-r{counts['cases']}"
            b = self.bundle(fuzzing.dumps(config))
            p = self.mrunc("run", "--bundle", b, cid, timeout=self.a.timeout)
            got = _outcome(p)
            problem = _judge_run(config, p) or self._leftovers(cid, before)
            if got != (case["expect"], case.get("warnings", [])) or problem:
                self.fail("replay", name[:-5], case["edits"], f"got {got}, problems {problem}", p.stderr)
                self.mrunc("delete", "--force", cid)
            shutil.rmtree(b, ignore_errors=True)
        return counts

    def _leftovers(self, cid, before):
        left = []
        if os.path.lexists(os.path.join(self.state_root, cid)):
            left.append(f"state dir {cid}")
        left += [f"cgroup {d}" for d in _cgroup_dirs(cid, self.token)]
        after = _host_view()
        changed = [l for l in set(after["mountinfo"].splitlines()) ^ set(before["mountinfo"].splitlines())
                   if self._ours(l)]
        if changed:
            left.append(f"mount table changed: {sorted(changed)[:3]}")
        if after["root"] != before["root"] or after["hostname"] != before["hostname"]:
            left.append(f"root or hostname changed: {before} -> {after}")
        left += [f"process {pid} ({comm})" for pid, comm in _children()]
        return left

    def _ours(self, mountinfo_line):
        """Could a case have made (or removed) this mount? Anything but other people's scratch
        dirs under /tmp and /run: seen once on this shared machine, a podman test's overlay
        mounts came and went in our private namespace's table. A case's own mounts land under
        our work or state dir, or on system paths (/, /proc, /sys, /dev) when it shares ours."""
        point = mountinfo_line.split()[4]
        if point.startswith((self.work, self.state_root)):
            return True
        return not point.startswith(("/tmp/", "/run/", "/var/tmp/"))

    def mrunc(self, *args, timeout=60):
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                rc = subprocess.run([*MRUNC, "--root", self.state_root, *args], cwd=REPO,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    timeout=timeout).returncode
            except subprocess.TimeoutExpired as e:
                err.seek(0)
                e.stderr = err.read()
                raise
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(args, rc, out.read(), err.read())


def _broken_files():
    good = '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}}'
    yield "truncated", good[:20]
    yield "empty", ""
    yield "nested-too-deep", '{"a": ' + "[" * 100000 + "]" * 100000 + "}"
    yield "not-utf8", b'{"ociVersion": "\xff"}'
    yield "nan", '{"ociVersion": NaN}'
    yield "array", "[]"
    yield "lone-surrogate", '{"ociVersion": "1.0.2", "hostname": "\\ud800"}'


def _outcome(p):
    """("ok" or the error line without "mrunc: ", [warnings without "mrunc: warning: "])."""
    errors = _error_lines(p.stderr)
    warnings = [l[len("mrunc: warning: "):] for l in p.stderr.splitlines()
                if l.startswith("mrunc: warning: ")]
    return (errors[0][len("mrunc: "):] if errors else "ok"), warnings


def _error_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("mrunc: ") and
            not l.startswith("mrunc: warning: ")]


def _judge_run(config, p):
    """None if `mrunc run` behaved, else what was wrong. Lines the program printed are its own."""
    if "Traceback" in p.stderr:
        return "traceback"
    errors = _error_lines(p.stderr)
    if len(errors) > 1:
        return f"{len(errors)} error lines"
    warnings = [l for l in p.stderr.splitlines() if l.startswith("mrunc: warning: ")]
    if len(set(warnings)) != len(warnings):
        return "a warning said twice"
    if errors and p.returncode == 0:
        return "an error line, but exit status 0"
    if errors and not _names_a_path(config, errors[0]):
        return "the error names no JSON path of the config"
    return None


def _names_a_path(config, line):
    """The error names what was wrong: a JSON path of the config somewhere in the line (runtime
    errors start with their phase: `mrunc: mount: mounts[7] /x: ...`), or a hook's path."""
    text = line[len("mrunc: "):]
    phase, _, rest = text.partition(": ")
    if fuzzing.path_problem(config, text) is None or fuzzing.path_problem(config, rest) is None:
        return True
    for w in text.replace(":", " ").split():
        parts = fuzzing.parse_path(w)
        if len(parts) > 1 and (fuzzing.resolves(config, parts) or fuzzing._absent_member(config, parts)):
            return True
    return False


def _host_view():
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    st = os.stat("/")
    return {"mountinfo": mounts, "root": (st.st_dev, st.st_ino, os.readlink("/proc/self/root")),
            "hostname": os.uname().nodename}


def _cgroup_dirs(cid, token, top="/sys/fs/cgroup", depth=4):
    """Directories named after the id, or under the run's prefix, in every hierarchy."""
    found = []
    for dirpath, dirnames, _ in os.walk(top):
        if dirpath[len(top):].count("/") >= depth:
            dirnames[:] = []
        for d in dirnames:
            if d == cid or token in d:
                found.append(os.path.join(dirpath, d))
    return found


def _children():
    """(pid, comm) of our live children, after reaping the dead: a subreaper inherits orphans."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    me, out = str(os.getpid()), []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if stat[stat.rindex(")") + 2:].split()[1] == me:
            out.append((int(d), comm))
    return out


if __name__ == "__main__":
    sys.exit(main())
