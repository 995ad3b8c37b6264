"""The phases of a container's creation: the one list that init, the runtime, `--trace`, the
stepper, the renderer and the docs all follow.

A container is made by two processes (see mrunc.process.init): the **runtime** (`mrunc create`,
on the host side: it writes the id maps, makes the cgroup, runs the runtime's hooks) and the
container's **init** (inside: it unshares, mounts, pivots, drops privileges and finally execs the
user's program). Each phase below is one function, named here as "module:function", so a reader
of the trace or a phase card can open the code that just ran. `also` names the functions of the
other process that take part in the same phase (the runtime's half of clone and cgroup).

    spec        the runtime reads config.json and runs every named check
    clone       fork, unshare the namespaces (user first: the runtime writes its id maps)
    mount       the new root's mounts, /dev (on some layouts the cgroup dirs too: see below)
    pivot_root  the rootfs becomes /, the host's root is detached
    cgroup      the runtime writes the limits; then init is moved in (on v1 it moves itself:
                "0" into `tasks`); *then* init unshares the cgroup namespace (so inside, its
                own cgroup is "/")
    security    rlimits, user, capabilities, no_new_privs, seccomp — as late as possible
    [network]   only with a lab network: the runtime wires the created container, between
                create and start, as an engine's CNI plugins do
    exec        `start` opens exec.fifo; init closes its fds and execve()s the program

The list is the kernel's order, never a story told in a nicer one: where a layout forces a call
early — a container without a cgroup namespace of its own gets its cgroup dirs bound into the
rootfs, so they are made in the mount phase — the record shows the call in the phase it ran in.

Plain tuples and one small class: this module is imported by every `mrunc create`.
"""

# Who runs a phase, and who makes a call in the record (mrunc.record): the runtime, the clone
# child (it unshares, then forks init), init, or a hook's own process.
RUNTIME, CLONE, INIT, HOOK = "runtime", "clone", "init", "hook"


class Phase:
    """One phase: `name` (as --trace prints it), a short `title`, what the `kernel` is asked in
    plain words, which `process` runs it (RUNTIME, CLONE or INIT), the `function` implementing
    it ("module:function"), and `also`, the other process's functions that take part."""

    __slots__ = ("name", "title", "kernel", "process", "function", "also")

    def __init__(self, name, title, kernel, process, function, also=()):
        self.name, self.title, self.kernel = name, title, kernel
        self.process, self.function, self.also = process, function, tuple(also)

    def __repr__(self):
        return f"<Phase {self.name}: {self.function}>"


PHASES = (
    Phase("spec", "read and check config.json",
          "nothing yet: the runtime reads the bundle's config.json and runs each named check",
          RUNTIME, "mrunc.spec:load"),
    Phase("clone", "fork, and unshare the namespaces",
          "fork, then unshare: the new process gets its own user, PID, mount, UTS, IPC and "
          "network namespaces (the runtime writes the user namespace's uid/gid maps)",
          CLONE, "mrunc.process.init:clone_child", ("mrunc.process.parent:write_id_maps",)),
    Phase("mount", "mount the rootfs, /proc, /dev… (still in the host's /)",
          "mount: / made a slave of the host's mounts (nothing goes back), the rootfs bound, "
          "/proc, /dev, /sys… mounted inside it — still under the host's /",
          INIT, "mrunc.process.init:mount_phase"),
    Phase("pivot_root", "make the rootfs / and drop the host's root",
          "pivot_root swaps the root and the host's old root is detached; masked and read-only "
          "paths, hostname",
          INIT, "mrunc.process.init:pivot_root_phase"),
    Phase("cgroup", "create the cgroup, set the limits, move in; then a cgroup namespace",
          "the runtime makes the cgroup directory and writes the limits; then init is moved in (on "
          "cgroup v1 init moves itself: \"0\" into each tasks file the runtime opened for it); then "
          "init unshares the cgroup namespace",
          INIT, "mrunc.process.init:cgroup_phase", ("mrunc.process.parent:join_cgroup",)),
    Phase("security", "rlimits, user, capabilities, no_new_privs, seccomp",
          "setrlimit, setgroups/setresuid, capset, prctl(NO_NEW_PRIVS), seccomp: what the "
          "program may do",
          INIT, "mrunc.process.init:security_phase"),
    Phase("exec", "wait for `start`, then execve the container's program",
          "start opens exec.fifo; init closes its other fds and execve()s the program, which "
          "replaces it as the container's PID 1",
          INIT, "mrunc.process.init:exec_phase"),
)

# Only with a lab network (mrunc.network.step): between security and exec.
NETWORK = Phase("network", "wire it to its lab network (the runtime, before start)",
                "netlink: a veth pair, one end moved into the container, its address and default "
                "route (the runtime, before start)",
                RUNTIME, "mrunc.network.step:run_step")

NAMES = tuple(p.name for p in PHASES)
_BY_NAME = {p.name: p for p in PHASES + (NETWORK,)}


def phases(network=False):
    """The phases in order; with a lab network, `network` between security and exec."""
    return PHASES[:-1] + (NETWORK,) + PHASES[-1:] if network else PHASES


def names(network=False):
    """The phase names in order (see phases)."""
    return tuple(p.name for p in phases(network))


def get(name):
    """The Phase called `name` (KeyError for another name)."""
    return _BY_NAME[name]


def after(name, network=False):
    """The name of the phase that follows `name`, or None after the last one."""
    order = names(network)
    i = order.index(name) + 1
    return order[i] if i < len(order) else None
