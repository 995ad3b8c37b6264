"""podman 4.3 (through conmon) driving mrunc by path: `podman --runtime <abs path to mrunc>`.

One private podman environment (store, run root, containers.conf) and one imported busybox image
for the module; each scenario of issue 5 is a test. The detached container's tests run in file
order: run -d, ps, exec (plain, -t, -i, -d), top, pause/unpause, kill USR1, stop -t 2, start, rm -f.
The last test removes everything and asserts that nothing was left behind.
"""
import json
import os
import shutil
import time

import pytest

from engines import IMAGE, Podman

pytestmark = [pytest.mark.root, pytest.mark.podman]


@pytest.fixture(scope="module")
def pm():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if not shutil.which("podman") or not shutil.which("conmon"):
        pytest.skip("podman/conmon not installed (`make setup` installs them with apt)")
    env = Podman()
    try:
        env.import_image()
        yield env
    finally:
        env.close()


def test_run_rm_echo(pm):
    p = pm.run("--rm", IMAGE, "echo", "hello from mrunc")
    assert p.stdout == "hello from mrunc\n", p.stderr
    assert pm("ps", "-a", "-q").stdout == ""


def test_podman_config_reaches_mrunc(pm):
    """podman's generated config.json runs as is: its default seccomp profile is loaded, its
    ulimits and pids limit applied, and podman asks mrunc for JSON logs."""
    out = pm.run("--rm", IMAGE, "sh", "-c",
                 "grep Seccomp: /proc/self/status; ulimit -n; cat /sys/fs/cgroup/pids/pids.max "
                 "2>/dev/null || cat /sys/fs/cgroup/pids.max").stdout.split("\n")
    assert out[0].split() == ["Seccomp:", "2"]  # filter mode: podman's default profile
    assert int(out[1]) > 0
    assert out[2] == "2048"  # podman's default --pids-limit


def test_exit_code_passes_through(pm):
    p = pm.run("--rm", IMAGE, "sh", "-c", "exit 42", check=False)
    assert p.returncode == 42, p.stderr


def test_missing_or_unrunnable_command(pm):
    """podman reads mrunc's error from the JSON log and sorts it by runc's words: 127 for a
    command not found, 126 for one that cannot be run."""
    p = pm.run("--rm", IMAGE, "/no/such/program", check=False)
    assert p.returncode == 127, p.stderr
    assert "/no/such/program" in p.stderr and "no such file or directory" in p.stderr
    p = pm.run("--rm", IMAGE, "no-such-program", check=False)
    assert p.returncode == 127 and "executable file not found in $PATH" in p.stderr, p.stderr
    p = pm.run("--rm", IMAGE, "/etc/passwd", check=False)
    assert p.returncode == 126 and "permission denied" in p.stderr, p.stderr


@pytest.mark.userns
def test_userns_volume_under_a_closed_directory(pm):
    """--uidmap: container root is host uid 100000, which may not enter the volume's 0000 parent;
    mrunc opens the source itself, as runc does (issue 14)."""
    import tempfile
    base = tempfile.mkdtemp(prefix="mrunc-podman-", dir="/tmp")  # 0700 at first: opened below
    data = os.path.join(base, "locked", "data")
    try:
        os.makedirs(data)
        with open(os.path.join(data, "f"), "w") as f:
            f.write("from a closed directory\n")
        os.chmod(os.path.join(data, "f"), 0o644)
        os.chmod(os.path.join(base, "locked"), 0)
        os.chmod(base, 0o755)
        p = pm.run("--rm", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536",
                   "-v", f"{data}:/data:ro", IMAGE, "sh", "-c",
                   "cat /data/f; cat /proc/self/uid_map; touch /data/x 2>&1; true", check=False)
    finally:
        os.chmod(os.path.join(base, "locked"), 0o755)
        shutil.rmtree(base)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0] == "from a closed directory" and out[1].split() == ["0", "100000", "65536"], p.stdout
    assert "Read-only file system" in out[2], p.stdout


def test_stdin_piped(pm):
    p = pm.run("--rm", "-i", IMAGE, "sh", "-c", "cat; echo done", input="line 1\nline 2\n")
    assert p.stdout == "line 1\nline 2\ndone\n", p.stderr


def test_tty(pm):
    rc, out = pm.in_pty(*pm.run_argv("--rm", "-t", IMAGE, "sh", "-c",
                                     "tty; [ -t 0 ] && [ -t 1 ] && echo stdio-is-a-tty"))
    assert rc == 0, out
    assert "/dev/pts/0\nstdio-is-a-tty\n" in out


# ---------------------------------------------------------------- one detached container

TRAPS = ("trap 'echo got USR1' USR1; trap 'echo got TERM' TERM; echo ready; "
         "while :; do sleep 0.1; done")


@pytest.fixture(scope="module")
def box(pm):
    name = "mrunc-detached"
    pm.run("-d", "--name", name, IMAGE, "sh", "-c", TRAPS)
    wait_for(lambda: "ready" in pm("logs", name).stdout)
    yield name
    if not pm.closed:
        pm("rm", "-f", "-t", "0", name, check=False)


def wait_for(cond, timeout=10):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def status(pm, name):
    return pm("inspect", "-f", "{{.State.Status}}", name).stdout.strip()


def test_run_detached_and_ps(pm, box):
    p = pm("ps", "--format", "{{.Names}} {{.Status}}")
    assert any(line.startswith(f"{box} Up") for line in p.stdout.splitlines()), p.stdout
    assert status(pm, box) == "running"


def test_exec_plain(pm, box):
    assert pm("exec", box, "sh", "-c", "echo from exec; cat /proc/1/comm").stdout == \
        "from exec\nsh\n"
    p = pm("exec", box, "sh", "-c", "exit 9", check=False)
    assert p.returncode == 9, p.stderr


def test_exec_tty(pm, box):
    rc, out = pm.in_pty("exec", "-t", box, "sh", "-c", "tty; [ -t 0 ] && echo stdin-is-a-tty")
    assert rc == 0, out
    assert "/dev/pts/" in out and "stdin-is-a-tty" in out


def test_exec_stdin(pm, box):
    assert pm("exec", "-i", box, "cat", input="through exec\n").stdout == "through exec\n"


def test_exec_detached(pm, box):
    pm("exec", "-d", box, "sh", "-c", "echo detached > /tmp/exec-d")
    wait_for(lambda: pm("exec", box, "cat", "/tmp/exec-d", check=False).stdout == "detached\n")


def test_top(pm, box):
    out = pm("top", box, "pid", "args").stdout
    assert "sh -c trap" in out, out


def test_pause_unpause(pm, box):
    pm("pause", box)
    assert status(pm, box) == "paused"
    pm("unpause", box)
    assert status(pm, box) == "running"


def test_kill_usr1_is_trapped(pm, box):
    pm("kill", "-s", "USR1", box)
    wait_for(lambda: "got USR1" in pm("logs", box).stdout)
    assert status(pm, box) == "running"


def test_stop_timeout_then_start_again(pm, box):
    """The container traps TERM and goes on, so `stop -t 2` must follow with KILL after 2 s."""
    t0 = time.monotonic()
    pm("stop", "-t", "2", box)
    took = time.monotonic() - t0
    state = json.loads(pm("inspect", box).stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137, state
    assert 2 <= took < 10
    assert "got TERM" in pm("logs", box).stdout
    pm("start", box)
    assert status(pm, box) == "running"
    wait_for(lambda: pm("logs", box).stdout.count("ready") == 2)


def test_rm_force(pm, box):
    pm("rm", "-f", "-t", "0", box)  # it traps TERM: without -t 0 podman would wait 10 s for it
    assert pm("ps", "-a", "-q").stdout == ""


def test_nothing_left_behind(pm):
    """Close the environment: no container, mrunc state, conmon, mount or cgroup may remain."""
    assert pm.close() == []
