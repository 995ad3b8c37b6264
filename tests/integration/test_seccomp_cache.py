"""The user's cache of built seccomp programs (mrunc.security.seccompcache), for real: the second
create of a profile loads the program its first create built — init never maps libseccomp — and
the container is exactly as confined; an entry that is not ours, that others could have written,
or that is cut short is never used.

Each test has its own state root (the `mr` fixture), so its cache starts empty.
"""
import json
import os
import struct

import pytest

from seccomp_profile import default_profile
from test_rootless import NOBODY, _as_nobody, home  # noqa: F401 (a fixture)
from test_seccomp_live import Agent, deny, status_fields, with_profile

pytestmark = [pytest.mark.root]

# The engines' kind of profile, answering what it does not allow with EOPNOTSUPP: an errno only
# this profile would give
PROFILE = dict(default_profile(), defaultErrnoRet=95)
PROBE = "unshare -m true 2>&1; echo rc=$?; grep -E '^Seccomp' /proc/self/status"
BUILT, KEPT = "built by libseccomp", "kept by an earlier create"


def _entries(root):
    d = os.path.join(root, ".seccomp")
    return sorted(os.path.join(d, n) for n in os.listdir(d)) if os.path.isdir(d) else []


def _traced(mr, profile=PROFILE, script=PROBE):
    """`run --trace` of `script` under `profile`: (its output, where the trace says the filter
    came from)."""
    p = mr.cli("run", "--trace", "--bundle", mr.bundle(with_profile(profile), args=["sh", "-c", script]),
               mr.new_id())
    assert p.returncode == 0, p.stderr
    origin = [o for o in (BUILT, KEPT) if f"; {o}" in p.stderr]   # the seccomp(2) call's record
    assert len(origin) == 1, p.stderr
    return p.stdout, origin[0], p.stderr


def _confined(out):
    f = status_fields(out)
    return "Operation not supported" in out and "rc=1" in out and \
        (f["Seccomp"], f["Seccomp_filters"]) == ("2", "1")


def test_a_second_create_loads_the_program_from_the_cache(mr, tmp_path):
    out, origin, err = _traced(mr)
    assert origin == BUILT and _confined(out), out
    assert "libseccomp('seccomp_init" in err            # the build, in the security phase
    [entry] = _entries(mr.root)
    st = os.stat(entry)
    assert (st.st_uid, st.st_mode & 0o7777) == (os.geteuid(), 0o600)
    assert os.stat(os.path.dirname(entry)).st_mode & 0o7777 == 0o700
    out, origin, err = _traced(mr)
    assert origin == KEPT and _confined(out), out
    assert "libseccomp('seccomp_init" not in err and "libseccomp not needed" in err
    assert _entries(mr.root) == [entry]
    # A created init, waiting for `start`, has everything it will use mapped: no libseccomp
    pid_file = tmp_path / "init.pid"
    mr.cli("create", "--bundle", mr.bundle(with_profile(PROFILE), args=["true"]),
           "--pid-file", str(pid_file), mr.new_id(), check=True)
    pid = int(pid_file.read_text())
    with open(f"/proc/{pid}/maps") as f:
        assert "libseccomp" not in f.read()
    with open(f"/proc/{pid}/status") as f:
        assert status_fields(f.read())["Seccomp"] == "2"


def test_the_kept_program_is_what_a_fresh_build_gives(mr):
    from mrunc.security import seccompcache
    from mrunc.security.seccomp import Program
    _traced(mr)
    [entry] = _entries(mr.root)
    name, digest = seccompcache.key(PROFILE)
    assert os.path.basename(entry) == name
    with open(entry, "rb") as f:
        head, _, bpf = f.read().partition(b"\n")
    fresh = Program.build(PROFILE)
    meta = json.loads(head)
    assert bpf == fresh.bpf and meta["flags"] == fresh.flags and meta["insns"] == len(bpf) // 8
    assert meta["config"] == digest and digest.startswith(name)
    assert meta["library"][1] == fresh.origin.rsplit(" ", 1)[1]   # libseccomp's version


def test_a_changed_profile_makes_a_new_entry_an_equal_one_does_not(mr):
    _traced(mr)
    [first] = _entries(mr.root)
    other = dict(PROFILE, syscalls=[r for r in PROFILE["syscalls"] if r.get("errnoRet") != 38])
    _, origin, _ = _traced(mr, other)
    assert origin == BUILT and len(_entries(mr.root)) == 2
    # the same profile with its keys in another order is the same program
    reordered = {k: PROFILE[k] for k in reversed(list(PROFILE))}
    _, origin, _ = _traced(mr, reordered)
    assert origin == KEPT and len(_entries(mr.root)) == 2 and first in _entries(mr.root)


def _allow_all_entry(entry):
    """The entry with its program replaced by one that allows everything, the header made to
    match: if it were used, the container would not be confined at all."""
    with open(entry, "rb") as f:
        meta = json.loads(f.read().partition(b"\n")[0])
    allow = struct.pack("=HBBI", 0x06, 0, 0, 0x7FFF0000)
    meta["insns"] = 1
    return json.dumps(meta).encode() + b"\n" + allow


def _plant(entry, data, mode=0o600, uid=None):
    with open(entry, "wb") as f:
        f.write(data)
    os.chmod(entry, mode)
    if uid is not None:
        os.chown(entry, uid, uid)


def test_an_entry_not_ours_writable_by_others_or_cut_is_not_used(mr):
    _traced(mr)
    [entry] = _entries(mr.root)
    with open(entry, "rb") as f:
        good = f.read()
    planted = _allow_all_entry(entry)
    # Ours, 0600, whole: used as it is — the planted program lets everything through (which
    # shows the cases below would be caught if they were used)
    _plant(entry, planted)
    out, origin, _ = _traced(mr)
    assert origin == KEPT and "Operation not supported" not in out and "Seccomp:\t2" in out, out
    cases = {"writable by others": dict(mode=0o666), "writable by the group": dict(mode=0o620),
             "another user's": dict(uid=65534)}
    for what, how in cases.items():
        _plant(entry, planted, **how)
        out, origin, _ = _traced(mr)
        assert origin == BUILT and _confined(out), (what, out)
        with open(entry, "rb") as f:   # built again, and the entry replaced by a good one
            assert f.read() == good, what
        st = os.stat(entry)
        assert (st.st_uid, st.st_mode & 0o7777) == (os.geteuid(), 0o600), what
    for cut in (8, 1, len(good) - good.index(b"\n") - 1):   # a whole instruction, a byte, all
        _plant(entry, good[:-cut])
        out, origin, _ = _traced(mr)
        assert origin == BUILT and _confined(out), (cut, out)
    # The cache directory itself writable by others: nothing in it is read
    _plant(entry, planted)
    os.chmod(os.path.dirname(entry), 0o777)
    out, origin, _ = _traced(mr)
    assert origin == BUILT and _confined(out), out
    os.chmod(os.path.dirname(entry), 0o700)


def test_notify_works_with_a_kept_program(mr, tmp_path):
    """SCMP_ACT_NOTIFY: the kept program carries the listener flag; the agent gets the fd of the
    second create's filter and answers its calls."""
    for i in range(2):
        path = str(tmp_path / f"agent{i}.sock")
        agent = Agent(path)
        agent.start()
        try:
            profile = dict(deny(["mkdir"], "SCMP_ACT_NOTIFY"), listenerPath=path)
            out, origin, _ = _traced(mr, profile, "mkdir /tmp/x 2>&1; touch /tmp/z && echo touched")
            agent.join(10)
            assert origin == (BUILT, KEPT)[i]
            assert "No medium found" in out and "touched" in out and agent.calls == [83], out
        finally:
            agent.close()
    assert len(_entries(mr.root)) == 1   # the listener's path is not part of the program


def test_the_cache_keeps_a_few_entries(mr, monkeypatch):
    from mrunc.security import seccompcache
    for errno in range(20, 20 + seccompcache.KEEP + 2):
        _traced(mr, deny(["mkdir"], errnoRet=errno), "true; grep -E '^Seccomp' /proc/self/status")
    assert len(_entries(mr.root)) == seccompcache.KEEP


@pytest.mark.userns
def test_a_plain_user_gets_their_own_cache(home, mr):
    """nobody's creates keep their programs in nobody's state root, 0700 and theirs; root's
    cache is not touched, nor used."""
    from conftest import ROOTFS
    _traced(mr)
    p = _as_nobody("spec", "--rootless", cwd=str(home))
    assert p.returncode == 0, p.stderr
    cfg = json.loads((home / "config.json").read_text())
    cfg["root"]["path"] = ROOTFS
    cfg["process"].update(terminal=False, args=["sh", "-c", PROBE])
    with_profile(PROFILE)(cfg)
    (home / "config.json").write_text(json.dumps(cfg))
    state = home / "state"
    origins = []
    for i in range(2):
        p = _as_nobody("--root", str(state), "run", "--trace", "--bundle", str(home), f"rl-{i}",
                       cwd=str(home))
        assert p.returncode == 0, p.stderr
        assert _confined(p.stdout), p.stdout
        origins += [o for o in (BUILT, KEPT) if f"; {o}" in p.stderr]
    assert origins == [BUILT, KEPT]
    [entry] = _entries(str(state))
    for path, mode in ((entry, 0o600), (os.path.dirname(entry), 0o700)):
        st = os.stat(path)
        assert (st.st_uid, st.st_mode & 0o7777) == (NOBODY, mode)
    assert len(_entries(mr.root)) == 1   # root's own, from its run above
