"""CEL timestamps and durations: parsing, arithmetic and the ``get*`` accessors with time zones."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .values import EPOCH, CelError, check_duration, check_timestamp, no_overload

_TS_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_MICROS = {
    "ns": 0.001,
    "us": 1,
    "µs": 1,
    "μs": 1,
    "ms": 1000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
}


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp, keeping its offset (as Go's time.Parse does)."""
    m = _TS_RE.match(text)
    if not m:
        raise CelError(f'timestamp("{text}"): invalid timestamp')
    year, month, day, hour, minute, second, frac, zone = m.groups()
    micro = int((frac or "0").ljust(9, "0")[:6])
    if zone in ("Z", "z"):
        tz: timezone = UTC
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        value = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz)
    except ValueError as exc:
        raise CelError(f'timestamp("{text}"): {exc}') from None
    return check_timestamp(value.astimezone(UTC) if tz is UTC else value)


def parse_duration(text: str) -> timedelta:
    """A Go duration string such as ``1h30m`` or ``-1.5s`` (units ns, us, ms, s, m, h)."""
    s = text
    sign = 1
    if s[:1] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return timedelta(0)
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            raise CelError(f'invalid duration "{text}"')
        total += float(m.group(1)) * _UNIT_MICROS[m.group(2)]
        pos = m.end()
    if not s:
        raise CelError(f'invalid duration "{text}"')
    return check_duration(timedelta(microseconds=sign * round(total)))


def timestamp_from_seconds(seconds: int) -> datetime:
    try:
        return check_timestamp(EPOCH + timedelta(seconds=seconds))
    except OverflowError:
        raise CelError("timestamp out of range") from None


@lru_cache(maxsize=256)
def _zone(name: str) -> Any:
    """A time zone named as CEL allows: an IANA name, or a fixed offset such as ``-05:00``."""
    m = re.fullmatch(r"([+-]?)(\d{1,2}):(\d{2})", name)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CelError(f"unknown time zone: {name}") from None


def _in_zone(ts: Any, tz: Any, fname: str) -> datetime:
    if type(ts) is not datetime:
        raise no_overload(fname, ts)
    if tz is None:
        return ts.astimezone(UTC)
    if type(tz) is not str:
        raise no_overload(fname, ts, tz)
    return ts.astimezone(_zone(tz))


def _timestamp_getter(fname: str, pick: Callable[[datetime], int]) -> Callable[..., int]:
    def get(ts: Any, tz: Any = None) -> int:
        return pick(_in_zone(ts, tz, fname))

    get.__name__ = fname
    return get


TIMESTAMP_GETTERS = {
    "getFullYear": _timestamp_getter("getFullYear", lambda d: d.year),
    "getMonth": _timestamp_getter("getMonth", lambda d: d.month - 1),
    "getDate": _timestamp_getter("getDate", lambda d: d.day),
    "getDayOfMonth": _timestamp_getter("getDayOfMonth", lambda d: d.day - 1),
    "getDayOfYear": _timestamp_getter("getDayOfYear", lambda d: d.timetuple().tm_yday - 1),
    "getDayOfWeek": _timestamp_getter("getDayOfWeek", lambda d: (d.weekday() + 1) % 7),
    "getHours": _timestamp_getter("getHours", lambda d: d.hour),
    "getMinutes": _timestamp_getter("getMinutes", lambda d: d.minute),
    "getSeconds": _timestamp_getter("getSeconds", lambda d: d.second),
    "getMilliseconds": _timestamp_getter("getMilliseconds", lambda d: d.microsecond // 1000),
}


def _total_micros(d: timedelta) -> int:
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def _trunc_div(a: int, b: int) -> int:
    q = abs(a) // b
    return q if a >= 0 else -q


DURATION_GETTERS = {  # cel-go returns whole units of the total duration, truncated toward zero
    "getHours": lambda d: _trunc_div(_total_micros(d), 3_600_000_000),
    "getMinutes": lambda d: _trunc_div(_total_micros(d), 60_000_000),
    "getSeconds": lambda d: _trunc_div(_total_micros(d), 1_000_000),
    "getMilliseconds": lambda d: _trunc_div(_total_micros(d), 1000),
}


def time_getter(name: str) -> Any:
    """A ``get*`` member that works on both timestamps and durations, as CEL overloads them."""
    ts_fn = TIMESTAMP_GETTERS[name]
    d_fn = DURATION_GETTERS.get(name)

    def call(target: Any, *args: Any) -> int:
        if type(target) is timedelta and d_fn is not None and not args:
            return d_fn(target)
        if type(target) is datetime and len(args) <= 1:
            return ts_fn(target, *args)
        raise no_overload(name, target, *args)

    return call


def add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    try:
        if ta is datetime and tb is timedelta:
            return check_timestamp(a + b)
        if ta is timedelta and tb is datetime:
            return check_timestamp(b + a)
        if ta is timedelta and tb is timedelta:
            return check_duration(a + b)
    except OverflowError:
        raise CelError("timestamp out of range") from None
    raise no_overload("_+_", a, b)


def sub(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    try:
        if ta is datetime and tb is timedelta:
            return check_timestamp(a - b)
        if ta is datetime and tb is datetime:
            return check_duration(a - b)
        if ta is timedelta and tb is timedelta:
            return check_duration(a - b)
    except OverflowError:
        raise CelError("timestamp out of range") from None
    raise no_overload("_-_", a, b)
