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
