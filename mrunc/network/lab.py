"""The runtime side of a lab network: netlink requests through pyroute2, each one recorded.

A lab network is a network namespace of its own — the lab's "switch". In it:

    lo (up)    br0 (a Linux bridge, the gateway address, up)    vethN ... (one per container)

For each container, a veth pair is made *inside the lab namespace* (so the host's namespace never
sees even a temporary interface): `vethN` stays and is enslaved to br0; its peer is moved into the
container's network namespace (by the pid of its init), renamed eth0, given its address, brought
up, and given a default route via the gateway. Frames from one container go out of its eth0, come
in on the lab's vethN, and the bridge forwards them to the veth of the container they are for —
as a switch does, learning MAC addresses (its "fdb") from the frames it sees.

Link shaping is a netem qdisc on the lab's end of the pair: it delays (and drops, or paces) what
the switch sends to the container, so a ping between two shaped containers waits twice.

Who calls this: `mrunc network up|down|show PLAN` and `mrunc run --network ATTACH` (between
create and start, as an engine runs its CNI plugins). Those are short single-threaded processes:
pyroute2 opens a socket in another namespace by forking a child that setns()es there, which a
Jupyter kernel (many threads) must not do. This module is the only one that imports pyroute2.
"""
from __future__ import annotations

import json
import os
import time

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..linux import CLONE_NEWNET, MNT_DETACH, MS_BIND, Syscalls
from .plan import BRIDGE, CONTAINER_IF, NetworkError


class Netlink:
    """An IPRoute in one namespace whose requests are written down, so the stepper can show them:
    each record is [request, action, "in <where>", key=value…]."""

    def __init__(self, where, netns, log):
        self.where, self.log = where, log
        self.ipr = IPRoute(netns=netns, flags=0)   # flags=0: never create a namespace by mistake

    def __call__(self, request, action, **kw):
        self.log.append([request, action, f"in {self.where}",
                         *(f"{k}={_short(v)}" for k, v in kw.items())])
        try:
            return getattr(self.ipr, request)(action, **kw)
        except NetlinkError as e:
            raise NetworkError(f"netlink {request} {action} in {self.where} "
                               f"({', '.join(f'{k}={_short(v)}' for k, v in kw.items())}): "
                               f"{os.strerror(e.code)}") from None

    def index(self, name):
        found = self.ipr.link_lookup(ifname=name)
        return found[0] if found else None

    def close(self):
        self.ipr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _short(v):
    return v if not isinstance(v, dict) else json.dumps(v, sort_keys=True)


# ---- the lab namespace ----------------------------------------------------------------------------

def up(plan, log):
    """Make the lab's namespace (pinned by a bind mount on plan["netns"]) and its bridge."""
    sc = Syscalls()
    path = plan["netns"]
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400))
    try:
        _pin_new_netns(sc, path)
    except OSError:
        os.unlink(path)
        raise
    log.extend([[name, *args] for name, args in sc.take_log()])
    try:
        with Netlink(f"lab {plan['name']}", path, log) as lab:
            lab("link", "set", index=lab.index("lo"), state="up")
            lab("link", "add", ifname=BRIDGE, kind="bridge", mtu=plan["mtu"])
            br = lab.index(BRIDGE)
            lab("addr", "add", index=br, address=plan["gateway"], prefixlen=plan["prefixlen"])
            lab("link", "set", index=br, state="up")
            if plan.get("netem"):
                _probe_netem(lab, br)
    except BaseException:
        down(plan, [])
        raise


def _probe_netem(lab, index):
    """Shaping needs the kernel's netem qdisc (CONFIG_NET_SCH_NETEM): try it on the bridge now,
    so a kernel without it is told when the lab is made, not when a container joins."""
    try:
        lab("tc", "add", kind="netem", index=index, delay=1000)
    except NetworkError:
        raise NetworkError("delay/jitter/loss/rate: this kernel has no netem qdisc "
                           "(CONFIG_NET_SCH_NETEM is not set); a lab without shaping works") from None
    lab("tc", "del", kind="netem", index=index)


def netem_available():
    """Can this kernel shape links (tests skip the delay test when not)?"""
    from pyroute2.netlink.rtnl import TC_H_ROOT  # noqa: F401 — pyroute2 is importable
    try:
        with open("/proc/config.gz", "rb") as f:
            import gzip
            conf = gzip.decompress(f.read()).decode()
        return "CONFIG_NET_SCH_NETEM=" in conf
    except OSError:
        return os.path.exists(f"/lib/modules/{os.uname().release}")


def _pin_new_netns(sc, path):
    """unshare(CLONE_NEWNET) moves *this* process into a new namespace; a bind mount of
    /proc/self/ns/net keeps that namespace alive after we go back to ours (as `ip netns add`)."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.unshare(CLONE_NEWNET)
        try:
            sc.mount("/proc/self/ns/net", path, None, MS_BIND)
        finally:
            sc.setns(own, CLONE_NEWNET, "/proc/self/ns/net (back to ours)")
    finally:
        os.close(own)


def down(plan, log):
    """Unpin the lab's namespace. The kernel frees it when the last user is gone, and with it the
    bridge and every lab end of a veth pair — whose container ends vanish with them."""
    path = plan["netns"]
    sc = Syscalls()
    if os.path.ismount(path):
        sc.umount2(path, MNT_DETACH)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    log.extend([[name, *args] for name, args in sc.take_log()])


# ---- attaching a container ------------------------------------------------------------------------

def attach(plan, member, pid, log):
    """Wire the container whose init is `pid` to the lab's bridge (see the module doc)."""
    veth, tmp = member["veth"], member["peer"]
    with Netlink(f"lab {plan['name']}", plan["netns"], log) as lab:
        lab("link", "add", ifname=veth, kind="veth", peer=tmp, mtu=plan["mtu"])
        v, p = lab.index(veth), lab.index(tmp)
        lab("link", "set", index=v, master=lab.index(BRIDGE))
        lab("link", "set", index=p, net_ns_pid=pid)
        lab("link", "set", index=v, state="up")
        if plan.get("netem"):
            lab("tc", "add", kind="netem", index=v, **_netem_args(plan["netem"]))
    with Netlink(f"container {member['container']}", f"/proc/{pid}/ns/net", log) as ctr:
        i = ctr.index(tmp)
        ctr("link", "set", index=i, ifname=CONTAINER_IF, mtu=plan["mtu"])
        ctr("addr", "add", index=i, address=member["address"], prefixlen=plan["prefixlen"])
        ctr("link", "set", index=i, state="up")
        lo = ctr.index("lo")
        ctr("link", "set", index=lo, state="up")
        ctr("route", "add", dst="0.0.0.0/0", gateway=plan["gateway"])


def _netem_args(netem):
    out = {}
    if netem.get("delay_us"):
        out["delay"] = netem["delay_us"]
    if netem.get("jitter_us"):
        out["jitter"] = netem["jitter_us"]
    if netem.get("loss_pct"):
        out["loss"] = netem["loss_pct"]
    if netem.get("rate_bps"):
        out["rate"] = f"{netem['rate_bps']}bit"
    return out


def detach(plan, member, log):
    """Remove a container's veth pair now (it goes anyway when the container's namespace dies)."""
    if not os.path.exists(plan["netns"]):
        return
    with Netlink(f"lab {plan['name']}", plan["netns"], log) as lab:
        i = lab.index(member["veth"])
        if i is not None:
            lab("link", "del", index=i)


# ---- looking: the same data for the stepper, the topology view and tests --------------------------

def view(netns, where):
    """Interfaces (with addresses, state, counters, bridge and veth peer), routes and neighbours
    of one namespace, as plain JSON-able data."""
    ipr = IPRoute(netns=netns, flags=0)
    try:
        return _view(ipr, where)
    finally:
        ipr.close()


def _view(ipr, where):
    links = {}
    for m in ipr.get_links():
        info = m.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info else None
        st = m.get_attr("IFLA_STATS64") or {}
        links[m["index"]] = {
            "index": m["index"], "name": m.get_attr("IFLA_IFNAME"), "kind": kind or "",
            "up": bool(m["flags"] & 1), "state": (m.get_attr("IFLA_OPERSTATE") or "").lower(),
            "mtu": m.get_attr("IFLA_MTU"), "mac": m.get_attr("IFLA_ADDRESS"),
            "master": m.get_attr("IFLA_MASTER"), "peer": m.get_attr("IFLA_LINK"),
            "rx_bytes": st.get("rx_bytes", 0), "tx_bytes": st.get("tx_bytes", 0),
            "rx_packets": st.get("rx_packets", 0), "tx_packets": st.get("tx_packets", 0),
            "addresses": [], "qdisc": ""}
    for a in ipr.get_addr(family=2):
        if a["index"] in links:
            links[a["index"]]["addresses"].append(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}")
    for q in ipr.get_qdiscs():
        if q["index"] in links and q.get_attr("TCA_KIND") == "netem" and q["parent"] == 0xFFFFFFFF:
            links[q["index"]]["qdisc"] = "netem"
    for link in links.values():
        link["master"] = links[link["master"]]["name"] if link["master"] in links else None
    name = {i: link["name"] for i, link in links.items()}
    routes = []
    for r in ipr.get_routes(family=2, table=254):
        dst = r.get_attr("RTA_DST")
        routes.append({"dst": f"{dst}/{r['dst_len']}" if dst else "default",
                       "gateway": r.get_attr("RTA_GATEWAY"), "dev": name.get(r.get_attr("RTA_OIF")),
                       "src": r.get_attr("RTA_PREFSRC")})
    neigh = []
    for n in ipr.get_neighbours(family=2):
        neigh.append({"address": n.get_attr("NDA_DST"), "mac": n.get_attr("NDA_LLADDR"),
                      "dev": name.get(n["ifindex"]), "state": _nud(n["state"])})
    return {"where": where, "taken_at": time.time(), "interfaces": list(links.values()),
            "routes": routes, "neighbours": neigh}


_NUD = {0x01: "incomplete", 0x02: "reachable", 0x04: "stale", 0x08: "delay", 0x10: "probe",
        0x20: "failed", 0x40: "noarp", 0x80: "permanent"}


def _nud(state):
    return _NUD.get(state, str(state))
