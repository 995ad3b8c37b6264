"""JSON for the hot verbs, from the C accelerator `_json` alone.

`import json` costs about as much as starting the interpreter (it pulls in re, enum, functools),
and the commands use JSON only to read a config or a state file and write or print one. The
parser and encoder that `json` uses underneath are in C (`_json`), importable alone at little cost
(a shared library: ≈ 0.3 ms — which `state`, `kill`, `start`, `delete` and `list` do without: they
read state.json with mrunc.plainjson, which hands here only what is not plain JSON); this module
drives them directly. Same output as `json.dumps` (ASCII, ", " and ": "
separators, or an indent), same values as `json.loads`. On invalid input it hands the text to
the `json` module, only then imported, so the error message is exactly json's.
"""
import _json

_WHITESPACE = " \t\n\r"


class _Options:
    """What the C scanner reads off its context object (json.JSONDecoder's defaults)."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"),
                      "-Infinity": float("-inf")}.__getitem__
    memo = {}


_scan = _json.make_scanner(_Options())
# (markers, default, encoder, indent, key_separator, item_separator, sort_keys, skipkeys,
# allow_nan): json.dumps' defaults, without the circular-reference check (our data is a tree).
_encode = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ": ", ", ",
                             False, False, True)
_encode_compact = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ":", ",",
                                     False, False, True)


def loads(text):
    """The value of a JSON document (str or bytes). ValueError, json's own, when it is invalid."""
    doc = text
    try:
        if isinstance(doc, (bytes, bytearray)):
            doc = doc.decode()
        start = len(doc) - len(doc.lstrip(_WHITESPACE))
        value, end = _scan(doc, start)
    except Exception:   # noqa: BLE001 — any failure: json decides. (UTF-16/32 and BOMs land here;
        # and the C scanner reports some errors through json.decoder, SystemError without it.)
        value, end = None, -1
    if end < 0 or doc[end:].strip(_WHITESPACE):
        import json
        return json.loads(text)     # raises json's message (or reads what we could not)
    return value


def dumps(value, indent=None, compact=False):
    """`json.dumps(value)`; with `indent` spaces per level (scalars encoded in C either way); or
    `compact`, as with separators=(",", ":"). Keys must be strings."""
    if compact:
        return "".join(_encode_compact(value, 0))
    if indent is None:
        return "".join(_encode(value, 0))
    return _pretty(value, " " * indent, "\n")


def _pretty(value, step, nl):
    if isinstance(value, dict) and value:
        inner = nl + step
        items = (f"{dumps(k)}: {_pretty(v, step, inner)}" for k, v in value.items())
        return "{" + inner + ("," + inner).join(items) + nl + "}"
    if isinstance(value, (list, tuple)) and value:
        inner = nl + step
        return "[" + inner + ("," + inner).join(_pretty(v, step, inner) for v in value) + nl + "]"
    return dumps(value)
