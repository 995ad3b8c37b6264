"""Foreground runs: a container's output read as it comes (from pipes, or by tailing its log), and
how it ended (RunResult, describe_exit)."""
from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass

FOREVER = "2147483647"                  # seconds; busybox sleep has no "infinity"


@dataclass
class RunResult:
    """What a foreground run left: its exit status, its output, and its cgroup's last numbers."""
    name: str
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    ms: float = 0.0
    oom_killed: bool = False
    memory_peak: int | None = None
    memory_limit: int | None = None

    @property
    def ok(self):
        return self.exit_code == 0

    def describe(self) -> str:
        """One line about how it ended, for a non-zero status."""
        return describe_exit(self.exit_code, self.oom_killed, self.memory_limit, self.memory_peak)


def describe_exit(code, oom_killed=False, limit=None, peak=None):
    if code is None:
        return "still running"
    if code == 0:
        return "exited with status 0"
    if oom_killed:
        from ..snapshot import human_bytes
        return (f"killed by the kernel's OOM killer (status {code}): the cgroup's memory limit is "
                f"{human_bytes(limit)}" + (f", peak usage {human_bytes(peak)}" if peak else ""))
    if code > 128 and code - 128 < 65:
        try:
            sig = signal.Signals(code - 128).name
        except ValueError:
            sig = f"signal {code - 128}"
        return f"killed by {sig} (status {code})"
    return f"exited with status {code}"



class Run:
    """A foreground run (`mrunc run`) whose output is read as it comes: iterate for
    (stream, text) pairs; `.result` (a RunResult) once the iteration is over."""

    def __init__(self, container, trace=False, keep=False):
        self.container, self.keep = container, keep
        self.result = None
        self.watch = None               # its mrunc.watch.Watch, from stream(watch=True)
        self._t0 = time.perf_counter()
        c = container
        if keep:
            # After the script, its status is printed between two \x1e marks with a random
            # token, and the container sleeps on: we read the log up to the mark, and return.
            self._token = secrets.token_hex(8)
            args = c.config["process"]["args"]
            script = args[2] if args[:2] == ["sh", "-c"] and len(args) == 3 else shlex.join(args)
            c.config["process"]["args"] = [
                "sh", "-c", f'sh -c "$1"; printf "\\036{self._token} %d\\036" $?; exec sleep {FOREVER}',
                "sh", script]
            with open(os.path.join(c.bundle, "config.json"), "w") as f:
                json.dump(c.config, f)
            c._spawn(["--trace"] if trace else [])
            self.proc = None
        else:
            self.proc = c._popen(["run", "--keep", *c._network_flags(), *c._create_flags(),
                                  *(["--trace"] if trace else []),
                                  "--bundle", c.bundle, c.name], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)

    def __iter__(self):
        if self.container.skipped:
            yield "stderr", f"mrunc: {self.container.skipped}\n"
        try:
            yield from (self._follow_log() if self.keep else self._read_pipes())
        except BaseException:           # interrupted (Ctrl-C in the notebook): take it down
            self.container.delete(force=True)
            raise

    def _read_pipes(self):
        import codecs
        import selectors
        p = self.proc
        sel = selectors.DefaultSelector()
        dec = {}
        for f, name in ((p.stdout, "stdout"), (p.stderr, "stderr")):
            sel.register(f, selectors.EVENT_READ, name)
            dec[name] = codecs.getincrementaldecoder("utf-8")("replace")
        out = {"stdout": [], "stderr": []}
        while sel.get_map():
            for key, _ in sel.select():
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    continue
                text = dec[key.data].decode(data)
                if text:
                    out[key.data].append(text)
                    yield key.data, text
        sel.close()
        p.stdout.close()
        p.stderr.close()
        code = p.wait()
        self.container._exit = code
        self._finish(code, "".join(out["stdout"]), "".join(out["stderr"]), delete=True)

    def _follow_log(self):
        """keep=True: tail the log until the script's status mark; the mark is not shown."""
        c, pos, pending, chunks = self.container, 0, "", []
        mark = f"\x1e{self._token} "
        dec = __import__("codecs").getincrementaldecoder("utf-8")("replace")
        code = None
        while code is None:
            data = self._tail(pos)
            pos += len(data)
            pending += dec.decode(data)
            i = pending.find(mark)
            if i >= 0 and "\x1e" in pending[i + len(mark):]:
                end = pending.index("\x1e", i + len(mark))
                code = int(pending[i + len(mark):end])
                text, pending = pending[:i], ""
            else:
                # hold back what could be the start of the mark
                keep = next((k for k in range(min(len(mark), len(pending)), 0, -1)
                             if mark.startswith(pending[-k:])), 0)
                if i >= 0:
                    keep = len(pending) - i
                text, pending = pending[:len(pending) - keep], pending[len(pending) - keep:]
            if text:
                chunks.append(text)
                yield "stdout", text
            if code is None:
                if c.shim.poll() is not None and not self._tail(pos):
                    code = c.shim.returncode or 1   # create failed: the log said why
                    if pending:
                        chunks.append(pending)
                        yield "stdout", pending
                else:
                    time.sleep(0.01)
        self._finish(code, "".join(chunks), "", delete=c.shim.poll() is not None)

    def _tail(self, pos):
        try:
            with open(self.container.log_path, "rb") as f:
                f.seek(pos)
                return f.read()
        except OSError:
            return b""

    def _finish(self, code, out, err, delete):
        c = self.container
        s = c.stats() or {}
        mem = s.get("memory") or {}
        self.result = RunResult(c.name, code, out, err, ms=(time.perf_counter() - self._t0) * 1000,
                                oom_killed=bool(mem.get("oom_kills")), memory_peak=mem.get("peak"),
                                memory_limit=mem.get("limit"))
        if delete:
            c._delete_stopped()

