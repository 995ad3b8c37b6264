"""The live topology of a lab network: a widget holding state, topology.py drawing it.

A thread asks the sandbox for the kernel's view of the lab (`mrunc network show`: netlink, read by
a short-lived runtime process — the kernel never enters a namespace itself) every `interval`
seconds and redraws: wires go green when both ends are up, and the byte counters move while a
ping or a transfer runs. One button per container shows its routes and neighbour table.
"""
from __future__ import annotations

import html

import ipywidgets as w

from mrunc.notebook import topology
from mrunc.notebook.export import StaticView
from mrunc.notebook.refresh import Refreshing

__all__ = ["Topology"]


class Topology(StaticView, Refreshing, w.VBox):
    def __init__(self, sandbox, name, interval=1.0, autostart=True, **kw):
        self.sandbox, self.name, self.interval = sandbox, name, interval
        self.net = None                 # the last view: {"lab", "containers", "shaping"}
        self.selected = None
        self.error = None
        self.picture = w.HTML()
        self.picture.add_class("mrunc-topology-view")
        self.pick = w.ToggleButtons(options=[], value=None, tooltips=[],
                                    description="routes of", style={"button_width": "auto"})
        self.pick.observe(self._picked, names="value")
        self.stop_button = w.Button(description="Stop", icon="pause", tooltip="stop refreshing")
        self.stop_button.on_click(lambda _b: self.stop())
        self._init_refresh()
        super().__init__([self.picture, w.HBox([self.pick, self.stop_button])], **kw)
        self.add_class("mrunc-topology-widget")
        self.poll()
        if autostart:
            self.start()

    # -- state --
    def poll(self):
        """Read the lab now; returns the view (None when it could not be read)."""
        try:
            net = self.sandbox.network_show(self.name)
            row = next((r for r in self.sandbox.network_ls() if r["name"] == self.name), {})
            net["shaping"] = row.get("shaping", "")
            self.net, self.error = net, None
        except Exception as e:  # noqa: BLE001 — a live view shows the error, it does not die
            self._stop.set()
            if getattr(self.sandbox, "closing", False):
                return None         # lab.close() removed the network under us: keep the last view
            self.error = str(e)
        self._draw()
        return self.net if self.error is None else None

    def select(self, container):
        self.selected = container
        self._draw()

    def counters(self, container) -> tuple[int, int]:
        """(tx, rx) bytes of the container's eth0 in the last view."""
        view = ((self.net or {}).get("containers") or {}).get(container) or {}
        eth0 = next((i for i in view.get("interfaces", ()) if i["name"] == "eth0"), {})
        return eth0.get("tx_bytes", 0), eth0.get("rx_bytes", 0)

    # -- the refresh thread --
    def start(self):
        self._start_refresh(f"topology-{self.name}")

    def _loop(self):
        while not self._stop.wait(self.interval):
            if getattr(self.sandbox, "closing", False):
                break
            self.poll()

    def stop(self):
        self._stop_refresh()
        self.stop_button.disabled = True

    # -- drawing --
    def _picked(self, change):
        self.select(change["new"])

    def _draw(self):
        if self.net is None:
            self.picture.value = self.static_html()
            return
        names = sorted(self.net.get("containers") or {})
        if list(self.pick.options) != names:
            self.pick.options = names
            self.pick.value = self.selected if self.selected in names else None
        note = f'<div class="mrunc-status mrunc-bad">✗ {self.error}</div>' if self.error else ""
        self.picture.value = topology.figure(self.net, title=f"lab {self.name}",
                                             selected=self.selected) + note

    def static_html(self) -> str:
        """The diagram with every container's routes and neighbours (no buttons on paper)."""
        if self.net is None:
            return f'<span class="mrunc-status mrunc-bad">✗ {html.escape(str(self.error), quote=False)}</span>'
        return topology.figure(self.net, title=f"lab {self.name}", all_tables=True)
