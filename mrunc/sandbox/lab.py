"""The Sandbox: a set of containers with a private state root, made, found and cleaned up together."""
from __future__ import annotations

import atexit
import json
import os
import secrets
import subprocess
import sys
import weakref

from .. import userdirs
from ..errors import MruncError
from ..security import subids
from .container import Container, remove_bundle_dir
from .errors import SandboxError, cli_error, guard, net_call
from .host import busybox_rootfs, check_available, delegated_subtree_problem, mark_warned, \
    mrunc_command, rootless_note
from .options import build_config, parse_size, rootless_ready
from .run import FOREVER, Run, RunResult
from .stepping import StepSession

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
        self.root = root or os.environ.get("MRUNC_LAB_ROOT") or guard(userdirs.default_root, "mrunc-lab")
        self.work = self.root.rstrip("/") + ".bundles"
        self._check_dirs()
        self.mrunc = list(mrunc) if mrunc else mrunc_command()
        self.containers: dict[str, Container] = {}
        self.sessions = weakref.WeakSet()
        self.watches = weakref.WeakSet()     # file-access monitors (mrunc.watch), closed with us
        self._cleaners = []             # threads unmounting and removing bundle dirs
        self._at_close = []             # (fn, args) of at_close(), called last by close()
        self.closed = False
        self.closing = False            # set first by close(): live views stop instead of erring
        self._no_cgroup = None
        self._networks = None
        # Part of every container's cgroup name: runc's default cgroup is /<id>, and two sandboxes
        # (two students, two kernels) may both call a container "web".
        self.tag = secrets.token_hex(4)
        # What does not work here, and why, in words (mrunc.notebook says them once): rootless, what
        # a user namespace cannot do; then `mrunc doctor`'s problems (no limits, and the fix).
        # Rootless, the id maps: 0 → you, 1.. → your /etc/subuid ranges when you have them
        # (as podman does), else the single-id map (mrunc.security.subids).
        self.id_maps, single_why = (subids.sandbox_maps() if self.rootless else (None, None))
        self.notes = [rootless_note(self.id_maps, single_why)] if self.rootless else []
        if check:
            self.no_cgroup              # rootless: the delegated subtree is made ready first
            from .. import doctor
            self.notes += doctor.problems()
            if self.no_cgroup:          # said here once: the runtime need not say it per container
                mark_warned()
            self.sweep()
        _OPEN.add(self)
        _hook_kernel_shutdown()
        from .. import labwatch
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
                self._no_cgroup = delegated_subtree_problem() or ""
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
            raise SandboxError(cli_error(p.stderr, f"mrunc {args[0]} failed ({p.returncode})"))
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
        """A container running in the background; `script` defaults to sleeping forever.
        Returns once its program runs (so its pid is known and snapshot() sees it), or has
        already ended; raises the runtime's one-line error if the container could not be made."""
        c = self._prepare(script, _or_forever(script, args), name, opts)
        c._spawn()
        c._wait_started()
        return c

    def create(self, script=None, *, args=None, name=None, **opts) -> Container:
        """A container in the `created` state (`mrunc create`): its init waits for start()."""
        c = self._prepare(script, _or_forever(script, args), name, opts)
        c._create()
        return c

    def step(self, script=None, *, args=None, name=None, **opts) -> StepSession:
        """A StepSession: the container is made one phase per next()."""
        c = self._prepare(script, _or_forever(script, args), name, opts)
        s = StepSession(c)
        self.sessions.add(s)
        return s

    # -- looking --
    def get(self, name) -> Container:
        if name in self.containers:
            return self.containers[name]
        from ..state import Container as State
        from ..errors import StateError
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
        from ..watch import Watch, WatchError
        try:
            w = Watch(c, start=not unborn, unborn=unborn)
        except WatchError as e:
            if unborn:
                c._cleanup()
            raise SandboxError(str(e)) from None
        self.watches.add(w)
        return w

    def ps(self) -> list[dict]:
        """A row per container in our root: name, status, pid, memory use/limit, exit code."""
        from ..state import Container as State
        self._check_dirs()
        rows = []
        for st in State.all(self.root):
            ours = self.containers.get(st.id)
            status = st.status()
            row = {"name": st.id, "status": status, "pid": st.pid if status != "stopped" else 0,
                   "created": st.data.get("created", ""), "memory": None, "limit": None,
                   "exit_code": ours.exit_code if ours else None,
                   "command": ours.command if ours else _command(st)}
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
            from ..network.labs import Networks
            self._networks = Networks(self)
        return self._networks

    def network(self, name, subnet=None, *, delay=None, jitter=None, loss=None, rate=None,
                mtu=1500, nat=False) -> dict:
        """A lab network: its own namespace with a bridge (the gateway is the subnet's first
        address); containers join it with start(..., network=name). delay/jitter/loss/rate shape
        every container's link (tc netem): "20ms", "5ms", "1%", "10mbit"."""
        if self.closed:
            raise SandboxError("this sandbox is closed")
        return net_call(self.networks.create, name, subnet, delay=delay, jitter=jitter, loss=loss,
                    rate=rate, mtu=mtu, nat=nat)

    def network_rm(self, name):
        net_call(self.networks.remove, name)

    def network_ls(self) -> list[dict]:
        return self.networks.ls()

    def network_show(self, name) -> dict:
        """Interfaces, addresses, routes and neighbours of the lab and of its containers."""
        return net_call(self.networks.show, name)

    # -- cleanup --
    def at_close(self, fn, *args):
        """Call fn(*args) when this sandbox closes, after its containers are gone, the last given
        first: a notebook's own files (a host directory its containers mount) and helper processes
        go with them, at close() or at the kernel's end. So no last cell need close the lab, which
        would leave a stepper nobody walked yet unwalkable after Run All."""
        self._at_close.append((fn, args))

    def close(self):
        """Delete every container this sandbox made, and their directories."""
        self.closing = True
        for s in [*self.sessions, *self.watches]:
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
        while self._at_close:
            fn, args = self._at_close.pop()
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 — like the containers: clean up the rest anyway
                pass
        from ..security import seccompcache
        seccompcache.forget(self.root)      # the programs our containers' creates kept
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
            from ..state import alive_as
            if start.isdigit() and alive_as(int(pid), int(start)):
                continue                    # its sandbox is alive (another kernel)
            self.cli("delete", "--force", name, check=False)
            remove_bundle_dir(d)

    # -- internals --
    def _check_dirs(self, create=False):
        """Our state root and bundle dir are ours alone (mrunc.userdirs), checked at every use: a
        directory another user made first, or can write, is refused and never used."""
        for path, mode in ((self.root, 0o711), (self.work, 0o700)):
            if create:
                guard(userdirs.ensure_private, path, mode, "sandbox directory")
            else:
                guard(userdirs.check_if_present, path, "sandbox directory")

    def _prepare(self, script, args, name, opts) -> Container:
        if self.closed:
            raise SandboxError("this sandbox is closed")
        self._check_dirs(create=True)
        from ..state import validate_id
        from ..errors import UsageError
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
            net_call(self.networks.get, lab_net)
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
                c.network = net_call(self.networks.join, c, lab_net)
            except SandboxError:
                c._cleanup()
                raise
        return c

    def _rootless(self, base, opts):
        """What a rootless container can have: limits without a delegated cgroup are skipped
        (the container runs, and says so); a clear error for the rest of what it cannot."""
        from .. import spec
        skipped = [f"{k}={opts[k]}" for k in LIMITS if opts.get(k) is not None] if self.no_cgroup else []
        memory = opts.get("memory") if skipped else None
        opts = {k: v for k, v in opts.items() if not (skipped and k in LIMITS)}
        uid = None if opts.get("user") is None else str(opts["user"]).partition(":")[0]
        if uid is not None and not self.id_maps and uid not in ("0", "root"):
            raise SandboxError(f"user: rootless, only root (uid 0) exists in the container: the "
                               f"user namespace maps just your uid {os.geteuid()}")
        top = self.id_maps and sum(m["size"] for m in self.id_maps["uid"]) - 1
        if top and uid is not None and uid.isdigit() and int(uid) > top:
            raise SandboxError(f"user: uid {uid} does not exist in the container: its user namespace "
                               f"maps uids 0-{top} (you, then your ranges in /etc/subuid)")
        # a bundle written for root (no user namespace) is made runnable as you, as our default is
        base = rootless_ready(base if base is not None else spec.default_config(rootless=True),
                              self.id_maps)
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


def _or_forever(script, args):
    """A background container with nothing to run sleeps forever (start, create, step)."""
    return ["sleep", FOREVER] if script is None and args is None else args


def _command(st):
    """The program of a container found in the root (not one we made): its config's args, read
    from its state directory — "" if it was deleted meanwhile."""
    from ..errors import StateError
    try:
        return " ".join((st.config.get("process") or {}).get("args") or [])
    except StateError:
        return ""
