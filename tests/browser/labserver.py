"""A private JupyterLab server (as root, or as another user) and a headless Chromium to drive it:
the recipe of shared/TESTING.md, shared by the browser tests."""
import contextlib
import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} missing: apt-get install chromium (make setup does)")
    pytest.importorskip("playwright.sync_api", reason="pip install playwright (make setup)")


@contextlib.contextmanager
def lab(tmp, notebooks, env=None, user=None):
    """JupyterLab serving copies of `notebooks` (name -> JSON text) from `tmp`, with fresh config
    dirs; as `user` (a students.Student) if given, else as root. Yields {base, token, root}."""
    env = dict(env if env is not None else os.environ)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_WORKSPACES_DIR",
                "JUPYTERLAB_SETTINGS_DIR"):
        env[var] = str(tmp / var.lower())
        os.makedirs(env[var])
    settings = Path(env["JUPYTERLAB_SETTINGS_DIR"])
    for ext, name, value in (("notebook-extension", "tracker", {"autoStartDefaultKernel": True}),
                             ("apputils-extension", "notification",
                              {"fetchNews": "false", "checkForUpdates": False})):
        (settings / "@jupyterlab" / ext).mkdir(parents=True)
        (settings / "@jupyterlab" / ext / f"{name}.jupyterlab-settings").write_text(json.dumps(value))
    root = tmp / "notebooks"
    root.mkdir()
    for name, text in notebooks.items():
        (root / name).write_text(text)
    as_user = {}
    if user is not None:
        gid = pwd.getpwuid(user.uid).pw_gid
        for dirpath, dirnames, filenames in os.walk(tmp):
            for n in [dirpath, *(os.path.join(dirpath, f) for f in dirnames + filenames)]:
                os.chown(n, user.uid, gid)
        as_user = {"user": user.uid, "group": gid, "extra_groups": []}
    port, token = _free_port(), secrets.token_hex(16)
    log = open(tmp / "lab.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", "--port-retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root, stdin=subprocess.DEVNULL, **as_user)
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
        yield {"base": base, "token": token, "root": root}
    finally:
        shutdown_kernels(base, token)
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def shutdown_kernels(base, token):
    """Through the server, as a user closing the notebook would: the kernel closes its sandbox."""
    try:
        with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=5) as r:
            kernels = json.load(r)
        for k in kernels:
            req = urllib.request.Request(f"{base}/api/kernels/{k['id']}?token={token}", method="DELETE")
            urllib.request.urlopen(req, timeout=30).close()
    except OSError:
        pass


@contextlib.contextmanager
def browser_page(width=1400, height=2800):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            yield browser.new_page(viewport={"width": width, "height": height})
        finally:
            browser.close()


def open_notebook(page, server, name, workspace=None):
    """Open notebook `name` and wait until its kernel is really connected and idle. In a fresh
    `workspace` if given: the default one would reopen every notebook opened before (and their kernels)."""
    where = f"/lab/workspaces/{workspace}/tree/" if workspace else "/lab/tree/"
    page.goto(f"{server['base']}{where}{name}?token={server['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60000)
    page.wait_for_selector(IDLE, timeout=60000)
    page.locator(".jp-Notebook .jp-Cell").first.click()      # the notebook is the current widget
    page.wait_for_function("""() => {
        const w = window.jupyterapp.shell.currentWidget;
        const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
        return w.sessionContext.isReady && k && k.connectionStatus === 'connected' && k.status === 'idle';
    }""", timeout=60000)


IDLE = ".jp-Notebook-ExecutionIndicator[data-status='idle']"
