"""The `network` step: between create and start, the runtime wires the created container to its
lab network — what an engine does with CNI plugins while the container's init waits on exec.fifo.

`mrunc run --network FILE` calls `run_step` after create: FILE (written by the sandbox) holds the
lab's plan and this container's place in it (address, veth names). The step is reported like every
phase: its netlink requests, its time, and — when someone is stepping — what the container's and the
lab's namespaces look like now (interfaces, addresses, routes, neighbours).
"""
import json
import time


def load(path):
    from .plan import NetworkError
    try:
        with open(path) as f:
            att = json.load(f)
        return att["lab"], att["member"]
    except (OSError, ValueError, KeyError) as e:
        raise NetworkError(f"--network {path}: not a network attachment ({e})") from None


def hold_netns(path):
    """Rootless: a fresh network namespace for the container, owned by the lab's user namespace
    and held by a child until init has joined it (lab.NetnsHolder). Root: None — init makes its
    own, and root may reach it through /proc/<init>/ns/net."""
    plan, _member = load(path)
    if not plan.get("holder"):
        return None
    from . import lab as netlab
    return netlab.NetnsHolder(plan)


def run_step(path, pid, events, netns=None):
    """Wire the created container `pid` to its lab network (plan and place read from `path`),
    then report the step: its netlink requests, its time, and the views if someone is stepping."""
    from . import lab as netlab
    plan, member = load(path)
    t0 = time.perf_counter()
    log, times = [], []
    try:
        netlab.attach(plan, member, pid, log, netns=netns, times=times)
    except Exception as e:
        e.phase = "network"             # the stepper marks this step as the one that failed
        raise
    ms = round((time.perf_counter() - t0) * 1000, 3)
    # The requests in the runtime's phase record, in order, each with its own time: taken around
    # the pyroute2 request, by us or (rootless) by the helper that joined the lab's user namespace.
    calls = [{"call": c[0], "args": list(c[1:]), "who": "runtime", "pid": pid_, "t": round(t, 6),
              "ms": ms} for c, (t, ms, pid_) in zip(log, times, strict=True)]
    views = None
    if getattr(events, "step", None) is not None:
        seen = netlab.views(plan, {member["container"]: netns or pid})
        views = {"container": seen["containers"].get(member["container"]), "lab": seen["lab"]}
    events.phase("network", ms, calls, pid, network=views)
