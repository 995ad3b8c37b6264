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

**Rootless.** Without root, nothing can be bind-mounted to pin a namespace, and the host's user
namespace gives no right to configure another's network. So a rootless lab is a *holder* process:
it unshares a user namespace (mapping the user's uid to root, as `unshare -r`) together with the
lab's network namespace, builds the bridge in it, and then sleeps, keeping both alive. Containers on
the lab *join that user namespace* (their config names it by path) and unshare their own network
namespace inside it, so everything of the lab — the switch and every container's network — is
owned by one user namespace that the user owns. To wire a container, a child of the runtime first
setns()es into that user namespace (root there, nobody anywhere else), then does what root does.
"""
from __future__ import annotations

import json
import os
import time

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from ..linux import CLONE_NEWNET, CLONE_NEWUSER, MNT_DETACH, MS_BIND, Syscalls
from .plan import BRIDGE, CONTAINER_IF, NetworkError


class Netlink:
    """An IPRoute in one namespace whose requests are written down, so the stepper can show them:
    each record is [request, action, "in <where>", key=value…]. With `times`, each request's
    (start, ms, pid) goes there too, in step — for the phase record (mrunc.network.step)."""

    def __init__(self, where, netns, log, times=None):
        self.where, self.log, self.times = where, log, times
        self.ipr = IPRoute(netns=netns, flags=0)   # flags=0: never create a namespace by mistake

    def __call__(self, request, action, **kw):
        self.log.append([request, action, f"in {self.where}",
                         *(f"{k}={_short(v)}" for k, v in kw.items())])
        t, t0 = time.time(), time.perf_counter()
        try:
            return getattr(self.ipr, request)(action, **kw)
        except NetlinkError as e:
            raise NetworkError(f"netlink {request} {action} in {self.where} "
                               f"({', '.join(f'{k}={_short(v)}' for k, v in kw.items())}): "
                               f"{os.strerror(e.code)}") from None
        finally:
            if self.times is not None:
                self.times.append((t, round((time.perf_counter() - t0) * 1000, 3), os.getpid()))

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
    """Make the lab's namespace and its bridge. Returns what the plan must learn: for a rootless
    lab, the holder process and its namespaces' paths."""
    if plan.get("rootless"):
        return _up_rootless(plan, log)
    sc = Syscalls()
    path = plan["netns"]
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400))
    try:
        _pin_new_netns(sc, path)
    except OSError:
        os.unlink(path)
        raise
    log.extend([[name, *args] for name, args in sc.take_log()])
    update = {}
    try:
        _make_switch(plan, path, log)
        if plan.get("nat"):
            update = _nat_up(plan, log)
    except BaseException:
        down({**plan, **update}, [])
        raise
    return update


def _make_switch(plan, netns, log):
    with Netlink(f"lab {plan['name']}", netns, log) as lab:
        lab("link", "set", index=lab.index("lo"), state="up")
        lab("link", "add", ifname=BRIDGE, kind="bridge", mtu=plan["mtu"])
        br = lab.index(BRIDGE)
        lab("addr", "add", index=br, address=plan["gateway"], prefixlen=plan["prefixlen"])
        lab("link", "set", index=br, state="up")
        if plan.get("netem"):
            _probe_netem(lab, br)


def _up_rootless(plan, log):
    """Fork the holder (see the module doc): it reports its calls (or its error) on a pipe, then
    execs `sleep infinity` — the pipe closes with the exec, and the namespaces stay."""
    import shutil
    sleep = shutil.which("sleep") or "/bin/sleep"
    uid, gid = os.geteuid(), os.getegid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # the holder
        try:
            os.close(r)
            os.setsid()                             # not in the caller's session: it outlives it
            sc = Syscalls()
            sc.unshare(CLONE_NEWUSER | CLONE_NEWNET)
            sc.write_file("/proc/self/setgroups", "deny")
            sc.write_file("/proc/self/uid_map", f"0 {uid} 1")
            sc.write_file("/proc/self/gid_map", f"0 {gid} 1")
            calls = [[name, *args] for name, args in sc.take_log()]
            _make_switch(plan, None, calls)
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.write(w, json.dumps({"calls": calls}).encode())
            os.execv(sleep, ["sleep", "infinity"])
        except BaseException as e:  # noqa: BLE001 — whatever it was goes home as one line
            os.write(w, json.dumps({"error": str(e)}).encode())
        os._exit(1)
    os.close(w)
    with os.fdopen(r) as f:
        out = json.loads(f.read() or '{"error": "the lab holder died"}')
    if "error" in out:
        os.waitpid(pid, 0)
        raise NetworkError(f"network {plan['name']}: {out['error']}")
    log.extend(out["calls"])
    from ..state import proc_start_time
    return {"holder": [pid, proc_start_time(pid)[0]], "netns": f"/proc/{pid}/ns/net",
            "userns": f"/proc/{pid}/ns/user"}


class NetnsHolder:
    """A rootless container's network namespace, made before create by a child that joined the
    lab's user namespace; the container's init joins it by path (/proc/<child>/ns/net).

    Why not init's own: until it execs, init is not dumpable (mrunc.process.init), so only a
    caller with CAP_SYS_PTRACE over the host's user namespace may open /proc/<init>/ns/net — root
    can, the user cannot. The child is ours to open. It waits on a pipe; release() closes it and
    the child exits: from then on the namespace lives as long as the container, and its veth pair
    goes with it."""

    def __init__(self, plan):
        ready_r, ready_w = os.pipe()
        self._hold_r, self._hold_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(ready_r)
                os.close(self._hold_w)
                sc = Syscalls()
                fd = os.open(plan["userns"], os.O_RDONLY | os.O_CLOEXEC)
                sc.setns(fd, CLONE_NEWUSER, plan["userns"])
                sc.unshare(CLONE_NEWNET)
                os.write(ready_w, b"1")
                os.read(self._hold_r, 1)             # until release() (or our parent's death)
            except BaseException as e:  # noqa: BLE001
                os.write(ready_w, b"E" + str(e).encode())
            os._exit(0)
        os.close(ready_w)
        os.close(self._hold_r)
        with os.fdopen(ready_r, "rb") as f:
            got = f.read(1)
            rest = f.read() if got == b"E" else b""
        if got != b"1":
            self.release()
            raise NetworkError(f"network {plan['name']}: cannot make the container's network "
                               f"namespace: {rest.decode(errors='replace') or 'the helper died'}")
        self.path = f"/proc/{self.pid}/ns/net"

    def release(self):
        if self._hold_w is not None:
            os.close(self._hold_w)
            self._hold_w = None
            os.waitpid(self.pid, 0)


def holder_alive(plan):
    """The rootless lab's holder is the process we started (not a recycled pid)."""
    from ..state import alive_as
    pid, start = plan["holder"]
    return alive_as(pid, start)


def as_lab(plan, fn, *args):
    """fn(*args) with the rights over the lab: here (root), or in a child that joined the lab's
    user namespace (rootless; setns into a user namespace needs a single-threaded process, and
    would change us for good). The result travels back as JSON."""
    if not plan.get("holder"):
        return fn(*args)
    if not holder_alive(plan):
        raise NetworkError(f"network {plan['name']}: its namespace is gone (holder "
                           f"{plan['holder'][0]} exited)")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            fd = os.open(plan["userns"], os.O_RDONLY | os.O_CLOEXEC)
            Syscalls().setns(fd, CLONE_NEWUSER, plan["userns"])
            out = {"result": fn(*args)}
        except OSError as e:
            out = {"error": f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")}
        except BaseException as e:  # noqa: BLE001
            out = {"error": str(e)}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    out = json.loads(data or '{"error": "the helper died"}')
    if "error" in out:
        raise NetworkError(out["error"])
    return out["result"]


# ---- NAT: the one thing that changes the host -----------------------------------------------------

def _nat_up(plan, log):
    """nat=True: an uplink from the lab to *our* network namespace (the host's, or whichever the
    runtime runs in), the lab's default route through it, and in our namespace: a route back to
    the lab's subnet, net.ipv4.ip_forward=1 and an nftables masquerade rule for the subnet — so
    the containers reach whatever we reach, under our address. This is the only code that
    changes the namespace it runs in; down() undoes it."""
    nat = plan["nat"]                       # {"uplink", "host_ip", "lab_ip", "table"} (labs.py)
    sc = Syscalls()
    ours = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    update = {"nat": {**nat}}
    try:
        with Netlink(f"lab {plan['name']}", plan["netns"], log) as lab:
            lab("link", "add", ifname="uplink", kind="veth", peer=nat["uplink"])
            lab("link", "set", index=lab.index(nat["uplink"]), net_ns_fd=ours)
            up = lab.index("uplink")
            lab("addr", "add", index=up, address=nat["lab_ip"], prefixlen=30)
            lab("link", "set", index=up, state="up")
            lab("route", "add", dst="0.0.0.0/0", gateway=nat["host_ip"])
        _sysctl_in(sc, plan["netns"], "/proc/sys/net/ipv4/ip_forward", "1")
        with Netlink("the host", None, log) as host:
            i = host.index(nat["uplink"])
            host("addr", "add", index=i, address=nat["host_ip"], prefixlen=30)
            host("link", "set", index=i, state="up")
            host("route", "add", dst=plan["subnet"], gateway=nat["lab_ip"])
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            update["nat"]["forward_was"] = f.read().strip()
        if update["nat"]["forward_was"] != "1":
            sc.write_file("/proc/sys/net/ipv4/ip_forward", "1")
        _masquerade(nat["table"], plan["subnet"], log)
    finally:
        os.close(ours)
        log.extend([[name, *args] for name, args in sc.take_log()])
    return update


def _sysctl_in(sc, netns, path, value):
    """Write a network sysctl of another namespace: /proc/sys/net shows the namespace of whoever
    opens it, so step in (setns), write, step back."""
    ours = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    theirs = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        sc.setns(theirs, CLONE_NEWNET, netns)
        try:
            sc.write_file(path, value)
        finally:
            sc.setns(ours, CLONE_NEWNET, "/proc/self/ns/net (back to ours)")
    finally:
        os.close(ours)
        os.close(theirs)


def _masquerade(table, subnet, log):
    """nft add table ip TABLE; add chain … { type nat hook postrouting priority 100 };
    add rule … ip saddr SUBNET masquerade — through pyroute2's nftables socket."""
    from pyroute2.nftables.expressions import ipv4addr, masq
    from pyroute2.nftables.main import NFTables
    nft = NFTables(nfgen_family=2)          # NFPROTO_IPV4
    try:
        log.append(["nft", "add table", f"ip {table}"])
        nft.table("add", name=table)
        log.append(["nft", "add chain", f"ip {table} postrouting", "type nat hook postrouting priority 100"])
        nft.chain("add", table=table, name="postrouting", hook="postrouting", type="nat", priority=100)
        log.append(["nft", "add rule", f"ip {table} postrouting", f"ip saddr {subnet} masquerade"])
        nft.rule("add", table=table, chain="postrouting", expressions=(ipv4addr(src=subnet), masq()))
    finally:
        nft.close()


def _nat_down(plan, log):
    nat = plan["nat"]
    from pyroute2.nftables.main import NFTables
    nft = NFTables(nfgen_family=2)
    try:
        if any(t.get_attr("NFTA_TABLE_NAME") == nat["table"] for t in nft.get_tables()):
            log.append(["nft", "delete table", f"ip {nat['table']}"])
            nft.table("del", name=nat["table"])
    finally:
        nft.close()
    with IPRoute() as host:
        found = host.link_lookup(ifname=nat["uplink"])
        if found:
            log.append(["link", "del", "in the host", f"ifname={nat['uplink']}"])
            host.link("del", index=found[0])
    if nat.get("forward_was") == "0":
        Syscalls().write_file("/proc/sys/net/ipv4/ip_forward", "0")
        log.append(["write", "/proc/sys/net/ipv4/ip_forward", "0"])


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
    if plan.get("holder"):
        if holder_alive(plan):
            import signal
            log.append(["kill", plan["holder"][0], "SIGKILL"])
            os.kill(plan["holder"][0], signal.SIGKILL)
        return
    if isinstance(plan.get("nat"), dict):
        _nat_down(plan, log)
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

def attach(plan, member, pid, log, netns=None, times=None):
    """Wire the container whose init is `pid` to the lab's bridge (see the module doc). `netns`:
    the path of its network namespace, when not /proc/<pid>/ns/net (rootless: NetnsHolder).
    `times`: gets each request's (start, ms, pid), in the order of `log`."""
    calls, timed = as_lab(plan, _attach, plan, member, pid, netns or f"/proc/{pid}/ns/net")
    log.extend(calls)
    if times is not None:
        times.extend(tuple(x) for x in timed)


def _attach(plan, member, pid, netns):
    log, times = [], []
    veth, tmp = member["veth"], member["peer"]
    with Netlink(f"lab {plan['name']}", plan["netns"], log, times) as lab:
        lab("link", "add", ifname=veth, kind="veth", peer=tmp, mtu=plan["mtu"])
        v, p = lab.index(veth), lab.index(tmp)
        lab("link", "set", index=v, master=lab.index(BRIDGE))
        lab("link", "set", index=p, net_ns_pid=pid)
        lab("link", "set", index=v, state="up")
        if plan.get("netem"):
            lab("tc", "add", kind="netem", index=v, **_netem_args(plan["netem"]))
    with Netlink(f"container {member['container']}", netns, log, times) as ctr:
        i = ctr.index(tmp)
        ctr("link", "set", index=i, ifname=CONTAINER_IF, mtu=plan["mtu"])
        ctr("addr", "add", index=i, address=member["address"], prefixlen=plan["prefixlen"])
        ctr("link", "set", index=i, state="up")
        lo = ctr.index("lo")
        ctr("link", "set", index=lo, state="up")
        ctr("route", "add", dst="0.0.0.0/0", gateway=plan["gateway"])
    return log, times


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


# ---- looking: the same data for the stepper, the topology view and tests --------------------------

def views(plan, pids):
    """view() of the lab and of each container ({name: pid, or its netns path}), with the lab's
    rights."""
    def look():
        out = {"lab": view(plan["netns"], f"lab {plan['name']}"), "containers": {}}
        for name, pid in pids.items():
            path = pid if isinstance(pid, str) else f"/proc/{pid}/ns/net"
            try:
                out["containers"][name] = view(path, f"container {name}")
            except Exception:  # noqa: BLE001 — it exited while we looked
                pass
        return out
    return as_lab(plan, look)


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
