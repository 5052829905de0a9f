"""CEL's operators with cel-go's semantics, including Cerbos's cross-type numeric comparisons."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from . import timefuncs
from .values import (
    CelError,
    Uint,
    cel_equals,
    check_int,
    check_uint,
    map_contains,
    no_overload,
)


def add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int:
            return check_int(a + b)
        if ta is float or ta is str or ta is bytes:
            return a + b
        if ta is Uint:
            return check_uint(a + b)
        if ta is list:
            return a + b
    if (ta is list or ta is tuple) and (tb is list or tb is tuple):
        return list(a) + list(b)
    return timefuncs.add(a, b)


def sub(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int:
            return check_int(a - b)
        if ta is float:
            return a - b
        if ta is Uint:
            return check_uint(a - b)
    return timefuncs.sub(a, b)


def mul(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int:
            return check_int(a * b)
        if ta is float:
            return a * b
        if ta is Uint:
            return check_uint(a * b)
    raise no_overload("_*_", a, b)


def div(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is int or ta is Uint:
            if b == 0:
                raise CelError("division by zero")
            q = abs(a) // abs(b)
            q = q if (a >= 0) == (b >= 0) else -q
            return check_int(q) if ta is int else Uint(q)
        if ta is float:
            if b == 0:
                if a == 0 or math.isnan(a):
                    return math.nan
                return math.copysign(math.inf, a) * math.copysign(1.0, b)
            return a / b
    raise no_overload("_/_", a, b)


def mod(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is tb and (ta is int or ta is Uint):
        if b == 0:
            raise CelError("modulus by zero")
        r = abs(a) % abs(b)
        r = r if a >= 0 else -r
        return r if ta is int else Uint(r)
    if ta is float:
        raise CelError("no such overload: _%_")
    raise no_overload("_%_", a, b)


def neg(a: Any) -> Any:
    ta = type(a)
    if ta is int:
        return check_int(-a)
    if ta is float:
        return -a
    if ta is timedelta:
        return -a
    raise no_overload("-_", a)


def logical_not(a: Any) -> bool:
    if type(a) is bool:
        return not a
    raise no_overload("!_", a)


_ORDERED_SAME = (str, bytes, bool, datetime, timedelta)


def _compare(op: str, a: Any, b: Any) -> int:
    """-1, 0 or 1; numbers of any kind compare by value (cel-go CrossTypeNumericComparisons)."""
    ta, tb = type(a), type(b)
    if ta in (int, float, Uint) and tb in (int, float, Uint):
        if ta is float and math.isnan(a) or tb is float and math.isnan(b):
            return 2  # unordered: every comparison is false
        order: int = (a > b) - (a < b)
        return order
    if ta is tb and ta in _ORDERED_SAME:
        same_type_order: int = (a > b) - (a < b)
        return same_type_order
    raise no_overload(op, a, b)


def lt(a: Any, b: Any) -> bool:
    return _compare("_<_", a, b) == -1


def le(a: Any, b: Any) -> bool:
    return _compare("_<=_", a, b) in (-1, 0)


def gt(a: Any, b: Any) -> bool:
    return _compare("_>_", a, b) == 1


def ge(a: Any, b: Any) -> bool:
    return _compare("_>=_", a, b) in (0, 1)


def eq(a: Any, b: Any) -> bool:
    return cel_equals(a, b)


def ne(a: Any, b: Any) -> bool:
    return not cel_equals(a, b)


def contained_in(item: Any, container: Any) -> bool:
    tc = type(container)
    if tc is list or tc is tuple:
        ti = type(item)
        if ti is str or ti is int and ti is not bool:
            for x in container:
                if type(x) is ti and x == item:
                    return True
            if ti is str:
                return False
        return any(cel_equals(item, x) for x in container)
    if tc is dict:
        return map_contains(container, item)
    raise no_overload("@in", item, container)


BINARY = {
    "+": add,
    "-": sub,
    "*": mul,
    "/": div,
    "%": mod,
    "<": lt,
    "<=": le,
    ">": gt,
    ">=": ge,
    "==": eq,
    "!=": ne,
    "in": contained_in,
}
