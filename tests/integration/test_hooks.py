"""OCI hooks: order, namespace, the state on stdin, and failure behaviour."""
import json
import os

import pytest

pytestmark = pytest.mark.root

# Each hook appends "<name> <status> <pid-from-state> <its mnt ns> <its pid>" to the log.
HOOK = ('read -r s; st=$(echo "$s" | sed -n \'s/.*"status": *"\\([a-z]*\\)".*/\\1/p\'); '
        'pid=$(echo "$s" | sed -n \'s/.*"pid": *\\([0-9]*\\).*/\\1/p\'); '
        'echo "$0 $st $pid $(readlink /proc/self/ns/mnt)" >> $1')


def _hooks_bundle(mr, tmp_path, fail=None, args=("sh", "-c", "echo program-ran >> /hooklog/log")):
    logdir = tmp_path / "hooklog"
    logdir.mkdir(exist_ok=True)
    host_log = str(logdir / "log")

    def hook(kind, log):
        h = {"path": "/bin/sh", "args": ["sh", "-c", HOOK, kind, log]}
        if kind == fail:
            h["args"] = ["sh", "-c", "echo hook-said-no >&2; exit 3"]
        return [h]

    def edit(cfg):
        cfg["mounts"].append({"destination": "/hooklog", "type": "bind", "source": str(logdir),
                              "options": ["rbind", "rw"]})
        cfg["hooks"] = {
            "prestart": hook("prestart", host_log),
            "createRuntime": hook("createRuntime", host_log),
            "createContainer": hook("createContainer", host_log),  # container mnt ns, host path still visible
            "startContainer": hook("startContainer", "/hooklog/log"),  # after pivot_root
            "poststart": hook("poststart", host_log),
            "poststop": hook("poststop", host_log),
        }
    return mr.bundle(edit, args=list(args)), host_log


def _log(path):
    return [l.split() for l in open(path).read().splitlines()] if os.path.exists(path) else []


def test_all_hooks_in_order_with_state_and_namespace(mr, tmp_path):
    b, log = _hooks_bundle(mr, tmp_path)
    cid = mr.new_id()
    pidfile = str(tmp_path / "pid")
    mr.cli("create", "--bundle", b, "--pid-file", pidfile, cid, check=True)
    host_pid = open(pidfile).read()
    entries = _log(log)
    assert [e[0] for e in entries] == ["prestart", "createRuntime", "createContainer"]
    host_mnt = os.readlink("/proc/self/ns/mnt")
    prestart, create_rt, create_ct = entries
    # "created": runtime.md's "creating" is lifecycle step 2, these hooks are steps 3-5
    assert prestart[1:3] == ["created", host_pid] and prestart[3] == host_mnt
    assert create_rt[1:3] == ["created", host_pid] and create_rt[3] == host_mnt
    # createContainer: in the container's mount namespace, pid as seen inside (1)
    assert create_ct[1:3] == ["created", "1"] and create_ct[3] != host_mnt
    mr.cli("start", cid, check=True)
    import time
    deadline = time.time() + 5
    while len(_log(log)) < 6 and time.time() < deadline:
        time.sleep(0.05)
    names = [e[0] for e in _log(log)]
    assert names[3] == "startContainer" and "poststart" in names and "program-ran" in names
    start_ct = _log(log)[3]
    assert start_ct[1:3] == ["created", "1"] and start_ct[3] != host_mnt
    poststart = next(e for e in _log(log) if e[0] == "poststart")
    assert poststart[1] == "running" and poststart[3] == host_mnt
    while json.loads(mr.cli("state", cid).stdout)["status"] != "stopped" and time.time() < deadline:
        time.sleep(0.05)
    mr.cli("delete", cid, check=True)
    poststop = _log(log)[-1]
    assert poststop[:2] == ["poststop", "stopped"] and poststop[3] == host_mnt


def _as_an_older_mrunc_wrote_it(mr, cid):
    """The container's state directory as the previous mrunc left it: the whole config inside
    state.json, no config.json, no summary of it."""
    d = os.path.join(mr.root, cid)
    with open(os.path.join(d, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(d, "state.json")) as f:
        data = json.load(f)
    assert "config" not in data and data["hook_kinds"] == [
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    del data["annotations"], data["hook_kinds"]
    with open(os.path.join(d, "state.json"), "w") as f:
        json.dump(dict(data, config=config), f)
    os.unlink(os.path.join(d, "config.json"))


def test_a_state_file_of_an_older_mrunc_runs_its_hooks_too(mr, tmp_path):
    """A container created by the previous mrunc (its config inside state.json): start runs its
    poststart hooks, state prints its annotations, delete runs its poststop hooks."""
    b, log = _hooks_bundle(mr, tmp_path, args=("true",))
    with open(os.path.join(b, "config.json")) as f:
        cfg = json.load(f)
    cfg["annotations"] = {"org.example.k": "v"}
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(cfg, f)
    cid = mr.new_id()
    mr.cli("create", "--bundle", b, cid, check=True)
    _as_an_older_mrunc_wrote_it(mr, cid)
    assert json.loads(mr.cli("state", cid, check=True).stdout)["annotations"] == {"org.example.k": "v"}
    mr.cli("start", cid, check=True)
    assert "poststart" in [e[0] for e in _log(log)]
    import time
    deadline = time.time() + 5
    while json.loads(mr.cli("state", cid).stdout)["status"] != "stopped" and time.time() < deadline:
        time.sleep(0.05)
    mr.cli("delete", cid, check=True)
    assert _log(log)[-1][:2] == ["poststop", "stopped"]
    assert not os.path.exists(os.path.join(mr.root, cid))


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_cleans_up(mr, tmp_path, kind):
    b, log = _hooks_bundle(mr, tmp_path, fail=kind)
    cid = mr.new_id()
    p = mr.cli("create", "--bundle", b, cid)
    assert p.returncode != 0 and f"hooks.{kind}[0]" in p.stderr and "hook-said-no" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not os.path.exists(os.path.join(mr.root, cid))


def test_failing_poststop_is_only_a_warning(mr, tmp_path):
    b, log = _hooks_bundle(mr, tmp_path, fail="poststop", args=("true",))
    p = mr.cli("run", "--bundle", b, mr.new_id())
    assert p.returncode == 0 and "warning" in p.stderr and "hooks.poststop[0]" in p.stderr


def test_hook_timeout(mr, tmp_path):
    def edit(cfg):
        cfg["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}]}
    cid = mr.new_id()
    p = mr.cli("create", "--bundle", mr.bundle(edit), cid)
    assert p.returncode != 0 and "timed out" in p.stderr
    assert not os.path.exists(os.path.join(mr.root, cid))


def test_failing_poststart_stops_the_container(mr, tmp_path):
    """runtime-spec 1.3.0 (and runc, crun): an error, and the container is stopped."""
    b, log = _hooks_bundle(mr, tmp_path, fail="poststart", args=("sleep", "30"))
    cfg_path = os.path.join(b, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["ociVersion"] = "1.3.0"
    json.dump(cfg, open(cfg_path, "w"))
    cid = mr.new_id()
    mr.cli("create", "--bundle", b, cid, check=True)
    p = mr.cli("start", cid)
    assert p.returncode != 0 and "hooks.poststart[0]" in p.stderr
    import time
    deadline = time.time() + 5
    while json.loads(mr.cli("state", cid).stdout)["status"] != "stopped":
        assert time.time() < deadline, "container still running after its poststart hook failed"
        time.sleep(0.05)


def test_failing_start_container_hook_fails_start(mr, tmp_path):
    b, log = _hooks_bundle(mr, tmp_path, fail="startContainer", args=("sleep", "30"))
    cid = mr.new_id()
    mr.cli("create", "--bundle", b, cid, check=True)
    p = mr.cli("start", cid)
    assert p.returncode != 0 and "hooks.startContainer[0]" in p.stderr and "hook-said-no" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert json.loads(mr.cli("state", cid).stdout)["status"] == "stopped"
    assert "program-ran" not in open(log).read() if os.path.exists(log) else True


def test_poststart_runs_after_the_program_started(mr, tmp_path):
    """runtime-spec: poststart after the user process started (runc <= 1.5 ran it at create)."""
    out = tmp_path / "comm"

    def edit(cfg):
        cfg["hooks"] = {"poststart": [{"path": "/bin/sh", "args": [
            "sh", "-c", 'pid=$(sed -n \'s/.*"pid": *\\([0-9]*\\).*/\\1/p\'); cat /proc/$pid/comm > ' + str(out)]}]}
    cid = mr.new_id()
    mr.cli("create", "--bundle", mr.bundle(edit, args=["sleep", "30"]), cid, check=True)
    assert not out.exists()  # not at create time
    mr.cli("start", cid, check=True)
    assert out.read_text().strip() == "sleep"


@pytest.mark.parametrize("version", ["1.0.2-dev", "1.2.1"])
def test_failing_poststart_before_spec_1_3_is_a_warning(mr, tmp_path, version):
    """runtime-spec up to 1.2.1: a failed poststart hook is logged as a warning, and the remaining
    hooks and the lifecycle continue as if it had succeeded."""
    out = tmp_path / "second-hook"

    def edit(cfg):
        cfg["ociVersion"] = version
        cfg["hooks"] = {"poststart": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo hook-said-no >&2; exit 3"]},
            {"path": "/bin/sh", "args": ["sh", "-c", f"echo post-start called > {out}"]}]}
    cid = mr.new_id()
    mr.cli("create", "--bundle", mr.bundle(edit, args=["sleep", "30"]), cid, check=True)
    p = mr.cli("start", cid)
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines() == [
        "mrunc: warning: hooks.poststart[0]: /bin/sh exited with status 3: hook-said-no"]
    assert out.read_text() == "post-start called\n"
    state = json.loads(mr.cli("state", cid, check=True).stdout)
    assert state["status"] == "running"
    assert open(f"/proc/{state['pid']}/comm").read().strip() == "sleep"
