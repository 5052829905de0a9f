"""Cerbos's glob matching for actions, roles and resource kinds.

Only a name containing ``*`` is a pattern (Cerbos's rule index treats every other name as a
literal, so ``write:?`` only ever matches itself). In a pattern ``*`` stops at ``:``, ``**``
crosses it, ``?``, ``[...]`` and ``{a,b}`` work as usual, and a lone ``*`` matches everything.
"""

from __future__ import annotations

import re
from functools import lru_cache


def is_glob(pattern: str) -> bool:
    return "*" in pattern


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str] | None:
    if pattern == "*":
        pattern = "**"
    out: list[str] = []
    i = 0
    depth = 0
    try:
        while i < len(pattern):
            c = pattern[i]
            if c == "*":
                if pattern.startswith("**", i):
                    out.append(".*")
                    i += 2
                    continue
                out.append("[^:]*")
            elif c == "?":
                out.append("[^:]")
            elif c == "[":
                end = pattern.index("]", i + 1)
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
            elif c == "{":
                depth += 1
                out.append("(?:")
            elif c == "}" and depth:
                depth -= 1
                out.append(")")
            elif c == "," and depth:
                out.append("|")
            elif c == "\\" and i + 1 < len(pattern):
                i += 1
                out.append(re.escape(pattern[i]))
            else:
                out.append(re.escape(c))
            i += 1
        if depth:
            return None
        return re.compile("".join(out) + r"\Z", re.S)
    except (ValueError, re.error):
        return None


def matches(pattern: str, value: str) -> bool:
    """True when ``value`` matches the Cerbos glob ``pattern`` (an invalid glob matches nothing)."""
    if pattern == value:
        return True
    if not is_glob(pattern):
        return False
    rx = _compile(pattern)
    return rx is not None and rx.match(value) is not None


def valid(pattern: str) -> bool:
    return not is_glob(pattern) or _compile(pattern) is not None
