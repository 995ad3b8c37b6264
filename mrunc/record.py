"""The phase record: every call of one phase, by every process, in the order the kernel saw them.

Each process that takes part in creating a container keeps its own log (mrunc.linux.Syscalls):
the runtime (`mrunc create`), the clone child, init, the hooks the runtime runs. init sends its
calls home at the end of each phase; the runtime takes the calls *it* made meanwhile — while init
was in that phase — and merges the two by time. One record per phase results, and it is the only
one: `--trace` prints it, `--debug` logs it, the stepper (--step-fd) receives it.

A call, as it travels (JSON) and as Step.calls holds it:

    {"call": "write", "args": ["/sys/fs/cgroup/pids/c1/cgroup.procs", "4242"],
     "who": "runtime", "pid": 4200, "t": 1733541234.123456, "ms": 0.512}
    "pid" and "ms" are left out when unknown; "errno": "EPERM" is added if it failed, "ret": 7
    for a non-zero result (a new fd, a hook's exit status), "note": "…" when a call runs in a
    phase one would not expect, and why.

`who`: "runtime"; "clone" (the clone child, which unshares and forks init); "init"; "hook" (a
hook's own process, run by the runtime or by init). Step.calls holds them as `CallRecord` lists —
[name, *args], as before, with the rest as attributes — so `call[0]` still reads the name.

Plain functions over plain data: imported by every `mrunc create`, and by the notebook.
"""


def as_dict(c):
    """A Syscalls log entry (mrunc.linux.Call) as the record's JSON object."""
    name, args = c
    d = {"call": name, "args": [_jsonable(a) for a in args], "who": c.who, "t": round(c.t, 6)}
    if c.pid is not None:       # init's is filled in by the runtime (init sees itself as 1)
        d["pid"] = c.pid
    if c.ms is not None:        # a fake's calls, and an execve, take no measured time
        d["ms"] = c.ms
    if c.errno:
        d["errno"] = c.errno
    elif c.ret:
        d["ret"] = c.ret
    if c.note:
        d["note"] = c.note
    return d


def as_dicts(log):
    return [as_dict(c) for c in log]


def _jsonable(v):
    return v if isinstance(v, (str, int, float, bool, type(None), list)) else str(v)


def merge(*records):
    """One list of call records from several processes' lists, in the order they started
    (each list is in order already; a stable sort keeps that order for equal times)."""
    out = [c for r in records for c in r or ()]
    out.sort(key=lambda c: c.get("t") or 0.0)
    return out


class CallRecord(list):
    """A call record as the stepper holds it: the list [name, *args] (what call[0] and
    unpacking see), with who, pid, t, ms, errno, ret and note as attributes."""

    who = pid = t = ms = errno = ret = note = None

    @classmethod
    def of(cls, rec):
        """From a record (a dict), or from an older record that is a bare list."""
        if not isinstance(rec, dict):
            return cls(rec)
        c = cls([rec.get("call"), *(rec.get("args") or [])])
        for k in ("who", "pid", "t", "ms", "errno", "ret", "note"):
            if rec.get(k) is not None:
                setattr(c, k, rec[k])
        return c

    def as_dict(self):
        d = {"call": self[0], "args": list(self[1:])}
        d.update({k: getattr(self, k) for k in ("who", "pid", "t", "ms", "errno", "ret", "note")
                  if getattr(self, k) is not None})
        return d


def calls(records):
    """The records of a phase event as CallRecord lists."""
    return [CallRecord.of(r) for r in records or ()]


# ---- the text of --trace and --debug ------------------------------------------------------------

def _spent(rec):
    """Where the phase's time went, by process: "  (in calls: runtime 2.9 ms, init 0.4 ms)". A
    phase lasts as long as its slowest party; this says who that was."""
    by = {}
    for c in rec.get("calls") or ():
        if isinstance(c, dict) and c.get("ms") is not None:
            by[c.get("who")] = by.get(c.get("who"), 0.0) + c["ms"]
    if not by:
        return ""
    return "  (in calls: " + ", ".join(f"{who} {ms:.3f} ms" for who, ms in by.items()) + ")"


def format_phase(rec):
    """One line per phase, then its calls: who made each (and its pid), how long it took, how it
    ended. A run of the same call by the same process with the same first argument (38 ×
    prctl(PR_CAPBSET_DROP, …)) is folded into one line, with the total time."""
    took = "  failed" if rec.get("event") == "error" else f"{rec['ms']:8.3f} ms"
    lines = [f"mrunc: phase {rec.get('phase') or '?':<10} {took}{_spent(rec)}\n"]
    runs = []
    for c in rec.get("calls") or ():
        c = c if isinstance(c, dict) else CallRecord.of(c).as_dict()
        args, last = c.get("args") or [], runs[-1] if runs else None
        if (last and len(args) == 2 and last["c"]["call"] == c["call"] and len(last["c"]["args"]) == 2
                and last["c"]["args"][:1] == args[:1] and last["c"].get("who") == c.get("who")
                and not c.get("errno") and not last["c"].get("errno")):
            last["rest"].append(args[1])
            last["ms"] += c.get("ms") or 0.0
        else:
            runs.append({"c": c, "rest": [args[1]] if len(args) == 2 else None, "ms": c.get("ms") or 0.0})
    said = set()
    for run in runs:
        c, rest = run["c"], run["rest"]
        if rest and len(rest) > 1:
            text = f"{c['call']}({c['args'][0]!r}, {{{', '.join(map(str, rest))}}})  × {len(rest)}"
        else:
            text = f"{c['call']}({', '.join(map(repr, c.get('args') or []))})"
        who = f"{c.get('who') or '?'}[{c.get('pid') or '?'}]"
        end = f"  = {c['errno']}" if c.get("errno") else f"  = {c['ret']}" if c.get("ret") else ""
        ms = f"{run['ms']:8.3f} ms" if c.get("ms") is not None else " " * 11
        lines.append(f"  {who:<15} {ms}  {text}{end}\n")
        # once in the phase for the calls it explains, even if another process's calls come
        # between them (the runtime makes the cgroup dirs while init mounts)
        if c.get("note") and c["note"] not in said:
            lines.append(f"  {'':<15} {'':11}    ^ {c['note']}\n")
            said.add(c["note"])
    return "".join(lines)
