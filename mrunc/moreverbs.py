"""The verbs no engine runs for every container: spec, features, kernel, doctor, network,
export, update, events and ps — their flags and what each does. mrunc.cli imports this module
only when one of them runs, so the verbs an engine runs by the thousand (create, start, state,
kill, delete, exec…) do not load it: mrunc.cli's .pyc is 41 KiB instead of 64.
mrunc.cli keeps each verb's name and help (for `mrunc --help` and for naming an unknown verb).
"""
import os
import sys


def flags(verb, s):
    """Declare `verb`'s flags and positionals on `s` (mrunc.cli's parser for it)."""
    declare = FLAGS.get(verb)
    if declare is not None:
        declare(s)


# ---------------------------------------------------------------- spec, features

def _spec_flags(s):
    s.add_argument("-b", "--bundle", default=".")
    s.add_argument("--rootless", action="store_true")


def do_spec(a, log):
    import json
    from . import spec
    path = os.path.join(a.bundle, "config.json")
    if os.path.exists(path):
        from .errors import MruncError
        raise MruncError(f"{path}: file exists (remove it first)")
    with open(path, "w") as f:
        json.dump(spec.default_config(rootless=a.rootless), f, indent="\t")
        f.write("\n")


def do_features(a, log):
    import json
    from . import spec
    print(json.dumps(spec.features(), indent=2))



# ---------------------------------------------------------------- kernel (Jupyter)

def _kernel_flags(s):
    s.add_argument("action", help="install")
    s.add_argument("--user", action="store_true", help="into ~/.local/share/jupyter/kernels")
    s.add_argument("--sys-prefix", action="store_true", help="into this Python's prefix (default)")
    s.add_argument("--prefix", help="into DIR/share/jupyter/kernels")


def do_kernel(a, log):
    from .errors import MruncError, UsageError
    if a.action != "install":
        raise UsageError(f"kernel: unknown action {a.action!r} (kernel install [--user|--sys-prefix])")
    if sum(map(bool, (a.user, a.sys_prefix, a.prefix))) > 1:
        raise UsageError("kernel install: choose one of --user, --sys-prefix, --prefix")
    try:
        from . import kernelspec
        where = kernelspec.install(user=a.user, prefix=a.prefix)
    except ImportError as e:
        raise MruncError(f"kernel install: {e.name} is missing: pip install 'mrunc[notebook]'") from None
    except OSError as e:
        raise MruncError(f"kernel install: {e.strerror}: {e.filename}") from None
    print(f"installed kernelspec mrunc (Python 3 (mrunc)) in {where}")


def _doctor_flags(s):
    s.add_argument("--json", action="store_true", help="the report as JSON, for scripts")


def do_doctor(a, log):
    """Exit status 1 when something needed is missing (a FAIL line)."""
    from . import doctor
    checks = doctor.run_checks()
    print(doctor.report(checks, as_json=a.json))
    return 1 if any(c.status == "FAIL" for c in checks) else 0


def _network_flags(s):
    s.add_argument("action", help="up, down, show or sweep")
    s.add_argument("path", help="a lab plan (JSON) written by the sandbox; for sweep, its directory")


def do_network(a, log):
    from .network.commands import run
    return run(a.action, a.path)


def _export_flags(s):
    s.add_argument("notebook", help="the .ipynb to run")
    s.add_argument("--out", help="directory for the files written (default: export/ beside the "
                   "notebook)")
    s.add_argument("--slides", action="store_true", help="also write reveal.js slides")
    s.add_argument("--ipynb", action="store_true", help="also write the executed notebook, widgets "
                   "drawn (for GitHub, Jupyter Book / MyST without execution)")
    s.add_argument("--reveal-prefix", help="where the slides load reveal.js 4 from (default: the copy "
                   "written beside them in mrunc-assets/, which works offline)")
    s.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (default 600)")
    s.add_argument("--kernel", help="the kernel to run it in (default: the notebook's own, e.g. "
                   "python3; \"mrunc\" after `mrunc kernel install`)")


def do_export(a, log):
    """Only here: nbclient, nbconvert and the kernel machinery (the hot verbs never see them)."""
    import time
    from .errors import MruncError
    if "site" not in sys.modules:
        # The fast launcher starts Python without site (mrunc/launcher.py): no venv prefix, so
        # Jupyter would find neither nbconvert's templates nor the kernels. A slow verb anyway:
        # start again as a normal interpreter.
        os.execv(sys.executable, [sys.executable, "-m", "mrunc", *sys.argv[1:]])
    try:
        from .notebook.export import ExportError, export
        t0 = time.monotonic()
        paths = export(a.notebook, a.out, slides=a.slides, ipynb=a.ipynb, timeout=a.timeout,
                       kernel_name=a.kernel, reveal_prefix=a.reveal_prefix)
    except ImportError as e:
        raise MruncError(f"export: {e.name} is missing: pip install 'mrunc[notebook]'") from None
    except ExportError as e:
        raise MruncError(f"export: {e}") from None
    for path in paths:
        print(path)
    log.debug(f"export: {a.notebook} in {time.monotonic() - t0:.1f} s")



# ---------------------------------------------------------------- resource control verbs

def _update_flags(s):
    s.add_argument("-r", "--resources", help="a linux.resources JSON file, or - for stdin "
                   "(the other flags are then ignored)")
    for flag, help_ in _UPDATE_FLAGS:
        s.add_argument(flag, help=help_)
    s.add_argument("--cpu-shares", help="same as --cpu-share")
    s.add_argument("id")


def _events_flags(s):
    s.add_argument("--interval", default="5s", help="time between stats (Go duration: 5s, 500ms)")
    s.add_argument("--stats", action="store_true", help="print the stats once and exit")
    s.add_argument("id")


def _ps_flags(s):
    s.add_argument("-f", "--format", default="table", choices=["table", "json"])
    # The id, then whatever follows is for ps(1) (runc stops reading flags after the id).
    s.add_argument("args", nargs="...")


# (flag, help); runc's names. Sizes take units (100M), "-1" is unlimited.
_UPDATE_FLAGS = (
    ("--memory", "memory limit (bytes, or 100M, 1G; -1 unlimited)"),
    ("--memory-reservation", "memory soft limit"),
    ("--memory-swap", "memory+swap limit (-1 unlimited swap)"),
    ("--cpu-share", "CPU shares (relative weight)"),
    ("--cpu-quota", "CPU time per period, microseconds (-1 no limit)"),
    ("--cpu-period", "CPU CFS period, microseconds"),
    ("--cpu-burst", "CPU burst, microseconds"),
    ("--cpu-rt-period", "realtime period, microseconds (cgroup v1)"),
    ("--cpu-rt-runtime", "realtime runtime per period, microseconds (cgroup v1)"),
    ("--cpuset-cpus", "CPUs to use, e.g. 0-2,4"),
    ("--cpuset-mems", "memory nodes to use"),
    ("--cpu-idle", "1: SCHED_IDLE cgroup, 0: normal"),
    ("--pids-limit", "maximum number of processes (-1 unlimited)"),
    ("--blkio-weight", "block IO weight, 10-1000"),
    ("--kernel-memory", "obsolete, ignored"),
    ("--kernel-memory-tcp", "obsolete, ignored"),
    ("--l3-cache-schema", "Intel RDT L3 cache schema (not supported)"),
    ("--mem-bw-schema", "Intel RDT memory bandwidth schema (not supported)"),
)


def _int_flag(name, value, unsigned=False):
    from .errors import UsageError
    try:
        n = int(value, 10)
    except ValueError:
        n = None
    if n is None or (unsigned and n < 0):
        raise UsageError(f"update: invalid value for {name}: {value!r} "
                         f"(an {'unsigned ' if unsigned else ''}integer)")
    return n


def _update_resources(a, log):
    """The linux.resources object an update asks for, from --resources or from the flags."""
    from .cgroups.units import ram_in_bytes
    from .errors import MruncError, SpecError
    opt = lambda name: getattr(a, name.lstrip("-").replace("-", "_"), None)   # noqa: E731
    flags = [f for f, _ in _UPDATE_FLAGS if opt(f) is not None] + \
        (["--cpu-shares"] if opt("--cpu-shares") is not None else [])
    if a.resources:
        if flags:
            log.warn(f"update: --resources given, ignoring {' '.join(flags)}")
        where = "stdin" if a.resources == "-" else a.resources
        try:
            text = sys.stdin.read() if a.resources == "-" else open(a.resources).read()
        except OSError as e:
            raise MruncError(f"update --resources {where}: {e.strerror}") from None
        try:
            import json
            res = json.loads(text)
        except ValueError as e:
            raise SpecError(f"update --resources {where}: invalid JSON: {e}") from None
        if not isinstance(res, dict):
            raise SpecError(f"update --resources {where}: expected a linux.resources object")
        return res
    for f in ("--l3-cache-schema", "--mem-bw-schema"):
        if opt(f) is not None:
            raise MruncError(f"update {f}: Intel RDT is not supported by mrunc")
    for f in ("--kernel-memory", "--kernel-memory-tcp"):
        if opt(f) is not None:
            log.warn(f"Setting {f} is ignored and will be removed")
    mem, cpu, res = {}, {}, {}
    for f, key in (("--memory", "limit"), ("--memory-swap", "swap"),
                   ("--memory-reservation", "reservation")):
        if opt(f) is not None:
            mem[key] = -1 if opt(f).strip() == "-1" else ram_in_bytes(opt(f), f.lstrip("-"))
    shares = opt("--cpu-share") if opt("--cpu-share") is not None else opt("--cpu-shares")
    for value, key, unsigned in ((opt("--cpu-period"), "period", True), (shares, "shares", True),
                                 (opt("--cpu-burst"), "burst", True),
                                 (opt("--cpu-rt-period"), "realtimePeriod", True),
                                 (opt("--cpu-quota"), "quota", False),
                                 (opt("--cpu-rt-runtime"), "realtimeRuntime", False),
                                 (opt("--cpu-idle"), "idle", False)):
        if value is not None:
            cpu[key] = _int_flag(key, value, unsigned)
    for f, key in (("--cpuset-cpus", "cpus"), ("--cpuset-mems", "mems")):
        if opt(f):
            cpu[key] = opt(f)
    if mem:
        res["memory"] = mem
    if cpu:
        res["cpu"] = cpu
    if opt("--pids-limit") is not None:
        res["pids"] = {"limit": _int_flag("pids-limit", opt("--pids-limit"))}
    if opt("--blkio-weight") is not None:
        res["blockIO"] = {"weight": _int_flag("blkio-weight", opt("--blkio-weight"), True)}
    return res


def do_update(a, log):
    from . import api
    api.update(a.id, _update_resources(a, log), a.root, warn=log.warn)


def _emit(event):
    from . import fastjson
    sys.stdout.write(fastjson.dumps(event, compact=True) + "\n")
    sys.stdout.flush()


def do_events(a, log):
    from . import api
    from .cgroups.units import go_duration
    interval = go_duration(a.interval, "--interval")
    try:
        if a.stats:
            _emit(api.stats(a.id, a.root))
            return 0
        for event in api.events(a.id, a.root, interval=interval):
            _emit(event)
    except BrokenPipeError:     # the reader went away (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def do_ps(a, log):
    from . import api, fastjson
    from .errors import UsageError
    if not a.args:
        raise UsageError("ps: missing argument: id")
    cid, ps_args = a.args[0], a.args[1:]
    pids = api.processes(cid, a.root)
    if a.format == "json":
        print(fastjson.dumps(pids, compact=True))
        return 0
    for line in _ps_table(pids, ps_args):
        print(line)
    return 0


def _ps_table(pids, ps_args):
    """`ps -ef` (or ps with the given options) keeping the header and the container's lines,
    found by the PID column — runc's way. Without a ps program, a small table from /proc."""
    import shutil
    import subprocess
    from .errors import MruncError
    if shutil.which("ps") is None:
        if ps_args:
            raise MruncError("ps: no ps program on this host, so ps options cannot be used")
        return _proc_table(pids)
    p = subprocess.run(["ps", *(ps_args or ["-ef"])], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    lines = p.stdout.splitlines()
    if p.returncode != 0:
        raise MruncError(f"ps {' '.join(ps_args)}: exit status {p.returncode}: "
                         + " ".join(lines).strip())
    header = lines[0].split() if lines else []
    if "PID" not in header:
        raise MruncError("ps: couldn't find PID field in ps output")
    col, wanted = header.index("PID"), set(pids)
    out = [lines[0]]
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
            out.append(line)
    return out


def _proc_table(pids):
    import pwd
    rows = [("UID", "PID", "PPID", "STAT", "CMD")]
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        uid = int(status.get("Uid", "0").split()[0])
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        rows.append((user, str(pid), status.get("PPid", "").strip(),
                     status.get("State", "?").split()[0], cmd or f"[{status.get('Name', '').strip()}]"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return ["  ".join(v.ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4] for r in rows]


FLAGS = {"spec": _spec_flags, "kernel": _kernel_flags, "doctor": _doctor_flags,
         "network": _network_flags, "export": _export_flags, "update": _update_flags,
         "events": _events_flags, "ps": _ps_flags}

VERBS = {"spec": do_spec, "features": do_features, "kernel": do_kernel, "doctor": do_doctor,
         "network": do_network, "export": do_export, "update": do_update, "events": do_events,
         "ps": do_ps}
