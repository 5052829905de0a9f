"""The compile checks Cerbos makes, held against the real Cerbos 0.55 binary: each case below is a
small policy set of our own (written to a temporary directory) for one of the situations
Cerbos's own compile test data (internal/test/testdata/compile) covers; ``ccc-authz compile`` and
``cerbos compile`` must both accept it or both reject it, naming the same files, and where Cerbos
names a line, the same line.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from authz.compile import compile_policy_dir
from authz.errors import PolicyErrors
from tests.support.cerbos_pdp import compile_dir

HEADER = "apiVersion: api.cerbos.dev/v1\n"


def resource_policy(rules: str, extra: str = "", resource: str = "chart", scope: str = "") -> str:
    scope_line = f"  scope: {scope}\n" if scope else ""
    return (
        HEADER
        + f"resourcePolicy:\n  resource: {resource}\n  version: default\n{scope_line}"
        + textwrap.indent(textwrap.dedent(extra), "  ")
        + "  rules:\n"
        + textwrap.indent(textwrap.dedent(rules), "    ")
    )


def rule(expr: str, roles: str = "[nurse]", action: str = "view") -> str:
    return f"""\
    - actions: [{action}]
      effect: EFFECT_ALLOW
      roles: {roles}
      condition:
        match:
          expr: {json.dumps(expr)}
    """


EXPORT_CONSTANTS = HEADER + "exportConstants:\n  name: ward_limits\n  definitions:\n    max_beds: 12\n    floor: 3\n"
EXPORT_CONSTANTS_2 = HEADER + "exportConstants:\n  name: more_limits\n  definitions:\n    floor: 4\n"
EXPORT_VARIABLES = (
    HEADER + "exportVariables:\n  name: ward_vars\n  definitions:\n    on_ward: R.attr.ward == P.attr.ward\n"
)
EXPORT_VARIABLES_2 = HEADER + "exportVariables:\n  name: other_vars\n  definitions:\n    on_ward: 'true'\n"
DERIVED = HEADER + (
    "derivedRoles:\n  name: ward_roles\n  definitions:\n"
    "    - name: ward_nurse\n      parentRoles: [nurse]\n"
    "      condition:\n        match:\n          expr: R.attr.ward == P.attr.ward\n"
)

CASES: dict[str, dict[str, str]] = {
    "valid": {
        "chart.yaml": resource_policy(
            rule("V.on_ward && C.max_beds > 3 && G.site == 'x' || R.attr['ward'] == P.attr['ward']"),
            "constants:\n  import: [ward_limits]\nvariables:\n  import: [ward_vars]\n",
        ),
        "c.yaml": EXPORT_CONSTANTS,
        "v.yaml": EXPORT_VARIABLES,
    },
    "constant defined locally and by import": {
        "chart.yaml": resource_policy(
            rule("C.floor > 1"), "constants:\n  import: [ward_limits]\n  local:\n    floor: 2\n"
        ),
        "c.yaml": EXPORT_CONSTANTS,
    },
    "constant defined by two imports": {
        "chart.yaml": resource_policy(rule("C.floor > 1"), "constants:\n  import: [ward_limits, more_limits]\n"),
        "c.yaml": EXPORT_CONSTANTS,
        "c2.yaml": EXPORT_CONSTANTS_2,
    },
    "variable defined locally and by import": {
        "chart.yaml": resource_policy(
            rule("V.on_ward"), "variables:\n  import: [ward_vars]\n  local:\n    on_ward: R.attr.ward == 'a'\n"
        ),
        "v.yaml": EXPORT_VARIABLES,
    },
    "variable defined by import, locally and at the top level": {
        "chart.yaml": resource_policy(
            rule("V.on_ward"), "variables:\n  import: [ward_vars]\n  local:\n    on_ward: R.attr.ward == 'a'\n"
        ).replace(HEADER, HEADER + "variables:\n  on_ward: 'false'\n"),
        "v.yaml": EXPORT_VARIABLES,
    },
    "variable defined by two imports": {
        "chart.yaml": resource_policy(rule("V.on_ward"), "variables:\n  import: [ward_vars, other_vars]\n"),
        "v.yaml": EXPORT_VARIABLES,
        "v2.yaml": EXPORT_VARIABLES_2,
    },
    "derived roles nobody imports are not compiled": {
        "roles.yaml": DERIVED.replace("R.attr.ward ==", "R.attr.ward ^^")
    },
    "variable redefined in derived roles": {
        "chart.yaml": resource_policy(
            "- actions: [view]\n  effect: EFFECT_ALLOW\n  derivedRoles: [ward_nurse]\n",
            "importDerivedRoles: [ward_roles]\n",
        ),
        "roles.yaml": DERIVED.replace(
            "  definitions:\n",
            "  variables:\n    import: [ward_vars]\n    local:\n      on_ward: 'true'\n  definitions:\n",
        ),
        "v.yaml": EXPORT_VARIABLES,
    },
    "V index": {
        "chart.yaml": resource_policy(rule('V["on_ward"]'), "variables:\n  local:\n    on_ward: 'true'\n"),
    },
    "variables index": {
        "chart.yaml": resource_policy(rule('variables["on_ward"]'), "variables:\n  local:\n    on_ward: 'true'\n"),
    },
    "C index": {"chart.yaml": resource_policy(rule('C["floor"] > 1'), "constants:\n  local:\n    floor: 2\n")},
    "constants index": {
        "chart.yaml": resource_policy(rule('constants["floor"] > 1'), "constants:\n  local:\n    floor: 2\n")
    },
    "G index": {"chart.yaml": resource_policy(rule('G["site"] == "x"'))},
    "globals index": {"chart.yaml": resource_policy(rule('globals["site"] == "x"'))},
    "index in an output": {
        "chart.yaml": resource_policy(
            """\
            - actions: [view]
              effect: EFFECT_ALLOW
              roles: [nurse]
              output:
                when:
                  ruleActivated: V["x"]
            """,
            "variables:\n  local:\n    x: '1'\n",
        )
    },
    "index in a variable": {
        "chart.yaml": resource_policy(rule("V.y"), "variables:\n  local:\n    x: '1'\n    y: V['x'] == 1\n")
    },
    "undefined variable": {"chart.yaml": resource_policy(rule("V.nothing"))},
    "undefined constant": {"chart.yaml": resource_policy(rule("C.nothing > 1"))},
    "variables in a cycle": {
        "chart.yaml": resource_policy(rule("V.a"), "variables:\n  local:\n    a: V.b\n    b: V.a\n"),
    },
    "missing constants import": {"chart.yaml": resource_policy(rule("true"), "constants:\n  import: [nowhere]\n")},
    "missing variables import": {"chart.yaml": resource_policy(rule("true"), "variables:\n  import: [nowhere]\n")},
    "missing derived roles import": {
        "chart.yaml": resource_policy(
            "- actions: [view]\n  effect: EFFECT_ALLOW\n  derivedRoles: [ward_nurse]\n",
            "importDerivedRoles: [nowhere]\n",
        )
    },
    "unknown derived role": {
        "chart.yaml": resource_policy(
            "- actions: [view]\n  effect: EFFECT_ALLOW\n  derivedRoles: [head_nurse]\n",
            "importDerivedRoles: [ward_roles]\n",
        ),
        "roles.yaml": DERIVED,
    },
    "ambiguous derived role": {
        "chart.yaml": resource_policy(
            "- actions: [view]\n  effect: EFFECT_ALLOW\n  derivedRoles: [ward_nurse]\n",
            "importDerivedRoles: [ward_roles, ward_roles_2]\n",
        ),
        "roles.yaml": DERIVED,
        "roles2.yaml": DERIVED.replace("name: ward_roles", "name: ward_roles_2"),
    },
    "rule without roles": {"chart.yaml": resource_policy("- actions: [view]\n  effect: EFFECT_ALLOW\n")},
    "bad CEL": {"chart.yaml": resource_policy(rule("R.attr.ward ^^ true"))},
    "YAML comment in a condition": {"chart.yaml": resource_policy(rule("# note\nR.attr.ward == 'a'"))},
    "empty output": {
        "chart.yaml": resource_policy(
            "- actions: [view]\n  effect: EFFECT_ALLOW\n  roles: [nurse]\n  output:\n    when: {}\n"
        )
    },
    "script condition": {
        "chart.yaml": resource_policy(
            "- actions: [view]\n  effect: EFFECT_ALLOW\n  roles: [nurse]\n  condition:\n    script: x\n"
        )
    },
    "scoped policy without its parent": {"chart.yaml": resource_policy(rule("true"), scope="north.ward1")},
    "constant named with a reserved word": {
        "chart.yaml": resource_policy(rule("true"), "constants:\n  local:\n    'null': 1\n")
    },
    "variable named with a reserved word": {
        "chart.yaml": resource_policy(rule("true"), "variables:\n  local:\n    'true': 'false'\n")
    },
    "constant not an identifier": {"chart.yaml": resource_policy(rule("true"), "constants:\n  local:\n    0xA: 1\n")},
    "variable not an identifier": {"chart.yaml": resource_policy(rule("true"), "variables:\n  local:\n    a.b: '1'\n")},
}


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def cerbos_errors(root: Path) -> tuple[int, list[dict[str, object]]]:
    """``cerbos compile``'s exit status and its errors (compile errors and lint errors alike)."""
    done = compile_dir(root, "--skip-tests", "--ignore-schemas", "-o", "json")
    if done.returncode == 0:
        return 0, []
    report = json.loads(done.stdout)
    errors: list[dict[str, object]] = list(report.get("compileErrors", {}).get("errors", []))
    for kind, entries in report.get("lintErrors", {}).items():
        for entry in entries:
            errors.append({**entry, "file": entry.get("file") or entry.get("importing_file") or kind})
    return done.returncode, errors


def our_errors(root: Path) -> list[tuple[str, int, str]]:
    try:
        compile_policy_dir(root, check_schemas=False)
    except PolicyErrors as exc:
        return [(p.position.file, p.position.line, p.message) for p in exc.problems]
    return []


@pytest.mark.parametrize("case", list(CASES))
def test_same_verdict_as_cerbos(tmp_path: Path, case: str) -> None:
    root = _write(tmp_path / "policies", CASES[case])
    status, theirs = cerbos_errors(root)
    ours = our_errors(root)
    assert bool(ours) == bool(theirs), (theirs, ours)
    assert (status == 3) == bool(ours)
    files = {str(e["file"]) for e in theirs if not str(e["file"]).startswith("missing_scope")}
    assert files <= {file for file, _, _ in ours}
    lines = {(str(e["file"]), e["position"]["line"]) for e in theirs if isinstance(e.get("position"), dict)}  # type: ignore[index]
    if case not in _LINES_DIFFER:
        assert lines <= {(file, line) for file, line, _ in ours}


# Cerbos places a CEL error at the start of the expression's YAML value; we place it at the token
# in error, which can be on a later line of a block scalar (the verdict and file agree).
_LINES_DIFFER = {"YAML comment in a condition", "rule without roles", "script condition", "unknown derived role"}


@pytest.mark.parametrize(
    "case",
    [
        "constant defined locally and by import",
        "constant defined by two imports",
        "variable defined locally and by import",
        "variable defined by import, locally and at the top level",
        "variable defined by two imports",
    ],
)
def test_redefinition_in_cerbos_words(tmp_path: Path, case: str) -> None:
    root = _write(tmp_path / "policies", CASES[case])
    _, theirs = cerbos_errors(root)
    assert sorted(str(e["description"]) for e in theirs) == sorted(message for _, _, message in our_errors(root))


@pytest.mark.parametrize("name", ["V", "variables", "C", "constants", "G", "globals"])
def test_index_on_policy_maps_in_cerbos_words(tmp_path: Path, name: str) -> None:
    root = _write(tmp_path / "policies", {"chart.yaml": resource_policy(rule(f'{name}["x"] == 1'))})
    _, theirs = cerbos_errors(root)
    assert any(
        "found no matching overload for '_[_]' applied to '(cerbos.Variables, string)'" in str(e["description"])
        for e in theirs
    )
    assert any(
        "found no matching overload for '_[_]' applied to '(cerbos.Variables, string)'" in message
        for _, _, message in our_errors(root)
    )
