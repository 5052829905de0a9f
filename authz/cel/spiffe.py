"""Cerbos's SPIFFE functions: ``spiffeID``, ``spiffeTrustDomain`` and the ``spiffeMatch*`` matchers,
with the SPIFFE ID syntax rules (and error texts) of go-spiffe."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .values import CelError, no_overload

_TD_CHARS = re.compile(r"^[a-z0-9._-]+$")
_SEGMENT_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")


class TrustDomain:
    cel_type_name = "cerbos.lib.spiffeTrustDomain"
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrustDomain) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("td", self.name))


class SpiffeID:
    cel_type_name = "cerbos.lib.spiffeID"
    __slots__ = ("trust_domain", "path")

    def __init__(self, trust_domain: str, path: str) -> None:
        self.trust_domain = trust_domain
        self.path = path

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpiffeID) and (other.trust_domain, other.path) == (self.trust_domain, self.path)

    def __hash__(self) -> int:
        return hash((self.trust_domain, self.path))

    def __str__(self) -> str:
        return f"spiffe://{self.trust_domain}{self.path}"


class Matcher:
    cel_type_name = "cerbos.lib.spiffeMatcher"
    __slots__ = ("test",)

    def __init__(self, test: Callable[[SpiffeID], bool]) -> None:
        self.test = test


def _parse_id(text: str) -> SpiffeID:
    def fail(why: str) -> CelError:
        return CelError(f"failed to parse SPIFFE ID: {why}")

    if not text.startswith("spiffe://"):
        raise fail("scheme is missing or invalid")
    rest = text[len("spiffe://") :]
    td, slash, path = rest.partition("/")
    if not td:
        raise fail("trust domain is missing")
    if not _TD_CHARS.match(td):
        raise fail("trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores")
    path = slash + path
    if path:
        segments = path.split("/")[1:]
        if segments and segments[-1] == "":
            raise fail("path cannot have a trailing slash")
        for seg in segments:
            if seg == "":
                raise fail("path cannot contain empty segments")
            if seg in (".", ".."):
                raise fail("path cannot contain dot segments")
            if not _SEGMENT_CHARS.match(seg):
                raise fail("path segment characters are limited to letters, numbers, dots, dashes, and underscores")
    return SpiffeID(td, path)


def spiffe_id(value: Any) -> SpiffeID:
    if type(value) is not str:
        raise no_overload("spiffeID", value)
    return _parse_id(value)


def trust_domain(value: Any) -> TrustDomain:
    if type(value) is not str:
        raise no_overload("spiffeTrustDomain", value)
    if value.startswith("spiffe://"):
        return TrustDomain(_parse_id(value).trust_domain)
    if not value:
        raise CelError("failed to parse trust domain: trust domain is missing")
    if not _TD_CHARS.match(value):
        raise CelError(
            "failed to parse trust domain: trust domain characters are limited to lowercase letters, "
            "numbers, dots, dashes, and underscores"
        )
    return TrustDomain(value)


def _id_arg(value: Any, name: str) -> SpiffeID:
    if type(value) is SpiffeID:
        return value
    if type(value) is str:
        return _parse_id(value)
    raise no_overload(name, value)


def match_exact(value: Any) -> Matcher:
    target = _id_arg(value, "spiffeMatchExact")
    return Matcher(lambda i: i == target)


def match_one_of(values: Any) -> Matcher:
    if type(values) not in (list, tuple):
        raise no_overload("spiffeMatchOneOf", values)
    targets = [_id_arg(v, "spiffeMatchOneOf") for v in values]
    return Matcher(lambda i: i in targets)


def match_trust_domain(value: Any) -> Matcher:
    td = value if type(value) is TrustDomain else trust_domain(value)
    return Matcher(lambda i: i.trust_domain == td.name)


def _method(name: str, kind: type, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(target: Any, *args: Any) -> Any:
        if type(target) is not kind:
            raise no_overload(name, target, *args)
        return fn(target, *args)

    return call


def _matches_id(matcher: Matcher, value: Any) -> bool:
    return matcher.test(_id_arg(value, "matchesID"))


def _is_member_of(sid: SpiffeID, td: Any) -> bool:
    if type(td) is not TrustDomain:
        raise no_overload("isMemberOf", sid, td)
    return sid.trust_domain == td.name


GLOBALS: dict[str, Callable[..., Any]] = {
    "spiffeID": spiffe_id,
    "spiffeTrustDomain": trust_domain,
    "spiffeMatchAny": lambda: Matcher(lambda i: True),
    "spiffeMatchExact": match_exact,
    "spiffeMatchOneOf": match_one_of,
    "spiffeMatchTrustDomain": match_trust_domain,
}

METHODS: dict[str, Callable[..., Any]] = {
    "path": _method("path", SpiffeID, lambda s: s.path),
    "trustDomain": _method("trustDomain", SpiffeID, lambda s: TrustDomain(s.trust_domain)),
    "isMemberOf": _method("isMemberOf", SpiffeID, _is_member_of),
    "name": _method("name", TrustDomain, lambda t: t.name),
    "matchesID": _method("matchesID", Matcher, _matches_id),
}


def trust_domain_id(target: Any) -> str:
    """``td.id()``: the member form of Cerbos's ``id`` (the global ``id(x)`` is the identity)."""
    if type(target) is not TrustDomain:
        raise no_overload("id", target)
    return f"spiffe://{target.name}"
