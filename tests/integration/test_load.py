"""Load (issue 8 §4): lifecycles in parallel under a poller, through bench/load.py — the same
code `make load` runs at full size (100 lifecycles, 10 at a time)."""
import importlib.util
import os

import pytest

from conftest import REPO

pytestmark = pytest.mark.root


def _load_module():
    spec = importlib.util.spec_from_file_location("bench_load", os.path.join(REPO, "bench", "load.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_parallel_lifecycles_with_a_poller(mr, tmp_path):
    """30 lifecycles, 5 at a time, `state` and `list --format json` polled every 50 ms: no
    failure, every document valid, racing updates leave config.json and the cgroup agreeing."""
    load_mod = _load_module()
    bundle = load_mod.sleeper_bundle(mr.bundle(), str(tmp_path))
    load = load_mod.Load(bundle, mr.root)
    try:
        wall = load.run(30, 5, 0.05)
    finally:
        load.cleanup()
    print(load_mod.report(load, wall, 30, 5))
    assert load.failures == []
    assert len(load.times["start"]) == 30 and len(load.times["update"]) == 60
    assert load.polls["list"] >= 10, load.polls      # the poller really ran alongside


def test_state_and_list_of_a_container_whose_init_died(mr):
    """init SIGKILLed behind mrunc's back: `state` and `list` say stopped, and do not fail."""
    import json
    import signal
    import time
    cid = mr.new_id()
    mr.cli("run", "-d", "--bundle", mr.bundle(args=["sleep", "100"]), cid, check=True)
    pid = json.loads(mr.cli("state", cid, check=True).stdout)["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        st = json.loads(mr.cli("state", cid, check=True).stdout)
        if st["status"] == "stopped":
            break
        time.sleep(0.02)
    assert st["status"] == "stopped" and st["pid"] == 0
    listed = json.loads(mr.cli("list", "--format", "json", check=True).stdout)
    assert [(s["id"], s["status"]) for s in listed] == [(cid, "stopped")]
    mr.cli("delete", cid, check=True)
