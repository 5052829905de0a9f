"""Policies to a ``PolicySet``: every CEL expression compiled once, imports resolved, scope chains
checked, and rules flattened into ``Row``s (one per action, role and derived role, as Cerbos's
rule table does) indexed for lookup. Every problem is collected; any problem rejects the set.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import globs
from .cel.compiler import Scope, Variable
from .cel.values import from_json
from .conditions import (
    CompiledOutput,
    ConditionFn,
    compile_cel,
    compile_match,
    compile_output,
    negate,
)
from .errors import PolicyErrors, PolicyProblem
from .loader import LoadedPolicy, load_policies
from .names import resource_key, sanitize
from .policy import (
    ALLOW,
    DENY,
    OVERRIDE_PARENT,
    REQUIRE_PARENTAL_CONSENT,
    Definitions,
    DerivedRoles,
    ExportConstants,
    ExportVariables,
    Expr,
    PrincipalPolicy,
    ResourcePolicy,
    RolePolicy,
    SchemaRef,
)
from .yamlsrc import Position

PRINCIPAL = "principal"
RESOURCE = "resource"

_VAR_REF = re.compile(r"\b(?:V|variables)\s*\.\s*([A-Za-z_]\w*)")


@dataclass(eq=False, slots=True)
class CompiledDerivedRole:
    name: str
    parent_roles: list[str]
    condition: ConditionFn | None
    origin: str  # e.g. derived_roles.common_roles
    # Whether the condition may read ``runtime`` (directly or through a variable); one that does
    # not has the same outcome wherever in a check it is evaluated.
    reads_runtime: bool = True


@dataclass(eq=False, slots=True)
class Row:
    """One (action, role) of one rule: the unit the evaluator matches and evaluates."""

    kind: str
    version: str
    scope: str
    resource: str
    role: str
    action: str
    effect: str
    condition: ConditionFn | None
    output: CompiledOutput | None
    src: str  # policy key # rule name, as Cerbos names output sources
    policy_key: str
    evaluation_key: str
    principal: str = ""
    derived_role: CompiledDerivedRole | None = None
    from_role_policy: bool = False
    no_match_for_scope_permissions: bool = False


@dataclass(eq=False)
class RolePolicyRule:
    resource: str
    allow_actions: list[str]
    condition: ConditionFn | None
    policy_key: str
    # As Cerbos keys it: "<policy key>#<role>_rule-NNN", NNN counting from 0 within the rules of
    # one resource (so rules of two resources may share a key, and a condition's outcome).
    evaluation_key: str
    version: str = "default"
    output: CompiledOutput | None = None
    src: str = ""  # "<policy key>#<rule name>" (an unnamed rule's name is empty), for outputs


@dataclass
class ResourceSchemas:
    principal: SchemaRef | None
    resource: SchemaRef | None


@dataclass
class PolicySet:
    """An immutable, compiled set of policies, ready for any number of checks from any thread."""

    rows: dict[tuple[str, str, str], list[Row]] = field(default_factory=dict)  # (kind, version, scope)
    scopes: dict[str, set[str]] = field(default_factory=lambda: {PRINCIPAL: set(), RESOURCE: set()})
    scope_permissions: dict[str, str] = field(default_factory=dict)
    derived_roles: dict[tuple[str, str, str], list[CompiledDerivedRole]] = field(default_factory=dict)
    role_parents: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # scope -> role -> parents
    role_rules: dict[str, dict[str, list[RolePolicyRule]]] = field(default_factory=dict)  # scope -> role
    schemas: dict[tuple[str, str, str], ResourceSchemas] = field(default_factory=dict)
    schema_root: Path | None = None
    policy_count: int = 0
    sources: dict[str, str] = field(default_factory=dict)  # policy key -> file
    principal_ids: set[str] = field(default_factory=set)  # principals some principal policy names
    # (kind, version, scope, principal or sanitised resource) of each policy without rules: like
    # Cerbos's no-op rows, it makes its scope exist and its policy found, and decides nothing.
    empty_policies: set[tuple[str, str, str, str]] = field(default_factory=set)
    # "P" / "R" when no expression reads that attribute map other than one named attribute at a
    # time: the request's attributes are then handed to CEL unconverted, each read converting.
    raw_attrs: frozenset[str] = frozenset()
    # Plans of several kinds (plan.py: CheckPlan, ActionPlan, role-step tables), by coordinates.
    plan_cache: dict[tuple[object, ...], Any] = field(default_factory=dict, repr=False, compare=False)
    # The policies as read and compiled, kept for the query planner (query_plan.Sources), so a plan
    # is made from exactly what the checks were compiled from: the files are never read again (a
    # bundle's were verified once; what is on disk later may have changed).
    policies: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        # Everything a check looks up depends only on the request's coordinates, so it is
        # worked out once per distinct coordinates and then served from these caches (and the
        # decision plans of plan.py, which call role_plan once per role and action).
        self.scopes_for = lru_cache(maxsize=4096)(self._scopes_for)
        self.principal_exists = lru_cache(maxsize=4096)(self._principal_exists)
        self.resource_exists = lru_cache(maxsize=4096)(self._resource_exists)
        self.parent_roles = lru_cache(maxsize=4096)(self._parent_roles)

    def role_plan(
        self,
        kind: str,
        version: str,
        scopes: tuple[str, ...],
        resource: str,
        action: str,
        role: str,
        principal: str,
        role_scope: str,
    ) -> tuple[tuple[str, tuple[Row, ...]], ...]:
        """For one role and action: the rows to evaluate in each scope, most specific first."""
        roles = self.parent_roles(role_scope, (role,))
        return tuple(
            (scope, self.rows_for(kind, version, scope, resource, action, roles, principal)) for scope in scopes
        )

    def _scopes_for(self, kind: str, scope: str, lenient: bool) -> tuple[str, ...]:
        """The scopes a check walks, most specific first (none when the scope is unknown and the
        search is not lenient)."""
        if not lenient and not self.scope_exists(kind, scope):
            return ()
        return tuple(s for s in scope_chain(scope) if self.scope_exists(kind, s))

    def _principal_exists(self, principal: str, version: str, scopes: tuple[str, ...]) -> bool:
        return any(r.principal == principal for s in scopes for r in self.rows.get((PRINCIPAL, version, s), ())) or any(
            (PRINCIPAL, version, s, principal) in self.empty_policies for s in scopes
        )

    def _resource_exists(self, kind: str, version: str, scopes: tuple[str, ...]) -> bool:
        return any(
            any(globs.matches(r.resource, kind) for r in self.rows.get((RESOURCE, version, s), ()))
            or any(
                rule.version == version and globs.matches(rule.resource, kind)
                for rules in self.role_rules.get(s, {}).values()
                for rule in rules
            )
            or any(
                k == RESOURCE and v == version and scope == s and globs.matches(name, kind)
                for k, v, scope, name in self.empty_policies
            )
            for s in scopes
        )

    def resource_policy_key(self, kind: str, version: str, scope: str) -> str:
        return resource_key(kind, version, scope)

    def rows_for(
        self, kind: str, version: str, scope: str, resource: str, action: str, roles: tuple[str, ...], principal: str
    ) -> tuple[Row, ...]:
        """The rows of one scope that apply to this resource kind, action and roles, in rule order."""
        out: list[Row] = []
        if kind == RESOURCE:
            out.extend(self._role_policy_rows(version, scope, resource, action, roles))
        for row in self.rows.get((kind, version, scope), ()):
            if kind == PRINCIPAL and row.principal != principal:
                continue
            if not globs.matches(row.action, action) or not globs.matches(row.resource, resource):
                continue
            if row.role != "*" and not any(globs.matches(row.role, r) for r in roles):
                continue
            out.append(row)
        return tuple(out)

    def _role_policy_rows(
        self, version: str, scope: str, resource: str, action: str, roles: tuple[str, ...]
    ) -> list[Row]:
        """Role policies narrow what their roles may do, as Cerbos 0.55's rule index does it.

        Only where this scope (and version) has some rule for this kind and one of these roles
        (the principal's role and its ancestors): then, for each of these roles that has a role
        policy here, an action that policy does not allow on this kind (or a kind it does not
        name at all) is denied, in the role policy's name; an allowed one with a condition is
        denied when the condition fails (its outputs swap sides: the rule's ``conditionNotMet``
        is reported when the denial applies); an unconditional one decides nothing but reports
        its ``ruleActivated`` output.
        """
        by_role = self.role_rules.get(scope)
        if not by_role or not self._has_rules_for(version, scope, resource, roles):
            return []
        out: list[Row] = []
        for role in roles:
            rules = [r for r in by_role.get(role, ()) if r.version == version]
            if not rules:
                continue
            for_resource = [r for r in rules if globs.matches(r.resource, resource)]
            matched = [r for r in for_resource if any(globs.matches(a, action) for a in r.allow_actions)]
            if not matched:
                policy_key = rules[0].policy_key
                out.append(
                    Row(
                        RESOURCE,
                        version,
                        scope,
                        resource,
                        role,
                        action,
                        DENY,
                        None,
                        None,
                        f"{policy_key}#implicit-deny",
                        policy_key,
                        f"{policy_key}#implicit-deny",
                        from_role_policy=True,
                        no_match_for_scope_permissions=True,
                    )
                )
                continue
            for r in matched:
                if r.condition is None:
                    if r.output is not None and r.output.rule_activated is not None:
                        out.append(
                            Row(
                                RESOURCE,
                                version,
                                scope,
                                resource,
                                role,
                                action,
                                "",  # no effect: only the output
                                None,
                                CompiledOutput(r.output.rule_activated, None),
                                r.src,
                                r.policy_key,
                                r.evaluation_key,
                                from_role_policy=True,
                            )
                        )
                    continue
                swapped = None
                if r.output is not None:
                    swapped = CompiledOutput(r.output.condition_not_met, r.output.rule_activated)
                out.append(
                    Row(
                        RESOURCE,
                        version,
                        scope,
                        resource,
                        role,
                        action,
                        DENY,
                        negate(r.condition),
                        swapped,
                        r.src,
                        r.policy_key,
                        r.evaluation_key,
                        from_role_policy=True,
                    )
                )
        return out

    def _has_rules_for(self, version: str, scope: str, resource: str, roles: tuple[str, ...]) -> bool:
        """Whether a scope has any rule of a resource or role policy for this kind (a pattern
        matching it included) and one of these roles."""
        for row in self.rows.get((RESOURCE, version, scope), ()):
            if globs.matches(row.resource, resource) and (
                row.role == "*" or any(globs.matches(row.role, r) for r in roles)
            ):
                return True
        by_role = self.role_rules.get(scope, {})
        return any(
            r.version == version and globs.matches(r.resource, resource)
            for role in roles
            for r in by_role.get(role, ())
        )

    def scope_exists(self, kind: str, scope: str) -> bool:
        return scope in self.scopes[kind]

    def _parent_roles(self, scope: str, roles: tuple[str, ...]) -> tuple[str, ...]:
        """The roles plus every ancestor role that role policies in ``scope`` give them."""
        out = list(roles)
        mapping = self.role_parents.get(scope)
        if not mapping:
            return tuple(out)
        seen = set(out)
        stack = list(roles)
        while stack:
            for parent in mapping.get(stack.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    out.append(parent)
                    stack.append(parent)
        return tuple(out)


def scope_chain(scope: str) -> list[str]:
    """``a.b.c`` -> ``[a.b.c, a.b, a, ""]``."""
    if not scope:
        return [""]
    parts = scope.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)] + [""]


class _Builder:
    check_schemas = True  # False: cerbos compile --ignore-schemas

    def __init__(self, loaded: list[LoadedPolicy], root: Path) -> None:
        self.root = root
        self.problems: list[PolicyProblem] = []
        self.loaded = loaded
        self.export_variables: dict[str, tuple[ExportVariables, str]] = {}
        self.export_constants: dict[str, tuple[ExportConstants, str]] = {}
        self.derived_roles: dict[str, tuple[DerivedRoles, str]] = {}
        self.compiled_derived_roles: dict[str, list[CompiledDerivedRole]] = {}
        self.set = PolicySet()
        # Every scope of this build shares one set: the roots whose attributes some expression
        # reads as a whole map (see Compiler.attr_escapes). Create scopes only with it.
        self.attr_escapes: set[str] = set()

    def problem(self, position: Position, message: str, kind: str) -> None:
        self.problems.append(PolicyProblem(position, message, kind))

    def build(self) -> PolicySet:
        self._index()
        # Like Cerbos, derived roles are compiled for the resource policies that import them: a
        # set nobody imports is not checked beyond its shape.
        imported = {
            name
            for lp in self.loaded
            if isinstance(lp.policy, ResourcePolicy)
            for name, _ in lp.policy.import_derived_roles
        }
        for name, (dr, _file) in self.derived_roles.items():
            if name in imported:
                self.compiled_derived_roles[name] = self._compile_derived_roles(dr)
        resource_policies = [lp for lp in self.loaded if isinstance(lp.policy, ResourcePolicy)]
        for lp in resource_policies:
            self._add_resource_policy(lp.policy, lp.file)  # type: ignore[arg-type]
        for lp in self.loaded:
            if isinstance(lp.policy, PrincipalPolicy):
                self._add_principal_policy(lp.policy, lp.file)
            elif isinstance(lp.policy, RolePolicy):
                self._add_role_policy(lp.policy, lp.file)
        self._check_scope_chains()
        self.set.policy_count = len(self.loaded)
        self.set.raw_attrs = frozenset({"P", "R"} - self.attr_escapes)
        return self.set

    # -- indexing and imports --------------------------------------------------------

    def _index(self) -> None:
        seen: dict[str, Position] = {}
        for lp in self.loaded:
            p = lp.policy
            key = p.key
            if key in seen:
                self.problem(
                    p.position, f"duplicate policy {key} (also defined at {seen[key]})", "duplicate definition"
                )
                continue
            seen[key] = p.position
            self.set.sources[key] = lp.file
            if isinstance(p, ExportVariables):
                self.export_variables[p.name] = (p, lp.file)
            elif isinstance(p, ExportConstants):
                self.export_constants[p.name] = (p, lp.file)
            elif isinstance(p, DerivedRoles):
                self.derived_roles[p.name] = (p, lp.file)

    def _merged(self, defs: Definitions, exported: dict[str, Any], noun: str) -> dict[str, Any]:
        """Imported definitions, then the policy's own; a missing import is a problem, and so is
        a name defined in more than one place (two imports, an import and the policy's own, or
        those and the deprecated top-level variables), in Cerbos's words."""
        out: dict[str, Any] = {}
        places: dict[str, list[tuple[str, Position | None, str]]] = defaultdict(list)
        for name, where in defs.imports:
            found = exported.get(name)
            if found is None:
                self.problem(where, f'{noun}s import "{name}" cannot be found', "missing import")
                continue
            export, file = found
            for item, value in export.definitions.items():
                at = value.position if isinstance(value, Expr) else getattr(export, "positions", {}).get(item)
                places[item].append((f"import '{name}'", at, file))
                out[item] = value
        for item in defs.local:
            if item in defs.local_positions or item not in defs.legacy_positions:
                at = defs.local_positions.get(item)
                places[item].append((f"policy local {noun}s", at, at.file if at else ""))
        for item, at in defs.legacy_positions.items():
            places[item].append((f"deprecated top-level policy {noun}s", at, at.file))
        out.update(defs.local)
        for item, where_defined in places.items():
            if len(where_defined) > 1:
                named = [
                    f"{source} ({file}:{at.line}:{self._value_column(at)})" if at else f"{source} ({file})"
                    for source, at, file in where_defined
                ]
                listed = " and ".join(named) if len(named) == 2 else f"{', '.join(named[:-1])}, and {named[-1]}"
                first = defs.local_positions.get(item) or defs.legacy_positions.get(item) or defs.imports[0][1]
                self.problem(
                    first,
                    f"{noun.capitalize()} '{item}' has multiple definitions in {listed}",
                    f"{noun} redefined",
                )
        return out

    def _value_column(self, at: Position) -> int:
        """Where a value starts as Cerbos counts it: at its opening quote, if it has one."""
        try:
            line = (self.root / at.file).read_text(encoding="utf-8").splitlines()[at.line - 1]
        except (OSError, UnicodeDecodeError, IndexError):
            return at.column
        return at.column - 1 if at.column > 1 and line[at.column - 2 : at.column - 1] in ("'", '"') else at.column

    def _scope(self, variables: Definitions, constants: Definitions) -> Scope:
        """The variables and constants a policy's expressions may name, compiled in order."""
        merged_constants = self._merged(constants, self.export_constants, "constant")
        scope = Scope(
            constants={k: from_json(_plain(v)) for k, v in merged_constants.items()}, attr_escapes=self.attr_escapes
        )
        sources = self._merged(variables, self.export_variables, "variable")
        for name in sources:
            scope.variables[name] = Variable(name, _undefined_variable)
        if self._has_cycle(sources):
            return scope
        scope.runtime_variables = _runtime_readers(sources)
        for name, expr in sources.items():
            fn = compile_cel(expr, scope, self.problems)
            if fn is not None:
                scope.variables[name].fn = fn
        return scope

    def _has_cycle(self, sources: dict[str, Any]) -> bool:
        deps = {n: set(_VAR_REF.findall(e.text)) & sources.keys() for n, e in sources.items()}
        state: dict[str, int] = {}

        def visit(n: str, trail: list[str]) -> bool:
            if state.get(n) == 1:
                cycle = " -> ".join([*trail[trail.index(n) :], n])
                self.problem(sources[n].position, f"variables form a cycle: {cycle}", "cyclical variables")
                return True
            if state.get(n) == 2:
                return False
            state[n] = 1
            found = any(visit(d, [*trail, n]) for d in sorted(deps[n]))
            state[n] = 2
            return found

        return any(visit(n, []) for n in sources)

    def _compile_derived_roles(self, dr: DerivedRoles) -> list[CompiledDerivedRole]:
        scope = self._scope(dr.variables, dr.constants)
        out = []
        for d in dr.definitions:
            cond = compile_match(d.condition, scope, self.problems) if d.condition else None
            reads = d.condition is not None and _may_read_runtime(d.condition, scope)
            out.append(CompiledDerivedRole(d.name, d.parent_roles, cond, dr.key, reads))
        return out

    # -- resource policies -------------------------------------------------------------

    def _imported_derived_roles(self, p: ResourcePolicy) -> dict[str, CompiledDerivedRole]:
        out: dict[str, CompiledDerivedRole] = {}
        origin: dict[str, str] = {}
        for name, where in p.import_derived_roles:
            if name not in self.derived_roles:
                self.problem(where, f'derived roles import "{name}" cannot be found', "missing import")
                continue
            for d in self.compiled_derived_roles.get(name, []):
                if d.name in out:
                    self.problem(
                        where,
                        f'derived role "{d.name}" is defined in both {origin[d.name]} and {name}',
                        "ambiguous derived role",
                    )
                out[d.name] = d
                origin[d.name] = name
        return out

    def _add_resource_policy(self, p: ResourcePolicy, file: str) -> None:
        scope = self._scope(p.variables, p.constants)
        derived = self._imported_derived_roles(p)
        # Like Cerbos, only the derived roles some rule uses count (runtime.effectiveDerivedRoles).
        used = {name for rule in p.rules for name in rule.derived_roles}
        kind = sanitize(p.resource)
        self.set.derived_roles[(kind, p.version, p.scope)] = [d for d in derived.values() if d.name in used]
        self.set.schemas[(kind, p.version, p.scope)] = ResourceSchemas(p.principal_schema, p.resource_schema)
        for which, ref in (("principal", p.principal_schema), ("resource", p.resource_schema)):
            if ref is not None and self.check_schemas:
                self._check_schema(which, ref)
        self._scope_permissions(p.scope, p.scope_permissions, p.position)
        if p.scope == "" and p.scope_permissions == REQUIRE_PARENTAL_CONSENT:
            self.problem(
                p.position, "a policy without a scope cannot require parental consent", "invalid scope permissions"
            )
        rows = self.set.rows.setdefault((RESOURCE, p.version, p.scope), [])
        requires_consent = p.scope_permissions == REQUIRE_PARENTAL_CONSENT
        for i, rule in enumerate(p.rules, start=1):
            name = rule.name or f"rule-{i:03d}"
            src = f"{p.key}#{name}"
            cond = compile_match(rule.condition, scope, self.problems) if rule.condition else None
            output = compile_output(rule.output, scope, self.problems)
            effect = rule.effect
            if requires_consent and effect == ALLOW and cond is not None:
                cond, effect = negate(cond), DENY
            for action in rule.actions:
                for role in rule.roles:
                    rows.append(
                        Row(RESOURCE, p.version, p.scope, kind, role, action, effect, cond, output, src, p.key, src)
                    )
                for dr_name in rule.derived_roles:
                    dr = derived.get(dr_name)
                    if dr is None:
                        self.problem(rule.position, f'unknown derived role "{dr_name}"', "unknown derived role")
                        continue
                    for parent in dr.parent_roles:
                        rows.append(
                            Row(
                                RESOURCE,
                                p.version,
                                p.scope,
                                kind,
                                parent,
                                action,
                                effect,
                                cond,
                                output,
                                src,
                                p.key,
                                f"{dr.origin}.{dr_name}#{src}",
                                derived_role=dr,
                            )
                        )
        if not p.rules:
            self.set.empty_policies.add((RESOURCE, p.version, p.scope, kind))
        if rows or not p.rules:
            self.set.scopes[RESOURCE].add(p.scope)

    def _check_schema(self, which: str, ref: SchemaRef) -> None:
        """A schema a policy names must exist under _schemas/ and be a valid JSON schema."""
        import jsonschema  # only policies that name schemas pay for this import

        name = ref.ref.removeprefix("cerbos:///")
        path = self.root / "_schemas" / name
        if not ref.ref.startswith("cerbos:///") or not path.is_file():
            self.problem(
                ref.position,
                f'{which} schema "{ref.ref}" cannot be loaded: _schemas/{name} does not exist',
                "invalid schema",
            )
            return
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except RecursionError:  # nested past what Python's parser and jsonschema recurse into
            self.problem(ref.position, f'{which} schema "{ref.ref}" is nested too deeply', "invalid schema")
        except (ValueError, jsonschema.SchemaError) as exc:
            self.problem(
                ref.position, f'{which} schema "{ref.ref}" is not a valid JSON schema: {exc}', "invalid schema"
            )

    def _scope_permissions(self, scope: str, value: str, where: Position) -> None:
        """Records a scope's scopePermissions. Like Cerbos's rule table, the setting is per scope,
        and an explicit setting wins over an unset one (unset means OVERRIDE_PARENT)."""
        if value or scope not in self.set.scope_permissions:
            self.set.scope_permissions[scope] = value or OVERRIDE_PARENT

    # -- principal and role policies ---------------------------------------------------

    def _add_principal_policy(self, p: PrincipalPolicy, file: str) -> None:
        scope = self._scope(p.variables, p.constants)
        self._scope_permissions(p.scope, p.scope_permissions, p.position)
        rows = self.set.rows.setdefault((PRINCIPAL, p.version, p.scope), [])
        self.set.principal_ids.add(p.principal)
        requires_consent = p.scope_permissions == REQUIRE_PARENTAL_CONSENT
        for rule in p.rules:
            name = rule.name or f"{rule.resource}_rule-{rule.index:03d}"
            src = f"{p.key}#{name}"
            cond = compile_match(rule.condition, scope, self.problems) if rule.condition else None
            effect = rule.effect
            if requires_consent and effect == ALLOW and cond is not None:
                cond, effect = negate(cond), DENY
            rows.append(
                Row(
                    PRINCIPAL,
                    p.version,
                    p.scope,
                    sanitize(rule.resource),
                    "*",
                    rule.action,
                    effect,
                    cond,
                    compile_output(rule.output, scope, self.problems),
                    src,
                    p.key,
                    src,
                    principal=p.principal,
                )
            )
        if not p.rules:
            self.set.empty_policies.add((PRINCIPAL, p.version, p.scope, p.principal))
        if rows or not p.rules:
            self.set.scopes[PRINCIPAL].add(p.scope)

    def _add_role_policy(self, p: RolePolicy, file: str) -> None:
        scope = self._scope(p.variables, p.constants)
        rules = self.set.role_rules.setdefault(p.scope, {}).setdefault(p.role, [])
        per_resource: dict[str, int] = defaultdict(int)  # Cerbos numbers rules within each resource
        for rule in p.rules:
            index = per_resource[rule.resource]
            per_resource[rule.resource] += 1
            cond = compile_match(rule.condition, scope, self.problems) if rule.condition else None
            rules.append(
                RolePolicyRule(
                    rule.resource,
                    rule.allow_actions,
                    cond,
                    p.key,
                    f"{p.key}#{p.role}_rule-{index:03d}",
                    p.version,
                    compile_output(rule.output, scope, self.problems),
                    f"{p.key}#{rule.name}",
                )
            )
        self.set.role_parents.setdefault(p.scope, {})[p.role] = p.parent_roles
        if p.rules:  # (in Cerbos, a scope exists through its rule rows)
            self.set.scopes[RESOURCE].add(p.scope)
        # A role policy's scopePermissions is accepted (as Cerbos 0.55 does) but, as there, it does
        # not change how the resource policies of its scope combine with their parents.

    # -- scope chains ------------------------------------------------------------------

    def _check_scope_chains(self) -> None:
        by_key: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        where: dict[tuple[str, str, str, str], Position] = {}
        for lp in self.loaded:
            p = lp.policy
            if isinstance(p, ResourcePolicy):
                ident = ("resource", p.resource, p.version)
            elif isinstance(p, PrincipalPolicy):
                ident = ("principal", p.principal, p.version)
            else:
                continue
            by_key[ident].add(p.scope)
            where[(*ident, p.scope)] = p.position
        for ident, scopes in by_key.items():
            for scope in scopes:
                for parent in scope_chain(scope)[1:]:
                    if parent not in scopes:
                        kind, name, version = ident
                        self.problem(
                            where[(*ident, scope)],
                            f'missing ancestor: no {kind} policy for "{name}" version {version} '
                            f'in scope "{parent}" (needed by scope "{scope}")',
                            "missing scope",
                        )
                        break


def _runtime_readers(sources: dict[str, Any]) -> set[str]:
    """The variables whose expression mentions ``runtime``, or names a variable that does (by
    text, so a string containing the word counts too: erring that way only costs speed)."""
    readers = {n for n, e in sources.items() if "runtime" in e.text}
    deps = {n: set(_VAR_REF.findall(e.text)) for n, e in sources.items()}
    grew = True
    while grew:
        found = {n for n, d in deps.items() if n not in readers and d & readers}
        readers |= found
        grew = bool(found)
    return readers


def _may_read_runtime(match: Any, scope: Scope) -> bool:
    if match.expr is not None:
        text = match.expr.text
        return "runtime" in text or bool(set(_VAR_REF.findall(text)) & scope.runtime_variables)
    return any(_may_read_runtime(c, scope) for c in match.children)


def _undefined_variable(act: Any) -> Any:
    from .cel.values import CelError

    raise CelError("variable could not be compiled")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def compile_policy_dir(root: Path, check_schemas: bool = True) -> PolicySet:
    """Loads and compiles every policy below ``root``; raises ``PolicyErrors`` listing all problems.
    ``check_schemas=False`` is ``cerbos compile --ignore-schemas``: the schemas policies name are
    not looked at."""
    problems: list[PolicyProblem] = []
    if not root.is_dir():
        what = "is not a directory: give the policy directory" if root.exists() else "policy directory does not exist"
        raise PolicyErrors([PolicyProblem(Position(str(root), 1, 1), what, "missing directory")])
    loaded = load_policies(root, problems)
    builder = _Builder(loaded, root)
    builder.check_schemas = check_schemas
    policy_set = builder.build()
    problems.extend(builder.problems)
    if problems:
        raise PolicyErrors(problems)
    policy_set.schema_root = root / "_schemas"
    policy_set.policies = tuple(lp.policy for lp in loaded)
    return policy_set


__all__ = ["OVERRIDE_PARENT", "PolicySet", "Row", "compile_policy_dir", "scope_chain"]
