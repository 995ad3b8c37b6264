"""Lab networks on real containers (root): two containers ping each other by name through the lab's
bridge, two labs are isolated, netem delay shows in the round-trip time, the MTU reaches eth0, a
container's veth goes with it, the `network` step is in the stepper with its netlink requests, and
nothing is left (namespace, bridge, veth, files) after close() or after the kernel is SIGKILLed.
Every test checks that the host's interfaces, addresses and routes did not change."""
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import types
import uuid

import pytest

from conftest import REPO, ROOTFS

from mrunc.sandbox import PHASES, Sandbox, SandboxError

pytestmark = pytest.mark.root


def host_network():
    """The host's interfaces, addresses and routes, without counters and lifetimes."""
    out = []
    for args in (["-o", "link"], ["-o", "addr"], ["route"], ["-6", "route"]):
        text = subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout
        out += [re.sub(r"(valid|preferred)_lft \S+", "", ln).strip() for ln in text.splitlines()]
    return sorted(out)


def lab_namespaces(sb):
    """Inodes of the lab namespaces pinned in the sandbox's network directory."""
    d = sb.root + ".net"
    if not os.path.isdir(d):
        return {}
    return {n: os.stat(os.path.join(d, n)).st_ino for n in os.listdir(d) if n.endswith(".netns")}


def netns_in_use(inodes):
    """Which of these network namespace inodes any process, or any mount, still holds."""
    held = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            held.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
        except OSError:
            pass
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    held |= {int(m) for m in re.findall(r"net:\[(\d+)\]", mounts)}
    return set(inodes) & held


def assert_nothing_left(sb, inodes):
    assert not os.path.exists(sb.root + ".net"), os.listdir(sb.root + ".net")
    assert not netns_in_use(inodes), "a lab network namespace is still alive"
    with open("/proc/self/mountinfo") as f:
        assert sb.root not in f.read()


@pytest.fixture
def lab():
    if not os.path.exists(os.path.join(ROOTFS, "bin", "busybox")):
        pytest.fail(f"busybox rootfs missing at {ROOTFS}: run `make rootfs`")
    before = host_network()
    sb = Sandbox(root=f"/run/mrunc-nettest-{uuid.uuid4().hex[:8]}", rootfs=ROOTFS)
    seen = {}
    sb.seen_namespaces = seen           # tests add the inodes of the labs they made
    try:
        yield sb
    finally:
        seen.update(lab_namespaces(sb))
        sb.close()
        assert_nothing_left(sb, seen.values())
        assert host_network() == before, "the host's network changed"


def wait_running(*cs):
    for c in cs:
        deadline = time.monotonic() + 90        # the emulated cgroup v2 VM forks ~50× slower
        while c.status != "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert c.status == "running", c.logs()


def ping(c, target, count=1, extra=""):
    return c.exec(f"ping -c {count} -W 2 {extra} {target}", timeout=120)


def test_two_containers_ping_each_other_by_name(lab):
    net = lab.network("net0", subnet="10.89.7.0/24")
    assert net["gateway"] == "10.89.7.1"
    a, b = lab.start(name="a", network="net0"), lab.start(name="b", network="net0")
    wait_running(a, b)
    assert a.addresses == ["10.89.7.2"] and b.addresses == ["10.89.7.3"]
    for src, dst, addr in ((a, "b", "10.89.7.3"), (b, "a", "10.89.7.2")):
        r = ping(src, dst)
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"bytes from {addr}" in r.stdout
    # from inside: eth0 with its address, the default route via the gateway, the peer in /etc/hosts
    r = a.exec("ip -o addr show eth0; ip route; cat /etc/hosts; ping -c 1 -W 2 10.89.7.1")
    assert r.returncode == 0, r.stderr
    assert "inet 10.89.7.2/24" in r.stdout and "default via 10.89.7.1 dev eth0" in r.stdout
    assert re.search(r"^10\.89\.7\.3\s+b$", r.stdout, re.M)
    # from outside: the container's namespace, read by the kernel's /proc (a snapshot)
    snap = a.snapshot()
    eth0 = next(i for i in snap.network if i.name == "eth0")
    assert "10.89.7.2/24" in eth0.addresses and eth0.up
    # the lab's side: the bridge holds the gateway, each container's veth is enslaved to it
    view = lab.network_show("net0")
    ifs = {i["name"]: i for i in view["lab"]["interfaces"]}
    assert "10.89.7.1/24" in ifs["br0"]["addresses"] and ifs["br0"]["kind"] == "bridge"
    assert ifs["v-a"]["master"] == "br0" and ifs["v-b"]["master"] == "br0"
    assert ifs["v-a"]["kind"] == "veth" and ifs["v-a"]["up"]
    # the bridge learned both containers: its neighbour table has their addresses
    assert {"10.89.7.2", "10.89.7.3"} <= {n["address"] for n in view["lab"]["neighbours"]} | \
        {n["address"] for c in view["containers"].values() for n in c["neighbours"]}
    # a container that joins later is in the hosts file of those already running
    c = lab.start(name="c", network="net0")
    wait_running(c)
    r = ping(a, "c")
    assert r.returncode == 0 and "bytes from 10.89.7.4" in r.stdout, r.stdout + r.stderr


def test_two_lab_networks_are_isolated(lab):
    lab.network("blue", subnet="10.89.8.0/24")
    lab.network("red", subnet="10.89.9.0/24")
    a, b = lab.start(name="a", network="blue"), lab.start(name="b", network="red")
    a2 = lab.start(name="a2", network="blue")
    wait_running(a, b, a2)
    assert ping(a, "a2").returncode == 0
    r = ping(a, b.addresses[0])
    assert r.returncode != 0 and "0 packets received" in r.stdout, r.stdout
    r = ping(b, a.addresses[0])
    assert r.returncode != 0
    # and not by name either: b is not in a's hosts file
    assert ping(a, "b").returncode != 0
    # two separate namespaces
    inodes = lab_namespaces(lab)
    assert len(set(inodes.values())) == 2
    lab.seen_namespaces.update(inodes)


def test_mtu_reaches_the_container_and_the_bridge(lab):
    lab.network("small", subnet="10.89.10.0/24", mtu=1400)
    a, b = lab.start(name="a", network="small"), lab.start(name="b", network="small")
    wait_running(a, b)
    assert a.exec("cat /sys/class/net/eth0/mtu").stdout.strip() == "1400"
    ifs = {i["name"]: i for i in lab.network_show("small")["lab"]["interfaces"]}
    assert ifs["br0"]["mtu"] == 1400 and ifs["v-a"]["mtu"] == 1400
    # 1372 bytes of ICMP payload + 28 of headers = 1400: fits; one more byte does not go as one frame
    r = ping(a, "b", extra="-s 1372")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif("not __import__('mrunc.network.lab', fromlist=['x']).netem_available()",
                    reason="this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM); run it in cgroup2-vm")
def test_netem_delay_shows_in_the_round_trip_time(lab):
    lab.network("slow", subnet="10.89.11.0/24", delay="20ms")
    a, b = lab.start(name="a", network="slow"), lab.start(name="b", network="slow")
    wait_running(a, b)
    r = ping(a, "b", count=3)
    assert r.returncode == 0, r.stdout + r.stderr
    times = [float(t) for t in re.findall(r"time=([\d.]+) ms", r.stdout)]
    # each direction leaves the switch through a shaped veth: at least 2 × 20 ms
    assert len(times) == 3 and min(times) >= 40.0, times
    qd = {i["name"]: i["qdisc"] for i in lab.network_show("slow")["lab"]["interfaces"]}
    assert qd["v-a"] == "netem" and qd["v-b"] == "netem"


def test_netem_without_kernel_support_is_one_clear_line(lab):
    if __import__("mrunc.network.lab", fromlist=["x"]).netem_available():
        pytest.skip("this kernel has netem")
    with pytest.raises(SandboxError, match=r"^delay/jitter/loss/rate: this kernel has no netem"):
        lab.network("slow", subnet="10.89.12.0/24", delay="20ms")
    assert lab.network_ls() == [] and not lab_namespaces(lab)


def test_a_killed_container_takes_its_veth_with_it(lab):
    lab.network("net0", subnet="10.89.13.0/24")
    a, b = lab.start(name="a", network="net0"), lab.start(name="b", network="net0")
    wait_running(a, b)
    names = {i["name"] for i in lab.network_show("net0")["lab"]["interfaces"]}
    assert {"v-a", "v-b"} <= names
    a.kill("KILL")
    assert a.wait(10) is not None
    deadline = time.monotonic() + 5
    while "v-a" in names and time.monotonic() < deadline:
        names = {i["name"] for i in lab.network_show("net0")["lab"]["interfaces"]}
        time.sleep(0.05)
    assert "v-a" not in names and "v-b" in names
    # deleting b (mrunc delete) removes its veth too, and frees its address
    b.delete()
    names = {i["name"] for i in lab.network_show("net0")["lab"]["interfaces"]}
    assert "v-b" not in names
    c = lab.start(name="c", network="net0")
    assert c.addresses == ["10.89.13.3"]    # b's, freed; a (stopped, not deleted) keeps .2


def test_the_network_step_is_in_the_stepper_with_its_netlink_requests(lab):
    lab.network("net0", subnet="10.89.14.0/24")
    s = lab.step(args=["sleep", "600"], name="stepped", network="net0")
    assert s.phases == PHASES[:-1] + ("network", "exec")
    steps = {}
    for step in s:
        assert step.error is None, step.error
        steps[step.phase] = step
    assert list(steps) == list(s.phases)
    net = steps["network"]
    calls = [tuple(c[:3]) for c in net.calls]
    assert ("link", "add", "in lab net0") in calls
    assert ("route", "add", "in container stepped") in calls
    add = next(c for c in net.calls if c[:2] == ["link", "add"])
    assert "ifname=v-stepped" in add and "kind=veth" in add
    assert any("gateway=10.89.14.1" in c for c in net.calls if c[0] == "route")
    # each request is the runtime's, timed on its own, and in the order they were made
    assert {c.who for c in net.calls} == {"runtime"}
    assert all(c.ms is not None and 0 <= c.ms < net.ms for c in net.calls)
    assert [c.t for c in net.calls] == sorted(c.t for c in net.calls)
    assert sum(c.ms for c in net.calls) <= net.ms
    # the snapshots the runtime took right after the step
    ctr = {i["name"]: i for i in net.network["container"]["interfaces"]}
    assert "10.89.14.2/24" in ctr["eth0"]["addresses"] and ctr["eth0"]["up"]
    assert {"dst": "default", "gateway": "10.89.14.1"}.items() <= \
        next(r for r in net.network["container"]["routes"] if r["dst"] == "default").items()
    labv = {i["name"]: i for i in net.network["lab"]["interfaces"]}
    assert labv["v-stepped"]["master"] == "br0"
    # before the step the container had only lo; after it, eth0 (the stepper's snapshot diff)
    before = {i.name for i in steps["security"].snapshot.network}
    after = {i.name for i in net.snapshot.network}
    assert before == {"lo"} and after == {"lo", "eth0"}
    summary = net.summary()                 # the stepper's "what changed", from /proc
    assert "route default via 10.89.14.1 dev eth0 added" in summary, summary
    assert any(line.startswith("interface eth0 up 10.89.14.2/24") for line in summary), summary
    # the program did not start before the network was there
    assert steps["exec"].snapshot.process.comm == "sleep"


def test_bad_input_is_one_line_and_leaves_nothing(lab):
    with pytest.raises(SandboxError, match=r"^unknown network 'nope' \(networks: none yet"):
        lab.start(name="x", network="nope")
    assert "x" not in lab.containers and not os.path.exists(os.path.join(lab.work, "x"))
    lab.network("net0", subnet="10.89.15.0/29")
    with pytest.raises(SandboxError, match=r"^a network named 'net0' already exists"):
        lab.network("net0", subnet="10.89.16.0/24")
    with pytest.raises(SandboxError, match=r"^subnet 10\.89\.15\.0/24 overlaps network 'net0'"):
        lab.network("net1", subnet="10.89.15.0/24")
    with pytest.raises(SandboxError, match=r"^delay: '20xs' is not a time"):
        lab.network("net1", subnet="10.89.17.0/24", delay="20xs")
    assert [n["name"] for n in lab.network_ls()] == ["net0"]
    # a /29 has 6 hosts: the gateway and 5 containers
    cs = [lab.start(name=f"c{i}", network="net0") for i in range(5)]
    with pytest.raises(SandboxError, match=r"^subnet 10\.89\.15\.0/29 is full"):
        lab.start(name="c5", network="net0")
    assert "c5" not in lab.containers and not os.path.exists(os.path.join(lab.work, "c5"))
    with pytest.raises(SandboxError, match=r"^network 'net0' is in use by c0, c1"):
        lab.network_rm("net0")
    wait_running(*cs)
    for c in cs:
        c.delete()
    lab.network_rm("net0")
    assert lab.network_ls() == [] and not lab_namespaces(lab)


SCRIPT = """
import sys, time
sys.path.insert(0, {repo!r})
from mrunc.sandbox import Sandbox
lab = Sandbox(root={root!r}, rootfs={rootfs!r})
lab.network("net0", subnet="10.89.18.0/24")
a = lab.start(name="a", network="net0")
while a.status != "running":
    time.sleep(0.02)
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("cleaner", ["next sandbox", "mrunc network sweep"])
def test_a_sigkilled_kernel_leaves_nothing(cleaner):
    before = host_network()
    root = f"/run/mrunc-nettest-{uuid.uuid4().hex[:8]}"
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(SCRIPT).format(
        repo=REPO, root=root, rootfs=ROOTFS)], stdout=subprocess.PIPE, text=True)
    sb = None
    try:
        assert p.stdout.readline().strip() == "ready"
        inodes = lab_namespaces(types.SimpleNamespace(root=root))   # the dead kernel's labs
        assert inodes and netns_in_use(inodes.values())
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert netns_in_use(inodes.values())        # the kernel's death removes nothing by itself
        if cleaner == "mrunc network sweep":
            r = subprocess.run([sys.executable, "-m", "mrunc", "network", "sweep", root + ".net"],
                               capture_output=True, text=True, cwd=REPO)
            assert r.returncode == 0 and r.stderr == "", r.stderr
            assert not netns_in_use(inodes.values()) and not os.listdir(root + ".net")
        sb = Sandbox(root=root, rootfs=ROOTFS)       # the next sandbox sweeps what is left
        sb.close()
        assert_nothing_left(sb, inodes.values())
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if sb is None:
            Sandbox(root=root, rootfs=ROOTFS).close()
    assert host_network() == before


ROOTLESS = """
import json, sys, time
sys.path.insert(0, {repo!r})
from mrunc.sandbox import Sandbox
lab = Sandbox(rootfs={rootfs!r})
try:
    plan = lab.network("net0", subnet="10.89.19.0/24")
    x = lab.start(name="x", network="net0")
    deadline = time.monotonic() + 60
    while x.status != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    r = lab.run("ping -c 1 -W 2 x && ping -c 1 -W 2 10.89.19.1 && ip route", network="net0")
    view = lab.network_show("net0")
    print(json.dumps({{"rootless": lab.rootless, "holder": plan["holder"][0], "x": x.pid,
                      "addresses": x.addresses, "code": r.exit_code, "out": r.stdout,
                      "lab": sorted(i["name"] for i in view["lab"]["interfaces"]),
                      "netdir": lab.networks.dir}}), flush=True)
    sys.stdin.readline()                # root looks at the namespaces meanwhile
finally:
    lab.close()
print("closed", flush=True)
"""


@pytest.fixture
def lab_user():
    import pwd
    name = f"mrnet{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        # whatever that user (made by this test) still runs, by pid
        left = subprocess.run(["pgrep", "-u", name], capture_output=True, text=True).stdout.split()
        for pid in left:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        # userdel refuses (8) while a process of the user is still dying: try again, briefly
        deadline = time.monotonic() + 10
        while subprocess.run(["userdel", name], capture_output=True).returncode == 8 \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert subprocess.run(["id", name], capture_output=True).returncode != 0, \
            f"test user {name} is left behind"


def live_processes(user):
    """The user's processes that are not zombies (a zombie holds no namespace; PID 1 reaps it)."""
    out = []
    for pid in subprocess.run(["pgrep", "-u", user], capture_output=True, text=True).stdout.split():
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] != "Z":
                    out.append(int(pid))
        except OSError:
            pass
    return out


def _userns(pid):
    return os.stat(f"/proc/{pid}/ns/user").st_ino


@pytest.mark.userns
def test_rootless_lab_is_owned_by_the_users_user_namespace(lab_user):
    import json
    import pathlib
    import shutil
    import tempfile
    before = host_network()
    home = pathlib.Path(tempfile.mkdtemp(prefix="mrunc-netrl-", dir="/tmp"))  # pytest's tmp is 0700
    os.chmod(home, 0o755)
    script = home / "rootless.py"
    script.write_text(textwrap.dedent(ROOTLESS).format(repo=REPO, rootfs=ROOTFS))
    os.chmod(script, 0o644)
    run = home / "run"
    run.mkdir(mode=0o700)
    os.chown(run, lab_user.pw_uid, lab_user.pw_gid)
    env = {"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(run), "HOME": str(run)}
    p = subprocess.Popen(["runuser", "-u", lab_user.pw_name, "--", sys.executable, str(script)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env, cwd=str(run))
    try:
        line = p.stdout.readline()
        assert line, p.stderr.read()
        got = json.loads(line)
        assert got["rootless"] and got["code"] == 0, got
        assert "bytes from 10.89.19.2" in got["out"] and "default via 10.89.19.1" in got["out"]
        assert got["addresses"] == ["10.89.19.2"] and {"br0", "v-x"} <= set(got["lab"])
        holder, x = got["holder"], got["x"]
        # one user namespace, the user's, owns the lab's switch and the container's network
        assert _userns(holder) != _userns("self") and _userns(x) == _userns(holder)
        with open(f"/proc/{holder}/uid_map") as f:
            assert f.read().split() == ["0", str(lab_user.pw_uid), "1"]
        assert os.stat(f"/proc/{holder}").st_uid == lab_user.pw_uid
        assert os.stat(f"/proc/{x}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino
        # its files are the user's, mode 0700
        st = os.stat(got["netdir"])
        assert st.st_uid == lab_user.pw_uid and st.st_mode & 0o777 == 0o700
        inodes = [os.stat(f"/proc/{holder}/ns/net").st_ino]
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "closed"
        assert p.wait(60) == 0, p.stderr.read()
        deadline = time.monotonic() + 5
        while netns_in_use(inodes) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not netns_in_use(inodes), "the rootless lab's namespace is still alive"
        assert not os.path.exists(got["netdir"])
        left = live_processes(lab_user.pw_name)
        assert not left, f"processes of {lab_user.pw_name} left: {left}"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree(home, ignore_errors=True)
    assert host_network() == before


NAT = """
import json, os, subprocess, sys, time, uuid
sys.path.insert(0, {repo!r})
from mrunc.sandbox import Sandbox
from pyroute2.nftables.main import NFTables

def sh(*cmd):
    subprocess.run(cmd, check=True)

def tables():
    nft = NFTables(nfgen_family=2)
    try:
        return sorted(t.get_attr("NFTA_TABLE_NAME") for t in nft.get_tables())
    finally:
        nft.close()

def forward():
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        return f.read().strip()

# we run in a network namespace the test made: it stands for the host. Beyond it, "the world":
# one more namespace with the address 192.0.2.2, reached through the veth w0 (192.0.2.1).
world = subprocess.Popen(["unshare", "-n", "sleep", "600"])
time.sleep(0.2)
sh("ip", "link", "add", "w0", "type", "veth", "peer", "name", "w1", "netns", str(world.pid))
sh("ip", "addr", "add", "192.0.2.1/24", "dev", "w0")
sh("ip", "link", "set", "w0", "up")
sh("nsenter", "-t", str(world.pid), "-n", "sh", "-c",
   "ip addr add 192.0.2.2/24 dev w1 && ip link set w1 up && ip link set lo up")
out = {{"forward_before": forward(), "tables_before": tables()}}
lab = Sandbox(root="/run/mrunc-nattest-" + uuid.uuid4().hex[:8], rootfs={rootfs!r})
try:
    lab.network("closed", subnet="10.89.21.0/24")
    out["without_nat"] = lab.run("ping -c 1 -W 2 192.0.2.2", network="closed").exit_code
    plan = lab.network("open", subnet="10.89.20.0/24", nat=True)
    out["calls"] = plan["calls"]
    out["forward_during"] = forward()
    out["tables_during"] = tables()
    r = lab.run("ping -c 1 -W 2 192.0.2.2 && ip route", network="open")
    out["with_nat"], out["stdout"] = r.exit_code, r.stdout
finally:
    lab.close()
out["forward_after"] = forward()
out["tables_after"] = tables()
out["links_after"] = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
world.kill()
world.wait()
print(json.dumps(out))
"""


def test_nat_only_when_asked_and_only_in_a_namespace_standing_for_the_host(tmp_path, capfd):
    import json
    before = host_network()
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_forward = f.read()
    script = tmp_path / "nat.py"
    script.write_text(textwrap.dedent(NAT).format(repo=REPO, rootfs=ROOTFS))
    p = subprocess.run(["unshare", "-n", "--", sys.executable, str(script)], capture_output=True,
                       text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.splitlines()[-1])
    assert "nat=True changes the HOST" in p.stderr          # said out loud
    assert got["without_nat"] != 0                           # a lab is closed by default
    assert got["with_nat"] == 0, got["stdout"]               # through the uplink, masqueraded
    assert "default via 10.89.20.1" in got["stdout"]
    assert got["forward_before"] == "0" and got["forward_during"] == "1"
    table = next(t for t in got["tables_during"] if t.startswith("mrunc_open_"))
    assert table not in got["tables_before"]
    assert any(c[:2] == ["nft", "add rule"] and "ip saddr 10.89.20.0/24 masquerade" in c
               for c in got["calls"])
    # undone: the rule, ip_forward, the uplink
    assert got["forward_after"] == "0" and table not in got["tables_after"]
    assert "mrunc-" not in got["links_after"]
    # and the real host never saw any of it
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host_forward
    assert host_network() == before


def test_magics_on_a_real_lab(lab, capfd):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell
    from mrunc.notebook.magics import ContainerMagics, NetworkMagics
    ip = InteractiveShell.instance()
    magics = ContainerMagics(ip, sandbox=lab)
    ip.register_magics(magics)
    ip.register_magics(NetworkMagics(ip, containers=magics))
    ip.run_line_magic("network", "net0 --subnet 10.89.22.0/24")
    assert "network net0: 10.89.22.0/24, gateway 10.89.22.1" in capfd.readouterr().out
    ip.run_cell_magic("container", "--net net0 --keep --name srv", "ip -o -4 addr show eth0")
    assert "inet 10.89.22.2/24" in capfd.readouterr().out
    ip.run_cell_magic("container", "--net net0", "ping -c 1 -W 2 srv >/dev/null && echo reached srv")
    assert capfd.readouterr().out.strip() == "reached srv"
    ip.run_line_magic("network_ls", "")
    out = capfd.readouterr().out
    assert re.search(r"^net0\s+10\.89\.22\.0/24\s+10\.89\.22\.1\s+-\s+srv=10\.89\.22\.2$", out, re.M), out
    with pytest.raises(UsageError, match="unknown network 'nope'"):
        ip.run_cell_magic("container", "--net nope", "true")
    with pytest.raises(UsageError, match="network 'net0' is in use by srv"):
        ip.run_line_magic("network_rm", "net0")
    ip.run_line_magic("container_rm", "srv")
    ip.run_line_magic("network_rm", "net0")
    assert "removed network net0" in capfd.readouterr().out
    assert lab.network_ls() == [] and not lab_namespaces(lab)
