"""The runc-compatible command line. Each verb is a thin function over mrunc.api (create, exec
and run: over the functions api's names, see do_create, do_exec, do_run; start, state, kill,
delete, list, pause, resume: over mrunc.lifecycle, where api has them from). Here: the parser
and the verbs engines run for every container; the others (spec, features, update, ps, doctor,
export…) are in mrunc.moreverbs, loaded only when one of them runs.

Global flags come before the verb, as with runc:
    mrunc [--root DIR] [--log FILE] [--log-format text|json] [--debug] [--systemd-cgroup] VERB ...
Errors are one line on stderr (and a {"level":"error","msg":…} line in --log with
--log-format json, which is where containerd and podman read them), and exit status 1.
"""
import posix as os  # os's C module: the same calls, without os's ≈ 1 ms import (mrunc.paths)
import sys

# fastjson (and with it _json, a shared library: ≈ 0.3 ms to load) is imported where JSON is
# read or written: not by the verbs that only read state.json and print a state (mrunc.plainjson),
# nor `--version`.
from . import OCI_VERSION, __version__


class _Log:
    """runc-style logging: text to stderr, or JSON lines to --log for the engines to parse."""

    def __init__(self, path=None, fmt="text", debug=False):
        self.path, self.fmt, self.debug_on = path, fmt, debug

    def write(self, level, msg):
        if self.path:
            import time
            from . import fastjson
            t = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            line = (fastjson.dumps({"level": level, "msg": msg, "time": t}) if self.fmt == "json"
                    else f'time="{t}" level={level} msg="{msg}"')
            try:
                with open(self.path, "a") as f:
                    f.write(line + "\n")
            except OSError:
                pass

    def error(self, msg):
        self.write("error", msg)
        sys.stderr.write(f"mrunc: {msg}\n")
        sys.stderr.flush()

    def warn(self, msg):
        self.write("warning", msg)
        sys.stderr.write(f"mrunc: warning: {msg}\n")

    def debug(self, msg):
        if self.debug_on:
            self.write("debug", msg)
            if not self.path:
                sys.stderr.write(f"mrunc: debug: {msg}\n")


class _Cmd:
    """One command's flags and positionals, declared argparse-style (add_argument) — a small
    parser of our own: argparse costs ~10 ms to import and build, a sixth of a container's start.

    Supported: flags with a value (`--f v`, `--f=v`), `action="store_true"`, `action="append"`
    (repeatable: a list of the values in order, None when the flag is absent — as argparse),
    `default`, `type`, `choices`, `help`; positionals with `nargs` None, "?" or "..." (the rest of
    the line, as argparse.REMAINDER).
    """

    def __init__(self, name, help_="", more_help=None):
        self.name, self.help, self.more_help = name, help_, more_help
        self.flags, self.positionals, self.defaults = {}, [], {}

    def add_argument(self, *names, action=None, default=None, type=None, choices=None, help="",
                     nargs=None):
        if names[0].startswith("-"):
            dest = max(names, key=len).lstrip("-").replace("-", "_")
            opt = {"dest": dest, "bool": action == "store_true", "type": type, "choices": choices,
                   "help": help, "names": names, "append": action == "append"}
            for n in names:
                self.flags[n] = opt
            self.defaults[dest] = False if action == "store_true" else default
        else:
            self.positionals.append({"dest": names[0], "nargs": nargs, "help": help})
            self.defaults[names[0]] = [] if nargs == "..." else default
        return self

    def usage(self):
        prog = "mrunc" + ("" if self.name == "mrunc" else " " + self.name)
        pos = " ".join(p["dest"].upper() if p["nargs"] is None else f"[{p['dest'].upper()}...]"
                       for p in self.positionals)
        if self.name == "mrunc":
            pos = "COMMAND [flags] [ARGS]"
        more = self.more_help() if self.more_help else ""    # built only when asked for
        lines = [f"usage: {prog} [flags] {pos}".rstrip(), "", self.help + more, ""]
        seen = set()
        for opt in self.flags.values():
            if id(opt) not in seen:
                seen.add(id(opt))
                arg = "" if opt["bool"] else " " + (("{" + ",".join(opt["choices"]) + "}")
                                                     if opt["choices"] else "VALUE")
                lines.append(f"  {', '.join(opt['names'])}{arg}\n        {opt['help']}")
        return "\n".join(lines) + "\n"

    def parse(self, args, ns, stop_at_word=False):
        """Fill `ns` from `args`; return the unparsed rest when stop_at_word (the verb follows)."""
        where = "" if self.name == "mrunc" else f"{self.name}: "
        vars(ns).update({k: v for k, v in self.defaults.items() if k not in vars(ns)})
        pos, i = list(self.positionals), 0
        while i < len(args):
            arg = args[i]
            i += 1
            if arg in ("-h", "--help"):
                sys.stdout.write(self.usage())
                raise SystemExit(0)
            if arg.startswith("-") and arg != "-" and not (pos and pos[0]["nargs"] == "..." and
                                                           getattr(ns, pos[0]["dest"])):
                name, eq, value = arg.partition("=")
                opt = self.flags.get(name)
                if opt is None:
                    raise _error(f"{where}unrecognized flag {name}")
                if opt["bool"]:
                    setattr(ns, opt["dest"], True)
                    continue
                if not eq:
                    if i >= len(args):
                        raise _error(f"{where}{name}: needs a value")
                    value, i = args[i], i + 1
                value = self._convert(opt, name, value, where)
                if opt["append"]:
                    value = (getattr(ns, opt["dest"]) or []) + [value]
                setattr(ns, opt["dest"], value)
            elif stop_at_word:
                return args[i - 1:]
            elif not pos:
                raise _error(f"{where}unexpected argument {arg!r}")
            elif pos[0]["nargs"] == "...":
                getattr(ns, pos[0]["dest"]).append(arg)
            else:
                setattr(ns, pos.pop(0)["dest"], arg)
        missing = [p["dest"] for p in pos if p["nargs"] is None]
        if missing:
            raise _error(f"{where}missing argument: {' '.join(missing)}")
        return []

    @staticmethod
    def _convert(opt, name, value, where):
        if opt["choices"] and value not in opt["choices"]:
            raise _error(f"{where}{name}: invalid choice {value!r} (choose from "
                             f"{', '.join(opt['choices'])})")
        if opt["type"] is not None:
            try:
                return opt["type"](value)
            except ValueError:
                raise _error(f"{where}{name}: invalid value {value!r}") from None
        return value


def _error(msg, kind="UsageError"):
    """An error of mrunc.errors (a bad command line: UsageError), imported when there is one to
    raise: the verbs that act on containers import it later, from the code cache (installed once
    the line is parsed), and `--version` not at all."""
    from . import errors
    return getattr(errors, kind)(msg)


class _Args:
    """The parsed command line: one attribute per flag and positional (argparse's Namespace)."""


class _Undeclared:
    """Stands for a verb not being run: its flags are not declared (see _commands)."""

    def add_argument(self, *names, **kw):
        return self


_UNDECLARED = _Undeclared()


def parse_args(argv):
    """Global flags, then the verb, then the verb's flags and arguments — as runc reads them.
    Only the verb being run has its flags declared: declaring all ~30 verbs' costs ~0.5 ms,
    on every command."""
    ns = _Args()
    rest = _global_parser().parse(argv, ns, stop_at_word=True)
    ns.verb = rest[0] if rest else None
    if ns.verb is not None:
        cmds = _commands(only=ns.verb)
        if ns.verb not in cmds:
            raise _error(f"unknown command {ns.verb!r} (invalid choice; commands: {', '.join(cmds)})")
        cmds[ns.verb].parse(rest[1:], ns)
    return ns


def _global_parser():
    """The flags before the verb; its --help lists the verbs."""
    def commands():
        return "\n\ncommands:\n" + "\n".join(f"  {n:<10} {c.help}" for n, c in _commands().items())
    p = _Cmd("mrunc", "An OCI container runtime in Python, compatible with runc.", commands)
    p.add_argument("--root", default=None, help="state directory (default /run/mrunc; not root: $XDG_RUNTIME_DIR/mrunc, else ~/.local/state/mrunc)")
    p.add_argument("--log", default=None, help="log file (default: stderr only)")
    p.add_argument("--log-format", default="text", choices=["text", "json"])
    p.add_argument("--debug", action="store_true")
    p.add_argument("--systemd-cgroup", action="store_true", help="use systemd to manage cgroups")
    p.add_argument("--rootless", default="auto", choices=["true", "false", "auto"])
    p.add_argument("-v", "--version", action="store_true")
    return p


def _commands(only=None):
    """{verb: _Cmd}, declared; with `only`, the other verbs get their name alone (their help
    string: no _Cmd is made for them)."""
    cmds = {}

    def cmd(name, help_):
        if only not in (None, name):
            cmds[name] = help_
            return _UNDECLARED
        cmds[name] = _Cmd(name, help_)
        return cmds[name]

    def create_flags(s):
        s.add_argument("id")
        s.add_argument("-b", "--bundle", default=".", help="bundle directory (default: current)")
        s.add_argument("--console-socket", help="unix socket to send the pty master to")
        s.add_argument("--pid-file", help="file to write the container's init pid to")
        s.add_argument("--no-pivot", action="store_true", help="use MS_MOVE+chroot, not pivot_root")
        s.add_argument("--no-new-keyring", action="store_true", help="accepted for runc compatibility")
        s.add_argument("--preserve-fds", type=int, default=0, help="pass fds 3..3+N-1 to the container")
        s.add_argument("--trace", action="store_true", help="print each phase, its time and kernel calls")
        s.add_argument("--step-fd", type=int, help="stepping mode: report phases on this fd, "
                       "wait for a 'continue' line after each")

    def more(name, help_):
        """A verb of mrunc.moreverbs: its flags are declared there, only when it runs."""
        s = cmd(name, help_)
        if only == name:
            from . import moreverbs
            moreverbs.flags(name, s)

    more("spec", "write a default config.json")
    create_flags(cmd("create", "create a container (its program waits for start)"))
    s = cmd("run", "create and start a container, wait for it (unless -d)")
    create_flags(s)
    s.add_argument("-d", "--detach", action="store_true")
    s.add_argument("--keep", action="store_true", help="do not delete the container after it exits")
    s.add_argument("--no-subreaper", action="store_true", help="accepted for runc compatibility")
    s.add_argument("--network", help="a lab network attachment (JSON, from the sandbox): wire the "
                   "container to it between create and start")
    cmd("start", "start a created container").add_argument("id")
    cmd("state", "print a container's state as JSON").add_argument("id")
    s = cmd("kill", "send a signal to a container's init (default SIGTERM)")
    s.add_argument("-a", "--all", action="store_true", help="signal every process in the container's cgroup")
    s.add_argument("id")
    s.add_argument("signal", nargs="?", default="SIGTERM")
    more("update", "change the resource limits of a running container")
    cmd("pause", "freeze every process of a container").add_argument("id")
    cmd("resume", "thaw a paused container").add_argument("id")
    more("events", "print stats every --interval, and OOM events, until the container stops")
    more("ps", "list the processes of a container: ps [-f table|json] ID [ps options]")
    _exec_verb(cmd)
    s = cmd("delete", "delete a stopped (or created) container")
    s.add_argument("-f", "--force", action="store_true", help="kill it first if it is running")
    s.add_argument("id")
    s = cmd("list", "list containers")
    s.add_argument("-f", "--format", default="table", choices=["table", "json"])
    s.add_argument("-q", "--quiet", action="store_true")
    more("features", "print the OCI features document")
    more("kernel", "install the Jupyter kernel \"Python 3 (mrunc)\": kernel install "
                   "[--user|--sys-prefix|--prefix DIR]")
    more("doctor", "check this host for (rootless) containers and their limits; each failing "
                   "line says the fix")
    more("network", "lab networks (the sandbox's): network up|down|show PLAN, network sweep DIR")
    more("export", "run a notebook and write it as HTML (and reveal.js slides) whose widgets "
                   "show their state without a kernel: export NOTEBOOK [--out DIR] [--slides] [--ipynb]")
    return cmds


# ---------------------------------------------------------------- verbs

def _create_kw(a, log):
    from .process.parent import Events
    if a.preserve_fds < 0:
        from .errors import UsageError
        raise UsageError("--preserve-fds: must be >= 0")
    _check_preserved(a.preserve_fds)
    trace = sys.stderr if a.trace else (_DebugTrace(log) if a.debug else None)
    return dict(pid_file=a.pid_file, console_socket=a.console_socket, no_pivot=a.no_pivot,
                preserve_fds=a.preserve_fds, events=Events(trace=trace, step_fd=a.step_fd))


def _check_preserved(n):
    """--preserve-fds N hands fds 3..N+2 to the container. Each must have come from our caller:
    one that was not passed in would later be one of *our* fds (exec.fifo's write end…), handed
    to the container by mistake (runc#5474). Nothing of ours is open below 3 + N at this point
    (what codecache and cgroups.warm keep open is above)."""
    for fd in range(3, 3 + n):
        try:
            os.fstat(fd)
        except OSError:
            from .errors import UsageError
            raise UsageError(f"--preserve-fds {n}: fd {fd} was not passed to mrunc") from None


class _DebugTrace:
    """--debug without --trace: the phase trace goes to the log as debug lines."""

    def __init__(self, log):
        self.log = log

    def write(self, text):
        for line in text.splitlines():
            self.log.debug(line.strip())

    def flush(self):
        pass


def do_create(a, log):
    # Straight to process.parent: api.create only names it for Python callers, and importing
    # mrunc.api would cost every engine's create ≈ 0.2 ms of CPU for nothing else.
    from .process.parent import create
    create(a.root, a.id, a.bundle, **_create_kw(a, log))


def do_run(a, log):
    from .oneshot import run    # not all of mrunc.api: as create, run needs none of its others
    return run(a.id, a.bundle, a.root, detach=a.detach, keep=a.keep, network=a.network,
               **_create_kw(a, log))


def do_start(a, log):
    from . import lifecycle
    lifecycle.start(a.id, a.root)


def do_state(a, log):
    # The state object straight from mrunc.state (as lifecycle.state has it): `state` changes
    # nothing, and the lifecycle's other operations would cost it their import (≈ 0.1 ms).
    from . import plainjson
    from .state import Container
    print(plainjson.dumps(Container.load(a.root, a.id).oci_state(), indent=2))


def do_kill(a, log):
    from . import lifecycle
    lifecycle.kill(a.id, a.signal, a.root, all=a.all)


def do_delete(a, log):
    from . import lifecycle
    try:
        lifecycle.delete(a.id, a.root, force=a.force, warn=log.warn)
    except Exception as e:
        from .errors import StateError  # (loaded by whoever raised it: none is, mostly)
        # delete --force of a container that does not exist is success for runc's callers
        if not (a.force and isinstance(e, StateError) and "does not exist" in str(e)):
            raise


def do_list(a, log):
    from . import lifecycle, plainjson
    states = lifecycle.list_containers(a.root)
    if a.quiet:
        for s in states:
            print(s["id"])
    elif a.format == "json":
        print(plainjson.dumps([dict(s, owner=_owner(a.root, s["id"])) for s in states] or None))
    else:
        rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
        rows += [(s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], _owner(a.root, s["id"]))
                 for s in states]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("   ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def _owner(root, cid):
    import pwd
    from . import paths
    try:
        uid = os.stat(paths.join(root, cid)).st_uid
        return pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return ""



def do_pause(a, log):
    from . import lifecycle
    lifecycle.pause(a.id, a.root)


def do_resume(a, log):
    from . import lifecycle
    lifecycle.resume(a.id, a.root)


# ---------------------------------------------------------------- exec

def _exec_verb(cmd):
    s = cmd("exec", "run a new process in a created or running container: exec [flags] ID "
                    "COMMAND [ARG...]")
    s.add_argument("-p", "--process", help="a process JSON file (config.json's process object); "
                   "then -t -e --cwd -u -g -c --no-new-privs are ignored, as by runc")
    s.add_argument("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    s.add_argument("-d", "--detach", action="store_true", help="do not wait for the process")
    s.add_argument("--pid-file", help="file to write the process's pid to")
    s.add_argument("--console-socket", help="unix socket to send the pty master to (with -d -t)")
    s.add_argument("-e", "--env", action="append", help="KEY=VALUE, added to the environment")
    s.add_argument("--cwd", help="working directory in the container")
    s.add_argument("-u", "--user", help="UID[:GID] (numbers)")
    s.add_argument("-g", "--additional-gids", action="append", type=int, help="a supplementary group")
    s.add_argument("-c", "--cap", action="append", help="add a capability to the bounding, "
                   "effective and permitted sets")
    s.add_argument("--no-new-privs", action="store_true", help="set no_new_privs")
    s.add_argument("--preserve-fds", type=int, default=0, help="pass fds 3..3+N-1 to the process")
    s.add_argument("--ignore-paused", action="store_true", help="exec even if the container is paused")
    s.add_argument("--apparmor", help="AppArmor profile (not supported by mrunc yet)")
    s.add_argument("--process-label", help="SELinux label (not supported by mrunc yet)")
    s.add_argument("id")
    s.add_argument("command", nargs="...")


def _read_process(path):
    from . import fastjson
    from .errors import SpecError
    try:
        with open(path, "rb") as f:
            process = fastjson.loads(f.read())
    except OSError as e:
        raise SpecError(f"--process {path}: {e.strerror}") from None
    except ValueError as e:
        raise SpecError(f"--process {path}: invalid JSON: {e}") from None
    return process


def do_exec(a, log):
    """As runc: any failure before the program runs is "exec failed: ..." and exit status 255,
    so that it is told apart from the program's own exit status."""
    from .errors import MruncError
    try:
        _check_preserved(a.preserve_fds)
        process = _read_process(a.process) if a.process else None
        if process is None and not a.command:
            raise MruncError("args must not be empty (exec [flags] ID COMMAND [ARG...])")
        # Straight to process.exec, as create to process.parent: not all of mrunc.api
        from .process.exec import exec_process
        rc = exec_process(a.root, a.id, a.command, process=process, detach=a.detach,
                          pid_file=a.pid_file, console_socket=a.console_socket,
                          preserve_fds=a.preserve_fds, ignore_paused=a.ignore_paused, tty=a.tty,
                          env=a.env, cwd=a.cwd, user=a.user, additional_gids=a.additional_gids,
                          caps=a.cap, no_new_privs=a.no_new_privs, apparmor=a.apparmor,
                          process_label=a.process_label)
    except MruncError as e:
        log.error(f"exec failed: {e}")
        _exit_if_program(255)
        return 255
    rc = 0 if a.detach else rc
    _exit_if_program(rc)
    return rc


def _exit_if_program(rc):
    """Every verb is on some engine's hot path (`podman exec`, Kubernetes probes, containerd's
    create/start/delete). Run as the mrunc program (the console script's or `python -m mrunc`'s
    __main__ calls our main), there is nothing left to do: skip the interpreter's teardown —
    freeing every module and object, ~4 ms. Called from Python (a test, a notebook), return."""
    if _run_as_program():
        if "mrunc.codecache" in sys.modules:    # installed by _main: it may have more to keep
            sys.modules["mrunc.codecache"].save()
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except (OSError, ValueError):
                pass
        os._exit(rc)


def _run_as_program():
    """__main__ calls our main: the launcher, `python -m mrunc`, or pip's script (via launcher)."""
    entry = getattr(sys.modules.get("__main__"), "main", None)
    launcher = sys.modules.get("mrunc.launcher")
    return entry is not None and (entry is main or entry is getattr(launcher, "main", None))


# The verbs whose code is here; the others' is in mrunc.moreverbs (see _verb).
VERBS = {"create": do_create, "run": do_run, "start": do_start, "state": do_state, "kill": do_kill,
         "delete": do_delete, "list": do_list, "pause": do_pause, "resume": do_resume,
         "exec": do_exec}


def _verb(name):
    if name in VERBS:
        return VERBS[name]
    from . import moreverbs
    return moreverbs.VERBS[name]


# Verbs that import and allocate much and are done in milliseconds: they run without the cyclic
# garbage collector. It runs whenever allocations outnumber frees by 700, and importing is just
# that (every function, class and constant stays), so it ran about ten times while create's
# modules were imported, each time walking every live object to find no garbage: a verb makes no
# reference cycles worth freeing (refcounting frees the rest at once). Off, it saves ≈ 1.4 ms of
# CPU on create. A stepped create or run waits for a person: not those. A foreground run or exec
# turns it back on once it waits for its container (process.foreground.stay); the clone child
# and init inherit it off and end in an execve. Not the other verbs, nor from the start (the
# launcher): they import little; off from the start saved `state` ≈ 0.2 ms of CPU in one
# interleaved run, while its peak RSS measured 0.1-0.2 MiB higher, next to runc's.
NO_GC_VERBS = {"create", "run", "exec"}

# Verbs whose modules' code is read from one file (mrunc.codecache): those that act on containers
# (create, run, exec import about forty of mrunc's modules, the others about ten).
CACHED_VERBS = NO_GC_VERBS | {"start", "state", "kill", "delete", "list", "pause", "resume"}

# Verbs that never touch the state root.
NO_STATE_VERBS = {"spec", "features", "kernel", "doctor", "network", "export"}


def _state_root(root, creates):
    """--root, or the caller's own default (mrunc.userdirs), checked before any use: a state dir
    another user made or can write is refused, so nobody acts on a state file someone else wrote."""
    from . import userdirs
    root = root or userdirs.default_root()
    if creates:
        return userdirs.ensure_private(root, mode=0o711)
    return userdirs.check_if_present(root)


def main(argv=None):
    """The mrunc command. Run as the program, it ends without the interpreter's teardown."""
    rc = _main(sys.argv[1:] if argv is None else argv)
    _exit_if_program(rc)
    return rc


def _main(argv):
    log = _Log()
    try:
        a = parse_args(argv)
        log = _Log(a.log, a.log_format, a.debug)
        if a.version:
            print(f"mrunc version {__version__}\nspec: {OCI_VERSION}\npython: {sys.version.split()[0]}")
            return 0
        if not a.verb:
            raise _error("no command given (try --help)", "MruncError")
        if a.systemd_cgroup:
            raise _error("--systemd-cgroup: the systemd cgroup driver is not supported "
                             "(use the default cgroupfs driver)", "MruncError")
        if a.verb in CACHED_VERBS and _run_as_program():
            from . import codecache     # what these verbs import, from one file (see there)
            codecache.install(a.verb, 3 + max(0, getattr(a, "preserve_fds", 0)))
        if a.verb in ("create", "run"):  # first: its grace period overlaps what follows
            from .cgroups import warm
            warm.start(3 + max(0, a.preserve_fds))
        if a.verb in NO_GC_VERBS and getattr(a, "step_fd", None) is None:
            import gc   # a built-in module, yet ≈ 40 µs to import: not for the short verbs
            gc.disable()
        if a.verb not in NO_STATE_VERBS:
            a.root = _state_root(a.root, creates=a.verb in ("create", "run"))
        rc = _verb(a.verb)(a, log)
        return rc or 0
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        from .errors import MruncError     # (see _error)
        if isinstance(e, MruncError):
            log.error(str(e))
            return 1
        if not isinstance(e, OSError) or log.debug_on:
            raise
        # an unexpected OS failure still reads as one line
        log.error(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
        return 1


if __name__ == "__main__":
    sys.exit(main())
