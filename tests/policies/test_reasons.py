"""The refusal reasons live in policies/ (rule outputs, policies/README.md "Reasons"): every
principal of the policy tests against every resource and every action the policies name, decided
by the real Cerbos 0.55 and by our engine, effect for effect and output for output; and the
convention holds: a refusal the app can meet is explained, an allowed decision carries no reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from authz import Engine, EvalParams, Principal, Resource
from tests.authz.test_differential import _normalise
from tests.support.cerbos_pdp import CerbosPDP

POLICIES = Path(__file__).resolve().parents[2] / "policies"
TESTDATA = POLICIES / "tests" / "testdata"


def policy_actions() -> dict[str, list[str]]:
    """Every action each resource policy names, by resource kind."""
    actions: dict[str, set[str]] = {}
    for path in (POLICIES / "resources").glob("*.yaml"):
        policy = yaml.safe_load(path.read_text())["resourcePolicy"]
        for rule in policy["rules"]:
            actions.setdefault(policy["resource"], set()).update(a for a in rule["actions"] if a != "*")
    return {kind: sorted(names) for kind, names in actions.items()}


def fixture_principals() -> dict[str, dict[str, Any]]:
    """The test suites' principals, plus ones whose break-glass session started a minute ago
    (the suites' own sessions are long over by the real clock both PDPs read)."""
    principals = yaml.safe_load((TESTDATA / "principals.yaml").read_text())["principals"]
    started = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for name in ("dr_aly_bg", "er_eli"):
        live = json.loads(json.dumps(principals[name]))
        live["attr"]["break_glass"]["started_at"] = started
        principals[f"{name}_live"] = live
    return principals


def requests() -> list[dict[str, Any]]:
    resources = yaml.safe_load((TESTDATA / "resources.yaml").read_text())["resources"]
    actions = policy_actions()
    bodies = []
    for pname, principal in fixture_principals().items():
        entries = [{"actions": actions[r["kind"]], "resource": r} for r in resources.values() if r["kind"] in actions]
        bodies.append({"requestId": pname, "principal": principal, "resources": entries})
    return bodies


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
def test_every_reason_and_output_is_cerbos_s(strict: bool) -> None:
    engine = Engine.from_directory(POLICIES, EvalParams(strict_evaluation=strict))
    with CerbosPDP(POLICIES, strict=strict) as pdp:
        for body in requests():
            assert _normalise(engine.check_request(body)) == _normalise(pdp.check(body)), body["requestId"]


# The refusals a screen shows: each must be in the policies' words.
SHOWN = {
    "patient_record": {
        "view",
        "break_glass",
        "export",
        "delegate_access",
        "revoke_delegation",
        "record_consent",
        "acknowledge_alert",
        "triage_alert",
    },
    "device": {
        "request_firmware_update",
        "approve_firmware_update",
        "reject_firmware_update",
        "schedule_firmware_update",
        "apply_firmware_update",
    },
    "audit_event": {"accept_review", "reject_review", "remind", "resolve_review", "add_late_justification"},
    "compliance_report": {"generate"},
    "patient_identity": {"search_identity"},
    "account": {"suspend_account", "reinstate_account"},
}


def test_allowed_decisions_carry_no_reason_and_shown_refusals_are_explained() -> None:
    """Explanation rules speak only where nothing allowed; every refusal a screen shows, over the
    whole fixture grid, has words from the policies."""
    engine = Engine.from_directory(POLICIES)
    resources = yaml.safe_load((TESTDATA / "resources.yaml").read_text())["resources"]
    actions = policy_actions()
    unexplained = []
    workstation = Resource("workstation", "ward-1", {})
    for pname, p in fixture_principals().items():
        principal = Principal(p["id"], p["roles"], p.get("attr", {}))
        if not engine.decide(principal, workstation, ["sign_in"])["sign_in"].allowed:
            continue  # refused at sign-in (a role the policies do not know): no screen is ever shown to them
        for rname, r in resources.items():
            resource = Resource(r["kind"], r["id"], r.get("attr", {}))
            for action, decision in engine.decide(principal, resource, actions[r["kind"]]).items():
                if decision.allowed:
                    assert not decision.output("reason"), (pname, rname, action, decision.outputs)
                elif action in SHOWN.get(r["kind"], ()) and not decision.output("reason"):
                    unexplained.append((pname, rname, action))
    assert not unexplained, unexplained
