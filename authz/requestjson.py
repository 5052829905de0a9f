"""Request JSON read as strictly as Cerbos's HTTP API reads a request body, with its words.

Cerbos's gateway reads a body in two passes: Go's ``encoding/json`` checks the syntax of the first
JSON value (what follows it is ignored), then ``protojson`` decodes it, refusing duplicate keys,
unpaired UTF-16 surrogate escapes, invalid UTF-8 and numbers beyond a double. orjson parses a
well-formed line at once; only a line it refuses, or one that may repeat a key, is scanned here
to say what is wrong as Cerbos says it (``invalid character 'N' looking for beginning of value``,
``proto: (line 1:42): duplicate field "principal"``).

Documented limits (each answered with an error for that line; the stream goes on):

- ``MAX_LINE_BYTES``: a line of more than 4 MiB, Cerbos's gRPC message limit (its words, code 8);
- ``MAX_DEPTH``: JSON nested more than 1,024 levels deep (Go's decoder allows 10,000; its message).
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

MAX_LINE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 1024

_WHITESPACE = b" \t\r\n"
_DIGITS = b"0123456789"
_HEX = b"0123456789abcdefABCDEF"
_ESCAPES = b'"\\/bfnrt'
# A request's message fields, in either spelling protojson reads (JSON name, proto name).
_PROTO_NAMES = {
    "request_id": "requestId",
    "include_meta": "includeMeta",
    "aux_data": "auxData",
    "policy_version": "policyVersion",
    "key_set_id": "keySetId",
}


class RequestJsonError(Exception):
    """A line Cerbos would refuse: its gRPC status code and message."""

    def __init__(self, message: str, code: int = 3) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def loads(line: bytes | str) -> Any:
    """The request in one input line, or RequestJsonError in Cerbos's words."""
    if type(line) is bytes:  # (the usual case, tested first: getattr's miss below costs an exception)
        raw, size = line, len(line)
    else:
        raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
        size = getattr(line, "size", len(raw))  # an oversized line's start knows its whole length
    if size > MAX_LINE_BYTES:
        raise RequestJsonError(f"grpc: received message larger than max ({size} vs. {MAX_LINE_BYTES})", 8)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        end = _Scanner(raw).check()  # raises what Cerbos says; else the line was fine for Go
        try:
            return orjson.loads(raw[:end])  # the first JSON value alone, as Go's decoder reads it
        except orjson.JSONDecodeError as exc:
            raise RequestJsonError(f"invalid JSON: {exc}") from None
    if _may_repeat_a_key(raw, body):
        _Scanner(raw).check()  # then say so as Cerbos does (orjson keeps the last one silently)
    if type(body) is not dict:
        stripped = raw.lstrip(_WHITESPACE)
        column = len(raw) - len(stripped) + 1
        token = stripped[:1].decode() if stripped[:1] in (b"[", b'"') else orjson.dumps(body).decode()
        raise RequestJsonError(f"proto:\u00a0syntax error (line 1:{column}): unexpected token {token}")
    return body


def _may_repeat_a_key(raw: bytes, body: Any) -> bool:
    """Whether a line orjson parsed may repeat a key (orjson keeps the last one silently).

    The body written again is compared with the line. The same bytes (compact JSON, as clients
    send it) cannot repeat a key: the body has none twice. Otherwise a dropped key shows as fewer
    colons written than the line holds: whitespace aside, the rest is written back unchanged, and
    an escaped colon, \\u003a, which could make up for a lost one, counts as suspect (looked for only
    in a line with a backslash, found at memchr speed). A key in both its spellings (include_meta
    and includeMeta) is left to the API. False positives only cost a scan. Measured on a 1.5 KB
    line: writing it 1.5 us, each count 0.7 us, the escape search 0.9 us, the backslash test 0.05 us."""
    try:
        written = orjson.dumps(body)
    except TypeError:  # past the 254 levels orjson writes
        return True
    if written == raw:
        return False
    if 92 in raw and b"u003" in raw:  # 92: a backslash
        return True
    return raw.count(b":") != written.count(b":")


def _go_char(c: int) -> str:
    """Go's quoteChar: a byte quoted as encoding/json's syntax errors show it."""
    if c == 0x27:
        return "'\\''"
    if c == 0x22:
        return "'\"'"
    return "'" + _go_quote(chr(c))[1:-1] + "'"


def _go_quote(text: str) -> str:
    """Go's %q (strconv.Quote) of a string."""
    out = ['"']
    for ch in text:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif o <= 0xFFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


class _Frame:
    __slots__ = ("keys", "map", "object", "key")

    def __init__(self, is_object: bool, is_map: bool) -> None:
        self.object = is_object
        self.map = is_map  # inside an attribute value (a protobuf Struct/Value), not a message
        self.keys: set[str] = set()
        self.key = ""  # the key whose value comes next


class _Scanner:
    """One pass over a line: Go's syntax check of the first JSON value, noting on the way the
    first problem protojson would report. ``check`` raises the one Cerbos reports, else returns
    where the first value ends."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.proto_problem: str | None = None

    def syntax(self, c: int | None, context: str) -> RequestJsonError:
        if c is None:
            return RequestJsonError("unexpected EOF")
        return RequestJsonError(f"invalid character {_go_char(c)} {context}")

    def proto(self, pos: int, message: str, syntax: bool = False) -> None:
        if self.proto_problem is None:
            prefix = self.raw[:pos]
            line = prefix.count(b"\n") + 1
            column = len(prefix[prefix.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
            kind = "syntax error " if syntax else ""
            # protobuf-go writes "proto:" then a non-breaking space in Cerbos's build (its detrand)
            self.proto_problem = f"proto:\u00a0{kind}(line {line}:{column}): {message}"

    def check(self) -> int:
        raw, n = self.raw, len(self.raw)
        stack: list[_Frame] = []
        i = 0
        expect = "value"  # value | first-key | key | colon | after
        while True:
            while i < n and raw[i] in _WHITESPACE:
                i += 1
            c = raw[i] if i < n else None
            if expect in ("value", "first-value"):
                if c == 0x5D and expect == "first-value":  # ']' right after '['
                    stack.pop()
                    i += 1
                    expect = "after"
                elif c in (0x7B, 0x5B):  # '{' '['
                    if len(stack) >= MAX_DEPTH:
                        raise RequestJsonError(f"invalid character {_go_char(c)} exceeded max depth")
                    parent = stack[-1] if stack else None
                    in_map = parent is not None and (parent.map or (parent.object and parent.key == "attr"))
                    stack.append(_Frame(c == 0x7B, in_map))
                    i += 1
                    expect = "first-key" if c == 0x7B else "first-value"
                elif c == 0x22:
                    i = self.string(i)
                    expect = "after"
                elif c is not None and (c == 0x2D or c in _DIGITS):
                    i = self.number(i, bool(stack) and stack[-1].map)
                    expect = "after"
                elif c in (0x74, 0x66, 0x6E):  # t f n
                    i = self.literal(i)
                    expect = "after"
                else:
                    raise self.syntax(c, "looking for beginning of value")
            elif expect in ("first-key", "key"):
                if c == 0x7D and expect == "first-key":
                    stack.pop()
                    i += 1
                    expect = "after"
                elif c == 0x22:
                    frame = stack[-1]
                    start = i
                    i = self.string(i)
                    key = self.key_text(start, i)
                    name = key if frame.map else _PROTO_NAMES.get(key, key)
                    if name in frame.keys:
                        what = "map key" if frame.map else "field"
                        self.proto(start, f"duplicate {what} {_go_quote(key)}")
                    frame.keys.add(name)
                    frame.key = name
                    expect = "colon"
                else:
                    raise self.syntax(c, "looking for beginning of object key string")
            elif expect == "colon":
                if c != 0x3A:
                    raise self.syntax(c, "after object key")
                i += 1
                expect = "value"
            else:  # after a value
                if not stack:
                    break
                frame = stack[-1]
                if c == 0x2C:
                    i += 1
                    expect = "key" if frame.object else "value"
                elif c == (0x7D if frame.object else 0x5D):
                    stack.pop()
                    i += 1
                else:
                    raise self.syntax(c, "after object key:value pair" if frame.object else "after array element")
        if self.proto_problem is not None:
            raise RequestJsonError(self.proto_problem)
        return i

    def key_text(self, start: int, end: int) -> str:
        try:
            decoded: str = orjson.loads(self.raw[start:end])
            return decoded
        except orjson.JSONDecodeError:
            return self.raw[start + 1 : end - 1].decode("utf-8", "replace")

    def string(self, start: int) -> int:
        """Past the string at ``start``; notes invalid UTF-8 and unpaired surrogate escapes."""
        raw, n = self.raw, len(self.raw)
        i = start + 1
        plain_from = i
        while True:
            if i >= n:
                raise self.syntax(None, "")
            c = raw[i]
            if c == 0x22:
                self.utf8(start, plain_from, i)
                return i + 1
            if c < 0x20:
                raise self.syntax(c, "in string literal")
            if c != 0x5C:
                i += 1
                continue
            self.utf8(start, plain_from, i)
            e = raw[i + 1] if i + 1 < n else None
            if e is None:
                raise self.syntax(None, "")
            if e not in _ESCAPES and e != 0x75:
                raise self.syntax(e, "in string escape code")
            if e == 0x75:
                for k in range(i + 2, i + 6):
                    h = raw[k] if k < n else None
                    if h is None or h not in _HEX:
                        raise self.syntax(h, "in \\u hexadecimal character escape")
                code = int(raw[i + 2 : i + 6], 16)
                if 0xD800 <= code <= 0xDFFF:
                    self.surrogate(start, i + 6, code)
                i += 6
            else:
                i += 2
            plain_from = i

    def utf8(self, start: int, begin: int, end: int) -> None:
        if begin < end:
            chunk = self.raw[begin:end]
            if not chunk.isascii():
                try:
                    chunk.decode("utf-8")
                except UnicodeDecodeError:
                    self.proto(start, "invalid UTF-8 in string", syntax=True)

    def surrogate(self, start: int, after: int, high: int) -> None:
        """protojson takes a surrogate escape only as the first half of a pair with the next."""
        rest = self.raw[after : after + 6]
        if len(rest) < 6:
            self.proto(start, "unexpected EOF", syntax=True)
            return
        ok = rest[:2] == b"\\u" and all(h in _HEX for h in rest[2:])
        if ok:
            low = int(rest[2:], 16)
            ok = 0xD800 <= high <= 0xDBFF and 0xDC00 <= low <= 0xDFFF
        if not ok:
            self.proto(start, f"invalid escape code {_go_quote(rest.decode('utf-8', 'replace'))} in string", True)

    def number(self, start: int, in_value: bool) -> int:
        raw, n = self.raw, len(self.raw)
        i = start
        if raw[i] == 0x2D:
            i += 1
            if i >= n or raw[i] not in _DIGITS:
                raise self.syntax(raw[i] if i < n else None, "in numeric literal")
        if raw[i] == 0x30:
            i += 1
        else:
            while i < n and raw[i] in _DIGITS:
                i += 1
        if i < n and raw[i] == 0x2E:
            i += 1
            if i >= n or raw[i] not in _DIGITS:
                raise self.syntax(raw[i] if i < n else None, "after decimal point in numeric literal")
            while i < n and raw[i] in _DIGITS:
                i += 1
        if i < n and raw[i] in b"eE":
            i += 1
            if i < n and raw[i] in b"+-":
                i += 1
            if i >= n or raw[i] not in _DIGITS:
                raise self.syntax(raw[i] if i < n else None, "in exponent of numeric literal")
            while i < n and raw[i] in _DIGITS:
                i += 1
        if in_value and math.isinf(float(raw[start:i])):
            self.proto(start, f"invalid google.protobuf.Value: {raw[start:i].decode()}")
        return i

    def literal(self, start: int) -> int:
        raw, n = self.raw, len(self.raw)
        word = {0x74: b"true", 0x66: b"false", 0x6E: b"null"}[raw[start]]
        for k in range(1, len(word)):
            c = raw[start + k] if start + k < n else None
            if c != word[k]:
                raise self.syntax(c, f"in literal {word.decode()} (expecting {_go_char(word[k])})")
        return start + len(word)


# ---- protojson's field checks, for a line the API refused ----------------------------------------

# The request's messages as protojson decodes them: field -> kind (and the message it holds).
_SCHEMA: dict[str, dict[str, tuple[str, str]]] = {
    "request": {
        "requestId": ("string", ""),
        "principal": ("message", "principal"),
        "resources": ("messages", "entry"),
        "auxData": ("message", "auxData"),
        "includeMeta": ("bool", ""),
    },
    "principal": {
        "id": ("string", ""),
        "policyVersion": ("string", ""),
        "roles": ("strings", ""),
        "attr": ("map", ""),
        "scope": ("string", ""),
    },
    "entry": {"actions": ("strings", ""), "resource": ("message", "resource")},
    "resource": {
        "kind": ("string", ""),
        "policyVersion": ("string", ""),
        "id": ("string", ""),
        "attr": ("map", ""),
        "scope": ("string", ""),
    },
    "auxData": {"jwt": ("message", "jwt")},
    "jwt": {"token": ("string", ""), "keySetId": ("string", "")},
}
_TOKEN = re.compile(
    rb'[ \t\r\n]*(?:([{}\[\]:,])|("(?:[^"\\]|\\.)*")|(-?[0-9][0-9.eE+-]*)|(true|false|null))', re.DOTALL
)


class _Refused(Exception):
    pass


def decode_error(line: bytes | str) -> str | None:
    """What protojson says first of a syntactically valid request line whose fields have unknown
    names or the wrong types (``proto: (line 1:20): invalid value for string field id: 5``), in
    document order as it decodes; None when it has nothing to say (then the API's own refusal, a
    validation error, stands)."""
    raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
    decoder = _Decoder(raw)
    try:
        kind, _ = decoder.next()
        if kind == "{":
            decoder.message("request")
    except _Refused as refused:
        return str(refused)
    except (IndexError, ValueError):  # not the shape this walk understands: leave it to the API
        return None
    return None


class _Decoder:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0
        self.start = 0

    def next(self) -> tuple[str, bytes]:
        m = _TOKEN.match(self.raw, self.pos)
        if m is None:
            raise ValueError("no token")
        self.start = m.start(m.lastindex or 0)
        self.pos = m.end()
        text = m.group(m.lastindex or 0)
        kind = {1: text.decode(), 2: "string", 3: "number", 4: text.decode()}[m.lastindex or 0]
        return kind, text

    def refuse(self, message: str, syntax: bool = False) -> _Refused:
        prefix = self.raw[: self.start]
        column = len(prefix[prefix.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        kind = "syntax error " if syntax else ""
        line = prefix.count(b"\n") + 1
        return _Refused(f"proto:\u00a0{kind}(line {line}:{column}): {message}")

    def message(self, name: str) -> None:
        """The fields of one message, its '{' read."""
        fields = _SCHEMA[name]
        seen: set[str] = set()
        kind, text = self.next()
        while kind != "}":
            if kind == ",":
                kind, text = self.next()
                continue
            key = orjson.loads(text)
            field = fields.get(_PROTO_NAMES.get(key, key))
            if field is None:
                raise self.refuse(f"unknown field {_go_quote(key)}")
            if _PROTO_NAMES.get(key, key) in seen:
                raise self.refuse(f"duplicate field {_go_quote(key)}")
            seen.add(_PROTO_NAMES.get(key, key))
            self.next()  # ':'
            self.value(_PROTO_NAMES.get(key, key), *field)
            kind, text = self.next()

    def value(self, field: str, kind: str, holds: str) -> None:
        token, text = self.next()
        if token == "null" and kind != "bool":
            return
        if kind == "string" and token != "string" or kind == "bool" and token not in ("true", "false", "null"):
            raise self.refuse(f"invalid value for {kind} field {field}: {text.decode('utf-8', 'replace')}")
        if kind in ("string", "bool"):
            return
        opening = "{" if kind in ("message", "map") else "["
        if token != opening:
            raise self.refuse(f"unexpected token {text.decode('utf-8', 'replace')}", syntax=True)
        if kind == "message":
            self.message(holds)
        elif kind == "map":
            self.skip(1)
        else:
            self.items(field, kind, holds)

    def items(self, field: str, kind: str, holds: str) -> None:
        token, text = self.next()
        while token != "]":
            if token != ",":
                if kind == "strings" and token != "string":
                    raise self.refuse(f"invalid value for string field {field}: {text.decode('utf-8', 'replace')}")
                if kind == "messages":
                    if token != "{":
                        raise self.refuse(f"unexpected token {text.decode('utf-8', 'replace')}", syntax=True)
                    self.message(holds)
            token, text = self.next()

    def skip(self, depth: int) -> None:
        while depth:
            token, _ = self.next()
            if token in ("{", "["):
                depth += 1
            elif token in ("}", "]"):
                depth -= 1
