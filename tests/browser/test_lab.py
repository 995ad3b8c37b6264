"""The notebook in a real JupyterLab, in headless Chromium (Playwright; recipe: shared/TESTING.md).

Opens notebooks/inside-a-container.ipynb (a copy: JupyterLab autosaves), runs all cells, then clicks
the stepper's Next through every phase and checks that each panel shows the change that phase
makes; checks the live monitor drew the OOM kill. Screenshots go to test-artifacts/browser/.
Needs root (real containers), /usr/bin/chromium (`apt-get install chromium`) and the Python
playwright package — never `playwright install`.
"""
import os
import secrets
import time

import pytest

from mrunc import phases

from labserver import ARTIFACTS, IDLE, REPO, browser_page, lab, open_notebook, require_browser, \
    shutdown_kernels

NOTEBOOK = REPO / "notebooks" / "inside-a-container.ipynb"

pytestmark = [pytest.mark.browser, pytest.mark.root, pytest.mark.slow]

# phase -> words its panel must show (what that phase changed)
EXPECT = {
    "spec": ["After spec", "first look"],
    "clone": ["After clone", "namespace is now isolated", "its own process numbers"],
    "mount": ["After mount", "mounts added", "proc on"],
    "pivot_root": ["After pivot_root", "root switched (pivot_root)", "hostname is now 'inside'"],
    "cgroup": ["After cgroup", "memory limit set: 32.0 MiB", "cgroup namespace is now isolated"],
    "security": ["After security", "capabilities", "no_new_privs is now set"],
    "exec": ["After exec", "exec'd a new program"],
}
PHASES = list(EXPECT)


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    require_browser()
    lab_root = f"/run/mrunc-browsertest-{secrets.token_hex(4)}"
    env = dict(os.environ, MRUNC_LAB_ROOT=lab_root)
    with lab(tmp_path_factory.mktemp("lab"), {NOTEBOOK.name: NOTEBOOK.read_text()}, env) as server:
        yield dict(server, lab_root=lab_root)


@pytest.fixture(scope="module")
def page(lab_server):
    with browser_page() as pg:
        yield pg


def test_run_all_then_step_through_every_phase(lab_server, page):
    try:
        _run_all_then_step(lab_server, page)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
        raise


def _run_all_then_step(lab_server, page):
    from playwright.sync_api import expect
    open_notebook(page, lab_server, NOTEBOOK.name)
    idle = IDLE
    page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    expect(page.locator(".jp-OutputArea-output")).to_have_count(0, timeout=10000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")

    # the monitor's cell waits for the OOM kill; when its text is out, every cell has run
    out = page.locator(".jp-OutputArea-output", has_text="awk ended with status 137")
    expect(out).to_have_count(1, timeout=120000)
    page.wait_for_selector(idle, timeout=60000)
    for cell_text in ("killed by the kernel's OOM killer", "I am root on demo, and my PID is 1",
                      "memory limit"):
        expect(page.locator(".jp-OutputArea-output", has_text=cell_text).first).to_be_visible()
    assert not page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                            has_text="Traceback").count()

    monitor = page.locator(".mrunc-monitor")
    expect(monitor).to_contain_text("OOM killed", timeout=30000)
    expect(monitor.locator("svg.mr-chart line.mr-oom").first).to_be_attached()
    monitor.scroll_into_view_if_needed()
    monitor.screenshot(path=str(ARTIFACTS / "monitor-oom.png"))
    page.screenshot(path=str(ARTIFACTS / "after-run-all.png"))

    stepper = page.locator(".mrunc-stepper")
    expect(stepper).to_have_count(1)
    expect(stepper.locator(".mrunc-status")).to_contain_text("not started yet")
    next_button = stepper.locator("button.mrunc-next")
    panel = stepper.locator(".mrunc-panel")
    for i, phase in enumerate(PHASES):
        next_button.click()
        expect(stepper.locator(f".mrunc-status[data-phase='{phase}']")).to_have_count(1, timeout=30000)
        for words in EXPECT[phase]:
            expect(panel).to_contain_text(words, timeout=10000)
        expect(panel.locator(".mr-fn-ref").first).to_have_text(phases.get(phase).function)
        # the phase bar: this phase is current, every one before it done
        expect(panel.locator("ol.mr-phases li.mr-done")).to_have_count(i)
        expect(panel.locator("ol.mr-phases li.mr-now .mr-pname")).to_have_text(phase)
        stepper.scroll_into_view_if_needed()
        stepper.screenshot(path=str(ARTIFACTS / f"step-{i + 1}-{phase}.png"))
    expect(stepper.locator(".mrunc-status")).to_contain_text("done")
    expect(next_button).to_be_disabled()
    # the pivot_root banner and the cgroup meter, drawn by render.py, are in the page
    expect(panel.locator(".mr-meter").first).to_be_visible()


def test_nothing_left_after_the_kernel_stops(lab_server, page):
    shutdown_kernels(lab_server["base"], lab_server["token"])
    deadline = time.time() + 30
    lab_root = lab_server["lab_root"]
    while time.time() < deadline and (os.path.exists(lab_root) or os.path.exists(lab_root + ".bundles")):
        time.sleep(0.5)
    assert not os.path.exists(lab_root), f"containers left behind by the kernel: {os.listdir(lab_root)}"
    assert not os.path.exists(lab_root + ".bundles")
