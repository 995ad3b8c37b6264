"""The file-access monitor on real containers (root): exactly the files a container opened,
executed and modified show, with paths as the container sees them, while it runs; what the host
does to the same files meanwhile does not; a normal user is told once that it needs root and the
cell runs on; and a closed or ended watch leaves no fanotify fd, mark or thread behind."""
import os
import subprocess
import threading
import time

import pytest

from conftest import ROOTFS
from students import make_students
from test_sandbox_live import lab  # noqa: F401 — the fixture: a sandbox that must leave nothing

from mrunc.sandbox import Sandbox, SandboxError
from mrunc.watch import WatchError

pytestmark = pytest.mark.root


@pytest.fixture(autouse=True)
def no_watch_left():
    """After each test, and after its sandbox is closed: no fanotify fd, no watch thread."""
    yield
    assert fanotify_fds() == [] and watch_threads() == []


def fanotify_fds():
    """Our fanotify fds and their marks, from the kernel's /proc/self/fdinfo: [(fd, [mark lines])]."""
    found = []
    for fd in os.listdir("/proc/self/fdinfo"):
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        if any(ln.startswith("fanotify flags:") for ln in lines):
            found.append((int(fd), [ln for ln in lines if ln.startswith("fanotify ")
                                    and not ln.startswith("fanotify flags:")]))
    return found


def watch_threads():
    return [t.name for t in threading.enumerate() if t.name.startswith("mrunc-watch-")]


def until(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def rows(watch):
    return {(e.operation, e.path) for e in watch.events}


WAIT_FOR_GO = "while [ ! -e /tmp/go ]; do sleep 0.05; done"


@pytest.mark.both_layouts        # and in the cgroup v2 VM: Linux 6.1, slow starts
def test_exactly_what_the_container_opened_executed_and_modified(lab):
    script = ("cp /bin/busybox /tmp/cat && /tmp/cat /etc/group > /dev/null && "
              f"echo x > /tmp/out && {WAIT_FOR_GO}")
    run = lab.stream(script, name="files", watch=True)
    out = []
    reader = threading.Thread(target=lambda: out.extend(run), daemon=True)
    reader.start()
    w, c = run.watch, run.container
    # live: the write shows while the container still runs (it waits for /tmp/go)
    until(lambda: ("modify", "/tmp/out") in rows(w), what="the write to /tmp/out")
    assert c.status == "running" and not w.finished

    # meanwhile the host, on the same filesystem: its own mount of the overlay, from this
    # process and from a short-lived one, and through the container's mount (/proc/<pid>/root)
    host = os.path.join(c.bundle, "rootfs")
    with open(os.path.join(host, "host-only"), "w") as f:
        f.write("host\n")
    cat = subprocess.run(["cat", os.path.join(host, "host-only")], capture_output=True, text=True)
    assert cat.stdout == "host\n"
    with open(f"/proc/{c.pid}/root/host-only") as f:
        assert f.read() == "host\n"
    assert w.flush()                    # every event of those is read now (none may show)
    open(os.path.join(host, "tmp", "go"), "w").close()
    reader.join(20)
    assert run.result is not None and run.result.exit_code == 0, out
    assert w.wait(10), "the watch did not end with the container"

    assert rows(w) == {
        ("open", "/etc/passwd"),        # the runtime's init reads the image's users before exec
        ("exec", "/bin/busybox"),       # sh, then each `sleep`
        ("open", "/bin/busybox"), ("open", "/tmp/cat"), ("modify", "/tmp/cat"),      # cp
        ("exec", "/tmp/cat"), ("open", "/etc/group"),                               # the copy runs
        ("open", "/tmp/out"), ("modify", "/tmp/out"),                               # echo x >
    }, w.events
    assert not any("host-only" in e.path or e.path == "/tmp/go" for e in w.events)
    pids = {e.pid for e in w.events}
    assert os.getpid() not in pids and cat.returncode == 0
    assert w.counts() == {op: sum(e.operation == op for e in w.events) for op in ("open", "exec", "modify")}
    assert [e.path for e in w.filter(operation="exec", path="tmp")] == ["/tmp/cat"]
    assert fanotify_fds() == [] and watch_threads() == []


@pytest.mark.both_layouts        # and in the cgroup v2 VM: Linux 6.1, slow starts
def test_a_watch_made_before_the_container_waits_for_it(lab):
    """Until the runtime has made it, a container reads as "stopped" (no state yet): a watch
    marked before it starts must not take that for its end (the slow cgroup v2 VM showed it)."""
    from mrunc.watch import Watch
    c = lab._prepare("cat /etc/group > /dev/null", None, "late", {})
    w = Watch(c, unborn=True)           # its thread runs, the container is not even spawned
    time.sleep(0.6)                     # two ticks of the thread with no container
    assert not w.finished
    c._spawn()
    assert c.wait(20) == 0
    c.delete()
    assert w.wait(10) and ("open", "/etc/group") in rows(w), w.events


def test_a_read_only_container_is_watched_through_its_own_mount(lab):
    c = lab.start("while :; do cat /etc/group > /dev/null; sleep 0.05; done", name="ro", readonly=True)
    until(lambda: c.status == "running", what="the container to run")
    w = lab.watch(c)
    (fd, marks), = fanotify_fds()
    assert len(marks) == 1 and marks[0].startswith("fanotify mnt_id:"), marks
    until(lambda: ("open", "/etc/group") in rows(w), what="the container's cat")
    # the host opens the same file of the same filesystem, through its own mount and the container's
    cat = subprocess.Popen(["cat", os.path.join(ROOTFS, "etc", "group")], stdout=subprocess.DEVNULL)
    cat.wait()
    with open(f"/proc/{c.pid}/root/etc/group") as f:
        f.read()
    assert w.flush()
    w.close()
    assert {e.pid for e in w.events}.isdisjoint({os.getpid(), cat.pid})
    assert rows(w) <= {("open", "/etc/group"), ("exec", "/bin/busybox")}, w.events
    assert fanotify_fds() == [] and watch_threads() == []
    assert c.status == "running"        # closing a watch leaves the container alone


def test_close_and_the_container_ending_leave_nothing(lab):
    c = lab.start(name="idle")
    w = lab.watch(c)
    (fd, marks), = fanotify_fds()
    assert len(marks) == 1 and marks[0].startswith("fanotify sdev:"), marks    # its overlay
    # a process that enters it (mrunc exec) is the container's; once it has returned, flush()
    # has its accesses in the table at once (the kernel queued them before they returned)
    assert c.exec("cat /etc/group > /tmp/copy").returncode == 0
    assert w.flush() and {("open", "/etc/group"), ("modify", "/tmp/copy")} <= rows(w), w.events
    # a watch keeps `limit` rows, and counts the rest
    w.limit = len(w.events)
    assert c.exec("cat /etc/group /etc/passwd > /dev/null").returncode == 0
    assert w.flush() and len(w.events) == w.limit and w.dropped >= 2
    assert watch_threads() == ["mrunc-watch-idle"]
    w.close()
    assert w.finished and fanotify_fds() == [] and watch_threads() == []
    # a sandbox watching a container it did not make (same state root): closing it closes the
    # watch, and leaves the container alone
    other = Sandbox(root=lab.root, rootfs=ROOTFS, check=False)
    w1 = other.watch("idle")
    (fd, marks), = fanotify_fds()
    assert marks[0].startswith("fanotify mnt_id:"), marks     # its root mount: not ours to know
    other.close()
    assert w1.finished and fanotify_fds() == [] and watch_threads() == []
    assert c.status == "running"
    w2 = lab.watch("idle")              # by name; this one ends with the container
    assert len(fanotify_fds()) == 1
    lab.remove("idle")
    assert w2.wait(5) and fanotify_fds() == [] and watch_threads() == []
    w2.close()                          # closing twice is harmless


def test_bad_input_is_one_line(lab):
    for bad, text in (("nope", "no container named 'nope'"), (42, "expected a container or its name")):
        with pytest.raises(SandboxError) as e:
            lab.watch(bad)
        assert text in str(e.value) and "\n" not in str(e.value)
    c = lab.start("true", name="gone")
    c.wait(10)
    until(lambda: c.status in ("stopped", "deleted"), what="the container to end")
    with pytest.raises(SandboxError, match="has ended: there is nothing left to watch"):
        lab.watch(c)
    c2 = lab.start(name="live")
    w = lab.watch(c2)
    for kw, text in (({"operation": "read"}, "operation 'read' is not one of open, exec, modify"),
                     ({"path": 3}, "path must be text")):
        with pytest.raises(WatchError) as e:
            w.filter(**kw)
        assert text in str(e.value) and "\n" not in str(e.value)
    w.close()
    # --watch on a read-only root cannot be marked before it starts: said, and nothing made
    with pytest.raises(SandboxError, match="no overlay of its own"):
        lab.stream("true", name="ro", readonly=True, watch=True)
    assert "ro" not in lab.containers and not os.path.exists(os.path.join(lab.work, "ro"))
    assert fanotify_fds() == [] and watch_threads() == []


AS_STUDENT = """
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "mrunc")
ip.run_cell_magic("container", "--watch --name first", "echo cell one ran")
ip.run_cell_magic("container", "--watch --name second", "echo cell two ran")
import mrunc.notebook as nb
lab = nb.sandbox()
c = lab.start(name="api")
w = lab.watch(c)
print("API", w.error is not None, w.events, w.finished)
print("AFTER")
"""


@pytest.fixture
def student():
    for made in make_students(1):       # removed (userdel) when the test is done
        yield made[0]


def test_a_normal_user_is_told_once_and_the_cells_run(student):
    p = student.python(AS_STUDENT)
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "Traceback" not in out, out
    assert "cell one ran" in out and "cell two ran" in out and "API True [] True" in out, out
    told = [ln for ln in out.splitlines() if "file-access monitor needs root" in ln]
    assert told == ["mrunc: the file-access monitor needs root: fanotify_init: Operation not permitted "
                    "(watching a container's files takes CAP_SYS_ADMIN in the host's user "
                    "namespace); the cell runs without it"], out
    assert "AFTER" in p.stdout


def test_container_magic_with_watch_shows_the_live_table(lab, monkeypatch, capsys):
    import IPython.display
    from IPython.core.interactiveshell import InteractiveShell

    from mrunc.notebook.magics import ContainerMagics
    from mrunc.notebook.watchview import FileWatch
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    magics = ContainerMagics(InteractiveShell.instance(), sandbox=lab)
    magics.container("--watch --name cell", "echo hello > /tmp/greeting; cat /tmp/greeting")
    assert capsys.readouterr().out == "hello\n" and magics.last.exit_code == 0
    (fw,) = shown
    assert isinstance(fw, FileWatch) and fw.watch.wait(10)
    assert {("open", "/tmp/greeting"), ("modify", "/tmp/greeting")} <= rows(fw.watch)
    assert "/tmp/greeting" in fw.static_html() and "ended" in fw.static_html()
    # lab.watch(c) as a cell's value shows as the live table (%load_ext mrunc registers it)
    from mrunc.notebook import register
    shell = InteractiveShell.instance()
    register(shell)
    w = lab.watch(lab.start(name="shown"))
    shell.display_formatter.format(w)
    assert isinstance(shown[-1], FileWatch) and shown[-1].watch is w
    w.close()
    assert fanotify_fds() == [] and watch_threads() == []
