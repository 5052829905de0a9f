"""Our engine against a real Cerbos 0.55 PDP: thousands of randomised requests per policy set,
with strict evaluation on and off, every effect and every output compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authz import Engine, EvalParams
from tests.authz.differential import random_requests
from tests.support.cerbos_pdp import CerbosPDP

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


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
@pytest.mark.parametrize("policy_set", sorted(p.name for p in POLICY_SETS.iterdir() if p.is_dir()))
def test_engine_agrees_with_cerbos(policy_set: str, strict: bool) -> None:
    root = POLICY_SETS / policy_set
    engine = Engine.from_directory(root, EvalParams(strict_evaluation=strict))
    mismatches = []
    with CerbosPDP(root, strict=strict) as pdp:
        for body in random_requests(policy_set, REQUESTS_PER_SET):
            theirs = _normalise(pdp.check(body))
            ours = _normalise(engine.check_request(body))
            if theirs != ours:
                mismatches.append((body, theirs, ours))
    detail = "\n".join(
        f"request: {json.dumps(b)}\n  cerbos: {json.dumps(t)}\n  ours:   {json.dumps(o)}"
        for b, t, o in mismatches[:5]
    )
    assert not mismatches, f"{len(mismatches)} of {REQUESTS_PER_SET} requests differ:\n{detail}"
