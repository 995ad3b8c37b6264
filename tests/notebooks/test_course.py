"""The course as teachers use it, through nbgrader itself: `make course` releases every notebook
without its solutions and hidden tests, and `nbgrader autograde` gives the instructor version full
marks, the blank student version zero (without crashing), a correct submission written another way
full marks and a wrong one zero — because the checks read the containers' kernel state.
`make course-check` autogrades every notebook so (MRUNC_AUTOGRADE_ALL=1); make test the first two.

Autograde runs the notebooks' kernels, so their containers are real: as root, in a lab root of the
test's own (MRUNC_LAB_ROOT), which must be gone afterwards."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# Autograded in make test: whole notebooks, each run twice (instructor and blank). The others'
# instructor versions are shown to pass by their stored outputs (below), which the notebook tests
# compare with a fresh run; `make course-check` autogrades them all.
AUTOGRADED = [p.stem for p in NOTEBOOKS] if os.environ.get("MRUNC_AUTOGRADE_ALL") else \
    [n for n in ("start-here", "inside-a-container") if (REPO / "notebooks" / f"{n}.ipynb").exists()]

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(scope="module")
def course():
    """`make course` into a temporary course directory of ours (0700, removed afterwards)."""
    d = Path(tempfile.mkdtemp(prefix="mrunc-nbgrader-"))
    try:
        # -o setup: the suite runs after setup; apt and pip are not this test's business
        p = subprocess.run(["make", "-s", "-o", "setup", "course", f"COURSE_DIR={d}"], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def cells(path):
    return json.loads(Path(path).read_text())["cells"]


def meta(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def src(cell):
    s = cell["source"]
    return s if isinstance(s, str) else "".join(s)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_release_has_no_solutions_nor_hidden_tests(course, nb):
    released = course / "release" / nb.stem / nb.name
    assert released.exists(), sorted(os.listdir(course / "release"))
    teacher, student = cells(nb), cells(released)
    graded = [c for c in teacher if meta(c).get("grade")]
    # every notebook ends with 1–3 exercises, each a solution and a locked test cell with points
    assert 1 <= len(graded) <= 3 and all(meta(c).get("points") and meta(c).get("locked") for c in graded)
    assert all(meta(c).get("schema_version") == 3 for c in teacher if meta(c))
    ids = [meta(c)["grade_id"] for c in teacher if meta(c)]
    assert len(ids) == len(set(ids)), f"grade_id used twice in {nb.name}: {ids}"
    assert any(meta(c).get("solution") for c in teacher)
    text = "\n".join(src(c) for c in student)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    for c in teacher:
        if meta(c).get("solution") and "### BEGIN SOLUTION" in src(c):
            answer = src(c).split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0].strip()
            assert answer not in text, f"a solution of {nb.name} is in the release: {answer[:60]}"
    assert not any(c.get("outputs") for c in student if c["cell_type"] == "code")
    # the graded cells are the same cells, by id, with their points
    assert [meta(c)["grade_id"] for c in student if meta(c).get("grade")] == \
        [meta(c)["grade_id"] for c in graded]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_outputs_show_full_marks(nb):
    """The instructor version's stored outputs (which tests/notebooks/test_notebooks.py compares
    with a fresh run at every make test) show every graded cell passing: no error, no ✗."""
    for c in cells(nb):
        if meta(c).get("grade"):
            out = "".join("".join(o["text"]) for o in c.get("outputs", ()) if o["output_type"] == "stream")
            assert c.get("execution_count"), f"{nb.name}: {meta(c)['grade_id']} has no stored run"
            assert not any(o["output_type"] == "error" for o in c.get("outputs", ())), meta(c)["grade_id"]
            assert "✗" not in out, f"{nb.name}: {meta(c)['grade_id']}: {out}"


def autograde(course, assignment, submissions):
    """Put each {student: notebook} under submitted/, run `nbgrader autograde` as a teacher does,
    and return {student: (score, max_score)} from its gradebook, and the autograded notebooks."""
    for student, nb in submissions.items():
        d = course / "submitted" / student / assignment
        d.mkdir(parents=True)
        (d / f"{assignment}.ipynb").write_text(json.dumps(nb))
    lab_root = f"/run/mrunc-course-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "MRUNC_COURSE_DIR": str(course),
           "MRUNC_LAB_ROOT": lab_root}
    try:
        p = subprocess.run([str(VENV_BIN / "nbgrader"), "autograde", assignment, "--force"],
                           cwd=REPO / "notebooks", env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    finally:
        # the kernels' labs were closed when autograde stopped them
        assert not os.path.exists(lab_root) and not os.path.exists(lab_root + ".bundles")
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course}/gradebook.db") as gb:
        scores = {}
        for student in submissions:
            sub = gb.find_submission(assignment, student)
            scores[student] = (sub.score, sub.max_score)
    graded = {s: cells(course / "autograded" / s / assignment / f"{assignment}.ipynb") for s in submissions}
    return scores, graded


def errors(nb_cells, field="evalue"):
    """{grade_id: the error's value (or name)} of the graded cells that failed."""
    return {meta(c)["grade_id"]: o.get(field, "") for c in nb_cells if meta(c).get("grade")
            for o in c.get("outputs", ()) if o["output_type"] == "error"}


def fill(nb, answers):
    """The student version with each solution cell's stub replaced by answers[grade_id]."""
    nb = json.loads(json.dumps(nb))
    for c in nb["cells"]:
        gid = meta(c).get("grade_id")
        if gid in answers:
            assert "raise NotImplementedError()" in src(c)
            c["source"] = src(c).replace("raise NotImplementedError()", answers[gid])
    return nb


# start-here is also handed in by two more students: a correct answer written another way, and a
# wrong one (one nbgrader run for all four)
EXTRA = {"start-here": {
    # not the instructor's code: argv instead of the default, the container looked up by name
    "sample": {"first-solution": 'lab.start(args=["sleep", "600"], name="first", hostname="first", '
                                 'readonly=True)\nfirst = lab.get("first")'},
    "wrong": {"first-solution": 'first = lab.start(name="first", hostname="frist")'}}}


@pytest.mark.parametrize("name", AUTOGRADED)
def test_autograde_instructor_full_marks_blank_zero(course, name):
    teacher = json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())
    blank = json.loads((course / "release" / name / f"{name}.ipynb").read_text())
    extra = {student: fill(blank, answers) for student, answers in EXTRA.get(name, {}).items()}
    scores, graded = autograde(course, name, {"teacher": teacher, "blank": blank, **extra})
    full = scores["teacher"][1]
    assert full > 0 and scores["teacher"] == (full, full), errors(graded["teacher"])
    assert scores["blank"] == (0, full)
    # zero because the checks said why, not because the notebook broke: each graded cell failed
    # with an error of its own (its stub's NotImplementedError for a solution cell), the rest of
    # the notebook ran as usual, to its end
    blank = graded["blank"]
    assert set(errors(blank)) == {meta(c)["grade_id"] for c in blank if meta(c).get("grade")}
    assert all(name == "AssertionError" for name in errors(blank, "ename").values()), errors(blank)
    code = [c for c in blank if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code)
    failed = [src(c)[:40] for c in code if not meta(c) and any(o["output_type"] == "error" for o in c["outputs"])]
    assert not failed
    if name == "start-here":
        assert "there is no container to check (got None)" in errors(blank)["first-check"]
        assert scores["sample"] == (1, 1), errors(graded["sample"])
        assert scores["wrong"] == (0, 1)
        why = errors(graded["wrong"])["first-check"]
        assert "container first: 2 of 5 conditions not met" in why
        assert "its hostname is 'first' — it is 'frist'" in why
        assert "the mount at / is read-only — it is read-write" in why
