"""The sandbox options the course notebooks need, on real containers (root): fds= hands our fds
to the container as 3, 4, … (--preserve-fds); mounts= adds volumes; no_pivot= enters the rootfs
with MS_MOVE + chroot; and the image's chroot-breakout reads a host file only from a plain chroot."""
import os
import tempfile

import pytest

from conftest import ROOTFS
from test_sandbox_live import assert_nothing_left, lab  # noqa: F401 — the fixture

from mrunc import spec
from mrunc.sandbox import Sandbox, mrunc_command

pytestmark = pytest.mark.root


def _running(c):
    import time
    deadline = time.monotonic() + 20
    while c.pid is None or "python" in os.path.basename(os.readlink(f"/proc/{c.pid}/exe")):
        assert c.status not in ("stopped", "deleted") and time.monotonic() < deadline, c.logs()
        time.sleep(0.02)
    return c


def test_fds_become_3_and_up_in_the_container(lab, tmp_path):
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    here = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        c = _running(lab.start(fds=[here, null]))      # in this order: 3 is the directory
        plain = _running(lab.start())
    finally:
        os.close(null)
        os.close(here)
    fd3, fd4 = os.stat(f"/proc/{c.pid}/fd/3"), os.stat(f"/proc/{c.pid}/fd/4")
    assert (fd3.st_dev, fd3.st_ino) == (os.stat(tmp_path).st_dev, os.stat(tmp_path).st_ino)
    assert fd4.st_rdev == os.makedev(1, 3)
    assert sorted(map(int, os.listdir(f"/proc/{c.pid}/fd"))) == [0, 1, 2, 3, 4]
    assert sorted(map(int, os.listdir(f"/proc/{plain.pid}/fd"))) == [0, 1, 2]


def test_mounts_add_a_read_only_volume_the_host_never_sees(lab, tmp_path):
    (tmp_path / "hello").write_text("hi\n")
    vol = {"destination": "/data", "type": "bind", "source": str(tmp_path), "options": ["rbind", "ro"]}
    c = _running(lab.start(mounts=[vol]))
    r = c.exec("cat /data/hello; echo x > /data/new")
    assert r.stdout == "hi\n" and "Read-only file system" in r.stderr
    assert not (tmp_path / "new").exists()
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()


def test_no_pivot_moves_the_rootfs_over_the_old_root_and_chroots(lab):
    calls = {}
    for no_pivot in (False, True):
        r = lab.run("true", no_pivot=no_pivot, trace=True)      # the runtime's calls, on stderr
        assert r.exit_code == 0, r
        calls[no_pivot] = r.stderr                               # one line per call made

    def made(no_pivot, call):
        return any(ln.rstrip().endswith(call) for ln in calls[no_pivot].splitlines())
    assert made(False, "pivot_root('.', '.')") and not made(False, "chroot('.')")
    assert made(True, "chroot('.')") and not made(True, "pivot_root('.', '.')")
    assert made(True, "'/', None, 'MOVE', None)")


def test_chroot_breakout_reads_the_host_only_from_a_plain_chroot(lab):
    host_dir = tempfile.mkdtemp(prefix="mrunc-test-")
    secret = os.path.join(host_dir, "secret")
    with open(secret, "w") as f:
        f.write("host\n")
    config = spec.default_config()
    config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"] if n["type"] != "mount"]
    config["mounts"] = []
    for key in ("maskedPaths", "readonlyPaths"):
        config["linux"].pop(key)
    config["root"] = {"path": ROOTFS}
    os.mkdir(os.path.join(host_dir, "bundle"))
    with open(os.path.join(host_dir, "bundle", "config.json"), "w") as f:
        import json
        json.dump(config, f)
    # no mount namespace: only ever in a throwaway private copy of the host's mounts
    throwaway = Sandbox(root=lab.root + "-chroot", rootfs=ROOTFS,
                        mrunc=["unshare", "--mount", "--propagation", "private", *mrunc_command()])
    try:
        escaped = throwaway.run(args=["chroot-breakout", secret], image=os.path.join(host_dir, "bundle"),
                                cap_add=["SYS_CHROOT"])
        held = lab.run(args=["chroot-breakout", secret], cap_add=["SYS_CHROOT"])
        held_moved = lab.run(args=["chroot-breakout", secret], cap_add=["SYS_CHROOT"], no_pivot=True)
        no_cap = lab.run(args=["chroot-breakout", secret])
    finally:
        names = list(throwaway.containers)
        throwaway.close()
        assert_nothing_left(throwaway, names)
        import shutil
        shutil.rmtree(host_dir)
    assert escaped.exit_code == 0 and escaped.stdout.endswith("says: host\n"), escaped
    assert held.exit_code == 1 and "No such file" in held.stdout, held
    assert held_moved.exit_code == 1 and "No such file" in held_moved.stdout, held_moved
    assert no_cap.exit_code == 2 and "Operation not permitted" in no_cap.stderr, no_cap
