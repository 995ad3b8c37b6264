"""Bind sources the container's root cannot reach, mounted anyway: the runtime opens them.

Container root is host uid 100000 here. Each source lies under a root-owned directory it may not
enter (mode 0700 or 0000), so init could not look the path up itself; the runtime opens it from
inside the container's mount namespace and init mounts from the fd (mrunc.rootfs.sources).
Checked from inside: the files are there, rw binds write through to the host, ro binds give
EROFS, a read-only host mount stays locked read-only, and no fd of the host is left in PID 1.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.userns, pytest.mark.both_layouts]

HOST_ID = 100000
KINDS = [(mode, opt, rw) for mode in (0o700, 0o000) for opt in ("bind", "rbind") for rw in ("ro", "rw")]


def _name(mode, opt, rw):
    return f"{mode:04o}-{opt}-{rw}"


@pytest.fixture
def host_tree():
    """base (0755) / d0700 and d0000 (root's, modes as named) / {plain, tree} sources.

    plain/ holds two files: `ro-file` (0644: the container may read it) and `shared` (0666: it
    may write it through an rw bind). tree/ has the same and a tmpfs at tree/sub — what an rbind
    brings along and a bind may not (the kernel refuses to uncover a locked submount)."""
    base = tempfile.mkdtemp(prefix="mrunc-userns-binds-", dir="/tmp")
    os.chmod(base, 0o755)
    mounted = []
    try:
        for mode in (0o700, 0o000):
            d = os.path.join(base, f"d{mode:04o}")
            for src in ("plain", "tree"):
                os.makedirs(os.path.join(d, src))
                _write(os.path.join(d, src, "ro-file"), f"{src} under {mode:04o}\n", 0o644)
                _write(os.path.join(d, src, "shared"), "", 0o666)
            sub = os.path.join(d, "tree", "sub")
            os.mkdir(sub)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "mrunc-test", sub], check=True)
            mounted.append(sub)
            _write(os.path.join(sub, "in-sub"), "from the submount\n", 0o644)
            os.chmod(d, mode)
        yield base, mounted
    finally:
        for m in reversed(mounted):
            subprocess.run(["umount", "-l", m], check=False)
        for mode in (0o700, 0o000):
            d = os.path.join(base, f"d{mode:04o}")
            if os.path.isdir(d):
                os.chmod(d, 0o755)
        shutil.rmtree(base, ignore_errors=True)


def _write(path, text, mode):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _userns(cfg, mounts):
    """Container root = host uid 100000; a tmpfs at /tmp to hold the mount points (the shared
    busybox rootfs is root's, and the container's root may not make directories in it)."""
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": HOST_ID, "size": 65536}]
    cfg["mounts"] += [{"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "mode=1777"]}, *mounts]


def test_sources_under_0700_and_0000_dirs(mr, host_tree):
    base, _ = host_tree
    mounts, script = [], []
    for mode, opt, rw in KINDS:
        src = os.path.join(base, f"d{mode:04o}", "tree" if opt == "rbind" else "plain")
        dest = f"/tmp/{_name(mode, opt, rw)}"
        mounts.append({"destination": dest, "type": "bind", "source": src, "options": [opt, rw]})
        script.append(f"echo {_name(mode, opt, rw)} $(cat {dest}/ro-file) "
                      f"$(cat {dest}/sub/in-sub 2>/dev/null || echo no-sub); "
                      f"(echo written-by-{_name(mode, opt, rw)} >> {dest}/shared) 2>&1 && echo wrote; "
                      f"(touch {dest}/new) 2>&1 || true")
    out = mr.sh("; ".join(script), edit=lambda c: _userns(c, mounts))
    lines = out.splitlines()
    for mode, opt, rw in KINDS:
        name = _name(mode, opt, rw)
        i = next((k for k, line in enumerate(lines) if line.startswith(name + " ")), None)
        assert i is not None, f"{name}: not listed:\n{out}"
        src = "tree" if opt == "rbind" else "plain"
        sub = "from the submount" if opt == "rbind" else "no-sub"
        assert lines[i] == f"{name} {src} under {mode:04o} {sub}", out
        shared = os.path.join(base, f"d{mode:04o}", src, "shared")
        if rw == "rw":
            # 0666: the container's root may write it; ro-file's directory is root's 0755: no new file
            assert lines[i + 1] == "wrote", out
            assert "Permission denied" in lines[i + 2], out
            assert f"written-by-{name}\n" in open(shared).read()
        else:
            assert "Read-only file system" in lines[i + 1], out
            assert "Read-only file system" in lines[i + 2], out
            assert f"written-by-{name}" not in open(shared).read()
    for mode in (0o700, 0o000):  # the runtime opened the sources; it changed no mode to do so
        assert os.stat(os.path.join(base, f"d{mode:04o}")).st_mode & 0o7777 == mode


def test_read_only_host_mount_stays_locked(mr, host_tree):
    """The source is a read-only mount on the host. Opened inside the container's mount
    namespace, its copy keeps the kernel's lock: even with CAP_SYS_ADMIN, the container's root
    cannot remount the bind read-write. (A copy made in the host's namespace would let it.)"""
    base, mounted = host_tree
    src = os.path.join(base, "d0000", "plain")
    subprocess.run(["mount", "--bind", src, src], check=True)
    mounted.append(src)
    subprocess.run(["mount", "-o", "remount,bind,ro", src], check=True)

    def edit(cfg):
        _userns(cfg, [{"destination": "/tmp/locked", "type": "bind", "source": src,
                       "options": ["bind"]}])
        for caps in cfg["process"]["capabilities"].values():
            caps.append("CAP_SYS_ADMIN")
    out = mr.sh("mount -o remount,bind,rw /tmp/locked >/dev/null 2>&1 && echo remounted || echo refused; "
                "(echo x >> /tmp/locked/shared) 2>&1 || true; cat /tmp/locked/ro-file", edit=edit)
    lines = out.splitlines()
    assert lines[-3] == "refused", out
    assert "Read-only file system" in lines[-2], out
    assert lines[-1] == "plain under 0000", out
    assert open(os.path.join(src, "shared")).read() == ""


def test_no_host_fd_reaches_the_container(mr, host_tree):
    base, _ = host_tree
    mounts = [{"destination": f"/tmp/m{i}", "type": "bind",
               "source": os.path.join(base, "d0700", src), "options": [opt]}
              for i, (src, opt) in enumerate([("plain", "bind"), ("tree", "rbind")])]

    # ls is a child of sh, PID 1 (not its last command, which sh would exec as PID 1 itself)
    out = mr.sh("cat /tmp/m0/ro-file; ls -l /proc/1/fd; echo end", edit=lambda c: _userns(c, mounts))
    lines = out.splitlines()
    assert lines[0] == "plain under 0700" and lines[-1] == "end", out
    fds = dict((left.split()[-1], target) for left, _, target in
               (line.partition(" -> ") for line in lines[1:-1] if line.startswith("l")))
    assert sorted(fds) == ["0", "1", "2"], out  # sh -c is PID 1: only its stdio
    assert not [t for t in fds.values() if base in t or t.startswith("mnt:")], out


def test_missing_source_is_one_line_and_nothing_left(mr, host_tree):
    base, _ = host_tree
    missing = os.path.join(base, "d0000", "nope")

    p = mr.run("true", edit=lambda c: _userns(c, [{"destination": "/tmp/x", "type": "bind",
                                                   "source": missing, "options": ["rbind"]}]))
    assert p.returncode != 0
    assert p.stderr.strip().count("\n") == 0 and "Traceback" not in p.stderr, p.stderr
    assert f"mounts[8] /tmp/x: bind source {missing}: no such file or directory" in p.stderr, p.stderr
    assert json.loads(mr.cli("list", "--format", "json").stdout or "null") in ([], None)
    assert not (os.path.isdir(mr.root) and os.listdir(mr.root))  # no state dir left


def test_the_runtimes_helper_is_a_thread_of_the_runtime(mr, host_tree):
    """The trace of a bind in a user namespace: the runtime itself — the pid of its own calls in
    the spec phase, no forked helper — unshares CLONE_FS for one thread, joins init's mount
    namespace and copies the source there, in the mount phase; init attaches the copy."""
    from test_trace import calls, parse
    base, _ = host_tree
    src = os.path.join(base, "d0700", "plain")
    p = mr.cli("run", "--trace", "--bundle", mr.bundle(lambda c: _userns(c, [
        {"destination": "/tmp/m", "type": "bind", "source": src, "options": ["bind", "ro"]}]),
        args=["cat", "/tmp/m/ro-file"]), mr.new_id())
    assert p.returncode == 0, p.stderr
    assert p.stdout == "plain under 0700\n"
    phases, _ = parse(p.stderr)
    runtime_pid = calls(phases["spec"], "runtime")[0][1]
    mount = phases["mount"]
    helper = [c for c in calls(mount, "runtime") if c[2] in ("unshare", "setns", "open_tree")]
    assert [(c[1], c[2], c[3][-1] if c[2] != "open_tree" else c[3][0]) for c in helper] == [
        (runtime_pid, "unshare", "CLONE_FS"), (runtime_pid, "setns", "CLONE_NEWNS"),
        (runtime_pid, "open_tree", src)], mount
    (attach,) = [c for c in calls(mount, "init", "move_mount") if c[3][0] == src]
    assert mount.index(helper[-1]) < mount.index(attach)


def test_the_helper_thread_leaves_the_runtime_where_it_was(tmp_path):
    """In-process: the helper joins another mount namespace (a tmpfs mounted only there) and
    opens a source in it; the process calling it — every thread of it — stays in its own mount
    namespace and working directory, and the helper's thread is gone once it is closed."""
    from mrunc.process import protocol
    from mrunc.process.sources import SourceHelper
    mark = tmp_path / "mp"
    mark.mkdir()
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                               f"mount -t tmpfs -o size=64k mrunc-test {mark} && "
                               f"touch {mark}/only-in-there && echo ready && exec sleep 60"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "ready\n"
        own_ns, cwd = os.readlink("/proc/self/ns/mnt"), os.getcwd()
        tasks = set(os.listdir("/proc/self/task"))
        mine, theirs = protocol.pair()
        theirs.settimeout(10)
        helper = SourceHelper(mine)
        helper.start()
        try:
            ns = os.open(f"/proc/{holder.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            protocol.send(theirs, {"t": "mount-source", "path": str(mark), "recursive": False},
                          fds=[ns])
            os.close(ns)
            answer = protocol.recv(theirs, "mount-source", with_fds=True)
            assert "errno" not in answer, answer
            (fd,) = answer["_fds"]
            try:
                assert "only-in-there" in os.listdir(f"/proc/self/fd/{fd}")  # their tmpfs
            finally:
                os.close(fd)
        finally:
            theirs.close()
            helper.close()
        assert not os.listdir(mark)    # ours: the tmpfs is not here
        assert os.getcwd() == cwd
        for _ in range(500):           # the thread ends just after close() returns
            if set(os.listdir("/proc/self/task")) == tasks:
                break
            time.sleep(0.01)
        assert set(os.listdir("/proc/self/task")) == tasks
        for t in tasks:
            assert os.readlink(f"/proc/self/task/{t}/ns/mnt") == own_ns
    finally:
        holder.kill()
        holder.wait()
