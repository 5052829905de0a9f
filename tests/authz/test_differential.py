"""Our engine against a real Cerbos 0.55 PDP: thousands of randomised requests per policy set,
with strict evaluation on and off, every effect and every output compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authz import Engine, EvalParams
from tests.authz.differential import random_requests
from tests.support.cerbos_pdp import CerbosPDP
from tests.support.policy_files import DERIVED_ROLES, resource_policy, write_policies

POLICY_SETS = Path(__file__).parent / "policysets"
REQUESTS_PER_SET = 1500


def _normalise(body: dict) -> dict:
    """Drops the call id and sorts effectiveDerivedRoles, which Cerbos lists in map order."""
    body = json.loads(json.dumps(body))
    body.pop("cerbosCallId", None)
    for result in body.get("results", []):
        roles = result.get("meta", {}).get("effectiveDerivedRoles")
        if roles:
            roles.sort()
    return body


# Engine settings a policy set is also checked under (Cerbos's engine configuration).
SETTINGS = {
    "scopes": [{"lenient_scope_search": True}],
    "clinic": [{"globals": {"environment": "prod", "max_grade": 7, "blocked": ["trudy"]}}],
}
CASES = [
    (name, strict, settings)
    for name in sorted(p.name for p in POLICY_SETS.iterdir() if p.is_dir())
    for settings in [{}, *SETTINGS.get(name, [])]
    for strict in (True, False)
]


@pytest.mark.parametrize(
    ("policy_set", "strict", "settings"),
    CASES,
    ids=[f"{n}-{'strict' if s else 'lax'}{'-' + '-'.join(c) if c else ''}" for n, s, c in CASES],
)
def test_engine_agrees_with_cerbos(policy_set: str, strict: bool, settings: dict) -> None:
    root = POLICY_SETS / policy_set
    engine = Engine.from_directory(root, EvalParams(strict_evaluation=strict, **settings))
    mismatches = []
    pdp_settings = {"globals_" if k == "globals" else k: v for k, v in settings.items()}
    with CerbosPDP(root, strict=strict, **pdp_settings) as pdp:
        for body in random_requests(policy_set, REQUESTS_PER_SET):
            theirs = _normalise(pdp.check(body))
            ours = _normalise(engine.check_request(body))
            if theirs != ours:
                mismatches.append((body, theirs, ours))
    detail = "\n".join(
        f"request: {json.dumps(b)}\n  cerbos: {json.dumps(t)}\n  ours:   {json.dumps(o)}" for b, t, o in mismatches[:5]
    )
    assert not mismatches, f"{len(mismatches)} of {REQUESTS_PER_SET} requests differ:\n{detail}"


QUIRK_POLICIES = {
    "roles.yaml": DERIVED_ROLES,
    "doc.yaml": resource_policy(
        "doc",
        derived_roles="roles",
        rules="""    - name: owners_read
      actions: [read, write, share]
      effect: EFFECT_ALLOW
      derivedRoles: [owner]
      condition:
        match:
          expr: R.attr.open == true
      output:
        when:
          ruleActivated: '"activated"'
          conditionNotMet: '"not met"'
""",
    ),
}


def test_a_skipped_derived_role_rule_reports_not_met_for_its_later_actions_as_cerbos_does(tmp_path: Path) -> None:
    """Cerbos remembers a rule's outcome per request: when the principal lacks the derived role,
    the rule's first action is skipped silently and its later actions report conditionNotMet.
    Decision plans, settling and per-check caches must keep exactly that."""
    write_policies(tmp_path, QUIRK_POLICIES)
    body = {
        "requestId": "q",
        "principal": {"id": "bob", "roles": ["user"]},
        "resources": [
            {"actions": ["read", "write", "share"], "resource": {"kind": "doc", "id": k, "attr": attr}}
            for k, attr in (
                ("d", {"owner": "alice", "open": True}),
                ("e", {"owner": "bob", "open": False}),
                ("f", {"owner": "bob", "open": True}),
            )
        ],
    }
    engine = Engine.from_directory(tmp_path)
    with CerbosPDP(tmp_path) as pdp:
        theirs = _normalise(pdp.check(body))
    ours = _normalise(engine.check_request(body))
    assert ours == theirs
    first = ours["results"][0]
    assert [o["action"] for o in first["outputs"]] == ["write", "share"]  # "read" was the silent one


# Attributes read one by name (the engine then converts each as it reads it), or as whole maps
# (converted up front): JSON numbers must be doubles either way, nested ones included.
NAMED_RULES = """    - actions: [read]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.n + 1.0 == 3.0 && type(R.attr.n) == double && R.attr.m.k / 2.0 == 2.0
      output:
        when:
          ruleActivated: '[R.attr.n, R.attr.l, R.attr.m, P.attr.age, has(R.attr.missing)]'
          conditionNotMet: 'R.attr.l[0] + 0.5'
    - actions: [write]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.n == 2 && P.attr.age > 17
"""
WHOLE_RULES = (
    NAMED_RULES
    + """    - actions: [list]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: size(R.attr) > 2 && R.attr["n"] + 0.0 == 2.0
      output:
        when:
          ruleActivated: 'R.attr'
          conditionNotMet: 'request.principal.attr'
"""
)


@pytest.mark.parametrize(
    ("rules", "raw"), [(NAMED_RULES, {"P", "R"}), (WHOLE_RULES, set())], ids=["named-attributes", "whole-maps"]
)
def test_json_numbers_in_attributes_are_doubles_read_by_name_or_as_maps(
    tmp_path: Path, rules: str, raw: set[str]
) -> None:
    write_policies(tmp_path, {"gauge.yaml": resource_policy("gauge", rules)})
    engine = Engine.from_directory(tmp_path)
    assert set(engine.policy_set.raw_attrs) == raw
    bodies = [
        {
            "requestId": f"n{i}",
            "principal": {"id": "u", "roles": ["user"], "attr": {"age": age}},
            "resources": [
                {"actions": ["read", "write", "list"], "resource": {"kind": "gauge", "id": "g", "attr": attr}}
            ],
        }
        for i, (age, attr) in enumerate(
            [
                (30, {"n": 2, "l": [1, 2.5, "x"], "m": {"k": 4, "deep": [{"z": 7}]}}),
                (12, {"n": 2.0, "l": [3], "m": {"k": 4.0}}),
                (18, {"n": 3, "l": [], "m": {}}),
                (40, {"n": True, "l": [1], "m": {"k": "4"}}),
            ]
        )
    ]
    with CerbosPDP(tmp_path) as pdp:
        theirs = [_normalise(pdp.check(body)) for body in bodies]
    ours = [_normalise(engine.check_request(body)) for body in bodies]
    assert ours == theirs
    assert ours[0]["results"][0]["actions"]["read"] == "EFFECT_ALLOW"  # the arithmetic held
