"""mrunc doctor's checks, from files laid out as the kernel shows them (the live runs, as real
users on this host and in the cgroup v2 VM, are in tests/integration/test_classroom.py)."""
import json
import os
import posix

import pytest

from mrunc import doctor


def test_an_old_kernel_lists_what_it_lacks():
    c = doctor.check_kernel("5.4.0-150-generic")
    assert c.status == "warn"
    assert c.detail == ("5.4.0-150-generic: no time namespaces (needs 5.6), openat2 (needs 5.6), "
                        "CLONE_INTO_CGROUP (needs 5.7); those are skipped")
    assert doctor.check_kernel("6.1.0-13-amd64").status == "ok"


def _v2_tree(tmp_path, own, controllers):
    root = tmp_path / "cg"
    (root / own.strip("/")).mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids io\n")
    d = root / own.strip("/")
    for name, text in (("cgroup.controllers", controllers), ("cgroup.procs", "1\n"),
                       ("cgroup.subtree_control", "")):
        (d / name).write_text(text)
    (tmp_path / "cgroup").write_text(f"0::{own}\n")
    (tmp_path / "mountinfo").write_text("")
    return dict(root=str(root), mountinfo=str(tmp_path / "mountinfo"), proc_cgroup=str(tmp_path / "cgroup"))


def test_a_delegated_subtree_without_the_cpu_controller_fails_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    kw = _v2_tree(tmp_path, "/system.slice/jupyter-ann.service", "memory pids\n")
    c = doctor.check_cgroups(**kw)
    path = f"{kw['root']}/system.slice/jupyter-ann.service"
    assert c.status == "FAIL" and c.detail == (f"{path} is delegated, but without the cpu controller(s) "
                                                "(cgroup.controllers: memory pids)")
    assert "Delegate=memory pids cpu" in c.fix


def test_a_fully_delegated_subtree_passes_and_a_kernel_in_its_leaf_finds_it(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    kw = _v2_tree(tmp_path, "/u/jupyter.service", "cpu memory pids\n")
    assert doctor.check_cgroups(**kw).status == "ok"
    (tmp_path / "cgroup").write_text("0::/u/jupyter.service/supervisor\n")  # after prepare()
    c = doctor.check_cgroups(**kw)
    assert c.status == "ok" and c.detail.startswith(f"{kw['root']}/u/jupyter.service is delegated")


@pytest.mark.skipif(os.geteuid() != 0, reason="root's report")
def test_report_json_and_problems(capsys):
    checks = [doctor.Check("a", "ok", "fine"), doctor.Check("b", "info", "fyi"),
              doctor.Check("c", "FAIL", "broken", "fix it")]
    assert doctor.problems(checks) == ["c: broken (fix: fix it)"]
    d = json.loads(doctor.report(checks, as_json=True))
    assert d["ok"] is False and [c["status"] for c in d["checks"]] == ["ok", "info", "FAIL"]
    text = doctor.report(checks)
    assert "  FAIL  c: broken\n        fix: fix it" in text and "fix: " not in text.split("FAIL")[0]


@pytest.mark.parametrize("opts, hidden", [
    ("rw", None), ("rw,hidepid=off", None), ("rw,hidepid=0", None),
    ("rw,hidepid=invisible", "hidepid=invisible"), ("rw,hidepid=2", "hidepid=2"),
    ("rw,hidepid=ptraceable", "hidepid=ptraceable"), ("rw,hidepid=invisible,gid=MYGID", None),
])
def test_proc_hiding_our_pids_is_read_from_the_top_proc_mount(tmp_path, monkeypatch, opts, hidden):
    from mrunc.state import pids_hidden
    monkeypatch.setattr(os, "geteuid", lambda: 1000)       # root sees every pid: a user's view
    monkeypatch.setattr(posix, "geteuid", lambda: 1000)    # (mrunc.state asks posix)
    mi = tmp_path / "mountinfo"
    mi.write_text("22 1 0:21 / /proc rw,relatime shared:12 - proc proc rw\n"      # the host's, below
                  "25 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
                  f"572 22 0:193 / /proc rw,relatime - proc proc {opts.replace('MYGID', str(os.getegid()))}\n")
    assert pids_hidden(str(mi)) == hidden
