"""Cerbos policy documents (``apiVersion: api.cerbos.dev/v1``) as typed, validated objects.

Parsing is strict, like Cerbos's: an unknown field, a wrong type or a bad name is a problem with
its file:line:col, collected with every other problem rather than raised one at a time. CEL text
is kept as ``Expr`` (text plus position); ``compile`` turns it into code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import PolicyProblem
from .names import principal_key, resource_key, role_key
from .yamlsrc import Position, SourceList, SourceMap

ALLOW = "EFFECT_ALLOW"
DENY = "EFFECT_DENY"
OVERRIDE_PARENT = "SCOPE_PERMISSIONS_OVERRIDE_PARENT"
REQUIRE_PARENTAL_CONSENT = "SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS"

_VERSION_RE = re.compile(r"^[\w]+$")
_SCOPE_RE = re.compile(r"^([0-9a-zA-Z][\w\-]*(\.[\w\-]*)*)*$")
_RESOURCE_RE = re.compile(r"^[\w\-\.:/@\*\?\[\]\{\}\\!,]+$")
_RULE_NAME_RE = re.compile(r"^([A-Za-z][\w@\.\-]*)*$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CEL_KEYWORDS = frozenset({"false", "in", "null", "true"})  # not names for variables or constants, as in Cerbos
_DERIVED_ROLE_NAME_RE = re.compile(r"^[\w\-\.]+$")
_ROLE_RE = re.compile(r"^[^\s]+$")


@dataclass(frozen=True)
class Expr:
    """CEL source text and where it stands in its file."""

    text: str
    position: Position


@dataclass(frozen=True)
class Match:
    """A condition: one ``expr``, or ``all`` / ``any`` / ``none`` of nested matches."""

    op: str  # "expr", "all", "any" or "none"
    expr: Expr | None = None
    children: tuple[Match, ...] = ()


@dataclass(frozen=True)
class Output:
    rule_activated: Expr | None = None
    condition_not_met: Expr | None = None


@dataclass
class Definitions:
    """Local and imported variables or constants of a policy."""

    imports: list[tuple[str, Position]] = field(default_factory=list)
    local: dict[str, Any] = field(default_factory=dict)  # variables: Expr; constants: plain values
    local_positions: dict[str, Position] = field(default_factory=dict)
    # Variables in the deprecated top-level ``variables`` map: one also defined in ``local`` or an
    # import is an error, as in Cerbos.
    legacy_positions: dict[str, Position] = field(default_factory=dict)


@dataclass
class ResourceRule:
    actions: list[str]
    effect: str
    roles: list[str]
    derived_roles: list[str]
    condition: Match | None
    output: Output | None
    name: str
    position: Position


@dataclass
class SchemaRef:
    ref: str
    ignore_actions: list[str]
    position: Position


@dataclass
class ResourcePolicy:
    resource: str
    version: str
    scope: str
    scope_permissions: str
    import_derived_roles: list[tuple[str, Position]]
    variables: Definitions
    constants: Definitions
    rules: list[ResourceRule]
    principal_schema: SchemaRef | None
    resource_schema: SchemaRef | None
    position: Position

    @property
    def key(self) -> str:
        return resource_key(self.resource, self.version, self.scope)


@dataclass
class PrincipalRule:
    resource: str
    action: str
    effect: str
    condition: Match | None
    output: Output | None
    name: str
    position: Position
    index: int  # 1-based within its resource's actions: unnamed rules are "<resource>_rule-NNN"


@dataclass
class PrincipalPolicy:
    principal: str
    version: str
    scope: str
    scope_permissions: str
    variables: Definitions
    constants: Definitions
    rules: list[PrincipalRule]
    position: Position

    @property
    def key(self) -> str:
        return principal_key(self.principal, self.version, self.scope)


@dataclass
class DerivedRole:
    name: str
    parent_roles: list[str]
    condition: Match | None
    position: Position


@dataclass
class DerivedRoles:
    name: str
    definitions: list[DerivedRole]
    variables: Definitions
    constants: Definitions
    position: Position

    @property
    def key(self) -> str:
        return f"derived_roles.{self.name}"


@dataclass
class RoleRule:
    resource: str
    allow_actions: list[str]
    condition: Match | None
    position: Position
    name: str = ""
    output: Output | None = None


@dataclass
class RolePolicy:
    role: str
    scope: str
    parent_roles: list[str]
    rules: list[RoleRule]
    position: Position
    scope_permissions: str = ""
    version: str = "default"
    variables: Definitions = field(default_factory=Definitions)
    constants: Definitions = field(default_factory=Definitions)

    @property
    def key(self) -> str:
        return role_key(self.role, self.scope, self.version)


@dataclass
class ExportVariables:
    name: str
    definitions: dict[str, Expr]
    position: Position

    @property
    def key(self) -> str:
        return f"export_variables.{self.name}"


@dataclass
class ExportConstants:
    name: str
    definitions: dict[str, Any]
    position: Position
    positions: dict[str, Position] = field(default_factory=dict)  # of each definition's value

    @property
    def key(self) -> str:
        return f"export_constants.{self.name}"


Policy = ResourcePolicy | PrincipalPolicy | DerivedRoles | RolePolicy | ExportVariables | ExportConstants


class _Reader:
    """Reads one policy document, recording problems instead of raising."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = problems

    def problem(self, position: Position, message: str, kind: str = "invalid policy") -> None:
        self.problems.append(PolicyProblem(position, message, kind))

    def fields(self, node: Any, where: Position, what: str, allowed: set[str]) -> SourceMap | None:
        if not isinstance(node, SourceMap):
            self.problem(where, f"{what} must be a mapping")
            return None
        for key in node:
            if key not in allowed:
                self.problem(node.key_pos(key), f'unknown field "{key}" in {what}')
        return node

    def string(
        self,
        node: SourceMap,
        key: str,
        what: str,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        default: str = "",
    ) -> str:
        if key not in node:
            if required:
                self.problem(node.pos(), f"{what} needs {key}")
            return default
        value = node[key]
        if not isinstance(value, str) or isinstance(value, bool):
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)
            else:
                self.problem(node.pos(key), f"{what}.{key} must be a string")
                return default
        if required and value == "":
            self.problem(node.pos(key), f"{what}.{key} must not be empty")
        if pattern is not None and value and not pattern.match(value):
            self.problem(node.pos(key), f'{what}.{key} "{value}" is not valid')
        return value

    def strings(
        self,
        node: SourceMap,
        key: str,
        what: str,
        required: bool = False,
        unique: bool = True,
        pattern: re.Pattern[str] | None = None,
    ) -> list[str]:
        if key not in node:
            if required:
                self.problem(node.pos(), f"{what} needs {key}")
            return []
        value = node[key]
        if not isinstance(value, SourceList):
            self.problem(node.pos(key), f"{what}.{key} must be a list of strings")
            return []
        out: list[str] = []
        seen: set[str] = set()  # a list's own membership test made 30,000 actions quadratic
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.problem(
                    value.pos(i) if isinstance(value, SourceList) else node.pos(key),
                    f"{what}.{key}[{i}] must be a string",
                )
                continue
            if unique and item in seen:
                self.problem(value.pos(i), f'{what}.{key} repeats "{item}"')
            seen.add(item)
            if pattern is not None and not pattern.match(item):
                self.problem(value.pos(i), f'{what}.{key}[{i}] "{item}" is not valid')
            out.append(item)
        if required and not out:
            self.problem(node.pos(key), f"{what}.{key} must not be empty")
        return out

    def expr(self, node: Any, where: Position, what: str) -> Expr | None:
        if isinstance(node, bool) or node is None:
            text = "true" if node is True else "false" if node is False else ""
        elif isinstance(node, str | int | float):
            text = str(node)
        else:
            self.problem(where, f"{what} must be a CEL expression (a string)")
            return None
        if not text.strip():
            self.problem(where, f"{what} is empty")
            return None
        return Expr(text, where)

    def match(self, node: Any, where: Position, what: str) -> Match | None:
        m = self.fields(node, where, what, {"expr", "all", "any", "none"})
        if m is None:
            return None
        ops = [k for k in ("expr", "all", "any", "none") if k in m]
        if len(ops) != 1:
            self.problem(where, f"{what} needs exactly one of expr, all, any or none")
            return None
        op = ops[0]
        if op == "expr":
            e = self.expr(m["expr"], m.pos("expr"), f"{what}.expr")
            return Match("expr", e) if e else None
        group = self.fields(m[op], m.pos(op), f"{what}.{op}", {"of"})
        if group is None:
            return None
        items = group.get("of")
        if not isinstance(items, SourceList) or not items:
            self.problem(group.pos("of") if "of" in group else group.pos(), f"{what}.{op}.of must be a non-empty list")
            return None
        children = []
        for i, child in enumerate(items):
            c = self.match(child, items.pos(i), f"{what}.{op}.of[{i}]")
            if c is not None:
                children.append(c)
        return Match(op, None, tuple(children))

    def condition(self, node: SourceMap, what: str) -> Match | None:
        if "condition" not in node:
            return None
        cond = self.fields(node["condition"], node.pos("condition"), f"{what}.condition", {"match"})
        if cond is None:
            return None
        if "match" not in cond:
            self.problem(cond.pos(), f"{what}.condition needs match")
            return None
        return self.match(cond["match"], cond.pos("match"), f"{what}.condition.match")

    def output(self, node: SourceMap, what: str) -> Output | None:
        if "output" not in node:
            return None
        out = self.fields(node["output"], node.pos("output"), f"{what}.output", {"expr", "when"})
        if out is None:
            return None
        activated = not_met = None
        if "expr" in out:
            activated = self.expr(out["expr"], out.pos("expr"), f"{what}.output.expr")
        if "when" in out:
            when = self.fields(
                out["when"], out.pos("when"), f"{what}.output.when", {"ruleActivated", "conditionNotMet"}
            )
            if when is not None:
                if "ruleActivated" in when:
                    activated = self.expr(
                        when["ruleActivated"], when.pos("ruleActivated"), f"{what}.output.when.ruleActivated"
                    )
                if "conditionNotMet" in when:
                    not_met = self.expr(
                        when["conditionNotMet"], when.pos("conditionNotMet"), f"{what}.output.when.conditionNotMet"
                    )
        when_keys = set(out["when"]) if isinstance(out.get("when"), dict) else set()
        if "expr" not in out and not when_keys & {"ruleActivated", "conditionNotMet"}:
            self.problem(node.key_pos("output"), f"{what}.output must have at least one expression")
        return Output(activated, not_met)

    def effect(self, node: SourceMap, what: str) -> str:
        value = self.string(node, "effect", what, required=True)
        if value and value not in (ALLOW, DENY):
            self.problem(node.pos("effect"), f'{what}.effect must be EFFECT_ALLOW or EFFECT_DENY, not "{value}"')
        return value

    def scope_permissions(self, node: SourceMap, what: str) -> str:
        value = self.string(node, "scopePermissions", what)
        if value and value not in (OVERRIDE_PARENT, REQUIRE_PARENTAL_CONSENT, "SCOPE_PERMISSIONS_UNSPECIFIED"):
            self.problem(node.pos("scopePermissions"), f'{what}.scopePermissions "{value}" is not valid')
        return "" if value == "SCOPE_PERMISSIONS_UNSPECIFIED" else value

    def definitions(self, node: SourceMap, key: str, what: str, is_variables: bool) -> Definitions:
        out = Definitions()
        if key not in node:
            return out
        d = self.fields(node[key], node.pos(key), f"{what}.{key}", {"import", "local"})
        if d is None:
            return out
        if "import" in d:
            names = self.strings(d, "import", f"{what}.{key}")
            imports = d["import"]
            out.imports = [(n, imports.pos(i)) for i, n in enumerate(names)]
        if "local" in d:
            self._local(d, "local", f"{what}.{key}", is_variables, out)
        return out

    def _local(self, d: SourceMap, key: str, what: str, is_variables: bool, out: Definitions) -> None:
        local = d[key]
        if not isinstance(local, SourceMap):
            self.problem(d.pos(key), f"{what}.{key} must be a mapping")
            return
        for name, value in local.items():
            if not _IDENT_RE.match(name) or name in _CEL_KEYWORDS:
                noun = "variable" if is_variables else "constant"
                why = "a reserved keyword" if name in _CEL_KEYWORDS else "not an identifier"
                self.problem(local.key_pos(name), f'"{name}" is not a valid {noun} name ({why})')
                continue
            out.local_positions[name] = local.pos(name)
            if is_variables:
                e = self.expr(value, local.pos(name), f"{what}.{key}.{name}")
                if e is not None:
                    out.local[name] = e
            else:
                out.local[name] = value

    def schema_ref(self, node: SourceMap, key: str, what: str) -> SchemaRef | None:
        if key not in node:
            return None
        s = self.fields(node[key], node.pos(key), f"{what}.{key}", {"ref", "ignoreWhen"})
        if s is None:
            return None
        ref = self.string(s, "ref", f"{what}.{key}", required=True)
        ignore: list[str] = []
        if "ignoreWhen" in s:
            iw = self.fields(s["ignoreWhen"], s.pos("ignoreWhen"), f"{what}.{key}.ignoreWhen", {"actions"})
            if iw is not None:
                ignore = self.strings(iw, "actions", f"{what}.{key}.ignoreWhen", required=True)
        return SchemaRef(ref, ignore, s.pos("ref"))


def _rule_name(r: _Reader, node: SourceMap, what: str) -> str:
    return r.string(node, "name", what, pattern=_RULE_NAME_RE)


def _resource_policy(r: _Reader, node: SourceMap, top: SourceMap) -> ResourcePolicy | None:
    what = "resourcePolicy"
    allowed = {
        "resource",
        "version",
        "importDerivedRoles",
        "rules",
        "scope",
        "schemas",
        "variables",
        "constants",
        "scopePermissions",
    }
    p = r.fields(node, top.pos("resourcePolicy"), what, allowed)
    if p is None:
        return None
    imports_list = r.strings(p, "importDerivedRoles", what)
    imports = [(n, p["importDerivedRoles"].pos(i)) for i, n in enumerate(imports_list)]
    rules: list[ResourceRule] = []
    raw_rules = p.get("rules", [])
    if "rules" in p and not isinstance(raw_rules, SourceList):  # Cerbos accepts a policy without rules
        r.problem(p.pos("rules"), f"{what}.rules must be a list")
        raw_rules = []
    for i, raw in enumerate(raw_rules):
        rw = f"{what}.rules[{i}]"
        rn = r.fields(
            raw, raw_rules.pos(i), rw, {"actions", "derivedRoles", "roles", "condition", "effect", "name", "output"}
        )
        if rn is None:
            continue
        roles = r.strings(rn, "roles", rw, pattern=_ROLE_RE)
        derived = r.strings(rn, "derivedRoles", rw, pattern=_DERIVED_ROLE_NAME_RE)
        if not roles and not derived:
            r.problem(rn.pos(), f"{rw} needs roles or derivedRoles")
        rules.append(
            ResourceRule(
                actions=r.strings(rn, "actions", rw, required=True),
                effect=r.effect(rn, rw),
                roles=roles,
                derived_roles=derived,
                condition=r.condition(rn, rw),
                output=r.output(rn, rw),
                name=_rule_name(r, rn, rw),
                position=raw_rules.pos(i),
            )
        )
    principal_schema = resource_schema = None
    if "schemas" in p:
        s = r.fields(p["schemas"], p.pos("schemas"), f"{what}.schemas", {"principalSchema", "resourceSchema"})
        if s is not None:
            principal_schema = r.schema_ref(s, "principalSchema", f"{what}.schemas")
            resource_schema = r.schema_ref(s, "resourceSchema", f"{what}.schemas")
    return ResourcePolicy(
        resource=r.string(p, "resource", what, required=True, pattern=_RESOURCE_RE),
        version=r.string(p, "version", what, required=True, pattern=_VERSION_RE),
        scope=_scope(r, p, what),
        scope_permissions=r.scope_permissions(p, what),
        import_derived_roles=imports,
        variables=_variables(r, p, top, what),
        constants=r.definitions(p, "constants", what, is_variables=False),
        rules=rules,
        principal_schema=principal_schema,
        resource_schema=resource_schema,
        position=top.pos("resourcePolicy"),
    )


def _scope(r: _Reader, p: SourceMap, what: str) -> str:
    scope = r.string(p, "scope", what, pattern=_SCOPE_RE)
    return "" if scope == "." else scope


def _variables(r: _Reader, p: SourceMap, top: SourceMap, what: str) -> Definitions:
    """The policy's variables, including the deprecated top-level ``variables`` map."""
    defs = r.definitions(p, "variables", what, is_variables=True)
    if "variables" in top:
        legacy = Definitions()
        r._local(top, "variables", "variables", True, legacy)
        for name, e in legacy.local.items():
            defs.local.setdefault(name, e)
            defs.legacy_positions[name] = legacy.local_positions[name]
    return defs


def _principal_policy(r: _Reader, node: SourceMap, top: SourceMap) -> PrincipalPolicy | None:
    what = "principalPolicy"
    allowed = {"principal", "version", "rules", "scope", "variables", "constants", "scopePermissions"}
    p = r.fields(node, top.pos("principalPolicy"), what, allowed)
    if p is None:
        return None
    rules: list[PrincipalRule] = []
    raw_rules = p.get("rules", [])
    if "rules" in p and not isinstance(raw_rules, SourceList):  # Cerbos accepts a policy without rules
        r.problem(p.pos("rules"), f"{what}.rules must be a list")
        raw_rules = []
    for i, raw in enumerate(raw_rules):
        rw = f"{what}.rules[{i}]"
        rn = r.fields(raw, raw_rules.pos(i), rw, {"resource", "actions"})
        if rn is None:
            continue
        resource = r.string(rn, "resource", rw, required=True, pattern=_RESOURCE_RE)
        actions = rn.get("actions", [])
        if not isinstance(actions, SourceList) or not actions:
            r.problem(rn.pos("actions") if "actions" in rn else rn.pos(), f"{rw}.actions must be a non-empty list")
            continue
        for j, raw_action in enumerate(actions):
            aw = f"{rw}.actions[{j}]"
            an = r.fields(raw_action, actions.pos(j), aw, {"action", "effect", "condition", "name", "output"})
            if an is None:
                continue
            rules.append(
                PrincipalRule(
                    resource=resource,
                    action=r.string(an, "action", aw, required=True),
                    effect=r.effect(an, aw),
                    condition=r.condition(an, aw),
                    output=r.output(an, aw),
                    name=_rule_name(r, an, aw),
                    position=actions.pos(j),
                    index=j + 1,
                )
            )
    return PrincipalPolicy(
        principal=r.string(p, "principal", what, required=True),
        version=r.string(p, "version", what, required=True, pattern=_VERSION_RE),
        scope=_scope(r, p, what),
        scope_permissions=r.scope_permissions(p, what),
        variables=_variables(r, p, top, what),
        constants=r.definitions(p, "constants", what, is_variables=False),
        rules=rules,
        position=top.pos("principalPolicy"),
    )


def _derived_roles(r: _Reader, node: SourceMap, top: SourceMap) -> DerivedRoles | None:
    what = "derivedRoles"
    p = r.fields(node, top.pos("derivedRoles"), what, {"name", "definitions", "variables", "constants"})
    if p is None:
        return None
    defs: list[DerivedRole] = []
    raw_defs = p.get("definitions", [])
    if not isinstance(raw_defs, SourceList) or not raw_defs:
        r.problem(
            p.pos("definitions") if "definitions" in p else p.pos(), f"{what}.definitions must be a non-empty list"
        )
        raw_defs = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_defs):
        dw = f"{what}.definitions[{i}]"
        dn = r.fields(raw, raw_defs.pos(i), dw, {"name", "parentRoles", "condition"})
        if dn is None:
            continue
        name = r.string(dn, "name", dw, required=True, pattern=_DERIVED_ROLE_NAME_RE)
        if name in seen:
            r.problem(
                dn.pos("name"),
                f'derived role "{name}" is defined more than once in {p.get("name")}',
                "duplicate definition",
            )
        seen.add(name)
        defs.append(
            DerivedRole(name, r.strings(dn, "parentRoles", dw, required=True), r.condition(dn, dw), raw_defs.pos(i))
        )
    return DerivedRoles(
        name=r.string(p, "name", what, required=True, pattern=_DERIVED_ROLE_NAME_RE),
        definitions=defs,
        variables=_variables(r, p, top, what),
        constants=r.definitions(p, "constants", what, is_variables=False),
        position=top.pos("derivedRoles"),
    )


def _role_policy(r: _Reader, node: SourceMap, top: SourceMap) -> RolePolicy | None:
    what = "rolePolicy"
    p = r.fields(
        node,
        top.pos("rolePolicy"),
        what,
        {"role", "scope", "parentRoles", "rules", "version", "scopePermissions", "variables", "constants"},
    )
    if p is None:
        return None
    rules: list[RoleRule] = []
    raw_rules = p.get("rules", [])
    if not isinstance(raw_rules, SourceList):
        r.problem(p.pos("rules"), f"{what}.rules must be a list")
        raw_rules = []
    for i, raw in enumerate(raw_rules):
        rw = f"{what}.rules[{i}]"
        rn = r.fields(raw, raw_rules.pos(i), rw, {"resource", "allowActions", "condition", "name", "output"})
        if rn is None:
            continue
        rules.append(
            RoleRule(
                resource=r.string(rn, "resource", rw, required=True, pattern=_RESOURCE_RE),
                allow_actions=r.strings(rn, "allowActions", rw, required=True),
                condition=r.condition(rn, rw),
                position=raw_rules.pos(i),
                name=_rule_name(r, rn, rw),
                output=r.output(rn, rw),
            )
        )
    permissions = r.scope_permissions(p, what)
    if permissions == OVERRIDE_PARENT:
        r.problem(
            p.pos("scopePermissions"),
            f"{what}.scopePermissions must be one of "
            "[SCOPE_PERMISSIONS_REQUIRE_PARENTAL_CONSENT_FOR_ALLOWS, SCOPE_PERMISSIONS_UNSPECIFIED]",
        )
    return RolePolicy(
        role=r.string(p, "role", what, required=True, pattern=_ROLE_RE),
        scope=_scope(r, p, what),
        parent_roles=r.strings(p, "parentRoles", what),
        rules=rules,
        position=top.pos("rolePolicy"),
        scope_permissions=permissions,
        version=r.string(p, "version", what, pattern=_VERSION_RE) or "default",
        variables=_variables(r, p, top, what),
        constants=r.definitions(p, "constants", what, is_variables=False),
    )


def _export_variables(r: _Reader, node: SourceMap, top: SourceMap) -> ExportVariables | None:
    what = "exportVariables"
    p = r.fields(node, top.pos("exportVariables"), what, {"name", "definitions"})
    if p is None:
        return None
    defs = Definitions()
    if "definitions" in p:
        r._local(p, "definitions", what, True, defs)
    return ExportVariables(
        r.string(p, "name", what, required=True, pattern=_DERIVED_ROLE_NAME_RE), defs.local, top.pos("exportVariables")
    )


def _export_constants(r: _Reader, node: SourceMap, top: SourceMap) -> ExportConstants | None:
    what = "exportConstants"
    p = r.fields(node, top.pos("exportConstants"), what, {"name", "definitions"})
    if p is None:
        return None
    defs = Definitions()
    if "definitions" in p:
        r._local(p, "definitions", what, False, defs)
    return ExportConstants(
        r.string(p, "name", what, required=True, pattern=_DERIVED_ROLE_NAME_RE),
        defs.local,
        top.pos("exportConstants"),
        defs.local_positions,
    )


_KINDS = {
    "resourcePolicy": _resource_policy,
    "principalPolicy": _principal_policy,
    "derivedRoles": _derived_roles,
    "rolePolicy": _role_policy,
    "exportVariables": _export_variables,
    "exportConstants": _export_constants,
}


def parse_policy(doc: Any, where: Position, problems: list[PolicyProblem]) -> Policy | None:
    """One policy from a loaded YAML document; None (with problems recorded) when it is invalid.

    A document marked ``disabled: true`` is valid and returns None without problems.
    """
    r = _Reader(problems)
    top = r.fields(doc, where, "policy", {"apiVersion", "description", "disabled", "metadata", "variables", *_KINDS})
    if top is None:
        return None
    if top.get("apiVersion") != "api.cerbos.dev/v1":
        r.problem(top.pos("apiVersion") if "apiVersion" in top else top.pos(), 'apiVersion must be "api.cerbos.dev/v1"')
    kinds = [k for k in _KINDS if k in top]
    if len(kinds) != 1:
        r.problem(top.pos(), "a policy needs exactly one of: " + ", ".join(_KINDS))
        return None
    before = len(problems)
    policy = _KINDS[kinds[0]](r, top[kinds[0]], top)
    if len(problems) > before:
        return None
    if top.get("disabled") is True:
        return None
    return policy
