"""Lab network plans without a kernel: subnets, address allocation, netem values, hosts files, the
per-user directory's checks — and that the create path never imports pyroute2."""
import os
import subprocess
import sys

import pytest

from mrunc.network import plan as P
from mrunc.network.plan import NetworkError


def test_subnets_are_checked_and_never_overlap():
    net = P.parse_subnet("10.89.0.0/24")
    assert P.gateway(net) == "10.89.0.1"
    with pytest.raises(NetworkError, match=r"^subnet '10\.89\.0\.1/24': not an IPv4 network"):
        P.parse_subnet("10.89.0.1/24")
    with pytest.raises(NetworkError, match=r"^subnet 10\.89\.0\.0/30: /30 is too small"):
        P.parse_subnet("10.89.0.0/30")
    with pytest.raises(NetworkError, match=r"^subnet 8\.8\.8\.0/24: not a private range"):
        P.parse_subnet("8.8.8.0/24")
    with pytest.raises(NetworkError, match=r"^subnet 10\.89\.0\.128/25 overlaps network 'net0' "
                                           r"\(10\.89\.0\.0/24\)"):
        P.parse_subnet("10.89.0.128/25", {"net0": "10.89.0.0/24"})
    assert P.default_subnet({"a": "10.89.0.0/24", "b": "10.89.1.0/24"}) == "10.89.2.0/24"


def test_addresses_are_allocated_lowest_first_and_a_full_subnet_says_so():
    net = P.parse_subnet("10.89.0.0/29")              # hosts .1-.6; .1 is the gateway
    used = set()
    for want in ("10.89.0.2", "10.89.0.3", "10.89.0.4", "10.89.0.5", "10.89.0.6"):
        assert P.allocate(net, used) == want
        used.add(want)
    with pytest.raises(NetworkError, match=r"^subnet 10\.89\.0\.0/29 is full \(5 containers"):
        P.allocate(net, used)
    used.discard("10.89.0.3")
    assert P.allocate(net, used) == "10.89.0.3"


@pytest.mark.parametrize("kw, want", [
    ({"delay": "20ms"}, {"delay_us": 20000}),
    ({"delay": 5}, {"delay_us": 5000}),
    ({"delay": "1.5s", "jitter": "500us"}, {"delay_us": 1500000, "jitter_us": 500}),
    ({"loss": "1%"}, {"loss_pct": 1.0}),
    ({"loss": 0.25}, {"loss_pct": 25.0}),
    ({"rate": "10mbit"}, {"rate_bps": 10_000_000}),
    ({"rate": "1MBps"}, {"rate_bps": 8_000_000}),
])
def test_netem_values(kw, want):
    assert P.parse_netem(**kw) == want


@pytest.mark.parametrize("kw, msg", [
    ({"delay": "20xs"}, r"^delay: '20xs' is not a time \(20ms"),
    ({"delay": "-1ms"}, r"^delay: '-1ms' is not a time"),
    ({"delay": "90s"}, r"^delay: '90s' is out of range"),
    ({"jitter": "5ms"}, r"^jitter: needs a delay"),
    ({"loss": "lots"}, r"^loss: 'lots' is not a percentage"),
    ({"loss": "150%"}, r"^loss: '150%' is out of range"),
    ({"rate": "fast"}, r"^rate: 'fast' is not a rate"),
    ({"rate": "1bit"}, r"^rate: '1bit' is out of range"),
])
def test_bad_netem_values_are_one_line(kw, msg):
    with pytest.raises(NetworkError, match=msg):
        P.parse_netem(**kw)


def test_describe_netem_and_mtu():
    assert P.describe_netem(P.parse_netem(delay="20ms", jitter="5ms", loss="1%", rate="10mbit")) == \
        "delay 20ms ± 5ms, loss 1%, rate 10mbit"
    assert P.describe_netem({}) == ""
    assert P.check_mtu("1400") == 1400
    with pytest.raises(NetworkError, match=r"^mtu: 100 is out of range"):
        P.check_mtu(100)


def test_names():
    assert P.check_name("net0") == "net0"
    for bad in ("", "../x", "a b", "-x", "x" * 33, None):
        with pytest.raises(NetworkError, match=r"^network name"):
            P.check_name(bad)


def test_hosts_file_lists_itself_and_its_peers():
    text = P.hosts_text("a", "10.89.0.2", [("a", "10.89.0.2"), ("b", "10.89.0.3")])
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert "10.89.0.2\ta" in lines and "10.89.0.3\tb" in lines
    assert lines.count("10.89.0.2\ta") == 1


def test_private_dir_refuses_what_others_could_use(tmp_path):
    d = tmp_path / "net"
    P.private_dir(str(d))
    assert os.stat(d).st_mode & 0o777 == 0o700
    os.chmod(d, 0o755)
    with pytest.raises(NetworkError, match=r"must be a directory owned by uid \d+ with mode 0700"):
        P.private_dir(str(d))
    link = tmp_path / "link"
    os.symlink(tmp_path, link)
    with pytest.raises(NetworkError, match="must be a directory"):
        P.private_dir(str(link))


def test_the_create_path_does_not_import_pyroute2():
    code = ("import sys; from mrunc import cli, api, sandbox; from mrunc.process import parent, "
            "foreground; from mrunc.network import plan, labs, step, commands; "
            "print('pyroute2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("args, words", [
    (["up", "{tmp}/no/such/plan.json"], "{tmp}/no/such: no such directory"),
    (["show", "{tmp}/plan.json"], "must be a directory owned by uid"),
    (["frob", "{tmp}"], "network: unknown action 'frob' (up, down, show, sweep)"),
])
def test_network_cli_bad_input_is_one_line_and_leaves_nothing(tmp_path, args, words):
    os.chmod(tmp_path, 0o755)
    before = sorted(os.listdir(tmp_path))
    p = subprocess.run([sys.executable, "-m", "mrunc", "network", *[a.format(tmp=tmp_path) for a in args]],
                       capture_output=True, text=True)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and words.format(tmp=tmp_path) in p.stderr, p.stderr
    assert sorted(os.listdir(tmp_path)) == before


def test_a_plan_must_keep_its_namespace_beside_it(tmp_path):
    import json
    d = tmp_path / "net"
    P.private_dir(str(d))
    (d / "x.json").write_text(json.dumps({"name": "x", "netns": "/run/netns/elsewhere"}))
    p = subprocess.run([sys.executable, "-m", "mrunc", "network", "show", str(d / "x.json")],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "its namespace file must be beside it" in p.stderr
