"""create/run options: --preserve-fds, --no-pivot, a terminal attached to run's own tty, --log."""
import json
import os
import pty
import subprocess
import sys
import time

import pytest

from conftest import REPO

pytestmark = pytest.mark.root


def test_preserve_fds_passes_exactly_those(mr, tmp_path):
    secret = tmp_path / "passed.txt"
    secret.write_text("through-fd-3\n")
    other = tmp_path / "notpassed.txt"
    other.write_text("x")
    b = mr.bundle(args=["sh", "-c", "cat <&3; ls /proc/self/fd | sort -n | tr '\\n' ' '"])
    # mrunc gets the file on fd 3 and another one on fd 4; only fd 3 may reach the container
    p = subprocess.run(["sh", "-c", f'exec "$@" 3<{secret} 4<{other}', "sh", sys.executable, "-m", "mrunc",
                        "--root", mr.root, "run", "--preserve-fds", "1", "--bundle", b, mr.new_id()],
                       cwd=REPO, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "through-fd-3"
    assert lines[1].split() == ["0", "1", "2", "3", "4"]  # 4 = the directory ls reads


def test_no_pivot(mr):
    p = mr.run("sh", "-c", "echo $$; ls /; cat /proc/self/mountinfo | awk '$5 == \"/\"' | wc -l")
    q = mr.cli("run", "--no-pivot", "--bundle", mr.bundle(
        args=["sh", "-c", "echo $$; ls /; test -e /etc/debian_version && echo host-root-visible; true"]),
        mr.new_id())
    assert q.returncode == 0, q.stderr
    assert q.stdout.splitlines()[0] == "1"
    assert "bin" in q.stdout.split() and "host-root-visible" not in q.stdout
    assert p.returncode == 0


def test_run_attaches_terminal_to_callers_tty(mr):
    """terminal: true in the foreground: the container's pty is copied to run's own terminal."""
    def edit(cfg):
        cfg["process"]["terminal"] = True
        cfg["process"]["args"] = ["sh", "-c", "tty; [ -t 1 ] && echo out-is-tty; exit 5"]
    b = mr.bundle(edit)
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "mrunc", "--root", mr.root, "run", "--bundle", b, mr.new_id()],
                         cwd=REPO, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        if p.poll() is not None and b"out-is-tty" in out:
            break
    rc = p.wait(10)
    os.close(master)
    text = out.decode(errors="replace")
    assert "/dev/pts/0" in text and "out-is-tty" in text, text
    assert rc == 5


def test_log_file_json_and_debug(mr, tmp_path):
    log = tmp_path / "runtime.log"
    cid = mr.new_id()
    p = mr.cli("--log", str(log), "--log-format", "json", "start", cid)
    assert p.returncode == 1
    rec = json.loads(log.read_text().splitlines()[-1])
    assert rec["level"] == "error" and cid in rec["msg"] and "time" in rec


def test_flag_equals_form(mr):
    b = mr.bundle(args=["true"])
    cid = mr.new_id()
    assert mr.cli(f"--root={mr.root}", "create", f"--bundle={b}", cid).returncode == 0
    st = json.loads(mr.cli("state", cid).stdout)
    assert st["status"] == "created" and st["bundle"] == b


def test_debug_puts_the_phase_trace_in_the_log(mr, tmp_path):
    log = tmp_path / "debug.log"
    b = mr.bundle(args=["true"])
    p = mr.cli("--debug", "--log", str(log), "--log-format", "json", "run", "--bundle", b, mr.new_id())
    assert p.returncode == 0, p.stderr
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert all(r["level"] == "debug" for r in recs)
    assert any("phase pivot_root" in r["msg"] for r in recs)


def test_preserve_fds_must_have_been_passed(mr):
    """runc#5474: fds the caller did not pass must not be 'preserved' (they would be ours)."""
    b = mr.bundle(args=["ls", "/proc/self/fd"])
    p = mr.cli("run", "--preserve-fds", "2", "--bundle", b, mr.new_id())
    assert p.returncode != 0 and "fd 3 was not passed" in p.stderr
