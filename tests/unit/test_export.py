"""The widgets on paper (mrunc.notebook.export): each one's static drawing of its current state,
the collection an export runs in the kernel, the rewrite of a notebook's widget outputs, and (two
slow tests, a plain Python kernel) the command end to end. No root, no containers, no browser: the
fakes of test_widgets drive the real widgets (tests/browser/test_export.py opens a real export of
the real notebooks offline)."""
import html
import re
from pathlib import Path

import nbformat
import pytest

from mrunc.notebook import export
from mrunc.notebook.export import MIME, WIDGET_VIEW
from mrunc.notebook.widgets import Monitor, Stepper
from mrunc.sandbox import PHASES
from test_widgets import FakeContainer, FakeSession, MiB


def frames(page):
    """[(phase, the frame's html)] in the order drawn."""
    starts = [(m.start(), m.group(1)) for m in re.finditer(r'<div class="mr-card mr-frame[^"]*" data-phase="(\w+)"', page)]
    return [(phase, page[at:starts[i + 1][0] if i + 1 < len(starts) else len(page)])
            for i, (at, phase) in enumerate(starts)]


def test_filmstrip_shows_every_phase_with_what_it_changed():
    session = FakeSession()
    st = Stepper(session)
    assert "not started" in st.static_html() and not frames(st.static_html())
    st.export_finish()                     # what an export does: the walk nobody clicked through
    page = st.static_html()
    got = frames(page)
    assert [p for p, _ in got] == list(PHASES)
    for (phase, frame), step in zip(got, session.steps):
        assert step.phase == phase
        assert f"{step.ms:.1f} ms · {len(step.calls)} calls" in frame
        lines = step.summary()
        if phase != "spec":
            assert lines, phase                    # every later phase changed something visible
        for line in lines:
            assert html.escape(line) in frame, (phase, line)
    pivot = dict(got)["pivot_root"]
    assert "root switched (pivot_root)" in pivot
    assert "memory limit set" in dict(got)["cgroup"]
    assert page.count('class="mr-done"') == len(PHASES) - 1   # the phase bar: all walked
    assert "7 of 7 phases" in page and "container lab-fake" in page


def test_filmstrip_of_a_failed_walk_ends_red():
    st = Stepper(FakeSession(fail_at="mount"))
    st.export_finish()
    got = frames(st.static_html())
    assert [p for p, _ in got] == ["spec", "clone", "mount"]
    assert "mr-failed" in got[-1][1] and "mount /nope: no such file or directory" in got[-1][1]
    assert "mr-failed" not in got[1][1]


def test_monitor_chart_has_every_sample_and_the_oom_kill():
    m = Monitor(FakeContainer(), autostart=False)
    m.poll()
    m.poll()
    early = m.static_html()
    assert "OOM" not in early and len(_points(early)) == 2
    for _ in range(3):
        m.poll()
    page = m.static_html()
    assert page == m.chart.value                    # the drawing is what the widget shows now
    assert len(_points(page)) == len(m.samples) == 5
    assert page.count('class="mr-oom"') == 3 and "OOM killed at" in page
    assert "<svg" in page and f"{32 * MiB // MiB:.1f} MiB" in page


def _points(page):
    """The points of the memory line (the first polyline drawn)."""
    m = re.search(r'<polyline class="mr-use" points="([^"]*)"', page)
    return m.group(1).split() if m else []


def test_display_carries_the_drawing_and_collect_brings_it_up_to_date():
    st = Stepper(FakeSession())
    bundle = st._repr_mimebundle_()
    model_id = bundle[WIDGET_VIEW]["model_id"]
    assert bundle["text/html"] == st.static_html()         # the state when displayed…
    assert "not started" in bundle["text/html"]
    drawings = export.collect()                             # …and at the end of an export run
    assert [p for p, _ in frames(drawings[model_id])] == list(PHASES)
    unshown = Stepper(FakeSession())
    assert unshown.model_id not in export.collect()         # never displayed: no output to redraw


def _nb(*model_ids, state=True):
    nb = nbformat.v4.new_notebook()
    for mid in model_ids:
        cell = nbformat.v4.new_code_cell("w")
        cell.outputs = [nbformat.v4.new_output("display_data", data={
            "text/plain": "VBox()", "text/html": "stale", WIDGET_VIEW: {"model_id": mid}})]
        nb.cells.append(cell)
    if state:
        nb.metadata["widgets"] = {export.WIDGET_STATE: {"state": {}}}
    return nb


def test_export_replaces_widget_views_by_their_drawings():
    nb = _nb("a", "b")
    assert export.replace_views(nb, {"a": "<svg>A</svg>", "b": "<b>B</b>"}) == 2
    datas = [c.outputs[0]["data"] for c in nb.cells]
    assert datas[0]["text/html"] == "<svg>A</svg>" and datas[1]["text/html"] == "<b>B</b>"
    assert not any(WIDGET_VIEW in d for d in datas)
    assert "widgets" not in nb.metadata                # no view left to read the saved state


def test_other_widgets_keep_their_view_and_state():
    nb = _nb("a", "slider")
    assert export.replace_views(nb, {"a": "<svg>A</svg>"}) == 1
    assert WIDGET_VIEW in nb.cells[1].outputs[0]["data"]
    assert "widgets" in nb.metadata


def test_collected_drawings_are_read_from_the_last_cell():
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={MIME: {"a": "<p>x</p>"}})]
    assert export._collected(cell) == {"a": "<p>x</p>"}


def test_slide_breaks_at_headings_unless_the_author_set_them():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("1"),
                nbformat.v4.new_markdown_cell("text"), nbformat.v4.new_markdown_cell("## Next")]
    export.slide_breaks(nb)
    assert [c.metadata.get("slideshow", {}).get("slide_type") for c in nb.cells] == \
        ["slide", None, None, "slide"]
    nb.cells[1].metadata["slideshow"] = {"slide_type": "fragment"}
    nb.cells[0].metadata.pop("slideshow")
    export.slide_breaks(nb)
    assert "slideshow" not in nb.cells[0].metadata     # the author's choices stand


# ---- the command's bad input: one line, nothing written ---------------------------------------------

def _mrunc_export(*args, env=None):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "mrunc", "export", *args], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL, env=env)


def test_export_of_what_is_not_a_notebook_fails_in_one_line(tmp_path):
    (tmp_path / "x.ipynb").write_text("{not json")
    (tmp_path / "empty.ipynb").write_text("{}")
    for arg, says in ((str(tmp_path / "none.ipynb"), "none.ipynb: No such file or directory"),
                      (str(tmp_path / "x.ipynb"), "x.ipynb: not a notebook: "),
                      (str(tmp_path / "empty.ipynb"), "empty.ipynb: not a notebook: ")):
        p = _mrunc_export(arg, "--out", str(tmp_path / "out"))
        assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
        assert p.stderr.startswith("mrunc: export: ") and says in p.stderr, p.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_export_in_a_kernel_that_does_not_exist_fails_in_one_line(tmp_path):
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "k.ipynb")
    p = _mrunc_export(str(tmp_path / "k.ipynb"), "--kernel", "no-such-kernel", "--out",
                      str(tmp_path / "out"))
    assert p.returncode == 1
    assert p.stderr == f"mrunc: export: {tmp_path / 'k.ipynb'}: no kernel named 'no-such-kernel' " \
        "(--kernel)\n"
    assert not (tmp_path / "out").exists()


def test_bad_input_is_named_before_missing_assets(tmp_path):
    """What the user typed (the notebook, --kernel, the notebook's kernelspec) is judged before
    what the installation lacks (`make export-assets`)."""
    import os
    env = dict(os.environ, MRUNC_EXPORT_ASSETS=str(tmp_path / "none"))
    (tmp_path / "x.ipynb").write_text("{not json")
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "k.ipynb")
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "gone", "display_name": "gone"}})
    nbformat.write(nb, tmp_path / "m.ipynb")
    for args, said in (([str(tmp_path / "x.ipynb")], "x.ipynb: not a notebook: "),
                       ([str(tmp_path / "k.ipynb"), "--kernel", "no-such-kernel"],
                        "k.ipynb: no kernel named 'no-such-kernel' (--kernel)\n"),
                       ([str(tmp_path / "m.ipynb")],
                        "m.ipynb: no kernel named 'gone' (the notebook's metadata.kernelspec.name)\n")):
        p = _mrunc_export(*args, "--out", str(tmp_path / "out"), env=env)
        assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
        assert p.stderr.startswith(f"mrunc: export: {tmp_path / said}"), p.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_failing_cell_names_the_cell_and_writes_nothing(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("1 / 0")]
    nbformat.write(nb, tmp_path / "bad.ipynb")
    p = _mrunc_export(str(tmp_path / "bad.ipynb"), "--out", str(tmp_path / "out"), "--slides")
    assert p.returncode == 1, p.stderr
    assert p.stderr == "mrunc: export: " + str(tmp_path / "bad.ipynb") + \
        ": cell 3 failed: ZeroDivisionError: division by zero\n"
    assert not (tmp_path / "out").exists()


def test_shown_widgets_redraw_their_drawing_in_place():
    """Displayed with a display id; the end of the walk (and of the watch) updates that output,
    so a saved or nbclient-run notebook keeps the end state, not the first look — and only the
    end: JupyterLab re-creates the live view on each update."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display
    from IPython.utils.capture import capture_output
    InteractiveShell.instance()
    st = Stepper(FakeSession())
    m = Monitor(FakeContainer(), autostart=False)
    with capture_output() as shown:
        display(st)
        display(m)
        st.next_button.click()
        st.next_button.click()
        mid_walk = len(shown.outputs)
        st.run_button.click()
        for _ in range(5):
            m.poll()
    outs = shown.outputs
    first_st, first_m = outs[0], outs[1]
    ids = {o.transient["display_id"] for o in (first_st, first_m)}
    assert len(ids) == 2 and not first_st.update and WIDGET_VIEW in first_st.data
    updates = [o for o in outs[2:] if o.update]
    assert len(updates) == len(outs) - 2
    st_updates = [o for o in updates if o.transient["display_id"] == first_st.transient["display_id"]]
    assert mid_walk == 2                              # no update while the walk goes on
    assert len(st_updates) == 1                       # the walk is over
    assert [p for p, _ in frames(st_updates[-1].data["text/html"])] == list(PHASES)
    m_updates = [o for o in updates if o.transient["display_id"] == first_m.transient["display_id"]]
    assert len(m_updates) == 1                        # the end of the watch, not every sample
    assert "OOM killed at" in m_updates[-1].data["text/html"]
    assert m_updates[-1].data[WIDGET_VIEW] == first_m.data[WIDGET_VIEW]   # the live view stays


def test_slides_take_reveal_from_where_they_are_told():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# One"), nbformat.v4.new_markdown_cell("## Two")]
    default = export._slides(nb, None)
    local = export._slides(nb, "reveal.js-4")
    assert 'href="reveal.js-4/dist/reveal.css"' in local and '"reveal.js-4/dist/reveal.js"' in local
    assert "reveal.js-4/dist" not in default
    assert '"mrunc-assets/reveal.js/dist/reveal.js"' in default    # the copy beside the slides
    assert local.count("<section") == 2 * 2              # a slide (outer + inner section) per heading
    assert "slideshow" not in nb.cells[0].metadata          # the caller's notebook is left as it was


def test_an_error_while_drawing_is_named_so():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(export._COLLECT_CELL)
    cell.outputs = [nbformat.v4.new_output("error", ename="KeyError", evalue="'x'", traceback=[])]
    nb.cells = [nbformat.v4.new_code_cell("1"), cell]
    assert export._first_error(nb, None) == "drawing the widgets failed: KeyError: 'x'"


@pytest.mark.slow
def test_export_end_to_end_without_containers(tmp_path):
    """The whole pipeline — nbclient, the collecting cell, the rewrite, nbconvert — on widgets over
    this file's fakes: a stepper nobody walked and a monitor that saw its OOM kill after it was
    displayed. Both must be on paper in their end state."""
    here = Path(__file__).parent
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Fakes"),
        nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(here)!r})\n"
                                  "from test_widgets import FakeContainer, FakeSession\n"
                                  "from mrunc.notebook.widgets import Monitor, Stepper\n"
                                  "Stepper(FakeSession())"),
        nbformat.v4.new_code_cell("m = Monitor(FakeContainer(), autostart=False)\nm"),
        nbformat.v4.new_code_cell("for _ in range(5):\n    m.poll()"),
    ]
    nbformat.write(nb, tmp_path / "fakes.ipynb")
    paths = export.export(tmp_path / "fakes.ipynb", tmp_path / "out", slides=True, ipynb=True,
                          timeout=120)
    assert [p.name for p in paths] == ["fakes.html", "fakes.slides.html", "fakes.ipynb"]
    done = nbformat.read(tmp_path / "out" / "fakes.ipynb", as_version=4)
    assert len(done.cells) == 4                                   # the collecting cell is gone
    stepper, monitor = (c.outputs[0]["data"] for c in done.cells[1:3])
    assert WIDGET_VIEW not in stepper and WIDGET_VIEW not in monitor
    assert [p for p, _ in frames(stepper["text/html"])] == list(PHASES)
    assert "OOM killed at" in monitor["text/html"] and len(_points(monitor["text/html"])) == 5
    for page in paths[:2]:
        text = page.read_text()
        assert text.count('class="mr-card mr-frame') == len(PHASES) and "OOM killed at" in text
        assert "application/vnd.jupyter.widget-view+json" not in text


def test_every_mrunc_widget_can_be_drawn_on_paper():
    """A widget class of mrunc.notebook that is not a StaticView would be a blank (or a CDN-loaded,
    dead) box in every export: each one derives from StaticView and draws itself."""
    import importlib
    import inspect
    import pkgutil

    import ipywidgets

    import mrunc.notebook
    found = []
    for mod in pkgutil.iter_modules(mrunc.notebook.__path__):
        m = importlib.import_module(f"mrunc.notebook.{mod.name}")
        for _, cls in inspect.getmembers(m, inspect.isclass):
            if cls.__module__ == m.__name__ and issubclass(cls, ipywidgets.DOMWidget):
                found.append(cls)
                assert issubclass(cls, export.StaticView), f"{cls.__qualname__} is not a StaticView"
                assert cls.static_html is not export.StaticView.static_html, cls.__qualname__
    assert {c.__name__ for c in found} >= {"Stepper", "Monitor", "ContainerList", "Topology"}


# ---- offline: every file a page loads is beside it --------------------------------------------------

def _assets():
    src = export.assets_source()
    try:
        export.check_assets(src)
    except export.ExportError as e:
        pytest.fail(f"{e} (make test does)")
    return src


class _Loads(__import__("html.parser").parser.HTMLParser):
    """What a page loads by itself: script src, stylesheet href, img/iframe/source src, CSS
    url()/@import in <style>, and URL strings in inline scripts (require([...]), import(...)).
    Not what a reader may click (<a href>), nor prose in comments."""

    def __init__(self):
        super().__init__()
        self.urls, self.scripts, self.styles, self._in = [], [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "audio", "video", "embed") and a.get("src"):
            self.urls.append(a["src"])
        if tag == "link" and "stylesheet" in (a.get("rel") or "") or tag == "link" and \
                a.get("rel") in ("preload", "modulepreload", "icon"):
            self.urls.append(a["href"])
        if tag == "object" and a.get("data"):
            self.urls.append(a["data"])
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts.append(data)
        elif self._in == "style":
            self.styles.append(data)


def css_urls(css):
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    return [m.group(1) or m.group(2) for m in
            re.finditer(r"""url\(\s*['"]?([^'")]+)['"]?\s*\)|@import\s+['"]([^'"]+)['"]""", css)]


# nbconvert's Mermaid loader: it imports mermaid's module (from its CDN) only when the page has a
# diagram (.jp-Mermaid), and Chromium never loads a module from file:// anyway. No mrunc notebook
# has one.
_MERMAID_LOADER = 'document.querySelectorAll(".jp-Mermaid > pre.mermaid")'


def page_loads(page: Path) -> list[str]:
    """Every URL `page` (an exported HTML file) loads by itself (not its CSS files' own)."""
    text = page.read_text()
    parser = _Loads()
    parser.feed(text)
    urls = list(parser.urls)
    for css in parser.styles:
        urls += css_urls(css)
    for script in parser.scripts:
        if _MERMAID_LOADER in script:
            assert not re.search(r'class="[^"]*\bjp-Mermaid\b', text), \
                f"{page.name}: a Mermaid diagram needs the network"
            continue
        urls += re.findall(r"""["'](https?://[^"']+|[^"' ]+\.(?:js|css|mjs)(?:\?[^"']*)?)["']""",
                           script)
    return urls


def _resolved(base: Path, url: str) -> Path:
    assert not re.match(r"^[a-z][a-z0-9+.-]*:", url, re.I) and not url.startswith("//"), \
        f"{base.name} loads {url}: not beside it (offline, nothing is there)"
    return (base.parent / url.split("?")[0].split("#")[0]).resolve()


def check_self_contained(out: Path) -> int:
    """Each page's loads — and the CSS files' own url()/@import, transitively — are files inside
    `out`. Returns how many files were checked."""
    seen, todo = set(), [(p, u) for p in out.glob("*.html") for u in page_loads(p)]
    while todo:
        base, url = todo.pop()
        if url.startswith("data:"):
            continue
        f = _resolved(base, url)
        assert f.is_file(), f"{base.name} loads {url}: no such file ({f})"
        assert out.resolve() in f.parents, f"{base.name} loads {url}: outside the export ({f})"
        if f not in seen and f.suffix == ".css":
            todo += [(f, u) for u in css_urls(f.read_text())]
        seen.add(f)
    return len(seen)


def test_exported_pages_load_nothing_from_the_network(tmp_path):
    """HTML and slides, with math, written and their assets copied as `export()` does; then the
    export dir is moved elsewhere: every script, stylesheet, font and module they load is a file
    inside it, none a URL (a CDN, a Google font)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# One\n$x^2$, a [link](https://example.org)"),
                nbformat.v4.new_code_cell("1"), nbformat.v4.new_markdown_cell("## Two")]
    first = tmp_path / "first"
    first.mkdir()
    export._write(first / "n.html", export._html(nb))
    export._write(first / "n.slides.html", export._slides(nb, None))
    export.copy_assets(_assets(), first)
    moved = tmp_path / "elsewhere" / "talk"
    moved.parent.mkdir()
    first.rename(moved)
    checked = check_self_contained(moved)
    files = {f.relative_to(moved / export.ASSETS).as_posix() for f in (moved / export.ASSETS).rglob("*")}
    for must in ("requirejs/require.js", "jquery/dist/jquery.min.js", "reveal.js/dist/reveal.js",
                 "reveal.js/plugin/notes/notes.js", "mathjax/MathJax.js"):
        assert must in files, must
    assert checked >= 8, checked                  # scripts, stylesheets, the theme's font files
    assert "https://example.org" in (moved / "n.html").read_text()   # links stay links


def test_the_scan_sees_what_a_cdn_page_loads(tmp_path):
    """The check above fails on nbconvert's own defaults (each one a CDN)."""
    from nbconvert import HTMLExporter, SlidesExporter
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# One")]
    for name, exporter in (("h.html", HTMLExporter()), ("s.html", SlidesExporter())):
        d = tmp_path / name
        d.mkdir()
        export._write(d / name, exporter.from_notebook_node(nb)[0])
        with pytest.raises(AssertionError, match="loads https://"):
            check_self_contained(d)


def test_export_without_its_assets_says_how_to_get_them(tmp_path):
    """Checked before the notebook runs: one line naming the missing file and the make target,
    nothing written."""
    import os
    import subprocess
    import sys
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "n.ipynb")
    (tmp_path / "half" / "requirejs").mkdir(parents=True)
    (tmp_path / "half" / "requirejs" / "require.js").write_text("")
    for assets, missing in ((tmp_path / "none", "requirejs/require.js"),
                            (tmp_path / "half", "requirejs/package.json")):
        p = subprocess.run([sys.executable, "-m", "mrunc", "export", str(tmp_path / "n.ipynb"),
                            "--out", str(tmp_path / "out"), "--slides"], capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL,
                           env=dict(os.environ, MRUNC_EXPORT_ASSETS=str(assets)))
        assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
        assert p.stderr.startswith(f"mrunc: export: {assets / missing} is missing "), p.stderr
        assert "run `make export-assets`" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()
