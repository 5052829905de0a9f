"""Every app write is decided by a named policy action: the actions the services ask are the ones
listed here, each named by a rule of the policy for its resource kind (policies/resources/*.yaml),
and every event or annotation a full run of the workflows records carries the action, the
allowing effect and the rule that allowed it (save the expiry of an emergency access, which the
system records and nobody decides)."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from app.services.workstation import Workstation
from authz import Decision, Effect, Resource
from tests.app.services.support import (
    POLICIES,
    SEED_PATIENT,
    Clocks,
    allowing_rules,
    policy_actions,
    policy_id,
    resource_policies,
    rule_id,
    rules,
    run_every_workflow,
    user,
)

SERVICES = Path(__file__).resolve().parents[3] / "app" / "services"

# The actions the app asks, by the resource kind it asks them about.
ACTIONS: dict[str, set[str]] = {
    "patient_record": {
        "view",
        "view_phi",
        "view_history",
        "edit_clinical_notes",
        "export",
        "break_glass",
        "end_break_glass",
        "delegate_access",
        "revoke_delegation",
        "record_consent",
        "acknowledge_alert",
        "triage_alert",
    },
    "history_entry": {"view"},
    "patient_identity": {"search_identity"},
    "device": {
        "view_device_data",
        "request_firmware_update",
        "approve_firmware_update",
        "reject_firmware_update",
        "schedule_firmware_update",
        "apply_firmware_update",
    },
    "audit_event": {
        "review",
        "accept_review",
        "reject_review",
        "remind",
        "resolve_review",
        "add_late_justification",
        "rely_on_justification",
    },
    "compliance_report": {"generate"},
    "workstation": {
        "open_clinical_workspace",
        "open_personal_workspace",
        "open_compliance_workspace",
        "open_admin_tools",
        "open_engineering_workspace",
    },
    "account": {"receive_delegation", "suspend_account", "reinstate_account"},
    "care_team": {"view_assignments", "assign_care_team", "remove_from_care_team"},
    "transmission": {"import"},
}
# Actions asked only on paths the demo's full run does not take, with the tests that take them.
ASKED_ELSEWHERE: dict[str, set[str]] = {
    # a hospital account's sign-in (tests/app/test_hospital_sign_in.py) and who the demo's sign-in
    # list offers (tests/app/test_plain_screens.py)
    "workstation": {"sign_in"},
}
LISTED = set().union(*ACTIONS.values(), *ASKED_ELSEWHERE.values())

# Calls whose argument at this position is an action: the AccessService's questions, and the
# refusals a service makes itself (``refuse``, ``Decision.refused``).
ACTION_ARGUMENT = {
    "decide": 2,
    "decide_one": 2,
    "require": 2,
    "permitted": 2,
    "plan_filter": 2,
    "refuse": 0,
    "refused": 0,
}


def _strings(node: ast.AST, names: dict[str, ast.AST], depth: int = 0) -> Iterator[str]:
    """The string values an expression can take: literals, tuples and lists of them, names bound
    to them (in the module or the function), and f-strings as regular expressions ("re:...")."""
    if depth > 5:
        return
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.JoinedStr):
        yield "re:" + "".join(re.escape(v.value) if isinstance(v, ast.Constant) else r"\w+" for v in node.values)
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for element in node.elts:
            yield from _strings(element, names, depth + 1)
    elif isinstance(node, ast.Starred):
        yield from _strings(node.value, names, depth + 1)
    elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
        yield from _strings(node.elt, names, depth + 1)
    elif isinstance(node, ast.Name) and node.id in names:
        yield from _strings(names[node.id], names, depth + 1)


def _bindings(tree: ast.AST) -> dict[str, ast.AST]:
    """Names assigned once from an expression (module constants, a function's locals)."""
    found: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            found.setdefault(node.targets[0].id, []).append(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found.setdefault(node.target.id, []).append(node.value)
    return {name: values[0] for name, values in found.items() if len(values) == 1}


def asked_in_the_code() -> dict[str, set[str]]:
    """Every string the services pass where an action goes, with the places it is passed."""
    asked: dict[str, set[str]] = {}
    for path in sorted(SERVICES.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        module = _bindings(tree)
        for function in [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]:
            names = {**module, **(_bindings(function) if function is not tree else {})}
            for call in ast.walk(function):
                if not isinstance(call, ast.Call):
                    continue
                name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
                position = ACTION_ARGUMENT.get(name)
                if position is None or len(call.args) <= position:
                    continue
                for value in _strings(call.args[position], names):
                    asked.setdefault(value, set()).add(f"{path.relative_to(SERVICES.parent.parent)}:{call.lineno}")
    return asked


def test_the_scan_finds_the_actions_it_should() -> None:
    """The scan is not vacuous: it sees literals, module constants, local lists and f-strings."""
    asked = asked_in_the_code()
    assert {"view", "edit_clinical_notes", "break_glass", "generate"} <= set(asked)  # literals
    assert {"view_history", "accept_review", "apply_firmware_update"} <= set(asked)  # constants
    assert "add_late_justification" in asked  # a constant naming one action
    assert "re:open_\\w+_workspace" in asked  # the workspaces, by name


def test_every_action_the_services_ask_is_in_the_list() -> None:
    unlisted = {}
    for value, where in asked_in_the_code().items():
        if value.startswith("re:"):
            if not any(re.fullmatch(value[3:], action) for action in LISTED):
                unlisted[value] = sorted(where)
        elif value not in LISTED:
            unlisted[value] = sorted(where)
    assert unlisted == {}, "actions asked in app/services that the test's list (and maybe the policies) lack"


@pytest.mark.parametrize("kind", sorted(ACTIONS))
def test_every_listed_action_is_named_by_a_rule_of_its_kind(kind: str) -> None:
    listed = ACTIONS[kind] | ASKED_ELSEWHERE.get(kind, set())
    assert kind in resource_policies(), f"no policy for {kind} in policies/resources"
    assert listed <= policy_actions(kind), f"{kind}: no rule names {listed - policy_actions(kind)}"
    for action in listed:
        assert allowing_rules(kind, action), f"{kind}: no rule can allow {action}"


class Recorder:
    """Wraps the AccessService's questions and records (resource kind, action) for each."""

    def __init__(self, ws: Workstation) -> None:
        self.asked: set[tuple[str, str]] = set()
        decide, permitted = ws.access.decide, ws.access.permitted

        def decide_recorded(who: Any, resource: Resource, actions: Sequence[str]) -> dict[str, Decision]:
            self.asked.update((resource.kind, a) for a in actions)
            return decide(who, resource, actions)

        def permitted_recorded(who: Any, resources: Any, action: str) -> list[Resource]:
            resources = list(resources)
            self.asked.update((r.kind, action) for r in resources)
            return permitted(who, resources, action)

        plan_filter = ws.access.plan_filter

        def plan_filter_recorded(who: Any, kind: str, action: str) -> dict[str, Any]:
            self.asked.add((kind, action))
            return plan_filter(who, kind, action)

        ws.access.decide = decide_recorded  # type: ignore[method-assign]
        ws.access.permitted = permitted_recorded  # type: ignore[method-assign]
        ws.access.plan_filter = plan_filter_recorded  # type: ignore[method-assign]


@pytest.fixture
def full_run(ws: Workstation, clocks: Clocks, tmp_path: Path) -> tuple[Workstation, Recorder]:
    recorder = Recorder(ws)
    run_every_workflow(ws, clocks, tmp_path / "exports")
    return ws, recorder


def test_a_full_run_asks_exactly_the_listed_actions_of_their_kinds(full_run: tuple[Workstation, Recorder]) -> None:
    _ws, recorder = full_run
    listed = {(kind, action) for kind, actions in ACTIONS.items() for action in actions}
    assert recorder.asked == listed


def test_every_event_and_annotation_names_the_rule_that_allowed_it(full_run: tuple[Workstation, Recorder]) -> None:
    ws, _ = full_run
    records = list(ws.audit.records())
    by_id = {r.record_id: r for r in records}
    written = [r for r in records if r.kind in ("event", "annotation")]
    assert {r.event_type for r in written} == {
        "note_saved",
        "consent_recorded",
        "export",
        "delegation_granted",
        "delegation_revoked",
        "break_glass_started",
        "break_glass_ended",
        "firmware_requested",
        "firmware_approved",
        "firmware_rejected",
        "firmware_scheduled",
        "firmware_applied",
        "remind",
        "add_late_justification",
        "resolve_review",
        "accept_review",
        "reject_review",
        "alert_acknowledged",
        "alert_triaged",
        "care_team_assigned",
        "care_team_removed",
        "account_suspended",
        "account_reinstated",
        "transmission_imported",
        "listed",
    }
    listed = [r for r in written if r.event_type == "listed"]  # a list the store selected through a plan
    for r in listed:
        assert r.action in ACTIONS[r.resource_kind] and r.details["filter"].startswith("KIND_"), r
        assert (r.effect, r.rule) == ("", ""), "no one decision allowed the list"
    written = [r for r in written if r not in listed]
    system = [r for r in written if r.event_type == "break_glass_ended" and r.details["why"] == "expired"]
    assert len(system) == 1 and (system[0].action, system[0].effect, system[0].rule) == ("", "", "")
    for r in written:
        if r in system:
            continue
        kind = r.resource_kind if r.kind == "event" else "audit_event"
        if r.kind == "annotation":
            assert by_id[r.ref].kind == "event" and r.event_type == r.action
        assert r.action in ACTIONS[kind] and r.action in policy_actions(kind), r
        assert r.effect == Effect.ALLOW.value and r.policy == policy_id(kind), r
        name = r.rule.partition("#")[2]
        assert name in allowing_rules(kind, r.action) and r.rule == rule_id(kind, name), r
        assert rules(kind)[name]["effect"] == Effect.ALLOW.value


def test_every_recorded_decision_is_of_a_policy_action(full_run: tuple[Workstation, Recorder]) -> None:
    ws, _ = full_run
    decisions = [r for r in ws.audit.records() if r.kind == "decision"]
    assert decisions
    for r in decisions:
        assert r.action in policy_actions(r.resource_kind) and r.policy == policy_id(r.resource_kind), r


def test_identifiers_are_decided_by_view_phi(ws: Workstation) -> None:
    assert "view_phi" in ACTIONS["patient_record"] | set(asked_in_the_code())
    record = ws.patients.open_record(user(ws, "dr_aly"), SEED_PATIENT)
    assert record.decisions["view_phi"].allowed


def test_the_record_decisions_are_asked_on_the_real_record(make_ws: Callable[..., Workstation]) -> None:
    """What the recorder saw is what the screens get: the record's decisions are the policies' answers."""
    ws = make_ws()
    recorder = Recorder(ws)
    ws.patients.open_record(user(ws, "dr_aly"), SEED_PATIENT)
    assert {a for k, a in recorder.asked if k == "patient_record"} == {
        "view",
        "view_phi",
        "view_history",
        "edit_clinical_notes",
        "delegate_access",
        "revoke_delegation",
        "record_consent",
        "acknowledge_alert",
        "triage_alert",
    }
    assert ("history_entry", "view") in recorder.asked


def test_where_the_policies_refuse_view_phi_the_record_comes_without_identifiers(tmp_path: Path) -> None:
    """A copy of policies/ in which viewing the record no longer grants its PHI fields."""
    import shutil

    import yaml

    from app.services.patients import WITHHELD

    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    shutil.rmtree(policies / "tests")
    path = policies / "resources" / "patient_record.yaml"
    doc = yaml.safe_load(path.read_text())
    for rule in doc["resourcePolicy"]["rules"]:
        if rule["name"] == "view_patient_data":
            rule["actions"] = ["view"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    ws = Workstation(tmp_path / "data", policies=policies)
    record = ws.patients.open_record(user(ws, "dr_aly"), SEED_PATIENT)
    real = ws.store.patient(SEED_PATIENT)
    assert not record.decisions["view_phi"].allowed
    assert (record.patient.name, record.patient.mrn, record.patient.birth_date) == (WITHHELD, WITHHELD, WITHHELD)
    assert record.series and record.patient.id == real.id  # the clinical data is there; who it is, is not
