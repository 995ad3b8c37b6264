"""A machine with systemd for the SystemdSpawner test, inside the cgroup v2 VM (whose PID 1 is a
shell, not systemd): systemd 252 started as PID 1 of its own pid, mount and cgroup namespaces —
what systemd calls running in a container (`container=` set, a fresh /run, a cgroup2 mount whose
root is a cgroup of its own).

    with SystemdBox() as box:
        box.run("systemctl", "is-system-running")      # nsenter into its mount + pid namespaces
        box.cgroup("system.slice/x.service")           # the same cgroup, seen from the VM

It boots basic.target (journald included; no getty, no network: ≈ 25 s under TCG). Stopping it powers
systemd off (SIGRTMIN+4), which ends its pid namespace and everything in it; its cgroup is
removed after."""
import os
import signal
import subprocess
import time
import uuid

# Runs as PID 1 of the new pid namespace (unshare --fork --mount-proc): joins the box's cgroup
# ($0) first, so that the cgroup namespace made next is rooted there, and unshare itself stays
# outside (cgroup v2 enables controllers only in a cgroup without processes of its own). It boots
# basic.target (the units SystemdSpawner makes depend on it anyway), masking what would reach out
# of the box: tmpfiles would empty /tmp, which the box shares with the VM (and the test), and
# timesyncd would set the clock.
BOOT = r"""
echo 0 > "$0/cgroup.procs" || exit 90
export MASK="systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service systemd-tmpfiles-clean.timer systemd-timesyncd.service"
exec unshare --cgroup sh -c '
    # the VM mount out of the way (in this private mount namespace only), and a cgroup2 mount
    # whose root is the box cgroup
    umount /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup || exit 91
    mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run || exit 92
    mkdir -p /run/systemd/system && cd /run/systemd/system || exit 93
    printf "[Unit]\nDescription=the classroom test machine\nWants=basic.target\nAfter=basic.target\n" > box.target
    for u in $MASK; do ln -s /dev/null $u; done
    exec env -i container=mrunc-test /lib/systemd/systemd --unit=box.target --log-target=console
'
"""


class SystemdBox:
    def __init__(self):
        self.cg = f"/sys/fs/cgroup/mrunc-systemd-{uuid.uuid4().hex[:8]}"
        self.proc = self.pid = None

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=120):
        os.mkdir(self.cg)
        self.log = open(f"{self.cg.replace('/sys/fs/cgroup/', '/tmp/')}.log", "w+")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "--mount-proc",
             "sh", "-c", BOOT, self.cg],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd exited ({self.proc.returncode}): {self.logs()}")
            self.pid = self.pid or self._systemd_pid()
            if self.pid and self.run("systemctl", "is-system-running").stdout.strip() in ("running", "degraded"):
                return self
            time.sleep(0.5)
        raise RuntimeError(f"systemd is not running after {timeout}s: {self.logs()}")

    def _systemd_pid(self):
        try:
            with open(f"{self.cg}/init.scope/cgroup.procs") as f:
                return int(f.read().split()[0])
        except (OSError, IndexError):
            return None

    def logs(self):
        self.log.seek(0)
        return self.log.read()[-3000:]

    def run(self, *argv, **kw):
        """argv inside the box (its mount and pid namespaces), as root; output captured."""
        kw.setdefault("timeout", 120)
        return subprocess.run(["nsenter", "-t", str(self.pid), "-m", "-p", "--", *argv],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)

    def cgroup(self, path=""):
        """A cgroup of the box (`system.slice/x.service`), as a path in the VM's cgroupfs."""
        return os.path.join(self.cg, path)

    def path(self, path):
        """A path as the box sees it (its own /run), from outside."""
        return f"/proc/{self.pid}/root{path}"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            if self.pid:
                os.kill(self.pid, signal.SIGRTMIN + 4)     # systemd: poweroff
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)          # the pid namespace dies with its init
                self.proc.wait()
        if os.path.isdir(self.cg):
            from mrunc.cgroups import fs
            deadline = time.monotonic() + 10
            while fs.procs(self.cg) and time.monotonic() < deadline:
                for pid in fs.procs(self.cg):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
            for d in fs.subdirs_leaf_first(self.cg):
                fs.rmdir(d)
        if getattr(self, "log", None):
            self.log.close()
            os.unlink(self.log.name)
