"""Snapshots and diffs drawn as HTML: the panels the stepper and `%container_inspect` show.

Pure functions, frozen data in, an HTML string out: no ipywidgets, no kernel, so every panel is
tested as text (and looked at in a headless browser). Each public function returns a standalone
fragment `<div class="mrunc">…</div>` carrying its own stylesheet, scoped under `.mrunc` so it
touches nothing else on the page; `page()` composes them under one root.

Colours come from JupyterLab's theme variables (`--jp-ui-font-color1`, `--jp-layout-color1`,
`--jp-brand-color1`…) with light fallbacks, so the same HTML reads well in the light and dark
themes and outside JupyterLab. Highlights are translucent tints of the theme colours, which work on
either background. Everything that comes from the process (paths, command lines, hostnames) is
escaped.
"""
from __future__ import annotations

import functools
import html
import importlib
import inspect
import os

from mrunc import phases as _phase_defs
from mrunc.phases import NAMES as PHASES, phases as _phases   # the one list of phases
from mrunc.record import CallRecord
from mrunc.snapshot import CAP_SETS, NS_MEANING, Diff, Snapshot, human_bytes

__all__ = ["namespace_table", "mount_tree", "cgroup_panel", "security_badges", "process_tree",
           "network_panel", "phase_list", "syscall_list", "summary_list", "phase_code", "page", "PHASES",
           "CSS"]


# A phase's one-line title, for the bar's tooltips and the stepper's status line.
PHASE_TEXT = {p.name: p.title for p in _phases(network=True)}
NS_LABEL = {"mnt": "mount", "uts": "UTS", "ipc": "IPC", "pid": "PID", "net": "network",
            "user": "user", "cgroup": "cgroup", "time": "time"}
ALL_CAPS = 41   # CAP_CHOWN … CAP_CHECKPOINT_RESTORE (Linux 5.9+)

CSS = """
.mrunc{--mr-fg:var(--jp-ui-font-color1,#1f2328);--mr-fg2:var(--jp-ui-font-color2,#57606a);
--mr-fg3:var(--jp-ui-font-color3,#8c959f);--mr-card:var(--jp-layout-color1,#fff);
--mr-bg2:var(--jp-layout-color2,#f6f8fa);--mr-line:var(--jp-border-color2,#d8dee4);
--mr-accent:var(--jp-brand-color1,#0969da);--mr-ok:var(--jp-success-color1,#1a7f37);
--mr-warn:var(--jp-warn-color1,#bc4c00);--mr-bad:var(--jp-error-color1,#cf222e);
--mr-mono:var(--jp-code-font-family,ui-monospace,SFMono-Regular,Menlo,Consolas,monospace);
font-family:var(--jp-ui-font-family,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif);
font-size:13px;line-height:1.45;color:var(--mr-fg);text-align:left}
.mrunc *{box-sizing:border-box}
.mrunc code,.mrunc .mr-mono{font-family:var(--mr-mono);font-size:12px}
.mrunc .mr-card{background:var(--mr-card);border:1px solid var(--mr-line);border-radius:8px;
padding:10px 12px;margin:0 0 12px 0;min-width:0}
.mrunc .mr-card>h3{margin:0 0 8px 0;font-size:13px;font-weight:600;color:var(--mr-fg);
display:flex;align-items:baseline;gap:8px;flex-wrap:wrap}
.mrunc .mr-card>h3 small{font-weight:400;color:var(--mr-fg2);font-size:12px}
.mrunc .mr-grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:0 12px}
.mrunc .mr-badge{display:inline-block;padding:0 7px;margin:1px 2px;border-radius:10px;
font-size:11.5px;line-height:18px;white-space:nowrap;border:1px solid var(--mr-line);
color:var(--mr-fg2);background:var(--mr-bg2)}
.mrunc .mr-ok{color:var(--mr-ok);border-color:rgba(26,127,55,.45);background:rgba(26,127,55,.10);
border-color:color-mix(in srgb,var(--mr-ok) 45%,transparent);
background:color-mix(in srgb,var(--mr-ok) 12%,transparent)}
.mrunc .mr-warn{color:var(--mr-warn);border-color:rgba(188,76,0,.45);background:rgba(188,76,0,.10);
border-color:color-mix(in srgb,var(--mr-warn) 45%,transparent);
background:color-mix(in srgb,var(--mr-warn) 12%,transparent)}
.mrunc .mr-bad{color:var(--mr-bad);border-color:rgba(207,34,46,.45);background:rgba(207,34,46,.10);
border-color:color-mix(in srgb,var(--mr-bad) 45%,transparent);
background:color-mix(in srgb,var(--mr-bad) 12%,transparent)}
.mrunc .mr-acc{color:var(--mr-accent);border-color:rgba(9,105,218,.45);background:rgba(9,105,218,.10);
border-color:color-mix(in srgb,var(--mr-accent) 45%,transparent);
background:color-mix(in srgb,var(--mr-accent) 12%,transparent)}
.mrunc del.mr-badge{text-decoration:line-through;opacity:.8}
.mrunc .mr-tag{font-size:11px;font-weight:600;padding:0 5px;border-radius:4px;margin-left:4px;
line-height:16px;display:inline-block}
.mrunc .mr-tag.mr-caps{font-size:10px;text-transform:uppercase;letter-spacing:.05em}
.mrunc .mr-new{background:rgba(26,127,55,.12);background:color-mix(in srgb,var(--mr-ok) 13%,transparent);
box-shadow:inset 3px 0 0 var(--mr-ok)}
.mrunc .mr-chg{background:rgba(188,76,0,.10);background:color-mix(in srgb,var(--mr-warn) 11%,transparent);
box-shadow:inset 3px 0 0 var(--mr-warn)}
.mrunc .mr-mov{background:rgba(9,105,218,.08);background:color-mix(in srgb,var(--mr-accent) 9%,transparent);
box-shadow:inset 3px 0 0 var(--mr-accent)}
.mrunc .mr-dim{color:var(--mr-fg3)}
.mrunc .mr-muted{color:var(--mr-fg2)}
.mrunc table.mr-table{border-collapse:collapse;width:100%}
.mrunc table.mr-table th{font-weight:600;color:var(--mr-fg2);font-size:11.5px;text-align:left;
padding:3px 6px;border-bottom:1px solid var(--mr-line)}
.mrunc table.mr-table td{padding:4px 6px;border-bottom:1px solid var(--mr-line);vertical-align:top;
color:var(--mr-fg);background:transparent}
.mrunc table.mr-table tr:last-child td{border-bottom:none}
.mrunc .mr-scroll{max-height:460px;overflow:auto}
.mrunc ul.mr-tree{list-style:none;margin:0;padding:0 0 0 14px;border-left:1px dashed var(--mr-line)}
.mrunc .mr-scroll>ul.mr-tree{padding-left:0;border-left:none}
.mrunc ul.mr-tree li{margin:0;padding:0}
.mrunc .mr-node{padding:2px 6px;border-radius:4px;display:flex;gap:6px;align-items:baseline;flex-wrap:wrap}
.mrunc .mr-node .mr-mp{font-family:var(--mr-mono);font-size:12.5px;font-weight:600}
.mrunc .mr-node .mr-opt{font-family:var(--mr-mono);font-size:11px;color:var(--mr-fg3)}
.mrunc .mr-banner{border:2px solid var(--mr-accent);border-radius:10px;padding:10px 14px;margin:0 0 12px 0;
background:rgba(9,105,218,.08);background:color-mix(in srgb,var(--mr-accent) 10%,transparent);
display:flex;gap:14px;align-items:center}
.mrunc .mr-banner.mr-bad{border-color:var(--mr-bad)}
.mrunc .mr-banner .mr-big{font-size:16px;font-weight:700;color:var(--mr-fg)}
.mrunc .mr-banner .mr-sub{color:var(--mr-fg2);margin-top:2px}
.mrunc .mr-bar{position:relative;height:16px;border-radius:8px;background:var(--mr-bg2);
border:1px solid var(--mr-line);overflow:hidden;margin:3px 0 2px 0}
.mrunc .mr-fill{height:100%;border-radius:8px 0 0 8px;background:var(--mr-ok)}
.mrunc .mr-fill.mr-warn{background:var(--mr-warn)}
.mrunc .mr-fill.mr-bad{background:var(--mr-bad)}
.mrunc .mr-peak{position:absolute;top:0;bottom:0;width:2px;background:var(--mr-fg2);opacity:.7}
.mrunc .mr-meter{margin:0 0 10px 0}
.mrunc .mr-meter .mr-lbl{display:flex;justify-content:space-between;gap:8px;font-size:12px}
.mrunc .mr-meter .mr-lbl b{font-weight:600}
.mrunc .mr-row{display:flex;gap:8px;align-items:baseline;margin:3px 0;flex-wrap:wrap}
.mrunc .mr-row>.mr-key{min-width:92px;color:var(--mr-fg2);font-size:12px}
.mrunc ol.mr-phases{list-style:none;display:flex;margin:0 0 12px 0;padding:0;gap:0;flex-wrap:wrap}
.mrunc ol.mr-phases li{flex:1 1 0;min-width:92px;text-align:center;position:relative;padding:0 2px;
color:var(--mr-fg3);font-size:12px}
.mrunc ol.mr-phases li::before{content:"";position:absolute;top:13px;left:0;right:0;height:2px;
background:var(--mr-line);z-index:0}
.mrunc ol.mr-phases li:first-child::before{left:50%}
.mrunc ol.mr-phases li:last-child::before{right:50%}
.mrunc ol.mr-phases li.mr-done::before,.mrunc ol.mr-phases li.mr-now::before{background:var(--mr-ok)}
.mrunc ol.mr-phases .mr-dot{position:relative;z-index:1;display:inline-flex;width:26px;height:26px;
border-radius:50%;align-items:center;justify-content:center;font-weight:700;font-size:12px;
border:2px solid var(--mr-line);background:var(--mr-card);color:var(--mr-fg3)}
.mrunc ol.mr-phases li.mr-done .mr-dot{border-color:var(--mr-ok);color:var(--mr-ok)}
.mrunc ol.mr-phases li.mr-now{color:var(--mr-fg);font-weight:600}
.mrunc ol.mr-phases li.mr-now .mr-dot{background:var(--mr-accent);border-color:var(--mr-accent);color:#fff;
box-shadow:0 0 0 4px rgba(9,105,218,.18);
box-shadow:0 0 0 4px color-mix(in srgb,var(--mr-accent) 22%,transparent)}
.mrunc ol.mr-phases li.mr-failed{color:var(--mr-bad);font-weight:600}
.mrunc ol.mr-phases li.mr-failed .mr-dot{background:var(--mr-bad);border-color:var(--mr-bad);color:#fff}
.mrunc ol.mr-phases li.mr-done{color:var(--mr-fg2)}
.mrunc ol.mr-phases .mr-pname{display:block;margin-top:3px;font-family:var(--mr-mono);font-size:11.5px}
.mrunc ol.mr-phases .mr-pms{display:block;font-size:10.5px;color:var(--mr-fg3);font-weight:400}
.mrunc ol.mr-calls{margin:0;padding:0 0 0 34px;font-family:var(--mr-mono);font-size:12px;color:var(--mr-fg)}
.mrunc ol.mr-calls li{padding:1px 0}
.mrunc ol.mr-calls li::marker{color:var(--mr-fg3)}
.mrunc ol.mr-calls .mr-fn{color:var(--mr-accent);font-weight:600}
.mrunc ol.mr-calls .mr-arg{color:var(--mr-fg2)}
.mrunc ol.mr-calls .mr-who{display:inline-block;min-width:4.5em;color:var(--mr-fg3)}
.mrunc ul.mr-summary{margin:0;padding:0 0 0 18px}
.mrunc ul.mr-summary li{margin:2px 0}
.mrunc ul.mr-summary li::marker{color:var(--mr-ok)}
.mrunc .mr-head{display:flex;gap:10px;align-items:baseline;flex-wrap:wrap;margin:0 0 10px 0}
.mrunc .mr-head .mr-title{font-size:16px;font-weight:700}
.mrunc details>summary{cursor:pointer;color:var(--mr-fg2);font-size:12px;margin-top:6px}
.mrunc .mr-struck{text-decoration:line-through;color:var(--mr-fg3)}
.mrunc svg text{font-family:var(--mr-mono)}
.mrunc .mr-doc{margin:4px 0 2px 0;color:var(--mr-fg)}
.mrunc .mr-doc p{margin:0 0 4px 0}
.mrunc pre.mr-code{font-family:var(--mr-mono);font-size:11.5px;line-height:1.4;margin:4px 0 0 0;
padding:8px 10px;background:var(--mr-bg2);border:1px solid var(--mr-line);border-radius:6px;
max-height:420px;overflow:auto;white-space:pre;color:var(--mr-fg)}
.mrunc .mr-code-fn + .mr-code-fn{margin-top:10px;padding-top:8px;border-top:1px dashed var(--mr-line)}
"""


# ---- helpers --------------------------------------------------------------------------------------

def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _root(inner: str) -> str:
    return f'<div class="mrunc"><style>{CSS}</style>{inner}</div>'


def _badge(text, kind="", title=None, tag="span") -> str:
    cls = f"mr-badge {kind}".strip()
    t = f' title="{_e(title)}"' if title else ""
    return f'<{tag} class="{cls}"{t}>{_e(text)}</{tag}>'


def _tag(text, kind) -> str:
    caps = " mr-caps" if text in ("new", "changed") else ""
    return f'<span class="mr-tag {kind}{caps}">{_e(text)}</span>'


def _card(title, body, note="") -> str:
    small = f"<small>{note}</small>" if note else ""
    return f'<div class="mr-card"><h3>{_e(title)}{small}</h3>{body}</div>'


def _pct(part, whole):
    if part is None or not whole:
        return None
    return max(0.0, min(100.0, 100.0 * part / whole))


def _level(pct):
    return "mr-bad" if pct >= 90 else "mr-warn" if pct >= 70 else ""


# ---- namespaces -----------------------------------------------------------------------------------

def _namespace_table(snap: Snapshot, diff: Diff | None) -> str:
    changed = {c.what: c for c in diff.namespaces} if diff else {}
    rows = []
    for n in snap.namespaces:
        if n.inode is None:
            status = _badge("n/a", title="this kernel has no such namespace, or it could not be read")
        elif n.isolated:
            status = _badge("own", "mr-ok", "a namespace of its own")
        else:
            status = _badge("host's", "", "shared with the host")
        cls, tag = "", ""
        if n.kind in changed:
            cls = ' class="mr-new"' if n.isolated else ' class="mr-chg"'
            tag = _tag("new", "mr-ok") if n.isolated else _tag("changed", "mr-warn")
        rows.append(f'<tr{cls}><td><b>{_e(NS_LABEL.get(n.kind, n.kind))}</b>{tag}</td><td>{status}</td>'
                    f'<td class="mr-mono">{_e(n.inode)}</td>'
                    f'<td class="mr-mono mr-dim">{_e(n.host_inode)}</td>'
                    f'<td class="mr-muted">{_e(NS_MEANING.get(n.kind, "")) if n.isolated else ""}</td></tr>')
    own = sum(1 for n in snap.namespaces if n.isolated)
    body = ('<table class="mr-table"><thead><tr><th>namespace</th><th></th><th>inode</th><th>host</th>'
            f'<th>what it gives</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')
    return _card("Namespaces", body, f"{own} of {len(snap.namespaces)} its own · /proc/{snap.pid}/ns")


def namespace_table(snap: Snapshot, diff: Diff | None = None) -> str:
    """Each namespace type: the process's inode vs the host's, own or shared, and what it gives."""
    return _root(_namespace_table(snap, diff))


# ---- mounts ---------------------------------------------------------------------------------------

_PIVOT_SVG = """<svg width="150" height="58" viewBox="0 0 150 58" role="img" aria-label="root switched">
<rect x="2" y="8" width="48" height="36" rx="6" fill="none"
 stroke="currentColor" stroke-dasharray="4 3" opacity=".45"/>
<text x="26" y="31" text-anchor="middle" font-size="12" fill="currentColor" opacity=".5">host /</text>
<line x1="8" y1="12" x2="44" y2="40" stroke="var(--mr-bad)" stroke-width="2"/>
<path d="M56 26 H88" stroke="var(--mr-accent)" stroke-width="2.5" fill="none"/>
<path d="M84 20 L92 26 L84 32 Z" fill="var(--mr-accent)"/>
<rect x="96" y="8" width="50" height="36" rx="6" fill="var(--mr-accent)" opacity=".18"/>
<rect x="96" y="8" width="50" height="36" rx="6" fill="none" stroke="var(--mr-accent)" stroke-width="2"/>
<text x="121" y="31" text-anchor="middle" font-size="13" font-weight="700" fill="currentColor">/</text>
</svg>"""


def _pivot_banner(diff: Diff) -> str:
    if not diff or not diff.root:
        return ""
    after, before = diff.root.after, diff.root.before
    where = after.fs_root if after.fs_root and after.fs_root != "/" else after.describe()
    gone = len(diff.mounts_removed)
    return (f'<div class="mr-banner">{_PIVOT_SVG}<div><div class="mr-big">Root switched: / is now '
            f'<code>{_e(where)}</code></div><div class="mr-sub">pivot_root made the bundle\'s rootfs the '
            f'process\'s <code>/</code>; {_e(before.describe())} is gone from its view'
            + (f" with {gone} mount{'s' if gone != 1 else ''}" if gone else "")
            + f'. Root inode {_e(after.dev)}:{_e(after.ino)}, was {_e(before.dev)}:{_e(before.ino)}.'
            '</div></div></div>')


def _mount_line(m, parent_mp, diff):
    added = diff is not None and m.id in diff.added_ids
    moved = diff.moved_ids.get(m.id) if diff else None
    changed = diff is not None and m.id in diff.changed_ids
    cls = "mr-new" if added else "mr-chg" if changed else "mr-mov" if moved else ""
    mp = m.mount_point
    if parent_mp and parent_mp != "/" and mp.startswith(parent_mp + "/"):
        shown = f'<span class="mr-dim">{_e(parent_mp)}</span>{_e(mp[len(parent_mp):])}'
    else:
        shown = _e(mp)
    tags = ""
    if added:
        tags += _tag("new", "mr-ok")
    if moved:
        tags += _tag(f"was {moved}", "mr-acc")
    if changed:
        c = next(c for c in diff.mounts_changed if c.after.id == m.id)
        delta = [f"+{o}" for o in m.options if o not in c.before.options] + \
                [f"-{o}" for o in c.before.options if o not in m.options]
        if c.before.propagation_mode != m.propagation_mode:
            delta.append(f"{c.before.propagation_mode}→{m.propagation_mode}")
        tags += _tag(" ".join(delta) or "changed", "mr-warn")
    prop = m.propagation_mode
    pkind = {"shared": "mr-acc", "slave": "mr-warn", "shared+slave": "mr-warn",
             "unbindable": "mr-bad"}.get(prop, "")
    prop_badge = _badge(prop, pkind) if prop != "private" else ""
    opts = ",".join(o for o in m.options if o not in ("rw", "ro"))
    src = m.source if m.root == "/" else f"{m.source} : {m.root}"
    title = f"id {m.id} (parent {m.parent}), device {m.dev}, superblock options {','.join(m.super_options)}"
    return (f'<div class="mr-node {cls}" title="{_e(title)}"><span class="mr-mp">{shown}</span>'
            f'{_badge(m.fstype, "mr-acc" if added else "")}<span class="mr-muted mr-mono">{_e(src)}</span>'
            f'{_badge("ro", "mr-warn") if m.readonly else ""}{prop_badge}'
            f'<span class="mr-opt">{_e(opts)}</span>{tags}</div>')


def _mount_tree(snap: Snapshot, diff: Diff | None, banner=True) -> str:
    by_id = {m.id: m for m in snap.mounts}
    kids = {}
    for m in snap.mounts:
        kids.setdefault(m.parent if m.parent in by_id and m.parent != m.id else None, []).append(m)
    marked = (diff.added_ids | diff.changed_ids | set(diff.moved_ids)) if diff else set()
    hot_ids = set()                          # mounts that changed, and every mount above one
    for i in marked:
        while i in by_id and i not in hot_ids:
            hot_ids.add(i)
            i = by_id[i].parent

    def branch(parent_id, parent_mp, depth):
        items, quiet = [], []

        def flush():
            # Runs of unchanged sibling subtrees fold away, so what changed is in view at once.
            if len(quiet) >= 3:
                n = sum(q[1] for q in quiet)
                names = ", ".join(q[2] for q in quiet[:4]) + (", …" if len(quiet) > 4 else "")
                items.append(f'<li><details><summary>{n} unchanged mount{"s" if n != 1 else ""}: '
                             f'<span class="mr-mono">{_e(names)}</span></summary><ul class="mr-tree">'
                             f'{"".join(q[0] for q in quiet)}</ul></details></li>')
            else:
                items.extend(q[0] for q in quiet)
            quiet.clear()

        for m in kids.get(parent_id, []):
            sub = branch(m.id, m.mount_point, depth + 1) if depth < 40 else ""
            li = f"<li>{_mount_line(m, parent_mp, diff)}{sub}</li>"
            if marked and m.id not in hot_ids:
                quiet.append((li, _count(kids, m.id) + 1, m.mount_point))
            else:
                flush()
                items.append(li)
        flush()
        return f'<ul class="mr-tree">{"".join(items)}</ul>' if items else ""

    tree = branch(None, None, 0)
    gone = ""
    if diff and diff.mounts_removed:
        lis = "".join(f'<li class="mr-struck mr-mono">{_e(m.mount_point)} <span>({_e(m.fstype)})</span></li>'
                      for m in diff.mounts_removed)
        gone = (f"<details><summary>{len(diff.mounts_removed)} mount(s) gone"
                f"{' with the old root' if diff.root else ''}</summary><ul>{lis}</ul></details>")
    n_new = len(diff.mounts_added) if diff else 0
    note = f"{len(snap.mounts)} mounts · /proc/{snap.pid}/mountinfo" + (f" · {n_new} new" if n_new else "")
    note += " · propagation private unless marked"
    if diff and diff.mount_ns_changed and diff.mounts_kept:
        note += " · a fresh copy in a new mount namespace"
    card = _card("Mount tree", f'<div class="mr-scroll">{tree}</div>{gone}', note)
    return (_pivot_banner(diff) if banner else "") + card


def _count(kids, mid):
    return sum(_count(kids, k.id) + 1 for k in kids.get(mid, []))


def mount_tree(snap: Snapshot, diff: Diff | None = None) -> str:
    """The mount table as a tree (by parent id); new mounts green, changed/moved amber, pivot_root
    announced by a banner, mounts that went away listed struck through."""
    return _root(_mount_tree(snap, diff))


# ---- cgroup ---------------------------------------------------------------------------------------

def _meter(label, used_text, pct, limit_text, peak_pct=None) -> str:
    if pct is None:
        bar = '<div class="mr-bar"></div>'
        right = f'<span class="mr-muted">{_e(limit_text)}</span>'
    else:
        peak = f'<div class="mr-peak" style="left:{peak_pct:.1f}%" title="peak"></div>' if peak_pct else ""
        bar = (f'<div class="mr-bar"><div class="mr-fill {_level(pct)}" style="width:{pct:.1f}%"></div>'
               f'{peak}</div>')
        right = f'<span><b>{pct:.1f}%</b> of {_e(limit_text)}</span>'
    return (f'<div class="mr-meter"><div class="mr-lbl"><span><b>{_e(label)}</b> {_e(used_text)}</span>'
            f'{right}</div>{bar}</div>')


def _cgroup_panel(snap: Snapshot, prev: Snapshot | None = None) -> str:
    cg = snap.cgroup
    if cg is None:
        return _card("cgroup", '<span class="mr-muted">no cgroup information</span>')
    mem = _meter("memory", human_bytes(cg.memory_current) if cg.memory_current is not None else "–",
                 _pct(cg.memory_current, cg.memory_limit),
                 human_bytes(cg.memory_limit) if cg.memory_limit else "no limit",
                 _pct(cg.memory_peak, cg.memory_limit))
    n = cg.pids_current
    pids = _meter("pids", "– (not counted here)" if n is None else f"{n} process" + ("es" if n != 1 else ""),
                  _pct(cg.pids_current, cg.pids_limit),
                  f"{cg.pids_limit}" if cg.pids_limit else "no limit")
    cpu_used = "–" if cg.cpu_usage_usec is None else f"{cg.cpu_usage_usec / 1000:.1f} ms CPU time"
    rate = None
    pc = prev.cgroup if prev else None
    if pc and pc.path == cg.path and None not in (pc.cpu_usage_usec, cg.cpu_usage_usec) and \
            snap.taken_at > prev.taken_at:
        rate = (cg.cpu_usage_usec - pc.cpu_usage_usec) / 1e6 / (snap.taken_at - prev.taken_at)
        cpu_used = f"{rate:.2f} CPUs now · " + cpu_used
    cpus = cg.cpus
    cpu = _meter("cpu", cpu_used, _pct(rate, cpus) if rate is not None and cpus else None,
                 f"{cpus:.2f} CPUs" if cpus else "no limit")
    extra = ""
    if cg.oom_kills:
        extra += _badge(f"OOM kills: {cg.oom_kills}", "mr-bad", "processes the kernel killed for memory")
    if cg.cpu_weight is not None:
        extra += _badge(f"cpu weight {cg.cpu_weight}", "", "relative share when CPUs are contended")
    paths = "".join(f'<tr><td class="mr-muted">{_e(c)}</td><td class="mr-mono">{_e(p)}</td></tr>'
                    for c, p in cg.paths)
    body = (f'<div class="mr-row"><span class="mr-key">cgroup</span><code>{_e(cg.path)}</code>'
            f'{_badge(cg.version, "mr-acc")}</div>{mem}{pids}{cpu}<div>{extra}</div>'
            f'<details><summary>every hierarchy ({len(cg.paths)})</summary>'
            f'<table class="mr-table">{paths}</table></details>')
    return _card("cgroup: limits and usage", body, f"/proc/{snap.pid}/cgroup")


def cgroup_panel(snap: Snapshot, prev: Snapshot | None = None) -> str:
    """Limit vs usage bars for memory (with the peak marked), pids and cpu; with `prev`, the CPU
    bar shows the rate between the two snapshots against the CPU limit."""
    return _root(_cgroup_panel(snap, prev))


# ---- security -------------------------------------------------------------------------------------

def _cap_badges(names, dropped, added):
    out = []
    for name in names:
        kind = "mr-ok mr-new" if name in added else "mr-ok"
        title = name + (" (added)" if name in added else "")
        out.append(_badge(name.removeprefix("CAP_").lower(), kind, title))
    for name in dropped:
        out.append(_badge(name.removeprefix("CAP_").lower(), "mr-bad", name + " (dropped)", tag="del"))
    return "".join(out) or '<span class="mr-muted">none</span>'


def _security_badges(snap: Snapshot, diff: Diff | None) -> str:
    s = snap.security
    if s is None:
        return _card("Security", '<span class="mr-muted">no security information</span>')
    groups = {}                                  # sets that look the same are drawn once
    for which in CAP_SETS:
        key = (s.caps(which), diff.dropped(which) if diff else (), diff.added_caps(which) if diff else ())
        groups.setdefault(key, []).append(which)
    rows = []
    for (names, dropped, added), sets in groups.items():
        note = f"{len(names)} of {ALL_CAPS}" + (f" · {len(dropped)} dropped" if dropped else "")
        rows.append(f'<div class="mr-row"><span class="mr-key"><b>{_e(" · ".join(sets))}</b>'
                    f'<span class="mr-dim" style="display:block">{_e(note)}</span></span>'
                    f'<span style="flex:1">'
                    f'{_cap_badges(names, dropped, added)}</span></div>')
    changed = {c.what for c in diff.security} if diff else set()
    mode = s.seccomp_mode
    sec = _badge(f"seccomp: {mode}" + (f" · {s.seccomp_filters} filter(s)" if s.seccomp_filters else ""),
                 "mr-ok" if s.seccomp == 2 else "mr-warn" if s.seccomp == 1 else "",
                 "system calls are filtered" if s.seccomp else "every system call is allowed")
    nnp = _badge("no_new_privs " + ("on" if s.no_new_privs else "off"), "mr-ok" if s.no_new_privs else "",
                 "execve can no longer grant privileges" if s.no_new_privs else "setuid programs still work")

    def new(what):
        return _tag("new", "mr-ok") if what in changed else ""
    ids = (f'uid {s.uid[1] if len(s.uid) > 1 else "?"} · gid {s.gid[1] if len(s.gid) > 1 else "?"}'
           + (f' · groups {",".join(map(str, s.groups))}' if s.groups else ""))
    maps = "; ".join(f"{i}→{o} ×{c}" for i, o, c in s.uid_map)
    body = (f'<div class="mr-row"><span class="mr-key">status</span>{sec}{new("seccomp")}{nnp}'
            f'{new("no_new_privs")}</div>'
            f'<div class="mr-row"><span class="mr-key">user</span><code>{_e(ids)}</code>{new("uid")}</div>'
            f'<div class="mr-row"><span class="mr-key">uid map</span><code>{_e(maps or "none")}</code>'
            f'{new("uid_map")}</div>{"".join(rows)}')
    return _card("Security", body, f"capabilities, seccomp · /proc/{snap.pid}/status")


def security_badges(snap: Snapshot, diff: Diff | None = None) -> str:
    """Capability sets as badges (sets with the same content drawn once; dropped ones struck
    through in red), seccomp mode and filter count, no_new_privs, uid/gid and the uid map."""
    return _root(_security_badges(snap, diff))


# ---- processes and network ------------------------------------------------------------------------

def _process_tree(snap: Snapshot, diff: Diff | None = None) -> str:
    if snap.process is None:
        return _card("Processes", '<span class="mr-muted">the process is gone</span>')
    ex = diff.exec if diff else None

    def node(p, top):
        inside = f"PID {p.ns_pid} inside" if top and p.ns_pid is not None and p.ns_pid != p.pid else ""
        cls = "mr-new" if top and ex else ""
        tag = _tag(f"exec'd, was {ex.before}", "mr-ok") if top and ex else ""
        cmd = " ".join(p.cmdline) or f"[{p.comm}]"
        kids = "".join(f"<li>{node(c, False)}</li>" for c in p.children)
        return (f'<div class="mr-node {cls}"><span class="mr-mp">{_e(p.comm)}</span>'
                f'{_badge(f"pid {p.pid}", "mr-acc" if top else "")}'
                f'{_badge(inside, "mr-ok") if inside else ""}{_badge(p.state)}'
                f'<span class="mr-muted mr-mono">{_e(cmd if len(cmd) < 160 else cmd[:157] + "…")}</span>'
                f'{tag}</div>'
                + (f'<ul class="mr-tree">{kids}</ul>' if kids else ""))
    p = snap.process
    exe = f' · exe <code>{_e(p.exe)}</code>' if p.exe else ""
    body = f'<ul class="mr-tree" style="border:none;padding:0"><li>{node(p, True)}</li></ul>'
    return _card("Processes", body, f"{sum(1 for _ in p.walk())} in the tree{exe}")


def process_tree(snap: Snapshot, diff: Diff | None = None) -> str:
    """The process and its descendants: comm, host pid and pid inside, state, command line."""
    return _root(_process_tree(snap, diff))


def _network_step(network) -> str:
    """The `network` step's picture: the lab and the container as the runtime left them."""
    if not network:
        return ""
    from mrunc.notebook import topology
    return _card("The lab network now", topology.figure(topology.from_step(network), all_tables=True),
                 "read by netlink right after the step")


def _network_panel(snap: Snapshot, diff: Diff | None = None) -> str:
    added = {i.name for i in diff.interfaces_added} if diff and not diff.net_ns_changed else set()
    rows = []
    for i in snap.network:
        state = _badge("?", title="could not look inside") if i.up is None else \
            _badge("up", "mr-ok") if i.up else _badge("down", "mr-warn")
        addrs = "".join(_badge(a, "mr-acc") for a in i.addresses) or '<span class="mr-dim">no address</span>'
        cls = ' class="mr-new"' if i.name in added else ""
        rows.append(f'<tr{cls}><td class="mr-mono"><b>{_e(i.name)}</b></td><td>{state}</td><td>{addrs}</td>'
                    f'<td class="mr-dim mr-mono">↓{_e(human_bytes(i.rx_bytes))} '
                    f'↑{_e(human_bytes(i.tx_bytes))}</td></tr>')
    host = ""
    if snap.hostname is not None:
        host = (f'<div class="mr-row"><span class="mr-key">hostname</span><code>{_e(snap.hostname)}</code>'
                + (f'<span class="mr-muted">domain</span> <code>{_e(snap.domainname)}</code>'
                   if snap.domainname and snap.domainname != "(none)" else "")
                + "</div>")
    table = (f'<table class="mr-table"><tbody>{"".join(rows)}</tbody></table>' if rows else
             '<span class="mr-muted">no interfaces</span>')
    new_routes = set(diff.routes_added) if diff and not diff.net_ns_changed else set()
    if snap.routes:
        table += '<div class="mr-row"><span class="mr-key">routes</span>' + "".join(
            f'<code{" class=mr-new" if r in new_routes else ""}>{_e(r.describe())}</code> '
            for r in snap.routes) + "</div>"
    if snap.neighbours:
        table += '<div class="mr-row"><span class="mr-key">neighbours</span>' + "".join(
            f'<code>{_e(n.address)} → {_e(n.mac)}</code> ' for n in snap.neighbours) + "</div>"
    net = snap.ns("net")
    note = "its own network namespace" if net and net.isolated else "the host's network"
    return _card("Network and UTS", host + table, note)


def network_panel(snap: Snapshot, diff: Diff | None = None) -> str:
    """Hostname, interfaces with state and addresses."""
    return _root(_network_panel(snap, diff))


# ---- phases, calls, summary -----------------------------------------------------------------------

def _phase_list(phases, current, failed=None, times=None) -> str:
    phases = list(phases)
    at = phases.index(current) if current in phases else -1
    stop = phases.index(failed) if failed in phases else None
    items = []
    for i, name in enumerate(phases):
        if stop is not None and i == stop:
            cls, mark = "mr-failed", "✗"
        elif stop is not None and i > stop:
            cls, mark = "", str(i + 1)
        elif i < at or (stop is not None and i < stop):
            cls, mark = "mr-done", "✓"
        elif i == at:
            cls, mark = "mr-now", str(i + 1)
        else:
            cls, mark = "", str(i + 1)
        ms = (times or {}).get(name)
        ms_html = f'<span class="mr-pms">{ms:.1f} ms</span>' if isinstance(ms, (int, float)) else ""
        items.append(f'<li class="{cls}" title="{_e(PHASE_TEXT.get(name, ""))}">'
                     f'<span class="mr-dot">{mark}</span>'
                     f'<span class="mr-pname">{_e(name)}</span>{ms_html}</li>')
    return f'<ol class="mr-phases">{"".join(items)}</ol>'


def phase_list(phases=PHASES, current=None, failed=None, times=None) -> str:
    """The phases as a stepper bar: those before `current` done (✓), `current` (the phase the
    runtime is paused after) highlighted, `failed` red, the rest pending. `times`: {phase: ms}."""
    return _root(_phase_list(phases, current, failed, times))


_PRCTL = {1: "PR_SET_PDEATHSIG", 4: "PR_SET_DUMPABLE", 8: "PR_SET_KEEPCAPS", 15: "PR_SET_NAME",
          22: "PR_SET_SECCOMP", 24: "PR_CAPBSET_DROP", 36: "PR_SET_CHILD_SUBREAPER",
          38: "PR_SET_NO_NEW_PRIVS", 47: "PR_CAP_AMBIENT"}


def _arg(a) -> str:
    if a is None:
        return "NULL"
    if isinstance(a, (int, float)):
        return str(a)
    s = str(a)
    if s and all(c.isupper() or c.isdigit() or c in "_|" for c in s):
        return s                                     # flags read best bare
    return '"' + s + '"'


def _call_args(name, args):
    if name == "prctl" and args and isinstance(args[0], int) and args[0] in _PRCTL:
        return [_PRCTL[args[0]], *map(_arg, args[1:])]
    return [_arg(a) for a in args]


def _syscall_list(calls) -> str:
    if not calls:
        return '<span class="mr-muted">no system calls recorded</span>'
    # Runs of one call differing only in its last argument (the bounding set dropped one cap at a
    # time, /dev nodes made one by one) are drawn as one line.
    # Each call says which process made it (runtime, clone, init, hook: mrunc.record), if known.
    runs = []
    for call in calls:
        call = CallRecord.of(call) if isinstance(call, dict) else call   # as the runtime sent it
        name, *args = call
        who = getattr(call, "who", None)
        shown = _call_args(name, args)
        last = runs[-1] if runs else None
        if last and last[0] == name and last[3] == who and shown and len(last[1]) == len(shown) \
                and last[1][:-1] == shown[:-1]:
            last[2].append(shown[-1])
        else:
            runs.append((name, shown, [shown[-1]] if shown else [], who))
    items = []
    for name, shown, lasts, who in runs:
        badge = f'<span class="mr-who">{_e(who)}</span>' if who else ""
        if len(lasts) > 2:
            vals = ", ".join(lasts[:3]) + (f", … {lasts[-1]}" if len(lasts) > 3 else "")
            lines = [(shown[:-1] + ["…"], f' <span class="mr-dim">× {len(lasts)}: {_e(vals)}</span>')]
        else:
            lines = [(shown[:-1] + [v] if shown else [], "") for v in lasts or [None]]
        for args, more in lines:
            items.append(f'<li>{badge}<span class="mr-fn">{_e(name)}</span>(<span class="mr-arg">'
                         f'{", ".join(_e(a) for a in args)}</span>){more}</li>')
    return f'<div class="mr-scroll" style="max-height:320px"><ol class="mr-calls">{"".join(items)}</ol></div>'


def syscall_list(calls) -> str:
    """What the phase asked the kernel, in order: [["mount", "proc", "/proc", "proc", "0", None], …]."""
    return _root(_syscall_list(calls))


def _summary_list(diff: Diff | None) -> str:
    lines = diff.summary() if diff is not None else []
    if not lines:
        return '<span class="mr-muted">nothing visible changed in this phase</span>'
    return f'<ul class="mr-summary">{"".join(f"<li>{_e(x)}</li>" for x in lines)}</ul>'


def summary_list(diff: Diff | None) -> str:
    """Diff.summary() as a bullet list."""
    return _root(_summary_list(diff))


# ---- the code that ran ----------------------------------------------------------------------------

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@functools.lru_cache(maxsize=None)
def _code(ref):
    """(docstring, source, "file:line") of a "module:function" reference; None if not found."""
    module, _, name = ref.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
        lines, first = inspect.getsourcelines(fn)
        where = os.path.relpath(inspect.getsourcefile(fn), _REPO)
    except (ImportError, AttributeError, OSError, TypeError):
        return None
    return inspect.getdoc(fn) or "", "".join(lines), f"{where}:{first}"


def _doc_html(doc):
    """A docstring's paragraphs as text (its line breaks are only the source's wrapping)."""
    paras = [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]
    return "".join(f"<p>{_e(p)}</p>" for p in paras) or '<p class="mr-dim">no docstring</p>'


def _function(ref, who):
    code = _code(ref)
    if code is None:
        return (f'<div class="mr-code-fn"><code>{_e(ref)}</code> '
                f'<span class="mr-muted">(source not found)</span></div>')
    doc, src, where = code
    n = src.count("\n")
    return (f'<div class="mr-code-fn"><div class="mr-row"><code class="mr-fn-ref"><b>{_e(ref)}</b></code>'
            f'{_badge(who, "mr-acc", f"runs in the {who} process")}</div>'
            f'<div class="mr-doc">{_doc_html(doc)}</div>'
            f'<details class="mr-source"><summary>source · {n} lines · <code>{_e(where)}</code>'
            f'</summary><pre class="mr-code">{_e(src)}</pre></details></div>')


def _phase_code(name) -> str:
    try:
        ph = _phase_defs.get(name)
    except KeyError:
        return ""
    other = _phase_defs.RUNTIME if ph.process == _phase_defs.INIT else _phase_defs.INIT
    body = _function(ph.function, ph.process) + "".join(_function(ref, other) for ref in ph.also)
    return _card("The code that ran", body, f"{_e(ph.function)}"
                 + (f" · with the {other}'s part" if ph.also else ""))


def phase_code(name) -> str:
    """The functions that implement phase `name` (from mrunc.phases): "module:function", the
    process it runs in, its docstring, and its source behind an expander — so a student can read
    the code that just ran. The other process's part of the phase (the runtime's id maps in
    clone, its limits in cgroup) follows."""
    return _root(_phase_code(name))


# ---- the page -------------------------------------------------------------------------------------

def page(snap: Snapshot, diff: Diff | None = None, phase=None, *, phases=PHASES, failed=None,
         error=None, times=None, prev: Snapshot | None = None) -> str:
    """Everything about one pause of the stepper: phase bar, what changed, the calls made, and
    the namespace, security, mount, cgroup, process and network panels.

    `phase` is a phase name or the runtime's event ({"phase", "ms", "calls", "pid"}); `failed` and
    `error` mark a phase that failed and the runtime's message; `prev` feeds the CPU rate.
    """
    ev = phase if isinstance(phase, dict) else {"phase": phase}
    name = ev.get("phase")
    times = dict(times or {})
    if isinstance(ev.get("ms"), (int, float)):
        times.setdefault(name, ev["ms"])
    p = snap.process
    who = f"{p.comm} · pid {p.pid}" if p else f"pid {snap.pid}"
    head = ('<div class="mr-head"><span class="mr-title">'
            + (f'After <code>{_e(name)}</code>' if name else "Container")
            + f'</span><span class="mr-muted">{_e(PHASE_TEXT.get(name, ""))}</span>'
            f'<span style="flex:1"></span>{_badge(who, "mr-acc")}'
            + (_badge(f"hostname {snap.hostname}") if snap.hostname else "")
            + _badge(f"snapshot {snap.ms:.1f} ms", "", "time taken to read it from /proc") + "</div>")
    alerts = _pivot_banner(diff)
    if failed or error:
        alerts += (f'<div class="mr-banner mr-bad"><div><div class="mr-big">Phase '
                   f'<code>{_e(failed or name)}</code> failed</div>'
                   f'<div class="mr-sub">{_e(error)}</div></div></div>')
    if snap.error:
        alerts += f'<div class="mr-card mr-chg">Partial snapshot: {_e(snap.error)}</div>'
    if snap.notes:
        alerts += "".join(f'<div class="mr-card mr-muted">{_e(n)}</div>' for n in snap.notes)
    changes = _card("What changed", _summary_list(diff) if diff is not None else
                    '<span class="mr-muted">first look: nothing to compare with yet</span>')
    calls = _card("What the runtime asked the kernel", _syscall_list(ev.get("calls")),
                  f"{len(ev.get('calls') or [])} calls" + (f" · {ev['ms']:.2f} ms" if "ms" in ev else "")) \
        if "calls" in ev else ""
    inner = (_phase_list(phases, name, failed, times) + head + alerts
             + (f'<div class="mr-grid"><div>{changes}</div><div>{calls}</div></div>' if calls else changes)
             + _phase_code(name)
             + _network_step(ev.get("network"))
             + f'<div class="mr-grid"><div>{_namespace_table(snap, diff)}</div>'
             + f'<div>{_security_badges(snap, diff)}</div></div>'
             + _mount_tree(snap, diff, banner=False)
             + f'<div class="mr-grid"><div>{_cgroup_panel(snap, prev)}</div><div>{_process_tree(snap, diff)}'
             + f'{_network_panel(snap, diff)}</div></div>')
    return _root(inner)
