"""A class on one server: two real students (users the test creates, removed afterwards).

Each keeps containers in a directory of their own; neither can list, inspect, exec into, kill or
delete the other's — nor root's; and a directory one student made where the other's would go is
refused, never used."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

from conftest import REPO, ROOTFS
from students import delegated_cgroup, drop_subids, make_students, subid_ranges

pytestmark = [pytest.mark.root, pytest.mark.userns,
              pytest.mark.skipif(not shutil.which("useradd"), reason="useradd is not installed")]


@pytest.fixture(scope="module")
def students():
    yield from make_students(2)


def _one_line_error(p):
    lines = p.stderr.strip().splitlines()
    assert p.returncode != 0 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def test_each_student_has_a_private_state_dir_the_other_cannot_use(students):
    a, b = students
    bundle = a.bundle("sleeper", ["sleep", "600"])
    p = a.mrunc("run", "-d", "--bundle", bundle, "box")
    assert p.returncode == 0, p.stderr
    a_root = os.path.join(a.home, ".local", "state", "mrunc")
    for d, mode in ((a_root, 0o711), (os.path.dirname(a_root), 0o700)):  # ~/.local/state: 0700
        st = os.lstat(d)
        assert st.st_uid == a.uid and st.st_mode & 0o777 == mode, d
    assert os.path.isdir(os.path.join(a_root, "box"))
    assert json.loads(a.mrunc("state", "box").stdout)["status"] == "running"
    pid = json.loads(a.mrunc("state", "box").stdout)["pid"]

    assert json.loads(b.mrunc("list", "--format", "json").stdout or "null") is None
    assert b.mrunc("state", "box").returncode != 0              # not in B's own root
    for verb in (["list"], ["state", "box"], ["exec", "box", "true"], ["kill", "box", "KILL"],
                 ["delete", "--force", "box"]):
        line = _one_line_error(b.mrunc("--root", a_root, *verb))
        assert line == f"mrunc: state directory {a_root}: not yours (permission denied on the way to it)"
    # A's container is untouched, and A still has it
    assert json.loads(a.mrunc("state", "box").stdout)["pid"] == pid
    assert a.mrunc("delete", "--force", "box").returncode == 0
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_roots_containers_are_out_of_reach(students, tmp_path):
    _, b = students
    root_dir = f"/run/mrunc-classroom-{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, "-m", "mrunc", "spec", "--bundle", str(tmp_path)], check=True)
    with open(tmp_path / "config.json") as f:
        cfg = json.load(f)
    cfg["root"]["path"] = ROOTFS
    cfg["process"].update(terminal=False, args=["sleep", "600"])
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    mr = [sys.executable, "-m", "mrunc", "--root", root_dir]
    try:
        with tempfile.TemporaryFile() as out:
            assert subprocess.run([*mr, "run", "-d", "--bundle", str(tmp_path), "rootbox"],
                                  stdout=out, stderr=out, timeout=60).returncode == 0
        assert os.stat(root_dir).st_mode & 0o777 == 0o711      # as /run/mrunc: others may traverse
        for verb in (["list"], ["state", "rootbox"], ["exec", "rootbox", "true"],
                     ["kill", "rootbox", "KILL"], ["delete", "--force", "rootbox"]):
            line = _one_line_error(b.mrunc("--root", root_dir, *verb))
            assert line.startswith(f"mrunc: state directory {root_dir}: owned by uid 0 (root), "
                                   f"not you (uid {b.uid} ({b.name}))"), line
        st = json.loads(subprocess.run([*mr, "state", "rootbox"], capture_output=True, text=True).stdout)
        assert st["status"] == "running"
    finally:
        subprocess.run([*mr, "delete", "--force", "rootbox"], capture_output=True, timeout=60)
        shutil.rmtree(root_dir, ignore_errors=True)


def test_a_dir_the_other_student_made_first_is_refused_and_never_used(students):
    a, b = students
    # B creates, world-writable, where A's runtime dir would be if A's session pointed there
    # (and the sandbox's old /tmp/mrunc-lab-<uid> paths, the attack from the issue)
    trap = f"/tmp/mrunc-trap-{uuid.uuid4().hex[:8]}"
    old = [f"/tmp/mrunc-lab-{a.uid}", f"/tmp/mrunc-lab-{a.uid}.bundles"]
    made_old = [d for d in old if not os.path.lexists(d)]
    try:
        for d in [trap, *made_old]:
            assert b.run("mkdir", "-m", "777", d).returncode == 0
            assert b.run("chmod", "777", d).returncode == 0
        # the CLI with XDG_RUNTIME_DIR (or --root) naming B's dir
        line = _one_line_error(a.mrunc("list", env=a.env(XDG_RUNTIME_DIR=trap)))
        assert line == (f"mrunc: XDG_RUNTIME_DIR {trap}: owned by uid {b.uid} ({b.name}), "
                        f"not you (uid {a.uid} ({a.name})); refusing to use it (remove it, or "
                        f"choose another with --root)")
        bundle = a.bundle("hello", ["echo", "hello"])
        line = _one_line_error(a.mrunc("--root", trap, "run", "--bundle", bundle, "x"))
        assert f"state directory {trap}: owned by uid {b.uid}" in line
        # the notebook's sandbox, without XDG_RUNTIME_DIR: its own dirs, not /tmp
        p = a.python("from mrunc.sandbox import Sandbox\n"
                     "with Sandbox() as lab:\n"
                     "    r = lab.run('echo hi from $(hostname)', name='nb')\n"
                     "    print(lab.root, lab.work, r.exit_code, r.stdout.strip(), sep='|')\n")
        assert p.returncode == 0, p.stderr
        root, work, code, out = p.stdout.strip().splitlines()[-1].split("|")
        assert root == os.path.join(a.home, ".local", "state", "mrunc-lab") and work == root + ".bundles"
        assert code == "0" and out == "hi from nb"
        # a sandbox told to use B's dir refuses it, in one line, and writes nothing there
        p = a.python("from mrunc.sandbox import Sandbox, SandboxError\n"
                     f"try:\n    Sandbox(root={trap!r}).run('true')\n"
                     "except SandboxError as e:\n    print(e)\n")
        assert p.stdout.strip() == (f"sandbox directory {trap}: owned by uid {b.uid} ({b.name}), not you "
                                    f"(uid {a.uid} ({a.name})); refusing to use it (remove it, or "
                                    f"choose another with --root)"), p.stdout + p.stderr
        for d in [trap, *made_old]:
            assert os.listdir(d) == [], d
        assert not os.path.exists(trap + ".bundles")
    finally:
        for d in [trap, *made_old]:
            shutil.rmtree(d, ignore_errors=True)


# ---- mrunc doctor and rootless notebooks on this host -------------------------------------------

def _layout():
    from mrunc.cgroups.layout import hierarchies
    return hierarchies()[0]


def test_doctor_names_what_is_missing_for_limits(students):
    a, _ = students
    p = a.mrunc("doctor")
    report = json.loads(a.mrunc("doctor", "--json").stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["user namespaces"]["status"] == "ok", checks
    assert checks["state directory"] == {
        "name": "state directory", "status": "ok", "fix": "",
        "detail": f"{a.home}/.local/state/mrunc (yours, checked at every use)"}
    assert checks["rootfs"]["status"] == "ok" and checks["seccomp"]["status"] == "ok"
    if _layout() in ("hybrid", "v1"):
        layout = "cgroup v1 (hybrid)" if _layout() == "hybrid" else "cgroup v1"
        assert checks["cgroup limits"]["status"] == "FAIL"
        assert checks["cgroup limits"]["detail"] == (
            f"memory, cpus and pids limits are skipped: this host uses {layout}, and only cgroup "
            "v2 can be delegated to a user")
        assert "systemd.unified_cgroup_hierarchy=1" in checks["cgroup limits"]["fix"]
        assert report["ok"] is False and p.returncode == 1
        assert [ln.split()[0] for ln in p.stdout.splitlines()[1:] if not ln.startswith("        ")
                ].count("FAIL") == 1, p.stdout          # limits are all that is missing
        assert "  FAIL  cgroup limits: memory, cpus and pids limits are skipped" in p.stdout
    # as root, nothing is missing on a working host
    q = subprocess.run([sys.executable, "-m", "mrunc", "doctor", "--json"], capture_output=True, text=True)
    assert q.returncode == 0 and json.loads(q.stdout)["ok"] is True, q.stdout


NOTEBOOK = """
import sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "mrunc")
for i in range(2):
    ip.run_cell_magic("container", "--memory 32M --pids 20 --name cell%d" % i,
                      "echo cell $(hostname) $(id -u)")
ip.run_cell_magic("container", "--memory 24M --name hog", 's=x; while true; do s="$s$s"; done')
print("DONE", ip.user_ns.get("_") is not None)
"""


def test_rootless_notebook_cells_run_without_delegation_and_say_so_once(students):
    a, _ = students
    if _layout() == "v2":
        pytest.skip("this host is cgroup v2: the no-delegation case is the v1/hybrid host's")
    p = a.python(NOTEBOOK)
    assert p.returncode == 0, p.stderr
    out = p.stdout + p.stderr
    assert "cell cell0 0" in out and "cell cell1 0" in out, out
    # the sentence about limits: once, from the doctor; each cell says what it skipped
    assert out.count("memory, cpus and pids limits are skipped: this host uses cgroup v1") == 1, out
    assert out.count("mrunc: memory=32M only as an address-space cap per process (RLIMIT_AS), "
                     "pids=20 skipped: no cgroup limits here (this host uses cgroup v1") == 2, out
    assert "running rootless" in out and "Traceback" not in out
    assert "warning: no cgroup" not in out          # the runtime does not say it again
    # a memory hog without a cgroup is stopped by its address-space cap, not left to eat the server
    assert "sh: out of memory" in out and "✗ container hog: exited with status" in out, out
    root = os.path.join(a.home, ".local", "state", "mrunc-lab")
    assert not os.path.exists(root) or os.listdir(root) == []      # nothing left at exit


# ---- in the cgroup v2 VM: a subtree delegated to the student, as systemd's Delegate= does -------

@pytest.fixture
def delegated(students):
    with delegated_cgroup(students[0]) as cg:
        yield cg


LIMITED = """
import json, os, time
from mrunc.sandbox import Sandbox
lab = Sandbox()
print("NOTES", json.dumps(lab.notes))
print("SELF", open("/proc/self/cgroup").read().strip())
c = lab.start(name="lim", memory="32M", pids=20, cpus=0.5)
deadline = time.monotonic() + 60
while c.status != "running" and time.monotonic() < deadline:
    time.sleep(0.05)
assert c.status == "running", c.logs()
print("CG", open("/proc/%d/cgroup" % c.pid).read().strip())
d = "/sys/fs/cgroup" + open("/proc/%d/cgroup" % c.pid).read().strip()[3:]
print("MAX", *(open(d + "/" + f).read().strip() for f in ("memory.max", "pids.max", "cpu.max")))
r = lab.run('s=x; while true; do s="$s$s"; done', memory="24M", name="hog")
print("HOG", r.exit_code, r.oom_killed)
r = lab.run("for i in $(seq 30); do sleep 2 & done; wait", pids=10, name="forks")
print("FORKS", r.exit_code, json.dumps(r.stdout + r.stderr))
lab.close()
"""


@pytest.mark.cgroup_v2
def test_doctor_passes_and_notebook_limits_work_in_a_delegated_subtree(students, delegated):
    a, _ = students
    p = a.mrunc("doctor", "--json", cgroup=delegated)
    report = json.loads(p.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert p.returncode == 0 and report["ok"] is True, p.stdout
    assert checks["cgroup limits"]["status"] == "ok"
    assert checks["cgroup limits"]["detail"].startswith(f"{delegated} is delegated to you with ")
    # a notebook's sandbox: moves itself into the leaf, enables the controllers, and limits hold
    p = a.python(LIMITED, cgroup=delegated, timeout=300)
    assert p.returncode == 0, p.stderr
    out = {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] for ln in p.stdout.splitlines() if " " in ln}
    assert json.loads(out["NOTES"]) == [n for n in json.loads(out["NOTES"]) if "running rootless" in n]
    top = delegated[len("/sys/fs/cgroup"):]
    assert out["SELF"] == f"0::{top}/supervisor"
    assert out["CG"] == f"0::{top}/lim"
    assert out["MAX"] == "33554432 20 50000 100000"          # read back from the container's cgroup
    assert out["HOG"] == "137 True"
    assert "can't fork" in json.loads(out["FORKS"].split(" ", 1)[1]), out["FORKS"]
    assert set(os.listdir(delegated)) >= {"supervisor"} and not os.path.exists(f"{delegated}/lim")
    assert set(open(f"{delegated}/cgroup.subtree_control").read().split()) >= {"memory", "pids", "cpu"}


def test_a_kernel_that_dies_without_closing_leaves_nothing(tmp_path):
    """ipykernel exits with os._exit() when its server is gone first: no atexit, no shutdown
    request. The sandbox's watchdog (mrunc.labwatch) deletes what it left."""
    import time
    root = f"/run/mrunc-labwatch-{uuid.uuid4().hex[:8]}"
    code = ("import os, time\nfrom mrunc.sandbox import Sandbox\nfrom mrunc import labwatch\n"
            f"lab = Sandbox(root={root!r})\nc = lab.start(name='orphan')\n"
            "while c.status != 'running':\n    time.sleep(0.05)\n"
            "labwatch.start(lab.root)\nprint(c.pid, flush=True)\nos._exit(1)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pid = int(p.stdout.split()[0])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (os.path.exists(root) or os.path.exists(f"/proc/{pid}")):
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}"), "the container outlived its kernel"
        assert not os.path.exists(root) and not os.path.exists(root + ".bundles")
    finally:
        subprocess.run([sys.executable, "-m", "mrunc", "--root", root, "delete", "-f", "orphan"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(root + ".bundles", ignore_errors=True)


RUN_NOTEBOOK = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
               resources={"metadata": {"path": sys.argv[2]}}).execute()
for i, cell in enumerate(nb.cells):
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            print("ERROR in cell", i, o["ename"], o["evalue"][:200])
        elif o.get("name") == "stderr":
            print("STDERR", o["text"].replace("\\n", " | "))
        elif o.get("name") == "stdout":
            print("STDOUT", o["text"].replace("\\n", " | "))
print("CELLS", len(nb.cells))
"""

NOTEBOOKS = sorted(f for f in os.listdir(os.path.join(REPO, "notebooks")) if f.endswith(".ipynb"))


def _run_as(student, name, hidden=False):
    """Run notebooks/NAME as `student` (rootless) with nbclient: every cell without an error, what
    does not work here said once. -> the cells' printed lines."""
    dest = os.path.join(student.home, name)
    # the instructor version, less the graders' hidden tests unless `hidden` (nbgrader strips them
    # for students; some fail, as they should, where a limit cannot be set)
    with open(os.path.join(REPO, "notebooks", name)) as f:
        nb = json.load(f)
    for cell in nb["cells"] if not hidden else ():
        cell["source"] = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS\n?", "",
                                "".join(cell["source"]), flags=re.S)
    with open(dest, "w") as out:
        json.dump(nb, out)
    os.chown(dest, student.uid, -1)
    p = student.run(sys.executable, "-c", RUN_NOTEBOOK, dest, student.home, timeout=600,
                    env=student.env(PATH=f"{os.path.dirname(sys.executable)}:/usr/bin:/bin"))
    assert p.returncode == 0, p.stderr[-2000:]
    assert "CELLS" in p.stdout and "ERROR in cell" not in p.stdout, p.stdout
    said = "\n".join(x for x in p.stdout.splitlines() if not x.startswith("STDOUT "))   # the notes
    assert said.count("running rootless (uid") == 1, p.stdout
    # the other thing that does not work here, in the notebooks that watch files: said once too
    # (by the monitor; the cells after it refer to it rather than repeat it)
    assert said.count("the file-access monitor needs root") <= 1, p.stdout
    return p.stdout


def _has_id_range(student):
    """Will the student's sandbox map their /etc/subuid range (Sandbox.id_maps)?"""
    from mrunc.security import subids
    have = subid_ranges(student.name)
    return bool(have["uid"] and have["gid"]) and not (subids.helper_problem("uid") or
                                                       subids.helper_problem("gid"))


# The notebooks whose results depend on the student's id map: run both with a range in
# /etc/subuid (useradd gives one) and without (a student on a server with no entries).
ID_MAP_NOTEBOOKS = ["capabilities.ipynb", "rootless-and-id-maps.ipynb"]


def _check_id_map_outputs(student, name, out):
    """What these notebooks show, from the container's kernel state, for the map the student has."""
    out = re.sub(r" {2,}", " ", out)
    if _has_id_range(student):
        first = subid_ranges(student.name)["uid"][0][0]
        if name == "capabilities.ipynb":      # uid 1000 exists: CAP_CHOWN decides, as for root
            assert f"uid 1000 exists inside (host uid {first + 999})" in out, out
            assert "uid 0 changed the owner of /tmp/file to 1000" in out, out
            assert "chown: /tmp/file: Operation not permitted" in out, out
        else:
            assert f"uid_map 0 {student.uid} 1; 1 {first} 65536" in out, out
            assert f"uid 1000 inside is, by the map, host uid {first + 999}" in out, out
            # made as uid 1000 inside, seen from the host: first + 999
            assert "inside, /tmp/by-1000 belongs to uid 1000" in out, out
            assert f"on the host, it belongs to uid {first + 999}" in out, out
            assert f"/tmp/proof owned by host uid {first + 41}" in out, out
    else:
        if name == "capabilities.ipynb":      # only uid 0 exists: both chowns are EINVAL
            assert "rootless with the single-id map" in out, out
            assert out.count("chown: /tmp/file: Invalid argument") == 2, out
        else:
            assert f"only you (you have no range in /etc/subuid) — uid_map 0 {student.uid} 1" in out, out
            assert "uid 1000 inside: not in the map, so it does not exist in this container" in out, out
            assert f"/tmp/proof owned by host uid {student.uid}" in out, out
    if name == "rootless-and-id-maps.ipynb":     # both exercises' checks pass, whichever the map
        assert "All 4 met." in out and "Met." in out and "✗" not in out, out


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_notebook_runs_for_a_student(students, name):
    """`make lab` as a normal user: every cell of every notebook runs, rootless, without an error;
    what does not work here is said once."""
    a, _ = students
    out = _run_as(a, name, hidden=name in ID_MAP_NOTEBOOKS)    # their hidden tests hold rootless
    if name in ID_MAP_NOTEBOOKS:
        _check_id_map_outputs(a, name, out)
    if name == "overlay-layers.ipynb":
        # rootless, each container mounts its own overlay (over a copy of the image the student
        # owns): the upper layer shows the copy-up, the whiteout and the opaque directory, and both
        # exercises' checks, which read it from the host, pass
        out = re.sub(r" {2,}", " ", out)                  # column widths
        for words in ("upperdir <your copy>/layers/upper", "/etc/hosts file", "/bin/vi whiteout",
                      "/home opaque dir user.overlay.opaque=y",
                      "'127.0.0.1\\tlocalhost', '10.0.0.9 db']", "the container's /home: ['fresh']"):
            assert words in out, (words, out)
        assert "All 2 met." in out and "Met." in out and "✗" not in out, out


@pytest.fixture(scope="module")
def student_without_ranges():
    """A student on a server without /etc/subuid entries for them: useradd's are removed (with
    usermod, which keeps everyone else's lines), and removed again, if any, before userdel."""
    gen = make_students(1)
    (s,) = next(gen)
    try:
        drop_subids(s.name)
        assert subid_ranges(s.name) == {"uid": [], "gid": []}
        yield s
    finally:
        drop_subids(s.name)
        gen.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", ID_MAP_NOTEBOOKS)
def test_the_id_map_notebooks_run_for_a_student_without_ranges(student_without_ranges, name):
    """The same notebooks with the single-id map: their text and checks hold for it too."""
    assert not _has_id_range(student_without_ranges)
    _check_id_map_outputs(student_without_ranges, name, _run_as(student_without_ranges, name, hidden=True))
