"""Regular expressions as Cerbos's CEL runs them: Go's ``regexp``, that is RE2 syntax matched in
time linear in the input (no back-references, no look-arounds, no catastrophic backtracking).

Google's RE2 (``google-re2``) does the matching. Where Go's dialect of RE2 differs from the C++
library, Go's is followed: ``\\C`` (any byte) is refused, errors read as Go's ``regexp/syntax``
writes them (``error parsing regexp: missing closing ]: `[```), and repeated matches
(``extractAll``, ``replace``) skip an empty match right after the previous one, as Go's
``FindAll`` does. Text is matched as UTF-8; positions are byte offsets inside this module only.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from .values import CelError

_NO_SPAN = (-1, -1)


class _Re2Library:
    """google-re2, loaded with the first pattern: loading its library cost every start of
    `ccc-authz check` 9 M instructions (1 %), and most policy sets have no regular expression."""

    __slots__ = ("compile", "options", "search_options", "unanchored")

    def __init__(self) -> None:
        import re2

        self.compile: Any = re2._re2.RE2
        self.unanchored: Any = self.compile.Anchor.UNANCHORED
        self.options = re2.Options()
        self.options.log_errors = False  # an invalid pattern is an error value, not a line on stderr
        self.search_options = re2.Options()
        self.search_options.log_errors = False
        self.search_options.never_capture = True  # a yes/no search needs no groups: RE2's DFA answers it


@lru_cache(maxsize=1)
def _re2() -> _Re2Library:
    return _Re2Library()


# The C++ library's error codes in Go's words (regexp/syntax ErrorCode strings).
_GO_ERRORS = {
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "missing ]": "missing closing ]",
    "missing )": "missing closing )",
    "bad repetition operator": "invalid nested repetition operator",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid repetition size": "invalid repeat count",
    "invalid named capture group": "invalid named capture",
    "pattern too large - compile failed": "expression too large",
    "pattern too large - reverse compile failed": "expression too large",
}


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # a match boundary inside an invalid sequence
        return data.decode("utf-8", "replace")


def _go_error(pattern: str, message: str) -> CelError:
    """RE2's message for ``pattern`` as Go's regexp package words it."""
    if message == "trailing \\":
        return CelError("error parsing regexp: trailing backslash at end of expression: ``")
    code, _, arg = message.partition(": ")
    if code == "invalid perl operator" and arg.startswith("(?<"):
        # Go reads "(?<" as the start of a named group and quotes the rest of the pattern.
        at = pattern.find(arg)
        return CelError(f"error parsing regexp: invalid named capture: `{pattern[at:] if at >= 0 else arg}`")
    code = _GO_ERRORS.get(code, code)
    return CelError(f"error parsing regexp: {code}: `{arg}`" if arg else f"error parsing regexp: {code}")


def _go_only_error(pattern: str) -> CelError | None:
    """What Go refuses that C++ RE2 accepts: the ``\\C`` escape (outside ``\\Q...\\E``)."""
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "C":
                return CelError("error parsing regexp: invalid escape sequence: `\\C`")
            if nxt == "Q":
                end = pattern.find("\\E", i + 2)
                if end < 0:
                    return None
                i = end + 2
                continue
            i += 2
            continue
        i += 1
    return None


def _utf8_width(data: bytes, pos: int) -> int:
    lead = data[pos]
    if lead < 0xC0:
        return 1
    if lead < 0xE0:
        return 2
    if lead < 0xF0:
        return 3
    return 4


class Regex:
    """A compiled pattern. ``search`` says whether it matches anywhere; ``matches`` yields the
    spans (group 0 first, ``(-1, -1)`` for a group that did not take part) of each successive
    match in Go's order."""

    __slots__ = ("_re", "_search", "_unanchored", "groups", "pattern")

    def __init__(self, pattern: str) -> None:
        problem = _go_only_error(pattern)
        if problem is not None:
            raise problem
        encoded = _encode(pattern)
        re2 = _re2()
        compiled = re2.compile(encoded, re2.options)
        if not compiled.ok():
            raise _go_error(pattern, compiled.error().decode("utf-8", "replace"))
        self.pattern = pattern
        self.groups: int = compiled.NumberOfCapturingGroups()
        self._re = compiled
        self._search = re2.compile(encoded, re2.search_options) if self.groups else compiled
        self._unanchored = re2.unanchored

    def search(self, text: str) -> bool:
        data = _encode(text)
        return bool(self._search.Match(self._unanchored, data, 0, len(data))[0] != _NO_SPAN)

    def first(self, data: bytes) -> list[tuple[int, int]] | None:
        spans: list[tuple[int, int]] = self._re.Match(self._unanchored, data, 0, len(data))
        return None if spans[0] == _NO_SPAN else spans

    def matches(self, data: bytes) -> Iterator[list[tuple[int, int]]]:
        """Every match in ``data``, as Go's FindAll finds them: an empty match right where the
        previous match ended is skipped."""
        pos, end, prev_end = 0, len(data), -1
        match, unanchored = self._re.Match, self._unanchored
        while pos <= end:
            spans: list[tuple[int, int]] = match(unanchored, data, pos, end)
            start, stop = spans[0]
            if start < 0:
                return
            accept = True
            if stop == pos:  # an empty match here: step over one character
                accept = start != prev_end
                pos = pos + _utf8_width(data, pos) if pos < end else end + 1
            else:
                pos = stop
            prev_end = stop
            if accept:
                yield spans


@lru_cache(maxsize=512)
def compile_regex(pattern: str) -> Regex:
    """``pattern`` compiled, or a CelError in Go's words."""
    return Regex(pattern)


def substring(data: bytes, span: tuple[int, int]) -> str:
    return _decode(data[span[0] : span[1]])


def encode(text: str) -> bytes:
    return _encode(text)
