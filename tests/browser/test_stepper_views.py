"""The stepper's clone and cgroup steps as root and as a student without root, in a real
JupyterLab (one server run by root, one by a user the test makes and removes): the student's
clone step shows the same new namespaces as root's — before exec, init reports its own view
(mrunc.process.selfview) — and both pages open the code that ran. Screenshots of each go to
test-artifacts/browser/stepper-{root,student}-{clone,cgroup}.png.
"""
import json
import os
import secrets
import shutil
import sys
from pathlib import Path

import pytest

from labserver import ARTIFACTS, IDLE, REPO, browser_page, lab, open_notebook, require_browser

pytestmark = [pytest.mark.browser, pytest.mark.root, pytest.mark.slow, pytest.mark.userns,
              pytest.mark.skipif(not shutil.which("useradd"), reason="useradd is not installed")]

NOTEBOOK = "stepper.ipynb"
CELL = ('from mrunc.notebook import stepper\n'
        'st = stepper("exec sleep 600", memory="32M", hostname="inside")\n'
        'st')


def _notebook():
    return json.dumps({"cells": [{"cell_type": "code", "execution_count": None, "id": "step",
                                  "metadata": {}, "outputs": [], "source": CELL}],
                       "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"}},
                       "nbformat": 4, "nbformat_minor": 5})


# What each step's page must show, for both: the namespaces clone made, and the code that ran.
SHOWN = {
    "clone": ["After clone", "pid namespace is now isolated",
              "mount namespace is now isolated", "network namespace is now isolated",
              "The code that ran", "mrunc.process.init:clone_child",
              "mrunc.process.parent:write_id_maps"],
    "cgroup": ["After cgroup", "The code that ran", "mrunc.process.init:cgroup_phase",
               "mrunc.process.parent:join_cgroup"],
}
ROOT_ONLY = {"cgroup": ["memory limit set: 32.0 MiB", "cgroup namespace is now isolated"]}
# rootless: a user namespace maps the student's uid to root inside
STUDENT_ONLY = {"clone": ["user namespace is now isolated", "read by the process itself"]}


@pytest.fixture(scope="module")
def student():
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    from students import make_students
    for made in make_students(1):
        yield made[0]


def _step_and_shoot(page, server, who, expect_more):
    from playwright.sync_api import expect
    open_notebook(page, server, NOTEBOOK)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    stepper = page.locator(".mrunc-stepper")
    expect(stepper).to_have_count(1, timeout=60000)
    page.wait_for_selector(IDLE, timeout=60000)
    panel = stepper.locator(".mrunc-panel")
    for phase in ("spec", "clone", "mount", "pivot_root", "cgroup"):
        stepper.locator("button.mrunc-next").click()
        expect(stepper.locator(f".mrunc-status[data-phase='{phase}']")).to_have_count(1, timeout=30000)
        if phase not in SHOWN:
            continue
        for words in SHOWN[phase] + expect_more.get(phase, []):
            expect(panel).to_contain_text(words, timeout=10000)
        assert "Partial snapshot" not in panel.inner_text()
        if phase == "clone":                # open the source of the phase function
            panel.locator("details.mr-source summary").first.click()
            expect(panel.locator("pre.mr-code").first).to_contain_text("def clone_child(")
        stepper.scroll_into_view_if_needed()
        stepper.screenshot(path=str(ARTIFACTS / f"stepper-{who}-{phase}.png"))
    stepper.locator("button.mrunc-abort").click()
    expect(stepper.locator(".mrunc-status")).to_contain_text("aborted after", timeout=30000)


def _in_lab(where, env, who, shown, user=None):
    """A lab server (as `user`, else root) with the notebook; step it in a browser."""
    require_browser()
    with lab(where, {NOTEBOOK: _notebook()}, env, user=user) as server, \
            browser_page(height=2400) as page:
        try:
            _step_and_shoot(page, server, who, shown)
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / f"stepper-{who}-failure.png"), full_page=True)
            raise


def test_root_sees_clone_and_cgroup(tmp_path):
    lab_root = f"/run/mrunc-browsertest-{secrets.token_hex(4)}"
    _in_lab(tmp_path, dict(os.environ, MRUNC_LAB_ROOT=lab_root), "root", ROOT_ONLY)
    assert not os.path.exists(lab_root)             # the kernel's sandbox closed with it


def test_a_student_sees_the_same_namespaces(student):
    home = Path(student.home) / "lab"
    home.mkdir()
    _in_lab(home, student.env(), "student", STUDENT_ONLY, user=student)
