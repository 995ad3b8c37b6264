"""One container of a sandbox: its bundle (config.json, overlay, log), its state, what can be done
to it (start, wait, kill, stop, exec, delete, snapshot)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

from ..errors import MruncError
from .errors import SandboxError, cli_error
from .options import parse_user


def remove_bundle_dir(d):
    """Unmount the overlay, then remove the directory — never through a mount that is still there
    (that would delete the image's files)."""
    merged = os.path.join(d, "rootfs")
    if os.path.ismount(merged):
        from ..linux import MNT_DETACH, Syscalls
        try:
            Syscalls().umount2(merged, MNT_DETACH)
        except OSError:
            return
    if os.path.ismount(merged):
        return
    shutil.rmtree(d, ignore_errors=True)


# argv: N, N fds, then the command: fds 3..N+2 become copies of them (each first copied above
# N+2, close-on-exec, so that moving one never overwrites another still to be moved)
_MOVE_FDS = ("import fcntl, os, sys\n"
             "n = int(sys.argv[1])\n"
             "high = [fcntl.fcntl(int(fd), fcntl.F_DUPFD_CLOEXEC, 3 + n) for fd in sys.argv[2:2 + n]]\n"
             "for i, fd in enumerate(high):\n"
             "    os.dup2(fd, 3 + i)\n"
             "os.execvp(sys.argv[2 + n], sys.argv[2 + n:])\n")


class Container:
    """One container of a sandbox. Its parent is a `mrunc run` process (the shim) when it was
    started by us, so its exit status is known; state and usage are read from the state root."""

    def __init__(self, sandbox, name, bundle, config):
        self.sandbox, self.name = sandbox, name
        self.bundle, self.config = bundle, config
        self.shim = None                # the `mrunc run` process, when we started it
        self.session = None             # the StepSession making it, if any
        self.command = " ".join(((config or {}).get("process") or {}).get("args") or [])
        self.log_path = os.path.join(bundle, "output.log") if bundle else None
        self.overlay = False
        self.deleted = False
        self.skipped = None             # the limits not applied (rootless, no delegation), and why
        self.network = None             # its place on a lab network: address, veth (mrunc.network)
        self.no_pivot = False           # `--no-pivot`: chroot into the rootfs, not pivot_root
        self.fds = ()                   # our fds handed to it as 3, 4, … (`--preserve-fds`)
        self._mgr = None
        self._exit = None
        self._rootfs = None

    def __repr__(self):
        return f"<Container {self.name} {self.status}>"

    @property
    def id(self):
        return self.name

    @property
    def addresses(self) -> list[str]:
        """Its IPv4 addresses on lab networks (none: only lo)."""
        return [self.network["address"]] if self.network else []

    def _network_flags(self):
        """`mrunc run --network FILE`: the runtime wires it between create and start."""
        return ["--network", os.path.join(self.bundle, "network.json")] if self.network else []

    @property
    def rootfs(self):
        """The image's root (the overlay's lower layer), where /etc/passwd is read from."""
        return self._rootfs or self.sandbox.rootfs

    # -- making it --
    def _write_bundle(self, rootfs, overlay):
        self._rootfs = rootfs
        os.mkdir(self.bundle, 0o700)
        from ..state import proc_start_time
        with open(os.path.join(self.bundle, "owner"), "w") as f:
            f.write(f"{os.getpid()} {proc_start_time(os.getpid())[0]}\n")
        if overlay:
            merged = os.path.join(self.bundle, "rootfs")
            for d in ("rootfs", "upper", "work"):
                os.mkdir(os.path.join(self.bundle, d), 0o755)
            from ..linux import Syscalls
            try:
                Syscalls().mount("overlay", merged, "overlay", 0,
                                 f"lowerdir={rootfs},upperdir={self.bundle}/upper,workdir={self.bundle}/work")
                self.overlay = True
                self.config["root"]["path"] = merged
            except OSError:             # no overlayfs (or an odd lower fs): read-only instead
                self.config["root"]["readonly"] = True
        with open(os.path.join(self.bundle, "config.json"), "w") as f:
            json.dump(self.config, f)

    def _create_flags(self):
        """--no-pivot and --preserve-fds, for `mrunc create` and `mrunc run`."""
        return ((["--no-pivot"] if self.no_pivot else []) +
                (["--preserve-fds", str(len(self.fds))] if self.fds else []))

    def _popen(self, args, **kw):
        cmd = [*self.sandbox.mrunc, "--root", self.sandbox.root, *args]
        if self.fds:
            # --preserve-fds passes fds 3..N+2: a small interpreter moves ours there, then execs
            # mrunc (this process never forks; subprocess cannot renumber fds but 0-2)
            cmd = [sys.executable, "-c", _MOVE_FDS, str(len(self.fds)), *map(str, self.fds), *cmd]
            kw["pass_fds"] = (*kw.get("pass_fds", ()), *self.fds)
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, **kw)

    def _spawn(self, extra=(), **kw):
        """The shim: `mrunc run --keep`, output to the log; the container outlives nothing of ours."""
        log = open(self.log_path, "ab")
        try:
            self.shim = self._popen(["run", "--keep", *self._network_flags(), *self._create_flags(),
                                     *extra, "--bundle",
                                     self.bundle, self.name],
                                    stdout=log, stderr=subprocess.STDOUT, **kw)
        finally:
            log.close()

    def _wait_started(self, timeout=60.0):
        """Until the shim has started the program (state "running", pid known) or ended. A shim
        that ended leaving no state.json never made the container: its error is raised."""
        state = os.path.join(self.sandbox.root, self.name, "state.json")
        deadline = time.monotonic() + timeout
        # "running" is written by `start` once init leaves exec.fifo, a moment before its execve:
        # wait for the execve too, so that a check looking right away sees the program, not init
        while self.status not in ("running", "paused") or not self._program_runs():
            if self.shim.poll() is not None:
                if os.path.exists(state):
                    return                  # it ran, and is done already
                msg = cli_error(self.logs(), f"mrunc run failed ({self.shim.returncode})")
                self._cleanup()
                raise SandboxError(msg)
            if time.monotonic() > deadline:
                self.delete(force=True)
                raise SandboxError(f"{self.name}: not running after {timeout:.0f} s")
            time.sleep(0.005)

    def _program_runs(self) -> bool:
        """Has init exec'd the program? Its name in /proc/<pid>/stat (readable by anyone, also
        while init is not dumpable) stops being init's at the execve; a gone pid counts as done."""
        from ..state import INIT_COMM, proc_stat
        pid = self.pid
        return pid is None or proc_stat(pid)[2] != INIT_COMM

    def _create(self):
        if self.network:
            self._cleanup()
            raise SandboxError("network: a lab network is wired between create and start by "
                               "`mrunc run`: use start(), run() or step()")
        with open(self.log_path, "ab") as log:
            # create's stdio is inherited by the container: give it the log, never a pipe (that
            # would stay open as long as the container runs)
            p = self._popen(["create", *self._create_flags(), "--bundle", self.bundle, self.name], stdout=log,
                            stderr=subprocess.STDOUT)
            p.wait(60)
        if p.returncode != 0:
            msg = cli_error(self.logs(), "mrunc create failed")
            self._cleanup()
            raise SandboxError(msg)

    # -- state --
    def _state(self):
        from ..state import Container as State
        return State.load(self.sandbox.root, self.name)

    @property
    def status(self) -> str:
        """creating, created, running, paused, stopped or deleted."""
        if self.deleted:
            return "deleted"
        try:
            return self._state().status()
        except MruncError:
            if self.shim is not None and self.shim.poll() is None:
                return "creating"
            return "stopped"

    @property
    def pid(self) -> int | None:
        try:
            st = self._state()
        except MruncError:
            return None
        return st.pid if st.status() not in ("stopped", "creating") else None

    @property
    def exit_code(self) -> int | None:
        """The program's exit status (128+N: killed by signal N), None while it runs or unknown."""
        if self._exit is None and self.shim is not None:
            self._exit = self.shim.poll()
        return self._exit

    def state(self) -> dict:
        """The OCI state document (`mrunc state`)."""
        return self._state().oci_state()

    def cgroup(self):
        """The cgroup manager, kept once found: it outlives the state file's removal."""
        if self._mgr is None:
            try:
                self._mgr = self._state().cgroup()
            except MruncError:
                return None
        return self._mgr

    def stats(self) -> dict | None:
        """{"memory": {current, peak, limit, oom_kills}, "cpu": {usage_usec}, "pids": {...}}."""
        mgr = self.cgroup()
        # None too while create has not made the cgroup yet (the state says "creating"): figures
        # of a directory that is not there would all read None, not zero.
        if mgr is None or not mgr.exists():
            return None
        try:
            return mgr.stats()
        except OSError:
            return None

    def snapshot(self):
        """A mrunc.snapshot.Snapshot of the container's init (None when it is not running)."""
        from .. import snapshot
        pid = self.pid
        return snapshot.take(pid, cgroup_manager=self.cgroup()) if pid else None

    def logs(self) -> str:
        """Everything the container wrote (stdout and stderr, interleaved)."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
        except (OSError, TypeError):
            return ""
        return re.sub("\x1e[0-9a-f]{16} -?[0-9]+\x1e", "", text)      # Run(keep=True)'s status mark

    # -- acting --
    def start(self):
        """Start a created container: its init execs the program."""
        self.sandbox.cli("start", self.name)
        return self

    def wait(self, timeout=None) -> int | None:
        """Wait for the program to end; its exit status (None: not ours to know, or timeout)."""
        if self.shim is not None:
            try:
                self._exit = self.shim.wait(timeout)
            except subprocess.TimeoutExpired:
                return None
            return self._exit
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status not in ("stopped", "deleted"):
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.02)
        return None

    def kill(self, sig="TERM", all=False):
        """Signal init (all: every process of its cgroup). Done here, not by `mrunc kill`: it is
        one kill(2) (or a write to cgroup.kill), nothing forks."""
        from .. import api
        try:
            api.kill(self.name, sig, self.sandbox.root, all=all)
        except MruncError as e:
            raise SandboxError(str(e)) from None

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL after `timeout` seconds (PID 1 ignores signals it has no handler for)."""
        if self.status in ("stopped", "deleted", "creating"):
            return self.exit_code
        try:
            self.kill("TERM", all=True)
        except SandboxError:
            pass
        deadline = time.monotonic() + timeout
        while self.status not in ("stopped", "deleted") and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.status not in ("stopped", "deleted"):
            self.kill("KILL", all=True)
        return self.wait(timeout)

    def exec(self, command, *, user=None, cwd=None, env=None, timeout=60):
        """Run `command` (a shell string or an argv list) in the running container (`mrunc exec`):
        -> CompletedProcess with .returncode, .stdout, .stderr."""
        argv = ["sh", "-c", command] if isinstance(command, str) else [str(a) for a in command]
        flags = []
        if user is not None:
            u = parse_user(user, self.rootfs)
            flags += ["--user", f"{u['uid']}:{u['gid']}"]
        if cwd:
            flags += ["--cwd", cwd]
        for k, v in (env or {}).items():
            flags += ["--env", f"{k}={v}"]
        return self.sandbox.cli("exec", *flags, self.name, *argv, timeout=timeout, check=False)

    def delete(self, force=True):
        """Kill it if needed, delete it, unmount and remove its directory."""
        if self.deleted:
            return
        if self.session is not None and not self.session.done:
            self.session.abort()        # it deletes us when the runtime has undone its work
            return
        if self.shim is not None and self.shim.poll() is None:
            # Kill init, and the shim (`mrunc run --keep`) returns; we delete below. A shim still
            # creating has no state to kill by yet: wait for it (signalling the shim itself then
            # would leave init behind; a stepping one is ended by its session instead).
            deadline = time.monotonic() + 10
            state = os.path.join(self.sandbox.root, self.name, "state.json")
            while not os.path.exists(state) and self.shim.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            try:
                self.kill("KILL", all=True)
            except SandboxError:
                pass
            try:
                self.shim.wait(10)
            except subprocess.TimeoutExpired:
                self.shim.kill()
                self.shim.wait()
        self._delete_state(force)
        self.exit_code                  # noqa: B018 — keep the status we knew
        self._cleanup()

    def _delete_state(self, force=True):
        """`mrunc delete`, done here (~2 ms instead of ~50 for a new interpreter): for a stopped
        container it only removes files — the state dir and the cgroup directories; for a live one
        (force) it kills first. Nothing forks (no poststop hooks in the configs we write)."""
        from .. import api
        if not os.path.isdir(os.path.join(self.sandbox.root, self.name)):
            return
        try:
            api.delete(self.name, self.sandbox.root, force=force, warn=lambda m: None)
        except MruncError as e:
            # no state.json: a create that failed or was aborted; the runtime cleans up after it
            if os.path.exists(os.path.join(self.sandbox.root, self.name, "state.json")):
                raise SandboxError(str(e)) from None

    def _delete_stopped(self):
        """The shim has exited: delete the container; unmounting the overlay is left to a thread
        (the cell is done before it is)."""
        try:
            self._delete_state()
        except SandboxError:
            pass
        self._cleanup(later=True)

    def _cleanup(self, later=False):
        if self.bundle:
            if later:
                t = threading.Thread(target=remove_bundle_dir, args=(self.bundle,), daemon=True,
                                     name=f"mrunc-cleanup-{self.name}")
                t.start()
                self.sandbox._cleaners.append(t)
            else:
                remove_bundle_dir(self.bundle)
        self.deleted = True
        if self.network and self.sandbox._networks is not None:
            self.sandbox._networks.leave(self)
        if self.sandbox.containers.get(self.name) is self:
            del self.sandbox.containers[self.name]

