"""CEL field names in both spellings (issue 15, part 1): Cerbos's CEL environment accepts a
request message's fields by their protobuf names (``request.aux_data``,
``request.principal.policy_version``, ``runtime.effective_derived_roles``) as well as by their JSON
names, with the same values. Checked against the real Cerbos 0.55 PDP, strict and lax, effects and
outputs: selection, ``has()``, optional selection (``.?``, and the chain after it), and whole
messages rendered as outputs (protobuf JSON: fields at their default are left out)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authz import Engine, EvalParams
from tests.authz.test_differential import _normalise
from tests.support.cerbos_pdp import CerbosPDP
from tests.support.policy_files import write_policies

ROLES = """apiVersion: api.cerbos.dev/v1
derivedRoles:
  name: ward_roles
  definitions:
    - name: keeper
      parentRoles: [clerk]
      condition:
        match:
          expr: R.attr.keeper == P.id
    - name: pinned
      parentRoles: [clerk]
      condition:
        match:
          expr: request.resource.policy_version == "default" && P.policy_version == request.principal.policyVersion
    - name: senior_keeper
      parentRoles: [clerk]
      condition:
        match:
          expr: '"keeper" in runtime.effective_derived_roles && "keeper" in runtime.effectiveDerivedRoles'
"""

LEDGER = """apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: ledger
  version: default
  importDerivedRoles: [ward_roles]
  variables:
    local:
      snake_version: request.principal.policy_version
      camel_version: request.principal.policyVersion
  rules:
    - name: spellings
      actions: [spell]
      effect: EFFECT_ALLOW
      roles: [clerk]
      output:
        when:
          ruleActivated: >-
            [request.aux_data.jwt, request.auxData.jwt, request.principal.policy_version,
            request.principal.policyVersion, request.resource.policy_version, R.policy_version,
            P.policy_version, V.snake_version == V.camel_version,
            runtime.effective_derived_roles, runtime.effectiveDerivedRoles,
            request.aux_data == request.auxData]
    - name: presence
      actions: [presence]
      effect: EFFECT_ALLOW
      roles: [clerk]
      output:
        when:
          ruleActivated: >-
            [has(request.aux_data), has(request.auxData), has(request.aux_data.jwt),
            has(request.principal.policy_version), has(R.policy_version), has(P.policyVersion),
            has(runtime.effective_derived_roles), has(runtime.effectiveDerivedRoles),
            has(request.principal.scope), has(request.principal.attr), has(request.aux_data.jwts)]
    - name: optionals
      actions: [optional]
      effect: EFFECT_ALLOW
      roles: [clerk]
      output:
        when:
          ruleActivated: >-
            [request.?aux_data.hasValue(), request.?auxData.jwt.orValue({"none": true}),
            request.principal.?policy_version.orValue("unset"),
            request.aux_data.?jwt.hasValue(), request.auxData.jwt.size()]
    - name: chains
      actions: [chains]
      effect: EFFECT_ALLOW
      roles: [clerk]
      output:
        when:
          ruleActivated: >-
            [optional.of({"a": 1}).a.orValue(0), optional.of({"a": 1}).b.orValue(0),
            {"x": {"y": 1}}.?x.y.orValue(0), {"x": {"y": 1}}.?x.z.orValue(5), {"x": {}}.?q.z.orValue(7),
            R.attr.?keeper.orValue("none"), request.?aux_data.jwt.orValue({"none": 1})]
    - name: messages
      actions: [messages]
      effect: EFFECT_ALLOW
      roles: [clerk]
      output:
        when:
          ruleActivated: '{"request": request, "runtime": runtime, "aux": request.aux_data}'
    - name: pinned_only
      actions: [pinned]
      effect: EFFECT_ALLOW
      derivedRoles: [pinned]
    - name: senior_only
      actions: [senior]
      effect: EFFECT_ALLOW
      derivedRoles: [senior_keeper]
    - name: keepers
      actions: [keep]
      effect: EFFECT_ALLOW
      derivedRoles: [keeper]
    - name: kept
      actions: [kept]
      effect: EFFECT_ALLOW
      roles: [clerk]
      condition:
        match:
          expr: '"keeper" in runtime.effective_derived_roles && "keeper" in runtime.effectiveDerivedRoles'
      output:
        when:
          ruleActivated: runtime.effective_derived_roles
          conditionNotMet: '{"runtime": runtime}'
    - name: version_gate
      actions: [gate]
      effect: EFFECT_ALLOW
      roles: [clerk]
      condition:
        match:
          all:
            of:
              - expr: request.resource.policy_version == request.resource.policyVersion
              - expr: size(request.principal.policy_version) > 0
      output:
        when:
          conditionNotMet: '"no version: " + request.principal.policyVersion'
"""

ACTIONS = ["spell", "presence", "optional", "chains", "messages", "pinned", "senior", "keep", "kept", "gate"]


def _bodies() -> list[dict]:
    bodies = []
    for i, (pversion, rversion, attr) in enumerate(
        [
            ("default", "default", {"keeper": "kim"}),
            ("", "", {"keeper": "kim"}),
            ("default", "", {"keeper": "lee"}),
            ("", "default", {}),
        ]
    ):
        principal: dict = {"id": "kim", "roles": ["clerk"], "attr": {"desk": 3} if i % 2 else {}}
        resource: dict = {"kind": "ledger", "id": f"l{i}", "attr": attr}
        if pversion:
            principal["policyVersion"] = pversion
        if rversion:
            resource["policyVersion"] = rversion
        bodies.append(
            {"requestId": f"r{i}", "principal": principal, "resources": [{"actions": ACTIONS, "resource": resource}]}
        )
    return bodies


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
def test_protobuf_and_json_field_names_read_the_same_values_as_cerbos(tmp_path: Path, strict: bool) -> None:
    write_policies(tmp_path, {"ward_roles.yaml": ROLES, "ledger.yaml": LEDGER})
    engine = Engine.from_directory(tmp_path, EvalParams(strict_evaluation=strict))
    bodies = _bodies()
    with CerbosPDP(tmp_path, strict=strict) as pdp:
        theirs = [_normalise(pdp.check(body)) for body in bodies]
    ours = [_normalise(engine.check_request(body)) for body in bodies]
    for body, t, o in zip(bodies, theirs, ours, strict=True):
        assert o == t, f"request: {json.dumps(body)}\n  cerbos: {json.dumps(t)}\n  ours:   {json.dumps(o)}"
    first = ours[0]["results"][0]
    assert first["actions"]["pinned"] == "EFFECT_ALLOW"  # the protobuf spellings were read, not errors
    assert first["actions"]["kept"] == "EFFECT_ALLOW"
    assert first["actions"]["senior"] == "EFFECT_ALLOW"  # a rule's derived role sees the runtime
    spelled = next(o["val"] for o in first["outputs"] if o["src"].endswith("#spellings"))
    assert spelled[2:7] == ["default"] * 5


def test_an_unknown_field_is_still_a_compile_error(tmp_path: Path) -> None:
    from authz.errors import PolicyErrors

    bad = LEDGER.replace("request.principal.policy_version\n", "request.principal.policy_versions\n", 1)
    assert bad != LEDGER
    write_policies(tmp_path, {"ward_roles.yaml": ROLES, "ledger.yaml": bad})
    with pytest.raises(PolicyErrors, match="undefined field 'policy_versions'"):
        Engine.from_directory(tmp_path)
