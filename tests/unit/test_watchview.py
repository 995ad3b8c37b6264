"""The file-access monitor's table without a kernel: the drawing of a list of events (filtered by
operation and path, with the counts of each operation), the widget's filter controls and its
static HTML, and the one-line errors of a bad filter or of --watch with --step."""
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from mrunc.notebook.magics import ContainerMagics
from mrunc.notebook.watchview import FileWatch, table
from mrunc.watch import FileEvent, Watch, WatchError, check_filter

EVENTS = [FileEvent(0.010, 7, "sh", "exec", "/bin/busybox"),
          FileEvent(0.012, 8, "cat", "open", "/etc/passwd"),
          FileEvent(0.013, 7, "sh", "open", "/tmp/out"),
          FileEvent(0.013, 7, "sh", "modify", "/tmp/out"),
          FileEvent(0.020, 9, "busybox", "exec", "/tmp/cat")]


class FakeWatch:
    """What FileWatch reads of a mrunc.watch.Watch, with events the test chooses."""
    name, error, lost, limit, dropped = "web", None, False, 100_000, 0

    def __init__(self, events):
        self._events, self.finished, self.listeners, self.closed = list(events), False, [], 0
        self.pending = []                # queued in the kernel, not read yet

    events = property(lambda self: list(self._events))
    version = property(lambda self: len(self._events))
    counts = Watch.counts
    filter = Watch.filter

    def subscribe(self, fn):
        self.listeners.append(fn)

    def close(self):
        self.closed += 1
        self.finished = True

    def flush(self):
        self._events += self.pending
        self.pending = []
        return True


def drawn_paths(html):
    return [cell.split("</td>")[0] for cell in html.split('<td class="mr-mono">')[2::2]]


def test_table_filters_by_operation_and_path_and_counts_all():
    counts = {"open": 2, "exec": 2, "modify": 1}
    page = table(EVENTS, name="web", counts=counts)
    assert page.count('class="mrunc-event"') == 5
    assert drawn_paths(page) == ["/bin/busybox", "/etc/passwd", "/tmp/out", "/tmp/out", "/tmp/cat"]
    assert [page.count(f'data-op="{op}"><td>') for op in ("open", "exec", "modify")] == [2, 2, 1]
    execs = table(EVENTS, name="web", counts=counts, operation="exec")
    assert drawn_paths(execs) == ["/bin/busybox", "/tmp/cat"]
    assert 'exec <b class="mrunc-count">2</b>' in execs and 'modify <b class="mrunc-count">1</b>' in execs
    tmp = table(EVENTS, name="web", counts=counts, path="/tmp/")
    assert drawn_paths(tmp) == ["/tmp/out", "/tmp/out", "/tmp/cat"]
    assert "match the filter" in table(EVENTS, name="web", counts=counts, path="nothing")
    assert "no file accesses</div>" in table([], name="web", counts={})


def test_table_draws_the_newest_rows_and_escapes_paths():
    many = [FileEvent(i / 1000, 5, "sh", "open", f"/f{i}") for i in range(250)]
    page = table(many, name="x", counts={"open": 250}, rows=200)
    assert page.count('class="mrunc-event"') == 200 and "… 50 earlier rows not drawn" in page
    assert drawn_paths(page)[-1] == "/f249"
    odd = table([FileEvent(0, 5, "<sh>", "open", "/tmp/<b>&")], name="a<b", counts={"open": 1})
    assert "/tmp/&lt;b&gt;&amp;" in odd and "&lt;sh&gt;" in odd and "<b>&" not in odd


def test_widget_filters_and_static_html_is_what_it_shows():
    wt = FakeWatch(EVENTS[:2])
    fw = FileWatch(wt)
    assert drawn_paths(fw.view.value) == ["/bin/busybox", "/etc/passwd"]
    assert fw.static_html() == fw.view.value
    fw.operation.value = "open"
    assert drawn_paths(fw.view.value) == ["/etc/passwd"]
    fw.operation.value = "all"
    fw.path.value = "bin"
    assert drawn_paths(fw.static_html()) == ["/bin/busybox"]
    fw.path.value = ""
    # live: the watch's thread calls the listener; a change is drawn, at most every 0.2 s
    wt._events += EVENTS[2:]
    fw._last = 0.0
    wt.listeners[0]()
    assert len(drawn_paths(fw.view.value)) == 5
    assert "watching…" in fw.view.value and not fw.stop_button.disabled
    # an export asks for every event made so far before it draws
    wt.pending = [FileEvent(0.03, 9, "cat", "open", "/etc/group")]
    fw.export_finish()
    assert drawn_paths(fw.static_html())[-1] == "/etc/group" and wt.pending == []
    fw.stop_button.click()
    assert wt.closed == 1 and fw.stop_button.disabled and "ended" in fw.view.value


def test_widget_says_what_is_missing():
    wt = FakeWatch(EVENTS)
    wt.limit, wt.dropped, wt.lost = 5, 7, True
    page = FileWatch(wt).static_html()
    assert "only the first 5 accesses are kept: 7 more were not" in page
    assert "the kernel&#x27;s queue overflowed" in page


def test_widget_says_why_when_there_is_no_watch():
    wt = FakeWatch([])
    wt.error, wt.finished = "the file-access monitor needs root: fanotify_init: EPERM", True
    page = FileWatch(wt).static_html()
    assert "needs root" in page and "not watching" in page


def test_bad_filters_are_one_line():
    for kw, text in (({"operation": "read"}, "operation 'read' is not one of open, exec, modify"),
                     ({"path": 3}, "path must be text")):
        with pytest.raises(WatchError) as e:
            check_filter(kw.get("operation"), kw.get("path"))
        assert str(e.value) == f"filter: {text}" or text in str(e.value)
        assert "\n" not in str(e.value)
    assert [e.path for e in FakeWatch(EVENTS).filter(operation="modify")] == ["/tmp/out"]


def test_watch_and_step_together_is_a_usage_error():
    ip = InteractiveShell.instance()
    magics = ContainerMagics(ip, sandbox=object())
    with pytest.raises(UsageError, match="--watch and --step do not go together"):
        magics.container("--watch --step", "true")
