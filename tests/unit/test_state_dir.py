"""The state directory's guarantees (mrunc/state.py): a container appears whole or not at all,
its lock never outlives its holder, debris of killed runtimes is swept, and `start` never takes
a program that exited at once for an init that died unstarted. No root needed: plain files,
fifos and flock in a temp dir."""
import json
import os
import subprocess
import sys
import time

import pytest

from mrunc import api, lifecycle, state
from mrunc.errors import StateError, UsageError


def _record(pid=0, creator=None):
    d = {"id": "c1", "pid": pid, "start_time": None, "bundle": "/b", "rootfs": "/b/rootfs",
         "created": state.now_rfc3339(), "config": {}, "cgroup": None}
    if creator:
        d["creator"] = creator
    return d


def _me():
    return {"pid": os.getpid(), "start_time": state.proc_stat(os.getpid())[0]}


def test_reserve_makes_the_whole_directory_at_once(tmp_path):
    root = str(tmp_path / "root")
    c = state.Container(root, "c1")
    c.reserve(_record(creator=_me()))
    try:
        assert sorted(os.listdir(c.dir)) == ["exec.fifo", "state.json"]
        assert os.listdir(root) == ["c1"]           # no hidden directory left behind
        assert c.status() == "creating"               # its creator (we) is alive
        again = state.Container(root, "c1")
        with pytest.raises(StateError, match="already exists"):
            again.reserve(_record(creator=_me()))
        assert os.listdir(root) == ["c1"]
    finally:
        c.unlock()


def test_a_dead_creator_means_abandoned_and_stopped(tmp_path):
    root = str(tmp_path)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    dead = {"pid": p.pid, "start_time": 1}
    c = state.Container(root, "c1")
    c.reserve(_record(creator=dead))
    c.unlock()
    loaded = state.Container.load(root, "c1")
    assert loaded.status() == "stopped"
    assert loaded.oci_state()["pid"] == 0
    assert [s["status"] for s in api.list_containers(root)] == ["stopped"]
    api.delete("c1", root)
    assert os.listdir(root) == []


def test_lock_is_released_when_its_holder_is_killed(tmp_path):
    d = str(tmp_path / "c1")
    os.mkdir(d)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import fcntl, os, sys, time\n"
                               f"fd = os.open({d!r}, os.O_RDONLY)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX)\n"
                               "print('held', flush=True)\n"
                               "time.sleep(60)\n"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"held\n"
        with pytest.raises(StateError, match="busy"):
            state.lock_dir(d, timeout=0.2)
        holder.kill()
        holder.wait()
        t0 = time.monotonic()
        fd = state.lock_dir(d, timeout=2)
        assert fd is not None and time.monotonic() - t0 < 0.5
        os.close(fd)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_waiter_finds_the_container_deleted_meanwhile(tmp_path):
    root = str(tmp_path)
    c = state.Container(root, "c1")
    c.reserve(_record(creator=_me()))
    # another holder's lock (a different open file description) on the same directory
    import threading
    got = {}

    def wait():
        try:
            got["c"] = state.Container.load(root, "c1", lock=True)
        except StateError as e:
            got["err"] = str(e)
    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.1)
    assert t.is_alive()                 # waiting for our lock
    c.remove()
    c.unlock()
    t.join(5)
    assert got == {"err": "container c1 does not exist"}


def test_sweep_removes_only_debris_of_dead_runtimes(tmp_path):
    root = str(tmp_path)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = state.proc_start_time(p.pid)[0]
    p.wait()
    me, start = os.getpid(), state.proc_start_time(os.getpid())[0]
    # a dead runtime; a live pid with another start time (the pid was reused); an older name
    # without a start time; ours, at work
    for name in (f".new-{p.pid}-{dead}-aa", f".old-{me}-{start + 1}-bb", f".new-{me}-dd",
                 f".new-{me}-{start}-cc"):
        os.mkdir(os.path.join(root, name))
        open(os.path.join(root, name, "state.json"), "w").close()
    state.sweep(root)
    assert os.listdir(root) == [f".new-{me}-{start}-cc"]
    assert api.list_containers(root) == []                   # hidden ones are never listed


def test_reserved_id_prefixes_are_refused():
    with pytest.raises(UsageError, match="reserved"):
        state.validate_id(".new-1-aa")
    with pytest.raises(UsageError, match="reserved"):   # the user's seccomp cache
        state.validate_id(".seccomp")
    state.validate_id(".seccomp2")


def test_delete_force_removes_a_directory_without_state(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "c1"))
    open(os.path.join(root, "c1", "exec.fifo"), "w").close()
    with pytest.raises(StateError, match="does not exist"):
        api.delete("c1", root, force=True)
    assert os.listdir(root) == []


def test_state_replaced_whole_while_read(tmp_path):
    """write_atomic: a reader in a loop never sees a partial state.json."""
    root = str(tmp_path)
    c = state.Container(root, "c1")
    c.reserve(_record(creator=_me()))
    try:
        import threading
        stop, bad = threading.Event(), []

        def writer():
            n = 0
            while not stop.is_set():
                c.data["config"] = {"annotations": {"n": str(n), "pad": "x" * (n % 5000)}}
                c.save()
                n += 1
        t = threading.Thread(target=writer)
        t.start()
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            try:
                state.Container.load(root, "c1")
            except StateError as e:
                bad.append(str(e))
        stop.set()
        t.join()
        assert bad == []
        assert sorted(os.listdir(c.dir)) == ["exec.fifo", "state.json"]
    finally:
        c.unlock()


class _FakeInit:
    """A container whose init writes "0" to exec.fifo and execs a program that exits at once —
    all between two looks of `start`: the moment start first asks whether init is alive."""

    def __init__(self, d):
        self.dir, self.id, self.asked = d, "c1", 0

    def init_alive(self):
        self.asked += 1
        if self.asked == 1:
            fd = os.open(os.path.join(self.dir, "exec.fifo"), os.O_WRONLY | os.O_NONBLOCK)
            os.write(fd, b"0")
            os.close(fd)   # execve closed it; and the program is already gone
        return False


def test_start_takes_a_program_that_exited_at_once_for_success(tmp_path):
    os.mkfifo(str(tmp_path / "exec.fifo"))
    init = _FakeInit(str(tmp_path))
    lifecycle._release_init(init)        # no "init died before it could be started"
    assert not os.path.exists(tmp_path / "exec.fifo")
    assert init.asked == 1      # only when a read found nothing: not again after the "0"


def test_start_reports_an_init_that_died_unstarted(tmp_path):
    os.mkfifo(str(tmp_path / "exec.fifo"))

    class Dead(_FakeInit):
        def init_alive(self):
            return False
    with pytest.raises(StateError, match="init died before it could be started"):
        lifecycle._release_init(Dead(str(tmp_path)))


def test_alive_as_through_an_open_proc_dir():
    """exec checks init through the /proc/<pid> fd it then opens the namespaces from: a process
    that died after that open is dead through the fd, whatever later got its pid."""
    me, start = os.getpid(), state.proc_start_time(os.getpid())[0]
    fd = os.open(f"/proc/{me}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        assert state.alive_as(me, start, fd) and not state.alive_as(me, start + 1, fd)
    finally:
        os.close(fd)
    p = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    fd = os.open(f"/proc/{p.pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        child = state.proc_start_time(p.pid)[0]
        assert state.alive_as(p.pid, child, fd)
        p.communicate(b"")
        assert not state.alive_as(p.pid, child, fd)      # reaped: its /proc dir is gone
    finally:
        os.close(fd)


# ---- wait_gone: how delete --force (and a failed create) waits for a SIGKILLed init ----------

def _sleeper():
    return os.posix_spawnp("sleep", ["sleep", "100"], os.environ)


def _gone_or_zombie(pid):
    return state.proc_stat(pid)[1] in (None, "Z", "X")


def _without_pidfds(monkeypatch):
    def pidfd_open(pid, flags=0):
        raise OSError(38, "Function not implemented")     # ENOSYS: a kernel before 5.3
    monkeypatch.setattr(os, "pidfd_open", pidfd_open)


@pytest.mark.parametrize("pidfds", [True, False], ids=["pidfd", "no-pidfd"])
def test_wait_gone_returns_once_a_killed_child_is_dead_and_reaps_it(monkeypatch, pidfds):
    """With pidfds it sleeps on one until the process exits; without (kernels before 5.3), it
    looks at /proc between short sleeps. Either way our own child is reaped."""
    if not pidfds:
        _without_pidfds(monkeypatch)
    pid = _sleeper()
    try:
        os.kill(pid, 9)
        assert state.wait_gone(pid, timeout=5.0)
        with pytest.raises(ChildProcessError):     # reaped: no zombie left for anyone
            os.waitpid(pid, os.WNOHANG)
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


@pytest.mark.parametrize("pidfds", [True, False], ids=["pidfd", "no-pidfd"])
def test_wait_gone_gives_up_on_a_process_that_lives(monkeypatch, pidfds):
    if not pidfds:
        _without_pidfds(monkeypatch)
    pid = _sleeper()
    try:
        t0 = time.monotonic()
        assert not state.wait_gone(pid, timeout=0.2)
        assert time.monotonic() - t0 >= 0.2
        assert not _gone_or_zombie(pid)
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_wait_gone_waits_for_a_process_that_is_not_our_child():
    """delete's init is not its child: waitpid cannot wait for it, the pidfd can. Here a
    grandchild (its parent, a shell, has exited): once killed it is dead — a zombie until its
    new parent reaps it, or gone."""
    out = subprocess.run(["sh", "-c", "sleep 100 >/dev/null 2>&1 & echo $!"], capture_output=True,
                         text=True, check=True).stdout
    pid = int(out)
    assert not _gone_or_zombie(pid)
    os.kill(pid, 9)
    assert state.wait_gone(pid, timeout=5.0)
    assert _gone_or_zombie(pid)


def test_a_staged_record_is_nobodys_until_one_rename_puts_it_in_place(tmp_path):
    """create writes the container's final record while init finishes (Container.stage) and
    renames it onto state.json when init is ready (save(staged)): until then every reader sees
    the creating record, whole; the staged file is hidden, and goes with a removed directory."""
    root = str(tmp_path / "root")
    c = state.Container(root, "c1")
    c.reserve(_record(creator=_me()))
    try:
        staged = c.stage(_record(pid=os.getpid()))
        assert os.path.dirname(staged) == c.dir and os.path.basename(staged).startswith(".")
        assert state.Container.load(root, "c1").status() == "creating"     # not yet
        assert [s["id"] for s in api.list_containers(root)] == ["c1"]
        c.save(staged)
        assert not os.path.exists(staged)
        assert sorted(os.listdir(c.dir)) == ["exec.fifo", "state.json"]
        assert state.Container.load(root, "c1").data["pid"] == os.getpid()
        again = c.stage(_record(pid=1))
        c.remove()                      # a create that failed after staging: nothing left
        assert not os.path.exists(again) and os.listdir(root) == []
    finally:
        c.unlock()


def test_relock_reads_the_record_again_only_when_another_command_replaced_it(tmp_path, monkeypatch):
    """`run` hands create's Container to its start and delete (Container.relock): they take the
    lock again and trust what create recorded as long as state.json is the very file create
    wrote — an `update` in between replaces it (re-read), a delete removes the directory, a new
    create of the id makes another (both as load() says)."""
    import fcntl
    root = str(tmp_path / "root")
    c = state.Container(root, "c1")
    c.reserve(_record(creator=_me()))
    c.data = _record(pid=os.getpid())
    c.save()
    c.unlock()
    reads = []
    real = state.read_file
    monkeypatch.setattr(state, "read_file", lambda *a, **k: reads.append(a) or real(*a, **k))
    with c.relock() as again:                         # unchanged: nothing read, lock held
        assert again is c and reads == [] and c.data["pid"] == os.getpid()
        fd = os.open(c.dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    state.write_atomic(os.path.join(c.dir, "state.json"),         # `update` replaced it
                       json.dumps(dict(_record(pid=os.getpid()), bundle="/updated")))
    with c.relock():
        assert len(reads) == 1 and c.data["bundle"] == "/updated"
    c.remove()                                        # deleted meanwhile
    with pytest.raises(StateError, match="container c1 does not exist"):
        c.relock()
    other = state.Container(root, "c1")               # and made again by another create
    other.reserve(_record(pid=1))
    other.unlock()
    with c.relock():
        assert c.data["pid"] == 1
    other.remove()


CONFIG = {"ociVersion": "1.2.0", "annotations": {"k": "v"}, "linux": {"resources": {}},
          "hooks": {"prestart": [{"path": "/bin/true"}], "poststart": [], "poststop": [{"path": "/bin/true"}]}}


def _new(root, config=CONFIG):
    c = state.Container(root, "c1")
    record = _record(pid=os.getpid())
    del record["config"]
    c.reserve(record, json.loads(json.dumps(config)))
    c.unlock()
    return c


def test_the_config_has_a_file_of_its_own_read_only_when_asked(tmp_path, monkeypatch):
    """state.json keeps what the short verbs need of the config — its annotations, the kinds
    of hooks it has — and config.json the rest: `state` never reads config.json, and start and
    delete only for the hooks they run."""
    root = str(tmp_path)
    c = _new(root)
    assert sorted(os.listdir(c.dir)) == ["config.json", "exec.fifo", "state.json"]
    with open(os.path.join(c.dir, "state.json")) as f:
        data = json.load(f)
    assert "config" not in data
    assert data["annotations"] == {"k": "v"} and data["hook_kinds"] == ["prestart", "poststop"]
    reads = []
    real = state.read_file
    monkeypatch.setattr(state, "read_file", lambda p, *a: reads.append(os.path.basename(p)) or real(p, *a))
    json_reads = lambda: [name for name in reads if name.endswith(".json")]  # noqa: E731
    loaded = state.Container.load(root, "c1")
    assert loaded.oci_state()["annotations"] == {"k": "v"}
    assert loaded.hooks_config("poststart") is None          # an empty list: no hook to run
    assert json_reads() == ["state.json"]
    assert loaded.hooks_config("poststop") == CONFIG and loaded.config == CONFIG
    assert json_reads() == ["state.json", "config.json"]       # once


def test_update_replaces_config_json_and_relock_reads_it_again(tmp_path):
    root = str(tmp_path)
    c = _new(root)
    with state.Container.load(root, "c1", lock=True) as other:    # `update`, another process
        before = os.stat(os.path.join(c.dir, "state.json"))
        other.config["linux"]["resources"] = {"pids": {"limit": 7}}
        other.save_config()
        after = os.stat(os.path.join(c.dir, "state.json"))
        assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    with open(os.path.join(c.dir, "config.json")) as f:
        assert json.load(f)["linux"]["resources"] == {"pids": {"limit": 7}}
    with c.relock():                                          # `run`'s create, later on
        assert c.config["linux"]["resources"] == {"pids": {"limit": 7}}
    c.remove()


def test_a_state_json_of_an_older_mrunc_holds_the_config(tmp_path):
    """The previous format: the whole config inside state.json, no config.json. Read, and
    written back by update, the same way as before."""
    root = str(tmp_path)
    c = state.Container(root, "c1")
    c.reserve(dict(_record(pid=os.getpid()), config=json.loads(json.dumps(CONFIG))))
    c.unlock()
    assert sorted(os.listdir(c.dir)) == ["exec.fifo", "state.json"]
    loaded = state.Container.load(root, "c1", lock=True)
    with loaded:
        assert loaded.oci_state()["annotations"] == {"k": "v"}
        assert loaded.hooks_config("poststart") is None and loaded.hooks_config("poststop") == CONFIG
        loaded.config["linux"]["resources"] = {"pids": {"limit": 7}}
        loaded.save_config()
    assert sorted(os.listdir(c.dir)) == ["exec.fifo", "state.json"]
    again = state.Container.load(root, "c1")
    assert again.config["linux"]["resources"] == {"pids": {"limit": 7}}
    assert again.data["config"] is again.config
    without = state.Container.load(root, "c1")
    without.data["config"] = {}                     # no annotations, no hooks at all
    assert without.oci_state()["annotations"] == {} and without.hooks_config("poststop") is None


def test_a_missing_config_json_is_a_state_error(tmp_path):
    root = str(tmp_path)
    c = _new(root)
    os.unlink(os.path.join(c.dir, "config.json"))
    loaded = state.Container.load(root, "c1")
    assert loaded.oci_state()["annotations"] == {"k": "v"}     # state needs none of it
    with pytest.raises(StateError, match="container c1 does not exist"):
        loaded.hooks_config("poststop")
    with open(os.path.join(c.dir, "config.json"), "w") as f:
        f.write("{")
    with pytest.raises(StateError, match="container c1: unreadable config"):
        state.Container.load(root, "c1").config
    c.remove()
