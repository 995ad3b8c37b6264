"""config.json lit up by phase (mrunc.notebook.bundleview): the right fields light at each step."""
from mrunc import spec
from mrunc.notebook import bundleview


def test_every_phase_lights_only_its_own_fields():
    config = spec.default_config()
    html = bundleview.config_html(config, "clone")
    line = next(ln for ln in html.split("<tr") if 'data-field="linux.namespaces"' in ln)
    assert "font-weight:bold" in line and "← clone" in line
    caps = next(ln for ln in html.split("<tr") if 'data-field="process.capabilities"' in ln)
    assert "font-weight:bold" not in caps and "security" in caps


def test_earlier_phases_are_marked_done():
    html = bundleview.config_html(spec.default_config(), "security")
    line = next(ln for ln in html.split("<tr") if 'data-field="linux.namespaces"' in ln)
    assert "✓ clone" in line


def test_each_field_belongs_to_one_phase():
    seen = [f for fields in bundleview.PHASE_FIELDS.values() for f in fields]
    assert len(seen) == len(set(seen))
    assert bundleview.phase_of("linux.resources") == "cgroup"
    assert bundleview.phase_of("annotations") is None


def test_the_bundle_stepper_lights_the_phase_it_paused_after():
    from types import SimpleNamespace
    from mrunc.notebook.bundleview import BundleStepper

    class Session:                      # what the Stepper reads of a StepSession
        steps, done, error, phases, name = [], False, None, bundleview.PHASES, "t"
        container = SimpleNamespace(config=spec.default_config())
        current = None
        upcoming = "spec"

        def next(self):
            self.current = self.upcoming = "clone"
            self.steps = [SimpleNamespace(phase="clone", ms=1.0, calls=[], pid=None, snapshot=None,
                                          diff=None, error=None, event={})]
            return self.steps[-1]

    b = BundleStepper(Session())
    assert "press Next" in b.config_panel.value
    b.next_button.click()
    line = next(ln for ln in b.config_panel.value.split("<tr") if 'data-field="linux.namespaces"' in ln)
    assert "← clone" in line and "font-weight:bold" in line
