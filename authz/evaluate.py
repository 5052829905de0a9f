"""Deciding one check: a principal, a resource and its actions against a ``PolicySet``, with
Cerbos 0.55's semantics.

For each action, principal policies decide first, then resource policies. Within a policy kind,
each of the principal's roles is tried in turn: the scope chain is walked from the most specific
scope up, and in a scope every matching rule is evaluated in order; a satisfied DENY ends the walk
for that role, a satisfied ALLOW ends it unless the scope requires parental consent. An ALLOW from
any one role decides the action; otherwise the first role's result stands. No match is DENY.

With strict evaluation (our default) a condition that errors denies the action for that role,
like a satisfied DENY; without it the erroring expression just counts as false.

The walk follows the plans of ``plan.py``. ``_Settling`` walks a plan once, with no request, and
records the answer wherever no condition or output is met; ``_Decision`` walks what is left for
a real request, building the CEL activation only then, evaluating each derived role once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .cel.compiler import Activation
from .cel.runtime import EMPTY_RUNTIME
from .cel.values import CelError, Message, from_json
from .compile import RESOURCE, CompiledDerivedRole, PolicySet, Row
from .conditions import ConditionError, EvaluationError, output_value
from .plan import (
    MAX_ACTIONS_PER_PLAN,
    UNDECIDED,
    ActionPlan,
    CheckPlan,
    RoleStep,
    check_plan,
    settled_action,
)
from .plan import ActionEffect as ActionEffect  # re-exported: authz and authz.engine import it from here
from .policy import ALLOW, DENY


@dataclass
class EvalParams:
    """Engine settings, as Cerbos's ``engine`` configuration names them."""

    strict_evaluation: bool = True
    default_policy_version: str = "default"
    default_scope: str = ""
    lenient_scope_search: bool = False
    globals: dict[str, Any] = field(default_factory=dict)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    schema_enforcement: str = "none"  # none | warn | reject


# Roles and actions are typed as the sequences they are read as: a caller may pass tuples (the
# compiled build, see native.py, checks concrete types strictly; attributes must be dicts).
# Their __init__ is written out (init=False): the compiled build compiles it, where the one the
# dataclass decorator generates runs as Python (about twelve per request line; 230 ns -> 130 ns
# called from Python, less from compiled code).
@dataclass(slots=True, init=False)
class Principal:
    id: str
    roles: Sequence[str]
    attr: dict[str, Any]
    policy_version: str
    scope: str

    def __init__(
        self,
        id: str,
        roles: Sequence[str],
        attr: dict[str, Any] | None = None,
        policy_version: str = "",
        scope: str = "",
    ) -> None:
        self.id = id
        self.roles = roles
        self.attr = {} if attr is None else attr
        self.policy_version = policy_version
        self.scope = scope


@dataclass(slots=True, init=False)
class Resource:
    kind: str
    id: str
    attr: dict[str, Any]
    policy_version: str
    scope: str

    def __init__(
        self, kind: str, id: str, attr: dict[str, Any] | None = None, policy_version: str = "", scope: str = ""
    ) -> None:
        self.kind = kind
        self.id = id
        self.attr = {} if attr is None else attr
        self.policy_version = policy_version
        self.scope = scope


@dataclass(slots=True, init=False)
class CheckInput:
    principal: Principal
    resource: Resource
    actions: Sequence[str]
    aux_data: dict[str, Any]
    request_id: str

    def __init__(
        self,
        principal: Principal,
        resource: Resource,
        actions: Sequence[str],
        aux_data: dict[str, Any] | None = None,
        request_id: str = "",
    ) -> None:
        self.principal = principal
        self.resource = resource
        self.actions = actions
        self.aux_data = {} if aux_data is None else aux_data
        self.request_id = request_id


@dataclass(slots=True, init=False)
class OutputEntry:
    src: str
    val: Any
    action: str
    error: str | None

    def __init__(self, src: str, val: Any, action: str, error: str | None = None) -> None:
        self.src = src
        self.val = val
        self.action = action
        self.error = error


@dataclass(slots=True, init=False)
class CheckOutput:
    """The decision for one resource: an effect per action, outputs, and why."""

    request_id: str
    resource_id: str
    actions: dict[str, ActionEffect]
    outputs: Sequence[OutputEntry]
    effective_derived_roles: Sequence[str]
    validation_errors: Sequence[dict[str, str]]
    evaluation_errors: Sequence[EvaluationError]

    def __init__(
        self,
        request_id: str,
        resource_id: str,
        actions: dict[str, ActionEffect],
        outputs: Sequence[OutputEntry] = (),
        effective_derived_roles: Sequence[str] = (),
        validation_errors: Sequence[dict[str, str]] = (),
        evaluation_errors: Sequence[EvaluationError] = (),
    ) -> None:
        # Read-only sequences, empty by default (a shared empty tuple: a check that has none of
        # them, the usual case, allocates nothing for them).
        self.request_id = request_id
        self.resource_id = resource_id
        self.actions = actions
        self.outputs = outputs
        self.effective_derived_roles = effective_derived_roles
        self.validation_errors = validation_errors
        self.evaluation_errors = evaluation_errors


def request_message(inp: CheckInput, rscope: str, principal: Message, raw_attrs: bool = False) -> Message:
    """The ``request`` CEL sees (``principal`` from ``principal_message``, shared by the checks of
    one request). ``raw_attrs``: the policies read attributes only by name, converting as they
    read (``PolicySet.raw_attrs``)."""
    r = inp.resource
    resource = Message(
        "cerbos.engine.v1.Request.Resource",
        {
            "kind": r.kind,
            "id": r.id,
            "attr": r.attr if raw_attrs else from_json(r.attr),
            "policyVersion": r.policy_version,
            "scope": rscope,
        },
    )
    jwt = inp.aux_data.get("jwt")
    jwts = inp.aux_data.get("jwts")  # named tokens' claims: only test fixtures give them
    aux = (
        _NO_AUX_DATA
        if not jwt and not jwts
        else Message("cerbos.engine.v1.AuxData", {"jwt": from_json(jwt or {}), "jwts": from_json(jwts or {})})
    )
    return Message("cerbos.engine.v1.Request", {"principal": principal, "resource": resource, "auxData": aux})


def principal_message(p: Principal, pscope: str, raw_attrs: bool = False) -> Message:
    return Message(
        "cerbos.engine.v1.Request.Principal",
        {
            "id": p.id,
            "roles": list(p.roles),
            "attr": p.attr if raw_attrs else from_json(p.attr),
            "policyVersion": p.policy_version,
            "scope": pscope,
        },
    )


class _Dynamic(Exception):
    """Raised while settling a plan: this walk needs a condition or an output evaluated."""


class _Walk:
    """Cerbos's walk over a plan. Subclasses say how a row's condition is decided and what
    happens to outputs and to the scopes passed through."""

    __slots__ = ()

    condition_cache: dict[str, bool]  # evaluation key -> whether that condition held, this check

    def satisfied(self, row: Row) -> bool | None:
        """Whether a row's condition (and its derived role's) holds; None when the rule is skipped."""
        raise NotImplementedError

    def emit(self, row: Row, output: Callable[[Activation], Any], action: str) -> None:
        """A satisfied (or unsatisfied) rule's output expression is to be reported for ``action``."""
        raise NotImplementedError

    def enter(self, scope: str) -> None:
        """A resource scope is walked: its derived roles apply to its rules."""
        raise NotImplementedError

    def visit(self, scopes: tuple[str, ...]) -> None:
        """A settled walk passed through these resource scopes."""
        raise NotImplementedError

    def decide_action(self, action: str, plan: ActionPlan) -> ActionEffect:
        if plan.settled is not None:
            self.visit(plan.visited)
            return plan.settled
        result = _NO_DECISION
        for steps in plan.kinds:
            result = _NO_DECISION
            for step in steps:
                role_result = self.decide_role(action, step)
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
            return ActionEffect(DENY, result.policy, result.scope, result.rule)
        return result

    def decide_role(self, action: str, step: RoleStep) -> ActionEffect:
        if step.settled is not None:
            self.visit(step.visited)
            return step.settled
        known = self.condition_cache
        resource = step.kind == RESOURCE
        for s in step.scopes:
            if resource:
                self.enter(s.scope)
            allowed = None
            for r in s.rows:
                satisfied = known.get(r.key)
                if satisfied is None:
                    try:
                        satisfied = self.satisfied(r.row)
                    except ConditionError:
                        return r.failure
                if satisfied:
                    if r.on_activated is not None:
                        self.emit(r.row, r.on_activated, action)
                    if r.deny is not None:
                        return r.deny
                    if allowed is None:
                        allowed = r.allow
                elif satisfied is False and r.on_not_met is not None:
                    self.emit(r.row, r.on_not_met, action)
            if allowed is not None and not s.requires_parental_consent:
                return allowed
        return step.undecided


class _Settling(_Walk):
    """Walks a plan without a request: succeeds only where no condition or output is needed."""

    def __init__(self) -> None:
        self.visited: list[str] = []
        self.condition_cache = {}

    def satisfied(self, row: Row) -> bool | None:
        dr = row.derived_role
        if row.condition is not None or (dr is not None and dr.condition is not None):
            raise _Dynamic
        return True

    def emit(self, row: Row, output: Callable[[Activation], Any], action: str) -> None:
        raise _Dynamic

    def enter(self, scope: str) -> None:
        self.visited.append(scope)

    def visit(self, scopes: tuple[str, ...]) -> None:
        self.visited.extend(scopes)


class _SettlingAction(_Settling):
    """Settles an action from its settled role steps (each was tried on its own already)."""

    def decide_role(self, action: str, step: RoleStep) -> ActionEffect:
        if step.settled is None:
            raise _Dynamic
        self.visit(step.visited)
        return step.settled


def _settle(ps: PolicySet, action: str, plan: ActionPlan) -> ActionPlan:
    """Decides, once, every role step and the whole action where no condition is involved (a
    settled action is a shared plan holding just its answer)."""
    for steps in plan.kinds:
        for step in steps:
            if step.tried:
                continue
            step.tried = True
            walk = _Settling()
            try:
                settled = walk.decide_role(action, step)
            except _Dynamic:
                continue
            step.visited = tuple(walk.visited)
            step.settled = settled  # last: another thread may read it as soon as it is set
    first = plan.kinds[0]
    if first and first[0].settled is None:
        return plan  # the walk starts with a condition
    walk = _SettlingAction()
    try:
        settled = walk.decide_action(action, plan)
    except _Dynamic:
        return plan
    return settled_action(ps, settled, tuple(walk.visited))


class _Decision(_Walk):
    """The state of deciding one CheckInput."""

    __slots__ = (
        "ps",
        "inp",
        "params",
        "now",
        "strict",
        "plan",
        "shared",
        "act",
        "errors",
        "outputs",
        "condition_cache",
        "role_conditions",
        "runtimes",
        "output_values",
        "derived_roles",
        "visited",
        "runtime_scope",
        "role_var_cache",
    )

    def __init__(
        self,
        ps: PolicySet,
        inp: CheckInput,
        plan: CheckPlan,
        params: EvalParams,
        now: datetime | None,
        shared: dict[Any, Any] | None,
        with_derived_roles: bool,
    ) -> None:
        self.ps = ps
        self.inp = inp
        self.params = params
        self.now = now  # the request's clock; read only when a condition may need it
        self.strict = params.strict_evaluation
        self.plan = plan
        self.shared = {} if shared is None else shared
        self.act: Activation | None = None  # set, with what evaluating needs, by activation()
        # Resource scopes walked, in order, when their derived roles are to be reported.
        self.visited: dict[str, None] | None = {} if with_derived_roles else None
        self.runtime_scope: str | None = None  # whose derived roles the next condition sees

    def activation(self) -> Activation:
        """The CEL activation, built only when a walk needs conditions or outputs evaluated."""
        act = self.act
        if act is None:
            plan, shared = self.plan, self.shared
            key = id(self.inp.principal)
            principal = shared.get(key)
            if principal is None:
                principal = shared[key] = principal_message(self.inp.principal, plan.pscope, "P" in self.ps.raw_attrs)
            globals_ = shared.get("globals")
            if globals_ is None:
                globals_ = shared["globals"] = from_json(self.params.globals)
            act = self.act = Activation(
                request_message(self.inp, plan.rscope, principal, "R" in self.ps.raw_attrs),
                self.now or self.params.now(),
                globals_,
            )
            act.runtime_source = self.current_runtime
            self.errors: list[EvaluationError] = []
            self.outputs: list[OutputEntry] = []
            self.condition_cache: dict[str, bool] = {}
            self.role_conditions: dict[Any, tuple[bool, list[EvaluationError]]] = {}
            self.runtimes: dict[str, Message] = {}
            self.output_values: dict[tuple[Any, str | None], tuple[Any, str | None]] = {}
            self.derived_roles: dict[str, set[str]] = {}  # resource scope -> its effective derived roles
            self.role_var_cache: dict[int, Any] = {}  # policy variables as ``runtime`` computations see them
        return act

    def current_runtime(self) -> Message:
        """``runtime`` as the rules being evaluated see it: the derived roles of the resource scope
        walked last (principal rules see whatever resource scope was walked before them)."""
        scope = self.runtime_scope
        return EMPTY_RUNTIME if scope is None else self.runtime(scope)

    def decide(self) -> CheckOutput:
        inp = self.inp
        plan = self.plan
        actions: dict[str, ActionEffect] = {}
        plans = plan.actions
        for action in inp.actions:
            action_plan = plans.get(action)
            if action_plan is None:
                action_plan = _settle(self.ps, action, plan.action_plan(self.ps, action))
                if len(plans) < MAX_ACTIONS_PER_PLAN:  # a client inventing action names must not grow it
                    plans[action] = action_plan
            settled = action_plan.settled
            if settled is not None:
                if action_plan.visited:
                    self.visit(action_plan.visited)
                actions[action] = settled
            else:
                if self.act is None:
                    self.activation()
                actions[action] = self.decide_action(action, action_plan)
        out = CheckOutput(inp.request_id, inp.resource.id, actions)
        if self.act is not None:
            out.outputs = self.outputs
            out.evaluation_errors = self.errors
        if self.visited:
            self.activation()
            roles: set[str] = set()
            for scope in self.visited:
                self.runtime(scope)
                roles |= self.derived_roles[scope]
            out.effective_derived_roles = sorted(roles)
            out.evaluation_errors = self.errors
        if self.act is not None:
            self.act.runtime_source = None  # no cycle left: the check's objects go when it returns
        return out

    def enter(self, scope: str) -> None:
        if self.visited is not None:
            self.visited[scope] = None
        self.runtime_scope = scope

    def visit(self, scopes: tuple[str, ...]) -> None:
        if scopes:
            if self.visited is not None:
                self.visited.update(dict.fromkeys(scopes))
            self.runtime_scope = scopes[-1]

    def satisfied(self, row: Row) -> bool | None:
        """Evaluates (once per check) a row not yet in ``condition_cache``."""
        dr = row.derived_role
        if dr is not None and dr.condition is not None and not self.derived_role_holds(dr):
            self.condition_cache[row.evaluation_key] = False
            return None
        if row.condition is None:
            ok = True
        else:
            ok = row.condition(self.act, self.strict, self.errors)  # type: ignore[arg-type]  # set above
        self.condition_cache[row.evaluation_key] = ok
        return ok

    def derived_role_holds(self, dr: CompiledDerivedRole) -> bool:
        """Whether a rule's derived role applies; in strict mode its first error fails the rule."""
        held, errors = self.role_outcome(dr)
        if errors:
            if self.strict:
                self.errors.append(errors[0])
                raise ConditionError(errors[0].message)
            self.errors.extend(errors)
        return held

    def role_outcome(self, dr: CompiledDerivedRole) -> tuple[bool, list[EvaluationError]]:
        """A derived role's condition, evaluated once per check however many rules name the role
        and whether a rule or ``runtime`` asks. It is evaluated leniently (an erring expression
        counts as false): strict evaluation would stop at the first of the same errors."""
        key = (dr, self.runtime_scope) if dr.reads_runtime else dr  # runtime differs by scope
        found = self.role_conditions.get(key)
        if found is None:
            errors: list[EvaluationError] = []
            held = dr.condition(self.act, False, errors)  # type: ignore[misc,arg-type]  # set by the caller
            found = self.role_conditions[key] = (held, errors)
        return found

    def emit(self, row: Row, output: Callable[[Activation], Any], action: str) -> None:
        # A rule matching several roles or actions emits its output for each: its value is
        # worked out once per check (per runtime scope, which the expression may read).
        key = (output, self.runtime_scope)
        found = self.output_values.get(key)
        if found is None:
            found = self.output_values[key] = output_value(output, self.act)  # type: ignore[arg-type]
        val, error = found
        if error is not None:
            self.errors.append(EvaluationError(f"output of {row.src}", error))
        self.outputs.append(OutputEntry(row.src, val, action, error))

    def runtime(self, scope: str) -> Message:
        """``runtime`` for the rules of one resource scope: which of the derived roles that scope's
        policy uses apply (worked out once per scope and check)."""
        found = self.runtimes.get(scope)
        if found is not None:
            return found
        act = self.activation()
        self.runtimes[scope] = EMPTY_RUNTIME  # a derived role reading ``runtime`` sees none
        effective: set[str] = set()
        failed: list[str] = []
        # Cerbos evaluates the variables of derived roles worked out here apart from (and cached
        # apart from) those a rule's derived role reads later, which see this scope's runtime.
        rule_vars = act.var_cache
        act.var_cache = self.role_var_cache
        try:
            for dr in self.plan.derived_roles_in(self.ps, scope):
                errors: list[EvaluationError]
                if dr.condition is None:
                    ok, errors = True, []
                elif dr.reads_runtime:  # it sees no runtime here, so its outcome is not shared
                    errors = []
                    ok = dr.condition(act, False, errors)
                else:
                    ok, errors = self.role_outcome(dr)
                if errors:
                    failed.append(dr.name)
                if ok:
                    effective.add(dr.name)
        finally:
            act.var_cache = rule_vars
        self.derived_roles[scope] = effective
        fields: dict[str, Any] = {"effectiveDerivedRoles": sorted(effective)}
        if failed and self.strict:
            # A derived role could not be decided, so the list is not known: reading it is an error.
            fields = _UnknownFields(fields, f"failed to compute effective derived roles [{', '.join(sorted(failed))}]")
        self.runtimes[scope] = found = Message("cerbos.engine.v1.Runtime", fields)
        return found


_NO_DECISION = ActionEffect(UNDECIDED)
_DENIED = ActionEffect(DENY)
_NO_AUX_DATA = Message("cerbos.engine.v1.AuxData", {"jwt": {}, "jwts": {}})


class _UnknownFields(dict[str, Any]):
    """Message fields whose every read is a CEL error (used for an undecidable runtime)."""

    def __init__(self, fields: dict[str, Any], message: str) -> None:
        super().__init__(fields)
        self.message = message

    def __getitem__(self, key: str) -> Any:
        raise CelError(self.message)


def check(
    ps: PolicySet,
    inp: CheckInput,
    params: EvalParams,
    now: datetime | None = None,
    shared: dict[Any, Any] | None = None,
    with_derived_roles: bool = True,
) -> CheckOutput:
    """Decides one CheckInput. Never raises for anything the request or the policies contain.

    The checks of one request may pass the same ``shared`` dict (empty at first): the principal's
    attributes and the globals are then converted for CEL once per request, not once per resource.
    Without ``now``, the clock is read once, if and when a condition or output is evaluated.
    ``with_derived_roles=False`` skips working out derived roles no rule needed (they are only
    reported in ``meta``)."""
    p, r = inp.principal, inp.resource
    plan = check_plan(
        ps,
        p.id,
        tuple(p.roles),
        p.scope or params.default_scope,
        p.policy_version or params.default_policy_version,
        r.kind,
        r.scope or params.default_scope,
        r.policy_version or params.default_policy_version,
        params.lenient_scope_search,
    )
    if not plan.has_policies:
        return CheckOutput(inp.request_id, r.id, dict.fromkeys(inp.actions, _DENIED))
    return _Decision(ps, inp, plan, params, now, shared, with_derived_roles).decide()
