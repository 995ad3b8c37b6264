"""Regenerate the frozen fixtures of test_snapshot.py / test_render.py from a real container (root).

    sudo .venv/bin/python tests/unit/data/capture_fixtures.py

Steps a busybox container (hostname, cgroup namespace, memory and pids limits) through every
phase, snapshots it after each, starts it, and writes:
  phases.json       {"events": {phase: event}, "snapshots": {"host"|phase|"exec": Snapshot dict}}
                    "host" is the `mrunc create` process itself, before clone: the "before" of clone.
  proc/<pid>/...    the raw /proc files of the started container and of this process (the host), and
  links.json        the symbolic links among them (ns/*, exe, root), for a fake /proc in unit tests;
  cgroup.json       the contents of the container's cgroup files the snapshot reads.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from conftest import REPO, base_config

from mrunc import snapshot

FILES = ("stat", "status", "cmdline", "comm", "mountinfo", "cgroup", "uid_map", "gid_map",
         "net/dev", "net/if_inet6", "net/route", "net/fib_trie")


def mrunc(root, *args):
    return subprocess.run([sys.executable, "-m", "mrunc", "--root", root, *args], cwd=REPO,
                          capture_output=True, text=True)


def dump(pid, links):
    for name in FILES:
        dest = os.path.join(HERE, "proc", str(pid), name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(f"/proc/{pid}/{name}", "rb") as src, open(dest, "wb") as out:
            out.write(src.read())
    links[str(pid)] = {name: os.readlink(f"/proc/{pid}/{name}") for name in
                       [f"ns/{k}" for k in snapshot.NS_KINDS] + ["exe"]}


def main():
    root = f"/run/mrunc-capture-{uuid.uuid4().hex[:6]}"
    bundle = f"/tmp/mrunc-capture-bundle-{uuid.uuid4().hex[:6]}"
    os.makedirs(bundle)
    cfg = base_config()
    cfg["hostname"] = "stepped"
    cfg["process"]["args"] = ["sh", "-c", "sleep 300 & wait"]
    cfg["linux"]["namespaces"].append({"type": "cgroup"})
    cfg["linux"].setdefault("resources", {})["memory"] = {"limit": 64 << 20}
    cfg["linux"]["resources"]["pids"] = {"limit": 32}
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    cid = "demo"
    ours, theirs = socket.socketpair()
    p = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", root, "create", "--bundle", bundle,
                          "--step-fd", str(theirs.fileno()), cid], pass_fds=[theirs.fileno()], cwd=REPO)
    theirs.close()
    ch = ours.makefile("rwb", buffering=0)
    events, snaps = {}, {}
    try:
        while line := ch.readline():
            ev = json.loads(line)
            events[ev["phase"]] = ev
            if ev["phase"] == "spec":
                snaps["host"] = snapshot.take(p.pid)
            else:
                snaps[ev["phase"]] = snapshot.take(ev["pid"])
            ch.write(b"continue\n")
        assert p.wait(10) == 0
        pid = json.loads(mrunc(root, "state", cid).stdout)["pid"]
        mrunc(root, "start", cid)
        time.sleep(0.3)
        snaps["exec"] = snapshot.take(pid)
        shutil.rmtree(os.path.join(HERE, "proc"), ignore_errors=True)
        links = {}
        child = snaps["exec"].process.children[0].pid
        for q in (pid, child, os.getpid()):
            dump(q, links)
        links["roots"] = {"container": str(pid), "child": str(child), "host": str(os.getpid())}
        cg = {}
        for ctrl, path in snaps["exec"].cgroup.paths:
            for name in os.listdir(f"/sys/fs/cgroup/{ctrl}{path}") if ctrl in ("memory", "pids", "cpu", "cpuacct") else ():
                if name.split(".")[0] in ("memory", "pids", "cpu", "cpuacct") and "stat" not in name:
                    try:
                        cg[f"sys/fs/cgroup/{ctrl}{path}/{name}"] = open(f"/sys/fs/cgroup/{ctrl}{path}/{name}").read()
                    except OSError:
                        pass
        keep = ("memory.limit_in_bytes", "memory.usage_in_bytes", "memory.max_usage_in_bytes",
                "memory.oom_control", "pids.current", "pids.max", "cpuacct.usage", "cpu.cfs_quota_us",
                "cpu.cfs_period_us", "cpu.shares")
        cg = {k: v for k, v in cg.items() if k.rsplit("/", 1)[1] in keep}
    finally:
        ours.close()
        mrunc(root, "delete", "--force", cid)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(bundle, ignore_errors=True)
    with open(os.path.join(HERE, "links.json"), "w") as f:
        json.dump(links, f, indent=1)
    with open(os.path.join(HERE, "cgroup.json"), "w") as f:
        json.dump(cg, f, indent=1)
    with open(os.path.join(HERE, "phases.json"), "w") as f:
        json.dump({"events": events, "snapshots": {k: v.to_dict() for k, v in snaps.items()}}, f, indent=1)
    print("captured", ", ".join(snaps))


if __name__ == "__main__":
    main()
