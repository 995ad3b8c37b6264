"""What a lab network is, as plain data: its subnet, its addresses, its link shaping, its files.

Nothing here talks to the kernel (and nothing imports pyroute2): the sandbox plans a network in
the notebook's process, and the runtime (`mrunc network …`, `mrunc run --network FILE`) carries
the plan out. A plan is a small JSON document, so the two sides never share anything but a file
in a directory only the user can write.

    lab = {"name": "net0", "subnet": "10.89.0.0/24", "gateway": "10.89.0.1", "prefixlen": 24,
           "mtu": 1500, "netem": {"delay_us": 20000}, "nat": False, "netns": ".../net0.netns",
           "bridge": "br0"}
    member = {"container": "web", "address": "10.89.0.2", "veth": "veth2", "peer": "tmp2"}
"""
from __future__ import annotations

import ipaddress
import os
import re

from ..errors import MruncError

BRIDGE = "br0"                          # the lab's switch; alone in its namespace, so one name does
CONTAINER_IF = "eth0"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
MTU_RANGE = (576, 9000)


class NetworkError(MruncError):
    """A lab network cannot be made as asked; str() is the one line to show."""


def check_name(name):
    if not isinstance(name, str) or not NAME.match(name):
        raise NetworkError(f"network name {name!r}: use 1-32 letters, digits, '_', '.', '-' "
                           "(starting with a letter or digit)")
    return name


# ---- subnets and addresses -----------------------------------------------------------------------

def parse_subnet(text, taken=()):
    """An IPv4 subnet for a lab, checked against the subnets of the user's other labs (`taken`:
    {name: subnet}) and the host's own routes would be no business of ours: the lab lives in a
    namespace of its own, so only overlaps between labs can confuse a container attached to two."""
    try:
        net = ipaddress.IPv4Network(str(text), strict=True)
    except ValueError as e:
        raise NetworkError(f"subnet {text!r}: not an IPv4 network like 10.89.0.0/24 ({e})") from None
    if net.prefixlen > 29:
        raise NetworkError(f"subnet {text}: /{net.prefixlen} is too small (at most /29: a gateway "
                           "and a few containers)")
    if not net.is_private:
        raise NetworkError(f"subnet {text}: not a private range (use 10.0.0.0/8, 172.16.0.0/12 "
                           "or 192.168.0.0/16)")
    for other, sub in dict(taken).items():
        if net.overlaps(ipaddress.IPv4Network(sub)):
            raise NetworkError(f"subnet {text} overlaps network {other!r} ({sub})")
    return net


def default_subnet(taken=()):
    """The first free 10.89.N.0/24 (podman's default range starts at 10.88.0.0/16)."""
    for n in range(256):
        cand = f"10.89.{n}.0/24"
        if not any(ipaddress.IPv4Network(cand).overlaps(ipaddress.IPv4Network(s))
                   for s in dict(taken).values()):
            return cand
    raise NetworkError("no free 10.89.N.0/24 subnet left: give subnet=…")


def gateway(net):
    """The first host address: the bridge's, the containers' default route."""
    return str(next(net.hosts()))


def allocate(net, used):
    """The lowest free host address after the gateway."""
    gw = gateway(net)
    for a in net.hosts():
        a = str(a)
        if a != gw and a not in used:
            return a
    raise NetworkError(f"subnet {net} is full ({len(used)} containers and the gateway)")


# ---- link shaping (tc netem) ----------------------------------------------------------------------

_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s)?\s*$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(bit|bps|b)?(?:/s)?\s*$", re.I)
_PCT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%?\s*$")


def _time_us(key, value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        us = float(value) * 1000            # a bare number is milliseconds, as in `tc … delay 20`
    else:
        m = _TIME.match(str(value))
        if not m:
            raise NetworkError(f"{key}: {value!r} is not a time (20ms, 1.5s, 500us)")
        us = float(m.group(1)) * {"us": 1, "µs": 1, "ms": 1000, "s": 1000000, None: 1000}[m.group(2)]
    if not 0 <= us <= 60_000_000:
        raise NetworkError(f"{key}: {value!r} is out of range (0 to 60s)")
    return round(us)


def parse_netem(delay=None, jitter=None, loss=None, rate=None):
    """{"delay_us", "jitter_us", "loss_pct", "rate_bps"} (only those given) from human values:
    delay="20ms", jitter="5ms", loss="1%" (or 0.01), rate="10mbit"."""
    out = {}
    if delay is not None:
        out["delay_us"] = _time_us("delay", delay)
    if jitter is not None:
        out["jitter_us"] = _time_us("jitter", jitter)
        if out["jitter_us"] and not out.get("delay_us"):
            raise NetworkError("jitter: needs a delay to vary around (delay=…)")
    if loss is not None:
        if isinstance(loss, float) and 0 <= loss < 1 and not isinstance(loss, bool):
            pct = loss * 100
        else:
            m = _PCT.match(str(loss))
            if not m:
                raise NetworkError(f"loss: {loss!r} is not a percentage (1%, 0.5%)")
            pct = float(m.group(1))
        if not 0 <= pct <= 100:
            raise NetworkError(f"loss: {loss!r} is out of range (0% to 100%)")
        out["loss_pct"] = pct
    if rate is not None:
        m = _RATE.match(str(rate))
        if not m:
            raise NetworkError(f"rate: {rate!r} is not a rate (10mbit, 512kbit, 1gbit)")
        bits = float(m.group(1)) * 1000 ** " kmg".index((m.group(2) or " ").lower())
        if (m.group(3) or "").lower() == "bps":
            bits *= 8                       # bytes per second, as tc's "bps"
        if not 8000 <= bits <= 100e9:
            raise NetworkError(f"rate: {rate!r} is out of range (8kbit to 100gbit)")
        out["rate_bps"] = round(bits)
    return out


def describe_netem(netem):
    """"delay 20ms ± 5ms, loss 1%, rate 10mbit" (or "" when the link is not shaped)."""
    parts = []
    if netem.get("delay_us"):
        parts.append(f"delay {netem['delay_us'] / 1000:g}ms" +
                     (f" ± {netem['jitter_us'] / 1000:g}ms" if netem.get("jitter_us") else ""))
    if netem.get("loss_pct"):
        parts.append(f"loss {netem['loss_pct']:g}%")
    if netem.get("rate_bps"):
        parts.append(f"rate {netem['rate_bps'] / 1e6:g}mbit")
    return ", ".join(parts)


def check_mtu(mtu):
    try:
        m = int(mtu)
    except (TypeError, ValueError):
        raise NetworkError(f"mtu: not a whole number: {mtu!r}") from None
    if not MTU_RANGE[0] <= m <= MTU_RANGE[1]:
        raise NetworkError(f"mtu: {m} is out of range ({MTU_RANGE[0]} to {MTU_RANGE[1]})")
    return m


# ---- /etc/hosts -----------------------------------------------------------------------------------

def hosts_text(name, address, peers):
    """A container's /etc/hosts, as engines write it: localhost, itself, then every other
    container of its networks (`peers`: [(name, address)])."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if address:
        lines.append(f"{address}\t{name}")
    lines += [f"{a}\t{n}" for n, a in peers if n != name]
    return "\n".join(lines) + "\n"


# ---- the per-user directory -----------------------------------------------------------------------

def private_dir(path, create=True):
    """Make (or, create=False, only check) a directory only we can use: ours, mode 0700, not a
    symlink. Lab namespace files and plans live here, so no other user can pre-create or swap
    them."""
    try:
        if create:
            os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise NetworkError(f"{path}: no such directory") from None
    import stat
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise NetworkError(f"{path}: must be a directory owned by uid {os.geteuid()} with mode 0700 "
                           f"(it is uid {st.st_uid}, mode {oct(st.st_mode & 0o7777)}): not using it")
    return path
