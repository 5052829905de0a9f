"""Policy conditions and outputs compiled once into closures over an ``Activation``.

A condition is a tree of ``expr`` / ``all`` / ``any`` / ``none``. Evaluating it never raises:
a CEL error is recorded in the caller's ``errors`` list and then, as Cerbos does,

- by default (strict evaluation) it makes the whole condition an error (``ConditionError``),
  which the evaluator turns into a DENY for the affected action;
- without strict evaluation it counts as "not satisfied" for that one expression, so ``none``
  around an erroring expression is satisfied (Cerbos's fail-open behaviour, kept for migration).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .cel.compiler import Activation, CelCompileError, Scope, compile_expression
from .cel.values import CelError, to_json
from .errors import PolicyProblem
from .policy import Expr, Match, Output
from .yamlsrc import Position


@dataclass(frozen=True)
class EvaluationError:
    """A CEL error met while deciding: which expression, and what went wrong."""

    expression: str
    message: str


class ConditionError(Exception):
    """Strict evaluation met an error: the condition is neither satisfied nor unsatisfied."""


ConditionFn = Callable[[Activation, bool, list[EvaluationError]], bool]


def compile_cel(expr: Expr, scope: Scope, problems: list[PolicyProblem]) -> Callable[[Activation], Any] | None:
    """One CEL expression, or None with a problem positioned in the policy file."""
    try:
        return compile_expression(expr.text, scope).evaluate
    except CelCompileError as exc:
        problems.append(
            PolicyProblem(_cel_position(expr, exc), f"{exc.message} in `{expr.text.strip()}`", "invalid expression")
        )
    except RecursionError:
        problems.append(PolicyProblem(expr.position, "expression is nested too deeply", "invalid expression"))
    return None


def _cel_position(expr: Expr, exc: CelCompileError) -> Position:
    """The file position of a CEL error: the expression's start, moved by the error's offset."""
    p = expr.position
    if exc.line > 1:  # a block scalar: later lines keep the first line's indentation
        return Position(p.file, p.line + exc.line - 1, p.column + exc.column - 1, p.path)
    return Position(p.file, p.line, p.column + exc.column - 1, p.path)


def compile_match(match: Match, scope: Scope, problems: list[PolicyProblem]) -> ConditionFn | None:
    """A condition tree as one closure ``fn(activation, strict, errors) -> bool``."""
    if match.op == "expr":
        assert match.expr is not None
        fn = compile_cel(match.expr, scope, problems)
        if fn is None:
            return None
        return _expr_condition(fn, match.expr.text)
    children = [compile_match(c, scope, problems) for c in match.children]
    if any(c is None for c in children):
        return None
    kids: list[ConditionFn] = [c for c in children if c is not None]
    # Plain loops rather than all()/any() over a generator: this is the hottest path of a check.
    if match.op == "all":
        if len(kids) == 2:
            first, second = kids

            def both(act: Activation, strict: bool, errors: list[EvaluationError]) -> bool:
                return first(act, strict, errors) and second(act, strict, errors)

            return both

        def all_of(act: Activation, strict: bool, errors: list[EvaluationError]) -> bool:
            for k in kids:  # noqa: SIM110
                if not k(act, strict, errors):
                    return False
            return True

        return all_of
    if match.op == "any":

        def any_of(act: Activation, strict: bool, errors: list[EvaluationError]) -> bool:
            for k in kids:  # noqa: SIM110
                if k(act, strict, errors):
                    return True
            return False

        return any_of

    def none_of(act: Activation, strict: bool, errors: list[EvaluationError]) -> bool:
        for k in kids:  # noqa: SIM110
            if k(act, strict, errors):
                return False
        return True

    return none_of


def _expr_condition(fn: Callable[[Activation], Any], text: str) -> ConditionFn:
    def condition(act: Activation, strict: bool, errors: list[EvaluationError]) -> bool:
        try:
            return fn(act) is True
        except CelError as exc:
            errors.append(EvaluationError(text.strip(), str(exc)))
            if strict:
                raise ConditionError(str(exc)) from None
            return False
        except RecursionError:
            errors.append(EvaluationError(text.strip(), "expression nested too deeply"))
            if strict:
                raise ConditionError("expression nested too deeply") from None
            return False

    return condition


def negate(condition: ConditionFn) -> ConditionFn:
    """``none: [condition]``: Cerbos's way of turning a conditional ALLOW into a DENY."""

    def negated(act: Activation, strict: bool, errors: list[EvaluationError]) -> bool:
        return not condition(act, strict, errors)

    return negated


@dataclass(frozen=True, slots=True)
class CompiledOutput:
    """A rule's output expressions (either may be absent)."""

    rule_activated: Callable[[Activation], Any] | None
    condition_not_met: Callable[[Activation], Any] | None


def compile_output(output: Output | None, scope: Scope, problems: list[PolicyProblem]) -> CompiledOutput | None:
    if output is None:
        return None
    activated = compile_cel(output.rule_activated, scope, problems) if output.rule_activated else None
    not_met = compile_cel(output.condition_not_met, scope, problems) if output.condition_not_met else None
    if activated is None and not_met is None:
        return None
    return CompiledOutput(activated, not_met)


def output_value(fn: Callable[[Activation], Any], act: Activation) -> tuple[Any, str | None]:
    """An output expression's JSON value, or (None, error message) when it fails."""
    try:
        return to_json(fn(act)), None
    except CelError as exc:
        return None, str(exc)
    except RecursionError:
        return None, "expression nested too deeply"
