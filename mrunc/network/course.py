"""Graded checks for the networking lesson: functions over the kernel's view of a lab (what
`Sandbox.network_show` reads by netlink — the same data the topology view draws), never over the
text a cell printed. Each returns the list of what is wrong, in words; empty means passed."""
from __future__ import annotations

import ipaddress


def _eth0(view):
    return next((i for i in (view or {}).get("interfaces", ()) if i["name"] == "eth0"), None)


def _v4(iface):
    return [a for a in (iface or {}).get("addresses", ()) if ":" not in a]


def can_reach(net: dict, a: str, b: str) -> list[str]:
    """Why container `a` could not reach container `b` over the lab whose view is `net`
    ({"lab": view, "containers": {name: view}}): both need an eth0 that is up, addresses in one
    subnet, and their lab ends enslaved to the same bridge, which must be up."""
    problems = []
    lab = {i["name"]: i for i in (net.get("lab") or {}).get("interfaces", ())}
    subnets = []
    for name in (a, b):
        view = (net.get("containers") or {}).get(name)
        if view is None:
            problems.append(f"{name} is not running on this network")
            continue
        eth0 = _eth0(view)
        if eth0 is None:
            problems.append(f"{name} has no eth0 (only lo): it is not wired to the lab")
            continue
        if not eth0.get("up"):
            problems.append(f"{name}'s eth0 is down")
        addrs = _v4(eth0)
        if not addrs:
            problems.append(f"{name}'s eth0 has no IPv4 address")
        subnets += [ipaddress.ip_interface(x).network for x in addrs]
        # its veth's other end, in the lab: the interface whose index is eth0's peer
        end = next((i for i in lab.values() if i.get("kind") == "veth"
                    and i.get("peer") == eth0.get("index") and eth0.get("peer") == i.get("index")), None)
        if end is None:
            problems.append(f"{name}'s eth0 has no peer in this lab's namespace")
        elif not end.get("master"):
            problems.append(f"{name}'s veth {end['name']} is not enslaved to a bridge")
        elif not (lab.get(end["master"]) or {}).get("up"):
            problems.append(f"the bridge {end['master']} is down")
        else:
            subnets.append(end["master"])
    nets = [s for s in subnets if not isinstance(s, str)]
    bridges = {s for s in subnets if isinstance(s, str)}
    if len(set(nets)) > 1:
        problems.append(f"{a} and {b} are in different subnets ({', '.join(map(str, sorted(set(nets))))})")
    if len(bridges) > 1:
        problems.append(f"{a} and {b} hang on different bridges ({', '.join(sorted(bridges))})")
    return problems


def has_default_route(net: dict, name: str, gateway: str) -> list[str]:
    """Why container `name` has no default route via `gateway`."""
    view = (net.get("containers") or {}).get(name)
    if view is None:
        return [f"{name} is not running on this network"]
    r = next((r for r in view.get("routes", ()) if r.get("dst") == "default"), None)
    if r is None:
        return [f"{name} has no default route"]
    if r.get("gateway") != gateway:
        return [f"{name}'s default route goes via {r.get('gateway')}, not {gateway}"]
    return []
