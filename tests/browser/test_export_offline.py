"""`mrunc export` for talks and theses, checked the way a reader sees it: offline, in Chromium.

Exports notebooks/inside-a-container.ipynb (HTML and reveal.js slides) and notebooks/networking.ipynb
(HTML) with the real command, moves the export dir elsewhere (it must carry all it needs), then
opens the files from file:// with the network cut (the browser context is offline and every
non-file request is aborted — and recorded: none may be made) and checks what a reader must see
without a kernel: the stepper as a filmstrip of its seven phases, each with what that phase
changed — although the notebook never presses Next, the export walks it — the monitor's chart
with the OOM kill it drew after it was displayed, and the lab network's topology. The slides must
be slides: reveal.js (copied beside them) ran, one slide shows at a time, → moves on, and the
filmstrip and the chart show on their own slides. Screenshots go to test-artifacts/browser/export/.
Needs root (real containers), /usr/bin/chromium, the Python playwright package — never
`playwright install` — and `make export-assets` (make test runs it).
"""
import os
import re
import secrets
import shutil
import subprocess
import sys
import time

import pytest

from labserver import REPO, browser_page, require_browser

NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts" / "browser" / "export"

pytestmark = [pytest.mark.browser, pytest.mark.root, pytest.mark.slow]

# phase -> what its frame must say that phase changed (Diff.summary() of the real run)
CHANGED = {
    "spec": ["read and check config.json", "first look"],
    "clone": ["pid namespace is now isolated", "network namespace is now isolated"],
    "mount": ["mounts added", "proc on"],
    "pivot_root": ["root switched (pivot_root)", "hostname is now 'inside'"],
    "cgroup": ["memory limit set: 32.0 MiB", "pids limit set: 32"],
    "security": ["capabilities", "no_new_privs is now set"],
    "exec": ["exec'd a new program"],
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The two notebooks exported by `mrunc export`; their kernels' containers must be gone after."""
    out = tmp_path_factory.mktemp("export")
    lab_root = f"/run/mrunc-exporttest-{secrets.token_hex(4)}"
    env = dict(os.environ, MRUNC_LAB_ROOT=lab_root)
    seconds = {}
    for name, extra in (("inside-a-container", ["--slides", "--ipynb"]), ("networking", [])):
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-m", "mrunc", "export", str(NOTEBOOKS / f"{name}.ipynb"),
                            "--out", str(out), *extra], env=env, capture_output=True, text=True,
                           timeout=600, stdin=subprocess.DEVNULL)
        seconds[name] = time.monotonic() - t0
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == [str(out / f"{name}.html")] + (
            [str(out / f"{name}.slides.html"), str(out / f"{name}.ipynb")] if extra else [])
    print(f"export times: {', '.join(f'{k} {v:.1f} s' for k, v in seconds.items())}")
    assert not os.path.exists(lab_root), f"the export's kernel left containers: {os.listdir(lab_root)}"
    assert not os.path.exists(lab_root + ".bundles")
    moved = tmp_path_factory.mktemp("elsewhere") / "talk"    # a copy of the dir is all a reader gets
    shutil.move(out, moved)
    return moved


@pytest.fixture(scope="module")
def offline(exported):
    """A page in a browser context with no network: (page, the outside URLs it tried)."""
    require_browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tried = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            tried.append(route.request.url)
            route.abort()
    with browser_page(1400, 1000) as page:
        page.context.set_offline(True)
        page.context.route("**/*", only_files)
        yield page, tried


def _open(page, path):
    page.goto(path.as_uri())
    page.wait_for_load_state("load")


def _filmstrip(page, prefix):
    from playwright.sync_api import expect
    strip = page.locator(".mrunc-filmstrip")
    expect(strip).to_have_count(1)
    frames = strip.locator(".mr-frame")
    expect(frames).to_have_count(len(CHANGED))
    for i, (phase, words) in enumerate(CHANGED.items()):
        frame = frames.nth(i)
        assert frame.get_attribute("data-phase") == phase
        expect(frame).to_be_visible()
        expect(frame.locator(".mr-pname")).to_have_text(phase)
        for w in words:
            expect(frame).to_contain_text(w)
    expect(strip.locator("ol.mr-phases li.mr-done")).to_have_count(len(CHANGED) - 1)
    strip.scroll_into_view_if_needed()
    strip.screenshot(path=str(ARTIFACTS / f"{prefix}-filmstrip.png"))


def _chart(page, prefix):
    from playwright.sync_api import expect
    chart = page.locator(".mr-monitor")
    expect(chart).to_have_count(1)
    svg = chart.locator("svg.mr-chart")
    expect(svg).to_be_visible()
    expect(chart).to_contain_text("OOM killed")
    expect(svg.locator("line.mr-oom").first).to_be_attached()
    points = svg.locator("polyline.mr-use").first.get_attribute("points").split()
    assert len(points) >= 10, "the chart should hold the samples taken until the OOM kill"
    box = svg.bounding_box()
    assert box["width"] > 300 and box["height"] > 150, box
    chart.scroll_into_view_if_needed()
    chart.screenshot(path=str(ARTIFACTS / f"{prefix}-monitor.png"))


def _no_widget_view(page):
    """No live widget view left waiting for a script from the network."""
    assert page.locator("script[type='application/vnd.jupyter.widget-view+json']").count() == 0


def test_exported_html_shows_every_phase_and_the_oom_chart_offline(exported, offline):
    page, tried = offline
    _open(page, exported / "inside-a-container.html")
    try:
        _filmstrip(page, "html")
        _chart(page, "html")
        _no_widget_view(page)
        # the cells really ran: their output is in the page
        from playwright.sync_api import expect
        expect(page.get_by_text("awk ended with status 137")).to_have_count(1)
        expect(page.get_by_text(re.compile("I am root on demo, and my PID is 1"))).to_have_count(1)
    finally:
        page.screenshot(path=str(ARTIFACTS / "html-top.png"))
    assert tried == [], f"the page asked the network for {tried}"
    assert page.evaluate("typeof require === 'function' && typeof MathJax === 'object'"), \
        "require.js and MathJax, copied beside the page, should have loaded"


def test_exported_notebook_carries_the_drawings_not_the_widgets(exported):
    """NAME.ipynb, for GitHub or a Jupyter Book built without executing: every output that was a
    widget is its drawing now, and no widget state is left to need a kernel or a CDN."""
    import nbformat
    nb = nbformat.read(exported / "inside-a-container.ipynb", as_version=4)
    datas = [o.get("data", {}) for c in nb.cells for o in c.get("outputs", ())]
    assert not any("application/vnd.jupyter.widget-view+json" in d for d in datas)
    assert "widgets" not in nb.metadata
    html = [d["text/html"] for d in datas if "text/html" in d]
    strip = next(h for h in html if "mrunc-filmstrip" in h)
    assert re.findall(r'mr-frame[^"]*" data-phase="(\w+)"', strip) == list(CHANGED)
    assert any("OOM killed at" in h and "<svg" in h for h in html)
    assert not any("mrunc.notebook.export" in "".join(c.source) for c in nb.cells)  # the collecting cell


# reveal.js is an AMD module there (loaded by require.js, as nbconvert's template does)
_REVEAL = "((f) => new Promise(ok => require(['mrunc-assets/reveal.js/dist/reveal.js'], R => ok(f(R)))))"


def _reveal(page, expression):
    """`expression` (of R, the Reveal API) evaluated in the page."""
    return page.evaluate(f"{_REVEAL}(R => {expression})")


def _shown_slides(page):
    """The top-level slides a reader sees now: displayed, not transparent, inside the window."""
    return page.evaluate("""() => [...document.querySelectorAll('.reveal .slides > section')]
        .map((s, i) => [i, s, s.getBoundingClientRect(), getComputedStyle(s)])
        .filter(([i, s, r, st]) => st.display !== 'none' && st.visibility !== 'hidden' &&
                Number(st.opacity) > 0 && r.width > 0 && r.height > 0 && r.right > 0 &&
                r.bottom > 0 && r.left < innerWidth && r.top < innerHeight)
        .map(([i]) => i)""")


def _go_to_slide_of(page, selector):
    """Show the slide that holds `selector` (as a reader would, by its number); returns it."""
    h = page.evaluate(f"""() => [...document.querySelectorAll('.reveal .slides > section')]
        .findIndex(s => s.querySelector({selector!r}))""")
    assert h >= 0, f"no slide holds {selector}"
    _reveal(page, f"R.slide({h})")
    _wait_present(page, h)
    return h


def _wait_present(page, h):
    """Slide h is the current one, alone on screen, once its transition (0.8 s) is over."""
    page.wait_for_function(f"() => document.querySelectorAll('.reveal .slides > section')[{h}]"
                           ".classList.contains('present')")
    page.wait_for_timeout(1000)
    assert _reveal(page, "R.getIndices().h") == h
    assert _shown_slides(page) == [h], "one slide at a time"
    assert _cut_off(page, h) == 0, f"slide {h}: taller than the screen, and it does not scroll"


def _cut_off(page, h):
    """How many parts of slide h go past the bottom of the screen with no scroll bar to reach them."""
    return page.evaluate(f"""() => [...document.querySelectorAll('.reveal .slides > section')[{h}]
        .querySelectorAll('section')].filter(s => s.getBoundingClientRect().bottom > innerHeight + 1
            && !['scroll', 'auto'].includes(getComputedStyle(s).overflowY)).length""")


def test_exported_slides_are_slides_offline(exported, offline):
    from playwright.sync_api import expect
    page, tried = offline
    _open(page, exported / "inside-a-container.slides.html")
    try:
        expect(page.locator(".reveal.ready")).to_have_count(1, timeout=30000)  # reveal.js ran
        assert _reveal(page, "R.isReady()") is True
        total = page.locator(".reveal .slides > section").count()
        assert total >= 5, "one slide per heading"
        assert _reveal(page, "R.getTotalSlides()") >= total
        _wait_present(page, 0)
        page.screenshot(path=str(ARTIFACTS / "slides-first.png"))
        page.keyboard.press("ArrowRight")                            # → : the next slide
        _wait_present(page, 1)
        page.screenshot(path=str(ARTIFACTS / "slides-second.png"))

        _go_to_slide_of(page, ".mrunc-filmstrip")
        _filmstrip(page, "slides")
        page.screenshot(path=str(ARTIFACTS / "slides-stepper-slide.png"))
        _go_to_slide_of(page, ".mr-monitor")
        _chart(page, "slides")
        page.screenshot(path=str(ARTIFACTS / "slides-monitor-slide.png"))
        _no_widget_view(page)
    finally:
        page.screenshot(path=str(ARTIFACTS / "slides-last.png"))
    assert tried == [], f"the slides asked the network for {tried}"


def test_a_tall_first_slide_scrolls_offline(offline, tmp_path):
    """nbconvert makes a slide taller than the screen scroll when reveal.js moves to it: the
    export's slides do it for the first one too (else its end is out of reach)."""
    import nbformat

    from mrunc.notebook import export
    page, tried = offline
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Tall\n\n" + "\n\n".join(f"line {i}" for i in range(60))),
                nbformat.v4.new_markdown_cell("## Short")]
    export._write(tmp_path / "tall.slides.html", export._slides(nb, None))
    export.copy_assets(export.assets_source(), tmp_path)
    _open(page, tmp_path / "tall.slides.html")
    page.wait_for_selector(".reveal.ready", timeout=30000)
    page.wait_for_timeout(1000)
    overflow = page.evaluate("() => getComputedStyle(document.querySelector("
                             "'.reveal .slides > section > section')).overflowY")
    assert overflow == "scroll" and _cut_off(page, 0) == 0
    page.screenshot(path=str(ARTIFACTS / "slides-tall-first.png"))
    assert tried == [], f"the slides asked the network for {tried}"


def test_exported_topology_offline(exported, offline):
    from playwright.sync_api import expect
    page, tried = offline
    _open(page, exported / "networking.html")
    figures = page.locator(".mrunc-topology-figure svg.mrunc-topology")
    expect(figures).to_have_count(2)         # the notebook's two Topology widgets, drawn on paper
    for i in range(2):
        expect(figures.nth(i)).to_be_visible()
    figures.first.scroll_into_view_if_needed()
    page.locator(".mrunc-topology-figure").first.screenshot(path=str(ARTIFACTS / "topology.png"))
    assert tried == [], f"the page asked the network for {tried}"
