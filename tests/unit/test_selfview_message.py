"""mrunc.process.selfview: what a process reports of itself is what /proc/<pid> shows from outside
(here for the test's own process, which anyone may read)."""
import os

from mrunc import snapshot
from mrunc.process import selfview


def test_report_of_this_process_is_what_a_snapshot_reads():
    view = selfview.report()
    assert "errors" not in view, view.get("errors")
    snap = snapshot.take(os.getpid())
    assert view["ns"] == {n.kind: n.inode for n in snap.namespaces}
    st = os.stat(f"/proc/{os.getpid()}/root")
    assert tuple(view["root"]) == (st.st_dev, st.st_ino)
    assert view["exe"] == os.readlink("/proc/self/exe") == snap.process.exe
    assert view["hostname"] == os.uname().nodename == snap.hostname
    assert {m.mount_point for m in snapshot.parse_mountinfo(view["mountinfo"])} == \
        {m.mount_point for m in snap.mounts}
    assert snapshot._status(view["status"])["CapEff"] == snapshot._status(
        open("/proc/self/status").read())["CapEff"]
    assert set(view["ifflags"]) == {i.name for i in snap.network}
    assert all(bool(view["ifflags"][i.name] & 1) == i.up for i in snap.network)


def test_what_cannot_be_read_is_named_not_raised():
    class Broken:
        def open(self, rel, flags=os.O_RDONLY):
            raise PermissionError(13, "Permission denied", rel)
    view = selfview.report(Broken())
    assert set(view["errors"]) == {"ns", "exe", "mountinfo", "status", "uid_map", "gid_map",
                                   "domainname", "ifflags"}
    assert "root" in view and "hostname" in view        # stat("/") and uname() need no procfs
