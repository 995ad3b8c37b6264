"""Stepping: a container made one phase at a time, the paused init looked at between two phases."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field

from .. import phases as _phases, record
from .errors import cli_error


@dataclass
class Step:
    """One phase the runtime ran while we watched (see StepSession)."""
    phase: str
    ms: float = 0.0
    calls: list = field(default_factory=list)  # mrunc.record.CallRecord: [name, *args] + who, ms…
    pid: int | None = None
    snapshot: object = None             # mrunc.snapshot.Snapshot
    diff: object = None                 # mrunc.snapshot.Diff vs the previous step's snapshot
    error: str | None = None            # the runtime's message when the phase failed
    network: dict | None = None         # the network step: {"container": view, "lab": view}

    @property
    def event(self) -> dict:
        """The runtime's report, as render.page takes it."""
        ev = {"phase": self.phase, "ms": self.ms, "calls": self.calls, "pid": self.pid}
        if self.network:
            ev["network"] = self.network
        return ev

    def summary(self) -> list[str]:
        return self.diff.summary() if self.diff is not None else []



class StepSession:
    """Make a container one phase at a time: each next() lets the runtime run exactly one phase,
    then looks at the paused init and returns a Step (phase, ms, calls, snapshot, diff).

    The runtime is `mrunc run --keep --step-fd N`. The first next() starts it (it runs `spec` and
    pauses); each later one answers "continue". After `security`, "continue" lets create finish and
    `run` start the container: that last step is `exec`. abort() answers "abort": the runtime undoes
    everything and exits. A failed phase comes back as a Step with `error` set.
    """

    def __init__(self, container, timeout=60.0):
        self.container, self.timeout = container, timeout
        container.session = self
        self.steps: list[Step] = []
        self.done = False
        self.error = None
        self._sock = self._chan = None
        self._waiting = False           # the runtime is paused, waiting for our answer
        self._view = None               # init's last report of itself

    def __repr__(self):
        at = self.steps[-1].phase if self.steps else "not started"
        return f"<StepSession {self.container.name}: {at}{' (done)' if self.done else ''}>"

    def __iter__(self):
        while not self.done:
            step = self.next()
            if step is None:
                break
            yield step

    @property
    def name(self):
        return self.container.name

    @property
    def current(self) -> str | None:
        return self.steps[-1].phase if self.steps else None

    @property
    def phases(self) -> tuple:
        """This container's steps: with a lab network, `network` comes between create's last
        phase and exec (the runtime wires it while init waits, as an engine's CNI does)."""
        return _phases.names(network=bool(self.container.network))

    @property
    def upcoming(self) -> str | None:
        """The phase the next next() runs."""
        if self.done:
            return None
        return self.phases[len(self.steps)] if len(self.steps) < len(self.phases) else None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def times(self) -> dict:
        return {s.phase: s.ms for s in self.steps}

    def next(self) -> Step | None:
        """Run one phase; None once the session is over."""
        if self.done:
            return None
        t0 = time.perf_counter()
        if self._sock is None:
            self._launch()
        elif self.current == self.phases[-2]:
            return self._exec(t0)
        else:
            self._answer(b"continue")
        ev = self._read_event()
        if ev is None or ev.get("event") == "error":
            return self._fail(ev)
        self._waiting = True
        # From clone on the report names init's pid (spec ran before the fork: then we look at
        # the runtime itself), and carries init's own view of itself: what a caller without root
        # cannot read from outside (mrunc.process.selfview). The runtime's own `network` step
        # has none: init, waiting for start, is as it was after security — but for its
        # interfaces, which that step changes (their up/down flags stay unknown).
        pid = ev.get("pid")
        if "view" in ev:
            self._view = ev["view"]
        elif self._view is not None:
            self._view = {k: v for k, v in self._view.items() if k != "ifflags"}
        snap = self._snapshot(pid or self.container.shim.pid, self._view if pid else None)
        step = Step(ev["phase"], ev.get("ms", 0.0), record.calls(ev.get("calls")), pid, snap,
                    self._diff(snap), network=ev.get("network"))
        self.steps.append(step)
        return step

    def run_to_end(self) -> list[Step]:
        out = []
        while not self.done:
            step = self.next()
            if step is None:
                break
            out.append(step)
        return out

    def abort(self):
        """Stop here: the runtime undoes what it did (kills init, removes the cgroup)."""
        if self.done:
            return
        if self._waiting:
            self._answer(b"abort")
        self._end()
        self.error = self.error or "aborted"
        self.container.delete(force=True)

    def close(self):
        """End the session: abort if it is half-way; the container itself stays in the sandbox."""
        if not self.done:
            self.abort()

    # -- internals --
    def _launch(self):
        ours, theirs = socket.socketpair()
        c = self.container
        try:
            c._spawn(["--step-fd", str(theirs.fileno())], pass_fds=(theirs.fileno(),))
        finally:
            theirs.close()
        self._listen(ours)

    def _listen(self, sock):
        """Our end of the step channel. Reports are read through a buffer: each is a line of
        several kB (calls, init's view of itself), which an unbuffered readline() takes one
        recv() per byte. Only we read, so nothing the buffer holds is lost; answers go straight
        to the socket."""
        sock.settimeout(self.timeout)
        self._sock, self._chan = sock, sock.makefile("rb")

    def _answer(self, word):
        self._waiting = False
        try:
            self._sock.sendall(word + b"\n")
        except OSError:
            pass

    def _read_event(self):
        try:
            line = self._chan.readline()
        except (OSError, socket.timeout):
            line = b""
        if not line:
            return None
        return json.loads(line)

    def _snapshot(self, pid, view=None):
        from .. import snapshot
        try:
            return snapshot.take(pid, view=view)
        except Exception:  # noqa: BLE001 — a stepper must show what it can
            return None

    def _diff(self, snap):
        from .. import snapshot
        prev = self.steps[-1].snapshot if self.steps else None
        if prev is None or snap is None:
            return None
        return snapshot.diff(prev, snap)

    def _exec(self, t0):
        """The last step: `continue` lets create finish; `run` then starts the container, init
        execve()s the program, and the runtime reports the exec phase (init's calls and its own)
        once it has seen the execve work. It does not wait for an answer."""
        pid = self.steps[-1].pid
        self._answer(b"continue")
        ev = self._read_event() or {}
        if ev.get("event") != "phase-done":
            ev = {}     # the runtime failed or exited first: the error is found below
        deadline = time.monotonic() + self.timeout
        while ev and time.monotonic() < deadline and not _has_cmdline(pid):
            time.sleep(0.001)   # execve renames the process a moment before its argv is in place
        ms = ev.get("ms") or round((time.perf_counter() - t0) * 1000, 3)
        snap = self._snapshot(pid) if _comm(pid) is not None else None
        step = Step("exec", ms, record.calls(ev.get("calls")), pid, snap, self._diff(snap))
        if snap is None:
            code = self.container.wait(5)
            if code not in (None, 0) and self.container.status in ("stopped", "deleted") and \
                    not os.path.exists(os.path.join(self.container.sandbox.root, self.container.name)):
                step.error = cli_error(self.container.logs(), f"exit status {code}")
                self.error = step.error
        self.steps.append(step)
        self._end()
        return step

    def _fail(self, ev):
        c = self.container
        try:
            c.shim.wait(10)
        except subprocess.TimeoutExpired:
            pass
        phase = (ev or {}).get("phase") or self.upcoming or "spec"
        msg = (ev or {}).get("message") or cli_error(c.logs(), "the runtime exited")
        step = Step(phase, calls=record.calls((ev or {}).get("calls")), error=msg)
        self.error = msg
        self.steps.append(step)
        self._end()
        c.delete(force=True)
        return step

    def _end(self):
        self.done = True
        self._waiting = False
        if self._sock is not None:
            self._chan.close()
            self._sock.close()


def _has_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return bool(f.read(1))
    except OSError:
        return True  # gone: nothing more to wait for


def _comm(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    if data[data.rindex(b")") + 2:][:1] in (b"Z", b"X"):
        return None
    return data[data.index(b"(") + 1:data.rindex(b")")].decode(errors="replace")

