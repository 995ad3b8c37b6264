"""Rootless containers with more than one uid: /etc/subuid and /etc/subgid ranges written by the
setuid helpers newuidmap/newgidmap (issue 12; mrunc.security.subids).

Two real students, made for the test and removed after (students.py): `ranged` has one 65536-id
range in /etc/subuid and /etc/subgid, `plain` has none. The files are edited only with
`usermod --add-sub{u,g}ids/--del-sub{u,g}ids` — shadow's own tools, which lock them and rewrite
them keeping everyone else's lines (other tests, other helpers may be adding users meanwhile) —
and only for our two users; teardown removes their lines even when a test failed, and checks
that none is left. Checked from the host as root: /proc/<pid>/uid_map and gid_map of the
container, the owner of a file chowned inside, what the runtime left behind.
"""
import json
import os
import pwd
import shutil
import subprocess
import time
import uuid

import pytest

from mrunc.security import subids
from students import drop_subids as _drop_ranges
from students import make_students
from students import subid_ranges as _ranges
from students import usermod as _usermod

pytestmark = [pytest.mark.root, pytest.mark.userns,
              pytest.mark.skipif(not shutil.which("useradd"), reason="useradd is not installed"),
              pytest.mark.skipif(not (subids.helper("uid") and subids.helper("gid")),
                                 reason="newuidmap/newgidmap missing (package uidmap)")]

SIZE = 65536


def _free_base():
    """A 65536-aligned first id above every range of anyone in either file."""
    top = 100000
    for path in subids.FILES.values():
        try:
            lines = open(path).read().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                top = max(top, int(parts[1]) + int(parts[2]))
    return -(-top // SIZE) * SIZE


@pytest.fixture(scope="module")
def pair():
    """(ranged, plain, ranged's first subordinate id)."""
    made = [p for p in subids.FILES.values() if not os.path.exists(p)]
    for path in made:               # usermod needs the files; made here, removed if still empty
        open(path, "x").close()
        os.chmod(path, 0o644)
    gen = make_students(2)
    ranged, plain = next(gen)
    try:
        _drop_ranges(plain.name)
        have = _ranges(ranged.name)
        if not (have["uid"] and have["gid"]):
            _drop_ranges(ranged.name)
            base = _free_base()
            _usermod(ranged.name, "--add-subuids", f"{base}-{base + SIZE - 1}",
                     "--add-subgids", f"{base}-{base + SIZE - 1}")
        first = {k: _ranges(ranged.name)[k][0][0] for k in ("uid", "gid")}
        assert _ranges(plain.name) == {"uid": [], "gid": []}
        yield ranged, plain, first
    finally:
        names = [s.name for s in (ranged, plain)]
        for name in names:
            _drop_ranges(name)
        gen.close()                 # kills what is left of theirs, then userdel
        for path in subids.FILES.values():
            text = open(path).read() if os.path.exists(path) else ""
            assert not [ln for ln in text.splitlines() if ln.split(":")[0] in names], path
        for path in made:
            if os.path.exists(path) and os.path.getsize(path) == 0:
                os.unlink(path)


def _edit(bundle, fn):
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    fn(cfg)
    with open(path, "w") as f:
        json.dump(cfg, f)


def _ranged_maps(student, first, size=SIZE):
    def edit(cfg):
        linux = cfg["linux"]
        linux["uidMappings"] = [{"containerID": 0, "hostID": student.uid, "size": 1},
                                {"containerID": 1, "hostID": first["uid"], "size": size}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": pwd.getpwnam(student.name).pw_gid, "size": 1},
                                {"containerID": 1, "hostID": first["gid"], "size": size}]
    return edit


def _one_line_error(p):
    lines = p.stderr.strip().splitlines()
    assert p.returncode != 0 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def _nothing_left(student):
    """No container state and no process of the student's."""
    root = os.path.join(student.home, ".local", "state", "mrunc")
    assert not [d for d in (os.listdir(root) if os.path.isdir(root) else []) if not d.startswith(".")]
    deadline = time.monotonic() + 5         # a killed container's last processes may be exiting
    while True:
        mine = {p: _stat(p) for p in os.listdir("/proc") if p.isdigit() and _owner(p) == student.uid}
        if not mine or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not mine, mine


def _stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read()
    except OSError:
        return None


def _owner(pid):
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _map(pid, kind):
    with open(f"/proc/{pid}/{kind}_map") as f:
        return [line.split() for line in f.read().splitlines()]


def test_ranges_give_the_container_more_uids(pair):
    ranged, _, first = pair
    cid = f"sub-{uuid.uuid4().hex[:6]}"
    share = os.path.join(ranged.home, "share")
    assert ranged.run("mkdir", share).returncode == 0
    bundle = ranged.bundle(cid, ["sh", "-c", "touch /mnt/f && chown 1000:1000 /mnt/f && "
                                 "touch /mnt/done && exec sleep 600"])

    def edit(cfg):
        _ranged_maps(ranged, first)(cfg)
        for caps in cfg["process"]["capabilities"].values():
            caps.append("CAP_CHOWN")
        cfg["mounts"].append({"destination": "/mnt", "type": "bind", "source": share,
                              "options": ["rbind", "rw"]})
    _edit(bundle, edit)
    p = ranged.mrunc("run", "--trace", "-d", "--bundle", bundle, cid)
    assert p.returncode == 0, p.stderr
    try:
        pid = json.loads(ranged.mrunc("state", cid).stdout)["pid"]
        gid = pwd.getpwnam(ranged.name).pw_gid
        assert _map(pid, "uid") == [["0", str(ranged.uid), "1"], ["1", str(first["uid"]), str(SIZE)]]
        assert _map(pid, "gid") == [["0", str(gid), "1"], ["1", str(first["gid"]), str(SIZE)]]
        with open(f"/proc/{pid}/setgroups") as f:
            assert f.read().strip() == "allow"      # newgidmap leaves it: the groups are ours
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(share, "done")) and time.monotonic() < deadline:
            time.sleep(0.05)
        st = os.stat(os.path.join(share, "f"))
        assert (st.st_uid, st.st_gid) == (first["uid"] + 999, first["gid"] + 999)
        # The helpers' runs are the runtime's calls of the clone phase, in the trace
        clone = p.stderr.split("mrunc: phase clone", 1)[1].split("mrunc: phase mount", 1)[0]
        assert f"newuidmap({_init_parent(clone)}, '0 {ranged.uid} 1', '1 {first['uid']} {SIZE}')" in clone
        assert f"newgidmap({_init_parent(clone)}, '0 {gid} 1', '1 {first['gid']} {SIZE}')" in clone
        assert "check('check_subordinate_ids')" in p.stderr.split("mrunc: phase clone", 1)[0]
    finally:
        assert ranged.mrunc("delete", "--force", cid).returncode == 0
    _nothing_left(ranged)


def _init_parent(clone_text):
    """The clone child's pid, as the trace names it (the helpers write ITS maps)."""
    line = next(ln for ln in clone_text.splitlines() if "unshare('CLONE_NEWUSER')" in ln)
    return int(line.split("clone[", 1)[1].split("]", 1)[0])


@pytest.mark.parametrize("kind", ["uid", "gid"])
def test_a_range_not_delegated_fails_in_one_line_leaving_nothing(pair, kind):
    ranged, _, first = pair
    cid = f"nd{kind}-{uuid.uuid4().hex[:6]}"
    bundle = ranged.bundle(cid, ["true"])
    far = _free_base() + 10 * SIZE             # nobody's
    wrong = dict(first, **{kind: far})
    _edit(bundle, _ranged_maps(ranged, wrong))
    line = _one_line_error(ranged.mrunc("run", "--bundle", bundle, cid))
    assert line == (f"mrunc: linux.{kind}Mappings[1]: host ids {far}-{far + SIZE - 1} are not "
                    f"delegated to user \"{ranged.name}\" in /etc/sub{kind}")
    _nothing_left(ranged)
    # one id more than the range is not delegated either
    _edit(bundle, _ranged_maps(ranged, first, SIZE + 1))
    line = _one_line_error(ranged.mrunc("run", "--bundle", bundle, cid))
    assert line.startswith("mrunc: linux.uidMappings[1]: host ids ") and "not delegated" in line
    _nothing_left(ranged)


def test_without_ranges_the_single_id_map_is_unchanged(pair):
    ranged, plain, first = pair
    cid = f"one-{uuid.uuid4().hex[:6]}"
    bundle = plain.bundle(cid, ["sleep", "600"])
    p = plain.mrunc("run", "--trace", "-d", "--bundle", bundle, cid)
    assert p.returncode == 0, p.stderr
    try:
        pid = json.loads(plain.mrunc("state", cid).stdout)["pid"]
        assert _map(pid, "uid") == [["0", str(plain.uid), "1"]]
        with open(f"/proc/{pid}/setgroups") as f:
            assert f.read().strip() == "deny"
        assert "newuidmap" not in p.stderr and f"write('/proc/" in p.stderr
    finally:
        assert plain.mrunc("delete", "--force", cid).returncode == 0
    # and the ranged student's range is not plain's to use
    cid2 = f"two-{uuid.uuid4().hex[:6]}"
    bundle = plain.bundle(cid2, ["true"])
    _edit(bundle, _ranged_maps(plain, first))
    line = _one_line_error(plain.mrunc("run", "--bundle", bundle, cid2))
    assert line == (f"mrunc: linux.uidMappings[1]: host ids {first['uid']}-{first['uid'] + SIZE - 1} "
                    f"are not delegated to user \"{plain.name}\" in /etc/subuid")
    _nothing_left(plain)


SANDBOX = r"""
import json, os
from mrunc.sandbox import Sandbox
with Sandbox() as lab:
    out = {"note": lab.notes[0]}
    c = lab.start("touch /tmp/f; chown 1000:1000 /tmp/f; touch /tmp/done; exec sleep 600",
                  name="box", cap_add=["CHOWN"])
    import time
    end = time.monotonic() + 10
    while not os.path.exists(f"/proc/{c.pid}/root/tmp/done") and time.monotonic() < end:
        time.sleep(0.05)
    st = os.stat(f"/proc/{c.pid}/root/tmp/f")
    out["owner"] = [st.st_uid, st.st_gid]
    out["uid_map"] = open(f"/proc/{c.pid}/uid_map").read().split()
    r = lab.run("id -u; cat /proc/self/uid_map", user="1000:1000")
    out["as_1000"] = [r.exit_code, r.stdout, r.stderr]
    try:
        lab.run("true", user="65537")
    except Exception as e:
        out["unmapped"] = str(e)
print(json.dumps(out))
"""


def test_the_sandbox_maps_a_students_ranges(pair):
    ranged, _, first = pair
    p = ranged.python(SANDBOX, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["uid_map"] == ["0", str(ranged.uid), "1", "1", str(first["uid"]), str(SIZE)]
    assert out["owner"] == [first["uid"] + 999, first["gid"] + 999]
    code, stdout, stderr = out["as_1000"]
    assert code == 0 and stdout.split()[0] == "1000", stderr
    assert out["unmapped"] == (f"user: uid 65537 does not exist in the container: its user namespace "
                               f"maps uids 0-{SIZE} (you, then your ranges in /etc/subuid)")
    assert f"uids 0-{SIZE} exist inside" in out["note"] and f"{first['uid']}-{first['uid'] + SIZE - 1}" in out["note"]
    _nothing_left(ranged)


PLAIN_SANDBOX = r"""
import json
from mrunc.sandbox import Sandbox, SandboxError
with Sandbox() as lab:
    r = lab.run("cat /proc/self/uid_map")
    try:
        lab.run("id -u", user="1000")
        other = None
    except SandboxError as e:
        other = str(e)
print(json.dumps([lab.notes[0], r.stdout.split(), other]))
"""


def test_the_sandbox_without_ranges_keeps_the_single_id_map(pair):
    _, plain, _ = pair
    p = plain.python(PLAIN_SANDBOX, timeout=120)
    assert p.returncode == 0, p.stderr
    note, uid_map, other = json.loads(p.stdout.strip().splitlines()[-1])
    assert uid_map == ["0", str(plain.uid), "1"]
    assert "only uid 0 exists inside (a single-id map: no range for you in /etc/subuid)" in note
    assert other.startswith("user: rootless, only root (uid 0) exists in the container")
    _nothing_left(plain)


def test_doctor_names_the_ranges(pair):
    ranged, plain, first = pair
    checks = {}
    for s in (ranged, plain):
        p = s.mrunc("doctor", "--json")
        checks[s.name] = {c["name"]: c for c in json.loads(p.stdout)["checks"]}["subordinate ids"]
    got = checks[ranged.name]
    assert got["status"] == "ok"
    assert f"uids 0 → {ranged.uid}, 1-{SIZE} → {first['uid']}-{first['uid'] + SIZE - 1}" in got["detail"]
    got = checks[plain.name]
    assert got["status"] == "info" and "no range for you in /etc/subuid" in got["detail"]


@pytest.mark.skipif(not shutil.which("setpriv"), reason="setpriv (util-linux) is not installed")
def test_under_no_new_privs_the_sandbox_keeps_the_single_id_map_and_the_cli_says_why(pair):
    """SystemdSpawner's disable_user_sudo (NoNewPrivileges=): setuid newuidmap gains nothing."""
    ranged, _, first = pair
    import sys
    p = ranged.run("setpriv", "--no-new-privs", sys.executable, "-c", PLAIN_SANDBOX, timeout=120)
    assert p.returncode == 0, p.stderr
    note, uid_map, _ = json.loads(p.stdout.strip().splitlines()[-1])
    assert uid_map == ["0", str(ranged.uid), "1"]
    assert "(a single-id map: no_new_privs is set on this process" in note
    cid = f"nnp-{uuid.uuid4().hex[:6]}"
    bundle = ranged.bundle(cid, ["true"])
    _edit(bundle, _ranged_maps(ranged, first))
    line = _one_line_error(ranged.run("setpriv", "--no-new-privs", sys.executable, "-m", "mrunc",
                                      "run", "--bundle", bundle, cid))
    assert line == ("mrunc: linux.uidMappings: mapping more than your own uid needs newuidmap, but "
                    "no_new_privs is set on this process (systemd NoNewPrivileges=?): setuid "
                    "newuidmap cannot work")
    _nothing_left(ranged)
