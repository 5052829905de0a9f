"""Parsing CEL text with cel-python's lark grammar, extended with what cel-go (as Cerbos configures
it) also accepts: optional field selection and indexing (``.?``, ``[?]``), optional list and map
entries, and trailing commas; plus decoding of CEL literals."""

from __future__ import annotations

import importlib.util
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lark


class CelCompileError(Exception):
    """A CEL expression that cannot be compiled; line and column are 1-based within the expression."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


# ---- the parser --------------------------------------------------------------------------

# A CEL parse tree as the compiler walks it. Its leaves are lark Tokens, but whether a given child is
# a token or a subtree is fixed by the grammar rule, which mypy cannot follow: children are read by
# rule, so the leaf type stays open (tokens are narrowed where they are read, see compiler._token).
ParseTree = lark.Tree[Any]

_GRAMMAR_ADDITIONS = """
member_dot_opt : member ".?" IDENT
member_index_opt : member "[" "?" expr "]"
list_elems : list_elem ("," list_elem)* [","]
list_elem : expr | opt_elem
opt_elem : "?" expr
map_entries : map_entry ("," map_entry)* [","]
map_entry : (expr | opt_elem) ":" expr
"""


def _celpy_grammar() -> str:
    """cel-python's grammar file, found without importing cel-python (a heavy import)."""
    spec = importlib.util.find_spec("celpy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("cel-python is not installed: pip install cel-python")
    return (Path(next(iter(spec.submodule_search_locations))) / "cel.lark").read_text()


def _build_parser() -> lark.Lark:
    grammar = _celpy_grammar()
    grammar = grammar.replace(
        "member         : member_dot | member_dot_arg | member_index | member_object | primary",
        "member         : member_dot | member_dot_arg | member_index | member_object | primary"
        " | member_dot_opt | member_index_opt",
    )
    # Literals as cel-go parses them: optional elements (?x) and trailing commas.
    grammar = grammar.replace('list_lit       : "[" [exprlist] "]"', 'list_lit       : "[" [list_elems] "]"')
    grammar = grammar.replace('map_lit        : "{" [mapinits] "}"', 'map_lit        : "{" [map_entries] "}"')
    return lark.Lark(
        grammar + _GRAMMAR_ADDITIONS,
        parser="lalr",
        start="expr",
        g_regex_flags=re.M,
        lexer_callbacks={"IDENT": _bool_literals},
        propagate_positions=True,
        maybe_placeholders=False,
        priority="invert",
        # The LALR tables take ~150 ms to build; lark caches them keyed by grammar and options.
        cache=grammar_cache() or False,
    )


def grammar_cache() -> str | None:
    """Where lark may cache the parser tables: a file in this user's own cache directory, or none.

    Never a shared directory such as /tmp: lark unpickles a cache file before it checks it, so a
    file another account planted there would run its code in whoever next parses a condition (a
    clinician on a shared ward computer, or root compiling policies). The directory must be this
    user's and closed to others, the file this user's regular file and writable by nobody else."""
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ccc-authz"
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(base.lstat(), stat.S_ISDIR, 0o077):
            return None
        path = base / f"cel-grammar-{lark.__version__}.lark"
        if path.exists() or path.is_symlink():
            return str(path) if _private(path.lstat(), stat.S_ISREG, 0o022) else None
        return str(path)
    except (OSError, RuntimeError):  # no home directory, or not writable: build the tables each time
        return None


def _private(info: os.stat_result, kind: Callable[[int], bool], forbidden: int) -> bool:
    return kind(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & forbidden


def _bool_literals(t: lark.Token) -> lark.Token:
    if t.value in ("true", "false"):
        return lark.Token("BOOL_LIT", t.value)
    return t


_PARSER: lark.Lark | None = None


def parse(text: str) -> lark.Tree[lark.Token]:
    global _PARSER
    if _PARSER is None:
        _PARSER = _build_parser()
    try:
        return _PARSER.parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        line = getattr(exc, "line", 1) or 1
        column = getattr(exc, "column", 1) or 1
        found = getattr(exc, "token", None) or getattr(exc, "char", "")
        raise CelCompileError(f"Syntax error: unexpected {found!s:.20}", line, column) from None


def _parse_int(text: str) -> int:
    neg = text.startswith("-")
    body = text[1:] if neg else text
    value = int(body, 16) if body[:2] in ("0x", "0X") else int(body, 10)
    return -value if neg else value


_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}


def _unquote(text: str) -> tuple[str, bool]:
    raw = text[:1] in "rR"
    if raw:
        text = text[1:]
    quote = text[:3] if text[:3] in ('"""', "'''") else text[0]
    return text[len(quote) : -len(quote)], raw


def _parse_string(text: str) -> str:
    body, raw = _unquote(text)
    return body if raw else _decode_escapes(body, as_bytes=False)


def _parse_bytes(text: str) -> bytes:
    body, raw = _unquote(text)
    if raw:
        return body.encode()
    decoded = _decode_escapes(body, as_bytes=True)
    return decoded.encode("latin-1") if isinstance(decoded, str) else decoded


def _decode_escapes(body: str, as_bytes: bool) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c if not as_bytes else c.encode().decode("latin-1"))
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "xX":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif nxt == "u":
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif nxt == "U":
            out.append(chr(int(body[i + 2 : i + 10], 16)))
            i += 10
        elif nxt in "01234567":
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            raise ValueError(f"invalid escape \\{nxt}")
    return "".join(out)
