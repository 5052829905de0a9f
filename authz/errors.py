"""Errors of the authz package.

    AuthzError
    ├── PolicyErrors        policies that do not compile: every problem at once, each with file:line:col
    └── RequestError        a check request that is not well formed (the stream goes on)

Evaluation problems are never raised: a CEL error in a condition is data (``evaluation_errors``)
and the affected actions are denied.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .yamlsrc import Position


class AuthzError(Exception):
    """Base of every error the authz package raises."""


@dataclass(frozen=True)
class PolicyProblem:
    """One problem found while loading or compiling policies."""

    position: Position
    message: str
    kind: str = "invalid policy"

    def render(self, root: Path | None = None, with_frame: bool = True) -> str:
        head = f"{self.position} {self.message} [{self.kind}]"
        if not with_frame:
            return head
        frame = code_frame(self.position, root)
        return f"{head}\n{frame}" if frame else head


def code_frame(position: Position, root: Path | None = None) -> str:
    """The offending source line with a caret under the column, as compilers show it."""
    path = Path(position.file)
    if root is not None and not path.is_absolute():
        path = root / path
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    if not 1 <= position.line <= len(lines):
        return ""
    text = lines[position.line - 1]
    gutter = f"{position.line:>4} | "
    return f"{gutter}{text}\n{' ' * (len(gutter) + position.column - 1)}^"


class PolicyErrors(AuthzError):
    """The policy set does not compile; ``problems`` lists every problem found."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.position.file, p.position.line, p.position.column))
        summary = "; ".join(f"{p.position} {p.message}" for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{len(self.problems)} policy error(s): {summary}{more}")


class RequestError(AuthzError):
    """A malformed check request: says what is wrong and where in the request."""
