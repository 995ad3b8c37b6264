"""`mrunc update` without a kernel: which fields an update asks for, how they merge into the stored
resources, what is written, and the runc flags turned into a linux.resources object."""

import io

import pytest

from mrunc import cli, moreverbs
from mrunc.cgroups import update as upd
from mrunc.errors import MruncError, SpecError, UsageError

MiB = 1 << 20


def test_changes_drop_what_asks_for_nothing():
    warned = []
    got = upd.changes({"memory": {"limit": 0, "swap": None, "reservation": 5},
                       "cpu": {"cpus": "", "quota": 0, "idle": 0, "burst": 0},
                       "blockIO": {"weight": 0, "throttleReadBpsDevice": []},
                       "pids": {"limit": 0}, "hugepageLimits": [], "unified": {},
                       "devices": [{"allow": True, "access": "rwm"}]}, warn=warned.append)
    # idle 0 and burst 0 are real values; a pids limit of 0 is runc's "not given"
    assert got == {"memory": {"reservation": 5}, "cpu": {"idle": 0, "burst": 0}}
    assert len(warned) == 1 and "devices" in warned[0]


def test_merge_keeps_what_the_update_does_not_name():
    stored = {"devices": [{"allow": False, "access": "rwm"}],
              "memory": {"limit": 64 * MiB, "swap": 128 * MiB},
              "cpu": {"quota": 50000, "period": 100000}, "pids": {"limit": 10},
              "unified": {"memory.high": "max"}}
    changed = upd.changes({"memory": {"limit": 96 * MiB, "checkBeforeUpdate": True},
                           "cpu": {"quota": 20000}, "unified": {"io.weight": "50"}})
    merged = upd.merge(stored, changed)
    assert merged == {"devices": [{"allow": False, "access": "rwm"}],
                      "memory": {"limit": 96 * MiB, "swap": 128 * MiB},   # checkBefore.. not kept
                      "cpu": {"quota": 20000, "period": 100000}, "pids": {"limit": 10},
                      "unified": {"memory.high": "max", "io.weight": "50"}}
    assert stored["memory"]["limit"] == 64 * MiB                          # not modified in place
    # only the touched sections are written, whole; checkBeforeUpdate for this write only
    assert upd.to_apply(merged, changed) == {
        "memory": {"limit": 96 * MiB, "swap": 128 * MiB, "checkBeforeUpdate": True},
        "cpu": {"quota": 20000, "period": 100000},
        "unified": {"memory.high": "max", "io.weight": "50"}}


def test_unlimited_memory_lifts_the_swap_limit_too():
    merged = upd.merge({"memory": {"limit": 64 * MiB, "swap": 128 * MiB}},
                       upd.changes({"memory": {"limit": -1}}))
    assert merged["memory"] == {"limit": -1, "swap": -1}
    merged = upd.merge({"memory": {"limit": 64 * MiB, "swap": 128 * MiB}},
                       upd.changes({"memory": {"limit": -1, "swap": 256 * MiB}}))
    assert merged["memory"] == {"limit": -1, "swap": 256 * MiB}


def test_lists_replace():
    merged = upd.merge({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]},
                       upd.changes({"hugepageLimits": [{"pageSize": "1GB", "limit": 2}]}))
    assert merged["hugepageLimits"] == [{"pageSize": "1GB", "limit": 2}]


class Log:
    def __init__(self):
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)


def flags(*argv, stdin=None, monkeypatch=None):
    a = cli.parse_args(["update", *argv, "c1"])
    if stdin is not None:
        monkeypatch.setattr(moreverbs.sys, "stdin", io.StringIO(stdin))
    log = Log()
    return moreverbs._update_resources(a, log), log.warnings


def test_update_flags_make_a_resources_object():
    res, warned = flags("--memory", "100M", "--memory-swap=-1", "--memory-reservation", "1g",
                        "--cpu-share", "512", "--cpu-quota", "-1", "--cpu-period", "100000",
                        "--cpu-burst", "0", "--cpu-rt-period", "1000000", "--cpu-rt-runtime", "0",
                        "--cpuset-cpus", "0-1", "--cpuset-mems", "0", "--cpu-idle", "1",
                        "--pids-limit", "-1", "--blkio-weight", "300")
    assert res == {"memory": {"limit": 100 * MiB, "swap": -1, "reservation": 1 << 30},
                   "cpu": {"period": 100000, "shares": 512, "burst": 0,
                           "realtimePeriod": 1000000, "quota": -1, "realtimeRuntime": 0,
                           "idle": 1, "cpus": "0-1", "mems": "0"},
                   "pids": {"limit": -1}, "blockIO": {"weight": 300}}
    assert warned == []
    assert flags("--cpu-shares", "100")[0] == {"cpu": {"shares": 100}}
    assert flags()[0] == {}


def test_update_flag_errors():
    with pytest.raises(UsageError, match="invalid value for memory: invalid size"):
        flags("--memory", "lots")
    with pytest.raises(UsageError, match="invalid value for period"):
        flags("--cpu-period", "-5")
    with pytest.raises(UsageError, match="invalid value for pids-limit"):
        flags("--pids-limit", "many")
    with pytest.raises(MruncError, match="Intel RDT"):
        flags("--l3-cache-schema", "L3:0=f")
    assert "ignored" in flags("--kernel-memory", "10M")[1][0]


def test_update_resources_file_wins_over_flags(tmp_path, monkeypatch):
    res, warned = flags("-r", "-", "--memory", "1G", stdin='{"pids": {"limit": 7}}',
                        monkeypatch=monkeypatch)
    assert res == {"pids": {"limit": 7}} and "ignoring --memory" in warned[0]
    f = tmp_path / "r.json"
    f.write_text('{"cpu": {"shares": 2}}')
    assert flags("--resources", str(f))[0] == {"cpu": {"shares": 2}}
    with pytest.raises(SpecError, match="invalid JSON"):
        flags("-r", "-", stdin="{", monkeypatch=monkeypatch)
    with pytest.raises(SpecError, match="expected a linux.resources object"):
        flags("-r", "-", stdin="[1]", monkeypatch=monkeypatch)
    with pytest.raises(MruncError, match="No such file"):
        flags("-r", str(tmp_path / "missing.json"))


def test_ps_takes_the_id_then_options_for_ps():
    a = cli.parse_args(["ps", "-f", "json", "c1", "-o", "pid,comm", "-f"])
    assert a.format == "json" and a.args == ["c1", "-o", "pid,comm", "-f"]


def test_ps_table_without_a_ps_program(monkeypatch):
    import os
    import shutil
    monkeypatch.setattr(shutil, "which", lambda name: None)
    lines = moreverbs._ps_table([os.getpid(), 999999999], [])
    assert lines[0].split() == ["UID", "PID", "PPID", "STAT", "CMD"] and len(lines) == 2
    assert lines[1].split()[1] == str(os.getpid())
    with pytest.raises(MruncError, match="no ps program"):
        moreverbs._ps_table([1], ["-o", "pid"])


def test_ps_table_filters_ps_output_by_the_pid_column():
    import os
    lines = moreverbs._ps_table([os.getpid()], ["-o", "comm,pid"])
    assert lines[0].split() == ["COMMAND", "PID"] and len(lines) == 2
    assert lines[1].split()[1] == str(os.getpid())
