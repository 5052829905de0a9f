"""The static side of compiling CEL: the type of each node where it is known, so that what
cel-go's type checker rejects (``1 + 2.0``, ``1 == 1.0``, a string conversion of a list) is
rejected at compile time here too."""

from __future__ import annotations

from typing import Any

from .values import type_name


def _static_type(value: Any) -> str:
    name = type_name(value)
    return {"google.protobuf.Timestamp": "timestamp", "google.protobuf.Duration": "duration"}.get(name, name)


# Message types in Cerbos's environment, with the static type of each field.
_MESSAGE_FIELDS = {
    "request": {"principal": "principal", "resource": "resource", "auxData": "auxData"},
    "principal": {"id": "string", "roles": "list", "attr": "map", "policyVersion": "string", "scope": "string"},
    "resource": {"kind": "string", "id": "string", "attr": "map", "policyVersion": "string", "scope": "string"},
    "auxData": {"jwt": "map", "jwts": "map"},
    "runtime": {"effectiveDerivedRoles": "list"},
}

_NAMESPACES = {"math", "strings", "sets", "lists", "base64", "json", "regex", "optional", "cel", "ip"}

_PRIMITIVES = {"int", "uint", "double", "string", "bytes", "bool", "null_type"}
_NUMERIC = {"int", "uint", "double"}

_MACROS_1 = {"all", "exists", "exists_one", "existsOne", "map", "filter", "sortBy"}
_MACROS_2 = {"all", "exists", "existsOne", "exists_one", "transformList", "transformMap", "transformMapEntry"}


_RESULT_TYPES = {
    "size": "int",
    "int": "int",
    "uint": "uint",
    "double": "double",
    "string": "string",
    "bytes": "bytes",
    "bool": "bool",
    "timestamp": "timestamp",
    "duration": "duration",
    "type": "type",
    "matches": "bool",
    "startsWith": "bool",
    "endsWith": "bool",
    "contains": "bool",
    "lowerAscii": "string",
    "upperAscii": "string",
    "trim": "string",
    "replace": "string",
    "substring": "string",
    "charAt": "string",
    "indexOf": "int",
    "lastIndexOf": "int",
    "split": "list",
    "join": "string",
    "format": "string",
    "hasIntersection": "bool",
    "has_intersection": "bool",
    "isSubset": "bool",
    "is_subset": "bool",
    "intersect": "list",
    "except": "list",
    "inIPAddrRange": "bool",
    "hierarchy": "hierarchy",
    "ancestorOf": "bool",
    "descendentOf": "bool",
    "immediateChildOf": "bool",
    "immediateParentOf": "bool",
    "overlaps": "bool",
    "siblingOf": "bool",
    "sets.contains": "bool",
    "sets.equivalent": "bool",
    "sets.intersects": "bool",
    "getFullYear": "int",
    "getMonth": "int",
    "getDate": "int",
    "getDayOfMonth": "int",
    "getDayOfYear": "int",
    "getDayOfWeek": "int",
    "getHours": "int",
    "getMinutes": "int",
    "getSeconds": "int",
    "getMilliseconds": "int",
    "pathMatch": "bool",
    "pathMatchAnyOf": "bool",
    "pathHasPrefix": "bool",
    "isIP": "bool",
    "isCIDR": "bool",
}

_LITERAL_VALIDATED = {"duration", "timestamp"}
_SET_FUNCTIONS = {
    "hasIntersection",
    "has_intersection",
    "intersect",
    "except",
    "isSubset",
    "is_subset",
    "sets.contains",
    "sets.equivalent",
    "sets.intersects",
}

# Argument types each conversion accepts (besides dyn), for compile-time overload errors.
_CONVERSIONS = {
    "int": ("int", "uint", "double", "string", "timestamp"),
    "uint": ("int", "uint", "double", "string"),
    "double": ("int", "uint", "double", "string"),
    "string": ("int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration"),
    "bytes": ("bytes", "string"),
    "bool": ("bool", "string"),
    "timestamp": ("timestamp", "string", "int"),
    "duration": ("duration", "string"),
}

_ARITH = {
    "+": {
        ("int", "int"): "int",
        ("uint", "uint"): "uint",
        ("double", "double"): "double",
        ("string", "string"): "string",
        ("bytes", "bytes"): "bytes",
        ("list", "list"): "list",
        ("timestamp", "duration"): "timestamp",
        ("duration", "timestamp"): "timestamp",
        ("duration", "duration"): "duration",
    },
    "-": {
        ("int", "int"): "int",
        ("uint", "uint"): "uint",
        ("double", "double"): "double",
        ("timestamp", "duration"): "timestamp",
        ("timestamp", "timestamp"): "duration",
        ("duration", "duration"): "duration",
    },
    "*": {("int", "int"): "int", ("uint", "uint"): "uint", ("double", "double"): "double"},
    "/": {("int", "int"): "int", ("uint", "uint"): "uint", ("double", "double"): "double"},
    "%": {("int", "int"): "int", ("uint", "uint"): "uint"},
}
_ORDERED = {"int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration"}
_KNOWN = _ORDERED | {"null_type", "list", "map", "type"}


def _check_binary(op: str, left: str, right: str) -> str | None:
    """The static result type of ``left op right``, or None when cel-go's checker would reject it."""
    if op in _ARITH:
        if left in _KNOWN and right in _KNOWN:
            return _ARITH[op].get((left, right))
        lefts = {lt for lt, _ in _ARITH[op]}
        rights = {rt for _, rt in _ARITH[op]}
        if left in _KNOWN and left not in lefts or right in _KNOWN and right not in rights:
            return None
        return "dyn"
    if op in ("<", "<=", ">", ">="):
        if left not in _KNOWN or right not in _KNOWN:
            return "bool"
        if left in _NUMERIC and right in _NUMERIC or left == right and left in _ORDERED:
            return "bool"
        return None
    if op in ("==", "!="):
        if left not in _KNOWN or right not in _KNOWN or left == right:
            return "bool"
        if "null_type" in (left, right) and {left, right} & {"list", "map", "null_type", "type"}:
            return "bool"
        return None
    if op == "in":
        if right in _PRIMITIVES or right in ("timestamp", "duration"):
            return None
        return "bool"
    return "dyn"
