"""Graded exercises: checks that read a container's KERNEL STATE, never the text a cell printed.

An exercise asks for a container with certain properties ("its own network namespace but the host's
PID namespace", "a 64 MiB memory limit", "no CAP_NET_RAW"). A check looks at the container from
outside, through mrunc's own snapshot (mrunc.snapshot: /proc/<pid>/ns, mountinfo, the cgroup's
files, /proc/<pid>/status) — the same data the stepper draws — so printing the right words earns
nothing, and any way of making the right container earns full marks.

Two faces over one list of conditions:

    from mrunc.notebook.grading import expect, self_check, own_namespace, host_namespace

    self_check(web, own_namespace("pid", "uts"), host_namespace("net"))    # for the student
    ✓ it has its own pid namespace
    ✓ it has its own uts namespace
    ✗ it shares the host's network namespace — it has a network namespace of its own
    2 of 3 met. Still to do: it shares the host's network namespace.

    expect(web, own_namespace("pid", "uts"), host_namespace("net"))        # nbgrader hidden test
    AssertionError: container web: 1 of 3 conditions not met:
      ✗ it shares the host's network namespace — it has a network namespace of its own

`check(...)` returns the same results as data (a Report). The target may be a sandbox Container
(the check waits a moment for it to be running: right after `lab.start()` its pid is not known
yet), a container's name in this kernel's sandbox, or a Snapshot. Anything else — None from a cell
that forgot to keep its container — fails every condition with a sentence saying so; a check never
crashes.

A condition is a sentence and a test. The factories below cover namespaces, cgroup limits and OOM
kills, capabilities, user ids, mounts, seccomp, hostname and network, and what the kernel does when
the container tries something (command_works / command_refused: `mrunc exec` into it, EPERM);
`condition(text, test)` makes any other (`test(snapshot)` returns None or "" when met, else what is
wrong, in words; or a bool).
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Condition", "Result", "Report", "condition", "check", "expect", "self_check",
           "own_namespace", "host_namespace", "memory_limit", "pids_limit", "cpu_limit",
           "oom_killed", "not_oom_killed", "has_capability", "lacks_capability", "uid_maps",
           "gid_maps", "runs_as", "read_only", "writable", "mounted", "propagation", "own_root",
           "seccomp", "no_new_privs", "hostname", "has_interface", "only_loopback",
           "default_route", "reaches", "pid_one", "only_capabilities", "command_works",
           "command_refused"]

WAIT = 10.0                     # seconds a check waits for a just-started container to run its program

_NS_WORDS = {"mnt": "mount", "net": "network"}


def _ns_word(kind):
    return _NS_WORDS.get(kind, kind)


# ---- conditions ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Condition:
    """One thing an exercise asks for: `text` says it ("it has its own pid namespace"); `test`
    gets a Subject and returns what is wrong (a string), or None/"" when the condition is met."""
    text: str
    test: Callable[["Subject"], str | None]
    needs_running: bool = True  # False: judged from the container's cgroup or exit, even stopped


@dataclass(frozen=True)
class Result:
    condition: str              # the sentence
    ok: bool
    problem: str = ""           # what is wrong, in words ("" when ok)

    def line(self) -> str:
        return f"✓ {self.condition}" if self.ok else f"✗ {self.condition} — {self.problem}"


@dataclass(frozen=True)
class Report:
    """What check() found: one Result per condition, in order, and what was looked at."""
    target: str                 # "container web", "a snapshot of pid 1234", "nothing (None)"
    results: tuple[Result, ...]

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if not r.ok)

    def __bool__(self):
        return self.passed

    def __repr__(self):
        return f"<Report {self.target}: {len(self.results) - len(self.failed)} of {len(self.results)} met>"

    def text(self) -> str:
        lines = [r.line() for r in self.results]
        n, bad = len(self.results), self.failed
        if not bad:
            lines.append(f"All {n} met." if n > 1 else "Met.")
        else:
            lines.append(f"{n - len(bad)} of {n} met. Still to do: "
                         + "; ".join(r.condition for r in bad) + ".")
        return "\n".join(lines)

    def __str__(self):
        return self.text()


def condition(text: str, test: Callable[[Any], Any], *, needs_running: bool = True) -> Condition:
    """A condition of your own: `test(snapshot)` returns None/""/True when met, else a string
    saying what is wrong (or False). needs_running=False: `test` gets the Subject instead (its
    .container, and .snapshot, which may be None once the container has stopped)."""
    def run(subject):
        got = test(subject.snapshot) if needs_running else test(subject)
        if got is True or got is None or got == "":
            return None
        return "not so" if got is False else str(got)
    return Condition(text, run, needs_running)


class Subject:
    """What a check looks at: the container (if there is one) and its snapshot, taken once."""

    def __init__(self, target, wait=WAIT):
        self.container, self.snapshot, self.missing = None, None, None
        from mrunc.snapshot import Snapshot
        if isinstance(target, Snapshot):
            self.snapshot, self.label = target, f"a snapshot of pid {target.pid}"
            return
        if target is None:
            self.label = "nothing (None)"
            self.missing = ("there is no container to check (got None): keep the container your "
                            "cell started in a variable, e.g. web = lab.start(...)")
            return
        if isinstance(target, str):
            target = _by_name(target)
            if isinstance(target, str):             # not found: the sentence why
                self.label, self.missing = "nothing", target
                return
        if not hasattr(target, "snapshot") or not hasattr(target, "status"):
            self.label = f"a {type(target).__name__}"
            self.missing = (f"expected a container (what lab.start() returns) or its name, "
                            f"got {type(target).__name__} {_short(target)}")
            return
        self.container = target
        self.label = f"container {getattr(target, 'name', '?')}"
        self.snapshot = _running_snapshot(target, wait)
        if self.snapshot is None:
            self.missing = _why_not_running(target)


def _short(v):
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _by_name(name):
    """The container `name` of this kernel's lab (mrunc.notebook.sandbox()); never makes a lab."""
    from mrunc import notebook
    from mrunc.errors import MruncError
    lab = notebook._SANDBOX
    if lab is None or lab.closed:
        return f"there is no container named {name!r}: this kernel has no lab (lab = sandbox())"
    try:
        return lab.get(name)
    except MruncError:
        return f"there is no container named {name!r} in this notebook's lab"


def _running_snapshot(container, wait):
    """A snapshot of the container's program, once it runs it. Right after start the pid is not
    known yet, and for a moment after that the process is still the runtime (about to execve):
    a snapshot then would show the runtime's capabilities and no seccomp filter yet."""
    from mrunc.snapshot import take
    runtime = os.path.realpath(sys.executable)
    deadline = time.monotonic() + wait
    while True:
        status = container.status
        if status in ("stopped", "deleted"):
            return None
        pid = container.pid if status == "running" or status == "paused" else None
        if pid:
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                exe = None
            if exe is not None and os.path.realpath(exe) != runtime:
                snap = _take(take, container, pid)
                if snap is not None and snap.error is None:
                    return snap
        if time.monotonic() > deadline:
            return _take(take, container, pid) if pid else None
        time.sleep(0.02)


def _take(take, container, pid):
    try:
        mgr = container.cgroup() if hasattr(container, "cgroup") else None
        return take(pid, cgroup_manager=mgr)
    except Exception:  # noqa: BLE001 — a check fails in words, never with a traceback
        return None


def _why_not_running(container):
    status = container.status
    if status in ("stopped", "deleted"):
        code = getattr(container, "exit_code", None)
        ended = f" (it exited with status {code})" if code is not None else ""
        return f"container {container.name} is not running any more{ended}: its kernel state is gone"
    return f"container {container.name} is {status}, not running (waited {WAIT:.0f} s)"


def _flatten(conditions):
    for c in conditions:
        if isinstance(c, (list, tuple)):
            yield from _flatten(c)
        else:
            yield c


# ---- the three faces -----------------------------------------------------------------------------

def check(target, *conditions: Condition, wait: float = WAIT) -> Report:
    """Judge every condition on `target` (a Container, a container's name, or a Snapshot).
    Returns a Report; never raises for a bad target or a condition that cannot be read."""
    subject = Subject(target, wait)
    results = []
    for c in _flatten(conditions):
        if not isinstance(c, Condition):
            results.append(Result(repr(c), False, "not a condition (use the functions of "
                                                  "mrunc.notebook.grading, e.g. own_namespace('pid'))"))
            continue
        if subject.missing and (c.needs_running or subject.container is None):
            results.append(Result(c.text, False, subject.missing))
            continue
        try:
            problem = c.test(subject)
        except Exception as e:  # noqa: BLE001 — a broken check reads as a failed condition
            problem = f"could not be checked ({type(e).__name__}: {e})"
        results.append(Result(c.text, not problem, problem or ""))
    return Report(subject.label, tuple(results))


def expect(target, *conditions: Condition, wait: float = WAIT) -> None:
    """For graders (nbgrader hidden tests): raise AssertionError saying, in plain words, which
    conditions are not met and why; nothing when all are (a passing test cell stays quiet)."""
    report = check(target, *conditions, wait=wait)
    if not report.passed:
        bad = report.failed
        raise AssertionError(f"{report.target}: {len(bad)} of {len(report.results)} "
                             f"condition{'s' if len(report.results) > 1 else ''} not met:\n"
                             + "\n".join("  " + r.line() for r in bad))


def self_check(target, *conditions: Condition, wait: float = WAIT) -> None:
    """For students: print ✓ or ✗ per condition, with what is still wrong. Never raises: run it
    as often as you like. (It returns nothing, so a cell ending with it shows only the lines;
    check() gives the same results as data.)"""
    print(check(target, *conditions, wait=wait).text())


# ---- namespaces ----------------------------------------------------------------------------------

def _snap_part(s, part, what):
    v = getattr(s, part)
    if v is None:
        notes = "; ".join(s.notes) if s.notes else (s.error or "not readable here")
        return None, f"its {what} could not be read ({notes})"
    return v, None


def _ns_condition(kind, own):
    word = _ns_word(kind)
    text = f"it has its own {word} namespace" if own else f"it shares the host's {word} namespace"

    def test(subject):
        ns = subject.snapshot.ns(kind)
        if ns is None or ns.isolated is None:
            return f"its {word} namespace could not be read"
        if ns.isolated and not own:
            return f"it has a {word} namespace of its own"
        if not ns.isolated and own:
            return f"it is in the host's {word} namespace"
        return None
    return Condition(text, test)


def _kinds(kinds):
    from mrunc.snapshot import NS_KINDS
    out = []
    for k in kinds:
        k = {"mount": "mnt", "network": "net"}.get(str(k).lower(), str(k).lower())
        if k not in NS_KINDS:
            raise ValueError(f"unknown namespace {k!r} (known: {', '.join(NS_KINDS)})")
        out.append(k)
    return out


def own_namespace(*kinds: str) -> Condition | list:
    """It has its own namespace of each kind ("pid", "uts", "net"/"network", "mnt"/"mount", "ipc",
    "user", "cgroup"): its /proc/<pid>/ns link differs from the host's. Several kinds give a list
    of conditions; pass them with * or as they are (check() flattens lists)."""
    return _one_or_many([_ns_condition(k, True) for k in _kinds(kinds)])


def host_namespace(*kinds: str) -> Condition | list:
    """It shares the host's namespace of each kind: the same namespace inode as the host's."""
    return _one_or_many([_ns_condition(k, False) for k in _kinds(kinds)])


def _one_or_many(conds):
    return conds[0] if len(conds) == 1 else _Many(conds)


class _Many(list):
    """Several conditions from one call: check() takes them as if passed one by one."""


# ---- cgroup --------------------------------------------------------------------------------------

def _bytes(size):
    from mrunc.sandbox import parse_size
    return parse_size(size)


def _human(n):
    from mrunc.snapshot import human_bytes
    if n is not None and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    return human_bytes(n)


def _on_cgroup(text, judge):
    """A condition on the container's cgroup: judge(Cgroup) says what is wrong, or None. Where the
    lab cannot set limits at all (rootless without a delegated cgroup), the problem says so."""
    def test(subject):
        cg, why = _snap_part(subject.snapshot, "cgroup", "cgroup")
        problem = why or judge(cg)
        lab = getattr(subject.container, "sandbox", None)
        if problem and getattr(lab, "no_cgroup", None):
            problem += f" — this lab cannot set cgroup limits: {lab.no_cgroup}"
        return problem
    return Condition(text, test)


def memory_limit(size) -> Condition:
    """The memory limit in its cgroup is `size` (64M, "64MiB" or bytes): memory.max on cgroup v2,
    memory.limit_in_bytes on v1. None: it has no limit."""
    want = None if size is None else _bytes(size)
    return _on_cgroup(f"the memory limit in its cgroup is {_human(want)}" if want else "its memory is unlimited",
                      lambda cg: None if cg.memory_limit == want else f"it is {_human(cg.memory_limit)}")


def pids_limit(n) -> Condition:
    """pids.max in its cgroup is `n` (None: unlimited)."""
    def judge(cg):
        if cg.pids_limit == n:
            return None
        return f"pids.max is {'max (unlimited)' if cg.pids_limit is None else cg.pids_limit}"
    return _on_cgroup(f"pids.max in its cgroup is {n}" if n is not None else
                      "its number of processes is unlimited", judge)


def cpu_limit(cpus, tolerance: float = 0.1) -> Condition:
    """Its cgroup's CPU quota / period is `cpus` CPUs, ± `tolerance` (a fraction: 0.1 = 10 %)."""
    def judge(cg):
        if cg.cpus is None:
            return "it has no CPU limit (no quota)"
        return None if abs(cg.cpus - cpus) <= cpus * tolerance else f"its quota allows {cg.cpus:.2f} CPUs"
    return _on_cgroup(f"its cgroup may use {cpus:g} CPU" + ("s" if cpus != 1 else ""), judge)


def _oom_kills(subject):
    snap = subject.snapshot
    if snap is not None and snap.cgroup is not None and snap.cgroup.oom_kills is not None:
        return snap.cgroup.oom_kills, None
    stats = subject.container.stats() if subject.container is not None else None
    kills = ((stats or {}).get("memory") or {}).get("oom_kills")
    if kills is None:
        return None, "its cgroup's OOM-kill counter could not be read (was the container deleted?)"
    return kills, None


def oom_killed() -> Condition:
    """The kernel's OOM killer killed a process of its cgroup (memory.events oom_kill on v2,
    memory.oom_control on v1). Judged from the cgroup, so it works once the container has stopped
    too (not once it is deleted)."""
    def test(subject):
        kills, why = _oom_kills(subject)
        return why or (None if kills else "no process of its cgroup was OOM-killed")
    return Condition("the OOM killer killed a process in its cgroup", test, needs_running=False)


def not_oom_killed() -> Condition:
    """No process of its cgroup was OOM-killed (also once it has stopped)."""
    def test(subject):
        kills, why = _oom_kills(subject)
        return why or (f"the OOM killer killed {kills} of its processes" if kills else None)
    return Condition("no process in its cgroup was OOM-killed", test, needs_running=False)


# ---- security ------------------------------------------------------------------------------------

def _on_security(text, what, judge):
    """A condition on /proc/<pid>/status and the id maps: judge(Security, Snapshot) says what is
    wrong, or None; `what` names the part in the sentence when it could not be read."""
    def test(subject):
        sec, why = _snap_part(subject.snapshot, "security", what)
        return why or judge(sec, subject.snapshot)
    return Condition(text, test)


def _cap(name):
    n = str(name).strip().upper()
    return n if n.startswith("CAP_") else "CAP_" + n


_SETS = {"effective": "CapEff", "permitted": "CapPrm", "inheritable": "CapInh",
         "bounding": "CapBnd", "ambient": "CapAmb"}


def _cap_condition(name, which, present):
    cap = _cap(name)
    if which not in _SETS:
        raise ValueError(f"unknown capability set {which!r} (known: {', '.join(_SETS)})")

    def judge(sec, _):
        if (cap in sec.caps(which)) == present:
            return None
        return f"it is {'missing from' if present else 'in'} {_SETS[which]} (/proc/<pid>/status)"
    return _on_security(f"{cap} is {'' if present else 'not '}in its {which} set", "capabilities", judge)


def has_capability(name: str, which: str = "effective") -> Condition:
    """`name` (CAP_NET_BIND_SERVICE or net_bind_service) is in its `which` capability set."""
    return _cap_condition(name, which, True)


def lacks_capability(name: str, which: str = "effective") -> Condition:
    """`name` is NOT in its `which` capability set (effective, permitted, bounding, …)."""
    return _cap_condition(name, which, False)


def only_capabilities(*names: str, which: str = "effective") -> Condition:
    """Its `which` capability set holds these capabilities and nothing else (none: empty)."""
    caps = sorted({_cap(n) for n in names})
    if which not in _SETS:
        raise ValueError(f"unknown capability set {which!r} (known: {', '.join(_SETS)})")

    def judge(sec, _):
        have = set(sec.caps(which))
        extra, missing = sorted(have - set(caps)), sorted(set(caps) - have)
        bits = ([f"it also holds {', '.join(extra)}"] if extra else []) + \
            ([f"it lacks {', '.join(missing)}"] if missing else [])
        return "; ".join(bits) or None
    return _on_security(f"its {which} set holds {', '.join(caps) or 'no capability'}"
                        + (" and nothing else" if caps else ""), "capabilities", judge)


def _maps(kind, inside, outside):
    def judge(sec, snap):
        user = snap.ns("user")
        if user is not None and user.isolated is False:
            return f"it has no user namespace of its own: {kind} {inside} is {kind} {inside} on the host too"
        for first_in, first_out, count in getattr(sec, f"{kind}_map"):
            if first_in <= inside < first_in + count:
                got = first_out + inside - first_in
                return None if got == outside else f"{kind} {inside} inside is {kind} {got} outside"
        return f"{kind} {inside} is not mapped"
    return _on_security(f"{kind} {inside} inside maps to {kind} {outside} outside", f"{kind}_map", judge)


def uid_maps(inside: int, outside: int) -> Condition:
    """uid `inside` in its user namespace is uid `outside` on the host (/proc/<pid>/uid_map)."""
    return _maps("uid", inside, outside)


def gid_maps(inside: int, outside: int) -> Condition:
    """gid `inside` in its user namespace is gid `outside` on the host (/proc/<pid>/gid_map)."""
    return _maps("gid", inside, outside)


def runs_as(uid: int) -> Condition:
    """Its effective uid, as the host sees it, is `uid` (e.g. root inside is a plain uid outside)."""
    def judge(sec, _):
        got = sec.uid[1] if len(sec.uid) > 1 else None
        return None if got == uid else f"it runs as uid {got} on the host"
    return _on_security(f"it runs as uid {uid} on the host", "user ids", judge)


def seccomp(mode: str = "filter") -> Condition:
    """Its seccomp mode (/proc/<pid>/status Seccomp) is `mode`: "filter", "strict" or "disabled"."""
    if mode not in ("filter", "strict", "disabled"):
        raise ValueError(f"unknown seccomp mode {mode!r} (filter, strict, disabled)")
    return _on_security(f"its seccomp mode is {mode}", "seccomp mode",
                        lambda sec, _: None if sec.seccomp_mode == mode else f"it is {sec.seccomp_mode}")


def no_new_privs(on: bool = True) -> Condition:
    """no_new_privs is set (on=False: clear): execve can never grant it privileges again."""
    return _on_security(f"no_new_privs is {'set' if on else 'clear'}", "no_new_privs flag",
                        lambda sec, _: None if sec.no_new_privs == on else f"it is {'clear' if on else 'set'}")


# ---- mounts and root -----------------------------------------------------------------------------

def _mount(subject, path):
    m = subject.snapshot.mount_at(path)
    if m is None:
        if not subject.snapshot.mounts:
            return None, "its mount table could not be read"
        return None, f"nothing is mounted at {path}"
    return m, None


def mounted(path: str, fstype: str | None = None) -> Condition:
    """Something (of type `fstype`, if given: "overlay", "tmpfs", "proc"…) is mounted at `path`,
    as the container sees its paths."""
    text = f"a {fstype} is mounted at {path}" if fstype else f"something is mounted at {path}"

    def test(subject):
        m, why = _mount(subject, path)
        if why:
            return why
        return None if fstype in (None, m.fstype) else f"it is a {m.fstype}"
    return Condition(text, test)


def read_only(path: str) -> Condition:
    """The mount at `path` (as the container sees it) is read-only: "ro" in its mount options."""
    def test(subject):
        m, why = _mount(subject, path)
        return why or (None if m.readonly else "it is read-write")
    return Condition(f"the mount at {path} is read-only", test)


def writable(path: str) -> Condition:
    """The mount at `path` is read-write."""
    def test(subject):
        m, why = _mount(subject, path)
        return why or (None if not m.readonly else "it is read-only")
    return Condition(f"the mount at {path} is writable", test)


def propagation(path: str, mode: str) -> Condition:
    """The mount at `path` has propagation `mode`: "private", "shared", "slave", "shared+slave",
    "unbindable" (mountinfo's optional fields)."""
    def test(subject):
        m, why = _mount(subject, path)
        return why or (None if m.propagation_mode == mode else f"it is {m.propagation_mode}")
    return Condition(f"the mount at {path} is {mode}", test)


def own_root() -> Condition:
    """Its root directory is not the host's "/" (pivot_root or chroot into the rootfs)."""
    def test(subject):
        root, why = _snap_part(subject.snapshot, "root", "root directory")
        return why or ("its / is the host's /" if root.is_host else None)
    return Condition("its / is not the host's /", test)


# ---- what happens when it tries -----------------------------------------------------------------

def _exec(subject, script):
    if subject.container is None or not hasattr(subject.container, "exec"):
        return None, "this check runs a command in the container: it needs the container, not a snapshot"
    r = subject.container.exec(script, timeout=30)
    return r, None


def command_works(script: str) -> Condition:
    """The shell command `script`, run in the container (mrunc exec, as its process runs: same
    namespaces, capabilities, seccomp filter), exits 0."""
    def test(subject):
        r, why = _exec(subject, script)
        if why or r.returncode == 0:
            return why
        return f"it failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-200:] or 'no message'}"
    return Condition(f"`{script}` works in it", test)


# EPERM as programs word it: strerror, and busybox mount's own wording
_EPERM = ("operation not permitted", "permission denied")


def command_refused(script: str) -> Condition:
    """The shell command `script`, run in the container, fails with EPERM ("Operation not
    permitted"): the kernel refused it — a missing capability, a seccomp rule."""
    def test(subject):
        r, why = _exec(subject, script)
        if why:
            return why
        if r.returncode == 0:
            return "it worked"
        said = (r.stderr + r.stdout).strip()
        if any(w in said.lower() for w in _EPERM):
            return None
        return f"it failed, but not with EPERM (exit {r.returncode}): {said[-200:] or 'no message'}"
    return Condition(f"`{script}` is refused with EPERM in it", test)


# ---- process, hostname, network ------------------------------------------------------------------

def pid_one() -> Condition:
    """Its program is PID 1 in its own PID namespace (NSpid's last field)."""
    def test(subject):
        p = subject.snapshot.process
        if p is None or p.ns_pid is None:
            return "its pid inside could not be read"
        return None if p.ns_pid == 1 else f"it is PID {p.ns_pid} inside"
    return Condition("it is PID 1 inside", test)


def hostname(name: str) -> Condition:
    """Its UTS namespace's hostname is `name` (read from inside its namespace)."""
    def test(subject):
        got = subject.snapshot.hostname
        if got is None:
            return "its hostname could not be read"
        return None if got == name else f"it is {got!r}"
    return Condition(f"its hostname is {name!r}", test)


def has_interface(name: str, address: str | None = None, up: bool = True) -> Condition:
    """Its network namespace has interface `name` (up, unless up=False), with IPv4 `address`
    (e.g. "10.89.0.2" or "10.89.0.2/24") if given."""
    text = f"it has an interface {name}" + (f" with address {address}" if address else "") + \
        (" that is up" if up else "")

    def test(subject):
        i = subject.snapshot.interface(name)
        if i is None:
            have = ", ".join(x.name for x in subject.snapshot.network) or "none"
            return f"it has no {name} (its interfaces: {have})"
        if up and i.up is False:
            return f"{name} is down"
        if address and not any(a == address or a.split("/")[0] == address for a in i.addresses):
            return f"{name} has {', '.join(i.addresses) or 'no address'}"
        return None
    return Condition(text, test)


def only_loopback() -> Condition:
    """Its network namespace has no interface but lo: no way in or out."""
    def test(subject):
        others = [i.name for i in subject.snapshot.network if i.name != "lo"]
        if not subject.snapshot.network:
            return "its interfaces could not be read"
        return f"it also has {', '.join(others)}" if others else None
    return Condition("its only network interface is lo", test)


def default_route(gateway: str) -> Condition:
    """Its IPv4 routing table sends everything else via `gateway` (default via GATEWAY)."""
    def test(subject):
        r = next((r for r in subject.snapshot.routes if r.dst == "default"), None)
        if r is None:
            return "it has no default route"
        return None if r.gateway == gateway else f"its default route goes via {r.gateway or r.dev}"
    return Condition(f"its default route goes via {gateway}", test)


def reaches(other: str, network: str) -> Condition:
    """It and container `other` are wired to the lab network `network` so that packets can go
    between them: both eth0s up, in one subnet, their veths ports of one bridge that is up. Read
    by netlink from the lab's namespace and theirs (Sandbox.network_show, what the topology view
    draws); mrunc.network.course says what is missing."""
    def test(subject):
        from mrunc.errors import MruncError
        from mrunc.network.course import can_reach
        c = subject.container
        if c is None:
            return "this check needs the container itself, not a snapshot"
        deadline = time.monotonic() + WAIT
        while True:         # `other` may have been started a moment ago: wait for it to be wired
            try:
                problems = can_reach(c.sandbox.network_show(network), c.name, other)
            except MruncError as e:
                return str(e)
            peer = c.sandbox.containers.get(other)
            if not problems or peer is None or peer.status != "creating" or time.monotonic() > deadline:
                return "; ".join(problems) or None
            time.sleep(0.05)
    return Condition(f"it can reach {other} over the lab network {network}", test)
