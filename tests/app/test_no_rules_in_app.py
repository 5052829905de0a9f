"""The app carries no rule of its own: no role name (outside the demo data, which creates the demo
accounts) and no effect string in app/; who may do what lives in policies/ only."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
DEMO_DATA = APP / "services" / "demo_data.py"


def policy_roles() -> set[str]:
    """Every role the policies name (rules and derived roles' parents)."""
    roles: set[str] = set()
    for path in (ROOT / "policies").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            for rule in doc.get("resourcePolicy", {}).get("rules", []):
                roles.update(rule.get("roles", []))
            for definition in doc.get("derivedRoles", {}).get("definitions", []):
                roles.update(definition.get("parentRoles", []))
    return roles - {"*"}


def literals(tree: ast.AST) -> list[ast.Constant]:
    """String constants, except dictionary keys and subscripts (data fields such as "patient")."""
    keys = {id(k) for node in ast.walk(tree) if isinstance(node, ast.Dict) for k in node.keys if k is not None}
    keys |= {id(node.slice) for node in ast.walk(tree) if isinstance(node, ast.Subscript)}
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in keys]


def test_the_policies_name_the_roles_this_test_looks_for() -> None:
    assert {
        "physician",
        "nurse",
        "er_physician",
        "manufacturer_engineer",
        "compliance_officer",
        "hospital_admin",
        "delegated_caregiver",
        "patient",
    } <= policy_roles()


def test_no_role_name_and_no_effect_string_in_the_app() -> None:
    roles = policy_roles()
    found = []
    for path in APP.rglob("*.py"):
        if path == DEMO_DATA:
            continue
        for node in literals(ast.parse(path.read_text())):
            if node.value in roles or node.value.startswith("EFFECT_"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, "rules in the app (they belong in policies/):\n" + "\n".join(found)
