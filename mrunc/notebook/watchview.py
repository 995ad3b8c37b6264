"""The file-access monitor's table: which files a container opened, executed and modified.

`FileWatch` is a live view of a mrunc.watch.Watch: the events as they arrive, filtered by
operation and by a part of the path, with the count of each operation. The drawing is a pure
function of the events (`table`), so it is tested without a kernel, and `static_html()` is the
same drawing for an exported notebook, where no kernel redraws anything.
"""
from __future__ import annotations

import html
import threading
import time

import ipywidgets as w

from mrunc.notebook.render import CSS
from mrunc.watch import OPERATIONS, check_filter, matching

try:    # the exporter's mixin (branch course-export): our drawing travels beside the live view
    from mrunc.notebook.export import StaticView
except ImportError:
    class StaticView:
        """Until the exporter is here: static_html() is only a method."""

__all__ = ["FileWatch", "table"]

ROWS = 200                          # the newest rows drawn (the data keeps every event)
_REDRAW = 0.2                       # seconds between two redraws of a live table
_KIND = {"open": "", "exec": "mr-acc", "modify": "mr-warn"}


def _e(v) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def table(events, *, name, counts, operation=None, path="", status="", note=None, rows=ROWS) -> str:
    """The events (FileEvent) of one operation (None: all) whose path contains `path`, newest
    last, at most `rows` of them; above, the counts of every operation and the status."""
    shown = matching(events, operation, path)
    tally = " · ".join(f'<span class="mr-badge {_KIND[op]}" data-op="{op}">{op} '
                       f'<b class="mrunc-count">{counts.get(op, 0)}</b></span>' for op in OPERATIONS)
    head = (f'<div class="mr-head">files of <code>{_e(name)}</code> · {tally}'
            f' <span class="mr-muted mrunc-watch-status">{_e(status)}</span></div>')
    if note:
        head += f'<div class="mr-warn mrunc-watch-note">{_e(note)}</div>'
    hidden = len(shown) - rows
    trs = [f'<tr class="mrunc-event" data-op="{e.operation}"><td>{e.time * 1000:.1f}</td>'
           f'<td>{e.pid}</td><td class="mr-mono">{_e(e.command)}</td>'
           f'<td><span class="mr-badge {_KIND[e.operation]}">{e.operation}</span></td>'
           f'<td class="mr-mono">{_e(e.path)}</td></tr>' for e in shown[-rows:]]
    if not trs:
        body = '<div class="mr-muted">no file accesses' + (" match the filter" if events else "") + \
               "</div>"
    else:
        more = (f'<div class="mr-muted">… {hidden} earlier rows not drawn</div>' if hidden > 0 else "")
        body = (more + '<table class="mr-table"><tr><th>ms</th><th>pid</th><th>command</th>'
                '<th>operation</th><th>path</th></tr>' + "".join(trs) + "</table>")
    return f'<div class="mrunc"><style>{CSS}</style><div class="mr-card mrunc-watch">{head}{body}</div></div>'


class FileWatch(StaticView, w.VBox):
    """A live, filterable table of a Watch. `watch.events`, `.filter()`, `.counts()` are the data;
    `static_html()` is the current drawing (for exports)."""

    def __init__(self, watch: Watch, **kw):
        self.watch = watch
        self.operation = w.ToggleButtons(options=["all", *OPERATIONS], value="all",
                                         tooltips=["every access", "opened", "executed", "written"])
        self.path = w.Text(placeholder="path contains…", description="path",
                           continuous_update=True, layout=w.Layout(width="260px"))
        self.stop_button = w.Button(description="Stop watching", icon="stop")
        self.stop_button.on_click(lambda _b: self.close_watch())
        self.view = w.HTML()
        self.view.add_class("mrunc-watch-view")
        for control in (self.operation, self.path):
            control.observe(lambda _c: self.draw(), names="value")
        bar = w.HBox([self.operation, self.path, self.stop_button],
                     layout=w.Layout(flex_flow="row wrap", align_items="center"))
        super().__init__([bar, self.view], **kw)
        self.add_class("mrunc-file-watch")
        self._lock = threading.Lock()
        self._drawn = (-1, None)         # (version, finished) of the watch at the last draw
        self._last = 0.0
        self.draw()
        watch.subscribe(self._changed)

    def close_watch(self):
        """Stop listening (the container runs on); the table keeps what it has."""
        self.watch.close()
        self.draw()

    def static_html(self) -> str:
        """The table as it is now, with its filter: self-contained HTML for an exported notebook."""
        return self._html()

    def export_finish(self):
        """Before an export draws us: every access made so far is in the table."""
        self.watch.flush()
        self.draw()

    def draw(self):
        with self._lock:
            self._drawn = (self.watch.version, self.watch.finished)
            self._last = time.monotonic()
            self.view.value = self._html()
            self.stop_button.disabled = self.watch.finished

    def _changed(self):
        """From the watch's thread: redraw when something changed, at most every _REDRAW s."""
        now = (self.watch.version, self.watch.finished)
        if now != self._drawn and (self.watch.finished or time.monotonic() - self._last >= _REDRAW):
            self.draw()

    def _html(self):
        wt = self.watch
        op, path = self.operation.value, self.path.value
        check_filter(op, path)
        status = (wt.error and "not watching") or ("ended" if wt.finished else "watching…")
        note = wt.error or " · ".join(
            ([f"only the first {wt.limit} accesses are kept: {wt.dropped} more were not"]
             if wt.dropped else []) +
            (["the kernel's queue overflowed: some accesses are missing"] if wt.lost else [])) or None
        return table(wt.events, name=wt.name, counts=wt.counts(), operation=op, path=path,
                     status=status, note=note)
