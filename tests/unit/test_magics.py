"""The magics through a real IPython shell (InteractiveShell.instance(), no kernel): options reach
the sandbox as the API's keywords, output is streamed, a non-zero exit is reported, bad arguments
are one-line UsageErrors, --help works; %load_ext mrunc; and `import mrunc` stays IPython-free."""
import os
import posix
import subprocess
import sys

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from mrunc.notebook.magics import ContainerMagics
from mrunc.sandbox import RunResult, SandboxError


class FakeContainer:
    def __init__(self, name, status="running"):
        self.name, self.status, self.execs = name, status, []

    def exec(self, command, user=None):
        self.execs.append((command, user))
        return subprocess.CompletedProcess([], 3 if "fail" in command else 0, f"ran {command}\n", "")

    def snapshot(self):
        return None


class FakeSandbox:
    closed = False
    notes = ()

    def __init__(self):
        self.runs, self.removed, self.containers = [], [], {}

    def run(self, script, on_output=None, **opts):
        self.runs.append((script, opts))
        on_output("stdout", "out line\n")
        on_output("stderr", "err line\n")
        code = 3 if "exit 3" in script else 0
        name = opts.get("name") or "lab-000001"
        if opts.get("keep"):
            self.containers[name] = FakeContainer(name)
        return RunResult(name, code, "out line\n", "err line\n")

    def step(self, script, **opts):
        raise SandboxError("stepping is not faked")

    def ps(self):
        return [{"name": "web", "status": "running", "pid": 42, "memory": 3 << 20, "limit": 64 << 20,
                 "exit_code": None, "command": "sh -c httpd"}]

    def get(self, name):
        if name not in self.containers:
            raise SandboxError(f"no container named {name!r} in /run/mrunc-lab")
        return self.containers[name]

    def remove(self, name):
        self.get(name)
        self.removed.append(name)

    def close(self):
        self.closed = True


@pytest.fixture(scope="module")
def ip():
    return InteractiveShell.instance()


@pytest.fixture
def fake(ip):
    sb = FakeSandbox()
    ip.register_magics(ContainerMagics(ip, sandbox=sb))
    return sb


def cell(ip, line, body="echo hi\n"):
    return ip.run_cell_magic("container", line, body)


def test_options_become_api_keywords(ip, fake, capsys):
    cell(ip, "--name c1 --memory 64M --cpus 0.5 --pids 20 --hostname box --readonly --user mrunc "
             "--cap-add NET_RAW --cap-add SYS_TIME --cap-drop KILL --net host -e A=1 --env B=x=y --cwd /tmp")
    script, opts = fake.runs[-1]
    assert script == "echo hi\n"
    assert opts == dict(name="c1", image="busybox", memory="64M", cpus=0.5, pids=20, hostname="box",
                        readonly=True, user="mrunc", cap_add=["NET_RAW", "SYS_TIME"], cap_drop=["KILL"],
                        network="host", cwd="/tmp", env={"A": "1", "B": "x=y"}, trace=False, keep=False)
    out = capsys.readouterr()
    assert out.out == "out line\n" and out.err == "err line\n"


def test_defaults(ip, fake):
    cell(ip, "")
    _, opts = fake.runs[-1]
    assert opts["network"] == "none" and opts["image"] == "busybox" and opts["memory"] is None
    assert opts["env"] is None and opts["readonly"] is False and opts["trace"] is False


def test_nonzero_exit_is_reported(ip, fake, capsys):
    cell(ip, "", "exit 3")
    err = capsys.readouterr().err
    assert err.endswith("✗ container lab-000001: exited with status 3\n")


def test_keep_says_how_to_reach_it(ip, fake, capsys):
    cell(ip, "--keep --name web")
    assert fake.runs[-1][1]["keep"] is True
    assert "web keeps running: %container_exec web CMD" in capsys.readouterr().out


@pytest.mark.parametrize("line, words", [
    ("--bogus", "unrecognized arguments: --bogus"),
    ("--net", "argument --net: expected one argument"),
    ("--cpus many", "argument --cpus: invalid float value"),
    ("--env NOEQUALS", "--env 'NOEQUALS': expected NAME=VALUE"),
])
def test_bad_arguments_are_one_line(ip, fake, line, words):
    with pytest.raises(UsageError) as e:
        cell(ip, line)
    msg = str(e.value)
    assert "\n" not in msg and words in msg and msg.startswith("%%container")


def test_sandbox_errors_are_one_line(ip):
    class Failing(FakeSandbox):
        def run(self, script, on_output=None, **opts):
            raise SandboxError("memory: invalid size 'x' (bytes, or a number with k, M, G: 64M)")
    ip.register_magics(ContainerMagics(ip, sandbox=Failing()))
    with pytest.raises(UsageError, match="^memory: invalid size"):
        cell(ip, "--memory x")


def test_help(ip, fake, capsys):
    cell(ip, "--help", "echo never\n")
    out = capsys.readouterr().out
    assert "%container [-h] [--name NAME]" in out and "--memory MEMORY" in out and "--step" in out
    assert not fake.runs
    ip.run_line_magic("container", "-h")              # the line form: %container --help
    assert "--cap-add CAP" in capsys.readouterr().out
    with pytest.raises(UsageError, match="use %%container"):
        ip.run_line_magic("container", "--memory 3M")
    for magic in ("container_ps", "container_inspect", "container_rm", "container_exec", "container_monitor"):
        ip.run_line_magic(magic, "--help")
        assert f"%{magic}" in capsys.readouterr().out


def test_ps(ip, fake, capsys):
    ip.run_line_magic("container_ps", "")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "PID", "MEMORY", "COMMAND"]
    assert lines[1].split()[:3] == ["web", "running", "42"]
    assert "3.0 MiB / 64.0 MiB" in lines[1] and lines[1].endswith("sh -c httpd")


def test_exec_keeps_the_command_line_raw(ip, fake, capsys):
    fake.containers["web"] = FakeContainer("web")
    ip.run_line_magic("container_exec", "--user 1000 web echo 'a  b' | wc -c")
    assert fake.containers["web"].execs == [("echo 'a  b' | wc -c", "1000")]
    assert "ran echo" in capsys.readouterr().out
    ip.run_line_magic("container_exec", "web fail now")
    assert "✗ exec in web: exited with status 3" in capsys.readouterr().err
    with pytest.raises(UsageError, match="needs NAME and CMD"):
        ip.run_line_magic("container_exec", "web")
    with pytest.raises(UsageError, match="no container named 'nope'"):
        ip.run_line_magic("container_exec", "nope ls")
    with pytest.raises(UsageError, match="unrecognized option --frob"):
        ip.run_line_magic("container_exec", "--frob web ls")


def test_rm_and_inspect(ip, fake, capsys):
    fake.containers["a"] = FakeContainer("a", status="stopped")
    ip.run_line_magic("container_inspect", "a")
    assert "a is stopped: no process to look at" in capsys.readouterr().out
    ip.run_line_magic("container_rm", "a")
    assert fake.removed == ["a"] and "removed a" in capsys.readouterr().out
    with pytest.raises(UsageError, match="needs at least one NAME"):
        ip.run_line_magic("container_rm", "")
    with pytest.raises(UsageError, match="no container named 'zz'"):
        ip.run_line_magic("container_rm", "zz")


def test_not_root_is_one_clear_line(ip, monkeypatch):
    import mrunc.sandbox as SB
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(posix, "geteuid", lambda: 1000)   # mrunc.userdirs asks posix
    monkeypatch.setattr(SB.host, "_userns_unavailable", lambda: "/proc/sys/user/max_user_namespaces is 0")
    monkeypatch.setattr("mrunc.notebook._SANDBOX", None)
    ip.register_magics(ContainerMagics(ip))            # no sandbox yet: made at first use
    with pytest.raises(UsageError) as e:
        cell(ip, "")
    assert "containers need root here" in str(e.value) and "\n" not in str(e.value)


def test_load_and_unload_extension(ip, monkeypatch):
    import mrunc.notebook as nb
    ip.run_line_magic("load_ext", "mrunc")
    try:
        assert ip.find_cell_magic("container") is not None
        for m in ("container_ps", "container_exec", "container_inspect", "container_rm"):
            assert ip.find_line_magic(m) is not None
        magics = nb._MAGICS[id(ip)]
        fake = FakeSandbox()
        magics._sandbox = fake
    finally:
        ip.run_line_magic("unload_ext", "mrunc")
    assert fake.closed
    assert ip.find_cell_magic("container") is None and ip.find_line_magic("container_ps") is None


def test_import_mrunc_does_not_import_ipython():
    code = "import sys, mrunc; assert callable(mrunc.load_ipython_extension); " \
           "assert not [m for m in sys.modules if m.startswith(('IPython', 'ipywidgets'))], 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_rootless_limits_are_said_once(ip, capsys):
    sb = FakeSandbox()
    sb.notes = ["running rootless (uid 1000): no limits"]
    ip.register_magics(ContainerMagics(ip, sandbox=sb))
    cell(ip, "")
    cell(ip, "")
    err = capsys.readouterr().err
    assert err.count("running rootless (uid 1000): no limits") == 1


def test_rootless_notes_are_said_once_by_the_kernels_sandbox_too(ip, capsys, monkeypatch):
    """A notebook that never runs %%container (lab = sandbox(); lab.start(...)) hears the notes
    too — once, however it reaches the sandbox."""
    from mrunc import notebook
    sb = FakeSandbox()
    sb.notes = ["running rootless (uid 1000): no limits"]
    monkeypatch.setattr(notebook, "_SANDBOX", sb)
    assert notebook.sandbox() is sb and notebook.sandbox() is sb
    assert capsys.readouterr().err == "mrunc: running rootless (uid 1000): no limits\n"
    ip.register_magics(ContainerMagics(ip))
    cell(ip, "")
    assert "running rootless" not in capsys.readouterr().err


def test_step_inspect_and_monitor_display_widgets(ip, monkeypatch):
    from test_widgets import FakeContainer as OomContainer, FakeSession, frozen
    from mrunc.notebook import widgets
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))

    class Steppable(FakeSandbox):
        def step(self, script, **opts):
            self.runs.append((script, opts))
            return FakeSession()
    sb = Steppable()
    ip.register_magics(ContainerMagics(ip, sandbox=sb))
    cell(ip, "--step --memory 32M --name st")
    assert isinstance(shown[-1], widgets.Stepper) and sb.runs[-1][1]["memory"] == "32M"
    shown[-1].next_button.click()
    assert shown[-1].session.steps[0].phase == "spec"

    running = FakeContainer("web")
    running.snapshot = lambda: frozen("exec")
    sb.containers["web"] = running
    ip.run_line_magic("container_inspect", "web")
    assert "After" not in shown[-1].data and "Namespaces" in shown[-1].data

    sb.containers["hog"] = OomContainer()
    ip.run_line_magic("container_monitor", "--interval 0.01 hog")
    monitor = shown[-1]
    assert isinstance(monitor, widgets.Monitor) and monitor.wait(5) and monitor.oom_kills == 1


def test_load_ext_leaves_the_widgets_unimported_until_a_watch_is_shown():
    """`%load_ext mrunc` registers the Watch's view by the type's name: ipywidgets (most of what
    loading would cost) and mrunc.watch are imported only when a Watch is shown."""
    code = ("import sys\nfrom IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance()\nip.run_line_magic('load_ext', 'mrunc')\n"
            "print(sorted(m for m in ('ipywidgets', 'mrunc.watch', 'mrunc.notebook.watchview') "
            "if m in sys.modules))\n"
            "from mrunc.watch import Watch\n"
            "import mrunc.notebook as nb\n"
            "print(ip.display_formatter.ipython_display_formatter.lookup_by_type(Watch) is nb._show_watch)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert p.stdout == "[]\nTrue\n", p.stdout + p.stderr
