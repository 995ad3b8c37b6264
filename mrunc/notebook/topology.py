"""A lab network drawn as a diagram: pure functions, views in, SVG/HTML out (no widgets, no kernel).

The input is what `mrunc network show` (Sandbox.network_show) and the stepper's `network` step
report — plain data read from the kernel by netlink:

    {"lab": view, "containers": {name: view}}       view = {"where", "interfaces": [{name, kind,
    up, state, mtu, master, addresses, rx_bytes, tx_bytes, qdisc…}], "routes": […], "neighbours": […]}

What is drawn: the lab's namespace as a box holding the bridge (the switch, with the gateway
address) and the lab end of every veth pair; each container's namespace as a box below with its
eth0 and address; each veth pair as a wire from the lab's end to the container's, labelled with the
bytes each way. A link that is up is drawn solid and green, a down one dashed and grey. The same
SVG is the live widget's picture and the static one in an exported notebook.
"""
from __future__ import annotations

import html

from mrunc.snapshot import human_bytes

__all__ = ["svg", "tables", "figure"]

BOX_W, BOX_H, GAP = 170, 96, 24
LAB_Y, LAB_H, CTR_Y = 14, 118, 196


def _e(v) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _ifs(view):
    return {i["name"]: i for i in (view or {}).get("interfaces", ())}


def _colour(up):
    return "var(--jp-success-color1,#1a7f37)" if up else "var(--jp-ui-font-color3,#8c959f)"


def _v4(iface):
    return next((a for a in iface.get("addresses", ()) if ":" not in a), "") if iface else ""


def _pairs(net):
    """[(container name, lab-side veth, container-side eth0)] — matched by the veth's peer index
    (IFLA_LINK): the lab end's peer is the container end's index, and back."""
    lab = _ifs(net.get("lab"))
    out = []
    for name, view in sorted((net.get("containers") or {}).items()):
        mine = _ifs(view)
        eth0 = mine.get("eth0")
        veth = None
        if eth0:
            veth = next((i for i in lab.values() if i.get("kind") == "veth"
                         and i.get("peer") == eth0.get("index")
                         and eth0.get("peer") == i.get("index")), None)
        veth = veth or lab.get(f"v-{name}"[:15])
        out.append((name, veth, eth0))
    return out


def svg(net: dict, *, title=None, selected=None) -> str:
    """The diagram as one <svg> element (class mrunc-topology)."""
    pairs = _pairs(net)
    n = max(1, len(pairs))
    width = max(560, n * (BOX_W + GAP) + GAP)
    height = CTR_Y + BOX_H + 16
    lab = _ifs(net.get("lab"))
    br = lab.get("br0") or {}
    out = [f'<svg class="mrunc-topology" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" font-family="ui-monospace,monospace" '
           'font-size="11" role="img">',
           f'<title>{_e(title or (net.get("lab") or {}).get("where") or "lab network")}</title>',
           '<style>.mr-box{fill:var(--jp-layout-color2,#f6f8fa);stroke:var(--jp-border-color1,#8c959f)}'
           '.mr-t{fill:var(--jp-ui-font-color1,#1f2328)}.mr-d{fill:var(--jp-ui-font-color2,#57606a)}'
           '.mr-sel{stroke:var(--jp-brand-color1,#0969da);stroke-width:2.5}</style>']
    # the lab's namespace, with the bridge in it
    out.append(f'<rect class="mr-box" x="8" y="{LAB_Y}" width="{width - 16}" height="{LAB_H}" rx="8" '
               'stroke-dasharray="5 3"/>')
    out.append(f'<text class="mr-t" x="18" y="{LAB_Y + 16}" font-weight="bold">'
               f'{_e(title or (net.get("lab") or {}).get("where") or "lab")}</text>'
               f'<text class="mr-d" x="18" y="{LAB_Y + 30}">network namespace of its own (the switch)'
               f'{" · " + _e(net.get("shaping")) if net.get("shaping") else ""}</text>')
    bx, bw = width / 2 - 110, 220
    out.append(f'<g class="mr-bridge" data-if="br0"><rect x="{bx}" y="{LAB_Y + 38}" width="{bw}" '
               f'height="30" rx="5" fill="none" stroke="{_colour(br.get("up"))}" stroke-width="2"/>'
               f'<text class="mr-t" x="{width / 2}" y="{LAB_Y + 57}" text-anchor="middle">'
               f'br0 (bridge) {_e(_v4(br) or "no address")}</text></g>')
    for k, (name, veth, eth0) in enumerate(pairs):
        x = GAP + k * (BOX_W + GAP) + (width - (n * (BOX_W + GAP) + GAP)) / 2
        cx = x + BOX_W / 2
        up = bool(veth and veth.get("up") and eth0 and eth0.get("up"))
        dash = "" if up else ' stroke-dasharray="4 3"'
        # veth's lab end, enslaved to the bridge
        vy = LAB_Y + LAB_H - 30
        if veth:
            out.append(f'<line x1="{cx}" y1="{vy}" x2="{width / 2}" y2="{LAB_Y + 68}" '
                       f'stroke="{_colour(veth.get("up"))}" stroke-width="1.5"/>')
            out.append(f'<g class="mr-veth" data-if="{_e(veth["name"])}"><rect x="{cx - 48}" y="{vy}" '
                       f'width="96" height="22" rx="4" fill="var(--jp-layout-color1,#fff)" '
                       f'stroke="{_colour(veth.get("up"))}"/><text class="mr-t" x="{cx}" y="{vy + 15}" '
                       f'text-anchor="middle">{_e(veth["name"])}'
                       f'{" ⏱" if veth.get("qdisc") == "netem" else ""}</text></g>')
        # the wire: a veth pair crosses from one namespace to the other
        out.append(f'<line class="mr-wire" data-container="{_e(name)}" x1="{cx}" y1="{vy + 22}" '
                   f'x2="{cx}" y2="{CTR_Y + 6}" stroke="{_colour(up)}" stroke-width="3"{dash}/>')
        if eth0:
            # what the container sent (its eth0's tx) is what the lab's end received
            out.append(f'<text class="mr-d mr-counter" data-container="{_e(name)}" x="{cx + 8}" '
                       f'y="{(vy + 22 + CTR_Y) / 2 + 4}">↑{_e(human_bytes(eth0.get("tx_bytes", 0)))} '
                       f'↓{_e(human_bytes(eth0.get("rx_bytes", 0)))}</text>')
        sel = " mr-sel" if name == selected else ""
        out.append(f'<g class="mr-container" data-container="{_e(name)}">'
                   f'<rect class="mr-box{sel}" x="{x}" y="{CTR_Y}" width="{BOX_W}" height="{BOX_H}" rx="8"/>'
                   f'<text class="mr-t" x="{x + 10}" y="{CTR_Y + 20}" font-weight="bold">'
                   f'container {_e(name)}</text>')
        if eth0:
            out.append(f'<text class="mr-t" x="{x + 10}" y="{CTR_Y + 40}">eth0 {_e(_v4(eth0))}</text>'
                       f'<text class="mr-d" x="{x + 10}" y="{CTR_Y + 56}">'
                       f'{"up" if eth0.get("up") else "down"} · mtu {_e(eth0.get("mtu"))}</text>'
                       f'<text class="mr-d" x="{x + 10}" y="{CTR_Y + 72}">'
                       f'{_e(_default(net["containers"][name]))}</text>')
        else:
            out.append(f'<text class="mr-d" x="{x + 10}" y="{CTR_Y + 40}">no eth0 (only lo)</text>')
        out.append("</g>")
    if not pairs:
        out.append(f'<text class="mr-d" x="{width / 2}" y="{CTR_Y + 40}" text-anchor="middle">'
                   'no container attached yet</text>')
    out.append("</svg>")
    return "".join(out)


def _default(view):
    r = next((r for r in view.get("routes", ()) if r.get("dst") == "default"), None)
    return f"default via {r['gateway']}" if r else "no default route"


def tables(view: dict) -> str:
    """One namespace's routes and neighbour (ARP) table, as two small HTML tables."""
    routes = "".join(f"<tr><td>{_e(r['dst'])}</td><td>{_e(r.get('gateway') or '')}</td>"
                     f"<td>{_e(r.get('dev') or '')}</td></tr>" for r in view.get("routes", ()))
    neigh = "".join(f"<tr><td>{_e(n['address'])}</td><td>{_e(n.get('mac') or '')}</td>"
                    f"<td>{_e(n.get('dev') or '')}</td><td>{_e(n.get('state'))}</td></tr>"
                    for n in view.get("neighbours", ()))
    style = 'style="border-collapse:collapse;font-family:ui-monospace,monospace;font-size:12px"'
    return (f'<div class="mrunc-net-tables" data-where="{_e(view.get("where"))}">'
            f'<b>{_e(view.get("where"))}</b>'
            f'<table {style}><tr><th>route to</th><th>via</th><th>dev</th></tr>'
            f'{routes or "<tr><td colspan=3>no routes</td></tr>"}</table>'
            f'<table {style}><tr><th>neighbour</th><th>MAC</th><th>dev</th><th>state</th></tr>'
            f'{neigh or "<tr><td colspan=4>no neighbours yet</td></tr>"}</table></div>')


def figure(net: dict, *, title=None, selected=None, all_tables=False) -> str:
    """The diagram and, below it, the routes and neighbours of the selected container (or of
    every namespace: all_tables, for a static export where nothing can be clicked)."""
    views = []
    if all_tables:
        views = [net["lab"], *[v for _, v in sorted((net.get("containers") or {}).items())]]
    elif selected and selected in (net.get("containers") or {}):
        views = [net["containers"][selected]]
    return (f'<div class="mrunc-topology-figure">{svg(net, title=title, selected=selected)}'
            f'<div style="display:flex;gap:16px;flex-wrap:wrap">{"".join(tables(v) for v in views)}'
            f'</div></div>')


def from_step(network: dict) -> dict:
    """The stepper's `network` step report ({"container": view, "lab": view}) as a diagram's
    input."""
    ctr = network.get("container") or {}
    name = (ctr.get("where") or "container ?").partition(" ")[2]
    return {"lab": network.get("lab") or {}, "containers": {name: ctr} if ctr else {}}
