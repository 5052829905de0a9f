"""Policies without rules, decided as Cerbos 0.55 decides them: such a policy decides nothing, but
its scope exists and its policy is found, so a request for that scope falls through to the parent
scopes (Cerbos keeps a no-op row for it) instead of finding no policy. Strict and lax, against the
real PDP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authz import Engine, EvalParams
from tests.authz.test_differential import _normalise
from tests.support.cerbos_pdp import CerbosPDP
from tests.support.policy_files import write_policies

FILES = {
    "ticket.yaml": """apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: ticket
  version: default
  rules:
    - actions: [open, close]
      effect: EFFECT_ALLOW
      roles: [agent]
""",
    # An empty list of rules, in two scopes.
    "ticket_eu.yaml": """apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: ticket
  version: default
  scope: eu
  rules: []
""",
    "ticket_eu_de.yaml": """apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: ticket
  version: default
  scope: eu.de
  rules: []
""",
    "ivy.yaml": """apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: ivy
  version: default
  rules:
    - resource: ledger
      actions:
        - action: audit
          effect: EFFECT_ALLOW
""",
    "ivy_eu.yaml": """apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: ivy
  version: default
  scope: eu
  rules: []
""",
}


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
def test_a_policy_without_rules_falls_through_to_its_parent_scopes(tmp_path: Path, strict: bool) -> None:
    write_policies(tmp_path, FILES)
    bodies = []
    for pid, pscope in (("ivy", ""), ("ivy", "eu"), ("ivy", "eu.de"), ("max", "eu")):
        for kind in ("ticket", "ledger"):
            for scope in ("", "eu", "eu.de", "eu.fr"):
                principal = {"id": pid, "roles": ["agent"], "scope": pscope}
                resource = {"kind": kind, "id": "t1", "scope": scope}
                bodies.append(
                    {
                        "requestId": "e",
                        "includeMeta": True,
                        "principal": principal,
                        "resources": [{"actions": ["open", "audit", "other"], "resource": resource}],
                    }
                )
    engine = Engine.from_directory(tmp_path, EvalParams(strict_evaluation=strict))
    with CerbosPDP(tmp_path, strict=strict) as pdp:
        theirs = [_normalise(pdp.check(body)) for body in bodies]
    ours = [_normalise(engine.check_request(body)) for body in bodies]
    for body, t, o in zip(bodies, theirs, ours, strict=True):
        assert o == t, f"request: {json.dumps(body)}\n  cerbos: {json.dumps(t)}\n  ours:   {json.dumps(o)}"
    eu_de_ticket = ours[2]["results"][0]  # ivy at the root, a ticket in eu.de
    assert eu_de_ticket["actions"]["open"] == "EFFECT_ALLOW"
    assert eu_de_ticket["meta"]["actions"]["open"] == {"matchedPolicy": "resource.ticket.vdefault/eu.de"}
    eu_ledger = ours[8 + 4 + 1]["results"][0]  # ivy in eu, a ledger in eu: the principal policy of the root
    assert eu_ledger["actions"]["audit"] == "EFFECT_ALLOW"
    assert eu_ledger["meta"]["actions"]["audit"]["matchedPolicy"] == "principal.ivy.vdefault/eu"
