"""Decision plans: which rules a check of given coordinates walks, worked out once.

Everything except the conditions depends only on a check's coordinates (the principal's id and
roles, the resource kind, both scopes and policy versions, and the action). A ``CheckPlan`` holds,
for one set of coordinates, the scope chains, the policy keys and, per action, an ``ActionPlan``:
the principal's roles in order, each with the rows to evaluate scope by scope. The evaluator
(``evaluate.py``) walks these plans; where a walk needs no condition at all, it decides the action
once, when the plan is made, and later checks only read that answer.

Plans are cached on the ``PolicySet`` (immutable, so safe from any thread); a principal id only
counts towards the cache key when some principal policy names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .compile import PRINCIPAL, RESOURCE, PolicySet, Row
from .names import principal_key, sanitize, scope_value
from .policy import REQUIRE_PARENTAL_CONSENT

if TYPE_CHECKING:
    from .evaluate import ActionEffect

NO_MATCH = "NO_MATCH"
MAX_CACHED_PLANS = 20000
MAX_ACTIONS_PER_PLAN = 512  # beyond this, an action's walk is worked out afresh each time
MAX_STEPS_PER_TABLE = 4096  # role steps kept per coordinates (actions x roles)


@dataclass(slots=True)
class ScopeStep:
    scope: str
    rows: tuple[Row, ...]
    requires_parental_consent: bool


@dataclass(slots=True)
class RoleStep:
    """One role's walk for one action in one policy kind (principal or resource policies)."""

    kind: str
    role: str
    policy_key: str  # reported when no rule decides
    scopes: tuple[ScopeStep, ...]
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
    resource_key: str = NO_MATCH
    parent_roles: tuple[str, ...] = ()  # the roles plus every role-policy ancestor, for derived roles
    actions: dict[str, ActionPlan] = field(default_factory=dict)
    # (action, role) -> RoleStep, per policy kind: shared by every plan with the same coordinates
    principal_steps: dict[tuple[str, str], RoleStep] = field(default_factory=dict)
    resource_steps: dict[tuple[str, str], RoleStep] = field(default_factory=dict)

    def action_plan(self, ps: PolicySet, action: str) -> ActionPlan:
        """The walk for one action (the evaluator settles it before use)."""
        kinds: list[tuple[RoleStep, ...]] = []
        if self.principal_key != NO_MATCH:
            # Principal rules are keyed by principal id, and looked up by the resource's version.
            kinds.append(tuple(self._step(ps, self.principal_steps, PRINCIPAL, action, role, self.pscopes,
                                          self.principal_key, self.principal) for role in self.roles[:1]))
        steps = self.resource_steps
        kinds.append(tuple(steps.get((action, role)) or self._step(ps, steps, RESOURCE, action, role,
                                                                    self.rscopes, self.resource_key, "")
                           for role in self.roles))
        return ActionPlan(tuple(kinds))

    def _step(self, ps: PolicySet, steps: dict[tuple[str, str], RoleStep], kind: str, action: str, role: str,
              scopes: tuple[str, ...], policy_key: str, principal: str) -> RoleStep:
        """A role's walk, shared by every plan with the same role coordinates (so each is settled
        once, however many combinations of roles and ids it appears in)."""
        step = steps.get((action, role))
        if step is None:
            plan = ps.role_plan(kind, self.rversion, scopes, self.kind, action, role, principal, self.rscope)
            step = RoleStep(kind, role, policy_key, tuple(
                ScopeStep(scope, rows, ps.scope_permissions.get(scope) == REQUIRE_PARENTAL_CONSENT)
                for scope, rows in plan))
            if len(steps) < MAX_STEPS_PER_TABLE:
                steps[(action, role)] = step
        return step


def check_plan(ps: PolicySet, principal: str, roles: tuple[str, ...], pscope: str, pversion: str,
               kind: str, rscope: str, rversion: str, lenient: bool) -> CheckPlan:
    """The (cached) plan for these coordinates; scopes and versions already defaulted."""
    if principal not in ps.principal_ids:
        principal = ""  # no principal policy can match: the id does not change the plan
    key = (principal, roles, pscope, pversion, kind, rscope, rversion, lenient)
    plan = ps.plan_cache.get(key)
    if plan is None:
        plan = _remember(ps, key, _new_plan(ps, principal, roles, pscope, pversion, kind, rscope, rversion,
                                            lenient))
    return plan


def settled_action(ps: PolicySet, effect: ActionEffect, visited: tuple[str, ...]) -> ActionPlan:
    """The one shared plan for an action decided without conditions: many coordinates settle to
    the same answer, and fewer long-lived objects keep the garbage collector's full passes short."""
    key = ("settled", effect, visited)
    plan = ps.plan_cache.get(key)
    if plan is None:
        plan = _remember(ps, key, ActionPlan((), effect, visited))
    return plan


def _remember(ps: PolicySet, key: tuple, value: Any) -> Any:
    cache = ps.plan_cache
    if len(cache) >= MAX_CACHED_PLANS:
        cache.clear()  # an unusual spread of coordinates: start again rather than grow
    cache[key] = value
    return value


def _new_plan(ps: PolicySet, principal: str, roles: tuple[str, ...], pscope: str, pversion: str,
              kind: str, rscope: str, rversion: str, lenient: bool) -> CheckPlan:
    pscope, rscope = scope_value(pscope), scope_value(rscope)
    plan = CheckPlan(sanitize(kind), pscope, rscope, rversion, roles, principal, has_policies=False)
    plan.pscopes = ps.scopes_for(PRINCIPAL, pscope, lenient)
    plan.rscopes = ps.scopes_for(RESOURCE, rscope, lenient)
    if not plan.pscopes and not plan.rscopes:
        return plan
    principal_exists = ps.principal_exists(principal, pversion, plan.pscopes)
    resource_exists = ps.resource_exists(plan.kind, rversion, plan.rscopes)
    if not principal_exists and not resource_exists:
        return plan
    plan.has_policies = True
    if principal_exists:
        plan.principal_key = principal_key(principal, pversion, plan.pscopes[0])
    if resource_exists:
        plan.resource_key = ps.resource_policy_key(kind, rversion, plan.rscopes[0] if plan.rscopes else "")
    plan.parent_roles = ps.parent_roles(rscope, roles)
    plan.principal_steps = _steps_table(ps, (PRINCIPAL, plan.rversion, plan.pscopes, plan.kind, plan.principal,
                                             plan.rscope, plan.principal_key))
    plan.resource_steps = _steps_table(ps, (RESOURCE, plan.rversion, plan.rscopes, plan.kind, plan.rscope,
                                            plan.resource_key))
    return plan


def _steps_table(ps: PolicySet, coordinates: tuple) -> dict[tuple[str, str], RoleStep]:
    """The role steps of every plan with these coordinates, by action and role."""
    key = ("steps", coordinates)
    table = ps.plan_cache.get(key)
    if table is None:
        table = _remember(ps, key, {})
    return table
