"""Containers from Python: the API the notebook magics and widgets are built on.

    from mrunc.sandbox import Sandbox
    with Sandbox() as lab:
        lab.run("echo hello from $(hostname)", memory="64M")       # output streams, returns the status
        c = lab.start("sleep 1000", name="web", pids=20)           # a running container
        session = lab.step("echo hi; sleep 60", memory="32M")     # pause at every phase
        step = session.next()                                      # spec, clone, mount, ... exec

**Who forks.** A Jupyter kernel is a multi-threaded process: it must never fork, and it cannot
unshare a user namespace (EINVAL for a threaded caller). So the sandbox never makes a container
itself. Every container is made by a short-lived `mrunc` command, and one of those stays behind as
the container's parent: `mrunc run` is a *child subreaper*, so it waits for the container's init
and knows its exit status (as conmon or containerd's shim do for runc). The kernel only starts
that process and reads what it writes. Reading state (status, cgroup usage, /proc snapshots) is
plain file reading and is done in the kernel, which is cheap.

**Stepping.** `step()` runs `mrunc run --step-fd N` with one end of a socketpair as fd N: after each
phase the runtime writes one JSON line (`{"event": "phase-done", "phase": "clone", "ms": …,
"calls": […], "pid": …}`) and waits for `continue` (or `abort`). Between two phases the container's
init is paused, and `mrunc.snapshot` reads it from /proc. The last step is `start`: the runtime
releases init, which execs the program.

**Files.** A sandbox has a private state root (`--root`, default $MRUNC_LAB_ROOT or /run/mrunc-lab;
rootless: the user's own, $XDG_RUNTIME_DIR/mrunc-lab or ~/.local/state/mrunc-lab — see
mrunc.userdirs; both directories are checked, owner and mode, before every use) and, beside it, a
directory per container (`<root>.bundles/<name>`) with the generated config.json, the output log
and, unless the container is read-only, an overlay: the shared busybox rootfs as the lower layer,
the container's writes in an upper directory of its own — so containers never change the image,
as with docker. `close()` (also at exit, and for a `with` block) deletes every container the
sandbox made and those directories; a sandbox that finds the leftovers of a dead one cleans them.
"""
from __future__ import annotations

import atexit
import copy
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field

from . import userdirs
from .errors import MruncError

PHASES = ("spec", "clone", "mount", "pivot_root", "cgroup", "security", "exec")
FOREVER = "2147483647"                  # seconds; busybox sleep has no "infinity"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SandboxError(MruncError):
    """A sandbox operation failed; str() is the one line to show."""


class Unavailable(SandboxError):
    """Containers cannot be made from this process (not root, no rootfs)."""


def check_available(rootfs=None) -> bool:
    """True if containers can be made as root here, False if only rootless ones (not root, but
    user namespaces allowed); raise Unavailable, saying why, when none can."""
    path = rootfs or busybox_rootfs()
    if not os.path.lexists(os.path.join(path, "bin", "sh")):
        raise Unavailable(f"no root filesystem at {path} (bin/sh missing): run `make rootfs`")
    if os.geteuid() == 0:
        return True
    why = _userns_unavailable()
    if why:
        raise Unavailable(
            f"containers need root here, and this kernel runs as uid {os.geteuid()}: creating "
            "namespaces, mounts and cgroups for another process needs CAP_SYS_ADMIN, and the "
            f"rootless way (a user namespace of your own) is closed: {why}. Start JupyterLab as "
            "root (`sudo make lab`).")
    return False


def _userns_unavailable():
    """Why an unprivileged user cannot make a user namespace here (None: they can)."""
    for path, bad in (("/proc/sys/kernel/unprivileged_userns_clone", "0"),
                      ("/proc/sys/user/max_user_namespaces", "0")):
        try:
            with open(path) as f:
                if f.read().strip() == bad:
                    return f"{path} is {bad}"
        except OSError:
            pass
    return None


ROOTLESS_NOTE = ("running rootless (uid {uid}, a user namespace maps it to root inside): the root "
                 "filesystem is read-only with a tmpfs on /tmp (an overlay needs root), only "
                 "uid 0 exists inside; snapshots cannot enter the container's "
                 "namespaces or read its init before exec (that needs CAP_SYS_ADMIN / "
                 "CAP_SYS_PTRACE), so some panels stay empty.")


def busybox_rootfs():
    """The bundled busybox rootfs (`make rootfs`), or $MRUNC_ROOTFS."""
    return os.environ.get("MRUNC_ROOTFS") or os.path.join(REPO, "rootfs", "busybox")


def mrunc_command():
    """How to run the CLI: the `mrunc` script beside this interpreter, else `python -m mrunc`."""
    exe = os.path.join(os.path.dirname(sys.executable), "mrunc")
    if os.access(exe, os.X_OK):
        return [exe]
    return [sys.executable, "-m", "mrunc"]


# ---- options -> config.json -----------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.I)


def parse_size(value) -> int:
    """Bytes from 67108864, "64M", "64MiB", "1.5g", "512k" (binary units, as docker)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise SandboxError(f"memory: invalid size {value!r} (bytes, or a number with k, M, G: 64M)")
        n = int(float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower()))
    if n <= 0:
        raise SandboxError(f"memory: must be positive, not {value!r}")
    return n


def cap_name(name) -> str:
    n = str(name).strip().upper()
    return n if n.startswith("CAP_") or n == "ALL" else "CAP_" + n


def _all_caps():
    from .security.capabilities import CAPABILITIES
    return sorted(CAPABILITIES, key=CAPABILITIES.get)


def _lookup(rootfs, file, name):
    """uid/gid of `name` in the rootfs's /etc/passwd or /etc/group."""
    try:
        with open(os.path.join(rootfs, "etc", file)) as f:
            for line in f:
                fields = line.strip().split(":")
                if len(fields) > 3 and fields[0] == name:
                    return int(fields[2]), int(fields[3]) if file == "passwd" else None
    except OSError:
        pass
    raise SandboxError(f"user: no {'user' if file == 'passwd' else 'group'} {name!r} in the "
                       f"container's /etc/{file}")


def parse_user(user, rootfs):
    """{"uid", "gid"} from 1000, "1000:1000", "mrunc", "mrunc:lab"."""
    name, _, group = str(user).partition(":")
    if name.isdigit():
        uid, gid = int(name), int(name)
    else:
        uid, gid = _lookup(rootfs, "passwd", name)
    if group:
        gid = int(group) if group.isdigit() else _lookup(rootfs, "group", group)[0]
    return {"uid": uid, "gid": gid}


def build_config(args, *, rootfs=None, base=None, name=None, memory=None, cpus=None, pids=None,
                 hostname=None, readonly=False, user=None, cap_add=(), cap_drop=(), network="none",
                 env=None, cwd=None, cgroupns=True, mounts=()) -> dict:
    """The config.json for `args` on `rootfs`, from runc's default config (or `base`) + options.

    memory -> linux.resources.memory.limit     cpus -> cpu.quota / cpu.period (100 ms periods)
    pids   -> linux.resources.pids.limit       network "none": own network namespace, only lo;
    "host": no network namespace               cap_add/cap_drop -> every capability set listed
    cgroupns -> a cgroup namespace, so the container sees its own cgroup as "/" (docker's default
    on cgroup v2).                      mounts -> appended to mounts[] (OCI entries: volumes are
    {"destination", "type": "bind", "source", "options": ["rbind", "ro", ...]}).
    """
    from . import spec
    cfg = copy.deepcopy(base) if base is not None else spec.default_config()
    rootfs = rootfs or busybox_rootfs()
    proc = cfg.setdefault("process", {})
    proc["terminal"] = False            # no tty in a notebook: output goes to pipes
    if args is not None:
        proc["args"] = [str(a) for a in args]
    cfg["root"] = {"path": rootfs, "readonly": bool(readonly)}
    if hostname or name:
        cfg["hostname"] = hostname or name
    linux = cfg.setdefault("linux", {})
    res = linux.setdefault("resources", {})
    if memory is not None:
        res.setdefault("memory", {})["limit"] = parse_size(memory)
    if cpus is not None:
        try:
            c = float(cpus)
        except (TypeError, ValueError):
            raise SandboxError(f"cpus: not a number: {cpus!r}") from None
        if c <= 0:
            raise SandboxError(f"cpus: must be positive, not {cpus!r}")
        res["cpu"] = {**res.get("cpu", {}), "quota": max(1000, round(c * 100000)), "period": 100000}
    if pids is not None:
        try:
            p = int(pids)
        except (TypeError, ValueError):
            raise SandboxError(f"pids: not a whole number: {pids!r}") from None
        if p <= 0:
            raise SandboxError(f"pids: must be positive, not {pids!r}")
        res["pids"] = {"limit": p}
    namespaces = linux.setdefault("namespaces", [])
    if network not in ("none", "host"):
        raise SandboxError(f"network: {network!r} is not supported (none, host)")
    if network == "host":
        namespaces[:] = [n for n in namespaces if n.get("type") != "network"]
    elif not any(n.get("type") == "network" for n in namespaces):
        namespaces.append({"type": "network"})
    if cgroupns and not any(n.get("type") == "cgroup" for n in namespaces):
        namespaces.append({"type": "cgroup"})
    if user is not None:
        proc["user"] = parse_user(user, rootfs)
    _edit_caps(proc, cap_add, cap_drop)
    if env:
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        merged = dict(e.split("=", 1) for e in proc.get("env", []) if "=" in e)
        merged.update({str(k): str(v) for k, v in items})
        proc["env"] = [f"{k}={v}" for k, v in merged.items()]
    if cwd:
        if not str(cwd).startswith("/"):
            raise SandboxError(f"cwd: must be an absolute path, not {cwd!r}")
        proc["cwd"] = str(cwd)
    if mounts:
        cfg.setdefault("mounts", []).extend(copy.deepcopy(list(mounts)))
    return cfg


def _edit_caps(proc, add, drop):
    if isinstance(add, str):
        add = [add]
    if isinstance(drop, str):
        drop = [drop]
    add, drop = [cap_name(c) for c in add or ()], [cap_name(c) for c in drop or ()]
    if not add and not drop:
        return
    known = _all_caps()
    for c in add + drop:
        if c != "ALL" and c not in known:
            raise SandboxError(f"unknown capability {c} (known: CAP_CHOWN … {known[-1]})")
    caps = proc.setdefault("capabilities", {})
    for which in ("bounding", "effective", "permitted", "ambient"):
        have = list(caps.get(which, []))
        if "ALL" in drop:
            have = []
        have = [c for c in have if c not in drop]
        for c in (known if "ALL" in add else add):
            if c not in have and c not in drop:
                have.append(c)
        caps[which] = have


# ---- results ---------------------------------------------------------------------------------------

@dataclass
class RunResult:
    """What a foreground run left: its exit status, its output, and its cgroup's last numbers."""
    name: str
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    ms: float = 0.0
    oom_killed: bool = False
    memory_peak: int | None = None
    memory_limit: int | None = None

    @property
    def ok(self):
        return self.exit_code == 0

    def describe(self) -> str:
        """One line about how it ended, for a non-zero status."""
        return describe_exit(self.exit_code, self.oom_killed, self.memory_limit, self.memory_peak)


def describe_exit(code, oom_killed=False, limit=None, peak=None):
    if code is None:
        return "still running"
    if code == 0:
        return "exited with status 0"
    if oom_killed:
        from .snapshot import human_bytes
        return (f"killed by the kernel's OOM killer (status {code}): the cgroup's memory limit is "
                f"{human_bytes(limit)}" + (f", peak usage {human_bytes(peak)}" if peak else ""))
    if code > 128 and code - 128 < 65:
        try:
            sig = signal.Signals(code - 128).name
        except ValueError:
            sig = f"signal {code - 128}"
        return f"killed by {sig} (status {code})"
    return f"exited with status {code}"


@dataclass
class Step:
    """One phase the runtime ran while we watched (see StepSession)."""
    phase: str
    ms: float = 0.0
    calls: list = field(default_factory=list)
    pid: int | None = None
    snapshot: object = None             # mrunc.snapshot.Snapshot
    diff: object = None                 # mrunc.snapshot.Diff vs the previous step's snapshot
    error: str | None = None            # the runtime's message when the phase failed
    network: dict | None = None         # the network step: {"container": view, "lab": view}

    @property
    def event(self) -> dict:
        """The runtime's report, as render.page takes it."""
        ev = {"phase": self.phase, "ms": self.ms, "calls": self.calls, "pid": self.pid}
        if self.network:
            ev["network"] = self.network
        return ev

    def summary(self) -> list[str]:
        return self.diff.summary() if self.diff is not None else []


# ---- the sandbox -------------------------------------------------------------------------------------

_OPEN = weakref.WeakSet()


@atexit.register
def _close_all():
    for sb in list(_OPEN):
        try:
            sb.close()
        except Exception:  # noqa: BLE001 — at exit, clean what can be cleaned
            pass


def _hook_kernel_shutdown():
    """In a Jupyter kernel, close the sandboxes when the kernel is asked to shut down.

    atexit is too late there: on a shutdown request ipykernel first SIGTERMs, then SIGKILLs, every
    child of the kernel — our shims — and Jupyter kills the kernel itself a few seconds later, so
    containers would be left running. The kernel's do_shutdown runs before all that."""
    ipython = sys.modules.get("IPython")
    kernel = getattr(ipython.get_ipython(), "kernel", None) if ipython else None
    if kernel is None or getattr(kernel, "_mrunc_shutdown_hook", False):
        return
    original = kernel.do_shutdown

    def do_shutdown(restart):
        _close_all()
        return original(restart)
    kernel.do_shutdown = do_shutdown
    kernel._mrunc_shutdown_hook = True


class Sandbox:
    """A set of containers with a private state root, deleted on close() (and at exit)."""

    def __init__(self, root=None, rootfs=None, mrunc=None, check=True):
        self.rootfs = rootfs or busybox_rootfs()
        self.rootless = not check_available(self.rootfs) if check else os.geteuid() != 0
        self.root = root or os.environ.get("MRUNC_LAB_ROOT") or _guard(userdirs.default_root, "mrunc-lab")
        self.work = self.root.rstrip("/") + ".bundles"
        self._check_dirs()
        self.mrunc = list(mrunc) if mrunc else mrunc_command()
        self.containers: dict[str, Container] = {}
        self.sessions = weakref.WeakSet()
        self._cleaners = []             # threads unmounting and removing bundle dirs
        self.closed = False
        self._no_cgroup = None
        self._networks = None
        # Part of every container's cgroup name: runc's default cgroup is /<id>, and two sandboxes
        # (two students, two kernels) may both call a container "web".
        self.tag = secrets.token_hex(4)
        # What does not work here, and why, in words (the magics show them once): rootless, what
        # a user namespace cannot do; then `mrunc doctor`'s problems (no limits, and the fix).
        self.notes = [ROOTLESS_NOTE.format(uid=os.geteuid())] if self.rootless else []
        if check:
            self.no_cgroup              # rootless: the delegated subtree is made ready first
            from . import doctor
            self.notes += doctor.problems()
            if self.no_cgroup:          # said here once: the runtime need not say it per container
                _mark_warned()
            self.sweep()
        _OPEN.add(self)
        _hook_kernel_shutdown()
        from . import labwatch
        if check and labwatch.in_kernel():  # a kernel can die without closing us: a watchdog cleans
            labwatch.start(self.root)

    @property
    def no_cgroup(self):
        """Why containers get no cgroup (so no limits) here, or None. Rootless, the first call
        makes our delegated cgroup v2 subtree ready (mrunc.cgroups.delegation): this kernel moves
        into its leaf and the controllers are enabled, so containers land beside it."""
        if self._no_cgroup is None:
            self._no_cgroup = ""
            if self.rootless:
                self._no_cgroup = _delegated_subtree_problem() or ""
        return self._no_cgroup or None

    def __repr__(self):
        return f"<Sandbox root={self.root} containers={list(self.containers)}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- running things --
    def cli(self, *args, timeout=60, check=True):
        """`mrunc --root <ours> ARGS` -> CompletedProcess (text). check: raise its one-line error."""
        p = subprocess.run([*self.mrunc, "--root", self.root, *args], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise SandboxError(_cli_error(p.stderr, f"mrunc {args[0]} failed ({p.returncode})"))
        return p

    def run(self, script=None, *, args=None, name=None, on_output=None, trace=False, keep=False,
            **opts) -> RunResult:
        """Run a shell script (or `args`) in a fresh container, in the foreground; return how it
        ended. `on_output(stream, text)` gets the output as it comes ("stdout"/"stderr").
        keep=True: when the script is done the container stays, running, under its name."""
        r = self.stream(script, args=args, name=name, trace=trace, keep=keep, **opts)
        for stream, text in r:
            if on_output is not None:
                on_output(stream, text)
        return r.result

    def stream(self, script=None, *, args=None, name=None, trace=False, keep=False, watch=False,
               **opts) -> Run:
        """Like run(), as an iterator of (stream, text); `.result` once it is exhausted.
        watch=True: `.watch` is a mrunc.watch.Watch of it, marked before it starts."""
        c = self._prepare(script, args, name, opts)
        w = self._watch(c, unborn=True) if watch else None
        try:
            r = Run(c, trace=trace, keep=keep)
        except BaseException:
            if w is not None:
                w.close()
            raise
        r.watch = w
        if w is not None:
            w.start()
        return r

    def start(self, script=None, *, args=None, name=None, **opts) -> Container:
        """A container running in the background; `script` defaults to sleeping forever."""
        if script is None and args is None:
            args = ["sleep", FOREVER]
        c = self._prepare(script, args, name, opts)
        c._spawn()
        return c

    def create(self, script=None, *, args=None, name=None, **opts) -> Container:
        """A container in the `created` state (`mrunc create`): its init waits for start()."""
        if script is None and args is None:
            args = ["sleep", FOREVER]
        c = self._prepare(script, args, name, opts)
        c._create()
        return c

    def step(self, script=None, *, args=None, name=None, **opts) -> StepSession:
        """A StepSession: the container is made one phase per next()."""
        if script is None and args is None:
            args = ["sleep", FOREVER]
        c = self._prepare(script, args, name, opts)
        s = StepSession(c)
        self.sessions.add(s)
        return s

    # -- looking --
    def get(self, name) -> Container:
        if name in self.containers:
            return self.containers[name]
        from .state import Container as State
        from .errors import StateError
        self._check_dirs()
        try:
            State.load(self.root, name)
        except (StateError, MruncError):
            raise SandboxError(f"no container named {name!r} in {self.root}") from None
        # Made elsewhere (another kernel, the CLI): usable, but not ours to delete at close().
        return Container(self, name, bundle=None, config=None)

    def watch(self, container):
        """Which files a container (or the name of one) opens, executes and modifies, live: a
        mrunc.watch.Watch (`.events`, `.filter()`, `.counts()`, `.close()`); in a notebook it
        shows as a filterable table. Root only: elsewhere it stays empty and says why, once."""
        if isinstance(container, str):
            container = self.get(container)
        elif not isinstance(container, Container):
            raise SandboxError(f"watch: expected a container or its name, not {container!r}")
        return self._watch(container)

    def _watch(self, c, unborn=False):
        from .watch import Watch, WatchError
        try:
            return Watch(c, start=not unborn, unborn=unborn)
        except WatchError as e:
            if unborn:
                c._cleanup()
            raise SandboxError(str(e)) from None

    def ps(self) -> list[dict]:
        """A row per container in our root: name, status, pid, memory use/limit, exit code."""
        from .state import Container as State
        self._check_dirs()
        rows = []
        for st in State.all(self.root):
            ours = self.containers.get(st.id)
            status = st.status()
            row = {"name": st.id, "status": status, "pid": st.pid if status != "stopped" else 0,
                   "created": st.data.get("created", ""), "memory": None, "limit": None,
                   "exit_code": ours.exit_code if ours else None,
                   "command": ours.command if ours else
                   " ".join((st.config.get("process") or {}).get("args") or [])}
            try:
                mgr = st.cgroup()
                mem = mgr.stats()["memory"] if mgr else {}
                row["memory"], row["limit"] = mem.get("current"), mem.get("limit")
            except Exception:  # noqa: BLE001 — a cgroup removed under us
                pass
            rows.append(row)
        return rows

    def remove(self, name, force=True):
        self.get(name).delete(force=force)

    # -- lab networks (mrunc.network) --
    @property
    def networks(self):
        """The sandbox's lab networks (mrunc.network.labs.Networks)."""
        if self._networks is None:
            from .network.labs import Networks
            self._networks = Networks(self)
        return self._networks

    def network(self, name, subnet=None, *, delay=None, jitter=None, loss=None, rate=None,
                mtu=1500, nat=False) -> dict:
        """A lab network: its own namespace with a bridge (the gateway is the subnet's first
        address); containers join it with start(..., network=name). delay/jitter/loss/rate shape
        every container's link (tc netem): "20ms", "5ms", "1%", "10mbit"."""
        if self.closed:
            raise SandboxError("this sandbox is closed")
        return _net(self.networks.create, name, subnet, delay=delay, jitter=jitter, loss=loss,
                    rate=rate, mtu=mtu, nat=nat)

    def network_rm(self, name):
        _net(self.networks.remove, name)

    def network_ls(self) -> list[dict]:
        return self.networks.ls()

    def network_show(self, name) -> dict:
        """Interfaces, addresses, routes and neighbours of the lab and of its containers."""
        return _net(self.networks.show, name)

    # -- cleanup --
    def close(self):
        """Delete every container this sandbox made, and their directories."""
        for s in list(self.sessions):
            s.close()
        for c in list(self.containers.values()):
            try:
                c.delete(force=True)
            except Exception:  # noqa: BLE001 — keep going: leave as little as possible
                pass
        for t in self._cleaners:
            t.join()
        self._cleaners.clear()
        if self._networks is not None:
            self._networks.close()
        for path in (self.work, self.root):
            try:
                os.rmdir(path)
            except OSError:
                pass
        self.closed = True
        _OPEN.discard(self)

    def sweep(self):
        """Remove what a sandbox that died (kernel killed) left: containers, directories and lab
        networks."""
        self._check_dirs()
        self._sweep_containers()
        self.networks.sweep()

    def _sweep_containers(self):
        try:
            names = os.listdir(self.work)
        except FileNotFoundError:
            return
        for name in names:
            d = os.path.join(self.work, name)
            try:
                with open(os.path.join(d, "owner")) as f:
                    pid, start = f.read().split()
            except (OSError, ValueError):
                continue
            from .state import alive_as
            if start.isdigit() and alive_as(int(pid), int(start)):
                continue                    # its sandbox is alive (another kernel)
            self.cli("delete", "--force", name, check=False)
            _remove_bundle_dir(d)

    # -- internals --
    def _check_dirs(self, create=False):
        """Our state root and bundle dir are ours alone (mrunc.userdirs), checked at every use: a
        directory another user made first, or can write, is refused and never used."""
        for path, mode in ((self.root, 0o711), (self.work, 0o700)):
            if create:
                _guard(userdirs.ensure_private, path, mode, "sandbox directory")
            else:
                _guard(userdirs.check_if_present, path, "sandbox directory")

    def _prepare(self, script, args, name, opts) -> Container:
        if self.closed:
            raise SandboxError("this sandbox is closed")
        self._check_dirs(create=True)
        from .state import validate_id
        from .errors import UsageError
        name = name or f"lab-{secrets.token_hex(3)}"
        try:
            validate_id(name)
        except UsageError as e:
            raise SandboxError(str(e)) from None
        if name in self.containers or os.path.exists(os.path.join(self.root, name)):
            raise SandboxError(f"a container named {name!r} already exists (remove it first)")
        if args is None:
            args = ["sh", "-c", script if script is not None else ""]
        image = opts.pop("image", None) or opts.pop("bundle", None)
        base, rootfs = None, self.rootfs
        if image and image != "busybox":
            image = os.path.abspath(os.path.expanduser(image))
            if os.path.isfile(os.path.join(image, "config.json")):
                with open(os.path.join(image, "config.json")) as f:
                    base = json.load(f)
                r = (base.get("root") or {}).get("path", "rootfs")
                rootfs = r if os.path.isabs(r) else os.path.join(image, r)
                if args == ["sh", "-c", ""]:
                    args = None
            elif os.path.isdir(image):
                rootfs = image
            else:
                raise SandboxError(f"image: {image} is neither a rootfs directory nor a bundle")
        if opts.get("readonly") is None:
            opts.pop("readonly", None)
        # runtime flags, not config: `mrunc run --no-pivot` (chroot, for the course's breakout),
        # `--preserve-fds N` (these fds of ours become 3.. in the container)
        no_pivot, fds = bool(opts.pop("no_pivot", False)), tuple(opts.pop("fds", None) or ())
        skipped = []
        lab_net = opts.get("network")
        if lab_net in (None, "none", "host"):
            lab_net = None
        else:
            _net(self.networks.get, lab_net)
            opts["network"] = "none"
            # as docker does: CAP_NET_RAW (for ping), which acts only in its own network namespace
            add = opts.get("cap_add") or []
            opts["cap_add"] = [add] if isinstance(add, str) else list(add)
            opts["cap_add"].append("NET_RAW")
        if self.rootless:
            base, opts, skipped = self._rootless(base, opts)
        cfg = build_config(args, rootfs=rootfs, base=base, name=name, **opts)
        if not self.rootless and not cfg["linux"].get("cgroupsPath"):
            cfg["linux"]["cgroupsPath"] = f"/mrunc-lab-{self.tag}-{name}"
        if self.rootless:
            cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                                  "options": ["nosuid", "nodev", "mode=1777", "size=65536k"]})
        c = Container(self, name, bundle=os.path.join(self.work, name), config=cfg)
        c.no_pivot, c.fds = no_pivot, fds
        if skipped:
            c.skipped = f"{', '.join(skipped)}: no cgroup limits here ({self.no_cgroup})"
        if lab_net:
            self.networks.configure(cfg, c.bundle, lab_net)
        c._write_bundle(rootfs, overlay=not cfg["root"]["readonly"])
        self.containers[name] = c
        if lab_net:
            try:
                c.network = _net(self.networks.join, c, lab_net)
            except SandboxError:
                c._cleanup()
                raise
        return c

    def _rootless(self, base, opts):
        """What a rootless container can have: limits without a delegated cgroup are skipped
        (the container runs, and says so); a clear error for the rest of what it cannot."""
        from . import spec
        skipped = [f"{k}={opts[k]}" for k in LIMITS if opts.get(k) is not None] if self.no_cgroup else []
        memory = opts.get("memory") if skipped else None
        opts = {k: v for k, v in opts.items() if not (skipped and k in LIMITS)}
        user = opts.get("user")
        if user is not None and str(user).partition(":")[0] not in ("0", "root"):
            raise SandboxError(f"user: rootless, only root (uid 0) exists in the container: the "
                               f"user namespace maps just your uid {os.geteuid()}")
        if base is None:
            base = spec.default_config(rootless=True)
        if memory is not None:
            # Unbounded, a memory hog would take the whole server (and its OOM killer would pick
            # anyone's process): each process gets an address-space cap instead (RLIMIT_AS).
            size = parse_size(memory)
            rl = base.setdefault("process", {}).setdefault("rlimits", [])
            rl[:] = [r for r in rl if r.get("type") != "RLIMIT_AS"] + [
                {"type": "RLIMIT_AS", "hard": size, "soft": size}]
        skipped = [f"{s} only as an address-space cap per process (RLIMIT_AS)" if s.startswith("memory=")
                   else f"{s} skipped" for s in skipped]
        # No cgroup namespace: a user namespace's cgroup2 mount fails (EBUSY) where the subtree is
        # delegated; without one the runtime binds the container's own cgroup dir instead (S15).
        return base, {**opts, "readonly": True, "cgroupns": False}, skipped


LIMITS = ("memory", "cpus", "pids")      # the options that need a cgroup


def _delegated_subtree_problem():
    """Why this user gets no limits, or None once the delegated subtree is ready."""
    from .cgroups import delegation
    from .errors import CgroupError
    sub = delegation.find()
    if sub.path is None:
        return sub.reason
    try:
        sub.prepare()
    except CgroupError as e:
        return f"{sub.path} is delegated, but its controllers could not be enabled: {e}"
    return None


def _mark_warned():
    from .process.parent import warned_mark
    mark = warned_mark()
    if mark:
        try:
            open(mark, "a").close()
        except OSError:
            pass


def _guard(fn, *args):
    """userdirs' refusal as a SandboxError (the one line a cell shows)."""
    try:
        return fn(*args)
    except userdirs.UnsafeDir as e:
        raise SandboxError(str(e)) from None


def _net(fn, *args, **kw):
    """Call into mrunc.network; its errors become the sandbox's one-line errors."""
    from .network.plan import NetworkError
    try:
        return fn(*args, **kw)
    except NetworkError as e:
        raise SandboxError(str(e)) from None


def _cli_error(stderr, default):
    lines = [ln for ln in (stderr or "").splitlines() if ln.strip()]
    msg = lines[-1] if lines else default
    return msg[len("mrunc: "):] if msg.startswith("mrunc: ") else msg


def _remove_bundle_dir(d):
    """Unmount the overlay, then remove the directory — never through a mount that is still there
    (that would delete the image's files)."""
    merged = os.path.join(d, "rootfs")
    if os.path.ismount(merged):
        from .linux import MNT_DETACH, Syscalls
        try:
            Syscalls().umount2(merged, MNT_DETACH)
        except OSError:
            return
    if os.path.ismount(merged):
        return
    shutil.rmtree(d, ignore_errors=True)


# argv: N, N fds, then the command: fds 3..N+2 become copies of them (each first copied above
# N+2, close-on-exec, so that moving one never overwrites another still to be moved)
_MOVE_FDS = ("import fcntl, os, sys\n"
             "n = int(sys.argv[1])\n"
             "high = [fcntl.fcntl(int(fd), fcntl.F_DUPFD_CLOEXEC, 3 + n) for fd in sys.argv[2:2 + n]]\n"
             "for i, fd in enumerate(high):\n"
             "    os.dup2(fd, 3 + i)\n"
             "os.execvp(sys.argv[2 + n], sys.argv[2 + n:])\n")


class Container:
    """One container of a sandbox. Its parent is a `mrunc run` process (the shim) when it was
    started by us, so its exit status is known; state and usage are read from the state root."""

    def __init__(self, sandbox, name, bundle, config):
        self.sandbox, self.name = sandbox, name
        self.bundle, self.config = bundle, config
        self.shim = None                # the `mrunc run` process, when we started it
        self.session = None             # the StepSession making it, if any
        self.command = " ".join(((config or {}).get("process") or {}).get("args") or [])
        self.log_path = os.path.join(bundle, "output.log") if bundle else None
        self.overlay = False
        self.deleted = False
        self.skipped = None             # the limits not applied (rootless, no delegation), and why
        self.network = None             # its place on a lab network: address, veth (mrunc.network)
        self.no_pivot = False           # `--no-pivot`: chroot into the rootfs, not pivot_root
        self.fds = ()                   # our fds handed to it as 3, 4, … (`--preserve-fds`)
        self._mgr = None
        self._exit = None
        self._rootfs = None

    def __repr__(self):
        return f"<Container {self.name} {self.status}>"

    @property
    def id(self):
        return self.name

    @property
    def addresses(self) -> list[str]:
        """Its IPv4 addresses on lab networks (none: only lo)."""
        return [self.network["address"]] if self.network else []

    def _network_flags(self):
        """`mrunc run --network FILE`: the runtime wires it between create and start."""
        return ["--network", os.path.join(self.bundle, "network.json")] if self.network else []

    def _create_flags(self):
        """--no-pivot and --preserve-fds, for `mrunc create` and `mrunc run`."""
        return ((["--no-pivot"] if self.no_pivot else []) +
                (["--preserve-fds", str(len(self.fds))] if self.fds else []))

    @property
    def rootfs(self):
        """The image's root (the overlay's lower layer), where /etc/passwd is read from."""
        return self._rootfs or self.sandbox.rootfs

    # -- making it --
    def _write_bundle(self, rootfs, overlay):
        self._rootfs = rootfs
        os.mkdir(self.bundle, 0o700)
        from .state import proc_start_time
        with open(os.path.join(self.bundle, "owner"), "w") as f:
            f.write(f"{os.getpid()} {proc_start_time(os.getpid())[0]}\n")
        if overlay:
            merged = os.path.join(self.bundle, "rootfs")
            for d in ("rootfs", "upper", "work"):
                os.mkdir(os.path.join(self.bundle, d), 0o755)
            from .linux import Syscalls
            try:
                Syscalls().mount("overlay", merged, "overlay", 0,
                                 f"lowerdir={rootfs},upperdir={self.bundle}/upper,workdir={self.bundle}/work")
                self.overlay = True
                self.config["root"]["path"] = merged
            except OSError:             # no overlayfs (or an odd lower fs): read-only instead
                self.config["root"]["readonly"] = True
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(self.config, f)

    def _popen(self, args, **kw):
        cmd = [*self.sandbox.mrunc, "--root", self.sandbox.root, *args]
        if self.fds:
            # --preserve-fds passes fds 3..N+2: a small interpreter moves ours there, then execs
            # mrunc (this process never forks; subprocess cannot renumber fds but 0-2)
            cmd = [sys.executable, "-c", _MOVE_FDS, str(len(self.fds)), *map(str, self.fds), *cmd]
            kw["pass_fds"] = (*kw.get("pass_fds", ()), *self.fds)
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, **kw)

    def _spawn(self, extra=(), **kw):
        """The shim: `mrunc run --keep`, output to the log; the container outlives nothing of ours."""
        log = open(self.log_path, "ab")
        try:
            self.shim = self._popen(["run", "--keep", *self._network_flags(), *self._create_flags(),
                                     *extra, "--bundle",
                                     self.bundle, self.name],
                                    stdout=log, stderr=subprocess.STDOUT, **kw)
        finally:
            log.close()

    def _create(self):
        if self.network:
            self._cleanup()
            raise SandboxError("network: a lab network is wired between create and start by "
                               "`mrunc run`: use start(), run() or step()")
        with open(self.log_path, "ab") as log:
            # create's stdio is inherited by the container: give it the log, never a pipe (that
            # would stay open as long as the container runs)
            p = self._popen(["create", *self._create_flags(), "--bundle", self.bundle, self.name], stdout=log,
                            stderr=subprocess.STDOUT)
            p.wait(60)
        if p.returncode != 0:
            msg = _cli_error(self.logs(), "mrunc create failed")
            self._cleanup()
            raise SandboxError(msg)

    # -- state --
    def _state(self):
        from .state import Container as State
        return State.load(self.sandbox.root, self.name)

    @property
    def status(self) -> str:
        """creating, created, running, paused, stopped or deleted."""
        if self.deleted:
            return "deleted"
        try:
            return self._state().status()
        except MruncError:
            if self.shim is not None and self.shim.poll() is None:
                return "creating"
            return "stopped"

    @property
    def pid(self) -> int | None:
        try:
            st = self._state()
        except MruncError:
            return None
        return st.pid if st.status() not in ("stopped", "creating") else None

    @property
    def exit_code(self) -> int | None:
        """The program's exit status (128+N: killed by signal N), None while it runs or unknown."""
        if self._exit is None and self.shim is not None:
            self._exit = self.shim.poll()
        return self._exit

    def state(self) -> dict:
        """The OCI state document (`mrunc state`)."""
        return self._state().oci_state()

    def cgroup(self):
        """The cgroup manager, kept once found: it outlives the state file's removal."""
        if self._mgr is None:
            try:
                self._mgr = self._state().cgroup()
            except MruncError:
                return None
        return self._mgr

    def stats(self) -> dict | None:
        """{"memory": {current, peak, limit, oom_kills}, "cpu": {usage_usec}, "pids": {...}}."""
        mgr = self.cgroup()
        # None too while create has not made the cgroup yet (the state says "creating"): figures
        # of a directory that is not there would all read None, not zero.
        if mgr is None or not mgr.exists():
            return None
        try:
            return mgr.stats()
        except OSError:
            return None

    def snapshot(self):
        """A mrunc.snapshot.Snapshot of the container's init (None when it is not running)."""
        from . import snapshot
        pid = self.pid
        return snapshot.take(pid, cgroup_manager=self.cgroup()) if pid else None

    def logs(self) -> str:
        """Everything the container wrote (stdout and stderr, interleaved)."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
        except (OSError, TypeError):
            return ""
        return re.sub("\x1e[0-9a-f]{16} -?[0-9]+\x1e", "", text)      # Run(keep=True)'s status mark

    # -- acting --
    def start(self):
        """Start a created container: its init execs the program."""
        self.sandbox.cli("start", self.name)
        return self

    def wait(self, timeout=None) -> int | None:
        """Wait for the program to end; its exit status (None: not ours to know, or timeout)."""
        if self.shim is not None:
            try:
                self._exit = self.shim.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
            return self._exit
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status not in ("stopped", "deleted"):
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.02)
        return None

    def kill(self, sig="TERM", all=False):
        """Signal init (all: every process of its cgroup). Done here, not by `mrunc kill`: it is
        one kill(2) (or a write to cgroup.kill), nothing forks."""
        from . import api
        try:
            api.kill(self.name, sig, self.sandbox.root, all=all)
        except MruncError as e:
            raise SandboxError(str(e)) from None

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL after `timeout` seconds (PID 1 ignores signals it has no handler for)."""
        if self.status in ("stopped", "deleted", "creating"):
            return self.exit_code
        try:
            self.kill("TERM", all=True)
        except SandboxError:
            pass
        deadline = time.monotonic() + timeout
        while self.status not in ("stopped", "deleted") and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.status not in ("stopped", "deleted"):
            self.kill("KILL", all=True)
        return self.wait(timeout)

    def exec(self, command, *, user=None, cwd=None, env=None, timeout=60):
        """Run `command` (a shell string or an argv list) in the running container (`mrunc exec`):
        -> CompletedProcess with .returncode, .stdout, .stderr."""
        argv = ["sh", "-c", command] if isinstance(command, str) else [str(a) for a in command]
        flags = []
        if user is not None:
            u = parse_user(user, self.rootfs)
            flags += ["--user", f"{u['uid']}:{u['gid']}"]
        if cwd:
            flags += ["--cwd", cwd]
        for k, v in (env or {}).items():
            flags += ["--env", f"{k}={v}"]
        p = self.sandbox.cli("exec", *flags, self.name, *argv, timeout=timeout, check=False)
        if p.returncode != 0 and "unknown command 'exec'" in p.stderr:
            raise SandboxError("this mrunc has no exec verb yet")
        return p

    def delete(self, force=True):
        """Kill it if needed, delete it, unmount and remove its directory."""
        if self.deleted:
            return
        if self.session is not None and not self.session.done:
            self.session.abort()        # it deletes us when the runtime has undone its work
            return
        if self.shim is not None and self.shim.poll() is None:
            # Kill init, and the shim (`mrunc run --keep`) returns; we delete below. A shim still
            # creating has no state to kill by yet: wait for it (signalling the shim itself then
            # would leave init behind; a stepping one is ended by its session instead).
            deadline = time.monotonic() + 10
            state = os.path.join(self.sandbox.root, self.name, "state.json")
            while not os.path.exists(state) and self.shim.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            try:
                self.kill("KILL", all=True)
            except SandboxError:
                pass
            try:
                self.shim.wait(10)
            except subprocess.TimeoutExpired:
                self.shim.kill()
                self.shim.wait()
        self._delete_state(force)
        self.exit_code                  # noqa: B018 — keep the status we knew
        self._cleanup()

    def _delete_state(self, force=True):
        """`mrunc delete`, done here (~2 ms instead of ~50 for a new interpreter): for a stopped
        container it only removes files — the state dir and the cgroup directories; for a live one
        (force) it kills first. Nothing forks (no poststop hooks in the configs we write)."""
        from . import api
        if not os.path.isdir(os.path.join(self.sandbox.root, self.name)):
            return
        try:
            api.delete(self.name, self.sandbox.root, force=force, warn=lambda m: None)
        except MruncError as e:
            # no state.json: a create that failed or was aborted; the runtime cleans up after it
            if os.path.exists(os.path.join(self.sandbox.root, self.name, "state.json")):
                raise SandboxError(str(e)) from None

    def _delete_stopped(self):
        """The shim has exited: delete the container; unmounting the overlay is left to a thread
        (the cell is done before it is)."""
        try:
            self._delete_state()
        except SandboxError:
            pass
        self._cleanup(later=True)

    def _cleanup(self, later=False):
        if self.bundle:
            if later:
                t = threading.Thread(target=_remove_bundle_dir, args=(self.bundle,), daemon=True,
                                     name=f"mrunc-cleanup-{self.name}")
                t.start()
                self.sandbox._cleaners.append(t)
            else:
                _remove_bundle_dir(self.bundle)
        self.deleted = True
        if self.network and self.sandbox._networks is not None:
            self.sandbox._networks.leave(self)
        if self.sandbox.containers.get(self.name) is self:
            del self.sandbox.containers[self.name]


class Run:
    """A foreground run (`mrunc run`) whose output is read as it comes: iterate for
    (stream, text) pairs; `.result` (a RunResult) once the iteration is over."""

    def __init__(self, container, trace=False, keep=False):
        self.container, self.keep = container, keep
        self.result = None
        self.watch = None               # its mrunc.watch.Watch, from stream(watch=True)
        self._t0 = time.perf_counter()
        c = container
        if keep:
            # After the script, its status is printed between two \x1e marks with a random
            # token, and the container sleeps on: we read the log up to the mark, and return.
            self._token = secrets.token_hex(8)
            args = c.config["process"]["args"]
            script = args[2] if args[:2] == ["sh", "-c"] and len(args) == 3 else shlex.join(args)
            c.config["process"]["args"] = [
                "sh", "-c", f'sh -c "$1"; printf "\\036{self._token} %d\\036" $?; exec sleep {FOREVER}',
                "sh", script]
            with open(os.path.join(c.bundle, "config.json"), "w") as f:
                json.dump(c.config, f)
            c._spawn(["--trace"] if trace else [])
            self.proc = None
        else:
            self.proc = c._popen(["run", "--keep", *c._network_flags(), *c._create_flags(),
                                  *(["--trace"] if trace else []),
                                  "--bundle", c.bundle, c.name], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)

    def __iter__(self):
        if self.container.skipped:
            yield "stderr", f"mrunc: {self.container.skipped}\n"
        try:
            yield from (self._follow_log() if self.keep else self._read_pipes())
        except BaseException:           # interrupted (Ctrl-C in the notebook): take it down
            self.container.delete(force=True)
            raise

    def _read_pipes(self):
        import codecs
        import selectors
        p = self.proc
        sel = selectors.DefaultSelector()
        dec = {}
        for f, name in ((p.stdout, "stdout"), (p.stderr, "stderr")):
            sel.register(f, selectors.EVENT_READ, name)
            dec[name] = codecs.getincrementaldecoder("utf-8")("replace")
        out = {"stdout": [], "stderr": []}
        while sel.get_map():
            for key, _ in sel.select():
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                text = dec[key.data].decode(data)
                if text:
                    out[key.data].append(text)
                    yield key.data, text
        sel.close()
        p.stdout.close()
        p.stderr.close()
        code = p.wait()
        self.container._exit = code
        self._finish(code, "".join(out["stdout"]), "".join(out["stderr"]), delete=True)

    def _follow_log(self):
        """keep=True: tail the log until the script's status mark; the mark is not shown."""
        c, pos, pending, chunks = self.container, 0, "", []
        mark = f"\x1e{self._token} "
        dec = __import__("codecs").getincrementaldecoder("utf-8")("replace")
        code = None
        while code is None:
            data = self._tail(pos)
            pos += len(data)
            pending += dec.decode(data)
            i = pending.find(mark)
            if i >= 0 and "\x1e" in pending[i + len(mark):]:
                end = pending.index("\x1e", i + len(mark))
                code = int(pending[i + len(mark):end])
                text, pending = pending[:i], ""
            else:
                # hold back what could be the start of the mark
                keep = next((k for k in range(min(len(mark), len(pending)), 0, -1)
                             if mark.startswith(pending[-k:])), 0)
                if i >= 0:
                    keep = len(pending) - i
                text, pending = pending[:len(pending) - keep], pending[len(pending) - keep:]
            if text:
                chunks.append(text)
                yield "stdout", text
            if code is None:
                if c.shim.poll() is not None and not self._tail(pos):
                    code = c.shim.returncode or 1   # create failed: the log said why
                    if pending:
                        chunks.append(pending)
                        yield "stdout", pending
                else:
                    time.sleep(0.01)
        self._finish(code, "".join(chunks), "", delete=c.shim.poll() is not None)

    def _tail(self, pos):
        try:
            with open(self.container.log_path, "rb") as f:
                f.seek(pos)
                return f.read()
        except OSError:
            return b""

    def _finish(self, code, out, err, delete):
        c = self.container
        s = c.stats() or {}
        mem = s.get("memory") or {}
        self.result = RunResult(c.name, code, out, err, ms=(time.perf_counter() - self._t0) * 1000,
                                oom_killed=bool(mem.get("oom_kills")), memory_peak=mem.get("peak"),
                                memory_limit=mem.get("limit"))
        if delete:
            c._delete_stopped()


class StepSession:
    """Make a container one phase at a time: each next() lets the runtime run exactly one phase,
    then looks at the paused init and returns a Step (phase, ms, calls, snapshot, diff).

    The runtime is `mrunc run --keep --step-fd N`. The first next() starts it (it runs `spec` and
    pauses); each later one answers "continue". After `security`, "continue" lets create finish and
    `run` start the container: that last step is `exec`. abort() answers "abort": the runtime undoes
    everything and exits. A failed phase comes back as a Step with `error` set.
    """

    def __init__(self, container, timeout=60.0):
        self.container, self.timeout = container, timeout
        container.session = self
        self.steps: list[Step] = []
        self.done = False
        self.error = None
        self._sock = self._chan = None
        self._waiting = False           # the runtime is paused, waiting for our answer

    def __repr__(self):
        at = self.steps[-1].phase if self.steps else "not started"
        return f"<StepSession {self.container.name}: {at}{' (done)' if self.done else ''}>"

    def __iter__(self):
        while not self.done:
            step = self.next()
            if step is None:
                break
            yield step

    @property
    def name(self):
        return self.container.name

    @property
    def current(self) -> str | None:
        return self.steps[-1].phase if self.steps else None

    @property
    def phases(self) -> tuple:
        """This container's steps: with a lab network, `network` comes between create's last
        phase and exec (the runtime wires it while init waits, as an engine's CNI does)."""
        return PHASES[:-1] + ("network",) + PHASES[-1:] if self.container.network else PHASES

    @property
    def upcoming(self) -> str | None:
        """The phase the next next() runs."""
        if self.done:
            return None
        return self.phases[len(self.steps)] if len(self.steps) < len(self.phases) else None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def times(self) -> dict:
        return {s.phase: s.ms for s in self.steps}

    def next(self) -> Step | None:
        """Run one phase; None once the session is over."""
        if self.done:
            return None
        t0 = time.perf_counter()
        if self._sock is None:
            self._launch()
        elif self.current == self.phases[-2]:
            return self._exec(t0)
        else:
            self._answer(b"continue")
        ev = self._read_event()
        if ev is None or ev.get("event") == "error":
            return self._fail(ev)
        self._waiting = True
        pid = ev.get("pid")
        if pid is None and ev["phase"] != "spec":
            # The runtime may report clone before it learned init's pid (init's report and the
            # clone child's "pid" message race on one socket): then find init ourselves.
            last = self.steps[-1].pid if self.steps else None
            pid = last or _find_init(self.container.shim.pid)
        snap = self._snapshot(pid or self.container.shim.pid)
        step = Step(ev["phase"], ev.get("ms", 0.0), ev.get("calls") or [], pid, snap,
                    self._diff(snap), network=ev.get("network"))
        self.steps.append(step)
        return step

    def run_to_end(self) -> list[Step]:
        out = []
        while not self.done:
            step = self.next()
            if step is None:
                break
            out.append(step)
        return out

    def abort(self):
        """Stop here: the runtime undoes what it did (kills init, removes the cgroup)."""
        if self.done:
            return
        if self._waiting:
            self._answer(b"abort")
        self._end()
        self.error = self.error or "aborted"
        self.container.delete(force=True)

    def close(self):
        """End the session: abort if it is half-way; the container itself stays in the sandbox."""
        if not self.done:
            self.abort()

    # -- internals --
    def _launch(self):
        ours, theirs = socket.socketpair()
        c = self.container
        try:
            c._spawn(["--step-fd", str(theirs.fileno())], pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        ours.settimeout(self.timeout)
        self._sock, self._chan = ours, ours.makefile("rwb", buffering=0)

    def _answer(self, word):
        self._waiting = False
        try:
            self._chan.write(word + b"\n")
        except OSError:
            pass

    def _read_event(self):
        try:
            line = self._chan.readline()
        except (OSError, socket.timeout):
            line = b""
        if not line:
            return None
        return json.loads(line)

    def _snapshot(self, pid):
        from . import snapshot
        try:
            return snapshot.take(pid)
        except Exception:  # noqa: BLE001 — a stepper must show what it can
            return None

    def _diff(self, snap):
        from . import snapshot
        prev = self.steps[-1].snapshot if self.steps else None
        if prev is None or snap is None:
            return None
        return snapshot.diff(prev, snap)

    def _exec(self, t0):
        """The last step: `continue` lets create finish; `run` then starts the container and
        init execve()s the program. We watch for the new program to appear."""
        pid = self.steps[-1].pid
        before = _comm(pid)
        self._answer(b"continue")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            now = _comm(pid)
            # execve renames the process after the program, a moment before its argv is in place
            if now != before and _has_cmdline(pid):
                break
            if self.container.shim.poll() is not None:
                break
            time.sleep(0.001)
        ms = round((time.perf_counter() - t0) * 1000, 3)
        snap = self._snapshot(pid) if _comm(pid) is not None else None
        args = (self.container.config.get("process") or {}).get("args") or []
        calls = [["open", "exec.fifo", "O_WRONLY"], ["execve", args[0] if args else "", " ".join(args)]]
        step = Step("exec", ms, calls, pid, snap, self._diff(snap))
        if snap is None:
            code = self.container.wait(5)
            if code not in (None, 0) and self.container.status in ("stopped", "deleted") and \
                    not os.path.exists(os.path.join(self.container.sandbox.root, self.container.name)):
                step.error = _cli_error(self.container.logs(), f"exit status {code}")
                self.error = step.error
        self.steps.append(step)
        self._end()
        return step

    def _fail(self, ev):
        c = self.container
        try:
            c.shim.wait(10)
        except subprocess.TimeoutExpired:
            pass
        phase = (ev or {}).get("phase") or self.upcoming or "spec"
        msg = (ev or {}).get("message") or _cli_error(c.logs(), "the runtime exited")
        step = Step(phase, error=msg)
        self.error = msg
        self.steps.append(step)
        self._end()
        c.delete(force=True)
        return step

    def _end(self):
        self.done = True
        self._waiting = False
        if self._sock is not None:
            self._chan.close()
            self._sock.close()


def _has_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return bool(f.read(1))
    except OSError:
        return True  # gone: nothing more to wait for


def _comm(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    if data[data.rindex(b")") + 2:][:1] in (b"Z", b"X"):
        return None
    return data[data.index(b"(") + 1:data.rindex(b")")].decode(errors="replace")


def _find_init(ancestor):
    """The container's init below `ancestor`: the descendant that is PID 1 of a new PID namespace."""
    kids = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    data = f.read()
                kids.setdefault(int(data[data.rindex(b")") + 2:].split()[1]), []).append(int(name))
            except (OSError, ValueError, IndexError):
                continue
    todo = list(kids.get(ancestor, []))
    while todo:
        pid = todo.pop(0)
        try:
            with open(f"/proc/{pid}/status") as f:
                nspid = next((ln.split()[1:] for ln in f if ln.startswith("NSpid:")), [])
        except OSError:
            continue
        if len(nspid) > 1 and nspid[-1] == "1":
            return pid
        todo.extend(kids.get(pid, []))
    return None
