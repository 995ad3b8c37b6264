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
