"""Writing mrunc.codecache's file: the code of what a command imported, kept for the next ones.

The reader (mrunc.codecache) is on the way of every command that uses the file, so it holds what
reading needs and no more; this half — gathering the modules, compiling them without their
docstrings, writing the file — is imported only by a command that found a module missing or out
of date (once after a change, or the first time a verb runs). What the file holds, and when it
is trusted: see mrunc.codecache.
"""
import marshal
import posix as os  # os's C module: the same calls, without os's ≈ 1 ms import (mrunc.paths)
import sys

from . import codecache as cache


def save():
    """Write the file anew: every module of mrunc this command imported, and those the file held
    that are still current (their code as it is there)."""
    blobs = {}      # name -> (origin, is a package, mtime_ns, size, marshalled code)
    for name, (origin, package, mtime, size, offset, length) in cache._index.items():
        if cache._current(origin, mtime, size):
            data = cache._read_at(offset, length)
            if data is not None:
                blobs[name] = (origin, package, mtime, size, data)
    for name, m in list(sys.modules.items()):
        spec = getattr(m, "__spec__", None)
        if (not name.startswith("mrunc.") or name in cache._before or name in blobs
                or name == __name__     # this writer: only a command that writes needs it
                or spec is None or spec.loader is cache._Loader
                or not (spec.origin or "").endswith(".py")):
            continue
        try:
            st = os.stat(spec.origin)
        except OSError:
            continue
        code = _code(name, spec.origin)
        if code is not None:
            blobs[name] = (spec.origin, spec.submodule_search_locations is not None,
                           st.st_mtime_ns, st.st_size, marshal.dumps(code))
    _write(blobs)


def _write(blobs):
    """The file: the key, the index, then each module's marshalled code at the index's offset.
    Written as a new file, then renamed over the old one: a reader has the one or the other."""
    head = _frame(marshal.dumps(cache._KEY))
    raw, size = b"", -1
    while len(raw) != size:     # the index's own length moves the offsets it holds: until stable
        size, at, index = len(raw), len(head) + 8 + len(raw), {}
        for name, (origin, package, mtime, st_size, data) in blobs.items():
            index[name] = (origin, package, mtime, st_size, at, len(data))
            at += len(data)
        raw = marshal.dumps(index)
    tmp = f"{cache._path}.{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            for data in (head, _frame(raw), *(e[4] for e in blobs.values())):
                _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, cache._path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _frame(data):
    return len(data).to_bytes(8, "little") + data


def _write_all(fd, data):
    data = memoryview(data)
    while data:
        data = data[os.write(fd, data):]


def _code(name, origin):
    """A module's code as the usual import compiles it, but without its docstrings — the module's,
    its classes' and its functions' (asserts, names and line numbers stay as they are): they are
    a fifth of the code these verbs hold in memory (≈ 0.15 MiB of their peak RSS), and nothing a
    command runs reads them (a notebook, `help()` import the usual way, docstrings and all). Nor
    the columns of each instruction (_lines_only).
    Compiled from the source's syntax tree, through the built-in `_ast` (`ast` would import
    enum and contextlib; `_ast` itself, ≈ 1 ms, only here: for a command that writes the file).
    None if it cannot be had."""
    import _ast
    try:
        with open(origin, "rb") as f:
            tree = compile(f.read(), origin, "exec", _ast.PyCF_ONLY_AST, dont_inherit=True)
        _drop_docstrings(tree)
        return _lines_only(compile(tree, origin, "exec", dont_inherit=True))
    except (OSError, SyntaxError, ValueError):
        return None


def _drop_docstrings(tree):
    """Remove the string that opens the body of the module and of each class and function (a
    body left without a statement gets a `pass` in its place)."""
    import _ast
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (_ast.Module, _ast.ClassDef, _ast.FunctionDef, _ast.AsyncFunctionDef)):
            body = node.body
            first = body[0].value if body and isinstance(body[0], _ast.Expr) else None
            if isinstance(first, _ast.Constant) and isinstance(first.value, str):
                doc = body.pop(0)
                if not body:
                    body.append(_ast.Pass(lineno=doc.lineno, col_offset=doc.col_offset,
                                          end_lineno=doc.end_lineno,
                                          end_col_offset=doc.end_col_offset))
        for field in node._fields:
            value = getattr(node, field, None)
            todo += [v for v in (value if isinstance(value, list) else [value])
                     if isinstance(v, _ast.AST)]


def _lines_only(code):
    """`code` (and the functions, classes and comprehensions in it) with the line of each
    instruction kept and its columns dropped, as `python -X no_debug_ranges` compiles: what a
    traceback needs to name the line, not to underline the expression in it (^^^). A quarter of
    the location tables, which were a quarter of these modules' code. Kept as it is where the
    table reads otherwise than expected: the lines must come out the same."""
    consts = tuple(_lines_only(c) if isinstance(c, type(code)) else c for c in code.co_consts)
    try:
        slim = code.replace(co_consts=consts, co_linetable=_without_columns(code.co_linetable))
    except (IndexError, ValueError):
        return code.replace(co_consts=consts)
    return slim if list(slim.co_lines()) == list(code.co_lines()) else code.replace(co_consts=consts)


def _without_columns(table):
    """A location table (CPython's format since 3.11: Objects/locations.md) rewritten entry by
    entry in its "no column" form: the entry's first byte (bit 7 set; bits 3-6 its form; bits 0-2
    how many code units it covers, less one), then the line's change as a signed varint."""
    out, i = bytearray(), 0
    while i < len(table):
        first, i = table[i], i + 1
        form = (first >> 3) & 15
        if form == 15:                  # no location at all: as it is
            out.append(first)
        else:
            if form < 10:               # short forms: same line, a column byte
                delta = 0
            elif form < 13:             # one-line forms: the line moves by 0, 1 or 2
                delta = form - 10
            else:                       # 13 (no column), 14 (long form): a signed varint first
                raw, shift = 0, 0
                while True:
                    byte, i = table[i], i + 1
                    raw |= (byte & 63) << shift
                    shift += 6
                    if not byte & 64:
                        break
                delta = -(raw >> 1) if raw & 1 else raw >> 1
            out.append(0x80 | 13 << 3 | first & 7)
            raw = (-delta) << 1 | 1 if delta < 0 else delta << 1
            while raw >= 64:
                out.append(64 | raw & 63)
                raw >>= 6
            out.append(raw)
        while i < len(table) and not table[i] & 128:
            i += 1                      # the rest of this entry (columns), dropped
    return bytes(out)
