"""Query planning, as Cerbos's PlanResources does it: which resources of one kind a principal may
act on, as a condition over the resources' attributes that a database can evaluate.

The conditions of the rules a check would meet are partially evaluated: everything the request
knows (the principal, constants, globals, known resource attributes, ``now()``) is worked out, and
what depends on the unknown attributes is left as an expression tree in Cerbos's filter shape
(``operator`` / ``operands`` / ``variable`` / ``value``).

Which rules combine, and how, is not re-derived here: the evaluator's own decision plans
(``plan.py``: the roles, scopes, role policies, principal policies and derived roles a check of
these coordinates walks) are walked with each undecided condition as an unknown. Every path of that
walk that ends in ALLOW contributes the conjunction of the conditions it assumed, so the filter
holds exactly where the walk would allow.

Errors are modelled as the check meets them. A missing attribute makes an expression an error: in
the filter, as in SQL, it is *unknown*, and unknown is neither true nor false, so ``and``, ``or``
and ``not`` behave as CEL's commutative logic does. Each condition is turned into a pair of
formulas: one true exactly where the check finds it satisfied, one true exactly where the check
finds it not satisfied. Under strict evaluation a condition that errs denies the action, so a path
assuming either answer excludes that resource; without it, an erring ``expr`` counts as false,
which the formulas spell out with explicit presence tests (``ne(attribute, null)``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import lark

from .cel.compiler import Activation, CelCompileError, Scope, Variable, compile_expression
from .cel.parser import parse
from .cel.values import CelError, Message, from_json, to_json
from .compile import CompiledDerivedRole, PolicySet, Row
from .errors import PolicyProblem
from .evaluate import CheckInput, EvalParams, Principal, Resource, principal_message, request_message
from .globs import matches
from .loader import load_policies
from .plan import UNDECIDED, ActionEffect, ActionPlan, RoleStep, check_plan
from .policy import (
    ALLOW,
    DENY,
    REQUIRE_PARENTAL_CONSENT,
    Definitions,
    DerivedRoles,
    ExportConstants,
    ExportVariables,
    Expr,
    Match,
    PrincipalPolicy,
    ResourcePolicy,
    RolePolicy,
)

ALWAYS_ALLOWED = "KIND_ALWAYS_ALLOWED"
ALWAYS_DENIED = "KIND_ALWAYS_DENIED"
CONDITIONAL = "KIND_CONDITIONAL"
MAX_COMPILED = 20000  # known sub-expressions kept compiled per policy
MAX_WALKS = 5000  # walks of one action's plan (one per combination of conditions a path assumes)
MAX_FILTER_NODES = 200_000  # a bigger filter is refused (a request listing too much to plan)
_BOUND = "qp_bound_"  # the globals through which a macro's variable gets a known element
_NAMESPACES = {"sets", "math", "strings", "base64", "json", "regex", "lists", "optional", "cel"}
_MACROS = {"all", "exists", "exists_one", "existsOne", "filter", "map"}


class PlanError(Exception):
    """A condition the planner cannot turn into a filter: the request gets an error naming it."""


# ---- the filter's expression tree ------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Value:
    value: Any  # a CEL value

    # Equal and hashed by type and value, lists and maps included: 1 == True in Python, not here.
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Value) and _frozen(self.value) == _frozen(other.value)

    def __hash__(self) -> int:
        return hash(_frozen(self.value))


def _frozen(value: Any) -> Any:
    if isinstance(value, list):
        return ("list", tuple(_frozen(v) for v in value))
    if isinstance(value, dict):
        return ("map", tuple(sorted(((repr(k), _frozen(v)) for k, v in value.items()), key=lambda kv: kv[0])))
    try:
        hash(value)
    except TypeError:
        return (type(value).__name__, repr(value))
    return (type(value).__name__, value)


@dataclass(frozen=True, slots=True)
class Var:
    name: str  # request.resource.attr.x, request.resource.id, or a lambda's variable


@dataclass(frozen=True, slots=True)
class Op:
    operator: str
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Err:
    """An expression that errs whatever the resource (a missing principal attribute, say)."""

    message: str


@dataclass(frozen=True, slots=True)
class Held:
    """Whether a derived role holds, as ``runtime.effectiveDerivedRoles`` lists it: worked out
    leniently, so never an error (``sat`` where it holds, ``unsat`` where it does not)."""

    sat: Node
    unsat: Node


Node = Value | Var | Op | Err | Held
TRUE = Value(True)
FALSE = Value(False)


def _is(node: Node, value: bool) -> bool:
    """Whether a node is the constant ``value`` (not merely equal to it: 1 == True in Python)."""
    return isinstance(node, Value) and node.value is value


_LOGICAL = {"and", "or", "not", "if"}


def and_(*nodes: Node) -> Node:
    seen: dict[Node, None] = {}
    for n in nodes:
        if _is(n, False):
            return FALSE
        if _is(n, True):
            continue
        seen.update(dict.fromkeys(n.operands if isinstance(n, Op) and n.operator == "and" else (n,)))
    out = _absorbed(list(seen), seen, "or")
    if not out:
        return TRUE
    if any(isinstance(n, Op) and n.operator == "not" and n.operands[0] in seen for n in out):
        return FALSE  # p && !p: never true (false, or an error)
    return out[0] if len(out) == 1 else Op("and", tuple(out))


def or_(*nodes: Node) -> Node:
    seen: dict[Node, None] = {}
    for n in nodes:
        if _is(n, True):
            return TRUE
        if _is(n, False):
            continue
        seen.update(dict.fromkeys(n.operands if isinstance(n, Op) and n.operator == "or" else (n,)))
    out = _absorbed(list(seen), seen, "and")
    if not out:
        return FALSE
    if _covers_everything(out, seen):
        return TRUE
    return out[0] if len(out) == 1 else Op("or", tuple(out))


def simplify(node: Node, facts: tuple[Node, ...] = ()) -> Node:
    """A filter with what its conjunctions already require taken as true inside them: in
    ``a && f(a)``, ``f`` may assume ``a`` (``!a`` there is false). Only where the filter's truth
    alone matters (its top, where rows are kept when it is true): it may turn an unknown into false."""
    if node in facts:
        return TRUE
    if isinstance(node, Op) and node.operator == "not" and node.operands[0] in facts:
        return FALSE
    if isinstance(node, Op) and node.operator == "and":
        units = tuple(o for o in node.operands if not (isinstance(o, Op) and o.operator in ("and", "or")))
        known = facts + units
        return and_(*(o if o in units else simplify(o, known) for o in node.operands))
    if isinstance(node, Op) and node.operator == "or":
        return or_(*_merge_complements([simplify(o, facts) for o in node.operands]))
    return node


MAX_DECIDED_UNKNOWNS = 12  # attributes plus comparisons: up to 4,096 cases tried


def _decided(node: Node) -> bool | None:
    """True (False) when a filter holds (fails) on every resource, tried case by case: each
    attribute it reads present or missing, each comparison over present attributes true or false
    (taken as independent, which only adds cases: an answer found holds). None when undecided or
    past ``MAX_DECIDED_UNKNOWNS``. Catches what the rewriting rules miss, such as the walk's case
    splits over a parent scope's consent: ``!a || (a && !b) || (a && b)``."""
    if isinstance(node, Value):
        return None
    atoms: dict[Node, None] = {}
    _collect_atoms(node, atoms)
    tests = [a for a in atoms if not _presence_test(a)]
    attributes = list(dict.fromkeys(v for a in atoms for v in _attributes(a)))
    if len(tests) + len(attributes) > MAX_DECIDED_UNKNOWNS:
        return None
    always, ever = True, False  # true in every case; true in some case (unknown is not true)
    for present_bits in range(1 << len(attributes)):
        present = {v for i, v in enumerate(attributes) if present_bits >> i & 1}
        live = [a for a in tests if all(v in present for v in _attributes(a))]
        for bits in range(1 << len(live)):
            world = {a: bool(bits >> i & 1) for i, a in enumerate(live)}
            if _kleene(node, world, present) is True:
                ever = True
            else:
                always = False
            if ever and not always:
                return None
    return True if always else False if not ever else None


def _collect_atoms(node: Node, out: dict[Node, None]) -> None:
    if isinstance(node, Op) and node.operator in ("and", "or", "not"):
        for o in node.operands:
            _collect_atoms(o, out)
    elif not isinstance(node, Value):
        out[node] = None


def _kleene(node: Node, world: dict[Node, bool], present: set[Var]) -> bool | None:
    """The filter's value in one case: true, false or unknown (None), as SQL's logic has it."""
    if isinstance(node, Value):
        return node.value if isinstance(node.value, bool) else None
    if isinstance(node, Op) and node.operator == "not":
        inner = _kleene(node.operands[0], world, present)
        return None if inner is None else not inner
    if isinstance(node, Op) and node.operator in ("and", "or"):
        decisive = node.operator == "or"
        unknown = False
        for o in node.operands:
            value = _kleene(o, world, present)
            if value is decisive:
                return decisive
            unknown = unknown or value is None
        return None if unknown else not decisive
    if _presence_test(node):
        assert isinstance(node, Op) and isinstance(node.operands[0], Var)
        is_present = node.operands[0] in present
        return is_present if node.operator == "ne" else not is_present
    return world.get(node)  # a comparison reading a missing attribute: unknown


def _size(node: Node) -> int:
    """The number of nodes in a filter (shared sub-trees counted each time they appear)."""
    if isinstance(node, Op):
        return 1 + sum(_size(o) for o in node.operands)
    return 1


def _conjuncts(node: Node) -> list[Node]:
    return list(node.operands) if isinstance(node, Op) and node.operator == "and" else [node]


def _merge_complements(terms: list[Node], limit: int = 200) -> list[Node]:
    """``(c && x) || (c && !x)`` is ``c`` where ``x`` does not err, that is where the attributes
    it reads are present: the walk's case splits folded back (true on the same rows)."""
    if len(terms) > limit:
        return terms
    merged = True
    while merged:
        merged = False
        for i, j in itertools.combinations(range(len(terms)), 2):
            a, b = _conjuncts(terms[i]), _conjuncts(terms[j])
            only_a = [n for n in a if n not in b]
            only_b = [n for n in b if n not in a]
            if len(only_a) != 1 or len(only_b) != 1 or len(a) != len(b):
                continue
            x, y = only_a[0], only_b[0]
            if not (y == not_(x) or x == not_(y)):
                continue
            atom = x if y == not_(x) else y
            if isinstance(atom, Op) and atom.operator in ("and", "or"):
                continue
            present = [] if _presence_test(atom) else [Op("ne", (v, Value(None))) for v in _attributes(atom)]
            common = [n for n in a if n != x]
            terms = [t for k, t in enumerate(terms) if k not in (i, j)] + [and_(*common, *present)]
            merged = True
            break
    return terms


def _absorbed(parts: list[Node], present: dict[Node, None], inner: str) -> list[Node]:
    """Absorption, which holds in three-valued logic too: ``x && (x || y)`` is ``x``, and
    ``x || (x && y)`` is ``x``: an ``inner`` operand holding another operand is dropped."""
    return [
        n for n in parts if not (isinstance(n, Op) and n.operator == inner and any(o in present for o in n.operands))
    ]


def _covers_everything(alternatives: list[Node], present: dict[Node, None]) -> bool:
    """``p || !p || (each attribute p reads is missing)``: true for every resource, since p is true,
    false, or errs, and it errs only where an attribute it reads is missing."""
    for n in alternatives:
        if (
            isinstance(n, Op)
            and n.operator == "not"
            and n.operands[0] in present
            and all(Op("eq", (v, Value(None))) in present for v in _attributes(n.operands[0]))
        ):
            return True
    return False


def not_(node: Node) -> Node:
    if _is(node, True):
        return FALSE
    if _is(node, False):
        return TRUE
    if isinstance(node, Op) and node.operator == "not":
        return node.operands[0]
    return Op("not", (node,))


# ---- truth formulas ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Truth:
    """Four formulas about an expression, each never *unknown* where it matters: ``true`` holds
    where the expression is true, ``false`` where false, ``not_true`` where it is false or errs,
    ``not_false`` where it is true or errs."""

    true: Node
    false: Node
    not_true: Node
    not_false: Node


def truth(node: Node) -> Truth:
    if isinstance(node, Err) or (isinstance(node, Value) and type(node.value) is not bool):
        return Truth(FALSE, FALSE, TRUE, TRUE)
    if _is(node, True):
        return Truth(TRUE, FALSE, FALSE, TRUE)
    if _is(node, False):
        return Truth(FALSE, TRUE, TRUE, FALSE)
    if isinstance(node, Held):
        return Truth(node.sat, node.unsat, node.unsat, node.sat)
    if isinstance(node, Op) and node.operator in ("and", "or"):
        parts = [truth(n) for n in node.operands]
        ts, fs = [p.true for p in parts], [p.false for p in parts]
        nts, nfs = [p.not_true for p in parts], [p.not_false for p in parts]
        if node.operator == "and":
            return Truth(and_(*ts), or_(*fs), or_(*nts), and_(*nfs))
        return Truth(or_(*ts), and_(*fs), and_(*nts), or_(*nfs))
    if isinstance(node, Op) and node.operator == "not":
        inner = truth(node.operands[0])
        return Truth(inner.false, inner.true, inner.not_false, inner.not_true)
    if isinstance(node, Op) and node.operator == "if":
        c, x, y = (truth(n) for n in node.operands)
        errs = and_(c.not_true, c.not_false)
        return Truth(
            or_(and_(c.true, x.true), and_(c.false, y.true)),
            or_(and_(c.true, x.false), and_(c.false, y.false)),
            or_(and_(c.true, x.not_true), and_(c.false, y.not_true), errs),
            or_(and_(c.true, x.not_false), and_(c.false, y.not_false), errs),
        )
    if _contains_held(node):
        raise PlanError("runtime.effectiveDerivedRoles used in a comparison cannot be planned")
    if _presence_test(node):
        # ``eq(x, null)`` / ``ne(x, null)`` (what ``has(x)`` becomes, as in Cerbos's plans) reads as
        # "absent or null" / "present": it never errs. (A policy comparing an attribute with null
        # directly is true in CEL only for an explicit null, which a NULL column cannot tell from a
        # missing attribute: Cerbos's adapters read it the same way.)
        return Truth(node, not_(node), not_(node), node)
    # An atom (a comparison, a function): it errs where an attribute it reads is missing.
    errs = _errs(node)
    return Truth(node, not_(node), or_(errs, not_(node)), or_(errs, node))


def _errs(node: Node) -> Node:
    """Where evaluating a value expression errs: where an attribute it reads is missing, except in a
    branch of ``c ? a : b`` that is not taken (``has(R.attr.u) ? R.attr.u.state : "none"`` does not
    err where ``u`` is absent), or inside a presence test (``has()``), which never errs."""
    if not _has_branch(node):
        return or_(*(Op("eq", (v, Value(None))) for v in _attributes(node)))
    if isinstance(node, Err):
        return TRUE
    if not isinstance(node, Op) or _presence_test(node):
        return FALSE
    if node.operator == "if":
        c, a, b = node.operands
        t = truth(c)
        return or_(and_(t.not_true, t.not_false), and_(t.true, _errs(a)), and_(t.false, _errs(b)))
    return or_(*(_errs(o) for o in node.operands))


def _has_branch(node: Node) -> bool:
    return isinstance(node, Op) and (node.operator == "if" or any(_has_branch(o) for o in node.operands))


def _contains_held(node: Node) -> bool:
    return isinstance(node, Held) or (isinstance(node, Op) and any(_contains_held(o) for o in node.operands))


def _presence_test(node: Node) -> bool:
    return (
        isinstance(node, Op)
        and node.operator in ("eq", "ne")
        and isinstance(node.operands[0], Var)
        and isinstance(node.operands[1], Value)
        and node.operands[1].value is None
    )


def _attributes(node: Node) -> list[Var]:
    out: list[Var] = []

    def visit(n: Node) -> None:
        if isinstance(n, Var) and n.name.startswith("request.") and n not in out:
            out.append(n)
        elif isinstance(n, Op):
            for o in n.operands:
                visit(o)

    visit(node)
    return out


def match_truth(match: Match, leaf: dict[int, Node], strict: bool) -> tuple[Node, Node]:
    """(satisfied, not satisfied) of a condition tree, as ``conditions.compile_match`` decides it:
    strictly, the first erring expression (in order) makes the whole condition err; otherwise an
    erring expression is just false."""
    if match.op == "expr":
        t = truth(leaf[id(match)])
        return (t.true, t.false) if strict else (t.true, t.not_true)
    kids = [match_truth(c, leaf, strict) for c in match.children]
    if match.op == "all":
        sat = and_(*(k[0] for k in kids))
        if not strict:
            return sat, or_(*(k[1] for k in kids))
        # not satisfied: some child is false, every one before it true (none erred before it)
        return sat, or_(*(and_(*(p[0] for p in kids[:i]), k[1]) for i, k in enumerate(kids)))
    if strict:
        any_sat = or_(*(and_(*(p[1] for p in kids[:i]), k[0]) for i, k in enumerate(kids)))
    else:
        any_sat = or_(*(k[0] for k in kids))
    none_sat = and_(*(k[1] for k in kids))
    return (any_sat, none_sat) if match.op == "any" else (none_sat, any_sat)


# ---- partial evaluation of CEL ------------------------------------------------------------------


@dataclass
class _Path:
    """``request``, ``R`` and the like, before a field makes them a value or an attribute."""

    path: str


@dataclass
class PolicyEnv:
    """What one policy's expressions may name: its variables (as source) and constants."""

    variables: dict[str, Expr]
    constants: dict[str, Any]
    scope: Scope | None = None
    # the engine's compiled form of each known sub-expression met so far (the policy is immutable)
    compiled: dict[str, Any] = field(default_factory=dict)

    def compiled_scope(self) -> Scope:
        """The policy's scope for evaluating what the request knows (variables compiled lazily)."""
        if self.scope is None:
            scope = Scope(constants={k: from_json(_plain(v)) for k, v in self.constants.items()})
            for name in self.variables:
                scope.variables[name] = Variable(name, _undefined)
            for name, expr in self.variables.items():
                try:
                    scope.variables[name].fn = compile_expression(expr.text, scope).evaluate
                except CelCompileError as exc:
                    raise PlanError(f"variable {name}: {exc.message}") from None
            self.scope = scope
        return self.scope


def _plain(value: Any) -> Any:
    """A constant as plain JSON data (the policy reader keeps source positions on its containers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@lru_cache(maxsize=4096)
def _parse(text: str) -> Any:
    """A policy expression's parse tree (only read, never changed: shared between requests)."""
    return parse(text)


def _undefined(act: Activation) -> Any:
    raise CelError("variable used before it is defined")


class Partial:
    """Partially evaluates the expressions of one policy for one request."""

    def __init__(
        self,
        env: PolicyEnv,
        act: Activation,
        known_attrs: set[str],
        runtime_roles: Callable[[], tuple[dict[str, Node], Node]] | None = None,
    ) -> None:
        self.env = env
        self.known_attrs = known_attrs
        # name -> whether that derived role holds, for ``runtime.effectiveDerivedRoles``, worked
        # out when first read (none: the expression sees no derived roles, as principal rules and
        # derived roles do)
        self.runtime_source = runtime_roles
        self.act = act
        self.var_cache: dict[str, Node] = {}
        self.bound: dict[str, Any] = {}  # macro variables bound to known elements (CEL values)

    def expression(self, text: str) -> Node:
        try:
            tree = _parse(text)
        except CelCompileError as exc:
            raise PlanError(f"cannot parse `{text.strip()}`: {exc.message}") from None
        return self.value(tree, text, frozenset())

    def evaluate(self, text: str) -> Node:
        """What the request knows: evaluated by the engine's own compiler, in the policy's scope."""
        act = self.act
        if self.bound:
            # compiled once whatever the element: the element reaches it through a global
            for name in self.bound:
                text = f"cel.bind({name}, G.{_BOUND}{name}, {text})"
            extra = {f"{_BOUND}{name}": value for name, value in self.bound.items()}
            act = Activation(act.request, act.now, {**act.globals, **extra}, act.runtime)
        try:
            compiled = self.env.compiled.get(text)
            if compiled is None:
                if len(self.env.compiled) > MAX_COMPILED:
                    self.env.compiled.clear()
                compiled = self.env.compiled[text] = compile_expression(text, self.env.compiled_scope())
            return Value(compiled.evaluate(act))
        except CelError as exc:
            return Err(str(exc))
        except CelCompileError as exc:
            raise PlanError(f"cannot compile `{text.strip()}`: {exc.message}") from None

    def node(self, tree: Any, text: str, local: frozenset[str]) -> Node | _Path:  # noqa: C901
        if isinstance(tree, lark.Token):
            raise PlanError(f"unexpected token {tree.value!r} in `{text.strip()}`")
        kind = tree.data
        kids = tree.children
        here = text[tree.meta.start_pos : tree.meta.end_pos] if not tree.meta.empty else text
        passthrough = ("expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary")
        if kind in passthrough and len(kids) == 1:
            return self.node(kids[0], text, local)
        if kind in ("member", "primary", "paren_expr"):
            return self.node(kids[0], text, local)
        if kind == "literal":  # its token's own text: true/false tokens are remade without positions
            return self.evaluate(str(kids[0]))
        if kind == "ident":
            name = str(kids[0])
            if name in local:
                return Var(name)
            if name in self.bound:
                return self.evaluate(here)
            if name in ("R", "request"):
                return _Path("request.resource" if name == "R" else "request")
            if name == "runtime":
                return _Path("runtime")
            if name in ("V", "variables"):
                return _Path("variables")
            return self.evaluate(here)
        if kind == "member_dot":
            return self._select(self.node(kids[0], text, local), str(kids[1]), here)
        if kind == "member_index":
            base = self.node(kids[0], text, local)
            key = self.value(kids[1], text, local)
            if isinstance(base, _Path) and isinstance(key, Value) and isinstance(key.value, str):
                return self._select(base, key.value, here)
            return self._op("index", [self._value(base), key], here)
        args: list[Any] = []
        if kind in ("member_dot_arg", "ident_arg"):
            found = [c for c in kids if isinstance(c, lark.Tree) and c.data == "exprlist"]
            args = list(found[0].children) if found else []
        if kind == "ident_arg":
            name = str(kids[0])
            if name == "has" and len(args) == 1:
                inner = self.node(args[0], text, local)
                if isinstance(inner, Var):
                    return Op("ne", (inner, Value(None)))
                return self.evaluate(here) if isinstance(inner, (Value, Err)) else self._unplannable(here)
            return self._op(name, [self.value(a, text, local) for a in args], here)
        if kind == "member_dot_arg":
            receiver, name = kids[0], str(kids[1])
            receiver_name = _plain_ident(receiver)
            if receiver_name in _NAMESPACES and receiver_name not in local:
                return self._op(f"{receiver_name}.{name}", [self.value(a, text, local) for a in args], here)
            if name in ("all", "exists", "existsOne", "exists_one") and len(args) == 3 and _plain_ident(args[1]):
                return self._macro2(name, receiver, args, text, local, here)
            if name in _MACROS and len(args) in (2, 3) and _plain_ident(args[0]):
                return self._macro(name, receiver, args, text, local, here)
            target = self.value(receiver, text, local)
            return self._op(name, [target, *(self.value(a, text, local) for a in args)], here)
        if kind == "expr":
            c, x, y = (self.value(k, text, local) for k in kids)
            if isinstance(c, Value):
                return x if c.value is True else y if c.value is False else Err("non-bool condition")
            return Op("if", (c, x, y))
        if kind in ("conditionalor", "conditionaland"):
            a, b = (self.value(k, text, local) for k in kids)
            if isinstance(a, Value) and isinstance(b, Value):
                return self.evaluate(here)
            return or_(a, b) if kind == "conditionalor" else and_(a, b)
        if kind == "unary":
            op_tree, operand = kids
            v = self.value(operand, text, local)
            if op_tree.data == "unary_not":
                return self.evaluate(here) if isinstance(v, Value) else not_(v)
            return self._op("sub", [Value(0), v], here)
        if kind in ("relation", "addition", "multiplication"):
            op_tree, right = kids
            left = self.value(op_tree.children[0], text, local)
            operator = _OPERATORS[op_tree.data]
            container = self.node(right, text, local)
            if operator == "in" and isinstance(container, _Path) and container.path == "runtime.roles":
                if isinstance(left, Value) and isinstance(left.value, str):
                    held = self.runtime_roles.get(left.value, FALSE)  # whether that derived role holds
                    readable = self.runtime_readable
                    if _is(readable, True):
                        return held
                    t = truth(held)
                    return Held(and_(readable, t.true), and_(readable, t.false))
                return self._unplannable(here)
            return self._op(operator, [left, self._value(container)], here)
        if kind == "list_lit":
            elems = kids[0].children if kids else []
            values = [self.value(e.children[0], text, local) for e in elems]
            return self._op("list", values, here)
        return self._unplannable(here)

    @property
    def runtime_roles(self) -> dict[str, Node]:
        return self.runtime_source()[0] if self.runtime_source is not None else {}

    @property
    def runtime_readable(self) -> Node:
        """Where the list can be read: strictly, not where some derived role of the scope errs."""
        return self.runtime_source()[1] if self.runtime_source is not None else TRUE

    def value(self, tree: Any, text: str, local: frozenset[str]) -> Node:
        return self._value(self.node(tree, text, local))

    def _value(self, n: Node | _Path) -> Node:
        if isinstance(n, _Path):
            raise PlanError(f"{n.path} as a whole cannot be planned")
        return n

    def _unplannable(self, here: str) -> Node:
        raise PlanError(f"`{here.strip()}` cannot be planned")

    def _op(self, operator: str, operands: list[Node], here: str) -> Node:
        if all(isinstance(o, Value) for o in operands):
            return self.evaluate(here)
        if operator == "in" and isinstance(operands[1], Value) and operands[1].value == []:
            return FALSE  # as cel-go folds it, whatever the left side (even an error)
        if operator in ("eq", "ne"):
            looked_up = _lookup_in_known_map(operator, operands)
            if looked_up is not None:
                return looked_up
        for o in operands:
            if isinstance(o, Err):
                return o
        if operator == "list":
            return Op("list", tuple(operands))
        return Op(operator, tuple(operands))

    def _select(self, base: Node | _Path, name: str, here: str) -> Node | _Path:
        if isinstance(base, Var):
            return Var(f"{base.name}.{name}")
        if not isinstance(base, _Path):
            return self._op("index", [base, Value(name)], here) if not isinstance(base, Value) else self.evaluate(here)
        path = f"{base.path}.{name}"
        if base.path == "runtime":
            if name not in ("effectiveDerivedRoles", "effective_derived_roles"):
                return self.evaluate(here)
            roles = self.runtime_roles
            if _is(self.runtime_readable, False):
                return Err("failed to compute effective derived roles")
            if _is(self.runtime_readable, True) and all(isinstance(v, Value) for v in roles.values()):
                held = sorted(n for n, v in roles.items() if _is(v, True))
                runtime = Message("cerbos.engine.v1.Runtime", {"effectiveDerivedRoles": held})
                self.act = Activation(self.act.request, self.act.now, self.act.globals, runtime)
                return Value(held)
            return _Path("runtime.roles")
        if base.path == "variables":
            return self._variable(name)
        if path == "request.resource.attr":
            return _Path(path)
        if base.path == "request.resource.attr":
            return Var(path) if name not in self.known_attrs else self.evaluate(here)
        if path == "request.resource.id":
            return Var(path)
        if path in ("request.resource",):
            return _Path(path)
        return self.evaluate(here)

    def _variable(self, name: str) -> Node:
        found = self.var_cache.get(name)
        if found is None:
            expr = self.env.variables.get(name)
            if expr is None:
                return Err(f"undefined variable {name}")
            self.var_cache[name] = Err(f"variable {name} refers to itself")
            found = self.var_cache[name] = self.expression(expr.text)
        return found

    def _macro(self, name: str, receiver: Any, args: list[Any], text: str, local: frozenset[str], here: str) -> Node:
        var = _plain_ident(args[0])
        assert var is not None
        target = self.value(receiver, text, local)
        if isinstance(target, Err):
            return target
        if isinstance(target, Value):
            return self._unrolled(name, var, target, args[1:], text, local, here)
        inner = local | {var}
        bodies = [self.value(a, text, inner) for a in args[1:]]
        if any(isinstance(b, Err) for b in bodies):
            raise PlanError(f"`{here.strip()}` errs inside its lambda and cannot be planned")
        if len(bodies) == 2:  # map(x, filter, transform)
            raise PlanError(f"`{here.strip()}`: map with a filter cannot be planned")
        operator = "exists_one" if name == "existsOne" else name
        return Op(operator, (target, Op("lambda", (bodies[0], Var(var)))))

    def _macro2(self, name: str, receiver: Any, args: list[Any], text: str, local: frozenset[str], here: str) -> Node:
        """``all(k, v, body)`` and the like: unrolled over a known list or map; else unplannable."""
        first, second = _plain_ident(args[0]), _plain_ident(args[1])
        assert first is not None and second is not None
        target = self.value(receiver, text, local)
        if isinstance(target, Err):
            return target
        if not isinstance(target, Value) or not isinstance(target.value, (list, dict)):
            return self._unplannable(here)
        pairs = list(enumerate(target.value)) if isinstance(target.value, list) else list(target.value.items())
        saved = {n: self.bound.get(n) for n in (first, second)}
        bodies: list[Node] = []
        try:
            for key, element in pairs:
                self.bound[first] = key
                self.bound[second] = element
                bodies.append(self.value(args[2], text, local - {first, second}))
        except CelError:
            return self.evaluate(here)
        finally:
            for n, v in saved.items():
                if v is None:
                    self.bound.pop(n, None)
                else:
                    self.bound[n] = v
        if all(isinstance(b, Value) for b in bodies):
            return self.evaluate(here)
        if name == "exists":
            return or_(*bodies)
        if name == "all":
            return and_(*bodies)
        raise PlanError(f"`{here.strip()}` over a known list with an unknown body cannot be planned")

    def _unrolled(
        self, name: str, var: str, target: Value, args: list[Any], text: str, local: frozenset[str], here: str
    ) -> Node:
        """A macro over a list the request knows, its body reading unknown attributes: one body
        per element (``exists`` an ``or`` of them, ``all`` an ``and``), as Cerbos's planner does."""
        elements = target.value
        if isinstance(elements, dict):
            elements = list(elements)
        if not isinstance(elements, list):
            return self.evaluate(here)
        saved = self.bound.get(var)
        bodies: list[Node] = []
        try:
            for element in elements:
                self.bound[var] = element
                bodies.append(self.value(args[0], text, local - {var}))
        except CelError:
            return self.evaluate(here)
        finally:
            if saved is None:
                self.bound.pop(var, None)
            else:
                self.bound[var] = saved
        if all(isinstance(b, Value) for b in bodies) or len(args) != 1:
            return self.evaluate(here) if len(args) == 1 else self._unplannable(here)
        if name == "exists":
            return or_(*bodies)
        if name == "all":
            return and_(*bodies)
        raise PlanError(f"`{here.strip()}` over a known list with an unknown body cannot be planned")


def _lookup_in_known_map(operator: str, operands: list[Node]) -> Node | None:
    """``m[x] == c`` for a map the request knows and an unknown key: ``x`` among the keys whose value
    is ``c`` (``!=``: the other keys), an error where ``x`` is no key at all, as CEL has it."""
    a, b = operands
    if isinstance(a, Value):
        a, b = b, a
    if not (isinstance(a, Op) and a.operator == "index" and isinstance(b, Value)):
        return None
    table, key = a.operands
    if not isinstance(table, Value) or not isinstance(table.value, dict) or isinstance(key, Value):
        return None
    if isinstance(b.value, (list, dict)):
        return None
    keys = list(table.value)
    equal = [k for k in keys if Value(table.value[k]) == b]
    chosen = equal if operator == "eq" else [k for k in keys if k not in equal]
    among = Op("in", (key, Value(chosen))) if chosen else FALSE
    return Op("if", (Op("in", (key, Value(keys))), among, Err("no such key")))


def _free(node: Node) -> set[str]:
    if isinstance(node, Var):
        return set() if node.name.startswith("request.") else {node.name.split(".")[0]}
    if isinstance(node, Op):
        out: set[str] = set()
        for o in node.operands:
            out |= _free(o)
        if node.operator == "lambda":
            out -= _free(node.operands[1])
        return out
    return set()


def _plain_ident(tree: Any) -> str | None:
    """The name, when a subtree is nothing but an identifier."""
    while isinstance(tree, lark.Tree) and len(tree.children) == 1 and tree.data != "ident":
        tree = tree.children[0]
    if isinstance(tree, lark.Tree) and tree.data == "ident":
        return str(tree.children[0])
    return None


_OPERATORS = {
    "relation_lt": "lt",
    "relation_le": "le",
    "relation_gt": "gt",
    "relation_ge": "ge",
    "relation_eq": "eq",
    "relation_ne": "ne",
    "relation_in": "in",
    "addition_add": "add",
    "addition_sub": "sub",
    "multiplication_mul": "mult",
    "multiplication_div": "div",
    "multiplication_mod": "mod",
}


# ---- where each rule's condition comes from ------------------------------------------------------


@dataclass
class _RoleRuleSource:
    resource: str
    actions: list[str]
    match: Match
    env: PolicyEnv


@dataclass
class Sources:
    """The source of every condition in a policy set, keyed as the compiled rows name them."""

    rules: dict[str, tuple[Match, PolicyEnv, bool]] = field(default_factory=dict)  # src -> (match, env, negated)
    derived: dict[tuple[str, str], tuple[Match, PolicyEnv]] = field(default_factory=dict)
    role_rules: dict[str, list[_RoleRuleSource]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> Sources:
        """The conditions of the policies below ``root``, read from disk now."""
        problems: list[PolicyProblem] = []
        return cls.of([lp.policy for lp in load_policies(root, problems)])

    @classmethod
    def of(cls, loaded: Sequence[Any]) -> Sources:
        """The conditions of policies already read (``PolicySet.policies``: what was compiled)."""
        exported_vars = {p.name: p for p in loaded if isinstance(p, ExportVariables)}
        exported_consts = {p.name: p for p in loaded if isinstance(p, ExportConstants)}

        def env(variables: Definitions, constants: Definitions) -> PolicyEnv:
            vs: dict[str, Expr] = {}
            for name, _ in variables.imports:
                if name in exported_vars:
                    vs.update(exported_vars[name].definitions)
            vs.update(variables.local)
            cs: dict[str, Any] = {}
            for name, _ in constants.imports:
                if name in exported_consts:
                    cs.update(exported_consts[name].definitions)
            cs.update(constants.local)
            return PolicyEnv(vs, cs)

        out = cls()
        for p in loaded:
            if isinstance(p, ResourcePolicy):
                e = env(p.variables, p.constants)
                consent = p.scope_permissions == REQUIRE_PARENTAL_CONSENT
                for i, rule in enumerate(p.rules, start=1):
                    if rule.condition is not None:
                        src = f"{p.key}#{rule.name or f'rule-{i:03d}'}"
                        out.rules[src] = (rule.condition, e, consent and rule.effect == ALLOW)
            elif isinstance(p, PrincipalPolicy):
                e = env(p.variables, p.constants)
                consent = p.scope_permissions == REQUIRE_PARENTAL_CONSENT
                for prule in p.rules:
                    if prule.condition is not None:
                        src = f"{p.key}#{prule.name or f'{prule.resource}_rule-{prule.index:03d}'}"
                        out.rules[src] = (prule.condition, e, consent and prule.effect == ALLOW)
            elif isinstance(p, DerivedRoles):
                e = env(p.variables, p.constants)
                for d in p.definitions:
                    if d.condition is not None:
                        out.derived[(p.key, d.name)] = (d.condition, e)
            elif isinstance(p, RolePolicy):
                e = env(p.variables, p.constants)
                per_resource: dict[str, int] = {}
                for rr in p.rules:
                    index = per_resource.get(rr.resource, 0)
                    per_resource[rr.resource] = index + 1
                    if rr.condition is not None:
                        key = f"{p.key}#{p.role}_rule-{index:03d}"
                        out.role_rules.setdefault(key, []).append(
                            _RoleRuleSource(rr.resource, rr.allow_actions, rr.condition, e)
                        )
        return out


# ---- the walk --------------------------------------------------------------------------------


class _Need(Exception):
    def __init__(self, key: tuple[str, ...]) -> None:
        self.key = key


@dataclass
class PlanRequest:
    principal: Principal
    kind: str
    actions: list[str]
    attr: dict[str, Any] = field(default_factory=dict)  # the resource attributes known already
    policy_version: str = ""
    scope: str = ""
    aux_data: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""


@dataclass
class PlanResult:
    kind: str
    condition: Node | None
    actions: list[str]
    request: PlanRequest
    errors: list[str] = field(default_factory=list)
    # per action, the scope Cerbos reports as matched: the one nearest the root with rules for it
    matched_scopes: dict[str, str] = field(default_factory=dict)
    policy_match: bool = False  # whether any rule applies at all (else Cerbos says NO_MATCH)


class Planner:
    """Plans for one request: the conditions (partially evaluated once each) and the walk."""

    def __init__(
        self, ps: PolicySet, sources: Sources, params: EvalParams, req: PlanRequest, now: datetime | None
    ) -> None:
        self.ps = ps
        self.sources = sources
        self.params = params
        self.req = req
        self.strict = params.strict_evaluation
        p = req.principal
        self.pscope = p.scope or params.default_scope
        self.rscope = req.scope or params.default_scope
        self.rversion = req.policy_version or params.default_policy_version
        resource = Resource(req.kind, "", dict(req.attr), self.rversion, req.scope)
        inp = CheckInput(p, resource, list(req.actions), req.aux_data)
        self.act = Activation(
            request_message(inp, self.rscope, principal_message(p, self.pscope)),
            now or params.now(),
            from_json(params.globals),
        )
        self.atoms: dict[tuple[str, ...], tuple[Node, Node]] = {}
        self.partials: dict[tuple[int, str | None], Partial] = {}
        self.runtimes: dict[str, tuple[dict[str, Node], Node]] = {}

    def plan(self) -> PlanResult:
        p, req = self.req.principal, self.req
        cp = self.cp = check_plan(
            self.ps,
            p.id,
            tuple(p.roles),
            self.pscope,
            p.policy_version or self.params.default_policy_version,
            req.kind,
            self.rscope,
            self.rversion,
            self.params.lenient_scope_search,
        )
        if not cp.has_policies:
            return PlanResult(ALWAYS_DENIED, None, req.actions, req, matched_scopes={})
        plans = {a: cp.action_plan(self.ps, a) for a in req.actions}
        allowed = simplify(and_(*(self._action(plan, a) for a, plan in plans.items())))
        if _size(allowed) > MAX_FILTER_NODES:
            raise PlanError(f"the filter would have more than {MAX_FILTER_NODES:,} terms")
        decided = _decided(allowed)
        if decided is not None:
            allowed = TRUE if decided else FALSE
        kind = ALWAYS_ALLOWED if _is(allowed, True) else ALWAYS_DENIED if _is(allowed, False) else CONDITIONAL
        result = PlanResult(kind, allowed if kind == CONDITIONAL else None, req.actions, req)
        for action, plan in plans.items():
            result.matched_scopes[action] = ""
            for steps in plan.kinds:
                for step in steps:
                    for s in step.scopes:
                        if not s.rows:
                            continue
                        result.policy_match = True
                        if step.kind == "resource" and not s.requires_parental_consent:
                            result.matched_scopes[action] = s.scope
                            if any(_decides_alone(r.row) for r in s.rows):
                                break  # the walk goes no further up
        return result

    def _action(self, plan: ActionPlan, action: str) -> Node:
        """The formula under which the walk of one action ends in ALLOW."""
        pending: list[dict[tuple[str, ...], bool]] = [{}]
        terms: list[Node] = []
        walks = 0
        while pending:
            assumed = pending.pop()
            walks += 1
            if walks > MAX_WALKS:
                raise PlanError(f"the plan for action {action!r} has too many cases")
            try:
                effect = _Walk(self, assumed, action).decide_action(plan)
            except _Need as need:
                pending.append({**assumed, need.key: False})
                pending.append({**assumed, need.key: True})
                continue
            if effect.effect == ALLOW:
                terms.append(and_(*(self.atoms[k][0 if v else 1] for k, v in assumed.items())))
        return or_(*terms)

    def atom(self, key: tuple[str, ...], make: Any) -> tuple[Node, Node]:
        found = self.atoms.get(key)
        if found is None:
            found = self.atoms[key] = make()
        return found

    def row_condition(self, row: Row, action: str) -> tuple[Node, Node]:
        if row.from_role_policy:
            for source in self.sources.role_rules.get(row.evaluation_key, ()):
                if matches(source.resource, row.resource) and any(matches(a, action) for a in source.actions):
                    sat, unsat = self._condition(source.match, source.env, row.scope)
                    return unsat, sat  # the row denies where the role policy's condition fails
            raise PlanError(f"no source for the condition of {row.src}")
        found = self.sources.rules.get(row.src)
        if found is None:
            raise PlanError(f"no source for the condition of {row.src}")
        match, env, negated = found
        sat, unsat = self._condition(match, env, row.scope if row.kind == "resource" else None)
        return (unsat, sat) if negated else (sat, unsat)

    def role_condition(self, dr: CompiledDerivedRole) -> tuple[Node, Node]:
        found = self.sources.derived.get((dr.origin, dr.name))
        if found is None:
            raise PlanError(f"no source for derived role {dr.name}")
        return self._condition(*found)

    def runtime_roles(self, scope: str) -> tuple[dict[str, Node], Node]:
        """The derived roles ``runtime.effectiveDerivedRoles`` may list for rules of a resource
        scope, each with the formula under which it holds (worked out leniently, as the evaluator
        does), and where the list can be read at all: strictly, a derived role that errs makes it
        unreadable. (Strict evaluation with its first error failing is the same as lenient
        evaluation failing when it recorded any error, so both come from the strict formulas.)"""
        found = self.runtimes.get(scope)
        if found is None:
            roles: dict[str, Node] = {}
            readable: list[Node] = []
            for dr in self.cp.derived_roles_in(self.ps, scope):
                if dr.condition is None:
                    roles[dr.name] = TRUE
                    continue
                source = self.sources.derived.get((dr.origin, dr.name))
                if source is None:
                    raise PlanError(f"no source for derived role {dr.name}")
                held, not_held = self._condition(source[0], source[1], None, strict=self.strict)
                if self.strict:
                    readable.append(or_(held, not_held))
                roles[dr.name] = held if isinstance(held, Value) else Held(held, not_held)
            ok = and_(*readable)
            if self.strict and not _is(ok, True):  # where the list is readable, each role's own answer
                roles = {
                    n: v if isinstance(v, Value) else Held(and_(ok, truth(v).true), and_(ok, truth(v).false))
                    for n, v in roles.items()
                }
            found = self.runtimes[scope] = (roles, ok)
        return found

    def _condition(
        self, match: Match, env: PolicyEnv, scope: str | None = None, strict: bool | None = None
    ) -> tuple[Node, Node]:
        key = (id(env), scope)
        partial = self.partials.get(key)
        if partial is None:
            roles = (lambda: self.runtime_roles(scope)) if scope is not None else None
            partial = self.partials[key] = Partial(env, self.act, set(self.req.attr), roles)
        leaves: dict[int, Node] = {}

        def collect(m: Match) -> None:
            if m.op == "expr":
                assert m.expr is not None
                leaves[id(m)] = partial.expression(m.expr.text)
            for c in m.children:
                collect(c)

        collect(match)
        return match_truth(match, leaves, self.strict if strict is None else strict)


def _decides_alone(row: Row) -> bool:
    """A rule that decides whatever the resource: no condition, nor one on its derived role."""
    dr = row.derived_role
    return row.effect in (ALLOW, DENY) and row.condition is None and (dr is None or dr.condition is None)


class _Walk:
    """One walk of an action's plan under assumed outcomes, as ``evaluate._Walk`` decides."""

    def __init__(self, planner: Planner, assumed: dict[tuple[str, ...], bool], action: str) -> None:
        self.planner = planner
        self.assumed = assumed
        self.action = action
        self.known: dict[str, bool] = {}

    def outcome(self, key: tuple[str, ...], formulas: tuple[Node, Node]) -> bool | None:
        """True / False, or None where the condition can only err (a strict failure)."""
        sat, unsat = formulas
        if _is(sat, True):
            return True
        if _is(unsat, True):
            return False
        if _is(sat, False) and _is(unsat, False):
            return None
        if key in self.assumed:
            return self.assumed[key]
        raise _Need(key)

    def decide_action(self, plan: ActionPlan) -> ActionEffect:
        result = ActionEffect(UNDECIDED)
        for steps in plan.kinds:
            result = ActionEffect(UNDECIDED)
            for step in steps:
                role_result = self.decide_role(step)
                if role_result.final:
                    return role_result
                if result.effect == UNDECIDED:
                    result = role_result
                if role_result.effect == ALLOW:
                    result = role_result
                    break
            if result.effect != UNDECIDED:
                break
        if result.effect == UNDECIDED:
            return ActionEffect(DENY, result.policy)
        return result

    def decide_role(self, step: RoleStep) -> ActionEffect:
        for s in step.scopes:
            allowed = None
            for r in s.rows:
                satisfied = self.known.get(r.key)
                if satisfied is None:
                    result = self.satisfied(r.row)
                    if result == "failed":
                        return r.failure
                    ok = result is True
                    if result is not None:
                        self.known[r.key] = ok
                    satisfied = ok
                if satisfied:
                    if r.deny is not None:
                        return r.deny
                    if allowed is None:
                        allowed = r.allow
            if allowed is not None and not s.requires_parental_consent:
                return allowed
        return step.undecided

    def satisfied(self, row: Row) -> bool | str | None:
        planner = self.planner
        dr = row.derived_role
        if dr is not None and dr.condition is not None:
            held = self.outcome(
                ("role", dr.origin, dr.name),
                planner.atom(("role", dr.origin, dr.name), lambda: planner.role_condition(dr)),
            )
            if held is None and planner.strict:
                return "failed"
            if not held:
                self.known[row.evaluation_key] = False
                return None
        if row.condition is None:
            return True
        key = ("row", row.evaluation_key)
        ok = self.outcome(key, planner.atom(key, lambda: planner.row_condition(row, self.action)))
        if ok is None:
            return "failed" if planner.strict else False
        return ok


# ---- Cerbos's request and response shapes ----------------------------------------------------------

_REQUEST_FIELDS = {"requestId", "action", "actions", "principal", "resource", "auxData", "includeMeta"}
_RESOURCE_FIELDS = {"kind", "attr", "policyVersion", "scope"}


def parse_plan_request(body: Any) -> tuple[PlanRequest, bool]:
    """A ``/api/plan/resources`` request body as (PlanRequest, includeMeta); ``RequestError`` names
    what is wrong."""
    from . import api
    from .errors import RequestError

    if not isinstance(body, dict):
        raise RequestError("the request must be a JSON object")
    for key in body:
        if key not in _REQUEST_FIELDS:
            raise RequestError(f'unknown field "{key}" in the request')
    request_id = body.get("requestId") or ""
    if not isinstance(request_id, str):
        raise RequestError("requestId must be a string")
    actions = body.get("actions")
    action = body.get("action")
    if actions is None or actions == []:
        if not isinstance(action, str) or not action:
            raise RequestError("validation error: actions: value is required")
        actions = [action]
    elif action:
        raise RequestError("validation error: only one of action or actions may be given")
    if not isinstance(actions, list) or not all(isinstance(a, str) and a for a in actions):
        raise RequestError("actions must be a list of non-empty strings")
    if len(set(actions)) != len(actions):
        raise RequestError("validation error: actions: repeated value must contain unique items")
    if len(actions) > api.MAX_ACTIONS:
        raise RequestError(f"number of actions ({len(actions)}) exceeds configured limit ({api.MAX_ACTIONS})")
    principal = api.parse_principal(body.get("principal"))
    resource = body.get("resource")
    if not isinstance(resource, dict):
        raise RequestError("validation error: resource: value is required")
    for key in resource:
        if key not in _RESOURCE_FIELDS:
            raise RequestError(f'unknown field "{key}" in resource')
    kind = resource.get("kind")
    if not isinstance(kind, str) or not kind:
        raise RequestError("validation error: resource.kind: value is required")
    attr = resource.get("attr") or {}
    if not isinstance(attr, dict):
        raise RequestError("resource.attr must be a JSON object")
    strings = {k: resource.get(k) or "" for k in ("policyVersion", "scope")}
    if not all(isinstance(v, str) for v in strings.values()):
        raise RequestError("resource.policyVersion and resource.scope must be strings")
    include_meta = body.get("includeMeta")
    if include_meta is not None and type(include_meta) is not bool:
        raise RequestError("includeMeta must be true or false")
    aux = body.get("auxData")
    if aux:
        raise RequestError("invalid auxData")  # as for checks: no JWT key sets in an embedded engine
    req = PlanRequest(
        principal, kind, list(actions), attr, str(strings["policyVersion"]), str(strings["scope"]), {}, request_id
    )
    return req, include_meta is True


def render_node(node: Node) -> dict[str, Any]:
    """A filter node as Cerbos writes an operand."""
    if isinstance(node, Value):
        try:
            return {"value": to_json(node.value)}
        except CelError as exc:
            raise PlanError(f"a value the filter cannot hold: {exc}") from None
    if isinstance(node, Var):
        return {"variable": node.name}
    if isinstance(node, Op):
        return {"expression": {"operator": node.operator, "operands": [render_node(o) for o in node.operands]}}
    if isinstance(node, Held):
        raise PlanError("runtime.effectiveDerivedRoles in this position cannot be planned")
    raise PlanError(f"an erring expression left in the filter: {node.message}")


def filter_debug(result: PlanResult) -> str:
    """``meta.filterDebug`` as Cerbos writes it: ``(operator operand ...)``, values as compact
    JSON, ``NO_MATCH`` where no rule applies at all."""
    if not result.policy_match:
        return "NO_MATCH"
    if result.condition is None:
        return "(true)" if result.kind == ALWAYS_ALLOWED else "(false)"
    return _sexpr(render_node(result.condition))


def _sexpr(operand: dict[str, Any]) -> str:
    if "expression" in operand:
        e = operand["expression"]
        return f"({e['operator']} " + " ".join(_sexpr(o) for o in e["operands"]) + ")"
    if "variable" in operand:
        return str(operand["variable"])
    return json.dumps(operand["value"], ensure_ascii=False, separators=(",", ":"))


_INFIX = {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "in": "in",
    "add": "+",
    "sub": "-",
    "mult": "*",
    "div": "/",
    "mod": "%",
    "and": "&&",
    "or": "||",
}


def _debug(node: Node) -> str:
    if isinstance(node, Value):
        return json.dumps(to_json(node.value), ensure_ascii=False)
    if isinstance(node, Var):
        return node.name
    if isinstance(node, Err):
        return f"error({node.message})"
    if isinstance(node, Held):
        return f"held({_debug(node.sat)})"
    if node.operator in _INFIX:
        return "(" + f" {_INFIX[node.operator]} ".join(_debug(o) for o in node.operands) + ")"
    if node.operator == "not":
        return f"!{_debug(node.operands[0])}"
    if node.operator == "lambda":
        return f"{_debug(node.operands[1])} -> {_debug(node.operands[0])}"
    return f"{node.operator}(" + ", ".join(_debug(o) for o in node.operands) + ")"


def render_plan_response(result: PlanResult, include_meta: bool, call_id: str, single_action: bool) -> dict[str, Any]:
    req = result.request
    body: dict[str, Any] = {"requestId": req.request_id} if req.request_id else {}
    if single_action:
        body["action"] = req.actions[0]
    else:
        body["actions"] = list(req.actions)
    body["resourceKind"] = req.kind
    if req.policy_version:
        body["policyVersion"] = req.policy_version
    filt: dict[str, Any] = {"kind": result.kind}
    if result.condition is not None:
        filt["condition"] = render_node(result.condition)
    body["filter"] = filt
    if include_meta:
        meta: dict[str, Any] = {"filterDebug": filter_debug(result)}
        if single_action:
            if result.matched_scopes.get(req.actions[0]):
                meta["matchedScope"] = result.matched_scopes[req.actions[0]]
        elif result.matched_scopes or result.policy_match:
            meta["matchedScopes"] = {a: result.matched_scopes.get(a, "") for a in req.actions}
        body["meta"] = meta
    body["cerbosCallId"] = call_id
    return body


def plan_resources(
    ps: PolicySet, sources: Sources, params: EvalParams, req: PlanRequest, now: datetime | None = None
) -> PlanResult:
    """Plans one request (raises ``PlanError`` for a condition the filter cannot express)."""
    return Planner(ps, sources, params, req, now).plan()


def sources_of(ps: PolicySet) -> Sources:
    """The conditions of a compiled policy set, from the policies it was compiled from (never read
    again from disk, where a verified bundle's files may since have changed)."""
    if not ps.policies:
        raise PlanError("the policy set holds no policies to plan with (it was not compiled by compile_policy_dir)")
    return Sources.of(ps.policies)
