"""The JSON of state.json, read and printed without loading any shared library.

Every `start`, `state`, `kill` and `delete` reads state.json, and `state` prints a state; with
mrunc.fastjson each of them loads `_json`, the C accelerator — a shared library, ≈ 0.3 ms of
CPU with its import, as much as all of such a command's own work. But what mrunc writes there is
plain JSON: ASCII (json's encoder escapes the rest), ", " and ": " between items, strings, whole
numbers, true, false, null. A document of that kind is read here, in Python, with the string
methods doing most of the work: split at each '"', the pieces alternate between what is between
two strings (structure, numbers, literals) and a string's text.

Strict: this reader takes a document only if it is plain and well-formed; anything else — an
escape, a float, a control character, a document that is not JSON at all — goes to
mrunc.fastjson, which reads it as json does or fails with json's own message. So a value read
here is the one json would read, and an error is json's, word for word. `dumps` prints plain
values the way json.dumps does, and hands anything else to fastjson in the same way.
"""

_KEY, _VALUE, _COLON, _NEXT, _DONE = range(5)   # what comes next (see loads)
_LITERALS = {"true": True, "false": False, "null": None}
_PUNCTUATION = frozenset("{}[]:,")
_CONTROL = bytes(range(32))     # tab, newline… included: json's whitespace, but the writer's not
_tokens = {}    # the text between two strings -> its tokens (", " and ": " come again and again)
_KEPT = 512     # at most (a notebook reads many containers' states: their pids differ)
_DEEPEST = 100  # containers in containers: json's own reader gives up (RecursionError) far deeper


# Not a plain document (or not JSON): mrunc.fastjson decides. ValueError itself, not a class of
# its own (making one costs ≈ 10 µs): only this module's code runs where it is caught.
_NotPlain = ValueError


def loads(data):
    """The value of a JSON document (bytes or str), as json.loads gives it; ValueError, json's
    own, when it is not JSON."""
    try:
        return _plain_loads(data.encode("ascii") if data.__class__ is str else bytes(data))
    except (_NotPlain, UnicodeError, TypeError):
        from . import fastjson
        return fastjson.loads(data)


def _plain_loads(data):
    # ASCII without control characters or escapes: each '"' opens or closes a string, and no
    # string holds anything json would refuse (a control character) or decode (an escape).
    # Whitespace is blanks only (the writer puts none but these).
    if not data.isascii() or len(data.translate(None, _CONTROL)) != len(data) or b"\\" in data:
        raise _NotPlain
    pieces = data.decode("ascii").split('"')
    if not len(pieces) & 1:
        raise _NotPlain      # an odd number of quotes: an unterminated string
    pieces.append(None)      # (so that they pair up: the last piece has no string after it)
    stack = []               # the containers around the current one
    cur = top = key = None   # the container being filled (None: the document itself), its key
    is_dict = False
    want = _VALUE
    it = iter(pieces)
    for between, s in zip(it, it):
        # What is between the previous string and `s` (None: the end). The two most common
        # take the short way: a key's value, and the next key or item.
        if between == ": " and want == _COLON:
            cur[key] = s
            want = _NEXT
            continue
        if between == ", " and want == _NEXT:
            if is_dict:
                key, want = s, _COLON
            else:
                cur.append(s)
            continue
        for tok in _tokens.get(between) or _tokenize(between):
            if tok == ",":
                if want != _NEXT:
                    raise _NotPlain
                want = _KEY if is_dict else _VALUE
            elif tok == ":":
                if want != _COLON:
                    raise _NotPlain
                want = _VALUE
            elif tok == "{" or tok == "[":
                if want != _VALUE or len(stack) == _DEEPEST:
                    raise _NotPlain
                new = {} if tok == "{" else []
                _put(cur, is_dict, key, new)
                stack.append(cur)
                top = new if cur is None else top
                cur, is_dict = new, tok == "{"
                # first a key or "}" / a value or "]": the closing checks for an empty one
                want = _KEY if is_dict else _VALUE
            elif tok == "}" or tok == "]":
                if is_dict != (tok == "}") or cur is None or not (
                        want == _NEXT or (not cur and want == (_KEY if is_dict else _VALUE))):
                    raise _NotPlain
                cur = stack.pop()
                is_dict = cur.__class__ is dict
                want = _NEXT if cur is not None else _DONE
            else:                               # a number or literal: (value,)
                if want != _VALUE:
                    raise _NotPlain
                _put(cur, is_dict, key, tok[0])
                if cur is None:
                    top = tok[0]
                want = _NEXT if cur is not None else _DONE
        if s is None:
            break
        if want == _KEY:
            key, want = s, _COLON
        elif want == _VALUE:
            _put(cur, is_dict, key, s)
            if cur is None:
                top = s
            want = _NEXT if cur is not None else _DONE
        else:
            raise _NotPlain
    if want != _DONE:
        raise _NotPlain
    return top


def _put(cur, is_dict, key, value):
    if is_dict:
        cur[key] = value
    elif cur is not None:
        cur.append(value)


def _tokenize(between):
    """The tokens of what is between two strings: punctuation as itself, a number or literal as
    (its value,). Kept: the same few pieces come again and again."""
    spaced = between
    for mark in _PUNCTUATION:
        spaced = spaced.replace(mark, f" {mark} ")
    tokens = tuple(t if t in _PUNCTUATION else (_scalar(t),) for t in spaced.split(" ") if t)
    if len(_tokens) < _KEPT:
        _tokens[between] = tokens
    return tokens


def _scalar(word):
    """true, false, null or a whole number as json writes one (no leading zero, no "+")."""
    if word in _LITERALS:
        return _LITERALS[word]
    digits = word[1:] if word.startswith("-") else word
    if not (digits.isdigit() and (digits == "0" or digits[0] != "0")):
        raise _NotPlain      # a float, or not JSON
    return int(word)


def dumps(value, indent=None):
    """json.dumps(value, indent=indent): printed here when the value is plain (see the
    module's doc), else by mrunc.fastjson."""
    try:
        if indent is None:
            return _plain_dumps(value, "", "", True)
        return _plain_dumps(value, "\n", " " * indent, False)
    except _NotPlain:
        from . import fastjson
        return fastjson.dumps(value, indent=indent)


def _plain_dumps(value, nl, step, flat):
    """`nl`: a new line and the indentation of `value`'s own level; `step`: one level more;
    `flat`: on one line (indent=None)."""
    if value.__class__ is str:
        if not (value.isascii() and value.isprintable()) or '"' in value or "\\" in value:
            raise _NotPlain      # json escapes it
        return '"' + value + '"'
    if value is None or value is True or value is False:
        return "null" if value is None else "true" if value else "false"
    if value.__class__ is int:
        return str(value)
    if value.__class__ is dict:
        return _enclose("{", [_key(k) + ": " + _plain_dumps(v, nl + step, step, flat)
                              for k, v in value.items()], "}", nl, step, flat)
    if value.__class__ is list:
        return _enclose("[", [_plain_dumps(v, nl + step, step, flat) for v in value], "]",
                        nl, step, flat)
    raise _NotPlain


def _enclose(opening, items, closing, nl, step, flat):
    """A dict's or a list's printed items between its brackets, as json.dumps lays them out."""
    if not items:
        return opening + closing
    if flat:
        return opening + ", ".join(items) + closing
    return opening + nl + step + ("," + nl + step).join(items) + nl + closing


def _key(key):
    if key.__class__ is not str:
        raise _NotPlain     # json writes a number's or a literal's text as the key
    return _plain_dumps(key, "", "", True)
