"""containerd 1.6 (its io.containerd.runc.v2 shim) driving mrunc by path:
`ctr run --runc-binary <abs path to mrunc>`, which sets the shim's `BinaryName` option — the same
option a CRI runtime handler sets for Kubernetes (README "Use with Kubernetes").

One private containerd daemon (own config, root, state, socket; CRI disabled) and one imported
busybox image for the module. The detached task's tests run in file order: run -d, task exec
(plain, -t), task ps, pause/resume, kill TERM then KILL, task delete. ctr never closes a task's
stdin, so nothing here reads stdin to EOF. The last test stops the daemon and asserts that nothing
was left behind.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

from engines import IMAGE, Containerd

pytestmark = [pytest.mark.root, pytest.mark.containerd]


@pytest.fixture(scope="module")
def cd():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    missing = [b for b in ("containerd", "ctr", "containerd-shim-runc-v2") if not shutil.which(b)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (`make setup` installs containerd with apt)")
    env = Containerd()
    try:
        env.start()
        env.import_image()
        yield env
    finally:
        env.close()


def test_run_rm_echo(cd):
    p = cd.run("--rm", IMAGE, "echo1", "echo", "hello from mrunc")
    assert p.stdout == "hello from mrunc\n", p.stderr
    assert cd.ctr("containers", "ls", "-q").stdout == ""
    assert cd.mrunc_state() == []


def test_exit_code_passes_through(cd):
    p = cd.run("--rm", IMAGE, "exit1", "sh", "-c", "exit 42", check=False)
    assert p.returncode == 42, p.stderr


def test_error_comes_from_mrunc_json_log(cd):
    """The shim reads the last {"level":"error","msg":…} line of <bundle>/log.json, which mrunc
    writes under --log-format json, and ctr prints it."""
    p = cd.run("--rm", IMAGE, "err1", "/no/such/program", check=False)
    assert p.returncode != 0
    assert "OCI runtime create failed" in p.stderr, p.stderr
    assert "/no/such/program" in p.stderr and "no such file or directory" in p.stderr, p.stderr
    cd.ctr("containers", "rm", "err1", check=False)  # ctr leaves it when the task never started


def test_tty(cd):
    rc, out = cd.in_pty(*cd.run_argv("--rm", "-t", IMAGE, "tty1", "sh", "-c",
                                     "tty; [ -t 0 ] && [ -t 1 ] && echo stdio-is-a-tty"))
    assert rc == 0, out
    assert "/dev/pts/0\n" in out and "stdio-is-a-tty\n" in out, out


def test_kubernetes_runtime_handler_config(cd, tmp_path):
    """The README's CRI runtime handler (section "Use with Kubernetes") is what containerd 1.6
    reads as a runc-v2 handler whose shim runs mrunc (BinaryName, the option --runc-binary sets)."""
    from engines import REPO
    with open(os.path.join(REPO, "README.md")) as f:
        section = f.read().split("## Use with Kubernetes", 1)[1]
    toml = section.split("```toml\n", 1)[1].split("```", 1)[0]
    conf = tmp_path / "k8s.toml"
    conf.write_text(toml)
    dump = subprocess.run([shutil.which("containerd"), "--config", str(conf), "config", "dump"],
                          capture_output=True, text=True, check=True).stdout
    handler = _toml_table(dump, 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes.mrunc')
    options = _toml_table(dump, 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes.mrunc.options')
    assert 'runtime_type = "io.containerd.runc.v2"' in handler, dump
    assert 'BinaryName = "/usr/local/bin/mrunc"' in options, dump


def _toml_table(text, name):
    """The key lines of [name] in a TOML text, up to the next table header."""
    lines = text.splitlines()
    start = [line.strip() for line in lines].index(f"[{name}]") + 1
    body = []
    for line in lines[start:]:
        if line.strip().startswith("["):
            break
        body.append(line.strip())
    return body


# ---------------------------------------------------------------- one detached task

TRAPS = "trap 'touch /tmp/got-term' TERM; while :; do sleep 0.1; done"


@pytest.fixture(scope="module")
def task(cd):
    name = "detached1"
    cd.run("-d", IMAGE, name, "sh", "-c", TRAPS)
    yield name
    if cd.closed:  # test_nothing_left_behind already removed everything
        return
    cd.ctr("task", "kill", "-s", "KILL", name, check=False)
    cd.ctr("task", "delete", "--force", name, check=False)
    cd.ctr("containers", "rm", name, check=False)


def tasks(cd):
    """{id: (pid, status)} from `ctr task ls`."""
    rows = cd.ctr("task", "ls").stdout.splitlines()[1:]
    return {r.split()[0]: (int(r.split()[1]), r.split()[2]) for r in rows}


def wait_for(cond, timeout=10):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_run_detached(cd, task):
    pid, status = tasks(cd)[task]
    assert status == "RUNNING"
    assert cd.mrunc_state() == [task]
    state = json.loads(subprocess.run(
        [cd.mrunc, "--root", os.path.join(cd.runc_root, cd.ns), "state", task],
        capture_output=True, text=True, check=True).stdout)
    assert state["pid"] == pid and state["status"] == "running"


def test_task_exec(cd, task):
    p = cd.ctr(*cd.exec_argv("--exec-id", "e1", task, "sh", "-c", "echo from exec; cat /proc/1/comm"))
    assert p.stdout == "from exec\nsh\n", p.stderr
    p = cd.ctr(*cd.exec_argv("--exec-id", "e2", task, "sh", "-c", "exit 9"), check=False)
    assert p.returncode == 9, p.stderr


def test_task_exec_tty(cd, task):
    rc, out = cd.in_pty(*cd.exec_argv("-t", "--exec-id", "e3", task, "sh", "-c",
                                     "tty; [ -t 0 ] && echo stdin-is-a-tty"))
    # ctr resizes the pty after the process may already be gone, and then says so: not ours.
    assert rc == 0, out
    assert "/dev/pts/" in out and "stdin-is-a-tty" in out, out


def test_task_ps(cd, task):
    """The shim asks `mrunc ps --format json` for the pids in the container's cgroup."""
    pid, _ = tasks(cd)[task]
    rows = cd.ctr("task", "ps", task).stdout.splitlines()[1:]
    assert pid in [int(r.split()[0]) for r in rows], rows


def test_task_pause_resume(cd, task):
    cd.ctr("task", "pause", task)
    assert tasks(cd)[task][1] == "PAUSED"
    cd.ctr("task", "resume", task)
    assert tasks(cd)[task][1] == "RUNNING"


def test_task_kill_term_then_kill(cd, task):
    """TERM is trapped (init of a PID namespace only gets signals it handles); KILL is not."""
    cd.ctr("task", "kill", task)  # SIGTERM
    wait_for(lambda: cd.ctr(*cd.exec_argv("--exec-id", "t1", task, "test", "-e", "/tmp/got-term"),
                            check=False).returncode == 0)
    assert tasks(cd)[task][1] == "RUNNING"
    cd.ctr("task", "kill", "-s", "KILL", task)
    wait_for(lambda: tasks(cd)[task][1] == "STOPPED")


def test_task_delete(cd, task):
    p = cd.ctr("task", "delete", task)
    assert task not in tasks(cd)
    cd.ctr("containers", "rm", task)
    assert cd.mrunc_state() == []


def test_nothing_left_behind(cd):
    """Stop the daemon: no task, container, mrunc state, shim, mount or cgroup may remain."""
    assert cd.close() == []
