"""Policy keys as Cerbos writes them (``resource.KIND.vVERSION/SCOPE``), with its name sanitising:
a name that fits the pre-0.30 pattern (``app:doc``, ``user@x``) has each run of characters other
than word characters and dots replaced by ``_`` (``app_doc``); other names stay as they are.

Rules are indexed, and requests looked up, by the sanitised kind. A pattern such as ``app:*`` does
not fit the old name pattern, stays as written and so never matches the sanitised ``app_doc``:
Cerbos 0.55 behaves the same way.
"""

from __future__ import annotations

import re
from functools import lru_cache

_OLD_NAME = re.compile(r"^[A-Za-z][\w@.\-/]*(:[A-Za-z][\w@.\-/]*)*$")
_INVALID_CHARS = re.compile(r"[^\w.]+")


@lru_cache(maxsize=4096)
def sanitize(name: str) -> str:
    if _OLD_NAME.match(name):
        return _INVALID_CHARS.sub("_", name)
    return name


def _scoped(key: str, scope: str) -> str:
    return f"{key}/{scope}" if scope else key


def resource_key(kind: str, version: str, scope: str = "") -> str:
    return _scoped(f"resource.{sanitize(kind)}.v{sanitize(version)}", scope)


def principal_key(principal: str, version: str, scope: str = "") -> str:
    return _scoped(f"principal.{sanitize(principal)}.v{sanitize(version)}", scope)


def role_key(role: str, scope: str = "", version: str = "default") -> str:
    return _scoped(f"role.{sanitize(role)}.v{sanitize(version)}", scope)


def scope_value(scope: str) -> str:
    """The request's scope as Cerbos uses it: a leading "." (the root alias) is dropped."""
    return scope[1:] if scope.startswith(".") else scope
