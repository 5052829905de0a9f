"""The shape Cerbos requires of test suites and test fixtures (its protobuf messages and their
validation rules), checked on the YAML as loaded, so that each problem names its line and column.

Each check returns Cerbos-style problem lines, ``LINE:COL path: message``; any problem makes the
suite (or the fixture file, and so every suite beside it) ERROR, as ``cerbos compile`` does.
"""

from __future__ import annotations

import re
from typing import Any

from .cel.timefuncs import parse_timestamp
from .cel.values import CelError
from .yamlsrc import Position, SourceList, SourceMap

EFFECTS = ("EFFECT_ALLOW", "EFFECT_DENY")
_VERSION = re.compile(r"^\w*$")
_SCOPE = re.compile(r"^(^$|\.|[0-9a-zA-Z][\w\-]*(\.\w[\w\-]*)*)$")

_SUITE = {
    "name",
    "description",
    "skip",
    "skipReason",
    "tests",
    "principals",
    "resources",
    "auxData",
    "options",
    "$schema",
    "principalGroups",
    "resourceGroups",
}
_TEST = {"name", "description", "skip", "skipReason", "input", "expected", "options"}
_INPUT = {"principals", "resources", "actions", "auxData", "principalGroups", "resourceGroups"}
_EXPECTATION = {
    "principal",
    "resource",
    "actions",
    "outputs",
    "principals",
    "resources",
    "principalGroups",
    "resourceGroups",
}
_OPTIONS = {"now", "lenientScopeSearch", "globals", "defaultPolicyVersion", "defaultScope", "strictEvaluation"}
_PRINCIPAL = {"id", "policyVersion", "roles", "attr", "scope"}
_RESOURCE = {"kind", "policyVersion", "id", "attr", "scope"}
_AUX_DATA = {"jwt", "jwts"}


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def at(self, position: Position | None, path: str, message: str) -> None:
        where = f"{position.line}:{position.column} " if position is not None else ""
        self.problems.append(f"{where}{path}: {message}" if path else f"{where}{message}")

    def fields(self, node: Any, path: str, allowed: set[str], position: Position | None = None) -> SourceMap | None:
        """``node`` as a mapping whose keys are all known (protojson rejects an unknown field)."""
        if not isinstance(node, SourceMap):
            if node is not None:
                self.at(_pos(node, position), path, "must be an object")
            return None
        for key in node:
            if key not in allowed:
                self.problems.append(f'{_where(node.key_pos(key))}unknown field "{key}"')
        return node

    def string(self, node: SourceMap, key: str, path: str, required: bool = False) -> str:
        value = node.get(key)
        if value is None or value == "":
            if required:
                self.at(None, _join(path, key), "value is required")
            return ""
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            self.at(node.pos(key), _join(path, key), "must be a string")
            return ""
        return str(value)

    def strings(self, node: SourceMap, key: str, path: str, required: bool = False) -> list[str]:
        """A list of distinct, non-empty strings."""
        value = node.get(key)
        if value is None or (isinstance(value, list) and not value):
            if required:
                self.at(None, _join(path, key), "value is required")
            return []
        if not isinstance(value, SourceList):
            self.at(node.pos(key), _join(path, key), "must be a list")
            return []
        out: list[str] = []
        for i, item in enumerate(value):
            item_path = f"{_join(path, key)}[{i}]"
            if not isinstance(item, str) or not item:
                self.at(value.pos(i), item_path, "value length must be at least 1 characters")
            elif item in out:
                self.at(value.pos(i), _join(path, key), "repeated value must contain unique items")
            else:
                out.append(item)
        return out

    def boolean(self, node: SourceMap, key: str, path: str) -> None:
        if key in node and not isinstance(node[key], bool) and node[key] is not None:
            self.at(node.pos(key), _join(path, key), "must be a boolean")

    def mapping(self, node: SourceMap, key: str, path: str) -> SourceMap | None:
        value = node.get(key)
        if value is None:
            return None
        if not isinstance(value, SourceMap):
            self.at(node.pos(key), _join(path, key), "must be an object")
            return None
        return value


def _where(position: Position) -> str:
    return f"{position.line}:{position.column} "


def _pos(node: Any, fallback: Position | None) -> Position | None:
    return getattr(node, "position", fallback)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _key(path: str, name: str) -> str:
    return f'{path}["{name}"]'


def check_principal(c: _Checker, node: Any, path: str, position: Position | None) -> None:
    p = c.fields(node, path, _PRINCIPAL, position)
    if p is None:
        if node is None:
            c.at(position, path, "value is required")
        return
    c.string(p, "id", path, required=True)
    _pattern(c, p, "policyVersion", path, _VERSION)
    _pattern(c, p, "scope", path, _SCOPE)
    c.strings(p, "roles", path, required=True)
    c.mapping(p, "attr", path)


def check_resource(c: _Checker, node: Any, path: str, position: Position | None) -> None:
    r = c.fields(node, path, _RESOURCE, position)
    if r is None:
        if node is None:
            c.at(position, path, "value is required")
        return
    c.string(r, "kind", path, required=True)
    c.string(r, "id", path, required=True)
    _pattern(c, r, "policyVersion", path, _VERSION)
    _pattern(c, r, "scope", path, _SCOPE)
    c.mapping(r, "attr", path)


def check_aux_data(c: _Checker, node: Any, path: str, position: Position | None) -> None:
    a = c.fields(node, path, _AUX_DATA, position)
    if a is None:
        return
    c.mapping(a, "jwt", path)
    if a.get("jwt") is not None and a.get("jwts") is not None:
        c.at(a.position, path, "Only one of the jwt or jwts fields must be set")


def _pattern(c: _Checker, node: SourceMap, key: str, path: str, pattern: re.Pattern[str]) -> None:
    value = c.string(node, key, path)
    if value and not pattern.match(value):
        c.at(node.pos(key), _join(path, key), f"value does not match regex pattern `{pattern.pattern}`")


def _each_named(c: _Checker, node: SourceMap, key: str, path: str) -> list[tuple[str, Any, Position]]:
    value = c.mapping(node, key, path)
    if value is None:
        return []
    return [(name, item, value.pos(name)) for name, item in value.items()]


def _groups(c: _Checker, node: SourceMap, key: str, members: str, path: str) -> None:
    for name, group, where in _each_named(c, node, key, path):
        g = c.fields(group, _key(_join(path, key), name), {members}, where)
        if g is not None:
            c.strings(g, members, _key(_join(path, key), name), required=True)


def check_options(c: _Checker, node: Any, path: str) -> None:
    o = c.fields(node, path, _OPTIONS)
    if o is None:
        return
    if o.get("now") is not None:
        text = o["now"]
        try:
            parse_timestamp(str(text))
        except CelError:
            c.problems.append(f'{_where(o.pos("now"))}invalid timestamp value "{text}"')
    for key in ("lenientScopeSearch", "strictEvaluation"):
        c.boolean(o, key, path)
    c.mapping(o, "globals", path)
    c.string(o, "defaultPolicyVersion", path)
    c.string(o, "defaultScope", path)


def suite_problems(doc: Any) -> list[str]:
    """What Cerbos finds wrong with a test suite document (none: it loads)."""
    c = _Checker()
    suite = c.fields(doc, "", _SUITE)
    if suite is None:
        return c.problems or ["invalid document: contents are not valid YAML or JSON"]
    c.string(suite, "name", "", required=True)
    c.boolean(suite, "skip", "")
    for name, item, where in _each_named(c, suite, "principals", ""):
        check_principal(c, item, _key("principals", name), where)
    for name, item, where in _each_named(c, suite, "resources", ""):
        check_resource(c, item, _key("resources", name), where)
    for name, item, where in _each_named(c, suite, "auxData", ""):
        check_aux_data(c, item, _key("auxData", name), where)
    _groups(c, suite, "principalGroups", "principals", "")
    _groups(c, suite, "resourceGroups", "resources", "")
    if suite.get("options") is not None:
        check_options(c, suite["options"], "options")
    tests = suite.get("tests")
    if not tests:
        c.at(None, "tests", "value is required")
    elif not isinstance(tests, SourceList):
        c.at(suite.pos("tests"), "tests", "must be a list")
    else:
        for i, test in enumerate(tests):
            _check_test(c, test, f"tests[{i}]", tests.pos(i))
    return c.problems


def _check_test(c: _Checker, node: Any, path: str, position: Position) -> None:
    t = c.fields(node, path, _TEST, position)
    if t is None:
        return
    c.string(t, "name", path, required=True)
    c.boolean(t, "skip", path)
    if t.get("options") is not None:
        check_options(c, t["options"], _join(path, "options"))
    inp = c.fields(t.get("input"), _join(path, "input"), _INPUT, t.pos("input"))
    if inp is None:
        if t.get("input") is None:
            c.at(None, _join(path, "input"), "value is required")
    else:
        ip = _join(path, "input")
        principals = c.strings(inp, "principals", ip)
        principal_groups = c.strings(inp, "principalGroups", ip)
        resources = c.strings(inp, "resources", ip)
        resource_groups = c.strings(inp, "resourceGroups", ip)
        c.strings(inp, "actions", ip, required=True)
        c.string(inp, "auxData", ip)
        if not principals and not principal_groups:
            c.at(inp.position, ip, "principals or principalGroups must be present")
        if not resources and not resource_groups:
            c.at(inp.position, ip, "resources or resourceGroups must be present")
    expected = t.get("expected")
    if not expected:
        c.at(None, _join(path, "expected"), "value is required")
    elif not isinstance(expected, SourceList):
        c.at(t.pos("expected"), _join(path, "expected"), "must be a list")
    else:
        for i, e in enumerate(expected):
            _check_expectation(c, e, f"{_join(path, 'expected')}[{i}]", expected.pos(i))


def _check_expectation(c: _Checker, node: Any, path: str, position: Position) -> None:
    e = c.fields(node, path, _EXPECTATION, position)
    if e is None:
        return
    principal = c.string(e, "principal", path)
    principals = c.strings(e, "principals", path)
    principal_groups = c.strings(e, "principalGroups", path)
    resource = c.string(e, "resource", path)
    resources = c.strings(e, "resources", path)
    resource_groups = c.strings(e, "resourceGroups", path)
    actions = c.mapping(e, "actions", path)
    if not actions:
        c.at(None, _join(path, "actions"), "value is required")
    else:
        for action, effect in actions.items():
            if effect in EFFECTS:
                continue
            if effect in ("EFFECT_UNSPECIFIED", "EFFECT_NO_MATCH"):
                c.at(
                    actions.pos(action),
                    _key(_join(path, "actions"), action),
                    f"must be one of [{', '.join(EFFECTS)}]",
                )
            else:  # not an Effect at all: the document does not parse
                c.problems.append(f'{_where(actions.pos(action))}invalid enum value "{effect}"')
    outputs = e.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, SourceList):
            c.at(e.pos("outputs"), _join(path, "outputs"), "must be a list")
        else:
            for i, block in enumerate(outputs):
                bp = f"{_join(path, 'outputs')}[{i}]"
                b = c.fields(block, bp, {"action", "expected"}, outputs.pos(i))
                if b is None:
                    continue
                c.string(b, "action", bp, required=True)
                entries = b.get("expected")
                if not entries or not isinstance(entries, SourceList):
                    c.at(None, _join(bp, "expected"), "value is required")
                    continue
                for j, entry in enumerate(entries):
                    c.fields(entry, f"{_join(bp, 'expected')}[{j}]", {"src", "val"}, entries.pos(j))
    if not principal and not principals and not principal_groups:
        c.at(e.position, path, "principal, principals, or principalGroups must be present")
    if principal and principals:
        c.at(e.position, path, "principal and principals may not both be present")
    if not resource and not resources and not resource_groups:
        c.at(e.position, path, "resource, resources, or resourceGroups must be present")
    if resource and resources:
        c.at(e.position, path, "resource and resources may not both be present")


def fixture_problems(doc: Any, kind: str) -> list[str]:
    """What Cerbos finds wrong with a testdata file: ``kind`` is principals, resources or auxData."""
    c = _Checker()
    groups = {"principals": "principalGroups", "resources": "resourceGroups"}.get(kind)
    allowed = {kind, "$schema"} | ({groups} if groups else set())
    top = c.fields(doc, "", allowed)
    if top is None:
        return c.problems or ["invalid document: contents are not valid YAML or JSON"]
    check = {"principals": check_principal, "resources": check_resource, "auxData": check_aux_data}[kind]
    for name, item, where in _each_named(c, top, kind, ""):
        check(c, item, _key(kind, name), where)
    if groups:
        _groups(c, top, groups, kind, "")
    return c.problems
