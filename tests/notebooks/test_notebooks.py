"""Every notebook in notebooks/ runs headless and prints what its stored outputs say
(pytest-notebook): the words and the structure are compared, the volatile values — container names,
pids, sample counts, usage figures, column widths — are replaced by regexes first; widget outputs
are ignored (they are checked in a real browser: tests/browser).

Regenerate the stored outputs after an intended change (root):
    .venv/bin/python -m pytest tests/notebooks --nb-force-regen
"""
import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

pytestmark = [pytest.mark.root, pytest.mark.slow]

TEXT = "/cells/*/outputs/*/text"
HTML = "/cells/*/outputs/*/data/text/html"
IGNORE = (
    "/metadata/widgets",
    "/metadata/language_info",
    "/cells/*/metadata",
    "/cells/*/execution_count",
    "/cells/*/outputs/*/execution_count",
    "/cells/*/outputs/*/data/application/vnd.jupyter.widget-view+json",
    "/cells/*/outputs/*/data/text/plain",          # a widget's repr
    "/cells/*/outputs/*/traceback",
)
REPLACE = (
    (TEXT, r"\blab-[0-9a-f]{6}\b", "lab-ID"),
    (TEXT, r"\b\d+ samples\b", "N samples"),
    (TEXT, r"\b\d+(\.\d+)? (B|KiB)\b", "N KiB"),                 # small usage figures
    (TEXT, r"\b(running|created|paused)( +)\d+\b", r"\1 PID"),
    (TEXT, r"\d{10}\.\d+", "EPOCH"),
    (TEXT, r"\b(index|master|net_ns_pid)=\d+", r"\1=N"),        # netlink: interface indexes, pids
    (TEXT, r"(?m)^netem: .*$", "netem: RESULT"),                 # needs the kernel's sch_netem
    (TEXT, r" {2,}", " "),                                       # column widths
    # a live topology's static picture: byte counters and learned neighbours change every run
    (HTML, r"↑[^<]*", "↑COUNTERS"),
    (HTML, r"<tr><td>[0-9.]+</td><td>[0-9a-f:]*</td><td>[^<]*</td><td>[a-z]+</td></tr>", ""),
    (HTML, r"<tr><td colspan=4>no neighbours yet</td></tr>", ""),
    # the widgets' drawings beside their live views (mrunc.notebook.export): their words are
    # compared, not the samples, times and names of one run
    (HTML, r"(?s)<style>.*?</style>", "<style/>"),       # the look, not the words
    (HTML, r"\blab-[0-9a-f]{6}\b", "lab-ID"),
    (HTML, r'(?s)<svg class="mr-chart".*?</svg>', "CHART"),
    (HTML, r"\b\d+(\.\d+)? (s|ms)\b", r"N \2"),
    (HTML, r"memory reached [^,<]*", "memory reached N"),
    # the course notebooks (pivot-root-vs-chroot, propagation-and-volumes, overlay-layers,
    # oci-bundle-lifecycle, escapes): host paths, sandbox roots and tags, and the host's counts
    (TEXT, r"/tmp/mrunc-course-[^/\s\"']+", "/tmp/mrunc-course-X"),
    (TEXT, r"/run/mrunc-[^/\s\"']+", "/run/mrunc-ROOT"),
    (TEXT, r"\bmrunc-lab-[0-9a-f]{8}-", "mrunc-lab-TAG-"),
    (TEXT, r"\b\d+ (mounts|processes|open file descriptors|of them)\b", r"N \1"),
    (TEXT, r"\b(from its view at pivot_root|in both|fd/3/\.\./\.\. ?): \d+", r"\1: N"),
    # memory, pids and cpu: counters and measurements that change with the machine's load
    (TEXT, r"(?m)^(nr_periods|nr_throttled) \d+$", r"\1 N"),                   # cpu.stat
    (TEXT, r"\bsaw at most \d+ processes", "saw at most N processes"),
    (TEXT, r"\bpids\.events: max \d+", "pids.events: max N"),
    (TEXT, r"\bmeasured: [0-9.]+ CPU over [0-9.]+ s", "measured: N CPU over N s"),
    (TEXT, r"\bthrottled in \d+ of \d+ periods", "throttled in N of N periods"),
    (HTML, r"/proc/\d+/", "/proc/PID/"),                          # a snapshot card's source
    # capabilities the security phase dropped: as many as the caller had (this dev machine's root
    # lacks CAP_SYS_RESOURCE; a fresh machine's has it)
    (HTML, r"· \d+ dropped", "· N dropped"),
    (HTML, r'<del class="mr-badge mr-bad" title="CAP_SYS_RESOURCE \(dropped\)">sys_resource</del>', ""),
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook(path, request):
    from pytest_notebook.nb_regression import NBRegressionFixture
    if not (REPO / "rootfs" / "busybox" / "bin" / "busybox").exists():
        pytest.fail("busybox rootfs missing: run `make rootfs`")
    root = f"/run/mrunc-nbtest-{uuid.uuid4().hex[:8]}"       # the kernel's sandbox, ours alone
    fixture = NBRegressionFixture(
        exec_timeout=300, exec_cwd=str(path.parent), diff_ignore=IGNORE, diff_replace=REPLACE,
        exec_env={"MRUNC_LAB_ROOT": root},
        force_regen=bool(request.config.getoption("nb_force_regen", False)),
    )
    fixture.diff_color_words = False
    try:
        result = fixture.check(str(path))
    finally:        # a regeneration "fails" (NBRegressionError) after writing the file
        if fixture.force_regen:
            strip_widget_state(path)
    # this fresh run of the instructor version, graded by nbgrader's own rule: full marks (an error,
    # or anything on stderr, in a graded cell gives it zero). tests/notebooks/test_course.py has
    # nbgrader autograde the blank release of every notebook to zero.
    grades = nbgrader_grades(result.nb_final)
    assert grades and all(got == of for got, of in grades.values()), f"{path.name}: {grades}"
    # nothing of the notebook's kernel is left: its sandbox was closed when the kernel stopped
    assert not os.path.exists(root) and not os.path.exists(root + ".bundles"), os.listdir(root)


def nbgrader_grades(nb):
    """{grade_id: (points given, points)} of an executed notebook, as nbgrader autograde gives them."""
    from nbgrader.utils import determine_grade, is_grade
    return {c.metadata.nbgrader.grade_id: determine_grade(c) for c in nb.cells if is_grade(c)}


def strip_widget_state(path):
    """Regenerated outputs keep their widget outputs, but not the widgets' saved state (tens of
    KB of fresh model ids at every run; a reader's kernel makes the widgets again)."""
    import json
    nb = json.loads(path.read_text())
    nb["metadata"].pop("widgets", None)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
