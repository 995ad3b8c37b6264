"""The sandbox's lab networks: plans kept in a per-user directory, carried out by `mrunc network`.

The notebook's process plans (names, subnets, addresses, hosts files) and never sends a netlink
request itself: requests into another namespace need a setns()-ing child, and a Jupyter kernel must
not fork. `mrunc network up PLAN` makes the lab; each container is wired by its own `mrunc run
--network FILE` between create and start; `mrunc network down PLAN` ends it.

Files, in `<sandbox root>.net/` (mode 0700, ours — checked at each use):
    <lab>.json    the plan: subnet, gateway, netem, members and their addresses, the owner process
    <lab>.netns   the lab's network namespace, pinned by a bind mount
and in each member's bundle: network.json (its attachment) and hosts (bind-mounted on /etc/hosts,
rewritten in place when a peer comes or goes — as engines keep their hosts files).
"""
from __future__ import annotations

import json
import os
import subprocess
import threading

from . import plan as P
from .plan import NetworkError

HOST_CHANGE = ("nat=True changes the HOST: it adds an interface (the lab's uplink) with a route, "
               "sets net.ipv4.ip_forward=1 and adds an nftables masquerade rule in the host's "
               "network namespace (all undone when the network is removed)")


def _nat_plan(name):
    """The uplink's names and its /30 in 169.254.0.0/16 (link-local: never routed beyond the
    host), picked at random so two labs do not clash."""
    import secrets
    tag = secrets.token_hex(3)
    k, m = secrets.randbelow(256), secrets.randbelow(64) * 4
    return {"uplink": f"mrunc-{tag}", "host_ip": f"169.254.{k}.{m + 1}",
            "lab_ip": f"169.254.{k}.{m + 2}", "table": f"mrunc_{name.replace('-', '_').replace('.', '_')}_{tag}"}


class Networks:
    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.dir = sandbox.root.rstrip("/") + ".net"
        self.labs: dict[str, dict] = {}
        self._lock = threading.RLock()      # a live topology view reads from its own thread

    # -- making and removing --
    def create(self, name, subnet=None, *, delay=None, jitter=None, loss=None, rate=None, mtu=1500,
               nat=False) -> dict:
        P.check_name(name)
        if name in self.labs or os.path.exists(os.path.join(self.dir, name + ".json")):
            raise NetworkError(f"a network named {name!r} already exists (remove it first)")
        taken = {n: p["subnet"] for n, p in self.labs.items()}
        net = P.parse_subnet(subnet if subnet is not None else P.default_subnet(taken), taken)
        netem = P.parse_netem(delay=delay, jitter=jitter, loss=loss, rate=rate)
        if nat and self.sandbox.rootless:
            raise NetworkError("nat: needs root (it changes the host's network namespace)")
        if nat:
            import sys
            print(f"mrunc: warning: network {name}: {HOST_CHANGE}", file=sys.stderr)
            nat = _nat_plan(name)
        P.private_dir(self.dir)
        from ..state import proc_start_time
        plan = {"name": name, "subnet": str(net), "gateway": P.gateway(net),
                "prefixlen": net.prefixlen, "mtu": P.check_mtu(mtu), "netem": netem, "nat": nat or False,
                "bridge": P.BRIDGE, "netns": os.path.join(self.dir, name + ".netns"),
                "rootless": bool(self.sandbox.rootless),
                "owner": [os.getpid(), proc_start_time(os.getpid())[0]], "members": {}}
        self._save(plan)
        try:
            out = self._cli("up", name)
        except NetworkError:
            os.unlink(self._path(name))
            raise
        plan.update(out["update"])          # rootless: the holder process and its namespaces
        plan["calls"] = out["calls"]
        self._save(plan)
        self.labs[name] = plan
        return plan

    def remove(self, name):
        plan = self.get(name)
        if plan["members"]:
            raise NetworkError(f"network {name!r} is in use by {', '.join(plan['members'])} "
                               "(remove those containers first)")
        self._cli("down", name)
        del self.labs[name]

    def close(self):
        for name in list(self.labs):
            try:
                self._cli("down", name)
            except NetworkError:
                pass
            self.labs.pop(name, None)
        try:
            os.rmdir(self.dir)
        except OSError:
            pass

    def sweep(self):
        """Remove the labs of a sandbox that died (a SIGKILLed kernel)."""
        if os.path.isdir(self.dir):
            self.sandbox.cli("network", "sweep", self.dir, check=False)

    # -- looking --
    def get(self, name) -> dict:
        if name not in self.labs:
            known = ", ".join(self.labs) or "none yet: lab.network(name)"
            raise NetworkError(f"unknown network {name!r} (networks: {known})")
        return self.labs[name]

    def ls(self) -> list[dict]:
        return [{"name": p["name"], "subnet": p["subnet"], "gateway": p["gateway"], "mtu": p["mtu"],
                 "shaping": P.describe_netem(p["netem"]),
                 "containers": {n: m["address"] for n, m in p["members"].items()}}
                for p in self.labs.values()]

    def show(self, name) -> dict:
        """The kernel's view of the lab and of its running containers (`mrunc network show`)."""
        plan = self.get(name)
        with self._lock:
            for cname, m in list(plan["members"].items()):
                c = self.sandbox.containers.get(cname)
                m["pid"] = c.pid if c is not None else None
            self._save(plan)
        return self._cli("show", name)

    # -- members --
    def configure(self, cfg, bundle, name):
        """What a container on network `name` gets in its config.json, as engines give it:
        /etc/hosts bind-mounted from the bundle; ping without CAP_NET_RAW (ICMP "ping sockets"
        for every group — a sysctl of the container's own network namespace, not the host's).
        Rootless, it joins the lab's user namespace (see lab.py), so that namespace owns its
        network namespace too."""
        plan = self.get(name)
        cfg.setdefault("mounts", []).append(
            {"destination": "/etc/hosts", "type": "bind", "source": os.path.join(bundle, "hosts"),
             "options": ["rbind", "rw"]})
        linux = cfg.setdefault("linux", {})
        if plan.get("userns"):
            for ns in linux.get("namespaces", []):
                if ns.get("type") == "user":
                    ns["path"] = plan["userns"]
            linux.pop("uidMappings", None)      # a joined namespace has its maps already
            linux.pop("gidMappings", None)
        else:
            linux.setdefault("sysctl", {})["net.ipv4.ping_group_range"] = "0 2147483647"

    def join(self, container, name) -> dict:
        """Give `container` (its bundle made, not yet created) an address and veth names on
        network `name`; write its attachment and hosts files."""
        with self._lock:
            return self._join(container, self.get(name))

    def _join(self, container, plan):
        import ipaddress
        used = {m["address"] for m in plan["members"].values()}
        address = P.allocate(ipaddress.IPv4Network(plan["subnet"]), used)
        n = plan.setdefault("next", 1)
        plan["next"] = n + 1
        veths = {m["veth"] for m in plan["members"].values()}
        veth = f"v-{container.name}"[:15]
        if veth in veths:
            veth = f"veth{n}"
        member = {"container": container.name, "address": address, "veth": veth, "peer": f"p{n}"}
        plan["members"][container.name] = member
        self._save(plan)
        with open(os.path.join(container.bundle, "network.json"), "w") as f:
            json.dump({"lab": {k: v for k, v in plan.items() if k != "members"}, "member": member}, f)
        self._write_hosts(plan)
        return member

    def leave(self, container):
        with self._lock:
            for plan in self.labs.values():
                if plan["members"].pop(container.name, None) is not None:
                    self._save(plan)
                    self._write_hosts(plan)

    def _write_hosts(self, plan):
        """Every member's /etc/hosts lists every member: rewritten in place (same inode), since
        the file is bind-mounted into the running containers."""
        peers = [(n, m["address"]) for n, m in plan["members"].items()]
        for n, m in list(plan["members"].items()):
            c = self.sandbox.containers.get(n)
            if c is None or not c.bundle:
                continue
            path = os.path.join(c.bundle, "hosts")
            try:
                with open(path, "r+" if os.path.exists(path) else "w") as f:
                    f.write(P.hosts_text(n, m["address"], peers))
                    f.truncate()
            except OSError:
                pass

    # -- internals --
    def _path(self, name):
        return os.path.join(self.dir, name + ".json")

    def _save(self, plan):
        tmp = self._path(plan["name"]) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(plan, f)
        os.replace(tmp, self._path(plan["name"]))

    def _cli(self, action, name):
        try:
            p = self.sandbox.cli("network", action, self._path(name), check=True)
        except subprocess.TimeoutExpired:
            raise NetworkError(f"network {action} {name}: mrunc did not answer") from None
        except Exception as e:  # the sandbox's one-line error
            raise NetworkError(str(e)) from None
        return json.loads(p.stdout) if p.stdout.strip() else None
