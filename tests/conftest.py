"""Shared fixtures: a busybox bundle built from `mrunc spec` + small edits, and a CLI runner with a
private state root that deletes every container it created, even when the test fails."""
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOTFS = os.path.join(REPO, "rootfs", "busybox")


def pytest_collection_modifyitems(config, items):
    """Skip by declared requirement, and say why."""
    root = os.geteuid() == 0
    runc = shutil.which("runc")
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    for item in items:
        if "root" in item.keywords and not root:
            item.add_marker(pytest.mark.skip(reason="needs root"))
        if "runc" in item.keywords and not runc:
            item.add_marker(pytest.mark.skip(reason="runc is not installed"))
        if "cgroup_v2" in item.keywords and not v2:
            item.add_marker(pytest.mark.skip(reason="host is not pure cgroup v2 (run it in cgroup2-vm)"))
        if "cgroup_v1" in item.keywords and v2:
            item.add_marker(pytest.mark.skip(reason="host has no cgroup v1 hierarchies"))


def copy_rootfs(dst):
    """A private copy of the busybox rootfs: directories, regular files and symlinks only. A
    device node or fifo left in the image (by a failed run) would be *read* by copytree — once,
    /dev/full copied as 74 GB of zeros and filled the disk."""
    import stat

    def copy(src, dest):
        if stat.S_ISREG(os.lstat(src).st_mode):
            return shutil.copy2(src, dest)
        return None
    shutil.copytree(ROOTFS, dst, symlinks=True, copy_function=copy)
    return dst


def base_config():
    from mrunc import spec
    cfg = spec.default_config()
    cfg["root"]["path"] = ROOTFS
    cfg["process"]["terminal"] = False
    return cfg


class Runtime:
    """`mrunc --root <private> ...` as a subprocess, plus bundle helpers."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.root = f"/run/mrunc-test-{uuid.uuid4().hex[:8]}"
        self.ids = []

    def cli(self, *args, input=None, timeout=30, check=False, env=None, **kw):
        # Output goes to files, not pipes: a created container inherits create's stdio and keeps
        # it open, so reading a pipe to EOF would wait for the container to exit.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            rc = subprocess.run([sys.executable, "-m", "mrunc", "--root", self.root, *args],
                                input=input, stdout=out, stderr=err, text=True, timeout=timeout,
                                env=env, cwd=REPO, **kw).returncode
            out.seek(0)
            err.seek(0)
            p = subprocess.CompletedProcess(args, rc, out.read(), err.read())
        if check and p.returncode != 0:
            raise AssertionError(f"mrunc {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return p

    def bundle(self, edit=None, args=None, name=None):
        """A bundle dir whose config is the default one, edited by `edit(cfg)`."""
        d = self.tmp / (name or f"bundle-{uuid.uuid4().hex[:6]}")
        d.mkdir()
        cfg = base_config()
        if args is not None:
            cfg["process"]["args"] = list(args)
        if edit:
            edit(cfg)
        (d / "config.json").write_text(json.dumps(cfg))
        return str(d)

    def new_id(self):
        cid = f"t-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def run(self, *args, edit=None, timeout=30, **kw):
        """Run `args` in a fresh container in the foreground; return the CompletedProcess."""
        b = self.bundle(edit, args=args)
        return self.cli("run", "--bundle", b, self.new_id(), timeout=timeout, **kw)

    def sh(self, script, edit=None, **kw):
        p = self.run("sh", "-c", script, edit=edit, **kw)
        assert p.returncode == 0, f"container failed ({p.returncode}): {p.stderr}"
        return p.stdout

    def cleanup(self):
        if os.path.isdir(self.root):
            for cid in os.listdir(self.root):
                self.cli("delete", "--force", cid)
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def mr(tmp_path):
    if not os.path.exists(os.path.join(ROOTFS, "bin", "busybox")):
        pytest.fail(f"busybox rootfs missing at {ROOTFS}: run `make rootfs`")
    r = Runtime(tmp_path)
    try:
        yield r
    finally:
        r.cleanup()


def host_ns(kind):
    return os.readlink(f"/proc/self/ns/{kind}")




@pytest.fixture(autouse=True)
def host_unchanged(request, tmp_path_factory):
    """Every integration test run as root: the host's root, namespaces, names, the mounts this
    test could leak and the interfaces' flags are the same afterwards (tests/integration/
    hostguard.py says what is compared and what is not, and why). Set up first, so it checks
    last: after the test's own fixtures have cleaned up."""
    if os.geteuid() != 0 or "integration" not in request.node.path.parts:
        yield
        return
    if os.path.join(REPO, "tests", "integration") not in sys.path:
        sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
    import hostguard
    tops = [REPO, str(tmp_path_factory.getbasetemp())]
    if "mr" in request.fixturenames:
        tops.append(request.getfixturevalue("mr").root)
    cgroupfs = "runc" not in request.keywords  # runc's own cgroup2 mount: see hostguard.py
    before = hostguard.snapshot(tops, cgroupfs)
    yield
    changed = hostguard.changes(before, hostguard.snapshot(tops, cgroupfs))
    assert changed == [], "the test changed the host:\n" + "\n".join(changed)


@pytest.fixture(params=["openat2", "walk"])
def resolution(request, monkeypatch):
    """Run a test on both ways mrunc resolves paths safely: openat2 (Linux 5.6+) and the
    component-by-component walk kept for older kernels (has_openat2 says no)."""
    from mrunc import linux
    if request.param == "openat2" and not linux.has_openat2():
        pytest.skip("this kernel has no openat2")
    if request.param == "walk":
        monkeypatch.setattr(linux, "has_openat2", lambda: False)
    return request.param


@contextlib.contextmanager
def flipping(parent, target):
    """While in the block, a thread flips parent/sub between a directory and a symlink to
    `target` — what a process sharing a volume with a container can do while the runtime makes a
    path through it (S7)."""
    import threading
    stop = threading.Event()
    t = threading.Thread(target=_flip, args=(parent, target, stop), daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def _flip(parent, target, stop):
    i = 0
    while not stop.is_set():
        i += 1
        old = parent / f".old{i}"
        try:
            os.rename(parent / "sub", old)  # whatever is there now, out of the way
        except OSError:
            pass
        try:
            os.symlink(target, parent / "sub") if i % 2 else os.mkdir(parent / "sub")
        except OSError:
            pass  # the runtime made it first
        if old.is_symlink():
            old.unlink()
        elif old.exists():
            shutil.rmtree(old, ignore_errors=True)
