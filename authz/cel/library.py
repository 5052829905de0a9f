"""The functions in Cerbos's CEL environment: CEL's standard library, the cel-go extensions Cerbos
enables (strings, lists, math, sets, encoders, regex, optionals) and Cerbos's own functions.

Each entry is a plain Python callable on CEL values (see ``values``). Global functions are keyed
by their full name (``size``, ``math.greatest``); member functions (``"a".split(",")``) by their
name, called with the target first. A name that is in neither table is a compile error.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from . import cerbos_ext, regex, spiffe, timefuncs
from .values import (
    EPOCH,
    INT64_MAX,
    INT64_MIN,
    OPTIONAL_NONE,
    UINT64_MAX,
    CelError,
    CelType,
    Message,
    Optional,
    Uint,
    cel_equals,
    check_int,
    format_double,
    format_duration,
    format_timestamp,
    is_number,
    no_overload,
    to_json,
    type_name,
)

Fn = Callable[..., Any]


def _size(x: Any) -> int:
    t = type(x)
    if t in (str, bytes, list, tuple, dict, cerbos_ext.Hierarchy):
        return len(x)
    raise CelError("no such overload: size")


def _conversion_error(name: str, x: Any) -> CelError:
    return CelError(f"no such overload: {name}({type_name(x)})")


def _string_conversion_error(target: str) -> CelError:
    return CelError(f"type conversion error from 'string' to '{target}'")


def _int(x: Any) -> int:
    t = type(x)
    if t is int:
        same: int = x
        return same
    if t is Uint:
        return check_int(int(x))
    if t is float:
        if math.isnan(x) or math.isinf(x) or not (INT64_MIN <= x < 2.0**63):
            raise CelError("integer overflow")
        return int(x)
    if t is str:
        try:
            return check_int(int(x, 10))
        except ValueError:
            raise _string_conversion_error("int") from None
    if t is datetime:
        return int((x - EPOCH).total_seconds() // 1)
    raise _conversion_error("int", x)


def _uint(x: Any) -> Uint:
    t = type(x)
    if t is Uint:
        same: Uint = x
        return same
    if t is int:
        if x < 0:
            raise CelError("unsigned integer overflow")
        return Uint(x)
    if t is float:
        if math.isnan(x) or x < 0 or x >= 2.0**64:
            raise CelError("unsigned integer overflow")
        return Uint(int(x))
    if t is str:
        try:
            v = int(x, 10)
        except ValueError:
            raise _string_conversion_error("uint") from None
        if v < 0 or v > UINT64_MAX:
            raise CelError("unsigned integer overflow")
        return Uint(v)
    raise _conversion_error("uint", x)


def _double(x: Any) -> float:
    t = type(x)
    if t is float:
        same: float = x
        return same
    if t is int or t is Uint:
        return float(x)
    if t is str:
        try:
            return float(x)
        except ValueError:
            raise _string_conversion_error("double") from None
    raise _conversion_error("double", x)


def _string(x: Any) -> str:
    t = type(x)
    if t is str:
        same: str = x
        return same
    if t is bool:
        return "true" if x else "false"
    if t is int or t is Uint:
        return str(int(x))
    if t is float:
        return format_double(x)
    if t is bytes:
        try:
            text: str = x.decode("utf-8")
            return text
        except UnicodeDecodeError:
            raise CelError("invalid UTF-8 in bytes, cannot convert to string") from None
    if t is datetime:
        return format_timestamp(x)
    if t is timedelta:
        return format_duration(x)
    raise no_overload("string", x)


def _bytes(x: Any) -> bytes:
    if type(x) is bytes:
        return x
    if type(x) is str:
        return x.encode("utf-8")
    raise no_overload("bytes", x)


_TRUE = {"1", "t", "true", "TRUE", "True"}
_FALSE = {"0", "f", "false", "FALSE", "False"}


def _bool(x: Any) -> bool:
    if type(x) is bool:
        return x
    if type(x) is str:
        if x in _TRUE:
            return True
        if x in _FALSE:
            return False
        raise _string_conversion_error("bool")
    raise no_overload("bool", x)


def _timestamp(x: Any) -> datetime:
    if type(x) is datetime:
        return x
    if type(x) is str:
        return timefuncs.parse_timestamp(x)
    if type(x) is int:
        return timefuncs.timestamp_from_seconds(x)
    raise no_overload("timestamp", x)


def _duration(x: Any) -> timedelta:
    if type(x) is timedelta:
        return x
    if type(x) is str:
        return timefuncs.parse_duration(x)
    raise no_overload("duration", x)


def _type(x: Any) -> CelType:
    return CelType(type_name(x))


def _dyn(x: Any) -> Any:
    return x


compile_regex = regex.compile_regex  # RE2 as Go runs it (see regex.py); a CelError in Go's words

# The argument that is a regular expression, counting a method's target: a literal one is compiled
# once, when the expression is (compiler.py), not looked up at each call.
REGEX_ARGUMENT = {"matches": 1, "regex.replace": 1, "regex.extract": 1, "regex.extractAll": 1}


def precompiled_regex(pattern: str) -> regex.Regex | None:
    """``pattern`` compiled now, or None when it is invalid (then each call reports the error)."""
    try:
        return compile_regex(pattern)
    except CelError:
        return None


def _regex_arg(name: str, s: Any, pattern: Any, *rest: Any) -> regex.Regex:
    """The compiled pattern of a call whose target and pattern must be strings."""
    if type(pattern) is regex.Regex:
        if type(s) is not str:
            raise no_overload(name, s, pattern.pattern, *rest)
        return pattern
    if type(s) is not str or type(pattern) is not str:
        raise no_overload(name, s, pattern, *rest)
    return compile_regex(pattern)


def _matches(s: Any, pattern: Any) -> bool:
    return _regex_arg("matches", s, pattern).search(s)


def _str_pred(name: str, pred: Callable[[str, str], bool]) -> Fn:
    def call(s: Any, arg: Any) -> bool:
        if type(s) is not str or type(arg) is not str:
            raise no_overload(name, s, arg)
        return pred(s, arg)

    return call


# ---- strings extension -------------------------------------------------------------------


def _need_str(name: str, *args: Any) -> None:
    for a in args:
        if type(a) is not str:
            raise no_overload(name, *args)


def _need_int(name: str, *args: Any) -> None:
    for a in args:
        if type(a) is not int:
            raise no_overload(name, *args)


def _char_at(s: Any, i: Any) -> str:
    _need_str("charAt", s)
    _need_int("charAt", i)
    if i < 0 or i > len(s):
        raise CelError(f"index out of range: {i}")
    return s[i] if i < len(s) else ""


def _index_of(s: Any, sub: Any, start: Any = 0) -> int:
    _need_str("indexOf", s, sub)
    _need_int("indexOf", start)
    if start < 0 or start > len(s):
        raise CelError(f"index out of range: {start}")
    found: int = s.find(sub, start)
    return found


def _last_index_of(s: Any, sub: Any, start: Any = None) -> int:
    _need_str("lastIndexOf", s, sub)
    found: int
    if start is None:
        found = s.rfind(sub)
        return found
    _need_int("lastIndexOf", start)
    if start < 0 or start >= len(s) and len(s) > 0:
        raise CelError(f"index out of range: {start}")
    found = s.rfind(sub, 0, start + len(sub))
    return found


def _lower_ascii(s: Any) -> str:
    _need_str("lowerAscii", s)
    return "".join(c.lower() if c.isascii() else c for c in s)


def _upper_ascii(s: Any) -> str:
    _need_str("upperAscii", s)
    return "".join(c.upper() if c.isascii() else c for c in s)


def _replace(s: Any, old: Any, new: Any, n: Any = -1) -> str:
    _need_str("replace", s, old, new)
    _need_int("replace", n)
    replaced: str = s.replace(old, new, n if n >= 0 else -1)
    return replaced


def _split(s: Any, sep: Any, n: Any = -1) -> list[str]:
    _need_str("split", s, sep)
    _need_int("split", n)
    if n == 0:
        return []
    if sep == "":
        chars = list(s)
        if n > 0 and len(chars) > n:
            chars = chars[: n - 1] + ["".join(chars[n - 1 :])]
        return chars
    parts: list[str] = s.split(sep, n - 1) if n > 0 else s.split(sep)
    return parts


def _substring(s: Any, start: Any, end: Any = None) -> str:
    _need_str("substring", s)
    end = len(s) if end is None else end
    _need_int("substring", start, end)
    if start < 0 or start > len(s):
        raise CelError(f"index out of range: {start}")
    if end < 0 or end > len(s):
        raise CelError(f"index out of range: {end}")
    if start > end:
        raise CelError(f"invalid substring range. start: {start}, end: {end}")
    part: str = s[start:end]
    return part


_UNICODE_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def _trim(s: Any) -> str:
    _need_str("trim", s)
    trimmed: str = s.strip(_UNICODE_SPACE)
    return trimmed


def _reverse(x: Any) -> Any:
    if type(x) is str:
        return x[::-1]
    if type(x) in (list, tuple):
        return list(x)[::-1]
    raise no_overload("reverse", x)


def _join(lst: Any, sep: Any = "") -> str:
    if type(lst) not in (list, tuple) or type(sep) is not str:
        raise no_overload("join", lst, sep)
    for v in lst:
        if type(v) is not str:
            raise no_overload("join", lst, sep)
    return sep.join(lst)


def _quote(s: Any) -> str:
    _need_str("strings.quote", s)
    out = ['"']
    escapes = {
        "\a": "\\a",
        "\b": "\\b",
        "\f": "\\f",
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        "\v": "\\v",
        "\\": "\\\\",
        '"': '\\"',
    }
    for c in s:
        out.append(escapes.get(c, c))
    out.append('"')
    return "".join(out)


def _format(fmt: Any, args: Any) -> str:
    """cel-go's ``string.format(list)``: %s %d %f %e %x %X %o %b and %%."""
    if type(fmt) is not str or type(args) not in (list, tuple):
        raise no_overload("format", fmt, args)
    out: list[str] = []
    i = 0
    arg_i = 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        i += 1
        if i < len(fmt) and fmt[i] == "%":
            out.append("%")
            i += 1
            continue
        precision = None
        m = re.match(r"\.(\d+)", fmt[i:])
        if m:
            precision = int(m.group(1))
            i += m.end()
        if i >= len(fmt):
            raise CelError("unexpected end of format string")
        verb = fmt[i]
        i += 1
        if arg_i >= len(args):
            raise CelError(f"index {arg_i} out of range")
        out.append(_format_one(verb, precision, args[arg_i]))
        arg_i += 1
    return "".join(out)


def _format_error(message: str) -> CelError:
    return CelError(f"error during formatting: {message}")


def _format_one(verb: str, precision: int | None, arg: Any) -> str:
    t = type(arg)
    if verb == "s":
        if t in (list, tuple):
            return "[" + ", ".join(_format_one("s", None, v) for v in arg) + "]"
        if t is dict:
            items = sorted((_format_one("s", None, k), _format_one("s", None, v)) for k, v in arg.items())
            return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
        if arg is None:
            return "null"
        if t is CelType:
            type_value: CelType = arg
            return type_value.name
        return _string(arg)
    if verb == "d":
        if t in (int, Uint):
            return str(int(arg))
        if t is float and (math.isnan(arg) or math.isinf(arg)):
            return format_double(arg)
        raise _format_error(f"decimal clause can only be used on integers, was given {type_name(arg)}")
    if verb in "fe":
        if t in (int, Uint, float):
            p = 6 if precision is None else precision
            v = float(arg)
            if math.isnan(v) or math.isinf(v):
                return format_double(v)
            return f"{v:.{p}{verb}}"
        clause = "fixed-point" if verb == "f" else "scientific"
        raise _format_error(f"{clause} clause can only be used on doubles, was given {type_name(arg)}")
    if verb in "xXob":
        if t in (int, Uint):
            v = int(arg)
            body = format(abs(v), {"x": "x", "X": "X", "o": "o", "b": "b"}[verb])
            return ("-" if v < 0 else "") + body
        if t is str and verb in "xX":
            h: str = arg.encode().hex()
            return h.upper() if verb == "X" else h
        if t is bytes and verb in "xX":
            h = arg.hex()
            return h.upper() if verb == "X" else h
        raise _format_error(
            f"only integers, byte buffers, and strings can be formatted as hex, was given {type_name(arg)}"
        )
    raise CelError(f'could not parse formatting clause: unrecognized formatting clause "{verb}"')


# ---- lists extension ---------------------------------------------------------------------


def _need_list(name: str, x: Any) -> list[Any]:
    if type(x) not in (list, tuple):
        raise no_overload(name, x)
    return list(x)


def _distinct(x: Any) -> list[Any]:
    out: list[Any] = []
    for v in _need_list("distinct", x):
        if not any(cel_equals(v, o) for o in out):
            out.append(v)
    return out


def _flatten(x: Any, depth: Any = 1) -> list[Any]:
    _need_int("flatten", depth)
    if depth < 0:
        raise CelError("level must be non-negative")
    return _flatten_to(_need_list("flatten", x), depth)


def _flatten_to(lst: list[Any], depth: int) -> list[Any]:
    out: list[Any] = []
    for v in lst:
        if type(v) in (list, tuple) and depth > 0:
            out.extend(_flatten_to(list(v), depth - 1))
        else:
            out.append(v)
    return out


def _slice(x: Any, start: Any, end: Any) -> list[Any]:
    lst = _need_list("slice", x)
    _need_int("slice", start, end)
    if start < 0 or end < 0:
        raise CelError(f"cannot slice(${start}, ${end}), negative indexes not supported")
    if start > end:
        raise CelError(f"cannot slice({start}, {end}), start index must be less than or equal to end index")
    if end > len(lst):
        raise CelError(f"cannot slice({start}, {end}), list is length {len(lst)}")
    return lst[start:end]


def sort_key_check(values: list[Any], name: str) -> None:
    kinds = {type(v) for v in values}
    if not values:
        return
    if len(kinds) > 1 or not kinds <= {int, Uint, float, str, bytes, bool, datetime, timedelta}:
        raise CelError("list elements must have the same type")


def _sort(x: Any) -> list[Any]:
    lst = _need_list("sort", x)
    sort_key_check(lst, "sort")
    return sorted(lst)


def _first(x: Any) -> Optional:
    lst = _need_list("first", x)
    return Optional(lst[0], True) if lst else OPTIONAL_NONE


def _last(x: Any) -> Optional:
    lst = _need_list("last", x)
    return Optional(lst[-1], True) if lst else OPTIONAL_NONE


def _range(n: Any) -> list[int]:
    _need_int("lists.range", n)
    return list(range(n))


# ---- math extension ----------------------------------------------------------------------


def _numbers(name: str, args: tuple[Any, ...]) -> list[Any]:
    if len(args) == 1 and type(args[0]) in (list, tuple):
        args = tuple(args[0])
        if not args:
            raise CelError(f"{name}(list) argument must not be empty")
    for a in args:
        if not is_number(a):
            raise no_overload(name, *args)
    return list(args)


def _greatest(*args: Any) -> Any:
    vals = _numbers("math.greatest", args)
    best = vals[0]
    for v in vals[1:]:
        if v > best:
            best = v
    return best


def _least(*args: Any) -> Any:
    vals = _numbers("math.least", args)
    best = vals[0]
    for v in vals[1:]:
        if v < best:
            best = v
    return best


def _num1(name: str, fn: Callable[[Any], Any], kinds: tuple[type, ...] = (int, Uint, float)) -> Fn:
    def call(x: Any) -> Any:
        if type(x) not in kinds:
            raise no_overload(name, x)
        return fn(x)

    return call


def _abs(x: Any) -> Any:
    if type(x) is int:
        return check_int(abs(x))
    return abs(x) if type(x) is float else x


def _sign(x: Any) -> Any:
    t = type(x)
    if t is float:
        return x if math.isnan(x) else float((x > 0) - (x < 0))
    v = (x > 0) - (x < 0)
    return Uint(v) if t is Uint else v


def _round(x: float) -> float:
    if math.isnan(x) or math.isinf(x):
        return x
    return math.copysign(math.floor(abs(x) + 0.5), x)


def _fmath(fn: Callable[[float], float]) -> Callable[[float], float]:
    def call(x: float) -> float:
        if math.isnan(x) or math.isinf(x):
            return x
        return float(fn(x))

    return call


def _bit2(name: str, fn: Callable[[int, int], int]) -> Fn:
    def call(a: Any, b: Any) -> Any:
        if type(a) is type(b) and type(a) in (int, Uint):
            r = fn(int(a), int(b))
            return Uint(r & UINT64_MAX) if type(a) is Uint else _wrap_int64(r)
        raise no_overload(name, a, b)

    return call


def _wrap_int64(v: int) -> int:
    v &= UINT64_MAX
    return v - 2**64 if v > INT64_MAX else v


def _bit_not(a: Any) -> Any:
    if type(a) is int:
        return ~a
    if type(a) is Uint:
        return Uint(~int(a) & UINT64_MAX)
    raise no_overload("math.bitNot", a)


def _shift(name: str, left: bool) -> Fn:
    def call(a: Any, n: Any) -> Any:
        if type(a) not in (int, Uint) or type(n) is not int:
            raise no_overload(name, a, n)
        if n < 0:
            raise CelError(f"{name}() negative offset: {n}")
        if n > 63:
            return Uint(0) if type(a) is Uint else (0 if left or a >= 0 else -1 if False else 0)
        if type(a) is Uint:
            return Uint(((int(a) << n) if left else (int(a) >> n)) & UINT64_MAX)
        if left:
            return _wrap_int64(a << n)
        return (a & UINT64_MAX) >> n if a < 0 else a >> n

    return call


def _sqrt(x: Any) -> float:
    if not is_number(x):
        raise no_overload("math.sqrt", x)
    v = float(x)
    return math.sqrt(v) if v >= 0 else math.nan


# ---- sets extension ----------------------------------------------------------------------


def _sets_contains(a: Any, b: Any) -> bool:
    la, lb = _need_list("sets.contains", a), _need_list("sets.contains", b)
    return all(any(cel_equals(x, y) for y in la) for x in lb)


def _sets_equivalent(a: Any, b: Any) -> bool:
    return _sets_contains(a, b) and _sets_contains(b, a)


def _sets_intersects(a: Any, b: Any) -> bool:
    la, lb = _need_list("sets.intersects", a), _need_list("sets.intersects", b)
    return any(any(cel_equals(x, y) for y in la) for x in lb)


# ---- encoders, regex, optionals ----------------------------------------------------------


def _b64_encode(b: Any) -> str:
    if type(b) is not bytes:
        raise no_overload("base64.encode", b)
    return base64.b64encode(b).decode()


def _b64_decode(s: Any) -> bytes:
    if type(s) is not str:
        raise no_overload("base64.decode", s)
    try:
        padded = s + "=" * (-len(s) % 4)
        return base64.b64decode(padded, validate=True)
    except ValueError as exc:
        raise CelError(f"base64.decode: {exc}") from None


def _json_encode(v: Any) -> str:
    return json.dumps(to_json(v), separators=(",", ":"), ensure_ascii=False)


def _regex_replace(s: Any, pattern: Any, repl: Any, n: Any = -1) -> str:
    """cel-go's regex.replace: ``\\N`` in the replacement is group N (0 the whole match), ``\\\\``
    a backslash; at most ``n`` matches replaced (all when negative)."""
    if type(repl) is not str or type(n) is not int:
        raise no_overload("regex.replace", s, getattr(pattern, "pattern", pattern), repl, n)
    if type(s) is not str or type(pattern) not in (str, regex.Regex):
        raise no_overload("regex.replace", s, pattern, repl, n)
    if n == 0:
        unchanged: str = s
        return unchanged
    rx = _regex_arg("regex.replace", s, pattern, repl, n)
    data = regex.encode(s)
    out: list[str] = []
    last = 0
    for count, spans in enumerate(rx.matches(data)):
        if 0 <= n <= count:
            break
        out.append(regex.substring(data, (last, spans[0][0])))
        out.append(_expand(repl, rx, data, spans))
        last = spans[0][1]
    if not out:
        return str(s)
    out.append(regex.substring(data, (last, len(data))))
    return "".join(out)


def _expand(repl: str, rx: regex.Regex, data: bytes, spans: list[tuple[int, int]]) -> str:
    if "\\" not in repl:
        return repl
    out: list[str] = []
    i, size = 0, len(repl)
    while i < size:
        c = repl[i]
        i += 1
        if c != "\\":
            out.append(c)
            continue
        if i >= size:
            raise CelError(f"invalid replacement string: '{repl}' \\ not allowed at end")
        c = repl[i]
        i += 1
        if c == "\\":
            out.append(c)
            continue
        if not ("0" <= c <= "9"):
            raise CelError(f"invalid replacement string: '{repl}' \\ must be followed by a digit or \\")
        group = ord(c) - 48
        if group > rx.groups:
            raise CelError(f"replacement string references group {group} but regex has only {rx.groups} group(s)")
        if spans[group][0] >= 0:
            out.append(regex.substring(data, spans[group]))
    return "".join(out)


def _one_group(name: str, s: Any, pattern: Any) -> regex.Regex:
    rx = _regex_arg(name, s, pattern)
    if rx.groups > 1:
        raise CelError(f"regular expression has more than one capturing group: {_go_quote(rx.pattern)}")
    return rx


def _go_quote(text: str) -> str:
    """Go's %q of a string (printable characters kept, the rest escaped)."""
    return json.dumps(text, ensure_ascii=False)


def _regex_extract(s: Any, pattern: Any) -> Optional:
    rx = _one_group("regex.extract", s, pattern)
    data = regex.encode(s)
    spans = rx.first(data)
    if spans is None:
        return OPTIONAL_NONE
    span = spans[1] if rx.groups == 1 else spans[0]
    if rx.groups == 1 and span[0] == span[1]:  # a group that matched nothing (or did not take part)
        return OPTIONAL_NONE
    return Optional(regex.substring(data, span), True)


def _regex_extract_all(s: Any, pattern: Any) -> list[str]:
    rx = _one_group("regex.extractAll", s, pattern)
    data = regex.encode(s)
    if rx.groups == 0:
        return [regex.substring(data, spans[0]) for spans in rx.matches(data)]
    return [regex.substring(data, spans[1]) for spans in rx.matches(data) if spans[1][0] < spans[1][1]]


def _zero(v: Any) -> bool:
    return (
        v is None
        or v in (0, "", b"", False)
        and type(v) is not Optional
        or (type(v) in (list, tuple, dict) and len(v) == 0)
    )


def _opt_of_non_zero(v: Any) -> Optional:
    return OPTIONAL_NONE if _zero(v) else Optional(v, True)


def _need_opt(name: str, o: Any) -> Optional:
    if type(o) is not Optional:
        raise no_overload(name, o)
    return o


def _opt_value(o: Any) -> Any:
    if not _need_opt("value", o).present:
        raise CelError("optional.none() dereference")
    return o.value


def _opt_has_value(o: Any) -> bool:
    return _need_opt("hasValue", o).present


def _opt_or_value(o: Any, alt: Any) -> Any:
    return o.value if _need_opt("orValue", o).present else alt


def _opt_or(o: Any, alt: Any) -> Any:
    if _need_opt("or", o).present:
        return o
    return _need_opt("or", alt)


def _message_get(m: Message, field: str) -> Any:
    return m.fields[field]


GLOBALS: dict[str, Fn] = {
    "size": _size,
    "int": _int,
    "uint": _uint,
    "double": _double,
    "string": _string,
    "bytes": _bytes,
    "bool": _bool,
    "timestamp": _timestamp,
    "duration": _duration,
    "type": _type,
    "dyn": _dyn,
    "matches": _matches,
    "math.greatest": _greatest,
    "math.least": _least,
    "math.abs": _num1("math.abs", _abs),
    "math.ceil": _num1("math.ceil", _fmath(math.ceil), (float,)),
    "math.floor": _num1("math.floor", _fmath(math.floor), (float,)),
    "math.round": _num1("math.round", _round, (float,)),
    "math.trunc": _num1("math.trunc", _fmath(math.trunc), (float,)),
    "math.sign": _num1("math.sign", _sign),
    "math.isNaN": _num1("math.isNaN", math.isnan, (float,)),
    "math.isInf": _num1("math.isInf", math.isinf, (float,)),
    "math.isFinite": _num1("math.isFinite", math.isfinite, (float,)),
    "math.bitAnd": _bit2("math.bitAnd", lambda a, b: a & b),
    "math.bitOr": _bit2("math.bitOr", lambda a, b: a | b),
    "math.bitXor": _bit2("math.bitXor", lambda a, b: a ^ b),
    "math.bitNot": _bit_not,
    "math.bitShiftLeft": _shift("math.bitShiftLeft", True),
    "math.bitShiftRight": _shift("math.bitShiftRight", False),
    "math.sqrt": _sqrt,
    "sets.contains": _sets_contains,
    "sets.equivalent": _sets_equivalent,
    "sets.intersects": _sets_intersects,
    "lists.range": _range,
    "strings.quote": _quote,
    "base64.encode": _b64_encode,
    "base64.decode": _b64_decode,
    "json.encode": _json_encode,
    "regex.replace": _regex_replace,
    "regex.extract": _regex_extract,
    "regex.extractAll": _regex_extract_all,
    "optional.of": lambda v: Optional(v, True),
    "optional.none": lambda: OPTIONAL_NONE,
    "optional.ofNonZeroValue": _opt_of_non_zero,
    **cerbos_ext.GLOBALS,
    **spiffe.GLOBALS,
}

METHODS: dict[str, Fn] = {
    "size": _size,
    "matches": _matches,
    "startsWith": _str_pred("startsWith", str.startswith),
    "endsWith": _str_pred("endsWith", str.endswith),
    "contains": _str_pred("contains", lambda s, sub: sub in s),
    "charAt": _char_at,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "lowerAscii": _lower_ascii,
    "upperAscii": _upper_ascii,
    "replace": _replace,
    "split": _split,
    "substring": _substring,
    "trim": _trim,
    "reverse": _reverse,
    "join": _join,
    "format": _format,
    "distinct": _distinct,
    "flatten": _flatten,
    "slice": _slice,
    "sort": _sort,
    "first": _first,
    "last": _last,
    "value": _opt_value,
    "hasValue": _opt_has_value,
    "orValue": _opt_or_value,
    "or": _opt_or,
    **{name: timefuncs.time_getter(name) for name in timefuncs.TIMESTAMP_GETTERS},
    **cerbos_ext.METHODS,
    **spiffe.METHODS,
    "id": spiffe.trust_domain_id,
}

# Functions whose value depends on the request's time and must never be folded at compile time.
TIME_DEPENDENT = {"now", "timeSince"}
