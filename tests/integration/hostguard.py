"""A cheap host check around every integration test (tests/conftest.py's `host_unchanged`).

Integration tests run real containers as root on the host: a runtime bug that pivots the host's
root, leaks a mount, renames the host or brings an interface down must fail the test that did it,
not go unnoticed until the machine misbehaves. So each test is bracketed by two snapshots of what
a test *can* leak, compared exactly:

  - the identity of "/" (st_dev, st_ino and readlink /proc/self/root), the mount, network and
    UTS namespaces of the test process, hostname and domainname;
  - the root mount's line in mountinfo (options and propagation), the mounts under the host's
    /sys/fs/cgroup (never to be mounted, unmounted or remounted), and every mount under the
    paths this test owns: this repository (its rootfs), pytest's base temp dir of this run, and
    the `mr` fixture's state root;
  - the flags (UP…) and addresses of the interfaces that existed before.

Tests that drive runc (mark `runc`) are not held to the /sys/fs/cgroup part: runc mounts cgroup2
from the host's cgroup namespace for a config without one, which resets the host's cgroup2
options (nsdelegate, memory_recursiveprot) — seen in the v2 VM; mrunc binds instead.

Exceptions, on purpose: mounts elsewhere (other test runs share this machine and mount under
their own dirs: podman's and containerd's stores under /tmp/mrunc-*, other worktrees), and
interfaces that appear or vanish meanwhile (another run's lab network): these cannot be told
apart from a concurrent run's. A mount in our scope that vanished because its mount point was
deleted is not counted either (deleting a mount point unmounts it in every namespace).
"""
import os
import subprocess

from mrunc.cgroups.fs import unescape

CGROUP_ROOT = "/sys/fs/cgroup"


def _under(path, tops):
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in tops)


def _links():
    out = {}
    for name in os.listdir("/sys/class/net"):
        try:
            with open(f"/sys/class/net/{name}/flags") as f:
                out[name] = f.read().strip()
        except OSError:
            continue
    return out


def _addresses():
    p = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True)
    addrs = {}
    for line in p.stdout.splitlines():
        words = line.split()
        if len(words) > 3:
            addrs.setdefault(words[1], set()).add(f"{words[2]} {words[3]}")
    return addrs


def snapshot(tops, cgroupfs=True):
    st = os.stat("/")
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = unescape(fields[4])
            if mp == "/" or _under(mp, [*([CGROUP_ROOT] if cgroupfs else []), *tops]):
                mounts[line.rstrip("\n")] = mp
    with open("/proc/sys/kernel/domainname") as f:
        domain = f.read().strip()
    return {"root": (st.st_dev, st.st_ino, os.readlink("/proc/self/root")),
            "ns": {n: os.readlink(f"/proc/self/ns/{n}") for n in ("mnt", "net", "uts")},
            "names": (os.uname().nodename, domain),
            "mounts": mounts, "links": _links(), "addrs": _addresses()}


def changes(before, after):
    """What changed between two snapshots, as readable lines ([] when nothing did)."""
    out = []
    for key in ("root", "ns", "names"):
        if before[key] != after[key]:
            out.append(f"{key}: {before[key]} -> {after[key]}")
    for line, mp in after["mounts"].items():
        if line not in before["mounts"]:
            out.append(f"mount added or changed: {line}")
    for line, mp in before["mounts"].items():
        if line not in after["mounts"] and os.path.lexists(mp):
            out.append(f"mount removed or changed: {line}")
    for name, flags in before["links"].items():
        if name in after["links"] and after["links"][name] != flags:
            out.append(f"interface {name}: flags {flags} -> {after['links'][name]}")
        if name in after["links"] and before["addrs"].get(name) != after["addrs"].get(name):
            out.append(f"interface {name}: addresses {before['addrs'].get(name)} -> "
                       f"{after['addrs'].get(name)}")
    return out
