"""mrunc.plainjson reads and prints what json does — the plain documents itself, everything else
through mrunc.fastjson — and never takes a malformed document: its error is json's."""
import json
import os
import random
import subprocess
import sys

import pytest

from mrunc import plainjson

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What create records (the bench bundle's state.json, shortened): the plain kind.
STATE = {"id": "c1", "pid": 5359, "start_time": 6474503, "bundle": "/tmp/b", "rootfs": "/r",
         "created": "2026-12-07T18:22:03.923370599Z", "creator": None,
         "config": {"ociVersion": "1.0.2-dev", "process": {
             "terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["sleep", "10000"],
             "capabilities": {"bounding": ["CAP_KILL"], "ambient": []},
             "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
             "noNewPrivileges": True},
             "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}], "annotations": {},
                       "resources": {"memory": {"limit": -1}, "cpu": {"shares": 0}}}},
         "cgroup": {"path": "/c1", "paths": {"": "/c1"}, "rootless": False, "layout": "hybrid",
                    "mounts": {"": ["/sys/fs/cgroup/unified", "/"]}, "dirs": [], "freezer": None}}
# Not plain: escapes, non-ASCII, floats, other whitespace — read and printed by fastjson.
OTHERS = [{"args": ["sh", "-c", "echo 'é\\n\"'"]}, {"n": [1.5, -2, 1e100]}, "\u2603",
          "\x00\x1f\u007f", {"tab": "a\tb"}, [True, (1, 2)]]  # keys: strings (as fastjson)
PLAIN = [STATE, {}, [], "x", "", 0, -7, 10 ** 30, True, False, None, [[], {}, [{"a": [[]]}]],
         {"a": {}, "b": [], "c": [1, {"d": None, "e": True}]}, {"k": "v", "k2": "v"}]


@pytest.mark.parametrize("value", PLAIN + OTHERS)
def test_same_text_as_json(value):
    for indent in (None, 0, 2, 4):
        assert plainjson.dumps(value, indent=indent) == json.dumps(value, indent=indent)


@pytest.mark.parametrize("value", PLAIN + OTHERS)
def test_same_value_as_json(value):
    for text in (json.dumps(value), json.dumps(value, indent=2), f"  {json.dumps(value)}  ",
                 json.dumps(value, separators=(",", ":"))):
        assert plainjson.loads(text) == json.loads(text)
        assert plainjson.loads(text.encode()) == json.loads(text)


def test_a_plain_document_is_read_without_the_shared_library():
    """As a short verb reads state.json: `_json` is never loaded (nor fastjson, nor json)."""
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); from mrunc import plainjson\n"
            "doc = sys.stdin.buffer.read()\n"
            "value = plainjson.loads(doc)\n"
            "print(plainjson.dumps(value, indent=2))\n"
            "print(sorted({'_json', 'mrunc.fastjson'} & set(sys.modules)))\n")
    code = code.replace("import sys, json;", "import sys;")
    p = subprocess.run([sys.executable, "-I", "-S", "-c", code, REPO], capture_output=True,
                       text=True, input=json.dumps(STATE), timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == json.dumps(STATE, indent=2) + "\n[]\n"


BAD = ["", " ", "{", "}", "[", "]", '{"a": }', "[1] x", "nul", '{"a":1}}', "[1,]", '{"a" 1}',
       '"\\x"', "01", "-", "+1", "1 2", '{"a": 1,}', '{,}', "[,]", '{"a"}', '{1: 2}', '["a" "b"]',
       '["a""b"]', '{"a": 1 "b": 2}', "[true false]", "tru", '"abc', 'abc"', '{"a": [}', "[{]}",
       '{"a": 1}]', "[]]", "[][]", '"a" "b"', "[-]", "[1.]", "[.5]", "[1e]", "[00]", "[-01]",
       '{"a": "b\nc"}', '["\x01"]', "[nan]", "[NaN, Infinity, -Infinity]", '{"a": tRue}',
       "[" * 200 + "]" * 200, "[" * 3000 + "]" * 3000]


@pytest.mark.parametrize("bad", BAD)
def test_what_json_refuses_is_refused_with_json_s_message(bad):
    try:
        expected = json.loads(bad)
    except (ValueError, RecursionError) as e:
        with pytest.raises(type(e)) as ours:
            plainjson.loads(bad)
        assert str(ours.value) == str(e)
    else:   # json's extensions (NaN, Infinity), deep nesting: its value
        assert json.dumps(plainjson.loads(bad)) == json.dumps(expected)


def test_damaged_state_files_read_as_json_reads_them():
    """Every one-character change (dropped, doubled, replaced by a JSON character) of a state
    document gives json's value or json's error, never another value."""
    rng = random.Random(13)
    text = json.dumps(STATE)
    alphabet = '{}[]:,"\\ 0123456789-.etruflsnaxE\t\n'
    for _ in range(3000):
        i = rng.randrange(len(text))
        change = rng.choice(("drop", "double", "replace", "insert"))
        c = rng.choice(alphabet)
        bad = {"drop": text[:i] + text[i + 1:], "double": text[:i] + text[i] + text[i:],
               "replace": text[:i] + c + text[i + 1:], "insert": text[:i] + c + text[i:]}[change]
        try:
            expected = json.loads(bad)
        except ValueError as e:
            with pytest.raises(ValueError) as ours:
                plainjson.loads(bad)
            assert str(ours.value) == str(e), bad
        else:
            assert plainjson.loads(bad) == expected, bad


def test_what_is_kept_between_documents_stays_bounded():
    """A notebook reads the states of many containers, whose pids differ: the pieces kept
    tokenized between documents are bounded, and documents read past the bound read right."""
    for pid in range(3 * plainjson._KEPT):
        doc = {"pid": pid, "start_time": pid * 7, "cgroup": {"created": [pid], "rootless": False}}
        assert plainjson.loads(json.dumps(doc)) == doc
    assert len(plainjson._tokens) <= plainjson._KEPT
