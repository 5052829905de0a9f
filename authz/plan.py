"""Decision plans: which rules a check of given coordinates walks, worked out once.

Everything except the conditions depends only on a check's coordinates (the principal's id and
roles, the resource kind, both scopes and policy versions, and the action). A ``CheckPlan`` holds,
for one set of coordinates, the scope chains, the policy keys and, per action, an ``ActionPlan``:
the principal's roles in order, each with the rows to evaluate scope by scope, and each row with
the answers (``ActionEffect``) it can give already made. The evaluator (``evaluate.py``) walks
these plans; where a walk needs no condition at all, it decides the action once, when the plan is
made, and later checks only read that answer.

Plans are cached on the ``PolicySet`` (immutable, so safe from any thread); a principal id only
counts towards the cache key when some principal policy names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from .compile import PRINCIPAL, RESOURCE, CompiledDerivedRole, PolicySet, Row
from .names import principal_key, sanitize, scope_value
from .policy import ALLOW, DENY, REQUIRE_PARENTAL_CONSENT

NO_MATCH = "NO_MATCH"
UNDECIDED = "EFFECT_NO_MATCH"
MAX_CACHED_PLANS = 20000
MAX_ACTIONS_PER_PLAN = 512  # beyond this, an action's walk is worked out afresh each time
MAX_STEPS_PER_TABLE = 4096  # role steps kept per coordinates (actions x roles)

_Cached = TypeVar("_Cached")


class ActionEffect(NamedTuple):
    """One action's decision. Immutable, as decisions are shared between checks (a tuple: a
    frozen dataclass took a seventh of a check just to be built)."""

    effect: str
    policy: str = NO_MATCH
    scope: str = ""
    rule: str = ""  # the rule that decided (policy key # rule name), for the audit trail
    # Strict evaluation met an error: this DENY stands whatever other roles or policies say.
    final: bool = False


@dataclass(slots=True, eq=False)
class RowStep:
    """A row as one role's walk meets it in one scope, with each answer it can give made once."""

    row: Row
    key: str  # the row's evaluation key: its condition is evaluated once per check
    on_activated: Callable[..., Any] | None  # output expressions, when the rule has them
    on_not_met: Callable[..., Any] | None
    deny: ActionEffect | None  # the answer when satisfied, for a DENY rule
    allow: ActionEffect | None  # the answer when satisfied, for an ALLOW rule (if first in its scope)
    failure: ActionEffect  # the answer when its condition fails under strict evaluation


@dataclass(slots=True)
class ScopeStep:
    scope: str
    rows: tuple[RowStep, ...]
    requires_parental_consent: bool


@dataclass(slots=True)
class RoleStep:
    """One role's walk for one action in one policy kind (principal or resource policies)."""

    kind: str
    role: str
    policy_key: str  # reported when no rule decides
    scopes: tuple[ScopeStep, ...]
    undecided: ActionEffect  # the answer when no rule decides
    # Filled by the evaluator when the walk needs no condition: its result, and the resource
    # scopes it passes through (their derived roles are still reported).
    settled: ActionEffect | None = None
    visited: tuple[str, ...] = ()
    tried: bool = False  # whether settling has been attempted


@dataclass(slots=True)
class ActionPlan:
    """One action: the role steps of principal policies, then those of resource policies."""

    kinds: tuple[tuple[RoleStep, ...], ...]
    settled: ActionEffect | None = None
    visited: tuple[str, ...] = ()


@dataclass(slots=True)
class CheckPlan:
    """Everything about a check's coordinates that does not depend on attributes."""

    kind: str  # the sanitised resource kind, as rules are indexed
    pscope: str
    rscope: str
    rversion: str
    roles: tuple[str, ...]
    principal: str
    has_policies: bool
    pscopes: tuple[str, ...] = ()
    rscopes: tuple[str, ...] = ()
    principal_key: str = NO_MATCH
    principal_rules: bool = False  # whether this principal has rules for the resource's version
    resource_key: str = NO_MATCH
    parent_roles: tuple[str, ...] = ()  # the roles plus every role-policy ancestor, for derived roles
    actions: dict[str, ActionPlan] = field(default_factory=dict)
    # resource scope -> the derived roles of its policy whose parent roles the principal has
    derived_roles: dict[str, tuple[CompiledDerivedRole, ...]] = field(default_factory=dict)
    # (action, role) -> RoleStep, per policy kind: shared by every plan with the same coordinates
    principal_steps: dict[tuple[str, str], RoleStep] = field(default_factory=dict)
    resource_steps: dict[tuple[str, str], RoleStep] = field(default_factory=dict)

    def derived_roles_in(self, ps: PolicySet, scope: str) -> tuple[CompiledDerivedRole, ...]:
        """The derived roles a resource scope's policy uses that may apply to these roles (whether
        they do is up to their conditions)."""
        found = self.derived_roles.get(scope)
        if found is None:
            # Cerbos compares parent roles literally here ("*" aside), unlike when matching rules.
            found = self.derived_roles[scope] = tuple(
                dr
                for dr in ps.derived_roles.get((self.kind, self.rversion, scope), ())
                if any(p == "*" or p in self.parent_roles for p in dr.parent_roles)
            )
        return found

    def action_plan(self, ps: PolicySet, action: str) -> ActionPlan:
        """The walk for one action (the evaluator settles it before use)."""
        kinds: list[tuple[RoleStep, ...]] = []
        if self.principal_rules:
            # Principal rules are keyed by principal id, and looked up by the resource's version.
            kinds.append(
                tuple(
                    self._step(
                        ps,
                        self.principal_steps,
                        PRINCIPAL,
                        action,
                        role,
                        self.pscopes,
                        self.principal_key,
                        self.principal,
                    )
                    for role in self.roles[:1]
                )
            )
        steps = self.resource_steps
        kinds.append(
            tuple(
                steps.get((action, role))
                or self._step(ps, steps, RESOURCE, action, role, self.rscopes, self.resource_key, "")
                for role in self.roles
            )
        )
        return ActionPlan(tuple(kinds))

    def _step(
        self,
        ps: PolicySet,
        steps: dict[tuple[str, str], RoleStep],
        kind: str,
        action: str,
        role: str,
        scopes: tuple[str, ...],
        policy_key: str,
        principal: str,
    ) -> RoleStep:
        """A role's walk, shared by every plan with the same role coordinates (so each is settled
        once, however many combinations of roles and ids it appears in)."""
        step = steps.get((action, role))
        if step is None:
            plan = ps.role_plan(kind, self.rversion, scopes, self.kind, action, role, principal, self.rscope)
            step = RoleStep(
                kind,
                role,
                policy_key,
                tuple(
                    ScopeStep(
                        scope,
                        tuple(_row_step(row, scope, policy_key) for row in rows),
                        ps.scope_permissions.get(scope) == REQUIRE_PARENTAL_CONSENT,
                    )
                    for scope, rows in plan
                ),
                ActionEffect(UNDECIDED, policy_key),
            )
            if len(steps) < MAX_STEPS_PER_TABLE:
                steps[(action, role)] = step
        return step


def _row_step(row: Row, scope: str, policy_key: str) -> RowStep:
    output = row.output
    if row.effect == DENY:
        # A role policy's denial names the role policy; a rule's, the policy the walk is in.
        deny = ActionEffect(DENY, row.policy_key if row.from_role_policy else policy_key, scope, row.src)
        allow = None
    elif row.effect == ALLOW:
        deny, allow = None, ActionEffect(ALLOW, policy_key, scope, row.src)
    else:  # a role policy's unconditional allow: it only reports its output
        deny = allow = None
    activated = output.rule_activated if output is not None else None
    not_met = output.condition_not_met if output is not None else None
    return RowStep(
        row,
        row.evaluation_key,
        activated,
        not_met,
        deny,
        allow,
        ActionEffect(DENY, row.policy_key, scope, row.src, final=True),
    )


def check_plan(
    ps: PolicySet,
    principal: str,
    roles: tuple[str, ...],
    pscope: str,
    pversion: str,
    kind: str,
    rscope: str,
    rversion: str,
    lenient: bool,
) -> CheckPlan:
    """The (cached) plan for these coordinates; scopes and versions already defaulted."""
    if principal not in ps.principal_ids:
        principal = ""  # no principal policy can match: the id does not change the plan
    key = (principal, roles, pscope, pversion, kind, rscope, rversion, lenient)
    plan: CheckPlan | None = ps.plan_cache.get(key)
    if plan is None:
        plan = _remember(ps, key, _new_plan(ps, principal, roles, pscope, pversion, kind, rscope, rversion, lenient))
    return plan


def settled_action(ps: PolicySet, effect: ActionEffect, visited: tuple[str, ...]) -> ActionPlan:
    """The one shared plan for an action decided without conditions: many coordinates settle to
    the same answer, and fewer long-lived objects keep the garbage collector's full passes short."""
    key = ("settled", effect, visited)
    plan: ActionPlan | None = ps.plan_cache.get(key)
    if plan is None:
        plan = _remember(ps, key, ActionPlan((), effect, visited))
    return plan


def _remember(ps: PolicySet, key: tuple[object, ...], value: _Cached) -> _Cached:
    cache = ps.plan_cache
    if len(cache) >= MAX_CACHED_PLANS:
        cache.clear()  # an unusual spread of coordinates: start again rather than grow
    cache[key] = value
    return value


def _new_plan(
    ps: PolicySet,
    principal: str,
    roles: tuple[str, ...],
    pscope: str,
    pversion: str,
    kind: str,
    rscope: str,
    rversion: str,
    lenient: bool,
) -> CheckPlan:
    pscope, rscope = scope_value(pscope), scope_value(rscope)
    plan = CheckPlan(sanitize(kind), pscope, rscope, rversion, roles, principal, has_policies=False)
    plan.pscopes = ps.scopes_for(PRINCIPAL, pscope, lenient)
    plan.rscopes = ps.scopes_for(RESOURCE, rscope, lenient)
    if not plan.pscopes and not plan.rscopes:
        return plan
    # As in Cerbos 0.55: a principal policy of the principal's version in these scopes (anyone's)
    # names the principal policy; the principal's own rules are those of the resource's version.
    principal_exists = _principal_policy_in(ps, pversion, plan.pscopes)
    plan.principal_rules = ps.principal_exists(principal, rversion, plan.pscopes)
    resource_exists = ps.resource_exists(plan.kind, rversion, plan.rscopes)
    if not resource_exists and not (principal_exists and plan.principal_rules):
        # No rule can decide: a principal policy of someone else (or of another version) names
        # only a policy no walk reaches, so the check is the same as one with no policy at all
        # and is answered without building a decision (a third of the clinic workload's checks).
        return plan
    plan.has_policies = True
    if principal_exists:
        plan.principal_key = principal_key(principal, pversion, plan.pscopes[0])
    if resource_exists:
        plan.resource_key = ps.resource_policy_key(kind, rversion, plan.rscopes[0] if plan.rscopes else "")
    plan.parent_roles = ps.parent_roles(rscope, roles)
    plan.principal_steps = _steps_table(
        ps, (PRINCIPAL, plan.rversion, plan.pscopes, plan.kind, plan.principal, plan.rscope, plan.principal_key)
    )
    plan.resource_steps = _steps_table(
        ps, (RESOURCE, plan.rversion, plan.rscopes, plan.kind, plan.rscope, plan.resource_key)
    )
    return plan


def _principal_policy_in(ps: PolicySet, version: str, scopes: tuple[str, ...]) -> bool:
    """Whether some principal policy of this version is in one of these scopes."""
    return any(ps.rows.get((PRINCIPAL, version, s)) for s in scopes) or any(
        kind == PRINCIPAL and v == version and s in scopes for kind, v, s, _ in ps.empty_policies
    )


def _steps_table(ps: PolicySet, coordinates: tuple[object, ...]) -> dict[tuple[str, str], RoleStep]:
    """The role steps of every plan with these coordinates, by action and role."""
    key = ("steps", coordinates)
    table: dict[tuple[str, str], RoleStep] | None = ps.plan_cache.get(key)
    if table is None:
        table = _remember(ps, key, {})
    return table
