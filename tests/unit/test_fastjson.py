"""mrunc.fastjson reads and writes what the json module does, and fails with json's message."""
import json
import math

import pytest

from mrunc import fastjson

VALUES = [
    {"ociVersion": "1.3.0", "id": "c1", "pid": 42, "status": "running", "annotations": {},
     "config": {"process": {"args": ["sh", "-c", "echo 'é\\n\"'"], "env": []}, "n": [1.5, -2, 1e100],
                "flags": [True, False, None], "deep": {"a": {"b": [[], {}, [{"c": "\u2603"}]]}}}},
    [], {}, "x", 3, -0.0, [1, [2, [3]]], "\x00\x1f\u007f\ud83d",
]


@pytest.mark.parametrize("value", VALUES)
def test_same_text_as_json(value):
    assert fastjson.dumps(value) == json.dumps(value)
    assert fastjson.dumps(value, indent=2) == json.dumps(value, indent=2)
    assert fastjson.dumps(value, compact=True) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("value", VALUES)
def test_same_value_as_json(value):
    for text in (json.dumps(value), json.dumps(value, indent=4), f" \n{json.dumps(value)}\t\r\n"):
        assert fastjson.loads(text) == json.loads(text)
        assert fastjson.loads(text.encode()) == json.loads(text)


def test_constants():
    assert math.isnan(fastjson.loads("NaN"))
    assert fastjson.loads("[Infinity, -Infinity]") == [math.inf, -math.inf]


@pytest.mark.parametrize("bad", ["", " ", "{", '{"a": }', "[1] x", "nul", '{"a":1}}', "[1,]",
                                 '{"a" 1}', '"\\x"', "01"])
def test_errors_are_jsons(bad):
    with pytest.raises(ValueError) as ours:
        fastjson.loads(bad)
    with pytest.raises(ValueError) as theirs:
        json.loads(bad)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-32"])
def test_other_encodings_as_json(encoding):
    data = json.dumps(VALUES[0]).encode(encoding)
    assert fastjson.loads(data) == json.loads(data) == VALUES[0]


def test_errors_without_json_imported():
    """The C scanner reports some errors only through json.decoder, when it has been imported
    (SystemError otherwise): in a fresh interpreter, as the CLI runs, errors are still json's."""
    import os
    import subprocess
    import sys
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from mrunc import fastjson\n"
            "for bad in sys.argv[2:]:\n"
            "    try:\n        fastjson.loads(bad)\n"
            "    except ValueError as e:\n        print(type(e).__name__, e)\n")
    bad = ['{"ociVersion": "1.0.0",', '{"a"', '{"a": }', "[1,", '{"a": 1 "b"}', '{1: 2}']
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code, repo, *bad],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    want = []
    for b in bad:
        try:
            json.loads(b)
        except ValueError as e:
            want.append(f"{type(e).__name__} {e}")
    assert out == want
