"""IPython magics: containers from notebook cells (`%load_ext mrunc`).

    %%container [--memory 64M] [--pids 20] [--net none|host|LAB] [--step] [--watch] ...
    echo "this cell body is a shell script, run in a fresh busybox container"

    %container_ps [--widget]       the containers of this kernel's sandbox
    %container_exec NAME CMD...    run CMD in a running container (one kept with --keep)
    %container_inspect NAME        a snapshot of it, drawn
    %container_monitor NAME        its memory, CPU and pids, live
    %container_rm NAME...          stop and delete
    %network NAME [--subnet S] [--delay 20ms] ...   a lab network (its own namespace, a bridge)
    %network_ls                    the lab networks, their subnets and containers
    %network_show NAME             the live topology of a lab network
    %network_rm NAME...            remove lab networks (their containers first)

Every magic calls the Python API (mrunc.sandbox), one sandbox per kernel, made at first use and
closed when the extension is unloaded or the kernel exits. Errors are one line (UsageError).
"""
from __future__ import annotations

import argparse
import sys

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from mrunc.errors import MruncError


def _parse(fn, line, magic, needs=None):
    """magic_arguments' parse, with a one-line error naming the magic, and --help (then None).
    `needs`: the argument that must be given — "name", or "names" (at least one)."""
    try:
        args = parse_argstring(fn, line)
    except UsageError as e:
        raise UsageError(f"{magic}: {str(e).strip().splitlines()[-1]} (see {magic} --help)") from None
    if getattr(args, "help", False):
        print(fn.__doc__)
        return None
    if needs and not getattr(args, needs):
        what = "at least one NAME" if needs == "names" else "NAME"
        raise UsageError(f"{magic}: needs {what} (see {magic} --help)")
    return args


def _write(stream, text):
    f = sys.stderr if stream == "stderr" else sys.stdout
    f.write(text)
    f.flush()


@magics_class
class ContainerMagics(Magics):
    def __init__(self, shell=None, sandbox=None):
        super().__init__(shell)
        self._sandbox = sandbox
        self.last = None                # the last %%container's RunResult (or StepSession)

    @property
    def sandbox(self):
        """This kernel's sandbox, made at first use; a one-line error when there cannot be one.
        What does not work here (rootless) is said once, at first use."""
        from mrunc import notebook
        if self._sandbox is None or self._sandbox.closed:
            try:
                self._sandbox = notebook.sandbox()
            except MruncError as e:
                raise UsageError(str(e)) from None
        notebook.tell(self._sandbox)
        return self._sandbox

    def close(self):
        if self._sandbox is not None:
            self._sandbox.close()

    def _get(self, name):
        try:
            return self.sandbox.get(name)
        except MruncError as e:
            raise UsageError(str(e)) from None

    # ---- %%container ------------------------------------------------------------------------------
    @magic_arguments()
    @argument("-h", "--help", action="store_true", help="show this help")
    @argument("--name", help="the container's name (default: lab-<random>)")
    @argument("--image", default="busybox",
              help="busybox (the bundled rootfs), a rootfs directory, or a bundle directory")
    @argument("--memory", help="memory limit: 64M, 1G, bytes")
    @argument("--cpus", type=float, help="CPU limit, in CPUs: 0.5")
    @argument("--pids", type=int, help="maximum number of processes")
    @argument("--hostname", help="the container's hostname (default: its name)")
    @argument("--readonly", action="store_true", help="read-only root filesystem")
    @argument("--user", help="uid[:gid] or a name from the image's /etc/passwd")
    @argument("--cap-add", action="append", default=[], metavar="CAP", help="add a capability")
    @argument("--cap-drop", action="append", default=[], metavar="CAP", help="drop a capability (ALL)")
    @argument("--net", default="none",
              help="none: own network namespace with only lo; host: the host's; or the name of a "
                   "lab network (%%network NAME): eth0 on its bridge, peers reachable by name")
    @argument("--env", "-e", action="append", default=[], metavar="K=V", help="set an environment variable")
    @argument("--cwd", help="working directory inside")
    @argument("--keep", action="store_true", help="leave the container running after the script")
    @argument("--step", action="store_true",
              help="show the Stepper: make the container one phase at a time")
    @argument("--trace", action="store_true", help="print each phase, its time and kernel calls")
    @argument("--watch", action="store_true",
              help="show which files it opens, executes and modifies, live (fanotify; root only)")
    @line_cell_magic
    def container(self, line, cell=None):
        """Run the cell body as a shell script in a fresh container; its output streams into
        the cell, and a non-zero exit status is reported."""
        a = _parse(self.container, line, "%%container")
        if a is None:
            return
        if cell is None:
            raise UsageError("%container: the script goes in the cell body: use %%container "
                             "(two %) on the cell's first line")
        opts = dict(name=a.name, image=a.image, memory=a.memory, cpus=a.cpus, pids=a.pids,
                    hostname=a.hostname, readonly=a.readonly, user=a.user, cap_add=a.cap_add,
                    cap_drop=a.cap_drop, network=a.net, cwd=a.cwd,
                    env=dict(_kv(e) for e in a.env) or None)
        if a.step and a.watch:
            raise UsageError("%%container: --watch and --step do not go together: watch a stepped "
                             "container with lab.watch(NAME) once it runs")
        try:
            if a.watch:
                return self._watched(cell, a, opts)
            if a.step:
                from mrunc.notebook.widgets import Stepper
                from IPython.display import display
                session = self.sandbox.step(cell, **opts)
                self.last = session
                display(Stepper(session))
                return
            r = self.sandbox.run(cell, on_output=_write, trace=a.trace, keep=a.keep, **opts)
        except MruncError as e:
            raise UsageError(str(e)) from None
        self._report(r, a.keep)

    def _watched(self, cell, a, opts):
        """%%container --watch: the file-access table under the cell, live, then the output."""
        from IPython.display import display
        from mrunc.notebook.watchview import FileWatch
        run = self.sandbox.stream(cell, trace=a.trace, keep=a.keep, watch=True, **opts)
        if run.watch.error is None:
            display(FileWatch(run.watch))
        for stream, text in run:
            _write(stream, text)
        self._report(run.result, a.keep)

    def _report(self, r, keep):
        self.last = r
        if r.exit_code != 0:
            _write("stderr", f"✗ container {r.name}: {r.describe()}\n")
        if keep and r.name in self.sandbox.containers:
            _write("stdout", f"▶ {r.name} keeps running: %container_exec {r.name} CMD, "
                             f"%container_rm {r.name}\n")

    # ---- line magics ------------------------------------------------------------------------------
    @magic_arguments()
    @argument("-h", "--help", action="store_true", help="show this help")
    @argument("--widget", action="store_true", help="a live table with Inspect/Stop/Remove")
    @line_magic
    def container_ps(self, line):
        """List the containers of this kernel's sandbox."""
        a = _parse(self.container_ps, line, "%container_ps")
        if a is None:
            return
        if a.widget:
            from IPython.display import display
            from mrunc.notebook.widgets import ContainerList
            display(ContainerList(self.sandbox))
            return
        rows = self.sandbox.ps()
        if not rows:
            print("no containers")
            return
        from mrunc.snapshot import human_bytes
        table = [("NAME", "STATUS", "PID", "MEMORY", "COMMAND")]
        for r in rows:
            mem = human_bytes(r["memory"]) if r["memory"] is not None else "-"
            if r["limit"]:
                mem += " / " + human_bytes(r["limit"])
            lines = r["command"].splitlines() or [""]
            table.append((r["name"], r["status"], str(r["pid"] or "-"), mem,
                          lines[0] + (" …" if len(lines) > 1 else "")))
        widths = [max(len(t[i]) for t in table) for i in range(4)]
        for t in table:
            print("  ".join(v.ljust(n) for v, n in zip(t, widths, strict=False)) + "  " + t[4])

    @magic_arguments()
    @argument("-h", "--help", action="store_true", help="show this help")
    @argument("--user", help="uid[:gid] to run as")
    @argument("name", nargs="?", help="the container")
    @argument("command", nargs=argparse.REMAINDER, help="a shell command line")
    @line_magic
    def container_exec(self, line):
        """Run a command in a running container (`mrunc exec`); prints its output."""
        # Parsed by hand: CMD is the raw rest of the line, quotes and all, for the shell.
        rest, user = line.strip(), None
        while rest.startswith("-"):
            tok, _, rest = rest.partition(" ")
            rest = rest.strip()
            if tok in ("-h", "--help"):
                print(self.container_exec.__doc__)
                return
            if tok == "--user" and rest:
                user, _, rest = rest.partition(" ")
            elif tok.startswith("--user="):
                user = tok[len("--user="):]
            else:
                raise UsageError(f"%container_exec: unrecognized option {tok} (see %container_exec --help)")
            rest = rest.strip()
        name, _, command = rest.partition(" ")
        if not name or not command.strip():
            raise UsageError("%container_exec: needs NAME and CMD (see %container_exec --help)")
        c = self._get(name)
        try:
            p = c.exec(command.strip(), user=user)
        except MruncError as e:
            raise UsageError(str(e)) from None
        _write("stdout", p.stdout)
        _write("stderr", p.stderr)
        if p.returncode != 0:
            from mrunc.sandbox import describe_exit
            _write("stderr", f"✗ exec in {name}: {describe_exit(p.returncode)}\n")

    @magic_arguments()
    @argument("-h", "--help", action="store_true", help="show this help")
    @argument("name", nargs="?", help="the container")
    @line_magic
    def container_inspect(self, line):
        """Show a snapshot of a running container: namespaces, mounts, cgroup, security, processes."""
        a = _parse(self.container_inspect, line, "%container_inspect", needs="name")
        if a is None:
            return
        c = self._get(a.name)
        snap = c.snapshot()
        if snap is None:
            print(f"{a.name} is {c.status}: no process to look at")
            return
        from IPython.display import HTML, display
        from mrunc.notebook import render
        display(HTML(render.page(snap)))

    @magic_arguments()
    @argument("-h", "--help", action="store_true", help="show this help")
    @argument("--interval", type=float, default=0.25, help="seconds between samples")
    @argument("name", nargs="?", help="the container")
    @line_magic
    def container_monitor(self, line):
        """Plot a container's memory, CPU and pids against its limits, live."""
        a = _parse(self.container_monitor, line, "%container_monitor", needs="name")
        if a is None:
            return
        from IPython.display import display
        from mrunc.notebook.widgets import Monitor
        m = Monitor(self._get(a.name), interval=a.interval)
        display(m)
        return None

    @magic_arguments()
    @argument("-h", "--help", action="store_true", help="show this help")
    @argument("names", nargs="*", help="containers")
    @line_magic
    def container_rm(self, line):
        """Stop (SIGKILL) and delete containers."""
        a = _parse(self.container_rm, line, "%container_rm", needs="names")
        if a is None:
            return
        for name in a.names:
            try:
                self.sandbox.remove(name)
            except MruncError as e:
                raise UsageError(str(e)) from None
            print(f"removed {name}")


@magics_class
class NetworkMagics(Magics):
    """%network, %network_ls, %network_show, %network_rm — over the same sandbox as the
    container magics (mrunc.network: lab networks, never the host's)."""

    def __init__(self, shell=None, containers=None):
        super().__init__(shell)
        self.containers = containers    # the ContainerMagics whose sandbox we share

    @property
    def sandbox(self):
        return self.containers.sandbox

    def _call(self, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except MruncError as e:
            raise UsageError(str(e)) from None

    @magic_arguments()
    @argument("-h", "--help", action="store_true", help="show this help")
    @argument("--subnet", help="an IPv4 private subnet, e.g. 10.89.0.0/24 (default: a free 10.89.N.0/24)")
    @argument("--delay", help="netem delay on every container's link: 20ms")
    @argument("--jitter", help="netem jitter around the delay: 5ms")
    @argument("--loss", help="netem packet loss: 1%%")
    @argument("--rate", help="netem rate: 10mbit")
    @argument("--mtu", type=int, default=1500, help="MTU of the bridge and every link")
    @argument("--nat", action="store_true",
              help="let the containers out through the host (CHANGES THE HOST: an uplink, "
                   "ip_forward=1, an nftables masquerade rule; undone on removal)")
    @argument("name", nargs="?", help="the network's name")
    @line_magic
    def network(self, line):
        """Make a lab network: a network namespace of its own with a bridge (the switch) holding
        the gateway address; containers join it with %%container --net NAME."""
        a = _parse(self.network, line, "%network", needs="name")
        if a is None:
            return
        plan = self._call(self.sandbox.network, a.name, a.subnet, delay=a.delay, jitter=a.jitter,
                          loss=a.loss, rate=a.rate, mtu=a.mtu, nat=a.nat)
        print(f"network {plan['name']}: {plan['subnet']}, gateway {plan['gateway']}")

    @magic_arguments()
    @argument("-h", "--help", action="store_true", help="show this help")
    @line_magic
    def network_ls(self, line):
        """List the lab networks: subnet, gateway, shaping, and each container's address."""
        if _parse(self.network_ls, line, "%network_ls") is None:
            return
        rows = self.sandbox.network_ls()
        if not rows:
            print("no networks")
            return
        table = [("NAME", "SUBNET", "GATEWAY", "SHAPING", "CONTAINERS")]
        for r in rows:
            table.append((r["name"], r["subnet"], r["gateway"], r["shaping"] or "-",
                          " ".join(f"{n}={a}" for n, a in r["containers"].items()) or "-"))
        widths = [max(len(t[i]) for t in table) for i in range(4)]
        for t in table:
            print("  ".join(v.ljust(n) for v, n in zip(t, widths, strict=False)) + "  " + t[4])

    @magic_arguments()
    @argument("-h", "--help", action="store_true", help="show this help")
    @argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    @argument("name", nargs="?", help="the network")
    @line_magic
    def network_show(self, line):
        """The live topology of a lab network: namespaces, bridge, veth pairs, addresses, counters."""
        a = _parse(self.network_show, line, "%network_show", needs="name")
        if a is None:
            return
        self._call(self.sandbox.networks.get, a.name)
        from IPython.display import display
        from mrunc.notebook.netview import Topology
        display(Topology(self.sandbox, a.name, interval=a.interval))

    @magic_arguments()
    @argument("-h", "--help", action="store_true", help="show this help")
    @argument("names", nargs="*", help="networks")
    @line_magic
    def network_rm(self, line):
        """Remove lab networks (remove their containers first)."""
        a = _parse(self.network_rm, line, "%network_rm", needs="names")
        if a is None:
            return
        for name in a.names:
            self._call(self.sandbox.network_rm, name)
            print(f"removed network {name}")


def _kv(text):
    k, eq, v = text.partition("=")
    if not eq or not k:
        raise UsageError(f"%%container: --env {text!r}: expected NAME=VALUE")
    return k, v
