"""tests/conformance/run_suite.py (`make conformance`): how it reads the suite's TAP, refuses a
tree that is not built, keeps its reasons file in step with docs/COMPLIANCE.md, and catches a
program that moves the root of the mount namespace it runs in."""
import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "conformance"))
import run_suite  # noqa: E402

SCRIPT = os.path.join(REPO, "tests", "conformance", "run_suite.py")

# Shapes the suite prints (see its validation/util): a test whose description goes on over a
# "Refer to:" line, with a diagnostic block after it; a bare error block and a plan of 0.
PASSING = """TAP version 13
ok 1 - state MUST generate an error if it is not provided the ID of a container
Refer to: https://github.com/opencontainers/runtime-spec/blob/v1.3.0/runtime.md#query-state
  ---
  {
    "error": "exit status 1",
    "stderr": "mrunc: state: missing argument: id\\n"
  }
  ...
ok 2 - # SKIP not mounted
1..2
"""
BARE_ERROR = """TAP version 13
  ---
  {
    "error": "Hooks MUST be called in the listed order\\nRefer to: https://example"
  }
  ...
1..0
"""
NOT_OK = """TAP version 13
not ok 1 - has expected soft RLIMIT_NOFILE
  ---
  {
    "actual": 4000,
    "error": "wanted 3000"
  }
  ...
1..1
"""


def test_error_blocks_after_a_test_line_belong_to_it():
    assert run_suite.parse_tap(PASSING) == ({"ok": 1, "not_ok": 0, "skip": 1, "errors": 0}, None)


def test_a_bare_error_block_is_a_failure():
    counts, failure = run_suite.parse_tap(BARE_ERROR)
    assert counts["errors"] == 1 and failure == "Hooks MUST be called in the listed order"


def test_a_failing_test_carries_its_diagnostic():
    counts, failure = run_suite.parse_tap(NOT_OK)
    assert counts["not_ok"] == 1
    assert failure == "has expected soft RLIMIT_NOFILE (wanted 3000)"


def _res(**kw):
    res = {"rc": 0, "stdout": "TAP version 13\n1..0\n", "stderr": "", "timed_out": False,
           "ns_root_intact": True, "host_intact": True, "leftovers": [], "left": []}
    res.update(kw)
    return res


def test_classify():
    assert run_suite.classify("p", _res())["result"] == "pass"      # plans 0, says nothing
    r = run_suite.classify("p", _res(rc=1, stdout="", stderr="failed to create the container\n"
                                     "mrunc: linux.mountLabel: not supported by mrunc yet\n"
                                     "exit status 1\n"))
    assert r["result"] == "fail"
    assert r["detail"] == "mrunc: linux.mountLabel: not supported by mrunc yet"
    assert run_suite.classify("p", _res(stdout="ok 1 - a # skip no\n1..1\n"))["result"] == "skip"
    assert run_suite.classify("p", _res(timed_out=True))["detail"] == "timed out"
    assert run_suite.classify("p", _res(ns_root_intact=False))["result"] == "NSROOT"
    assert run_suite.classify("p", _res(host_intact=False))["result"] == "HOST"


def test_verdict_fails_on_an_unexplained_failure_only():
    fail = {"program": "p", "result": "fail", "detail": "x", "left": []}
    assert run_suite.verdict([fail], {"p": {"class": "suite", "why": "y"}}) == 0
    assert run_suite.verdict([fail], {}) == 1
    assert run_suite.verdict([dict(fail, result="NSROOT")], {"p": {}}) == 1
    assert run_suite.verdict([dict(fail, result="pass", left=["/run/x/y"])], {}) == 1


def test_state_that_delete_force_leaves_is_reported(tmp_path):
    """A state dir the runtime neither lists nor removes (here: a runtime that does nothing)."""
    (tmp_path / "c1").mkdir()
    new = run_suite._entries(str(tmp_path)) - set()
    assert run_suite.left_behind("/bin/true", str(tmp_path), new) == [str(tmp_path / "c1")]
    assert run_suite._entries(str(tmp_path / "absent")) == set()


PASSING_PROGRAM = "#!/bin/sh\necho 'TAP version 13'\necho 'ok 1 - fine'\necho '1..1'\n"


def _tree(tmp_path, built=True, body=PASSING_PROGRAM):
    """A stand-in for a runtime-tools tree with one validation program, `fake`."""
    d = tmp_path / "validation" / "fake"
    d.mkdir(parents=True)
    (d / "fake.go").write_text("package main\n")
    if built:
        (tmp_path / "runtimetest").write_text("")
        (tmp_path / f"rootfs-{run_suite._goarch()}.tar.gz").write_text("")
        (d / "fake.t").write_text(body)
        (d / "fake.t").chmod(0o755)
    return str(tmp_path)


@pytest.mark.parametrize("tree, message", [
    (None, "RUNTIME_TOOLS is not set"),
    ("/", "not a runtime-tools tree"),
    ("unbuilt", "not built (missing runtimetest"),
])
def test_an_unusable_tree_is_one_line_and_exit_2(tmp_path, tree, message):
    if tree == "unbuilt":
        tree = _tree(tmp_path, built=False)
    p = subprocess.run([sys.executable, SCRIPT, "--check", "--runtime-tools", tree or ""],
                       capture_output=True, text=True, env=dict(os.environ, RUNTIME_TOOLS=""))
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and message in p.stderr and "Traceback" not in p.stderr


def test_a_built_tree_passes_the_check(tmp_path):
    assert run_suite.programs(_tree(tmp_path)) == ["fake"]


def test_reasons_file_is_valid_and_matches_the_compliance_doc():
    reasons = run_suite.load_reasons(run_suite.REASONS)
    with open(os.path.join(REPO, "docs", "COMPLIANCE.md"), encoding="utf-8") as f:
        doc = f.read()
    section = doc[doc.index("## 9. Testing against the OCI validation suite"):]
    section = section[:section.index("\n---")]
    # The per-program table: | `program` | mrunc | runc | class | why |
    rows = {m.group(1): (m.group(2).split()[0], m.group(3).strip())
            for m in re.finditer(r"^\| `(\w+)` \| ([^|]+)\|[^|]+\|([^|]*)\|", section, re.M)}
    assert len(rows) >= 50, "the per-program table is missing from the section"
    failing = {name for name, (result, _) in rows.items() if result not in ("pass", "flaky")}
    assert sorted(failing ^ set(reasons)) == [], "table and docs/conformance-reasons.toml disagree"
    for name in failing:
        assert rows[name][1] == run_suite.CLASSES[reasons[name]["class"]], name


def _needs_unshare():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare")


@pytest.mark.root
def test_a_program_that_pivot_roots_its_namespace_is_caught_and_the_host_is_untouched(
        tmp_path, monkeypatch):
    """The runner's reason to be: each program's mount namespace is private and its root checked."""
    _needs_unshare()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(run_suite.tempfile, "tempdir", str(work))
    body = ("#!/bin/sh\nset -e\necho 'TAP version 13'\nr=$TMPDIR/newroot\nmkdir $r\n"
            "mount -t tmpfs none $r\nmkdir $r/old\ncd $r\npivot_root . old\necho '1..0'\n")
    tree = _tree(tmp_path / "tree", body=body)
    before = os.stat("/")
    with open("/proc/self/mountinfo") as f:
        root_mount = [line for line in f if line.split()[4] == "/"]
    r = run_suite.run_program(tree, "fake", "/bin/true", timeout=30)
    assert r["result"] == "NSROOT"
    after = os.stat("/")
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
    with open("/proc/self/mountinfo") as f:
        assert [line for line in f if line.split()[4] == "/"] == root_mount
        assert "newroot" not in f.read()
    assert os.listdir(work) == []           # its private work dir is gone


@pytest.mark.root
def test_a_program_that_hangs_is_killed_at_the_timeout(tmp_path):
    _needs_unshare()
    tree = _tree(tmp_path, body="#!/bin/sh\necho 'TAP version 13'\nexec sleep 60\n")
    r = run_suite.run_program(tree, "fake", "/bin/true", timeout=1)
    assert (r["result"], r["detail"]) == ("fail", "timed out")


@pytest.mark.root
def test_a_program_that_fails_once_is_flaky_not_passed(tmp_path):
    _needs_unshare()
    mark = tmp_path / "ran-once"
    body = (f"#!/bin/sh\necho 'TAP version 13'\nif [ -e {mark} ]; then echo 'ok 1 - b'; "
            f"else touch {mark}; echo 'not ok 1 - first time'; fi\necho '1..1'\n")
    tree = _tree(tmp_path / "tree", body=body)
    r = run_suite.run_with_retries(tree, "fake", "/bin/true", 30, None, retries=1)
    assert (r["result"], r["detail"]) == ("flaky", "first time")
    mark.unlink()
    r = run_suite.run_with_retries(tree, "fake", "/bin/true", 30, None, retries=0)
    assert r["result"] == "fail"
