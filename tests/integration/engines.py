"""Private podman and containerd environments that drive mrunc by path, for the engine tests.

Everything an engine writes goes under one temporary directory (its store, state, sockets, logs,
FIFOs), its containers' cgroups under a parent of our own, and its processes (conmon, containerd,
the shims) are found by that directory in their command lines. `close()` removes all of it and
returns what it could not remove, so a test can assert that nothing was left behind.

Facts these environments rest on (see ../shared/TESTING.md): podman needs `cgroup_manager =
"cgroupfs"` and `events_logger = "file"` without systemd, ulimits no higher than ours (this root
lacks CAP_SYS_RESOURCE, and podman's default nofile/nproc would fail every runtime), and passes
`--log-format=json --log F` only to runtimes listed in `runtime_supports_json`. containerd is
started privately (own config, root, state and socket; CRI plugin disabled) and stopped by pid.
"""
import hashlib
import io
import json
import os
import platform
import resource
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOTFS = os.path.join(REPO, "rootfs", "busybox")
IMAGE = "localhost/mrunc-busybox:latest"


def mrunc_path():
    """The mrunc beside the interpreter running the tests (the venv's), as an absolute path:
    engines exec it by path."""
    p = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "mrunc")
    return p if os.access(p, os.X_OK) else shutil.which("mrunc")


def sh(argv, *, input=None, timeout=60, env=None, check=False):
    """Run argv; stdout/stderr through files, not pipes: a daemon it leaves behind (conmon, a
    shim) may keep inherited pipes open, and reading one to EOF would wait for it."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        rc = subprocess.run(argv, input=input, stdout=out, stderr=err, text=True,
                            stdin=None if input is not None else subprocess.DEVNULL,
                            timeout=timeout, env=env).returncode
        out.seek(0)
        err.seek(0)
        p = subprocess.CompletedProcess(argv, rc, out.read(), err.read())
    if check and rc != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({rc}):\n{p.stdout}{p.stderr}")
    return p


def sh_in_pty(argv, *, env=None, timeout=60, rows=24, cols=80):
    """Run argv with a new pty as its controlling terminal and stdio (what `podman run -t` and
    `ctr run -t` want); return (exit code, output without carriage returns)."""
    import fcntl
    import struct
    import termios
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                         start_new_session=True,
                         preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    out, deadline, exited_at = bytearray(), time.monotonic() + timeout, None
    try:
        while True:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed
                    break
                if not data:
                    break
                out += data
                continue
            if p.poll() is not None:
                # Gone, but something it started may still hold the slave: drain briefly.
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > 0.5:
                    break
            if time.monotonic() > deadline:
                p.kill()
                p.wait()
                raise AssertionError(f"{' '.join(argv)}: no exit after {timeout}s; output so far:\n"
                                     f"{out.decode(errors='replace')}")
    finally:
        os.close(master)
    return p.wait(), out.decode(errors="replace").replace("\r", "")


# ---------------------------------------------------------------- images

_ROOTFS_TREES = ("bin", "sbin", "usr", "etc")
_ROOTFS_EMPTY = {"proc": 0o755, "sys": 0o755, "dev": 0o755, "tmp": 0o1777, "root": 0o700,
                 "home": 0o755, "run": 0o755, "var": 0o755, "mnt": 0o755}


def rootfs_layer(path):
    """The busybox rootfs as an image layer tar. Only its files and empty mount-point dirs: other
    tests write into (and mount under) rootfs/busybox while this runs."""
    if not os.path.exists(os.path.join(ROOTFS, "bin", "busybox")):
        raise AssertionError(f"busybox rootfs missing at {ROOTFS}: run `make rootfs`")

    def owned_by_root(ti):
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        return ti

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        for name in _ROOTFS_TREES:
            t.add(os.path.join(ROOTFS, name), arcname=name, filter=owned_by_root)
        for name, mode in _ROOTFS_EMPTY.items():
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, mode, int(time.time())
            t.addfile(ti)
        if os.path.islink(os.path.join(ROOTFS, "linuxrc")):
            t.add(os.path.join(ROOTFS, "linuxrc"), arcname="linuxrc", filter=owned_by_root)
    return path


def oci_archive(layer, path, ref=IMAGE):
    """An OCI image layout tar (what `ctr images import` reads) with one uncompressed layer."""
    blobs = {}

    def blob(data, media_type):
        d = hashlib.sha256(data).hexdigest()
        blobs[d] = data
        return {"mediaType": media_type, "digest": f"sha256:{d}", "size": len(data)}

    with open(layer, "rb") as f:
        layer_data = f.read()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = {"architecture": arch, "os": "linux",
              "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                         "Cmd": ["sh"]},
              "rootfs": {"type": "layers",
                         "diff_ids": ["sha256:" + hashlib.sha256(layer_data).hexdigest()]}}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"),
                "layers": [blob(layer_data, "application/vnd.oci.image.layer.v1.tar")]}
    desc = blob(json.dumps(manifest).encode(), manifest["mediaType"])
    desc["annotations"] = {"io.containerd.image.name": ref,
                           "org.opencontainers.image.ref.name": ref.rpartition(":")[2]}
    index = {"schemaVersion": 2, "manifests": [desc]}
    files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
             "index.json": json.dumps(index).encode(),
             **{f"blobs/sha256/{d}": data for d, data in blobs.items()}}
    with tarfile.open(path, "w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, int(time.time())
            t.addfile(ti, io.BytesIO(data))
    return path


# ---------------------------------------------------------------- what can be left behind

def cgroup_mounts():
    """Mount points of every cgroup hierarchy (v1 controllers, named ones, and cgroup2)."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] in ("cgroup", "cgroup2"):
                points.append(left.split()[4])
    return points


def remove_cgroups(rel):
    """rmdir /<rel> and everything below it in every hierarchy, deepest first; return what
    stayed (a cgroup with a process in it cannot be removed)."""
    left = []
    for mnt in cgroup_mounts():
        top = os.path.join(mnt, rel.strip("/"))
        if not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                left.append(dirpath)
    return left


def processes_mentioning(text):
    """(pid, command line) of every live (not zombie) process whose command line contains text."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/stat") as f:
                zombie = f.read().rpartition(")")[2].split()[0] == "Z"
        except OSError:
            continue
        if text in cmd and not zombie:
            found.append((int(name), cmd.strip()))
    return found


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path.rstrip("/") + "/")]


def stop_pid(pid, timeout=5):
    """SIGTERM, then SIGKILL, one pid that we started."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:  # not our child: poll /proc
                if not os.path.exists(f"/proc/{pid}"):
                    return
            time.sleep(0.05)


class Leftovers(list):
    def note(self, what, items):
        self.extend(f"{what}: {i}" for i in items)


def _remove_base(base, left):
    for m in sorted(mounts_under(base), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)
        left.note("mount", [m])
    shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------- podman

class Podman:
    """`podman` with a private store, run root, tmp dir and containers.conf; `--runtime` is mrunc
    by absolute path. Containers are named by the caller or by podman; `run` adds
    `--network none` and a cgroup parent of our own."""

    def __init__(self):
        self.exe = shutil.which("podman")
        self.mrunc = mrunc_path()
        self.base = tempfile.mkdtemp(prefix="mrunc-podman-")
        self.cgroup_parent = f"/mrunc-podman-{uuid.uuid4().hex[:8]}"
        self.conf = os.path.join(self.base, "containers.conf")
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        # conmon runs the runtime with a lower nproc ceiling than ours; a container needs few.
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
        with open(self.conf, "w") as f:
            f.write(f"""\
[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
runtime_supports_json = ["mrunc"]
""")
        self.env = dict(os.environ, CONTAINERS_CONF=self.conf)
        self.had_state_root = os.path.exists("/run/mrunc")  # podman gives mrunc no --root
        # and there the seccomp programs of its creates are kept (mrunc.security.seccompcache)
        self.had_seccomp_cache = os.path.exists("/run/mrunc/.seccomp")
        self.closed = False

    def argv(self, *args):
        b = self.base
        return [self.exe, "--root", f"{b}/root", "--runroot", f"{b}/runroot",
                "--storage-driver", "overlay", "--tmpdir", f"{b}/tmp",
                "--network-config-dir", f"{b}/cni", "--runtime", self.mrunc, *args]

    def __call__(self, *args, input=None, timeout=60, check=True):
        return sh(self.argv(*args), input=input, timeout=timeout, env=self.env, check=check)

    def run_argv(self, *args):
        """The `run` arguments every test uses: no network, our cgroup parent."""
        return ("run", "--network", "none", "--cgroup-parent", self.cgroup_parent, *args)

    def run(self, *args, **kw):
        return self(*self.run_argv(*args), **kw)

    def in_pty(self, *args, timeout=60):
        return sh_in_pty(self.argv(*args), env=self.env, timeout=timeout)

    def import_image(self):
        layer = rootfs_layer(os.path.join(self.base, "rootfs.tar"))
        self("import", layer, IMAGE)

    def close(self):
        """Remove every container and the store; return what was left behind."""
        left = Leftovers()
        if self.closed:
            return left
        self.closed = True
        ids = self("ps", "-a", "-q", "--no-trunc", check=False).stdout.split()
        self("rm", "-a", "-f", "-t", "0", check=False)
        left.note("podman container", self("ps", "-a", "-q", check=False).stdout.split())
        # mrunc's state for those containers, in its default root (podman passes no --root)
        left.note("mrunc state", [i for i in ids if os.path.exists(f"/run/mrunc/{i}")])
        self("rmi", "-a", "-f", check=False)
        for pid, cmd in processes_mentioning(self.base):
            left.note("process", [f"{pid} {cmd[:120]}"])
            stop_pid(pid)
        left.note("cgroup", remove_cgroups(self.cgroup_parent))
        if not self.had_seccomp_cache:
            from mrunc.security import seccompcache
            seccompcache.forget("/run/mrunc")
        if not self.had_state_root:
            try:
                os.rmdir("/run/mrunc")
            except OSError:
                pass
        _remove_base(self.base, left)
        return left


# ---------------------------------------------------------------- containerd

class Containerd:
    """A private containerd (own config, root, state, sockets; CRI disabled) and `ctr` against it.
    `run` is `ctr run` with mrunc as the runc shim's binary (`--runc-binary`, i.e. the shim's
    `BinaryName` option), a private mrunc state root and FIFO dir."""

    def __init__(self):
        self.exe = shutil.which("containerd")
        self.ctr_exe = shutil.which("ctr")
        self.mrunc = mrunc_path()
        self.base = tempfile.mkdtemp(prefix="mrunc-containerd-")
        self.ns = f"mrunc-{uuid.uuid4().hex[:8]}"  # also the containers' cgroup parent: /<ns>/<id>
        self.sock = f"{self.base}/containerd.sock"
        self.runc_root = f"{self.base}/mrunc"
        self.fifo_dir = f"{self.base}/fifo"
        self.log = f"{self.base}/containerd.log"
        self.proc = None
        # The shims put their sockets in /run/containerd/s whatever the config says.
        self.had_run_dir = os.path.exists("/run/containerd")
        self.closed = False

    def config(self):
        b = self.base
        return f"""\
version = 2
root = "{b}/root"
state = "{b}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{self.sock}"

[ttrpc]
  address = "{self.sock}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{b}/opt"
"""

    def start(self):
        conf = os.path.join(self.base, "config.toml")
        with open(conf, "w") as f:
            f.write(self.config())
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen([self.exe, "--config", conf], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
        end = time.monotonic() + 30
        while self.ctr("version", check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"containerd did not start:\n{self.log_text()}")
            time.sleep(0.1)

    def log_text(self):
        with open(self.log) as f:
            return f.read()[-4000:]

    def argv(self, *args):
        return [self.ctr_exe, "--address", self.sock, "--connect-timeout", "5s",
                "--namespace", self.ns, *args]

    def ctr(self, *args, input=None, timeout=60, check=True):
        return sh(self.argv(*args), input=input, timeout=timeout, check=check)

    def run_argv(self, *args):
        return ("run", "--runc-binary", self.mrunc, "--runc-root", self.runc_root,
                "--fifo-dir", self.fifo_dir, *args)

    def run(self, *args, **kw):
        return self.ctr(*self.run_argv(*args), **kw)

    def exec_argv(self, *args):
        return ("task", "exec", "--fifo-dir", self.fifo_dir, *args)

    def in_pty(self, *args, timeout=60):
        return sh_in_pty(self.argv(*args), timeout=timeout)

    def import_image(self):
        layer = rootfs_layer(os.path.join(self.base, "rootfs.tar"))
        archive = oci_archive(layer, os.path.join(self.base, "image.tar"))
        self.ctr("images", "import", archive)

    def mrunc_state(self):
        """Containers in mrunc's state root for our namespace (the shim adds /<namespace>)."""
        d = os.path.join(self.runc_root, self.ns)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def close(self):
        left = Leftovers()
        if self.closed:
            return left
        self.closed = True
        if self.proc is not None and self.proc.poll() is None:
            for line in self.ctr("task", "ls", "-q", check=False).stdout.split():
                self.ctr("task", "kill", "-s", "KILL", line, check=False)
                self.ctr("task", "delete", "--force", line, check=False)
            for line in self.ctr("containers", "ls", "-q", check=False).stdout.split():
                left.note("containerd container", [line])
                self.ctr("containers", "rm", line, check=False)
            self.ctr("images", "rm", IMAGE, check=False)
        left.note("mrunc state", self.mrunc_state())
        if self.proc is not None:
            stop_pid(self.proc.pid)
        # Shims outlive containerd by design; ours name our socket in their command line.
        for pid, cmd in processes_mentioning(self.base):
            left.note("process", [f"{pid} {cmd[:120]}"])
            stop_pid(pid)
        left.note("cgroup", remove_cgroups(self.ns))
        if not self.had_run_dir:
            for d in ("/run/containerd/s", "/run/containerd/fifo", "/run/containerd"):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        _remove_base(self.base, left)
        return left


if __name__ == "__main__":
    # `python tests/integration/engines.py OUT.tar`: the busybox image as an OCI archive, the one
    # the containerd tests import (README, "Use with containerd").
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT.tar")
    with tempfile.TemporaryDirectory() as tmp:
        oci_archive(rootfs_layer(os.path.join(tmp, "layer.tar")), sys.argv[1])
