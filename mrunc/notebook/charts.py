"""The live monitor's chart and the container table, drawn as HTML/SVG.

Pure functions over plain numbers (no ipywidgets, no kernel), like render.py, whose stylesheet
and theme colours they share: memory, CPU and pids of a container over time, each against its
limit, with the moments the kernel's OOM killer struck marked in red.
"""
from __future__ import annotations

import html

from mrunc.notebook.render import CSS
from mrunc.snapshot import human_bytes

__all__ = ["usage_chart", "container_table"]

_EXTRA_CSS = """
.mrunc .mr-chart{width:100%;max-width:760px;height:auto;display:block}
.mrunc .mr-chart .mr-axis{stroke:var(--mr-line);stroke-width:1}
.mrunc .mr-chart .mr-grid{stroke:var(--mr-line);stroke-width:1;stroke-dasharray:2 3}
.mrunc .mr-chart .mr-use{fill:none;stroke:var(--mr-accent);stroke-width:2}
.mrunc .mr-chart .mr-area{fill:var(--mr-accent);opacity:.14}
.mrunc .mr-chart .mr-hi{fill:none;stroke:var(--mr-bad);stroke-width:1.2;stroke-dasharray:2 2;opacity:.8}
.mrunc .mr-chart text.mr-hit{fill:var(--mr-bad);font-size:10.5px}
.mrunc .mr-chart .mr-limit{stroke:var(--mr-warn);stroke-width:1.5;stroke-dasharray:6 4}
.mrunc .mr-chart .mr-oom{stroke:var(--mr-bad);stroke-width:2}
.mrunc .mr-chart .mr-exit{stroke:var(--mr-fg3);stroke-width:1.5;stroke-dasharray:3 3}
.mrunc .mr-chart text{font-size:11px;fill:var(--mr-fg2)}
.mrunc .mr-chart text.mr-t{font-size:12px;font-weight:600;fill:var(--mr-fg)}
.mrunc .mr-chart text.mr-lim{fill:var(--mr-warn)}
.mrunc .mr-chart text.mr-oomt{fill:var(--mr-bad);font-weight:700}
.mrunc .mr-oom-flag{display:inline-block;margin:0 0 8px 0;padding:3px 10px;border-radius:6px;
font-weight:700;color:#fff;background:var(--mr-bad)}
"""


def _e(v) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _wrap(inner: str) -> str:
    return f'<div class="mrunc"><style>{CSS}{_EXTRA_CSS}</style>{inner}</div>'


def _num(v, unit):
    if v is None:
        return "–"
    if unit == "bytes":
        return human_bytes(v)
    if unit == "cpus":
        return f"{v:.2f}"
    return str(int(v))


def _panel(y0, h, w, series, limit, label, unit, t_max, events, peaks=()):
    """One chart: `series` [(t, value)], a dashed limit line, OOM/exit markers; `peaks`
    [(t, value)]: the highest usage so far, which catches what happens between two samples."""
    left, right = 64, w - 12
    top, bottom = y0 + 18, y0 + h - 16
    values = [v for _, v in series if v is not None]
    peak = max(values + [v for _, v in peaks if v is not None] + ([limit] if limit else []) + [0])
    if unit == "cpus":
        peak = max(peak, 0.1)
    elif unit == "count":
        peak = max(peak, 1)
    else:
        peak = max(peak, 1 << 20)
    y_max = peak * 1.1

    def X(t):
        return left + (right - left) * (t / t_max if t_max > 0 else 0)

    def Y(v):
        return bottom - (bottom - top) * (v / y_max)

    now = values[-1] if values else None
    head = f'{_e(label)} <tspan class="mr-t">{_e(_num(now, unit))}</tspan>'
    if limit:
        head += f' of {_e(_num(limit, unit))}'
        if now is not None:
            head += f' ({100 * now / limit:.0f}%)'
    parts = [f'<text x="{left}" y="{y0 + 12}" class="mr-t">{head}</text>',
             f'<line class="mr-axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>',
             f'<line class="mr-axis" x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>',
             f'<text x="{left - 6}" y="{bottom}" text-anchor="end">0</text>',
             f'<text x="{left - 6}" y="{top + 8}" text-anchor="end">{_e(_num(y_max, unit))}</text>']
    pts = [(X(t), Y(v)) for t, v in series if v is not None]
    if pts:
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        area = f"{pts[0][0]:.1f},{bottom} {line} {pts[-1][0]:.1f},{bottom}"
        parts.append(f'<polygon class="mr-area" points="{area}"/>')
        parts.append(f'<polyline class="mr-use" points="{line}"/>')
    hi = [(X(t), Y(v)) for t, v in peaks if v is not None]
    if hi:
        parts.append(f'<polyline class="mr-hi" points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in hi)}"/>')
        parts.append(f'<text x="{hi[-1][0] - 4:.1f}" y="{hi[-1][1] - 3:.1f}" text-anchor="end" '
                     f'class="mr-hit">peak {_e(_num(peaks[-1][1], unit))}</text>')
    if limit:
        ly = Y(limit)
        parts.append(f'<line class="mr-limit" x1="{left}" y1="{ly:.1f}" x2="{right}" y2="{ly:.1f}"/>')
        parts.append(f'<text x="{left + 4}" y="{ly - 3:.1f}" class="mr-lim">limit</text>')
    for t, kind, _text in events:
        x = X(t)
        cls = "mr-oom" if kind == "oom" else "mr-exit"
        parts.append(f'<line class="{cls}" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}"/>')
    return "".join(parts)


def usage_chart(samples, events=(), *, name="", status="", memory_limit=None, pids_limit=None,
                cpu_limit=None) -> str:
    """Memory, CPU and pids over time, against their limits.

    `samples`: [{"t": seconds since the first, "memory": bytes, "cpu": CPUs in use (a rate),
    "pids": count, "peak": the highest memory use so far (optional, drawn dotted)}], in order.
    `events`: [(t, "oom" | "exit", text)] drawn as vertical lines
    (OOM kills red) and listed under the chart. Limits: bytes, CPUs, count; None = unlimited.
    """
    w, h = 760, 112
    t_max = max([s["t"] for s in samples] + [1.0])
    rows = [("memory", "memory", "bytes", memory_limit), ("cpu", "CPU (cores)", "cpus", cpu_limit),
            ("pids", "processes", "count", pids_limit)]
    body = []
    for i, (key, label, unit, limit) in enumerate(rows):
        peaks = [(s["t"], s.get("peak")) for s in samples] if key == "memory" else ()
        body.append(_panel(i * h, h, w, [(s["t"], s.get(key)) for s in samples], limit, label, unit,
                           t_max, events, peaks))
    total_h = len(rows) * h + 14
    x_end = w - 12
    body.append(f'<text x="64" y="{total_h - 2}">0 s</text>'
                f'<text x="{x_end}" y="{total_h - 2}" text-anchor="end">{t_max:.1f} s</text>')
    for t, kind, _text in events:
        if kind == "oom":
            x = 64 + (x_end - 64) * (t / t_max)
            anchor = "end" if x > w * 0.7 else "start"
            dx = -4 if anchor == "end" else 4
            body.append(f'<text x="{x + dx:.1f}" y="30" text-anchor="{anchor}" class="mr-oomt">'
                        f'OOM killed</text>')
    svg = (f'<svg class="mr-chart" viewBox="0 0 {w} {total_h}" role="img" '
           f'aria-label="usage of {_e(name)}">{"".join(body)}</svg>')
    ooms = [e for e in events if e[1] == "oom"]
    flag = "".join(f'<div class="mr-oom-flag">OOM killed at {t:.1f} s: {_e(text)}</div>'
                   for t, _k, text in ooms)
    notes = "".join(f'<li>{t:.1f} s: {_e(text)}</li>' for t, kind, text in events if kind != "oom")
    head = (f'<div class="mr-head"><span class="mr-title">{_e(name)}</span>'
            f'<span class="mr-badge mr-acc mr-status">{_e(status)}</span></div>')
    return _wrap(f'<div class="mr-card mr-monitor">{head}{flag}{svg}'
                 + (f'<ul class="mr-summary">{notes}</ul>' if notes else "") + '</div>')


def container_table(rows) -> str:
    """The sandbox's containers: name, status, pid, memory (of its limit), command."""
    if not rows:
        return _wrap('<div class="mr-card mr-muted mr-list">no containers</div>')
    kind = {"running": "mr-ok", "created": "mr-acc", "paused": "mr-warn", "stopped": ""}
    trs = []
    for r in rows:
        mem = human_bytes(r["memory"]) if r.get("memory") is not None else "–"
        if r.get("limit"):
            mem += f' / {human_bytes(r["limit"])}'
        code = "" if r.get("exit_code") is None else f' (exit {r["exit_code"]})'
        trs.append(f'<tr><td><code>{_e(r["name"])}</code></td>'
                   f'<td><span class="mr-badge {kind.get(r["status"], "")}">{_e(r["status"])}</span>'
                   f'{_e(code)}</td>'
                   f'<td>{_e(r.get("pid") or "")}</td><td>{_e(mem)}</td>'
                   f'<td class="mr-mono">{_e(r.get("command", ""))}</td></tr>')
    return _wrap('<div class="mr-card mr-list"><table class="mr-table"><tr><th>name</th><th>status</th>'
                 '<th>pid</th><th>memory</th><th>command</th></tr>' + "".join(trs) + '</table></div>')
