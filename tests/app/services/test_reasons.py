"""A refusal from each service carries the policies' words: the reason and remedy are the ones the
rule writes in policies/resources/*.yaml (read from the file here, not copied), and the decision
names that policy. Rewording a reason in the YAML changes what the user reads, with no code change."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from app.services.access import Refused
from app.services.users import DEMO_PASSWORD, SignedInUser
from app.services.workstation import Workstation
from tests.app.services.support import (
    EMERGENCY_PATIENT,
    POLICIES,
    SEED_PATIENT,
    WHY,
    Clocks,
    not_on_care_team,
    policy_id,
    reason,
    reasons,
    tomorrow,
    user,
)

Call = Callable[[Workstation, Clocks, Path], object]


def break_glass_event(ws: Workstation) -> str:
    ws.break_glass.start(user(ws, "er_eli"), EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    return next(r.record_id for r in ws.audit.records() if r.event_type == "break_glass_started")


# (service: what is refused, the call, its action, the policy kind and rule whose words it carries,
#  and which of the rule's reasons: the first, the last (-1), or the one after a branch of its CEL)
CASES: list[tuple[str, Call, str, str, str, int | str]] = [
    (
        "patients: dr_ben opens a patient not on his care team",
        lambda ws, c, out: ws.patients.open_record(user(ws, "dr_ben"), not_on_care_team(ws, "dr_ben")),
        "view",
        "patient_record",
        "why_not_view",
        '"physician" in P.roles',
    ),
    (
        "patients: er_eli opens a record before break-glass",
        lambda ws, c, out: ws.patients.open_record(user(ws, "er_eli"), EMERGENCY_PATIENT),
        "view",
        "patient_record",
        "why_not_view",
        '"er_physician" in P.roles',
    ),
    (
        "patients: the delegate writes a note",
        lambda ws, c, out: ws.patients.save_note(user(ws, "gina"), SEED_PATIENT, "basic", "Grandma is fine."),
        "edit_clinical_notes",
        "patient_record",
        "why_not_write_note",
        0,
    ),
    (
        "break-glass: a nurse",
        lambda ws, c, out: ws.break_glass.start(user(ws, "nurse_nia"), EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD),
        "break_glass",
        "patient_record",
        "why_not_break_glass",
        0,
    ),
    (
        "break-glass: a patient not under emergency treatment",
        lambda ws, c, out: ws.break_glass.start(user(ws, "er_eli"), "p04", "ETREAT", WHY, DEMO_PASSWORD),
        "break_glass",
        "patient_record",
        "break_glass",
        "!V.emergency_patient",
    ),
    (
        "delegation: a nurse chooses a caregiver",
        lambda ws, c, out: ws.delegations.grant(user(ws, "nurse_nia"), SEED_PATIENT, "gina", c.in_days(7), True),
        "receive_delegation",
        "account",
        "why_not_delegate_to",
        0,
    ),
    (
        "delegation: to a nurse's account",
        lambda ws, c, out: ws.delegations.grant(user(ws, "dr_aly"), SEED_PATIENT, "nurse_nia", c.in_days(7), True),
        "receive_delegation",
        "account",
        "caregivers_receive_delegations",
        0,
    ),
    (
        "delegation: without the patient's permission",
        lambda ws, c, out: ws.delegations.grant(user(ws, "dr_aly"), SEED_PATIENT, "gina", c.in_days(7), False),
        "delegate_access",
        "patient_record",
        "physician_delegates_with_permission",
        0,
    ),
    (
        "delegation: a nurse revokes",
        lambda ws, c, out: ws.delegations.revoke(user(ws, "nurse_nia"), "del-1"),
        "revoke_delegation",
        "patient_record",
        "why_not_delegate",
        -1,
    ),
    (
        "consent: the physician, not on the patient's word",
        lambda ws, c, out: ws.consents.record(user(ws, "dr_aly"), SEED_PATIENT, "export", "Patient p02", c.in_days(30)),
        "record_consent",
        "patient_record",
        "physician_records_consent_on_patients_word",
        0,
    ),
    (
        "consent: an engineer",
        lambda ws, c, out: ws.consents.record(
            user(ws, "eng_max"), SEED_PATIENT, "export", "Patient p02", c.in_days(30), patients_word=True
        ),
        "record_consent",
        "patient_record",
        "engineers_see_no_charts",
        0,
    ),
    (
        "export: without consent",
        lambda ws, c, out: ws.exports.export(
            user(ws, "dr_aly"),
            SEED_PATIENT,
            deidentified=False,
            reason="Referral to the EP clinic",
            fmt="json",
            directory=out,
        ),
        "export",
        "patient_record",
        "physician_export_with_consent",
        0,
    ),
    (
        "export: a nurse",
        lambda ws, c, out: ws.exports.export(
            user(ws, "nurse_nia"),
            SEED_PATIENT,
            deidentified=False,
            reason="Referral to the EP clinic",
            fmt="json",
            directory=out,
        ),
        "export",
        "patient_record",
        "why_not_export",
        -1,
    ),
    (
        "firmware: a nurse requests",
        lambda ws, c, out: ws.firmware.step(user(ws, "nurse_nia"), "request_firmware_update", "d-p02", "4.3.0"),
        "request_firmware_update",
        "device",
        "why_not_firmware",
        0,
    ),
    (
        "firmware: scheduling an update not yet approved",
        lambda ws, c, out: ws.firmware.step(user(ws, "dr_aly"), "schedule_firmware_update", "d-p02", tomorrow(ws)),
        "schedule_firmware_update",
        "device",
        "schedule_only_when_approved",
        0,
    ),
    (
        "firmware: the requester approves",
        lambda ws, c, out: ws.firmware.step(user(ws, "eng_max"), "approve_firmware_update", "d-p02"),
        "approve_firmware_update",
        "device",
        "separation_of_duties",
        0,
    ),
    (
        "compliance: the admin accepts a review",
        lambda ws, c, out: ws.compliance.annotate(
            user(ws, "admin_hal"), break_glass_event(ws), "accept_review", "Looks fine to me"
        ),
        "accept_review",
        "audit_event",
        "why_admins_do_not_decide_reviews",
        0,
    ),
    (
        "compliance: a physician reviews",
        lambda ws, c, out: ws.compliance.annotate(
            user(ws, "dr_aly"), break_glass_event(ws), "remind", "Please explain this."
        ),
        "remind",
        "audit_event",
        "why_not_review",
        0,
    ),
    (
        "compliance: the admin's break-glass report",
        lambda ws, c, out: ws.compliance.report(user(ws, "admin_hal"), "break_glass", "h1"),
        "generate",
        "compliance_report",
        "admin_generates_usage_reports",
        -1,
    ),
    (
        "compliance: a report of another hospital",
        lambda ws, c, out: ws.compliance.report(user(ws, "co_cora"), "usage", "h2"),
        "generate",
        "compliance_report",
        "compliance_officer_generates_reports",
        0,
    ),
    (
        "compliance: a physician's report",
        lambda ws, c, out: ws.compliance.report(user(ws, "dr_aly"), "usage", "h1"),
        "generate",
        "compliance_report",
        "why_not_generate",
        0,
    ),
]


def expected(kind: str, rule: str, which: int | str) -> tuple[str, str]:
    return reason(kind, rule, after=which) if isinstance(which, str) else reasons(kind, rule)[which]


@pytest.mark.parametrize("what, call, action, kind, rule, which", CASES, ids=[c[0] for c in CASES])
def test_a_refusal_carries_the_policys_reason_and_remedy(
    ws: Workstation,
    clocks: Clocks,
    tmp_path: Path,
    what: str,
    call: Call,
    action: str,
    kind: str,
    rule: str,
    which: int | str,
) -> None:
    with pytest.raises(Refused) as refused:
        call(ws, clocks, tmp_path / "out")
    decision = refused.value.decision
    assert (decision.action, decision.policy) == (action, policy_id(kind))
    assert (decision.reason, decision.remedy) == expected(kind, rule, which)
    assert str(refused.value) == decision.reason


def test_dr_ben_is_told_exactly_what_the_policy_says_and_offered_break_glass(ws: Workstation) -> None:
    """The issue's example, spelled out: the physician branch of why_not_view."""
    with pytest.raises(Refused) as refused:
        ws.patients.open_record(user(ws, "dr_ben"), not_on_care_team(ws, "dr_ben"))
    why, remedy = reason("patient_record", "why_not_view", after='"physician" in P.roles')
    assert remedy == "break_glass" and "care team" in why
    assert (refused.value.decision.reason, refused.value.decision.remedy) == (why, remedy)


def test_a_user_with_no_workspace_is_told_why(ws: Workstation) -> None:
    workspace = ws.session.workspace(SignedInUser("it_ivan", "Ivan", ("it_support",), {"hospital_ids": ["h1"]}))
    assert workspace.name == "" and workspace.decision.policy == policy_id("workstation")
    assert workspace.decision.reason == reason("workstation", "why_not_workspace")[0]


def test_a_reworded_reason_reaches_the_user_with_no_code_change(
    make_ws: Callable[..., Workstation], tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    path = policies / "resources" / "patient_record.yaml"
    why, _ = reason("patient_record", "why_not_view", after='"physician" in P.roles')
    path.write_text(path.read_text().replace(why, "Ask the attending physician to add you to the care team."))
    ws = make_ws(policies=policies)
    with pytest.raises(Refused) as refused:
        ws.patients.open_record(user(ws, "dr_ben"), not_on_care_team(ws, "dr_ben"))
    assert refused.value.decision.reason == "Ask the attending physician to add you to the care team."
