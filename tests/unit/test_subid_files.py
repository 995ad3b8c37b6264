"""mrunc.security.subids from files laid out as shadow writes them (the live runs, with real
users and the real newuidmap, are in tests/integration/test_subids.py)."""
import os

import pytest

from mrunc.errors import SpecError
from mrunc.security import subids


@pytest.fixture
def alice(tmp_path, monkeypatch):
    """uid/gid 1000 named alice, with her /etc/subuid and /etc/subgid under tmp_path."""
    files = {}
    for kind, text in (("uid", "bob:100000:65536\nalice:165536:65536\n# junk\n1000:300000:10\n"),
                       ("gid", "alice:165536:65536\n")):
        files[kind] = str(tmp_path / f"sub{kind}")
        (tmp_path / f"sub{kind}").write_text(text)
    monkeypatch.setattr(subids, "FILES", files)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    monkeypatch.setattr(subids, "user_name", lambda: "alice")
    monkeypatch.setattr(subids, "helper_problem", lambda kind: None)
    return files


def _config(uid_maps, gid_maps=None, userns_path=None):
    user = {"type": "user", **({"path": userns_path} if userns_path else {})}
    return {"linux": {"namespaces": [user, {"type": "pid"}], "uidMappings": uid_maps,
                      "gidMappings": gid_maps or [{"containerID": 0, "hostID": 1000, "size": 1}]}}


def test_ranges_by_name_and_by_uid_in_file_order(alice):
    assert subids.ranges("uid", "alice", 1000) == [(165536, 65536), (300000, 10)]
    assert subids.ranges("gid", "alice", 1000) == [(165536, 65536)]
    assert subids.ranges("uid", "carol", 1001) == []


def test_own_id_only_needs_no_helper(alice):
    own = [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert not subids.needs_helper(_config(own), "uid")
    assert not subids.needs_helper(_config(own), "gid")
    subids.check(_config(own))
    wider = own + [{"containerID": 1, "hostID": 165536, "size": 65536}]
    assert subids.needs_helper(_config(wider), "uid") and not subids.needs_helper(_config(wider), "gid")
    assert not subids.needs_helper(_config(wider, userns_path="/proc/1/ns/user"), "uid")  # joined: no maps


def test_delegated_ranges_pass_and_others_fail_naming_the_mapping(alice):
    ok = [{"containerID": 0, "hostID": 1000, "size": 1},
          {"containerID": 1, "hostID": 165536, "size": 65536},
          {"containerID": 70000, "hostID": 300000, "size": 10}]     # by uid, a second range
    subids.check(_config(ok))
    with pytest.raises(SpecError) as e:
        subids.check(_config(ok[:1] + [{"containerID": 1, "hostID": 100000, "size": 65536}]))
    assert str(e.value) == ('linux.uidMappings[1]: host ids 100000-165535 are not delegated to '
                            'user "alice" in /etc/subuid'.replace("/etc/subuid", alice["uid"]))
    with pytest.raises(SpecError) as e:                # one id past the range
        subids.check(_config(ok[:1] + [{"containerID": 1, "hostID": 165536, "size": 65537}]))
    assert str(e.value).startswith("linux.uidMappings[1]: host ids 165536-231072 are not delegated")
    with pytest.raises(SpecError) as e:                # somebody else's single id
        subids.check(_config(ok[:1], [{"containerID": 0, "hostID": 0, "size": 1}]))
    assert str(e.value) == f'linux.gidMappings[0]: host id 0 is not delegated to user "alice" in {alice["gid"]}'


def test_a_helper_that_cannot_run_is_named(alice, monkeypatch):
    monkeypatch.setattr(subids, "helper_problem", lambda kind: "newuidmap is not installed (package uidmap)")
    maps = [{"containerID": 0, "hostID": 165536, "size": 65536}]
    with pytest.raises(SpecError) as e:
        subids.check(_config(maps))
    assert str(e.value) == ("linux.uidMappings: mapping more than your own uid needs newuidmap, but "
                            "newuidmap is not installed (package uidmap)")


def test_sandbox_maps_put_the_student_at_0_and_the_ranges_after(alice):
    maps, why = subids.sandbox_maps()
    assert why is None
    assert maps["uid"] == [{"containerID": 0, "hostID": 1000, "size": 1},
                           {"containerID": 1, "hostID": 165536, "size": 65536},
                           {"containerID": 65537, "hostID": 300000, "size": 10}]
    assert maps["gid"] == [{"containerID": 0, "hostID": 1000, "size": 1},
                           {"containerID": 1, "hostID": 165536, "size": 65536}]


def test_sandbox_maps_fall_back_to_the_single_id_map_saying_why(alice, monkeypatch):
    open(alice["gid"], "w").close()
    assert subids.sandbox_maps() == (None, f"no range for you in {alice['gid']}")
    monkeypatch.setattr(subids, "FILES", {"uid": alice["uid"], "gid": alice["uid"]})
    monkeypatch.setattr(subids, "helper_problem",
                        lambda kind: "no_new_privs is set on this process (systemd NoNewPrivileges=?): "
                                     "setuid newuidmap cannot work")
    maps, why = subids.sandbox_maps()
    assert maps is None and why.startswith("no_new_privs is set")


def test_rootless_ready_swaps_only_the_single_id_map(alice):
    from mrunc.sandbox import rootless_ready
    from mrunc.spec import default_config
    maps, _ = subids.sandbox_maps()
    for base in ({"root": {"path": "rootfs"}, "mounts": [], "linux": {"namespaces": [{"type": "pid"}]}},
                 default_config(rootless=True)):
        cfg = rootless_ready(base, maps)
        assert cfg["linux"]["uidMappings"] == maps["uid"] and cfg["linux"]["gidMappings"] == maps["gid"]
        assert rootless_ready(base)["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
    chosen = default_config(rootless=True)
    chosen["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 165536, "size": 100}]
    assert rootless_ready(chosen, maps)["linux"]["uidMappings"] == chosen["linux"]["uidMappings"]
