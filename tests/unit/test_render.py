"""The renderers on frozen snapshots (tests/unit/data/phases.json): structure, escaping, what is
highlighted, and HTML that parses with every tag closed."""
import dataclasses
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mrunc import snapshot as S
from mrunc.notebook import render as R

DATA = Path(__file__).parent / "data"
PHASES = json.loads((DATA / "phases.json").read_text())
ORDER = ["host", "clone", "mount", "pivot_root", "cgroup", "security", "exec"]
ROOTFS = "/work/main/rootfs/busybox"


def snap(name):
    return S.Snapshot.from_dict(PHASES["snapshots"][name])


def step(name):
    before, after = snap(ORDER[ORDER.index(name) - 1]), snap(name)
    return after, S.diff(before, after)


# ---- a tiny DOM: enough to check balance and find elements by class ------------------------------

VOID = {"br", "hr", "img", "input", "meta", "link", "wbr", "col", "source"}


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, dict(attrs), parent, [], []

    @property
    def classes(self):
        return set((self.attrs.get("class") or "").split())

    def all_text(self):
        return "".join(t if isinstance(t, str) else t.all_text() for t in self.text)

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()

    def find(self, cls=None, tag=None):
        return [n for n in self.walk() if (cls is None or cls in n.classes) and (tag is None or n.tag == tag)]


class Tree(HTMLParser):
    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("#root", {})
        self.errors = []
        self.feed(text)
        self.close()
        if self.cur is not self.root:
            self.errors.append(f"unclosed <{self.cur.tag}>")

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        self.cur.text.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        self.cur.text.append(node)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if self.cur.tag != tag:
            self.errors.append(f"</{tag}> closes <{self.cur.tag}>")
            return
        self.cur = self.cur.parent

    def handle_data(self, data):
        self.cur.text.append(data)


def dom(html):
    t = Tree(html)
    assert t.errors == [], t.errors[:5]
    return t.root


# ---- well-formed, scoped, escaped ----------------------------------------------------------------

@pytest.mark.parametrize("phase", ORDER[1:])
def test_every_panel_is_well_formed_and_scoped(phase):
    after, d = step(phase)
    ev = PHASES["events"].get(phase, {"phase": phase})
    outputs = [R.namespace_table(after, d), R.mount_tree(after, d), R.cgroup_panel(after),
               R.security_badges(after, d), R.process_tree(after, d), R.network_panel(after, d),
               R.phase_list(R.PHASES, phase), R.syscall_list(ev.get("calls")), R.summary_list(d),
               R.page(after, d, ev), R.page(after, None, phase), R.namespace_table(after)]
    for html in outputs:
        root = dom(html)
        top = root.children
        assert len(top) == 1 and top[0].tag == "div" and top[0].classes == {"mrunc"}
        assert top[0].children[0].tag == "style"
    css = R.CSS
    rules = [r.strip() for r in re.findall(r"(?:^|})\s*([^{}]+)\{", css)]
    assert rules and all(sel.strip().startswith(".mrunc") for r in rules for sel in r.split(","))
    assert "var(--jp-ui-font-color1" in css and "var(--jp-layout-color1" in css


def test_everything_from_the_process_is_escaped():
    evil = "<script>alert('x')</script>&"
    s = snap("exec")
    m = dataclasses.replace(s.mounts[1], mount_point="/proc/" + evil, source=evil)
    p = dataclasses.replace(s.process, comm=evil, cmdline=("sh", "-c", evil))
    s = dataclasses.replace(s, mounts=(s.mounts[0], m) + s.mounts[2:], process=p, hostname=evil,
                            network=(S.Interface(evil, True, False, (evil,)),))
    d = S.diff(snap("security"), s)
    html = R.page(s, d, {"phase": "exec", "ms": 1.0, "calls": [["mount", evil, "/x"]]},
                  error=evil, failed="exec")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;" in html
    root = dom(html)
    assert not root.find(tag="script")
    assert any(evil in n.all_text() for n in root.find("mr-mp"))


# ---- namespaces ----------------------------------------------------------------------------------

def test_namespace_table_marks_new_namespaces():
    after, d = step("cgroup")
    rows = dom(R.namespace_table(after, d)).find(tag="tr")[1:]
    by_kind = {r.children[0].all_text().split("new")[0].strip(): r for r in rows}
    assert "mr-new" in by_kind["cgroup"].classes and "NEW".lower() in by_kind["cgroup"].all_text()
    assert not by_kind["PID"].classes                      # isolated earlier, not new now
    assert "own" in by_kind["PID"].all_text() and "host's" in by_kind["user"].all_text()
    assert "4026532179" in by_kind["cgroup"].all_text()
    after, d = step("clone")
    rows = dom(R.namespace_table(after, d)).find("mr-new", "tr")
    assert len(rows) == 5


# ---- mounts --------------------------------------------------------------------------------------

def test_added_mounts_are_highlighted():
    after, d = step("mount")
    root = dom(R.mount_tree(after, d))
    new = [n.find("mr-mp")[0].all_text() for n in root.find("mr-new") if "mr-node" in n.classes]
    assert sorted(new) == sorted(m.mount_point for m in d.mounts_added)
    assert ROOTFS + "/proc" in new and len(new) == 7
    # the unchanged host mounts fold away, the tree stays one tree
    folded = root.find(tag="details")[0]
    assert "19 unchanged mounts" in folded.all_text()
    assert not root.find("mr-banner")


def test_pivot_root_banner_is_unmistakable():
    after, d = step("pivot_root")
    root = dom(R.mount_tree(after, d))
    banner = root.find("mr-banner")
    assert len(banner) == 1 and banner[0].find(tag="svg")
    assert f"Root switched: / is now {ROOTFS}" in banner[0].all_text()
    assert "with 20 mounts" in banner[0].all_text()
    moved = {n.find("mr-mp")[0].all_text(): n.all_text() for n in root.find("mr-mov")}
    assert f"was {ROOTFS}" in moved["/"] and f"was {ROOTFS}/proc" in moved["/proc"]
    gone = root.find(tag="details")[-1]
    assert "20 mount(s) gone with the old root" in gone.all_text()
    assert all("mr-struck" in li.classes for li in gone.find(tag="li"))
    # in the page the banner comes first, before any panel
    page = dom(R.page(after, d, "pivot_root"))
    first = [n for n in page.walk() if n.classes & {"mr-banner", "mr-card"}][0]
    assert "mr-banner" in first.classes
    assert not dom(R.page(*step("cgroup"))).find("mr-banner")


def test_changed_mount_options_are_marked():
    after, d = step("cgroup")
    root = dom(R.mount_tree(after, d))
    chg = [n for n in root.find("mr-chg") if "mr-node" in n.classes]
    assert len(chg) == 1 and chg[0].find("mr-mp")[0].all_text() == "/" and "+ro -rw" in chg[0].all_text()


# ---- cgroup --------------------------------------------------------------------------------------

def _fills(html):
    return [(n.attrs["style"], n.classes) for n in dom(html).find("mr-fill")]


def test_cgroup_bars_show_the_right_percentages():
    s = snap("exec")
    html = R.cgroup_panel(s)
    # 274432 of 67108864 bytes; 2 of 32 pids; no cpu limit: no fill
    assert [f[0] for f in _fills(html)] == ["width:0.4%", "width:6.2%"]
    assert "0.4%" in html and "of 64.0 MiB" in html and "6.2%" in html and "of 32" in html
    cg = dataclasses.replace(s.cgroup, memory_current=48 << 20, memory_peak=60 << 20, pids_current=30,
                             cpu_quota_usec=50000, cpu_period_usec=100000, cpu_usage_usec=2_000_000,
                             oom_kills=2)
    prev = dataclasses.replace(s, cgroup=dataclasses.replace(cg, cpu_usage_usec=1_800_000), taken_at=100.0)
    now = dataclasses.replace(s, cgroup=cg, taken_at=100.5)
    fills = _fills(R.cgroup_panel(now, prev))
    assert fills[0] == ("width:75.0%", {"mr-fill", "mr-warn"})
    assert fills[1] == ("width:93.8%", {"mr-fill", "mr-bad"})
    assert fills[2] == ("width:80.0%", {"mr-fill", "mr-warn"})      # 0.4 CPUs of a 0.5 CPU limit
    root = dom(R.cgroup_panel(now, prev))
    assert root.find("mr-peak")[0].attrs["style"] == "left:93.8%"
    assert "OOM kills: 2" in root.all_text() and "0.40 CPUs now" in root.all_text()


def test_cgroup_without_limits_has_empty_bars():
    s = snap("mount")                     # still in the caller's cgroup: nothing set
    root = dom(R.cgroup_panel(s))
    assert not root.find("mr-fill") and root.all_text().count("no limit") == 3


# ---- security ------------------------------------------------------------------------------------

def test_dropped_caps_are_struck_through():
    after, d = step("security")
    root = dom(R.security_badges(after, d))
    dropped = root.find(tag="del")
    assert len(dropped) == 37 and all({"mr-badge", "mr-bad"} <= n.classes for n in dropped)
    assert "CAP_SYS_ADMIN (dropped)" in {n.attrs["title"] for n in dropped}
    kept = [n.all_text() for n in root.find("mr-ok") if n.tag == "span" and "mr-badge" in n.classes]
    assert {"kill", "net_bind_service", "audit_write"} <= set(kept)
    rows = root.find("mr-key")
    assert "permitted · effective · bounding" in [r.children[0].all_text() for r in rows if r.children]
    assert "no_new_privs on" in root.all_text() and "seccomp: disabled" in root.all_text()
    # without a diff: nothing struck
    assert not dom(R.security_badges(after)).find(tag="del")


# ---- processes, phases, calls --------------------------------------------------------------------

def test_process_tree_shows_exec_and_children():
    after, d = step("exec")
    root = dom(R.process_tree(after, d))
    names = [n.all_text() for n in root.find("mr-mp")]
    assert names == ["sh", "sleep"]
    assert "exec'd, was mrunc:[init]" in root.all_text() and "PID 1 inside" in root.all_text()
    assert "sh -c sleep 300 &amp; wait" in R.process_tree(after, d)


def test_phase_list_states():
    root = dom(R.phase_list(R.PHASES, "cgroup", times={"clone": 6.63}))
    items = root.find(tag="li")
    cls = {i.find("mr-pname")[0].all_text(): i.classes for i in items}
    assert cls["spec"] == cls["pivot_root"] == {"mr-done"} and cls["cgroup"] == {"mr-now"}
    assert cls["security"] == cls["exec"] == set()
    assert "6.6 ms" in items[1].all_text()
    root = dom(R.phase_list(R.PHASES, "mount", failed="pivot_root"))
    cls = {i.find("mr-pname")[0].all_text(): i.classes for i in root.find(tag="li")}
    assert cls["pivot_root"] == {"mr-failed"} and cls["mount"] == {"mr-done"} and cls["cgroup"] == set()


def test_syscall_list_groups_runs_and_names_prctl():
    html = R.syscall_list(PHASES["events"]["security"]["calls"])
    lines = [li.all_text() for li in dom(html).find(tag="li")]
    assert lines[0] == "setrlimit(RLIMIT_NOFILE, 1024, 1024)"
    assert lines[1] == "prctl(PR_CAPBSET_DROP, …) × 38: 0, 1, 2, … 40"
    assert "prctl(PR_SET_NO_NEW_PRIVS, 1)" in lines
    assert len(lines) == 11
    html = R.syscall_list([["mount", "proc", "/proc", "proc", "0", None], ["a", 1], ["a", 2]])
    lines = [li.all_text() for li in dom(html).find(tag="li")]
    assert lines == ['mount("proc", "/proc", "proc", 0, NULL)', "a(1)", "a(2)"]   # flags read bare


def test_page_composes_everything():
    after, d = step("cgroup")
    ev = PHASES["events"]["cgroup"]
    root = dom(R.page(after, d, ev, times={k: v["ms"] for k, v in PHASES["events"].items()}))
    titles = [h.all_text() for h in root.find(tag="h3")]
    for t in ("What changed", "What the runtime asked the kernel", "Namespaces", "Security", "Mount tree",
              "cgroup: limits and usage", "Processes", "Network and UTS"):
        assert any(x.startswith(t) for x in titles), t
    summary = [li.all_text() for li in root.find("mr-summary")[0].find(tag="li")]
    assert summary == d.summary()
    assert "After cgroup" in root.find("mr-title")[0].all_text()


def test_page_shows_a_failed_phase():
    s = snap("mount")
    root = dom(R.page(s, None, "pivot_root", failed="pivot_root", error="pivot_root: Invalid argument"))
    banner = root.find("mr-banner")[0]
    assert "mr-bad" in banner.classes and "pivot_root: Invalid argument" in banner.all_text()
    assert "mr-failed" in [li for li in root.find(tag="li") if "pivot_root" in li.all_text()][0].classes


def test_partial_snapshot_renders():
    s = S.Snapshot(pid=42, error="mounts: process 42 has exited")
    root = dom(R.page(s, S.diff(snap("exec"), s), "exec"))
    assert "Partial snapshot: mounts: process 42 has exited" in root.all_text()
    assert "the process is gone" in root.all_text()


# ---- the code that ran ---------------------------------------------------------------------------

@pytest.mark.parametrize("phase", R.PHASES + ("network",))
def test_each_phase_shows_the_code_that_ran(phase):
    import inspect
    from mrunc import phases
    ph = phases.get(phase)
    root = dom(R.phase_code(phase))
    card = root.find("mr-card")[0]
    assert card.find(tag="h3")[0].all_text().startswith("The code that ran")
    refs = [c.all_text() for c in card.find("mr-fn-ref")]
    assert refs == [ph.function, *ph.also]
    for ref, fn_div in zip(refs, card.find("mr-code-fn")):
        module, _, name = ref.partition(":")
        fn = getattr(__import__(module, fromlist=[name]), name)
        # its docstring, as words; its source behind an expander (closed), exactly as in the file
        assert " ".join(inspect.getdoc(fn).split()) in " ".join(fn_div.find("mr-doc")[0].all_text().split())
        details = fn_div.find("mr-source")[0]
        assert details.tag == "details" and "open" not in details.attrs
        assert details.find("mr-code")[0].all_text() == inspect.getsource(fn)
        src_file = inspect.getsourcefile(fn)
        line = inspect.getsourcelines(fn)[1]
        assert src_file.endswith(details.find(tag="summary")[0].find(tag="code")[0].all_text()
                                 .rsplit(":", 1)[0]) and f":{line}" in details.all_text()
    # the phase's own process, and the other one's part
    badges = [b.all_text() for b in card.find("mr-badge")]
    assert badges[0] == ph.process and len(badges) == 1 + len(ph.also)


def test_the_page_of_a_phase_opens_its_code():
    after, d = step("mount")
    root = dom(R.page(after, d, PHASES["events"]["mount"]))
    assert [c.all_text() for c in root.find("mr-fn-ref")] == ["mrunc.process.init:mount_phase"]
    assert R.phase_code("no-such-phase") == R._root("")
