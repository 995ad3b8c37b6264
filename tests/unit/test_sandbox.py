"""mrunc.sandbox without root: options -> config.json, the one-line refusal as non-root, and the
process handling (streaming, keep, the step protocol, abort, a failed phase, cleanup) against
tests/unit/fake_mrunc.py, a stand-in CLI that speaks the protocol and runs programs on the host."""
import json
import os
import posix
import socket
import sys
import time
import types

import pytest

from mrunc import sandbox as SB
from mrunc.sandbox import PHASES, Sandbox, SandboxError, StepSession, build_config, parse_size

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = [sys.executable, os.path.join(HERE, "fake_mrunc.py")]


@pytest.fixture
def rootfs(tmp_path):
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "bin").mkdir()
    (r / "bin" / "sh").write_text("")
    (r / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nmrunc:x:1000:1000::/home/mrunc:/bin/sh\n")
    (r / "etc" / "group").write_text("root:x:0:\nmrunc:x:1000:\nlab:x:1001:mrunc\n")
    return str(r)


def res(cfg):
    return cfg["linux"]["resources"]


# ---- options -> config ---------------------------------------------------------------------------

def test_defaults(rootfs):
    cfg = build_config(["sh", "-c", "echo hi"], rootfs=rootfs, name="c1")
    assert cfg["process"]["args"] == ["sh", "-c", "echo hi"]
    assert cfg["process"]["terminal"] is False
    assert cfg["root"] == {"path": rootfs, "readonly": False}
    assert cfg["hostname"] == "c1"
    kinds = [n["type"] for n in cfg["linux"]["namespaces"]]
    assert {"pid", "network", "ipc", "uts", "mount", "cgroup"} <= set(kinds)
    assert "memory" not in res(cfg) and "pids" not in res(cfg)


@pytest.mark.parametrize("value, nbytes", [("64M", 64 << 20), ("64m", 64 << 20), ("64MiB", 64 << 20),
                                           ("1g", 1 << 30), ("512k", 512 << 10), (4096, 4096),
                                           ("1.5G", 3 << 29), ("100", 100)])
def test_memory_limit(rootfs, value, nbytes):
    assert parse_size(value) == nbytes
    assert res(build_config(["true"], rootfs=rootfs, memory=value))["memory"]["limit"] == nbytes


@pytest.mark.parametrize("value", ["lots", "", "-5M", "0", "12X"])
def test_memory_invalid(value):
    with pytest.raises(SandboxError, match="memory"):
        parse_size(value)


def test_cpus_and_pids(rootfs):
    r = res(build_config(["true"], rootfs=rootfs, cpus=0.5, pids=20))
    assert r["cpu"] == {"quota": 50000, "period": 100000}
    assert r["pids"] == {"limit": 20}
    assert res(build_config(["true"], rootfs=rootfs, cpus="2"))["cpu"]["quota"] == 200000
    for bad in ({"cpus": 0}, {"cpus": "x"}, {"pids": 0}, {"pids": "many"}):
        with pytest.raises(SandboxError):
            build_config(["true"], rootfs=rootfs, **bad)


def test_hostname_readonly_cwd_env(rootfs):
    cfg = build_config(["true"], rootfs=rootfs, name="c1", hostname="box", readonly=True, cwd="/tmp",
                       env={"A": "1", "TERM": "dumb"})
    assert cfg["hostname"] == "box"
    assert cfg["root"]["readonly"] is True
    assert cfg["process"]["cwd"] == "/tmp"
    env = cfg["process"]["env"]
    assert "A=1" in env and "TERM=dumb" in env and "TERM=xterm" not in env
    assert any(e.startswith("PATH=") for e in env)
    with pytest.raises(SandboxError, match="absolute"):
        build_config(["true"], rootfs=rootfs, cwd="tmp")


@pytest.mark.parametrize("user, ids", [("1000", (1000, 1000)), ("1000:5", (1000, 5)), ("mrunc", (1000, 1000)),
                                       ("mrunc:lab", (1000, 1001)), (0, (0, 0))])
def test_user(rootfs, user, ids):
    u = build_config(["true"], rootfs=rootfs, user=user)["process"]["user"]
    assert (u["uid"], u["gid"]) == ids


def test_unknown_user(rootfs):
    with pytest.raises(SandboxError, match="no user 'alice'"):
        build_config(["true"], rootfs=rootfs, user="alice")


def test_capabilities(rootfs):
    caps = build_config(["true"], rootfs=rootfs, cap_add=["sys_admin", "CAP_NET_RAW"],
                        cap_drop="kill")["process"]["capabilities"]
    for which in ("bounding", "effective", "permitted", "ambient"):
        assert "CAP_SYS_ADMIN" in caps[which] and "CAP_NET_RAW" in caps[which]
        assert "CAP_KILL" not in caps[which] and "CAP_AUDIT_WRITE" in caps[which]
    none = build_config(["true"], rootfs=rootfs, cap_drop=["ALL"])["process"]["capabilities"]
    assert all(v == [] for v in none.values())
    only = build_config(["true"], rootfs=rootfs, cap_drop=["ALL"], cap_add=["CHOWN"])["process"]["capabilities"]
    assert only["bounding"] == ["CAP_CHOWN"]
    every = build_config(["true"], rootfs=rootfs, cap_add=["ALL"])["process"]["capabilities"]
    assert "CAP_SYS_ADMIN" in every["bounding"] and len(every["bounding"]) > 38
    with pytest.raises(SandboxError, match="unknown capability CAP_FLY"):
        build_config(["true"], rootfs=rootfs, cap_add=["fly"])


def test_network(rootfs):
    def kinds(cfg):
        return [n["type"] for n in cfg["linux"]["namespaces"]]
    assert "network" in kinds(build_config(["true"], rootfs=rootfs, network="none"))
    assert "network" not in kinds(build_config(["true"], rootfs=rootfs, network="host"))
    assert "cgroup" not in kinds(build_config(["true"], rootfs=rootfs, cgroupns=False))
    with pytest.raises(SandboxError, match="network: 'bridge'"):
        build_config(["true"], rootfs=rootfs, network="bridge")


def test_base_config_is_not_modified(rootfs):
    base = build_config(["a"], rootfs=rootfs)
    build_config(["b"], rootfs=rootfs, base=base, memory="1M")
    assert base["process"]["args"] == ["a"] and "memory" not in res(base)


def test_describe_exit():
    assert SB.describe_exit(0) == "exited with status 0"
    assert SB.describe_exit(3) == "exited with status 3"
    assert SB.describe_exit(137) == "killed by SIGKILL (status 137)"
    oom = SB.describe_exit(137, oom_killed=True, limit=32 << 20, peak=32 << 20)
    assert "OOM killer" in oom and "32.0 MiB" in oom


# ---- not root ------------------------------------------------------------------------------------

def test_non_root_without_user_namespaces_says_why(monkeypatch, rootfs):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(posix, "geteuid", lambda: 1000)   # mrunc.userdirs asks posix
    monkeypatch.setattr(SB.host, "_userns_unavailable", lambda: "/proc/sys/user/max_user_namespaces is 0")
    with pytest.raises(SB.Unavailable) as e:
        Sandbox(root="/nonexistent/x", rootfs=rootfs)
    msg = str(e.value)
    assert "\n" not in msg
    assert "need root" in msg and "uid 1000" in msg and "CAP_SYS_ADMIN" in msg
    assert "max_user_namespaces is 0" in msg


def test_rootless_what_works_and_what_does_not(monkeypatch, tmp_path, rootfs):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(posix, "geteuid", lambda: 1000)   # mrunc.userdirs asks posix
    monkeypatch.setattr(SB.host, "_userns_unavailable", lambda: None)
    assert SB.check_available(rootfs) is False              # rootless, not refused
    for d in ("state", "state.bundles"):                    # uid 1000's own dirs (userdirs checks)
        (tmp_path / d).mkdir(mode=0o700)
        os.chown(tmp_path / d, 1000, 1000)
    sb = Sandbox(root=str(tmp_path / "state"), rootfs=rootfs, mrunc=FAKE, check=False)
    try:
        assert sb.rootless
        sb._no_cgroup = "/sys/fs/cgroup is not delegated to uid 1000"
        sb.notes = [SB.ROOTLESS_NOTE.format(uid=1000)]
        assert "read-only" in sb.notes[0] and "only uid 0" in sb.notes[0]
        # limits are skipped, not fatal: the container is made without them and says why
        c = sb._prepare("true", None, "lim", {"memory": "32M", "pids": 5, "hostname": "h"})
        assert c.skipped == ("memory=32M only as an address-space cap per process (RLIMIT_AS), pids=5 "
                             "skipped: no cgroup limits here (/sys/fs/cgroup is not delegated to uid 1000)")
        res = c.config["linux"].get("resources") or {}
        assert "memory" not in res and "pids" not in res and c.config["hostname"] == "h"
        assert {"type": "RLIMIT_AS", "hard": 32 << 20, "soft": 32 << 20} in c.config["process"]["rlimits"]
        assert next(iter(_run_of(c))) == ("stderr", f"mrunc: {c.skipped}\n")
        with pytest.raises(SandboxError, match="only root \\(uid 0\\) exists"):
            sb.run("true", user="mrunc")
        c = sb._prepare("true", None, "rl", {"user": "0"})
        cfg = c.config
        assert cfg["root"]["readonly"] is True and not c.overlay
        assert {"type": "user"} in cfg["linux"]["namespaces"]
        assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
        assert any(m["destination"] == "/tmp" and m["type"] == "tmpfs" for m in cfg["mounts"])
        assert "resources" not in cfg["linux"] or not cfg["linux"]["resources"].get("memory")
        # a bundle written for root (no user namespace) is made runnable as uid 1000, as the
        # default is; user mounts come after our tmpfs, so a mount point under /run can be made
        import json
        from mrunc import spec
        hand = spec.default_config()
        hand["root"] = {"path": rootfs}
        hand["mounts"] = [m for m in hand["mounts"] if m["destination"] != "/dev"]
        bundle = tmp_path / "hand"
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(hand))
        c = sb._prepare("", None, "hand", {"image": str(bundle),
                                           "mounts": [{"destination": "/run/x", "type": "bind",
                                                       "source": str(tmp_path), "options": ["rbind"]}]})
        cfg = c.config
        assert [n["type"] for n in cfg["linux"]["namespaces"]].count("user") == 1
        assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
        assert "devices" not in (cfg["linux"].get("resources") or {})
        devpts = next(m for m in cfg["mounts"] if m["type"] == "devpts")
        assert "gid=5" not in devpts["options"]
        where = [m["destination"] for m in cfg["mounts"]]
        assert where[0] == "/dev" and where.index("/run") < where.index("/run/x")
        assert where.count("/tmp") == 1
        assert "namespaces" in hand["linux"] and {"type": "user"} not in hand["linux"]["namespaces"]
    finally:
        sb.close()


def _run_of(c):
    """A Run over `c` whose first item is all we read (no process started)."""
    r = SB.Run.__new__(SB.Run)
    r.container, r.keep = c, False
    return r


def test_missing_rootfs(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(posix, "geteuid", lambda: 0)   # mrunc.userdirs asks posix
    with pytest.raises(SB.Unavailable, match="make rootfs"):
        Sandbox(root=str(tmp_path / "r"), rootfs=str(tmp_path / "none"))


# ---- processes, against the fake CLI -------------------------------------------------------------

@pytest.fixture
def lab(tmp_path, rootfs):
    sb = Sandbox(root=str(tmp_path / "state"), rootfs=rootfs, mrunc=FAKE, check=False)
    yield sb
    sb.close()
    assert not os.path.exists(sb.work), os.listdir(sb.work)


def test_run_streams_output_and_status(lab):
    got = []
    r = lab.run("echo one; echo two >&2; exit 3", readonly=True, on_output=lambda s, t: got.append((s, t)))
    assert r.exit_code == 3 and not r.ok
    assert r.stdout == "one\n" and r.stderr == "two\n"
    assert ("stdout", "one\n") in got and ("stderr", "two\n") in got
    assert r.name.startswith("lab-") and r.name not in lab.containers


def test_run_as_iterator(lab):
    run = lab.stream(args=["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.05; done"], readonly=True)
    chunks = [t for _s, t in run]
    assert "".join(chunks) == "1\n2\n3\n" and len(chunks) >= 2     # streamed, not at the end
    assert run.result.exit_code == 0


def test_keep_leaves_it_running(lab):
    r = lab.run("echo kept; echo $((6*7))", keep=True, name="k1", readonly=True)
    assert r.exit_code == 0 and "kept" in r.stdout and "42" in r.stdout
    c = lab.containers["k1"]
    assert c.shim.poll() is None                # still up: sleeping after the script
    assert lab.run("exit 5", keep=True, name="k2", readonly=True).exit_code == 5
    lab.remove("k1")
    assert "k1" not in lab.containers and c.shim.poll() is not None


def test_names(lab):
    lab.start(name="same", readonly=True)
    with pytest.raises(SandboxError, match="already exists"):
        lab.start(name="same", readonly=True)
    with pytest.raises(SandboxError, match="invalid"):
        lab.run("true", name="../x", readonly=True)


def test_step_through_every_phase(lab):
    s = lab.step(args=["sleep", "30"], readonly=True, name="st")
    assert s.upcoming == "spec" and not s.steps
    steps = []
    while not s.done:
        steps.append(s.next())
    assert [x.phase for x in steps] == list(PHASES)
    assert steps[0].pid is None and steps[0].diff is None
    assert all(x.snapshot is not None for x in steps)
    assert all(x.diff is not None for x in steps[1:])
    assert steps[1].calls == [["fake", "clone"]] and steps[1].ms == 1.5
    ex = steps[-1]
    assert ex.snapshot.process.comm == "sleep"
    assert any("exec'd a new program" in line for line in ex.summary())
    assert s.next() is None and s.times["exec"] > 0
    assert lab.containers["st"].exit_code is None


def test_a_phase_report_is_read_whole_not_a_byte_at_a_time():
    """A report is a line of several kB (the phase's calls, init's view of itself): read a byte
    per recv(), it took ~7000 system calls and most of a pause's CPU."""
    class Counting(socket.socket):
        recvs = 0

        def recv_into(self, *args):
            Counting.recvs += 1
            return super().recv_into(*args)

    a, theirs = socket.socketpair()
    s = StepSession(types.SimpleNamespace())
    s._listen(Counting(a.family, a.type, fileno=a.detach()))
    report = {"event": "phase-done", "phase": "mount", "ms": 1.5,
              "calls": [["mount", "overlay", "/x" * 20, "overlay", 0]] * 200}
    line = json.dumps(report).encode() + b"\n"
    try:
        theirs.sendall(line + line)
        assert s._read_event() == report and s._read_event() == report   # nothing lost between
        assert Counting.recvs <= 6, f"{Counting.recvs} recv() calls for 2 x {len(line)} bytes"
        s._answer(b"continue")
        assert theirs.recv(64) == b"continue\n"
    finally:
        s._end()
        theirs.close()


def test_abort_half_way(lab):
    s = lab.step(args=["sleep", "30"], readonly=True)
    s.next()
    s.next()
    shim = s.container.shim
    s.abort()
    assert s.done and s.error == "aborted"
    assert shim.wait(5) == 1
    assert s.container.deleted and not lab.containers


def test_failed_phase(lab, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_AT", "mount")
    s = lab.step(args=["sleep", "30"], readonly=True)
    steps = s.run_to_end()
    assert [x.phase for x in steps] == ["spec", "clone", "mount"]
    assert steps[-1].error == "mount: mount /nope: no such file"
    assert s.failed and s.done and not lab.containers


def test_close_stops_everything(tmp_path, rootfs):
    sb = Sandbox(root=str(tmp_path / "state"), rootfs=rootfs, mrunc=FAKE, check=False)
    c = sb.start(readonly=True)
    s = sb.step(args=["sleep", "30"], readonly=True)
    s.next()
    shims = [c.shim, s.container.shim]
    time.sleep(0.1)
    sb.close()
    assert all(p.poll() is not None for p in shims)
    assert not os.path.exists(sb.work) and not os.path.exists(sb.root)
    with pytest.raises(SandboxError, match="closed"):
        sb.run("true")
