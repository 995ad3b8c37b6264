"""config.json, lit up by phase: which fields of the bundle each phase of the runtime reads.

The OCI bundle is one file of settings, but the runtime does not read it all at once: `spec`
checks every field, and then each phase acts on its own few — `clone` on linux.namespaces,
`cgroup` on linux.resources, `security` on process.capabilities… This module says which (from
what mrunc.process.init's phases read), and draws the config with the current phase's fields
highlighted and the earlier phases' ones marked done. BundleStepper puts that drawing above a
Stepper and redraws it after each phase.
"""
from __future__ import annotations

import html
import json

from mrunc.sandbox import PHASES

# phase -> the config.json fields it reads ("process.args"; a top-level key stands for all of it)
PHASE_FIELDS = {
    "spec": ("ociVersion",),            # …and every field is checked before anything is made
    "clone": ("linux.namespaces", "linux.uidMappings", "linux.gidMappings", "linux.timeOffsets"),
    "mount": ("root.path", "mounts", "linux.rootfsPropagation", "linux.devices", "process.cwd",
              "hooks.prestart", "hooks.createRuntime", "hooks.createContainer"),
    "pivot_root": ("hostname", "domainname", "linux.sysctl", "linux.maskedPaths",
                   "linux.readonlyPaths", "process.terminal"),
    "cgroup": ("linux.cgroupsPath", "linux.resources", "root.readonly"),
    "security": ("process.user", "process.capabilities", "process.noNewPrivileges",
                 "process.rlimits", "process.oomScoreAdj", "linux.seccomp", "process.scheduler",
                 "process.ioPriority", "linux.personality"),
    "network": (),
    "exec": ("process.args", "process.env", "hooks.startContainer", "hooks.poststart"),
}
_GROUPS = ("process", "root", "linux", "hooks")     # drawn one line per sub-key


def phase_of(field: str) -> str | None:
    """The phase that reads `field` ("linux.resources"), or None (only checked by spec)."""
    for phase, fields in PHASE_FIELDS.items():
        if field in fields:
            return phase
    return None


def rows(config: dict) -> list[tuple[str, object]]:
    """(field, value) of every line drawn: top-level keys, and the sub-keys of process, root,
    linux and hooks."""
    out = []
    for key, value in config.items():
        if key in _GROUPS and isinstance(value, dict):
            out += [(f"{key}.{sub}", v) for sub, v in value.items()]
        else:
            out.append((key, value))
    return out


def _short(value, n=90):
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= n else text[:n - 1] + "…"


def config_html(config: dict, phase: str | None = None, phases=PHASES) -> str:
    """The config as a table: the fields `phase` reads highlighted, those of earlier phases
    marked done, the rest plain (checked by spec only)."""
    done = set(phases[:phases.index(phase)]) if phase in phases else set()
    lines = []
    for field, value in rows(config):
        owner = phase_of(field)
        if owner == phase and phase is not None:
            style, tag = "background:var(--jp-warn-color3,#fff8c5);font-weight:bold", f"← {owner}"
        elif owner in done:
            style, tag = "color:var(--jp-ui-font-color2,#57606a)", f"✓ {owner}"
        else:
            style, tag = "", owner or ""
        lines.append(f'<tr style="{style}" data-field="{html.escape(field)}"><td><code>'
                     f'{html.escape(field)}</code></td><td style="font-family:monospace">'
                     f'{html.escape(_short(value))}</td><td>{html.escape(tag)}</td></tr>')
    title = (f"config.json — fields read by <b>{html.escape(phase)}</b> highlighted" if phase
             else "config.json — press Next: each phase lights up the fields it reads")
    return (f'<div class="mrunc-bundle"><div>{title}</div><table style="border-collapse:collapse;'
            f'font-size:12px">{"".join(lines)}</table></div>')


def _stepper():
    from mrunc.notebook.widgets import Stepper
    return Stepper


class BundleStepper(_stepper()):
    """A Stepper over `session` with its container's config.json above it, lit by phase."""

    def __init__(self, session, **kw):
        import ipywidgets as w
        self.config_panel = w.HTML()
        self.config_panel.add_class("mrunc-bundle-panel")
        super().__init__(session, **kw)
        self.children = (self.config_panel, *self.children)
        self.add_class("mrunc-bundle-stepper")
        self.status.observe(lambda _change: self._draw_config(), names="value")
        self._draw_config()

    def _draw_config(self):
        phases = getattr(self.session, "phases", PHASES)
        self.config_panel.value = config_html(self.session.container.config, self.session.current, phases)
