"""Deciding one check: a principal, a resource and its actions against a ``PolicySet``, with
Cerbos 0.55's semantics.

For each action, principal policies decide first, then resource policies. Within a policy kind,
each of the principal's roles is tried in turn: the scope chain is walked from the most specific
scope up, and in a scope every matching rule is evaluated in order; a satisfied DENY ends the walk
for that role, a satisfied ALLOW ends it unless the scope requires parental consent. An ALLOW from
any one role decides the action; otherwise the first role's result stands. No match is DENY.

With strict evaluation (our default) a condition that errors denies the action for that role,
like a satisfied DENY; without it the erroring expression just counts as false.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .cel.compiler import Activation
from .cel.values import CelError, Message, from_json
from .compile import PRINCIPAL, RESOURCE, PolicySet, Row
from .conditions import ConditionError, EvaluationError, output_value
from .names import principal_key, sanitize, scope_value
from .policy import ALLOW, DENY, REQUIRE_PARENTAL_CONSENT

NO_MATCH = "NO_MATCH"
NO_MATCH_FOR_SCOPE_PERMISSIONS = "NO_MATCH_FOR_SCOPE_PERMISSIONS"
_UNDECIDED = "EFFECT_NO_MATCH"


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


@dataclass
class Principal:
    id: str
    roles: list[str]
    attr: dict[str, Any] = field(default_factory=dict)
    policy_version: str = ""
    scope: str = ""


@dataclass
class Resource:
    kind: str
    id: str
    attr: dict[str, Any] = field(default_factory=dict)
    policy_version: str = ""
    scope: str = ""


@dataclass
class CheckInput:
    principal: Principal
    resource: Resource
    actions: list[str]
    aux_data: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""


@dataclass(slots=True)
class ActionEffect:
    effect: str
    policy: str = NO_MATCH
    scope: str = ""
    rule: str = ""  # the rule that decided (policy key # rule name), for the audit trail
    # Strict evaluation met an error: this DENY stands whatever other roles or policies say.
    final: bool = field(default=False, compare=False, repr=False)


@dataclass
class OutputEntry:
    src: str
    val: Any
    action: str
    error: str | None = None


@dataclass
class CheckOutput:
    """The decision for one resource: an effect per action, outputs, and why."""

    request_id: str
    resource_id: str
    actions: dict[str, ActionEffect]
    outputs: list[OutputEntry] = field(default_factory=list)
    effective_derived_roles: list[str] = field(default_factory=list)
    validation_errors: list[dict[str, str]] = field(default_factory=list)
    evaluation_errors: list[EvaluationError] = field(default_factory=list)


def _scope_value(scope: str, default: str) -> str:
    return scope_value(scope or default)


def request_message(inp: CheckInput, pscope: str, rscope: str) -> Message:
    p, r = inp.principal, inp.resource
    principal = Message("cerbos.engine.v1.Request.Principal", {
        "id": p.id, "roles": list(p.roles), "attr": from_json(p.attr),
        "policyVersion": p.policy_version, "scope": pscope,
    })
    resource = Message("cerbos.engine.v1.Request.Resource", {
        "kind": r.kind, "id": r.id, "attr": from_json(r.attr),
        "policyVersion": r.policy_version, "scope": rscope,
    })
    aux = Message("cerbos.engine.v1.AuxData", {"jwt": from_json(inp.aux_data.get("jwt", {})), "jwts": {}})
    return Message("cerbos.engine.v1.Request", {"principal": principal, "resource": resource, "auxData": aux})


class _Decision:
    """The state of deciding one CheckInput."""

    def __init__(self, ps: PolicySet, inp: CheckInput, params: EvalParams, now: datetime) -> None:
        self.ps = ps
        self.inp = inp
        self.params = params
        self.strict = params.strict_evaluation
        self.pscope = _scope_value(inp.principal.scope, params.default_scope)
        self.rscope = _scope_value(inp.resource.scope, params.default_scope)
        self.pversion = inp.principal.policy_version or params.default_policy_version
        self.rversion = inp.resource.policy_version or params.default_policy_version
        self.kind = sanitize(inp.resource.kind)  # rules are indexed by the sanitised kind
        self.act = Activation(request_message(inp, self.pscope, self.rscope), now,
                              from_json(params.globals))
        self.errors: list[EvaluationError] = []
        self.outputs: list[OutputEntry] = []
        self.condition_cache: dict[str, bool] = {}
        self.runtimes: dict[str, Message] = {}
        self.effective_derived_roles: set[str] = set()

    def decide(self) -> CheckOutput:
        inp = self.inp
        out = CheckOutput(inp.request_id, inp.resource.id,
                          {a: ActionEffect(DENY) for a in inp.actions})
        lenient = self.params.lenient_scope_search
        pscopes = self.ps.scopes_for(PRINCIPAL, self.pscope, lenient)
        rscopes = self.ps.scopes_for(RESOURCE, self.rscope, lenient)
        if not pscopes and not rscopes:
            return out
        principal_exists = self.ps.principal_exists(inp.principal.id, self.pversion, pscopes)
        resource_exists = self.ps.resource_exists(self.kind, self.rversion, rscopes)
        if not principal_exists and not resource_exists:
            return out
        self.including_parent_roles = self.ps.parent_roles(self.rscope, tuple(inp.principal.roles))
        main_keys = {
            PRINCIPAL: (principal_key(inp.principal.id, self.pversion, pscopes[0] if pscopes else ""), pscopes,
                        principal_exists),
            RESOURCE: (self.ps.resource_policy_key(inp.resource.kind, self.rversion, rscopes[0] if rscopes else ""),
                       rscopes, resource_exists),
        }
        for action in dict.fromkeys(inp.actions):
            out.actions[action] = self.decide_action(action, main_keys)
        out.outputs = self.outputs
        out.evaluation_errors = self.errors
        out.effective_derived_roles = sorted(self.effective_derived_roles)
        return out

    def decide_action(self, action: str, main_keys: dict[str, tuple[str, tuple[str, ...], bool]]) -> ActionEffect:
        result = ActionEffect(_UNDECIDED)
        for kind in (PRINCIPAL, RESOURCE):
            key, scopes, exists = main_keys[kind]
            if kind == PRINCIPAL and not exists:
                continue  # principal rules are keyed by principal id: none can match
            result = ActionEffect(_UNDECIDED)
            roles = self.inp.principal.roles[:1] if kind == PRINCIPAL else self.inp.principal.roles
            for role in roles:
                role_result = self.decide_role(kind, action, role, scopes, key if exists else NO_MATCH)
                if role_result.final:
                    return role_result
                if result.effect == _UNDECIDED:
                    result = role_result
                if role_result.effect == ALLOW:
                    result = role_result
                    break
                if (role_result.effect == DENY and result.policy == NO_MATCH_FOR_SCOPE_PERMISSIONS
                        and role_result.policy != NO_MATCH_FOR_SCOPE_PERMISSIONS):
                    result = role_result
            if result.effect in (ALLOW, DENY):
                break
        if result.effect == _UNDECIDED:
            result.effect = DENY
        return result

    def decide_role(self, kind: str, action: str, role: str, scopes: tuple[str, ...], policy_key: str) -> ActionEffect:
        result = ActionEffect(_UNDECIDED, policy_key)
        pid = self.inp.principal.id if kind == PRINCIPAL else ""
        # Cerbos looks principal rules up by the resource's version too.
        plan = self.ps.role_plan(kind, self.rversion, scopes, self.kind, action, role, pid, self.rscope)
        for scope, rows in plan:
            if kind == RESOURCE:
                self.derive_roles(scope)
            if result.effect != _UNDECIDED:
                break
            has_allow = False
            for row in rows:
                try:
                    satisfied = self.satisfied(row)
                except ConditionError:
                    return ActionEffect(DENY, row.policy_key, scope, row.src, final=True)
                if satisfied:
                    self.emit(row, action, activated=True)
                    if row.effect == ALLOW:
                        if not has_allow:
                            result.rule = row.src
                        has_allow = True
                    elif row.effect == DENY:
                        result.effect = DENY
                        result.scope = scope
                        result.rule = row.src
                        if row.from_role_policy:
                            result.policy = row.policy_key
                        return result
                    elif row.no_match_for_scope_permissions:
                        result.policy = NO_MATCH_FOR_SCOPE_PERMISSIONS
                        result.scope = scope
                elif satisfied is False:
                    self.emit(row, action, activated=False)
            if has_allow:
                if self.ps.scope_permissions.get(scope) == REQUIRE_PARENTAL_CONSENT:
                    result.rule = ""
                    continue
                result.effect = ALLOW
                result.scope = scope
                return result
        return result

    def satisfied(self, row: Row) -> bool | None:
        """True or False, or None when the rule was skipped (its derived role erred)."""
        cached = self.condition_cache.get(row.evaluation_key)
        if cached is not None:
            return cached
        dr = row.derived_role
        if dr is not None and dr.condition is not None and not dr.condition(self.act, self.strict, self.errors):
            self.condition_cache[row.evaluation_key] = False
            return None
        if row.condition is None:
            ok = True
        else:
            ok = row.condition(self.act, self.strict, self.errors)
        self.condition_cache[row.evaluation_key] = ok
        return ok

    def emit(self, row: Row, action: str, activated: bool) -> None:
        if row.output is None:
            return
        fn = row.output.rule_activated if activated else row.output.condition_not_met
        if fn is None:
            return
        val, error = output_value(fn, self.act)
        if error is not None:
            self.errors.append(EvaluationError(f"output of {row.src}", error))
        self.outputs.append(OutputEntry(row.src, val, action, error))

    def derive_roles(self, scope: str) -> None:
        """Works out, once per scope, which of the derived roles that scope's policy uses apply, and
        makes them ``runtime.effectiveDerivedRoles`` for the rules of that scope."""
        if scope in self.runtimes:
            self.act.runtime = self.runtimes[scope]
            return
        effective: set[str] = set()
        failed: list[str] = []
        for dr in self.ps.derived_roles.get((self.kind, self.rversion, scope), ()):
            # Cerbos compares parent roles literally here ("*" aside), unlike when matching rules.
            if not any(p == "*" or p in self.including_parent_roles for p in dr.parent_roles):
                continue
            errors: list[EvaluationError] = []
            ok = dr.condition is None or dr.condition(self.act, False, errors)
            if errors:
                failed.append(dr.name)
            if ok:
                effective.add(dr.name)
        self.effective_derived_roles |= effective
        fields: dict[str, Any] = {"effectiveDerivedRoles": sorted(effective)}
        if failed and self.strict:
            # A derived role could not be decided, so the list is not known: reading it is an error.
            fields = _UnknownFields(fields, f"failed to compute effective derived roles [{', '.join(sorted(failed))}]")
        self.act.runtime = self.runtimes[scope] = Message("cerbos.engine.v1.Runtime", fields)


class _UnknownFields(dict):
    """Message fields whose every read is a CEL error (used for an undecidable runtime)."""

    def __init__(self, fields: dict[str, Any], message: str) -> None:
        super().__init__(fields)
        self.message = message

    def __getitem__(self, key: str) -> Any:
        raise CelError(self.message)


def check(ps: PolicySet, inp: CheckInput, params: EvalParams, now: datetime | None = None) -> CheckOutput:
    """Decides one CheckInput. Never raises for anything the request or the policies contain."""
    return _Decision(ps, inp, params, now or params.now()).decide()
