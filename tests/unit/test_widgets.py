"""Widget models, driven by clicking their buttons (Button.click() runs the handlers, no kernel):
the Stepper over a fake session replaying frozen snapshots (tests/unit/data/phases.json), the
Monitor over a fake container whose cgroup fills up and is OOM-killed, the ContainerList over a
fake sandbox; and the monitor's chart."""
import json
import threading
from pathlib import Path


from mrunc import snapshot as S
from mrunc.notebook import charts
from mrunc.notebook.widgets import ContainerList, Monitor, Stepper
from mrunc.sandbox import PHASES, Step

DATA = json.loads((Path(__file__).parent / "data" / "phases.json").read_text())


def frozen(name):
    return S.Snapshot.from_dict(DATA["snapshots"][name])


class FakeSession:
    """StepSession's surface, replaying the captured run; fail_at makes that phase fail."""

    def __init__(self, fail_at=None, raise_at=None):
        self.steps, self.done, self.error = [], False, None
        self.fail_at, self.raise_at = fail_at, raise_at
        self.name = "lab-fake"
        self.answers = []

    @property
    def upcoming(self):
        return None if self.done else PHASES[len(self.steps)]

    @property
    def times(self):
        return {s.phase: s.ms for s in self.steps}

    def next(self):
        if self.done:
            return None
        phase = self.upcoming
        if phase == self.raise_at:
            raise RuntimeError("the runtime vanished")
        if self.steps:
            self.answers.append("continue")
        if phase == self.fail_at:
            step = Step(phase, error=f"{phase}: mount /nope: no such file or directory")
            self.error, self.done = step.error, True
            self.steps.append(step)
            return step
        ev = DATA["events"].get(phase, {"phase": "exec", "ms": 3.0, "calls": [["execve", "sh"]]})
        snap = frozen("host" if phase == "spec" else phase)
        prev = self.steps[-1].snapshot if self.steps else None
        step = Step(phase, ev["ms"], ev["calls"], ev.get("pid"), snap,
                    S.diff(prev, snap) if prev is not None else None)
        self.steps.append(step)
        self.done = phase == "exec"
        return step

    def abort(self):
        self.answers.append("abort")
        self.done, self.error = True, "aborted"


def status_phase(stepper):
    v = stepper.status.value
    return v.split('data-phase="')[1].split('"')[0] if 'data-phase="' in v else None


# ---- Stepper --------------------------------------------------------------------------------------

def test_stepper_before_the_first_phase():
    st = Stepper(FakeSession())
    assert "Next" in st.status.value and "spec" in st.status.value
    assert 'class="mr-phases"' in st.panel.value
    assert not st.next_button.disabled and not st.abort_button.disabled


EXPECT = {    # what each phase's panel must say it changed
    "clone": "namespace is now isolated",
    "mount": "mounts added",
    "pivot_root": "root switched (pivot_root)",
    "cgroup": "memory limit set",
    "security": "capabilities",
    "exec": "exec&#x27;d a new program",
}


def test_click_next_through_every_phase():
    session = FakeSession()
    st = Stepper(session)
    for i, phase in enumerate(PHASES):
        st.next_button.click()
        assert [s.phase for s in session.steps] == list(PHASES[:i + 1])
        assert status_phase(st) == phase
        panel = st.panel.value
        assert f"After <code>{phase}</code>" in panel
        # the phase bar: this one current, the ones before done
        assert panel.count('class="mr-done"') == i
        assert '<li class="mr-now" title=' in panel
        if phase in EXPECT:
            assert EXPECT[phase] in panel, phase
        from mrunc import phases
        assert f"<b>{phases.get(phase).function}</b>" in panel   # the code that just ran
        if phase != "exec":
            assert f"{len(session.steps[-1].calls)} calls" in st.status.value
            assert not st.next_button.disabled
    assert "done" in st.status.value
    assert st.next_button.disabled and st.run_button.disabled and st.abort_button.disabled
    st.next_button.click()                        # disabled in a browser; harmless here
    assert len(session.steps) == len(PHASES)
    assert session.answers == ["continue"] * (len(PHASES) - 1)


def test_pivot_root_is_unmistakable():
    st = Stepper(FakeSession())
    for _ in range(PHASES.index("pivot_root") + 1):
        st.next_button.click()
    assert "mr-banner" in st.panel.value and "root switched" in st.panel.value


def test_run_to_end():
    session = FakeSession()
    st = Stepper(session)
    st.next_button.click()
    st.run_button.click()
    assert session.done and [s.phase for s in session.steps] == list(PHASES)
    assert "After <code>exec</code>" in st.panel.value


def test_abort():
    session = FakeSession()
    st = Stepper(session)
    st.next_button.click()
    st.next_button.click()
    st.abort_button.click()
    assert session.answers[-1] == "abort"
    assert st.next_button.disabled and st.abort_button.disabled
    assert "aborted after <b>clone</b>" in st.status.value and "runs its program" not in st.status.value


def test_next_after_the_lab_closed_says_so():
    """Run All then Next: the last cell's lab.close() aborted the session before its first phase;
    the click must not look dead."""
    session = FakeSession()
    st = Stepper(session)
    session.abort()                         # what lab.close() does to an unwalked session
    st.next_button.click()
    assert session.steps == [] and st.next_button.disabled
    assert "mrunc-bad" in st.status.value and "was never made" in st.status.value
    assert "aborted" in st.status.value


def test_failed_phase_is_red_with_the_error():
    session = FakeSession(fail_at="cgroup")
    st = Stepper(session)
    st.run_button.click()
    assert [s.phase for s in session.steps] == ["spec", "clone", "mount", "pivot_root", "cgroup"]
    assert "mrunc-bad" in st.status.value and "cgroup" in st.status.value
    assert "mount /nope: no such file or directory" in st.status.value
    panel = st.panel.value
    assert 'class="mr-failed"' in panel and "Phase <code>cgroup</code> failed" in panel
    assert panel.count('class="mr-done"') == 4
    assert st.next_button.disabled


def test_an_exception_is_shown_not_raised():
    st = Stepper(FakeSession(raise_at="mount"))
    st.run_button.click()
    assert "the runtime vanished" in st.status.value and "mrunc-bad" in st.status.value
    assert st.next_button.disabled


# ---- Monitor --------------------------------------------------------------------------------------

MiB = 1 << 20


class FakeContainer:
    """A container whose memory grows 8 MiB a look until the 32 MiB limit, then is OOM-killed."""

    name = "lab-oom"
    config = {"linux": {"resources": {"memory": {"limit": 32 * MiB}, "cpu": {"quota": 50000, "period": 100000}}}}

    def __init__(self):
        self.looks = 0
        self.status, self.exit_code = "running", None

    def stats(self):
        self.looks += 1
        mem = min(self.looks * 8 * MiB, 32 * MiB)
        oom = 1 if self.looks >= 5 else 0
        if oom:
            self.status, self.exit_code, mem = "stopped", 137, 0
        return {"memory": {"current": mem, "peak": min(self.looks * 8, 32) * MiB, "limit": 32 * MiB,
                           "oom_kills": oom},
                "cpu": {"usage_usec": self.looks * 100_000}, "pids": {"current": 2, "limit": 20}}


def test_monitor_sees_the_oom_kill():
    c = FakeContainer()
    m = Monitor(c, autostart=False)
    for _ in range(4):
        m.poll()
    assert not m.events and "OOM" not in m.chart.value
    assert m.samples[-1]["memory"] == 32 * MiB
    assert "100%" in m.chart.value                 # memory at its limit
    m.poll()
    kinds = [k for _t, k, _x in m.events]
    assert kinds == ["oom", "exit"] and m.oom_kills == 1 and m.finished
    assert "OOM killed" in m.chart.value and "mr-oom" in m.chart.value
    summary = m.summary()
    assert "peak memory 32.0 MiB of 32.0 MiB" in summary
    assert "memory reached 32.0 MiB, its limit is 32.0 MiB" in summary
    assert "killed by the kernel's OOM killer" not in summary      # exit alone doesn't know
    assert "killed by SIGKILL (status 137)" in summary
    assert m.stop_button.disabled


def test_monitor_thread_stops_by_itself():
    m = Monitor(FakeContainer(), interval=0.01)
    assert m.wait(5) and m.finished
    assert not m._thread.is_alive()
    assert len(m.samples) == 5


def test_monitor_cpu_rate_and_limits():
    m = Monitor(FakeContainer(), autostart=False)
    m.poll()
    m.poll()
    assert m.samples[0]["cpu"] is None and m.samples[1]["cpu"] > 0
    assert m.limits == {"memory_limit": 32 * MiB, "pids_limit": 20, "cpu_limit": 0.5}


def test_monitor_stop_button():
    ev = threading.Event()

    class Slow(FakeContainer):
        def stats(self):
            ev.set()
            return {"memory": {"current": MiB, "limit": None}, "cpu": {}, "pids": {}}
    m = Monitor(Slow(), interval=0.01)
    assert ev.wait(5)
    m.stop_button.click()
    assert not m._thread.is_alive() and not m.finished


def test_monitor_before_the_cgroup_exists():
    class Early(FakeContainer):
        def stats(self):
            return None
    m = Monitor(Early(), autostart=False)
    assert m.poll() is None and not m.samples and not m.finished


# ---- chart ----------------------------------------------------------------------------------------

def test_chart():
    samples = [{"t": t / 4, "memory": t * 4 * MiB, "cpu": 0.2, "pids": 1} for t in range(8)]
    html = charts.usage_chart(samples, [(1.75, "oom", "killed"), (1.8, "exit", "stopped")], name="c1",
                              memory_limit=32 * MiB, pids_limit=10, cpu_limit=None)
    assert html.count("<svg") == 1 and html.count("</svg>") == 1
    assert html.count('class="mr-limit"') == 2            # memory and pids; cpu unlimited
    assert html.count('class="mr-oom"') == 3                # a red line across each panel
    assert "OOM killed at 1.8 s: killed" in html and "1.8 s: stopped" in html
    assert "28.0 MiB" in html and "(88%)" in html
    empty = charts.usage_chart([], name="none")
    assert "<svg" in empty and "polyline" not in empty


def test_container_table_escapes():
    html = charts.container_table([{"name": "c<1>", "status": "running", "pid": 5, "memory": MiB,
                                    "limit": 2 * MiB, "exit_code": None, "command": "echo <b>"}])
    assert "c&lt;1&gt;" in html and "echo &lt;b&gt;" in html and "1.0 MiB / 2.0 MiB" in html
    assert "no containers" in charts.container_table([])


# ---- ContainerList --------------------------------------------------------------------------------

class FakeSandbox:
    def __init__(self):
        self.rows = [{"name": n, "status": "running", "pid": 10 + i, "memory": MiB, "limit": None,
                      "exit_code": None, "command": "sleep 1"} for i, n in enumerate(("a", "b"))]
        self.removed = []

    def ps(self):
        return [r for r in self.rows if r["name"] not in self.removed]

    def remove(self, name):
        self.removed.append(name)

    def get(self, name):
        sb = self

        class C:
            def snapshot(self):
                return frozen("exec")

            def stop(self):
                sb.rows[0]["status"] = "stopped"
        return C()


def test_container_list():
    sb = FakeSandbox()
    cl = ContainerList(sb)
    assert list(cl.choice.options) == ["a", "b"] and cl.choice.value == "a"
    assert "<code>a</code>" in cl.table.value
    cl.inspect_button.click()
    assert "Container" in cl.detail.value and "namespaces" in cl.detail.value.lower()
    cl.stop_button.click()
    assert "stopped" in cl.table.value
    cl.choice.value = "b"
    cl.remove_button.click()
    assert sb.removed == ["b"] and list(cl.choice.options) == ["a"]
    assert "removed" in cl.message.value
