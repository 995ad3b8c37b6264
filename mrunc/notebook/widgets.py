"""Widgets: state and callbacks only; every picture is drawn by render.py or charts.py.

  Stepper        Next / Run to end / Abort over a StepSession: after each phase, the runtime's
                 report, the snapshot of the paused init and the code that ran (module:function,
                 docstring, source), drawn by render.page.
  Monitor        polls a container's cgroup on a thread and draws memory, CPU and pids against
                 their limits; an OOM kill is marked the moment the kernel's counter moves.
  ContainerList  the sandbox's containers, with Inspect / Stop / Remove.

Each is an ipywidgets box whose buttons call plain methods (next(), poll(), refresh()…), so the
models are tested by clicking: `Button.click()` runs the handlers without a kernel or a browser.
Nothing here forks: the session and the sandbox drive `mrunc` processes, and the monitor's thread
only reads cgroup files.
"""
from __future__ import annotations

import html
import time

import ipywidgets as w

from mrunc.notebook import charts, render
from mrunc.notebook.export import StaticView
from mrunc.notebook.refresh import Refreshing
from mrunc.phases import NAMES as PHASES
from mrunc.sandbox import describe_exit
from mrunc.snapshot import human_bytes

__all__ = ["Stepper", "Monitor", "ContainerList"]


def _e(v):
    return html.escape("" if v is None else str(v), quote=True)


def _status(text, kind="", phase=None):
    """One status line; class mrunc-status (and data-phase) for tests and the browser."""
    colour = {"bad": "var(--jp-error-color1,#cf222e)",
              "ok": "var(--jp-success-color1,#1a7f37)"}.get(kind, "inherit")
    data = f' data-phase="{_e(phase)}"' if phase else ""
    return (f'<span class="mrunc-status mrunc-{kind or "info"}"{data} style="color:{colour}">'
            f'{text}</span>')


class Stepper(StaticView, w.VBox):
    """A container made one phase at a time, each phase's changes drawn as it pauses."""

    def __init__(self, session, **kw):
        self.session = session
        self.next_button = w.Button(description="Next", button_style="primary", icon="step-forward",
                                    tooltip="let the runtime run the next phase")
        self.run_button = w.Button(description="Run to end", icon="fast-forward",
                                   tooltip="every remaining phase, then start the program")
        self.abort_button = w.Button(description="Abort", button_style="danger", icon="stop",
                                     tooltip="the runtime undoes everything and exits")
        for b, fn in ((self.next_button, self.next), (self.run_button, self.run_to_end),
                      (self.abort_button, self.abort)):
            b.on_click(lambda _b, fn=fn: fn())
            b.add_class("mrunc-" + b.description.lower().replace(" ", "-"))
        self.status = w.HTML()
        self.panel = w.HTML()
        self.panel.add_class("mrunc-panel")
        self.error = None
        bar = w.HBox([self.next_button, self.run_button, self.abort_button, self.status],
                     layout=w.Layout(align_items="center", flex_flow="row wrap"))
        super().__init__([bar, self.panel], **kw)
        self.add_class("mrunc-stepper")
        self._draw()

    # -- actions (the buttons' callbacks) --
    def next(self):
        if self.session.done:
            self._draw()        # ended elsewhere (lab.close() aborts it): say so, not a dead button
            return None
        self._busy(True)
        try:
            step = self.session.next()
        except Exception as e:  # noqa: BLE001 — show it, do not lose the widget
            self.error = str(e)
            step = None
        finally:
            self._busy(False)
        self._draw()
        return step

    def run_to_end(self):
        steps = []
        while not self.session.done and self.error is None:
            step = self.next()
            if step is None:
                break
            steps.append(step)
        return steps

    def abort(self):
        try:
            self.session.abort()
        except Exception as e:  # noqa: BLE001
            self.error = str(e)
        self._draw()

    # -- on paper (mrunc.notebook.export) --
    def static_html(self) -> str:
        """Every phase walked so far, each with what it changed: a filmstrip."""
        s = self.session
        strip = render.filmstrip(s.steps, getattr(s, "phases", PHASES), title=f"container {s.name}")
        return strip + (f'<div class="mrunc">{_status(f"✗ {_e(self.error)}", "bad")}</div>'
                        if self.error is not None else "")

    def export_finish(self):
        """An export shows the whole walk: the phases nobody pressed Next for run now."""
        self.run_to_end()

    # -- drawing --
    def _busy(self, on):
        for b in (self.next_button, self.run_button, self.abort_button):
            b.disabled = on or self.session.done
        if on:
            up = self.session.upcoming
            self.status.value = _status(f"running <b>{_e(up)}</b>…", phase=up)

    def _draw(self):
        s = self.session
        steps = list(s.steps)
        last = steps[-1] if steps else None
        done = s.done or self.error is not None
        for b in (self.next_button, self.run_button, self.abort_button):
            b.disabled = done
        times = {st.phase: st.ms for st in steps if not st.error}
        phases = getattr(s, "phases", PHASES)   # with a lab network: … security, network, exec
        prev = next((st.snapshot for st in reversed(steps[:-1]) if st.snapshot is not None), None)
        if self.error is not None:
            self.status.value = _status(f"✗ {_e(self.error)}", "bad")
            self.panel.value = render.phase_list(phases, None, failed=s.upcoming, times=times)
        elif last is None and s.done:
            self.status.value = _status(f"✗ container <code>{_e(s.name)}</code> was never made: its "
                                        f"session ended first ({_e(getattr(s, 'error', None))}; "
                                        f"lab.close() ends every session)", "bad")
            self.panel.value = render.phase_list(phases, None, times={})
        elif last is None:
            first = phases[0]
            self.status.value = _status(f"container <code>{_e(s.name)}</code> not started yet: "
                                        f"<b>Next</b> runs <b>{first}</b> "
                                        f"({_e(render.PHASE_TEXT[first])})", phase="")
            self.panel.value = render.phase_list(phases, None, times={})
        elif last.error:
            self.status.value = _status(f"✗ phase <b>{_e(last.phase)}</b> failed: {_e(last.error)}",
                                        "bad", last.phase)
            before = next((st.snapshot for st in reversed(steps[:-1]) if st.snapshot is not None), None)
            self.panel.value = (render.page(before, None, last.event, failed=last.phase, error=last.error,
                                            times=times, phases=phases) if before is not None else
                                render.phase_list(phases, None, failed=last.phase, times=times))
        else:
            if s.done and getattr(s, "error", None):     # aborted between two phases
                self.status.value = _status(f"✗ aborted after <b>{_e(last.phase)}</b>: the runtime "
                                            f"undid what it had done ({_e(s.error)})", "bad", last.phase)
            elif s.done:
                text = (f"done: <code>{_e(s.name)}</code> runs its program "
                        f"(exec {last.ms:.1f} ms)" if last.snapshot is not None else
                        f"done: the program already ended ({_e(_exit_text(s))})")
                self.status.value = _status(text, "ok", last.phase)
            else:
                self.status.value = _status(
                    f"paused after <b>{_e(last.phase)}</b> · {last.ms:.1f} ms · {len(last.calls)} "
                    f"calls — <b>Next</b> runs <b>{_e(s.upcoming)}</b>", phase=last.phase)
            if last.snapshot is not None:
                self.panel.value = render.page(last.snapshot, last.diff, last.event, times=times, prev=prev,
                                               phases=phases)
            else:
                self.panel.value = render.phase_list(phases, last.phase, times=times) + \
                    render.syscall_list(last.calls) + render.phase_code(last.phase)
        if done:
            # The walk is over (or failed): the saved notebook shows the whole filmstrip. Not
            # after each phase: JupyterLab re-creates the live view on every update, and a
            # click on Next landing on the old one would be lost.
            self.redraw_static()


def _exit_text(session):
    c = getattr(session, "container", None)
    code = c.exit_code if c is not None else None
    return describe_exit(code) if code is not None else "exit status not known yet"


class Monitor(StaticView, Refreshing, w.VBox):
    """Memory, CPU and pids of a running container, polled every `interval` seconds.

    `container` needs .name, .stats() (mrunc.cgroups stats, or None), .status, .exit_code and
    .config. The thread stops by itself once the container has stopped (after one last look, so
    an OOM kill that ended it is shown), or with stop().
    """

    def __init__(self, container, interval=0.25, autostart=True, max_samples=2400, **kw):
        self.container, self.interval, self.max_samples = container, interval, max_samples
        self.samples, self.events = [], []
        self.finished = False
        self._t0 = None
        self._cpu = None                # (monotonic, usage_usec) of the last sample
        self._ooms = 0
        self._init_refresh()
        self.limits = {"memory_limit": None, "pids_limit": None, "cpu_limit": _cpu_limit(container)}
        self.chart = w.HTML()
        self.chart.add_class("mrunc-monitor")
        self.stop_button = w.Button(description="Stop monitoring", icon="pause")
        self.stop_button.on_click(lambda _b: self.stop())
        super().__init__([self.chart, self.stop_button], **kw)
        self._draw()
        if autostart:
            self.start()

    # -- sampling --
    def poll(self):
        """Take one sample now; returns it (None when there is no cgroup to read yet)."""
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        t = now - self._t0
        st = self.container.stats()
        status = self.container.status
        sample = None
        if st is not None:
            mem, pids = st.get("memory") or {}, st.get("pids") or {}
            usage = (st.get("cpu") or {}).get("usage_usec")
            rate = None
            if usage is not None and self._cpu is not None and now > self._cpu[0]:
                rate = max(0.0, (usage - self._cpu[1]) / 1e6 / (now - self._cpu[0]))
            if usage is not None:
                self._cpu = (now, usage)
            sample = {"t": t, "memory": mem.get("current"), "cpu": rate, "pids": pids.get("current"),
                      "peak": mem.get("peak"), "oom_kills": mem.get("oom_kills") or 0}
            self.limits["memory_limit"] = mem.get("limit")
            self.limits["pids_limit"] = pids.get("limit")
            if sample["oom_kills"] > self._ooms:
                n = sample["oom_kills"] - self._ooms
                self._ooms = sample["oom_kills"]
                at = human_bytes(sample["peak"] or sample["memory"])
                self.events.append((t, "oom", f"the kernel killed {n} process{'es' if n > 1 else ''} "
                                    f"of the container: memory reached {at}, its limit is "
                                    f"{human_bytes(mem.get('limit'))}"))
            self.samples.append(sample)
            del self.samples[:-self.max_samples]
        if status in ("stopped", "deleted") and (st is not None or self.samples or t > 5):
            if not self.finished:
                # init is gone; its parent (the shim) returns its status a moment later
                wait = getattr(self.container, "wait", None)
                code = wait(2) if wait is not None else self.container.exit_code
                self.events.append((t, "exit", f"the container stopped: {describe_exit(code)}"
                                    if code is not None else "the container stopped"))
            self.finished = True
        self._draw()
        return sample

    def start(self):
        self._start_refresh(f"monitor-{self.container.name}")

    def _loop(self):
        while not self._stop.is_set() and not self.finished:
            try:
                self.poll()
            except Exception as e:  # noqa: BLE001 — a monitor must not die silently
                self.events.append((self.samples[-1]["t"] if self.samples else 0.0, "error", str(e)))
                self._draw()
                return
            self._stop.wait(self.interval)

    def stop(self):
        self._stop_refresh()
        self.stop_button.disabled = True
        self._draw()

    def wait(self, timeout=None):
        """Until the container stops (and its last sample is drawn); True if it did."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished

    @property
    def oom_kills(self):
        return self._ooms

    def summary(self) -> str:
        """The events in words (what a test or a notebook prints)."""
        lines = [text for _t, _k, text in self.events]
        if self.samples:
            peak = max((s["peak"] or s["memory"] or 0) for s in self.samples)
            lines.insert(0, f"{len(self.samples)} samples; peak memory {human_bytes(peak)} of "
                            f"{human_bytes(self.limits['memory_limit'])}")
        return "\n".join(lines) or "no samples yet"

    def static_html(self) -> str:
        """The chart of the samples so far (OOM kills marked): what the widget shows now."""
        status = "stopped" if self.finished else ("monitoring" if not self._stop.is_set() else "paused")
        if any(k == "oom" for _t, k, _x in self.events):
            status += " · OOM killed"
        return charts.usage_chart(self.samples, self.events, name=self.container.name,
                                  status=status, **self.limits)

    def _draw(self):
        self.chart.value = self.static_html()
        if self.finished or self._stop.is_set():
            self.redraw_static()    # the end of the watch, not every sample
        if self.finished:
            self.stop_button.disabled = True


def _cpu_limit(container):
    linux = (getattr(container, "config", None) or {}).get("linux") or {}
    cpu = (linux.get("resources") or {}).get("cpu") or {}
    if cpu.get("quota") and cpu.get("period"):
        return cpu["quota"] / cpu["period"]
    return None


class ContainerList(StaticView, w.VBox):
    """The sandbox's containers; pick one to inspect (a snapshot drawn by render.page), stop or
    remove."""

    def __init__(self, sandbox, **kw):
        self.sandbox = sandbox
        self.table = w.HTML()
        self.choice = w.Dropdown(description="container", options=[])
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.inspect_button = w.Button(description="Inspect", icon="search")
        self.stop_button = w.Button(description="Stop", icon="stop")
        self.remove_button = w.Button(description="Remove", button_style="danger", icon="trash")
        self.detail = w.HTML()
        self.message = w.HTML()
        for b, fn in ((self.refresh_button, self.refresh), (self.inspect_button, self.inspect),
                      (self.stop_button, self.stop), (self.remove_button, self.remove)):
            b.on_click(lambda _b, fn=fn: fn())
        bar = w.HBox([self.refresh_button, self.choice, self.inspect_button, self.stop_button,
                      self.remove_button], layout=w.Layout(flex_flow="row wrap"))
        super().__init__([self.table, bar, self.message, self.detail], **kw)
        self.add_class("mrunc-container-list")
        self.refresh()

    def static_html(self) -> str:
        """The table as last refreshed, and the snapshot last inspected."""
        return self.table.value + self.detail.value

    def refresh(self):
        rows = self.sandbox.ps()
        self.table.value = charts.container_table(rows)
        names = [r["name"] for r in rows]
        keep = self.choice.value if self.choice.value in names else (names[0] if names else None)
        self.choice.options = names
        self.choice.value = keep
        return rows

    def _act(self, fn, done):
        name = self.choice.value
        if not name:
            self.message.value = _status("no container selected", "bad")
            return
        try:
            fn(name)
            self.message.value = _status(done.format(name=_e(name)), "ok")
        except Exception as e:  # noqa: BLE001
            self.message.value = _status(f"✗ {_e(e)}", "bad")
        self.refresh()

    def inspect(self):
        def show(name):
            snap = self.sandbox.get(name).snapshot()
            self.detail.value = (render.page(snap) if snap is not None else
                                 _status(f"{_e(name)} is not running: nothing to look at"))
        self._act(show, "snapshot of <code>{name}</code>")

    def stop(self):
        self._act(lambda n: self.sandbox.get(n).stop(), "<code>{name}</code> stopped")

    def remove(self):
        def rm(name):
            self.sandbox.remove(name)
            self.detail.value = ""
        self._act(rm, "<code>{name}</code> removed")
