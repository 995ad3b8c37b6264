"""Every course notebook in a real JupyterLab, in headless Chromium (recipe: shared/TESTING.md).

For each notebooks/*.ipynb (a copy: JupyterLab autosaves): clear the outputs, Run All, wait until
the kernel is idle and every code cell has run, then check what a student would see: no error
output, no traceback on stderr, no widget that failed to render, no mrunc widget in its error
state. Then, as a teacher presenting would, every stepper nobody has walked yet is clicked through,
Next by Next, until it says done: after Run All each must still be walkable (no notebook may end by
closing its lab, which ends every session). One
full-notebook screenshot each goes to test-artifacts/browser/notebooks/. The kernel is shut down
between notebooks, and the lab root must then be gone: the kernel deleted its containers.
pytest-notebook (tests/notebooks) checks the outputs' words; this checks them in the browser, where
timing and widget rendering differ. One server and one browser for the module: a few minutes.
"""
import os
import secrets
import time

import pytest

from labserver import ARTIFACTS, REPO, browser_page, lab, open_notebook, require_browser, \
    shutdown_kernels

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SHOTS = ARTIFACTS / "notebooks"
# test_lab.py walks this one's stepper phase by phase, checking each panel's words: here it only
# runs, is checked for errors and photographed.
WALKED_ELSEWHERE = {"inside-a-container.ipynb"}

pytestmark = [pytest.mark.browser, pytest.mark.root, pytest.mark.slow]

# In the page: the kernel's state and, per code cell with source, its execution count and the
# outputs a student would call errors. Read from the notebook's model, not from the DOM, so a cell
# scrolled out of view counts too.
STATE_JS = """() => {
    const nb = window.jupyterapp.shell.currentWidget;
    const kernel = nb && nb.sessionContext.session && nb.sessionContext.session.kernel;
    const cells = nb.content.widgets.filter(c => c.model.type === 'code'
                                                 && c.model.sharedModel.getSource().trim());
    return {
        kernel: kernel ? kernel.status : null,
        pending: cells.filter(c => c.model.executionCount === null).length,
        counts: cells.map(c => c.model.executionCount),
        errors: cells.flatMap((c, i) => c.model.outputs.toJSON()
            .filter(o => o.output_type === 'error'
                         || (o.output_type === 'stream' && o.name === 'stderr'
                             && String(o.text).includes('Traceback')))
            .map(o => `code cell ${i}: ` + (o.output_type === 'error'
                ? `${o.ename}: ${o.evalue}` : String(o.text).slice(-600)))),
    };
}"""
DONE_JS = "() => { const s = (" + STATE_JS + ")(); " \
          "return s.kernel === 'idle' && (s.pending === 0 || s.errors.length > 0); }"


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    require_browser()
    lab_root = f"/run/mrunc-browsertest-{secrets.token_hex(4)}"
    env = dict(os.environ, MRUNC_LAB_ROOT=lab_root)
    with lab(tmp_path_factory.mktemp("lab"), {nb.name: nb.read_text() for nb in NOTEBOOKS},
             env) as server:
        yield dict(server, lab_root=lab_root)


@pytest.fixture(scope="module")
def browser(lab_server):
    with browser_page() as first:
        yield first.context.browser   # a page (and context) of its own per notebook


def test_the_course_has_its_notebooks():
    index = (REPO / "notebooks" / "README.md").read_text()
    assert len(NOTEBOOKS) >= 13
    missing = [nb.name for nb in NOTEBOOKS if f"({nb.name})" not in index]
    assert not missing, f"notebooks/README.md does not list {missing}"


@pytest.mark.parametrize("notebook", [nb.name for nb in NOTEBOOKS], ids=lambda n: n[:-len(".ipynb")])
def test_notebook_runs_clean_in_the_browser(lab_server, browser, notebook):
    SHOTS.mkdir(parents=True, exist_ok=True)
    stem = notebook[:-len(".ipynb")]
    page = browser.new_page()
    page.set_viewport_size({"width": 1400, "height": 1600})
    try:
        _run_and_check(lab_server, page, notebook)
        _screenshot(page, SHOTS / f"{stem}.png")
    except BaseException:
        _screenshot(page, SHOTS / f"{stem}-failure.png")
        raise
    finally:
        page.close()                # no beforeunload: the copy may be unsaved, that is fine
        _shut_down_and_check_cleanup(lab_server)


def _run_and_check(server, page, notebook):
    """Run All, check, then walk the steppers the notebook left unwalked, and check again."""
    from playwright.sync_api import expect
    open_notebook(page, server, notebook, workspace=f"every-{secrets.token_hex(4)}")
    page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    expect(page.locator(".jp-Notebook .jp-OutputArea-output")).to_have_count(0, timeout=10000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    _wait_and_check(page, notebook)
    if notebook not in WALKED_ELSEWHERE:
        for i in range(page.locator(".mrunc-stepper").count()):
            _walk(page.locator(".mrunc-stepper").nth(i), notebook,
                  SHOTS / f"{notebook[:-len('.ipynb')]}-stepper-{i}.png")
        _wait_and_check(page, notebook)


def _wait_and_check(page, notebook):
    """Wait until the kernel is idle and every cell ran (or one failed); then no error anywhere."""
    from playwright.sync_api import expect
    # every notebook runs in well under a minute on 2 cores; twice that before calling it hung
    try:
        page.wait_for_function(DONE_JS, timeout=120000, polling=250)
    except Exception:
        state = page.evaluate(STATE_JS)
        pytest.fail(f"{notebook}: not done after 120 s: kernel {state['kernel']}, "
                    f"{state['pending']} code cells not run, errors {state['errors']}")
    state = page.evaluate(STATE_JS)
    assert not state["errors"], f"{notebook}: error output\n" + "\n".join(state["errors"])
    assert state["pending"] == 0, f"{notebook}: code cells not run: {state['counts']}"
    assert state["counts"] == sorted(state["counts"]), f"{notebook}: ran out of order: {state['counts']}"
    outputs = page.locator(".jp-Notebook .jp-OutputArea-output")
    for words in ("Error displaying widget", "Traceback (most recent call last)"):
        expect(outputs.filter(has_text=words)).to_have_count(0)
    # a widget's own error state: mrunc widgets put "✗ …" in a .mrunc-bad status
    bad = page.locator(".jp-Notebook .mrunc-bad")
    assert bad.count() == 0, f"{notebook}: widget in error: {bad.all_text_contents()}"


def _walk(stepper, notebook, shot):
    """Next through every phase of a stepper the notebook left unwalked, each phase's status
    appearing in turn, until the status says done; then its picture. A stepper that can no
    longer be walked (its session ended: the lab was closed) fails, with the stepper's words."""
    from playwright.sync_api import expect
    status = stepper.locator(".mrunc-status")
    stepper.scroll_into_view_if_needed()
    words = status.text_content()       # text_content: innerText is empty until
                                        # content-visibility draws it
    if words.startswith("done:"):
        return                      # the notebook walked it itself (run_to_end in a cell)
    assert "not started yet" in words, f"{notebook}: a stepper after Run All says: {words}"
    phases = stepper.locator(".mrunc-panel ol.mr-phases li .mr-pname").all_text_contents()
    assert phases and phases[0] == "spec" and phases[-1] == "exec", f"{notebook}: phases {phases}"
    for phase in phases:
        stepper.locator("button.mrunc-next").click()
        reached = stepper.locator(f".mrunc-status[data-phase='{phase}'], .mrunc-status.mrunc-bad")
        expect(reached).to_have_count(1, timeout=30000)
        bad = stepper.locator(".mrunc-bad")
        assert bad.count() == 0, f"{notebook}: Next to {phase} after Run All: {bad.all_text_contents()}"
    expect(status).to_contain_text("done", timeout=30000)
    expect(stepper.locator("button.mrunc-next")).to_be_disabled()
    stepper.scroll_into_view_if_needed()
    stepper.screenshot(path=str(shot))


def _screenshot(page, path):
    """The whole notebook in one picture: the window made as tall as the notebook (JupyterLab
    scrolls inside its own panel, so a plain full-page shot would show only the window), twice:
    cells drawn for the first time may change the notebook's height."""
    try:
        for _ in range(2):
            height = page.evaluate("""() => {
                const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer');
                if (!p) return 0;
                p.scrollTop = 0;
                return p.scrollHeight; }""")
            page.set_viewport_size({"width": 1400, "height": max(1600, min(height + 200, 16000))})
            page.wait_for_timeout(500)          # offscreen cells render (content-visibility)
        page.screenshot(path=str(path), full_page=True)
    except Exception as e:  # noqa: BLE001 — a missing picture must not hide the real failure
        print(f"screenshot {path.name} failed: {e}")


def _shut_down_and_check_cleanup(server):
    shutdown_kernels(server["base"], server["token"])
    root = server["lab_root"]
    deadline = time.time() + 30
    while time.time() < deadline and (os.path.exists(root) and os.listdir(root)
                                      or os.path.exists(root + ".bundles")):
        time.sleep(0.25)
    assert not (os.path.exists(root) and os.listdir(root)), \
        f"containers left after the kernel stopped: {os.listdir(root)}"
    assert not os.path.exists(root + ".bundles"), f"bundles left: {os.listdir(root + '.bundles')}"
