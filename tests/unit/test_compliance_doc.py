"""docs/COMPLIANCE.md must not drift from the code: every checklist row is there, what
mrunc.spec refuses is marked R (and only that), and every test it cites exists."""
import os
import re

import pytest

from mrunc import spec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(REPO, "docs", "COMPLIANCE.md")
ROW_IDS = [f"C{i}" for i in range(1, 50)] + [f"L{i}" for i in range(1, 65)]


@pytest.fixture(scope="module")
def doc():
    with open(DOC, encoding="utf-8") as f:
        return f.read()


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


@pytest.fixture(scope="module")
def rows(doc):
    """{row id: status} of the field tables: lines `| C12 | field | status | ...`."""
    out = {}
    for line in doc.splitlines():
        m = re.match(r"\|\s*([CL]\d+)\s*\|", line)
        if m:
            assert m.group(1) not in out, f"row {m.group(1)} appears twice"
            out[m.group(1)] = _cells(line)[2].split()[0].strip("*")
    return out


@pytest.fixture(scope="module")
def rejected(doc):
    """{field: (status, [row ids])} of the table in section 1.6."""
    out = {}
    for line in doc.splitlines():
        m = re.match(r"\|\s*`([^`]+)`\s*\|\s*(\S+)\s*\|([^|]*)\|\s*$", line)
        if m and re.fullmatch(r"\s*[CL]\d+(\s*,\s*[CL]\d+)*\s*", m.group(3)):
            out[m.group(1)] = (m.group(2), re.findall(r"[CL]\d+", m.group(3)))
    return out


def test_every_checklist_row_is_in_the_doc(rows):
    assert [i for i in ROW_IDS if i not in rows] == []
    assert set(rows) <= set(ROW_IDS)
    assert {s for s in rows.values()} <= {"Y", "P", "R", "N", "—"}


@pytest.mark.parametrize("field", spec.UNSUPPORTED)
def test_unsupported_fields_are_marked_r(rows, rejected, field):
    assert field in rejected, f"{field} is refused by mrunc.spec but not listed in section 1.6"
    status, ids = rejected[field]
    assert status == "R" and ids
    for row in ids:
        assert rows[row] == "R", f"{field} is refused, but row {row} says {rows[row]}"


def test_rejected_list_matches_the_code(rows, rejected):
    accepted = sorted(set(rejected) - set(spec.UNSUPPORTED))
    assert accepted == [], (f"mrunc now accepts {accepted}: update docs/COMPLIANCE.md "
                            "(delete the line in section 1.6, give the rows their new status)")
    named = {row for _, ids in rejected.values() for row in ids}
    stale = sorted(r for r, s in rows.items() if s == "R" and r not in named)
    assert stale == [], f"rows marked R but not refused by mrunc.spec (section 1.6): {stale}"


def test_summary_counts_match_the_rows(doc, rows):
    for label, prefix in (("C1–C49", "C"), ("L1–L64", "L"), ("**all", "")):
        line = next(l for l in doc.splitlines() if l.startswith(f"| {label}"))
        want = [int(c.strip("*")) for c in _cells(line)[1:5]]
        got = [sum(1 for r, s in rows.items() if r.startswith(prefix) and s == m) for m in "YPRN"]
        assert got == want, f"summary row {label}: the tables say Y/P/R/N = {got}"


def test_rejected_mount_options_are_listed(doc):
    section = doc[doc.index("Rejected mount options"):]
    section = section[:section.index("\n---")]
    listed = set(re.findall(r"[a-z]+", section.replace("`", " ")))
    assert sorted(spec.UNSUPPORTED_MOUNT_OPTIONS - listed) == []


def test_cited_tests_exist(doc):
    missing = []
    for kind, name, test in sorted(set(re.findall(r"\b(unit|integration)/(test_\w+\.py)::(test_\w+)", doc))):
        path = os.path.join(REPO, "tests", kind, name)
        source = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        if not re.search(rf"^\s*def {test}\(", source, re.M):
            missing.append(f"{kind}/{name}::{test}")
    assert missing == []
