"""The config fuzzer's slow half in `make test`: refused configs through the CLI, and real
containers of mutated configs, in a mount (and UTS, IPC, network) namespace of the driver's own
(tests/fuzz_driver.py); the long run is `make fuzz`.

The driver judges every case (one line naming a JSON path, no traceback, no hang, nothing left
behind in its namespace); this test checks its report and, from outside, that the host did not
change: our root, the mount table's entries for the driver's paths, the hostname, the network
interfaces, and no cgroup directory of the run's in any hierarchy.
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = [pytest.mark.root, pytest.mark.slow]

SEED = int(os.environ.get("MRUNC_FUZZ_SEED", "20261207"))
DRIVER = os.path.join(REPO, "tests", "fuzz_driver.py")
CORPUS = os.path.join(REPO, "tests", "fuzz_corpus")


def _host():
    st = os.stat("/")
    with open("/proc/self/mountinfo") as f:
        fuzz_mounts = [l for l in f if "mrunc-fuzz" in l]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return {"root": (st.st_dev, st.st_ino, os.readlink("/proc/self/root")),
            "fuzz mounts": fuzz_mounts, "hostname": os.uname().nodename,
            "links": sorted(l.split("link/")[0].split(":", 2)[1] for l in links.splitlines())}


def _cgroup_dirs(token):
    found = []
    for dirpath, dirnames, _ in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(dirpath, d) for d in dirnames if token in d]
        if dirpath.count("/") > 7:
            dirnames[:] = []
    return found


def test_refused_configs_through_the_cli_and_200_real_containers(tmp_path):
    before = _host()
    p = subprocess.run([sys.executable, DRIVER, "--seed", str(SEED), "--cli", "100",
                        "--containers", "200", "--replay", CORPUS, "--timeout", "60",
                        "--failures", str(tmp_path / "failures")],
                       capture_output=True, text=True, timeout=600, cwd=REPO)
    assert p.returncode in (0, 1), p.stderr
    report = json.loads(p.stdout)
    after = _host()
    assert after == before
    assert _cgroup_dirs(report["token"]) == []
    assert report["failures"] == [], json.dumps(report["failures"][:3], indent=1)
    assert report["cli"]["cases"] >= 100 and report["cli"]["refused"] == report["cli"]["cases"]
    c = report["containers"]
    assert c["cases"] == 200 and c.get("failed", 0) == 0
    # the mix is what makes it worth anything: real containers ran, others were refused
    assert c["ran"] >= 40 and c["refused"] >= 40, c
    assert report["replay"]["cases"] >= 5
