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


def run_step(path, pid, events):
    from . import lab as netlab
    plan, member = load(path)
    t0 = time.perf_counter()
    log = []
    try:
        netlab.attach(plan, member, pid, log)
    except Exception as e:
        e.phase = "network"             # the stepper marks this step as the one that failed
        raise
    ms = round((time.perf_counter() - t0) * 1000, 3)
    views = None
    if getattr(events, "step", None) is not None:
        views = {"container": netlab.view(f"/proc/{pid}/ns/net", f"container {member['container']}"),
                 "lab": netlab.view(plan["netns"], f"lab {plan['name']}")}
    events.phase("network", ms, log, pid, network=views)
