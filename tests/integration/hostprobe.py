"""Run a shell script between two snapshots of "the host" — the namespaces this process is in —
and print both as JSON. Used by test_host_safety.py inside `unshare -m --propagation private`
(and -u, -n): there, "the host" is a throwaway copy, so a runtime bug can only wreck that copy,
and the snapshots show whether it did.

    python hostprobe.py SCRIPT     (the script sees $MRUNC, the CLI with the test's --root)

A snapshot: the identity of "/" (st_dev, st_ino, and readlink /proc/self/root), the mount table
(whole mountinfo text), hostname and domainname, and the network as `ip` prints it (links with
their flags, addresses, routes). Everything is read before the script runs: after a buggy
pivot_root this process would find the host's files gone.
"""
import json
import os
import subprocess
import sys


def _ip(*args):
    p = subprocess.run(["ip", "-o", *args], capture_output=True, text=True)
    # counters and timers change by themselves; flags, names, addresses and routes do not
    return [" ".join(w for w in line.split() if not w.startswith("qlen")) for line in p.stdout.splitlines()]


def snapshot():
    st = os.stat("/")
    with open("/proc/self/mountinfo") as f:
        mountinfo = f.read()
    with open("/proc/sys/kernel/domainname") as f:
        domain = f.read().strip()
    return {"root": [st.st_dev, st.st_ino], "root_link": os.readlink("/proc/self/root"),
            "mountinfo": mountinfo, "hostname": os.uname().nodename, "domainname": domain,
            "links": _ip("link", "show"), "addrs": _ip("addr", "show"), "routes": _ip("route", "show"),
            "host_cp": os.path.exists("/usr/bin/cp")}


def mount_points(mountinfo):
    """The mount point of each mountinfo line."""
    from mrunc.cgroups.fs import unescape
    return [unescape(line.split()[4]) for line in mountinfo.splitlines()]


def main(script):
    before = snapshot()
    p = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=120)
    try:
        after = snapshot()
        # Deleting a directory that is a mount point in another namespace unmounts it there
        # (Linux 3.18+): other test runs on this machine tidying up their own mounts do that
        # to our copy. Say which mount points are gone, so the test can tell that from a
        # runtime unmounting something.
        after["gone"] = [mp for mp in mount_points(before["mountinfo"]) if not os.path.lexists(mp)]
    except Exception as e:  # noqa: BLE001 — a wrecked namespace is a result, not a crash
        after = {"error": repr(e)}
    print(json.dumps({"before": before, "after": after, "rc": p.returncode, "stdout": p.stdout,
                      "stderr": p.stderr}))


if __name__ == "__main__":
    main(sys.argv[1])
