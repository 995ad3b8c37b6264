"""pytest imports test files by basename (tests/ has no packages): two test_x.py in different
directories make the second one an "import file mismatch" collection error — which stops the
whole run, as it did in the cgroup v2 VM. Each name once, then."""
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_file_name_is_used_once():
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, k in names.items() if k > 1] == []
