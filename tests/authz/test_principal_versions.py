"""Two details of Cerbos 0.55's walk, found by comparing with the real PDP on mutated requests:

- a principal's own rules are looked up by the resource's policy version (the principal's version
  only names the principal policy: some principal policy of that version, anyone's, in the
  principal's scopes), so a principal asking for an unknown version still meets its rules;
- the variables of derived roles, when ``runtime.effectiveDerivedRoles`` is being worked out, are
  evaluated and cached apart from the same variables read when a rule checks its derived role
  (which sees that runtime): the answer does not depend on which action reads ``runtime`` first.

Strict and lax, effects, matched policies and outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authz import Engine, EvalParams
from tests.authz.test_differential import _normalise
from tests.support.cerbos_pdp import CerbosPDP
from tests.support.policy_files import write_policies

FILES = {
    "report.yaml": """apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: report
  version: default
  importDerivedRoles: [report_roles]
  variables:
    local:
      seen: runtime.effectiveDerivedRoles
  rules:
    - name: peek
      actions: [peek]
      effect: EFFECT_ALLOW
      roles: [analyst]
      output:
        when:
          ruleActivated: V.seen
    - name: lonely
      actions: [lonely]
      effect: EFFECT_ALLOW
      derivedRoles: [alone, also_alone]
    - name: read
      actions: [read]
      effect: EFFECT_ALLOW
      roles: [analyst]
""",
    "report_roles.yaml": """apiVersion: api.cerbos.dev/v1
derivedRoles:
  name: report_roles
  variables:
    local:
      nobody_yet: size(runtime.effectiveDerivedRoles) == 0
  definitions:
    - name: alone
      parentRoles: [analyst]
      condition:
        match:
          expr: V.nobody_yet
    - name: also_alone
      parentRoles: [analyst]
      condition:
        match:
          expr: V.nobody_yet
""",
    "zoe.yaml": """apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: zoe
  version: default
  rules:
    - resource: report
      actions:
        - action: "*"
          name: zoe_everything
          effect: EFFECT_ALLOW
          condition:
            match:
              expr: R.attr.draft == true
""",
    "zoe_v1.yaml": """apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: zoe
  version: v1
  rules:
    - resource: report
      actions:
        - action: read
          effect: EFFECT_DENY
""",
    "yan_v3.yaml": """apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: yan
  version: v3
  rules:
    - resource: other
      actions:
        - action: read
          effect: EFFECT_ALLOW
""",
}


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
def test_principal_rules_by_resource_version_and_derived_role_variables_as_cerbos(tmp_path: Path, strict: bool) -> None:
    write_policies(tmp_path, FILES)
    bodies = []
    for pid in ("zoe", "xia"):
        for pversion in ("", "v1", "v3", "v9"):
            for attr in ({"draft": True}, {"draft": False}, {}):
                for actions in (["peek", "lonely", "read", "other"], ["lonely", "peek", "read"]):
                    principal = {"id": pid, "roles": ["analyst"], "policyVersion": pversion}
                    bodies.append(
                        {
                            "requestId": "v",
                            "includeMeta": True,
                            "principal": principal,
                            "resources": [
                                {"actions": actions, "resource": {"kind": "report", "id": "r", "attr": attr}}
                            ],
                        }
                    )
    engine = Engine.from_directory(tmp_path, EvalParams(strict_evaluation=strict))
    with CerbosPDP(tmp_path, strict=strict) as pdp:
        theirs = [_normalise(pdp.check(body)) for body in bodies]
    ours = [_normalise(engine.check_request(body)) for body in bodies]
    for body, t, o in zip(bodies, theirs, ours, strict=True):
        assert o == t, f"request: {json.dumps(body)}\n  cerbos: {json.dumps(t)}\n  ours:   {json.dumps(o)}"
    # zoe at version v9 (no principal policy of that version): her default rules still allow.
    v9_draft = ours[3 * 6]["results"][0]
    assert v9_draft["actions"]["other"] == "EFFECT_ALLOW"
    assert v9_draft["meta"]["actions"]["other"]["matchedPolicy"] == "NO_MATCH"
    # The derived roles hold while runtime is worked out, not when the rule checks them again,
    # whichever action reads runtime first.
    xia = [o for b, o in zip(bodies, ours, strict=True) if b["principal"]["id"] == "xia"]
    assert xia and all(o["results"][0]["actions"]["lonely"] == "EFFECT_DENY" for o in xia)
