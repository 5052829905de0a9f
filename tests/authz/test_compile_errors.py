"""Broken policies: ``cerbos compile`` and ``ccc-authz compile`` must reject the same ones, and
ours must say what is wrong and where (file:line:col) without stopping at the first problem."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from authz.cli import EXIT_POLICY_ERRORS, build_parser, cmd_compile
from tests.support.cerbos_pdp import compile_dir

HEAD = "apiVersion: api.cerbos.dev/v1\n"
GOOD_RULE = '    - actions: ["view"]\n      effect: EFFECT_ALLOW\n      roles: ["user"]\n'


def resource(rules: str = GOOD_RULE, extra: str = "", kind: str = "doc", version: str = "default") -> str:
    return f"{HEAD}resourcePolicy:\n  version: {version}\n  resource: {kind}\n{extra}  rules:\n{rules}"


def condition(expr: str) -> str:
    return GOOD_RULE + f"      condition:\n        match:\n          expr: {expr}\n"


# name -> (files, text that our message must contain)
BROKEN: dict[str, tuple[dict[str, str], str]] = {
    "unknown_field": ({"a.yaml": resource(GOOD_RULE + "      colour: red\n")}, 'unknown field "colour"'),
    "bad_effect": ({"a.yaml": resource(GOOD_RULE.replace("EFFECT_ALLOW", "EFFECT_MAYBE"))}, "effect"),
    "missing_derived_roles_import": (
        {"a.yaml": resource(extra="  importDerivedRoles: [nowhere]\n")},
        '"nowhere" cannot be found',
    ),
    "unknown_derived_role": (
        {"a.yaml": resource('    - actions: ["view"]\n      effect: EFFECT_ALLOW\n      derivedRoles: ["owner"]\n')},
        'unknown derived role "owner"',
    ),
    "cel_syntax": ({"a.yaml": resource(condition('"R.attr.x == "'))}, "Syntax error"),
    "cel_type_error": ({"a.yaml": resource(condition('"1 + 2.0 > 1"'))}, "no matching overload"),
    "cel_unknown_function": ({"a.yaml": resource(condition('"frobnicate(R.attr.x)"'))}, "frobnicate"),
    "cel_unknown_field": ({"a.yaml": resource(condition('"P.nickname == 1"'))}, "undefined field 'nickname'"),
    "undefined_variable": ({"a.yaml": resource(condition('"V.nope"'))}, "undefined variable 'nope'"),
    "undefined_constant": ({"a.yaml": resource(condition('"C.nope == 1"'))}, "undefined constant 'nope'"),
    "bad_duration_literal": (
        {"a.yaml": resource(condition('\'duration("1d") > duration("1h")\''))},
        "invalid duration argument",
    ),
    "duplicate_policy": ({"a.yaml": resource(), "b.yaml": resource()}, "duplicate policy"),
    "missing_scope_ancestor": (
        {"a.yaml": resource(extra="  scope: acme.hr\n"), "b.yaml": resource()},
        "missing ancestor",
    ),
    "cyclic_variables": (
        {"a.yaml": resource(condition('"V.a"'), extra="  variables:\n    local:\n      a: V.b\n      b: V.a\n")},
        "cycle",
    ),
    "rule_without_roles": (
        {"a.yaml": resource('    - actions: ["view"]\n      effect: EFFECT_ALLOW\n')},
        "needs roles or derivedRoles",
    ),
    "empty_actions": (
        {"a.yaml": resource('    - actions: []\n      effect: EFFECT_ALLOW\n      roles: ["u"]\n')},
        "actions must not be empty",
    ),
    "two_documents": ({"a.yaml": resource() + "---\n" + resource(kind="other")}, "more than one YAML document"),
    "invalid_yaml": ({"a.yaml": resource() + "  oops: [unclosed\n"}, "invalid YAML"),
    "bad_api_version": ({"a.yaml": resource().replace("api.cerbos.dev/v1", "api.cerbos.dev/v2")}, "apiVersion"),
    "bad_version_name": ({"a.yaml": resource(version='"v 1"')}, "version"),
    "missing_variables_import": (
        {"a.yaml": resource(extra="  variables:\n    import: [gone]\n")},
        '"gone" cannot be found',
    ),
    "principal_without_principal": (
        {"a.yaml": f"{HEAD}principalPolicy:\n  version: default\n  rules: []\n"},
        "needs principal",
    ),
    "derived_role_without_parents": (
        {"a.yaml": f"{HEAD}derivedRoles:\n  name: dr\n  definitions:\n    - name: owner\n"},
        "parentRoles",
    ),
    "role_policy_override_parent": (
        {
            "a.yaml": f"{HEAD}rolePolicy:\n  role: jr\n  scope: acme\n  parentRoles: [user]\n"
            "  scopePermissions: SCOPE_PERMISSIONS_OVERRIDE_PARENT\n"
            "  rules:\n    - resource: doc\n      allowActions: [view]\n"
        },
        "scopePermissions must be one of",
    ),
    "role_policy_old_field_name": (
        {
            "a.yaml": f"{HEAD}rolePolicy:\n  role: jr\n  scope: acme\n  parentRoles: [user]\n"
            "  rules:\n    - resource: doc\n      permissibleActions: [view]\n"
        },
        'unknown field "permissibleActions"',
    ),
    "condition_not_boolean_block": (
        {"a.yaml": resource(GOOD_RULE + "      condition:\n        match: {}\n")},
        "exactly one of",
    ),
}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(text)


def _ours(root: Path) -> tuple[int, str]:
    out = io.StringIO()
    code = cmd_compile(build_parser().parse_args(["compile", str(root)]), out)
    return code, out.getvalue()


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_policy_is_rejected_by_both(case: str, tmp_path: Path) -> None:
    files, needle = BROKEN[case]
    _write(tmp_path, files)
    theirs = compile_dir(tmp_path)
    code, report = _ours(tmp_path)
    assert theirs.returncode == EXIT_POLICY_ERRORS, f"Cerbos accepted it:\n{theirs.stdout}{theirs.stderr}"
    assert code == EXIT_POLICY_ERRORS, report
    assert needle in report
    assert "a.yaml:" in report or "b.yaml:" in report  # every problem names its file:line:col


def test_good_policy_is_accepted_by_both(tmp_path: Path) -> None:
    _write(tmp_path, {"a.yaml": resource(condition('"R.attr.owner == P.id"'))})
    assert compile_dir(tmp_path).returncode == 0
    assert _ours(tmp_path)[0] == 0


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "a.yaml": resource(condition('"1 + 2.0 > 1"')),
            "b.yaml": resource(GOOD_RULE + "      colour: red\n", kind="other"),
            "c.yaml": resource(condition('"V.nope"'), kind="third"),
        },
    )
    code, report = _ours(tmp_path)
    assert code == EXIT_POLICY_ERRORS
    assert "a.yaml:" in report and "b.yaml:" in report and "c.yaml:" in report
    assert "3 error(s)" in report


def test_position_points_into_the_expression(tmp_path: Path) -> None:
    _write(tmp_path, {"a.yaml": resource(condition('"R.attr.owner == P.nickname"'))})
    _, report = _ours(tmp_path)
    line = next(ln for ln in report.splitlines() if "nickname" in ln and ln.startswith("a.yaml"))
    # the condition expr is on line 11; "nickname" starts 18 characters into the expression
    assert line.startswith("a.yaml:11:")
    column = int(line.split(":")[2].split()[0])
    text = (tmp_path / "a.yaml").read_text().splitlines()[10]
    assert text[column - 1 :].startswith("nickname")
