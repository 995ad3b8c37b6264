"""The lab network's pictures and controls without a kernel: the topology SVG from frozen views,
the routes/neighbour tables, the stepper's network step in render.page, the live Topology widget
over a fake sandbox whose counters move, and the %network magics."""
import copy
import re

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from mrunc.notebook import render, topology
from mrunc.sandbox import PHASES, SandboxError


def iface(index, name, kind="", up=True, peer=None, master=None, addresses=(), rx=0, tx=0, qdisc=""):
    return {"index": index, "name": name, "kind": kind, "up": up, "state": "up" if up else "down",
            "mtu": 1500, "mac": "aa:bb:cc:dd:ee:%02x" % index, "master": master, "peer": peer,
            "rx_bytes": rx, "tx_bytes": tx, "rx_packets": 0, "tx_packets": 0,
            "addresses": list(addresses), "qdisc": qdisc}


def views(tx_a=1234, up_b=True):
    lab = {"where": "lab net0", "interfaces": [
        iface(1, "lo", up=True, addresses=["127.0.0.1/8"]),
        iface(2, "br0", "bridge", addresses=["10.89.0.1/24"]),
        iface(4, "v-a", "veth", peer=3, master="br0", qdisc="netem"),
        iface(6, "v-b", "veth", peer=3, master="br0", up=up_b)],
        "routes": [{"dst": "10.89.0.0/24", "gateway": None, "dev": "br0", "src": "10.89.0.1"}],
        "neighbours": [{"address": "10.89.0.2", "mac": "aa:bb:cc:dd:ee:03", "dev": "br0",
                        "state": "reachable"}]}

    def ctr(name, addr, tx):
        return {"where": f"container {name}", "interfaces": [
            iface(1, "lo", addresses=["127.0.0.1/8"]),
            iface(3, "eth0", "veth", peer=4 if name == "a" else 6, addresses=[f"{addr}/24"], tx=tx,
                  rx=77)],
            "routes": [{"dst": "default", "gateway": "10.89.0.1", "dev": "eth0", "src": None},
                       {"dst": "10.89.0.0/24", "gateway": None, "dev": "eth0", "src": addr}],
            "neighbours": [{"address": "10.89.0.3" if name == "a" else "10.89.0.2",
                            "mac": "aa:bb:cc:dd:ee:09", "dev": "eth0", "state": "reachable"}]}
    return {"lab": lab, "containers": {"a": ctr("a", "10.89.0.2", tx_a), "b": ctr("b", "10.89.0.3", 5)},
            "shaping": "delay 20ms"}


def test_svg_draws_namespaces_bridge_and_wires():
    s = topology.svg(views(up_b=False), title="lab net0")
    assert s.startswith('<svg class="mrunc-topology"') and s.endswith("</svg>")
    assert "br0 (bridge) 10.89.0.1/24" in s
    assert s.count('class="mr-container"') == 2 and s.count('class="mr-wire"') == 2
    assert "eth0 10.89.0.2/24" in s and "eth0 10.89.0.3/24" in s
    assert "default via 10.89.0.1" in s and "delay 20ms" in s
    assert "v-a ⏱" in s                      # the shaped link is marked
    # a's wire is up (solid, green); b's lab end is down: dashed
    wires = dict(re.findall(r'class="mr-wire" data-container="(\w)"[^>]*?stroke="([^"]+)"', s))
    assert "success" in wires["a"] and "success" not in wires["b"]
    assert re.search(r'data-container="b"[^>]*stroke-dasharray', s)
    assert "↑1.2 KiB ↓77 B" in s             # a's eth0 counters on its wire


def test_counters_change_the_picture_and_names_are_escaped():
    v = views()
    v2 = copy.deepcopy(v)
    v2["containers"]["a"]["interfaces"][1]["tx_bytes"] = 99999
    assert topology.svg(v) != topology.svg(v2)
    v2["containers"]["<x>"] = v2["containers"].pop("b")
    assert "<x>" not in topology.svg(v2) and "&lt;x&gt;" in topology.svg(v2)


def test_empty_lab_and_tables():
    s = topology.svg({"lab": views()["lab"], "containers": {}})
    assert "no container attached yet" in s
    t = topology.tables(views()["containers"]["a"])
    assert "<td>default</td><td>10.89.0.1</td><td>eth0</td>" in t
    assert "<td>10.89.0.3</td><td>aa:bb:cc:dd:ee:09</td><td>eth0</td><td>reachable</td>" in t
    fig = topology.figure(views(), all_tables=True)
    assert fig.count('class="mrunc-net-tables"') == 3
    assert topology.figure(views(), selected="b").count('class="mrunc-net-tables"') == 1
    assert 'mr-box mr-sel' in topology.figure(views(), selected="b")


def test_the_stepper_page_shows_the_network_step():
    from mrunc.snapshot import Snapshot
    phases = PHASES[:-1] + ("network", "exec")
    net = views()
    ev = {"phase": "network", "ms": 12.5, "calls": [["link", "add", "in lab net0", "ifname=v-a",
                                                      "kind=veth", "peer=p1", "mtu=1500"]],
          "network": {"lab": net["lab"], "container": net["containers"]["a"]}}
    html = render.page(Snapshot(pid=1, taken_at=0.0), None, ev, phases=phases)
    assert "The lab network now" in html and '<svg class="mrunc-topology"' in html
    assert "container a" in html and "ifname=v-a" in html
    assert re.search(r'mr-now".*?network', html)       # the phase bar has the network step
    assert "wire it to its lab network" in html


class FakeNetSandbox:
    closed = closing = False

    def __init__(self):
        self.tx = 100
        self.made, self.removed = [], []
        self.networks = self

    def network_show(self, name):
        if name != "net0":
            raise SandboxError(f"unknown network {name!r}")
        self.tx += 1000                           # a ping is running: the counter moves
        return views(tx_a=self.tx)

    def network_ls(self):
        return [{"name": "net0", "subnet": "10.89.0.0/24", "gateway": "10.89.0.1", "mtu": 1500,
                 "shaping": "delay 20ms", "containers": {"a": "10.89.0.2", "b": "10.89.0.3"}}]

    def get(self, name):
        if name != "net0":
            raise SandboxError(f"unknown network {name!r} (networks: net0)")

    def network(self, name, subnet=None, **kw):
        if name == "net0":
            raise SandboxError("a network named 'net0' already exists (remove it first)")
        self.made.append((name, subnet, kw))
        return {"name": name, "subnet": subnet or "10.89.1.0/24", "gateway": "10.89.1.1"}

    def network_rm(self, name):
        self.get(name)
        self.removed.append(name)


def test_topology_widget_polls_and_clicking_a_container_shows_its_tables():
    from mrunc.notebook.netview import Topology
    sb = FakeNetSandbox()
    t = Topology(sb, "net0", autostart=False)
    first = t.counters("a")
    assert 'class="mrunc-topology"' in t.picture.value and "mrunc-net-tables" not in t.picture.value
    assert list(t.pick.options) == ["a", "b"]
    t.poll()
    assert t.counters("a")[0] == first[0] + 1000
    t.pick.value = "a"                            # the click
    assert t.selected == "a" and 'data-where="container a"' in t.picture.value
    bundle = t._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/html"].count("mrunc-net-tables") == 3     # the static export: everything
    bad = Topology(sb, "nope", autostart=False)
    assert "✗ unknown network 'nope'" in bad.picture.value


def test_topology_widget_thread_refreshes_until_stopped():
    from mrunc.notebook.netview import Topology
    sb = FakeNetSandbox()
    t = Topology(sb, "net0", interval=0.01)
    import time
    deadline = time.monotonic() + 5
    while sb.tx < 5000 and time.monotonic() < deadline:
        time.sleep(0.01)
    t.stop()
    assert sb.tx >= 5000 and not t._thread.is_alive() and t.stop_button.disabled


def test_topology_stops_quietly_when_the_lab_closes_under_it():
    """lab.close() removes the networks while a view's thread may be polling (the networking
    notebook's last cell): the view keeps its last picture, no ✗, and its thread ends."""
    from mrunc.notebook.netview import Topology
    sb = FakeNetSandbox()
    t = Topology(sb, "net0", autostart=False)
    before = t.picture.value

    def gone(name):
        raise SandboxError(f"{name}.json: not a lab network plan")
    sb.closing, sb.network_show = True, gone
    assert t.poll() is None
    assert t.error is None and t.picture.value == before and "mrunc-bad" not in t.picture.value
    assert t._stop.is_set()


@pytest.fixture
def netmagics():
    from mrunc.notebook.magics import NetworkMagics

    class Holder:
        sandbox = FakeNetSandbox()
    ip = InteractiveShell.instance()
    m = NetworkMagics(ip, containers=Holder())
    ip.register_magics(m)
    return ip, Holder.sandbox


def test_network_magics(netmagics, capsys):
    ip, sb = netmagics
    ip.run_line_magic("network", "net1 --subnet 10.89.1.0/24 --delay 20ms --loss 1%")
    assert sb.made == [("net1", "10.89.1.0/24", {"delay": "20ms", "jitter": None, "loss": "1%",
                                                  "rate": None, "mtu": 1500, "nat": False})]
    assert "network net1: 10.89.1.0/24, gateway 10.89.1.1" in capsys.readouterr().out
    ip.run_line_magic("network_ls", "")
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "SUBNET", "GATEWAY", "SHAPING", "CONTAINERS"]
    assert "a=10.89.0.2 b=10.89.0.3" in out[1] and "delay 20ms" in out[1]
    ip.run_line_magic("network_rm", "net0")
    assert sb.removed == ["net0"] and "removed network net0" in capsys.readouterr().out
    for magic, line, words in (("network", "net0", "a network named 'net0' already exists"),
                               ("network", "", "%network: needs NAME"),
                               ("network_rm", "nope", "unknown network 'nope'"),
                               ("network_show", "nope", "unknown network 'nope'"),
                               ("network", "x --mtu big", "argument --mtu: invalid int value")):
        with pytest.raises(UsageError) as e:
            ip.run_line_magic(magic, line)
        assert words in str(e.value) and "\n" not in str(e.value)


def test_course_checks_read_the_kernels_view():
    from mrunc.network.course import can_reach, has_default_route
    v = views()
    assert can_reach(v, "a", "b") == [] and has_default_route(v, "a", "10.89.0.1") == []
    assert has_default_route(v, "a", "10.89.0.254") == \
        ["a's default route goes via 10.89.0.1, not 10.89.0.254"]
    assert can_reach(v, "a", "zz") == ["zz is not running on this network"]
    down = views(up_b=True)
    down["lab"]["interfaces"][1]["up"] = False                      # br0
    assert "the bridge br0 is down" in can_reach(down, "a", "b")
    loose = views()
    loose["lab"]["interfaces"][3]["master"] = None                  # v-b out of the bridge
    assert can_reach(loose, "a", "b") == ["b's veth v-b is not enslaved to a bridge"]
    other = views()
    other["containers"]["b"]["interfaces"][1]["addresses"] = ["10.89.5.3/24"]
    assert can_reach(other, "a", "b") == ["a and b are in different subnets (10.89.0.0/24, 10.89.5.0/24)"]
    bare = views()
    bare["containers"]["b"]["interfaces"].pop(1)
    assert can_reach(bare, "a", "b") == ["b has no eth0 (only lo): it is not wired to the lab"]


ROUTE = """Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100590A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0000590A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""
ARP = """IP address       HW type     Flags       HW address            Mask     Device
10.89.0.3        0x1         0x2         9a:3c:11:22:33:44     *        eth0
10.89.0.9        0x1         0x0         00:00:00:00:00:00     *        eth0
"""


def test_snapshot_reads_routes_and_neighbours_and_the_diff_names_new_routes():
    from mrunc.snapshot import Neighbour, Route, Snapshot, diff, parse_arp, parse_routes
    routes = parse_routes(ROUTE)
    assert routes == (Route("default", "10.89.0.1", "eth0"), Route("10.89.0.0/24", None, "eth0"))
    assert routes[0].describe() == "default via 10.89.0.1 dev eth0"
    assert parse_arp(ARP) == (Neighbour("10.89.0.3", "9a:3c:11:22:33:44", "eth0"),)   # complete only
    before, after = Snapshot(pid=1), Snapshot(pid=1, routes=routes)
    d = diff(before, after)
    assert "route default via 10.89.0.1 dev eth0 added" in d.summary()
    assert Snapshot.from_dict(after.to_dict()) == after
    html = render.network_panel(after, d)
    assert "default via 10.89.0.1 dev eth0" in html and "class=mr-new" in html


def test_the_filmstrip_draws_the_network_step_wide():
    from mrunc.sandbox import Step
    phases = PHASES[:-1] + ("network", "exec")
    net = views()
    steps = [Step(p, 1.0) for p in phases[:-2]] + [
        Step("network", 12.5, [["link", "add"]], network={"lab": net["lab"],
                                                         "container": net["containers"]["a"]})]
    html = render.filmstrip(steps, phases)
    frame = html[html.index('data-phase="network"') - 60:]
    assert 'class="mr-card mr-frame mr-wide" data-phase="network"' in html
    assert "The lab network now" in frame and '<svg class="mrunc-topology"' in frame
    assert "container a" in frame
    assert html.count('<svg class="mrunc-topology"') == 1         # only the network step draws it
    assert re.search(r'mr-now".*?network', html)
