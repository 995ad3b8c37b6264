"""nbgrader's configuration for the mrunc course (nbgrader 0.9). nbgrader reads it from the current
directory: run nbgrader (or the Formgrader of `make lab`) from notebooks/.

The notebooks in notebooks/ are the instructor versions, solutions and hidden tests in. `make course`
copies each into the course directory as an assignment of its own, named after the notebook
(source/<name>/<name>.ipynb), and runs `nbgrader generate_assignment` on each: release/<name>/ is what
students get — solutions replaced by a stub, hidden tests removed, outputs cleared. Then, as usual:
collect submissions into submitted/<student>/<name>/, `nbgrader autograde <name>`,
`nbgrader generate_feedback <name>`, `nbgrader export` (grades as CSV).

The checks in the test cells read kernel state (mrunc.notebook.grading): autograde executes each
notebook, and its containers, as the grader's user — root for the limits, see notebooks/README.md.
"""
import os

c = get_config()  # noqa: F821 — given by traitlets when it loads this file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
c.CourseDirectory.course_id = "mrunc"
# build/ is not in git; MRUNC_COURSE_DIR moves it (the tests use a temporary one)
c.CourseDirectory.root = os.environ.get("MRUNC_COURSE_DIR") or os.path.join(REPO, "build", "course")
# A notebook runs for less than a minute on a 2-core machine; an exercise's check waits for its
# container at most 10 s. A stuck cell is cut off here, not after nbgrader's default 30 s per cell.
c.ExecutePreprocessor.timeout = 120
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
