"""Cerbos's own CEL functions (hierarchies, IP ranges, set operations, paths) and cel-go's network
library. ``now()`` and ``timeSince()`` read the request's frozen clock, so the compiler owns them.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import posixpath
from collections.abc import Callable
from typing import Any

from .values import CelError, cel_equals, no_overload


class Hierarchy:
    """A dotted path such as ``acme.hr.uk``, as Cerbos's ``hierarchy()`` builds it."""

    cel_type_name = "hierarchy"
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[str, ...]) -> None:
        self.parts = parts

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hierarchy) and other.parts == self.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __repr__(self) -> str:
        return f"hierarchy({'.'.join(self.parts)!r})"

    def __len__(self) -> int:
        return len(self.parts)

    def __getitem__(self, i: int) -> str:
        return self.parts[i]


def _hierarchy(value: Any, delim: Any = ".") -> Hierarchy:
    if type(value) is str and type(delim) is str:
        return Hierarchy(tuple(value.split(delim)))
    if type(value) in (list, tuple) and all(type(v) is str for v in value):
        return Hierarchy(tuple(value))
    raise no_overload("hierarchy", value, delim)


def _h_pair(name: str, fn: Callable[[tuple[str, ...], tuple[str, ...]], Any]) -> Callable[[Any, Any], Any]:
    def call(a: Any, b: Any) -> Any:
        if type(a) is not Hierarchy or type(b) is not Hierarchy:
            raise no_overload(name, a, b)
        return fn(a.parts, b.parts)

    return call


def _is_prefix(short: tuple[str, ...], long: tuple[str, ...]) -> bool:
    return len(short) < len(long) and long[: len(short)] == short


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> Hierarchy:
    n = 0
    limit = min(len(a), len(b)) - 1
    while n < limit and a[n] == b[n]:
        n += 1
    return Hierarchy(a[:n])


def _ip_in_range(ip: Any, cidr: Any) -> bool:
    if type(ip) is not str or type(cidr) is not str:
        raise no_overload("inIPAddrRange", ip, cidr)
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        raise CelError(str(exc)) from None


def _need_lists(name: str, a: Any, b: Any) -> tuple[list[Any], list[Any]]:
    if type(a) not in (list, tuple) or type(b) not in (list, tuple):
        raise no_overload(name, a, b)
    return list(a), list(b)


def _contains(lst: list[Any], v: Any) -> bool:
    return any(cel_equals(v, x) for x in lst)


def _intersect(a: Any, b: Any) -> list[Any]:
    la, lb = _need_lists("intersect", a, b)
    out: list[Any] = []
    for v in la:
        if _contains(lb, v) and not _contains(out, v):
            out.append(v)
    return out


def _except(a: Any, b: Any) -> list[Any]:
    la, lb = _need_lists("except", a, b)
    return [v for v in la if not _contains(lb, v)]


def _has_intersection(a: Any, b: Any) -> bool:
    la, lb = _need_lists("hasIntersection", a, b)
    return any(_contains(lb, v) for v in la)


def _is_subset(a: Any, b: Any) -> bool:
    la, lb = _need_lists("isSubset", a, b)
    return all(_contains(lb, v) for v in la)


def _str1(name: str, fn: Callable[[str], Any]) -> Callable[[Any], Any]:
    def call(s: Any) -> Any:
        if type(s) is not str:
            raise no_overload(name, s)
        return fn(s)

    return call


def _base_path(p: str) -> str:
    if p == "":
        return "."
    stripped = p.rstrip("/")
    if stripped == "":
        return "/"
    return stripped.rsplit("/", 1)[-1]


def _dir_path(p: str) -> str:
    d = p[: p.rfind("/") + 1] if "/" in p else ""
    return posixpath.normpath(d) if d else "."


def _ext_path(p: str) -> str:
    base = p[p.rfind("/") + 1 :]
    i = base.rfind(".")
    return base[i:] if i >= 0 else ""


def _join_path(parts: Any) -> str:
    if type(parts) not in (list, tuple) or not all(type(x) is str for x in parts):
        raise no_overload("joinPath", parts)
    nonempty = [x for x in parts if x]
    return posixpath.normpath("/".join(nonempty)) if nonempty else ""


def _path_has_prefix(p: Any, prefix: Any) -> bool:
    if type(p) is not str or type(prefix) is not str:
        raise no_overload("pathHasPrefix", p, prefix)
    a = [x for x in posixpath.normpath(p).split("/")]
    b = [x for x in posixpath.normpath(prefix).split("/")]
    return a[: len(b)] == b


def _glob(p: str, pattern: str) -> bool:
    """Go's path.Match: ``*`` and ``?`` never cross a ``/``."""
    p_parts, g_parts = p.split("/"), pattern.split("/")
    if len(p_parts) != len(g_parts):
        return False
    return all(fnmatch.fnmatchcase(a, b) for a, b in zip(p_parts, g_parts, strict=True))


def _path_match(p: Any, pattern: Any) -> bool:
    if type(p) is not str or type(pattern) is not str:
        raise no_overload("pathMatch", p, pattern)
    return _glob(p, pattern)


def _path_match_any(p: Any, patterns: Any) -> bool:
    if type(p) is not str or type(patterns) not in (list, tuple):
        raise no_overload("pathMatchAnyOf", p, patterns)
    return any(_glob(p, g) for g in patterns)


def _rel_path(base: Any, target: Any) -> str:
    if type(base) is not str or type(target) is not str:
        raise no_overload("relPath", base, target)
    if base.startswith("/") != target.startswith("/"):
        raise CelError(f"Rel: can't make {target} relative to {base}")
    return posixpath.relpath(target or ".", base or ".")


# ---- cel-go network library ------------------------------------------------------------------


class IP:
    cel_type_name = "net.IP"
    __slots__ = ("addr",)

    def __init__(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        self.addr = addr

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IP) and other.addr == self.addr

    def __hash__(self) -> int:
        return hash(self.addr)


class CIDR:
    cel_type_name = "net.CIDR"
    __slots__ = ("iface",)

    def __init__(self, iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
        self.iface = iface

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CIDR) and other.iface == self.iface

    def __hash__(self) -> int:
        return hash(self.iface)


def _ip(s: Any) -> IP:
    if type(s) is not str:
        raise no_overload("ip", s)
    try:
        return IP(ipaddress.ip_address(s))
    except ValueError:
        raise CelError(f"IP Address '{s}' parse error during conversion from string") from None


def _cidr(s: Any) -> CIDR:
    if type(s) is not str:
        raise no_overload("cidr", s)
    try:
        return CIDR(ipaddress.ip_interface(s))
    except ValueError:
        raise CelError(f"network address parse error during conversion from string: {s}") from None


def _is_ip(s: Any) -> bool:
    try:
        _ip(s)
        return True
    except CelError:
        return False


def _is_cidr(s: Any) -> bool:
    return type(s) is str and "/" in s and _try(lambda: _cidr(s))


def _try(fn: Callable[[], Any]) -> bool:
    try:
        fn()
        return True
    except CelError:
        return False


def _ip_method(name: str, fn: Callable[[Any], Any]) -> Callable[..., Any]:
    def call(target: Any) -> Any:
        if type(target) is not IP:
            raise no_overload(name, target)
        return fn(target.addr)

    return call


def _contains_ip(c: Any, ip: Any) -> bool:
    if type(ip) is str:
        ip = _ip(ip)
    if type(c) is not CIDR or type(ip) is not IP:
        raise no_overload("containsIP", c, ip)
    return ip.addr in c.iface.network


def _contains_cidr(c: Any, other: Any) -> bool:
    if type(other) is str:
        other = _cidr(other)
    if type(c) is not CIDR or type(other) is not CIDR:
        raise no_overload("containsCIDR", c, other)
    inner, outer = other.iface.network, c.iface.network
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False  # an IPv4 network never contains an IPv6 one, nor the reverse


def _cidr_method(name: str, fn: Callable[[Any], Any]) -> Callable[..., Any]:
    def call(target: Any) -> Any:
        if type(target) is not CIDR:
            raise no_overload(name, target)
        return fn(target.iface)

    return call


def _member_or_global(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn


GLOBALS: dict[str, Callable[..., Any]] = {
    "hierarchy": _hierarchy,
    "intersect": _intersect,
    "except": _except,
    "hasIntersection": _has_intersection,
    "has_intersection": _has_intersection,
    "isSubset": _is_subset,
    "is_subset": _is_subset,
    "id": lambda x: x,
    "basePath": _str1("basePath", _base_path),
    "dirPath": _str1("dirPath", _dir_path),
    "extPath": _str1("extPath", _ext_path),
    "joinPath": _join_path,
    "pathHasPrefix": _path_has_prefix,
    "pathMatch": _path_match,
    "pathMatchAnyOf": _path_match_any,
    "relPath": _rel_path,
    "volumeName": _str1("volumeName", lambda s: ""),
    "ip": _ip,
    "cidr": _cidr,
    "isIP": _is_ip,
    "isCIDR": _is_cidr,
    "ip.isCanonical": _str1("ip.isCanonical", lambda s: _is_ip(s) and str(ipaddress.ip_address(s)) == s),
}

METHODS: dict[str, Callable[..., Any]] = {
    "ancestorOf": _h_pair("ancestorOf", _is_prefix),
    "descendentOf": _h_pair("descendentOf", lambda a, b: _is_prefix(b, a)),
    "immediateChildOf": _h_pair("immediateChildOf", lambda a, b: len(a) == len(b) + 1 and a[:-1] == b),
    "immediateParentOf": _h_pair("immediateParentOf", lambda a, b: len(b) == len(a) + 1 and b[:-1] == a),
    "commonAncestors": _h_pair("commonAncestors", _common),
    "overlaps": _h_pair("overlaps", lambda a, b: a[: len(b)] == b or b[: len(a)] == a),
    "siblingOf": _h_pair("siblingOf", lambda a, b: len(a) == len(b) and a[:-1] == b[:-1]),
    "inIPAddrRange": _ip_in_range,
    "intersect": _intersect,
    "except": _except,
    "hasIntersection": _has_intersection,
    "has_intersection": _has_intersection,
    "isSubset": _is_subset,
    "is_subset": _is_subset,
    "family": _ip_method("family", lambda a: a.version),
    "isLoopback": _ip_method("isLoopback", lambda a: a.is_loopback),
    "isGlobalUnicast": _ip_method(
        "isGlobalUnicast",
        lambda a: (
            not (a.is_multicast or a.is_loopback or a.is_link_local or a.is_unspecified)
            and not (a.version == 4 and a == ipaddress.IPv4Address("255.255.255.255"))
        ),
    ),
    "isLinkLocalUnicast": _ip_method("isLinkLocalUnicast", lambda a: a.is_link_local and not a.is_multicast),
    "isLinkLocalMulticast": _ip_method(
        "isLinkLocalMulticast",
        lambda a: (
            a.is_multicast
            and (
                a in ipaddress.ip_network("224.0.0.0/24") if a.version == 4 else a in ipaddress.ip_network("ff02::/16")
            )
        ),
    ),
    "isUnspecified": _ip_method("isUnspecified", lambda a: a.is_unspecified),
    "containsIP": _contains_ip,
    "containsCIDR": _contains_cidr,
    "masked": _cidr_method("masked", lambda i: CIDR(ipaddress.ip_interface(str(i.network)))),
    "prefixLength": _cidr_method("prefixLength", lambda i: i.network.prefixlen),
}
