"""The notebook in a real JupyterLab, in headless Chromium (Playwright; recipe: shared/TESTING.md).

Opens notebooks/inside-a-container.ipynb (a copy: JupyterLab autosaves), runs all cells, then clicks
the stepper's Next through every phase and checks that each panel shows the change that phase
makes; checks the live monitor drew the OOM kill. Screenshots go to test-artifacts/browser/.
Needs root (real containers), /usr/bin/chromium (`apt-get install chromium`) and the Python
playwright package — never `playwright install`.
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "inside-a-container.ipynb"
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"

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


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} missing: apt-get install chromium (make setup does)")
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (make setup)")
    tmp = tmp_path_factory.mktemp("lab")
    env = dict(os.environ, MRUNC_LAB_ROOT=f"/run/mrunc-browsertest-{secrets.token_hex(4)}")
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_WORKSPACES_DIR",
                "JUPYTERLAB_SETTINGS_DIR"):
        env[var] = str(tmp / var.lower())
        os.makedirs(env[var])
    settings = Path(env["JUPYTERLAB_SETTINGS_DIR"])
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"autoStartDefaultKernel": True}))
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    root = tmp / "notebooks"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp / "lab.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", "--port-retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                pytest.fail("jupyter lab did not start: " + (tmp / "lab.log").read_text()[-2000:])
            time.sleep(0.3)
        yield {"base": base, "token": token, "root": root, "lab_root": env["MRUNC_LAB_ROOT"]}
    finally:
        _shutdown_kernels(base, token)
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _shutdown_kernels(base, token):
    """Through the server, as a user closing the notebook would: the kernel closes its sandbox."""
    try:
        with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=5) as r:
            kernels = json.load(r)
        for k in kernels:
            req = urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}", method="DELETE")
            urllib.request.urlopen(req, timeout=30).close()
    except OSError:
        pass


@pytest.fixture(scope="module")
def page(lab_server):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        pg = browser.new_page(viewport={"width": 1400, "height": 2800})
        try:
            yield pg
        finally:
            browser.close()


def test_run_all_then_step_through_every_phase(lab_server, page):
    try:
        _run_all_then_step(lab_server, page)
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
        raise


def _run_all_then_step(lab_server, page):
    from playwright.sync_api import expect
    url = f"{lab_server['base']}/lab/tree/{NOTEBOOK.name}?token={lab_server['token']}"
    page.goto(url)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60000)
    idle = ".jp-Notebook-ExecutionIndicator[data-status='idle']"
    page.wait_for_selector(idle, timeout=60000)
    page.locator(".jp-Notebook .jp-Cell").first.click()      # the notebook is the current widget
    # the kernel really connected (the indicator says idle before that, too)
    page.wait_for_function("""() => {
        const w = window.jupyterapp.shell.currentWidget;
        const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
        return w.sessionContext.isReady && k && k.connectionStatus === 'connected' && k.status === 'idle';
    }""", timeout=60000)
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
    _shutdown_kernels(lab_server["base"], lab_server["token"])
    deadline = time.time() + 30
    lab_root = lab_server["lab_root"]
    while time.time() < deadline and (os.path.exists(lab_root) or os.path.exists(lab_root + ".bundles")):
        time.sleep(0.5)
    assert not os.path.exists(lab_root), f"containers left behind by the kernel: {os.listdir(lab_root)}"
    assert not os.path.exists(lab_root + ".bundles")
