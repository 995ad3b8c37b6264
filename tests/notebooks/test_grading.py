"""The graded exercises' checks (mrunc.notebook.grading) judge kernel state: a real container made
to the spec passes every condition, one made otherwise fails exactly the conditions it breaks, with
words saying why; None, a wrong name, a stopped container fail in words, never with a traceback."""
import os
import uuid

import pytest

from mrunc import notebook
from mrunc.notebook import grading as g
from mrunc.snapshot import Cgroup, Namespace, Security, Snapshot

HOST = 4026531000


def snap(**over):
    """A snapshot as take() would make it, of a container with own pid/uts/mnt, host net."""
    ns = [Namespace(k, HOST + i + (100 if k in ("pid", "uts", "mnt") else 0), HOST + i)
          for i, k in enumerate(("mnt", "uts", "ipc", "pid", "net", "user", "cgroup"))]
    sec = Security(uid=(0, 0, 0, 0), gid=(0, 0, 0, 0), groups=(), inheritable=(),
                   permitted=("CAP_KILL",), effective=("CAP_KILL",), bounding=("CAP_KILL",),
                   ambient=(), no_new_privs=True, seccomp=2, seccomp_filters=1,
                   uid_map=((0, 0, 4294967295),), gid_map=((0, 0, 4294967295),))
    cg = Cgroup(version="v1", path="/x", paths=(), memory_limit=64 << 20, pids_limit=20,
                cpu_quota_usec=50000, cpu_period_usec=100000, oom_kills=0)
    base = dict(pid=4242, namespaces=tuple(ns), security=sec, cgroup=cg, hostname="web")
    base.update(over)
    return Snapshot(**base)


def test_conditions_on_a_snapshot():
    r = g.check(snap(), g.own_namespace("pid", "uts"), g.host_namespace("network"),
                g.memory_limit("64M"), g.pids_limit(20), g.cpu_limit(0.5),
                g.lacks_capability("net_raw"), g.has_capability("CAP_KILL"), g.seccomp("filter"),
                g.no_new_privs(), g.hostname("web"))
    assert r.passed, r.text()
    assert [x.condition for x in r.results][:3] == [
        "it has its own pid namespace", "it has its own uts namespace",
        "it shares the host's network namespace"]


def test_each_wrong_value_is_named():
    r = g.check(snap(hostname="db"), g.own_namespace("net"), g.host_namespace("pid"),
                g.memory_limit("32M"), g.pids_limit(10), g.lacks_capability("KILL"),
                g.seccomp("disabled"), g.hostname("web"), g.uid_maps(0, 100000))
    assert [x.problem for x in r.results] == [
        "it is in the host's network namespace", "it has a pid namespace of its own",
        "it is 64 MiB", "pids.max is 20", "it is in CapEff (/proc/<pid>/status)",
        "it is filter", "it is 'db'",
        "it has no user namespace of its own: uid 0 is uid 0 on the host too"]
    assert not r and "0 of 8 met" in r.text()


def test_user_namespace_maps():
    user = tuple(Namespace(n.kind, n.inode + (7 if n.kind == "user" else 0), n.host_inode)
                 for n in snap().namespaces)
    sec = snap().security
    mapped = snap(namespaces=user, security=Security(**{**sec.__dict__, "uid_map": ((0, 1000, 1),)}))
    r = g.check(mapped, g.uid_maps(0, 1000), g.uid_maps(0, 2000), g.uid_maps(5, 1005))
    assert [x.problem for x in r.results] == ["", "uid 0 inside is uid 1000 outside", "uid 5 is not mapped"]


def test_unreadable_parts_and_bad_targets_fail_in_words():
    r = g.check(snap(cgroup=None, notes=("no cgroup here",)), g.memory_limit("64M"))
    assert r.results[0].problem == "its cgroup could not be read (no cgroup here)"
    for target, words in ((None, "got None"), (42, "got int 42"), ("no-such-container-x", "no container named")):
        r = g.check(target, g.own_namespace("pid"), g.memory_limit("64M"), wait=0)
        assert not r.passed and all(words in x.problem for x in r.results), r.text()
        with pytest.raises(AssertionError, match="2 of 2 conditions not met"):
            g.expect(target, g.own_namespace("pid"), g.memory_limit("64M"), wait=0)
    assert "not a condition" in g.check(snap(), "pid").results[0].problem
    with pytest.raises(ValueError, match="unknown namespace 'pdi'"):
        g.own_namespace("pdi")


def test_self_check_prints_and_never_raises(capsys):
    assert g.self_check(None, g.pids_limit(5)) is None
    out = capsys.readouterr().out
    assert out.startswith("✗ pids.max in its cgroup is 5 — there is no container to check")
    g.self_check(snap(), g.pids_limit(20))
    assert capsys.readouterr().out == "✓ pids.max in its cgroup is 20\nMet.\n"


@pytest.fixture
def lab():
    if os.geteuid() != 0:
        pytest.skip("real containers with limits need root")
    from mrunc.sandbox import Sandbox
    s = Sandbox(root=f"/run/mrunc-gradetest-{uuid.uuid4().hex[:8]}")
    yield s
    s.close()
    assert not os.path.exists(s.root)


@pytest.mark.root
def test_real_containers_right_and_wrong(lab, monkeypatch):
    spec = [g.own_namespace("pid", "uts"), g.host_namespace("net"), g.memory_limit("64M"),
            g.pids_limit(20), g.lacks_capability("NET_RAW"), g.read_only("/"), g.hostname("web"),
            g.pid_one(), g.own_root(), g.not_oom_killed()]
    # checked straight after start: the check waits for the program, it never sees "no pid yet"
    right = lab.start(name="right", network="host", memory="64M", pids=20, cap_drop=["NET_RAW"],
                      readonly=True, hostname="web")
    assert g.expect(right, *spec) is None
    wrong = lab.start(name="wrong", memory="32M", cap_add=["NET_RAW"], hostname="db")
    monkeypatch.setattr(notebook, "_SANDBOX", lab)     # by name, in "the notebook's" lab
    assert g.check("right", *spec).passed
    r = g.check(wrong, *spec)
    assert {x.condition: x.problem for x in r.failed} == {
        "it shares the host's network namespace": "it has a network namespace of its own",
        "the memory limit in its cgroup is 64 MiB": "it is 32 MiB",
        "pids.max in its cgroup is 20": "pids.max is max (unlimited)",
        "CAP_NET_RAW is not in its effective set": "it is in CapEff (/proc/<pid>/status)",
        "the mount at / is read-only": "it is read-write",
        "its hostname is 'web'": "it is 'db'"}, r.text()


@pytest.mark.root
def test_oom_is_read_from_the_cgroup_after_the_end(lab):
    hog = lab.start("s=x; while true; do s=$s$s; done", name="hog", memory="16M")
    assert hog.wait(30) is not None
    r = g.check(hog, g.oom_killed(), g.not_oom_killed(), g.own_namespace("pid"))
    assert [x.ok for x in r.results] == [True, False, False], r.text()
    assert "not running any more (it exited with status 137)" in r.results[2].problem


@pytest.mark.root
def test_reaches_reads_the_lab_network(lab):
    lab.network("gradenet", subnet="10.89.77.0/24")
    lab.network("gradeoff", subnet="10.89.78.0/24")
    web = lab.start(name="web", network="gradenet")
    db = lab.start(name="db", network="gradenet")
    far = lab.start(name="far", network="gradeoff")
    r = g.check(web, g.reaches("db", network="gradenet"), g.has_interface("eth0"),
                g.default_route("10.89.77.1"), g.reaches("far", network="gradenet"),
                g.reaches("db", network="nonet"), g.only_loopback())
    assert [x.ok for x in r.results] == [True, True, True, False, False, False], r.text()
    assert r.results[3].problem == "far is not running on this network"
    assert "nonet" in r.results[4].problem
    assert r.results[5].problem == "it also has eth0"
    assert g.check(db, g.reaches("web", network="gradenet")).passed
    assert g.check(far, g.default_route("10.89.77.1")).results[0].problem == \
        "its default route goes via 10.89.78.1"


def test_capability_sets_are_named():
    r = g.check(snap(), g.has_capability("NET_ADMIN"), g.has_capability("kill", "bounding"),
                g.lacks_capability("CAP_KILL", "permitted"))
    assert [x.problem for x in r.results] == ["it is missing from CapEff (/proc/<pid>/status)", "",
                                              "it is in CapPrm (/proc/<pid>/status)"]
    with pytest.raises(ValueError, match="unknown capability set 'efective'"):
        g.has_capability("KILL", "efective")


@pytest.mark.root
def test_commands_and_capability_sets_of_a_real_container(lab):
    c = lab.start(name="caps", cap_drop="ALL", cap_add=["NET_BIND_SERVICE", "KILL"])
    r = g.check(c, g.only_capabilities("NET_BIND_SERVICE", "kill"), g.only_capabilities("KILL"),
                g.only_capabilities("KILL", "NET_BIND_SERVICE", which="bounding"), g.command_works("touch /tmp/x && echo ok"),
                g.command_refused("touch /tmp/y && chown 1000 /tmp/y"), g.command_refused("true"),
                g.command_refused("ls /nowhere"), g.command_works("chown 1000 /tmp/x"))
    assert [x.problem for x in r.results[:4]] == ["", "it also holds CAP_NET_BIND_SERVICE", "", ""], r.text()
    assert r.results[4].ok and r.results[5].problem == "it worked"
    assert r.results[6].problem.startswith("it failed, but not with EPERM (exit 1): ls: /nowhere")
    assert r.results[7].problem.startswith("it failed (exit 1): chown: /tmp/x: Operation not permitted")
    assert "needs the container" in g.check(c.snapshot(), g.command_works("true")).results[0].problem
