"""CEL runtime values as plain Python objects, and CEL's type names for them.

CEL distinguishes int, uint and double, null and missing, timestamps and durations; Python does
not. Plain Python types carry the common cases (int, float, str, bytes, bool, None, list, dict)
so that evaluation stays fast, and a few small classes carry the rest:

- ``Uint``: a CEL ``uint`` (an ``int`` subclass, so arithmetic stays cheap);
- ``datetime`` (always timezone-aware) is ``google.protobuf.Timestamp``;
- ``timedelta`` is ``google.protobuf.Duration``;
- ``Optional`` is ``optional_type``;
- ``CelType`` is a type value (what ``type(x)`` returns);
- ``Message`` is a protobuf message, e.g. ``request.principal``.

Errors are exceptions (``CelError``) because they are rare; the logical operators catch them so
that ``&&`` and ``||`` stay commutative, as CEL requires.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1
# CEL's valid timestamp range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
TS_MIN = datetime(1, 1, 1, tzinfo=UTC)
TS_MAX = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
# CEL's valid duration range is about +/- 10,000 years.
DURATION_MAX = timedelta(seconds=315_576_000_000)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CelError(Exception):
    """A CEL evaluation error (no such key, no such overload, overflow, ...).

    It is a value in CEL's semantics: ``&&``, ``||`` and the comprehension macros absorb it
    where the result does not depend on it.
    """


def no_overload(name: str, *args: Any) -> CelError:
    """cel-go's error for an operator or function applied to values it has no overload for."""
    return CelError("no such overload")


class Uint(int):
    """A CEL ``uint``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{int(self)}u"


class CelType:
    """A CEL type value, e.g. the result of ``type(1)`` (which is ``int``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CelType) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("type", self.name))

    def __repr__(self) -> str:
        return self.name


class Optional:
    """A CEL ``optional_type`` value: either empty or holding one value."""

    __slots__ = ("value", "present")

    def __init__(self, value: Any = None, present: bool = False) -> None:
        self.value = value
        self.present = present

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Optional) or other.present != self.present:
            return False
        return not self.present or cel_equals(self.value, other.value)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"optional.of({self.value!r})" if self.present else "optional.none()"


OPTIONAL_NONE = Optional()


# Cerbos's CEL environment accepts a message field by its protobuf name as well as by its JSON
# name (``request.aux_data`` is ``request.auxData``): the messages hold the JSON names, and a
# selection by the protobuf name is read through this table.
FIELD_ALIASES = {
    "aux_data": "auxData",
    "policy_version": "policyVersion",
    "effective_derived_roles": "effectiveDerivedRoles",
}


def field_name(name: str) -> str:
    """A message field's name as the messages hold it (the JSON name)."""
    return FIELD_ALIASES.get(name, name)


def is_default_field(value: Any) -> bool:
    """Whether a message field holds its default (protobuf's "not set"): a zero value, an empty
    list or map, or a message whose every field holds its default."""
    if value is None or value == "" or value is False or value == [] or value == {}:
        return True
    t = type(value)
    if (t is int or t is float) and value == 0:
        return True
    if t is Message:
        return all(is_default_field(v) for v in value.fields.values())
    return False


class Message:
    """A protobuf message value: fixed fields with defaults, selected with ``.``.

    ``fields`` maps every declared field name to its value; an unset field holds its default.
    """

    __slots__ = ("type_name", "fields")

    def __init__(self, type_name: str, fields: dict[str, Any]) -> None:
        self.type_name = type_name
        self.fields = fields

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Message) and other.type_name == self.type_name and cel_equals(self.fields, other.fields)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{self.type_name}{self.fields!r}"


def type_name(value: Any) -> str:
    """CEL's name for the type of a runtime value."""
    if value is None:
        return "null_type"
    t = type(value)
    if t is bool:
        return "bool"
    if t is Uint:
        return "uint"
    if t is int:
        return "int"
    if t is float:
        return "double"
    if t is str:
        return "string"
    if t is bytes:
        return "bytes"
    if t is list or t is tuple:
        return "list"
    if t is dict:
        return "map"
    if t is datetime:
        return "google.protobuf.Timestamp"
    if t is timedelta:
        return "google.protobuf.Duration"
    if t is CelType:
        return "type"
    if t is Optional:
        return "optional_type"
    if t is Message:
        message: Message = value
        return message.type_name
    name: str = getattr(value, "cel_type_name", t.__name__)
    return name


def is_number(value: Any) -> bool:
    t = type(value)
    return t is int or t is float or t is Uint


def cel_equals(a: Any, b: Any) -> bool:
    """CEL heterogeneous equality: numbers compare by value, other types must match."""
    ta, tb = type(a), type(b)
    if ta is tb and ta in (str, int, bool, bytes, Uint):
        same: bool = a == b
        return same
    if is_number(a) and is_number(b):
        equal: bool = a == b  # Python compares int and float exactly, as CEL does; NaN is unequal.
        return equal
    if a is None or b is None:
        return a is None and b is None
    if ta is bool or tb is bool:
        return False
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(cel_equals(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict and tb is dict:
        if len(a) != len(b):
            return False
        for k, v in a.items():
            found = _map_get(b, k)
            if found is _MISSING or not cel_equals(v, found):
                return False
        return True
    if ta is not tb:
        return False
    return bool(a == b)


_MISSING = object()


def _map_get(m: dict[Any, Any], key: Any) -> Any:
    """Looks a key up in a CEL map, where 1, 1u and 1.0 name the same key but true does not."""
    if type(key) is bool:
        for k, v in m.items():
            if type(k) is bool and k == key:
                return v
        return _MISSING
    if is_number(key):
        if type(key) is float and not key.is_integer():
            return _MISSING
        for k, v in m.items():
            if is_number(k) and type(k) is not bool and k == key:
                return v
        return _MISSING
    return m.get(key, _MISSING)


def map_lookup(m: dict[Any, Any], key: Any) -> Any:
    """``m[key]`` with CEL's error for a missing key."""
    if type(key) is str:
        try:
            return m[key]
        except KeyError:
            raise CelError(f"no such key: {key}") from None
    found = _map_get(m, key)
    if found is _MISSING:
        raise CelError(f"no such key: {format_value(key)}")
    return found


def map_contains(m: dict[Any, Any], key: Any) -> bool:
    if type(key) is str:
        return key in m
    return _map_get(m, key) is not _MISSING


def check_int(value: int) -> int:
    if value < INT64_MIN or value > INT64_MAX:
        raise CelError("integer overflow")
    return value


def check_uint(value: int) -> Uint:
    if value < 0 or value > UINT64_MAX:
        raise CelError("unsigned integer overflow")
    return Uint(value)


def check_timestamp(value: datetime) -> datetime:
    if value < TS_MIN or value > TS_MAX:
        raise CelError("timestamp out of range")
    return value


def check_duration(value: timedelta) -> timedelta:
    if abs(value) > DURATION_MAX:
        raise CelError("duration out of range")
    return value


def format_double(value: float) -> str:
    """A double as Go's strconv.FormatFloat(f, 'g', -1, 64) writes it, which is what CEL shows."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    digits, exp = _shortest_digits(value)
    # Go's shortest 'g' format switches to an exponent below 1e-4 and from 1e6 on.
    decimal_point = exp + 1
    eprec = 6
    sign = "-" if value < 0 else ""
    if exp < -4 or exp >= eprec:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if decimal_point <= 0:
        return f"{sign}0.{'0' * -decimal_point}{digits}"
    if decimal_point >= len(digits):
        return f"{sign}{digits}{'0' * (decimal_point - len(digits))}"
    return f"{sign}{digits[:decimal_point]}.{digits[decimal_point:]}"


def _shortest_digits(value: float) -> tuple[str, int]:
    """The shortest round-tripping decimal digits of |value| and its decimal exponent."""
    text = repr(abs(value))
    if "e" in text:
        mant, e = text.split("e")
        exp = int(e)
    else:
        mant, exp = text, 0
    if "." in mant:
        whole, frac = mant.split(".")
    else:
        whole, frac = mant, ""
    if frac == "0":
        frac = ""
    digits = (whole + frac).lstrip("0")
    lead_zeros = len(whole + frac) - len((whole + frac).lstrip("0"))
    exp = exp + len(whole) - 1 - lead_zeros
    digits = digits.rstrip("0") or "0"
    return digits, exp


def format_duration(value: timedelta) -> str:
    """A duration as CEL's string() writes it: seconds with up to 9 fractional digits, e.g. ``1.5s``."""
    micros = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    secs, frac = divmod(micros, 1_000_000)
    if frac == 0:
        return f"{sign}{secs}s"
    return f"{sign}{secs}.{f'{frac:06d}'.rstrip('0')}s"


def format_timestamp(value: datetime) -> str:
    """A timestamp in RFC 3339 (Go's RFC3339Nano), keeping its own offset, as CEL's string() does."""
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        base += "." + f"{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset() or timedelta(0)
    if not offset:
        return base + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{base}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def format_value(value: Any) -> str:
    """A short human-readable rendering, for error messages."""
    if isinstance(value, str):
        return value
    if type(value) is float:
        return format_double(value)
    return repr(value)


def to_json(value: Any) -> Any:
    """A CEL value as JSON-compatible data, the way Cerbos renders outputs (a protobuf Value).

    Values a protobuf Value cannot hold raise the CelError cel-go gives for them."""
    t = type(value)
    if value is None or t in (bool, str):
        return value
    if t is int or t is Uint:
        # cel-go writes integers a double cannot hold exactly as decimal strings.
        return str(int(value)) if abs(value) > 2**53 - 1 else int(value)
    if t is float:
        if math.isnan(value) or math.isinf(value):
            return format_double(value)
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if t is bytes:
        import base64

        return base64.b64encode(value).decode()
    if t is list or t is tuple:
        return [to_json(v) for v in value]
    if t is dict:
        return {_json_key(k): to_json(v) for k, v in value.items()}
    if t is datetime:
        return format_timestamp(value)
    if t is timedelta:
        return format_duration(value)
    if t is Optional:
        if not value.present:
            raise CelError("optional.none() dereference")
        return to_json(value.value)
    if t is Message:
        # As protobuf's JSON form writes a message: fields holding their default are left out.
        fields = value.fields
        return {k: to_json(v) for k in fields if not is_default_field(v := fields[k])}
    if t is CelType:
        raise CelError("type conversion not supported for 'type'")
    name = type_name(value)
    if name == "hierarchy":
        raise CelError("unsupported native conversion from hierarchy to '*structpb.Value'")
    if name == "cerbos.lib.spiffeID":
        raise CelError("unsupported native conversion from SPIFFEID to '*structpb.Value'")
    raise CelError("unsupported type conversion to '*structpb.Value'")


def _json_key(key: Any) -> str:
    """A map key as a JSON object key: protobuf Struct keys are strings only."""
    if type(key) is str:
        return key
    if type(key) is bool:
        raise CelError("type conversion error from bool to 'string'")
    raise CelError(f"unsupported type conversion from '{type_name(key)}' to string")


def from_json(value: Any) -> Any:
    """Request data (JSON) as CEL values: every JSON number is a double, as in protobuf Value.

    Containers with nothing to convert are returned as they are (CEL never mutates values);
    otherwise a copy is patched where needed."""
    t = type(value)
    if t is dict:
        if _UNCHANGED.issuperset(map(type, value.values())):
            return value  # checked in C, entry by entry: the usual flat object of strings and booleans
        return _patched(value, value.items(), dict)
    if t is list:
        try:
            "".join(value)  # a list of strings (the common case) has nothing to convert
            return value
        except TypeError:
            return _patched(value, enumerate(value), list)
    if t is int:
        return float(value)
    return value


_UNCHANGED = frozenset((str, bool, float, type(None)))


def _patched(container: Any, entries: Any, copy: Any) -> Any:
    """``container`` with each int entry a float and each nested container converted, copied only
    when something changes."""
    out = None
    for key, v in entries:
        tv = type(v)
        if tv is int:
            new = float(v)
        elif tv is dict or tv is list:
            new = from_json(v)
            if new is v:
                continue
        else:
            continue
        if out is None:
            out = copy(container)
        out[key] = new
    return container if out is None else out
