"""Compliance review on the real policies and audit log: the queue with context, accept/reject,
reminders, late justifications and resolution as annotations; reports by role."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.services.access import Refused
from app.services.compliance import REPORT_TYPES, REVIEW_STEPS, summary
from app.services.users import DEMO_PASSWORD
from app.services.workstation import Workstation
from authz import Effect
from tests.app.services.support import (
    EMERGENCY_PATIENT,
    SEED_PATIENT,
    WHY,
    Clocks,
    allowing_rules,
    reason,
    reasons,
    rule_id,
    user,
)


@pytest.fixture
def ws(make_ws: Callable[..., Workstation]) -> Workstation:
    """er_eli's break-glass session on p03, two accesses under it, ended."""
    ws = make_ws()
    eli = user(ws, "er_eli")
    ws.break_glass.start(eli, EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    ws.patients.open_record(eli, EMERGENCY_PATIENT)
    ws.patients.open_record(eli, EMERGENCY_PATIENT)
    ws.break_glass.end(eli)
    ws.patients.open_record(user(ws, "dr_ben"), EMERGENCY_PATIENT)  # his own patient: not counted
    return ws


def event_id(ws: Workstation) -> str:
    return ws.compliance.queue(user(ws, "co_cora"))[0].event.record_id


def test_the_queue_shows_break_glass_with_its_context_to_compliance_only(ws: Workstation) -> None:
    cora, hal, aly = (user(ws, u) for u in ("co_cora", "admin_hal", "dr_aly"))
    items = ws.compliance.queue(cora)
    assert [i.event.event_type for i in items] == ["break_glass_started"]
    assert items[0].hospital_id == "h1"
    info = summary(items[0])
    assert info["who"] == "er_eli" and info["reason"] == "ETREAT" and info["justification"] == WHY
    assert info["roles"] == ["er_physician"] and info["patient"] == EMERGENCY_PATIENT
    assert info["accesses"] == 2 and info["state"] == "open" and items[0].needs_attention
    assert len(ws.compliance.queue(hal)) == 1  # admins review too (matrix), but do not annotate
    assert ws.compliance.queue(aly) == []


def test_only_the_compliance_officer_takes_review_steps(ws: Workstation) -> None:
    cora, hal, aly = (user(ws, u) for u in ("co_cora", "admin_hal", "dr_aly"))
    event = event_id(ws)
    assert all(d.allowed for d in ws.compliance.steps(cora, event).values())
    admin = ws.compliance.steps(hal, event)
    assert set(admin) == set(REVIEW_STEPS) and not any(d.allowed for d in admin.values())
    assert {d.reason for d in admin.values()} == {reason("audit_event", "why_admins_do_not_decide_reviews")[0]}
    assert {d.reason for d in ws.compliance.steps(aly, event).values()} == {reason("audit_event", "why_not_review")[0]}
    assert all(d.reason == "There is no such event to review." for d in ws.compliance.steps(cora, "nope").values())


def test_reject_remind_late_justification_resolve(ws: Workstation) -> None:
    cora, hal, eli = (user(ws, u) for u in ("co_cora", "admin_hal", "er_eli"))
    event = event_id(ws)
    with pytest.raises(Refused, match="compliance officers accept"):
        ws.compliance.annotate(hal, event, "accept_review", "Looks fine to me")
    with pytest.raises(Refused, match="comment"):
        ws.compliance.annotate(cora, event, "reject_review", "")
    ws.compliance.annotate(cora, event, "reject_review", "Patient was stable; request the consulting role.")
    assert ws.compliance.queue(cora)[0].state == "rejected" and ws.compliance.queue(cora)[0].needs_attention
    ws.compliance.annotate(cora, event, "remind", "Please request the proper role before access next time.")
    questions = ws.compliance.open_questions(eli)
    assert [(q[0], q[1]) for q in questions] == [(event, "Please request the proper role before access next time.")]
    assert questions[0][2].startswith(f"emergency access opened for patient {EMERGENCY_PATIENT} on ")
    assert ws.compliance.open_questions(cora) == []  # she may not answer for eli
    assert ws.compliance.reminders_for(eli) == ["Please request the proper role before access next time."]
    assert ws.compliance.reminders_for(cora) == []
    with pytest.raises(Refused, match="compliance officers"):
        ws.compliance.annotate(eli, event, "resolve_review", "I resolve my own case")
    with pytest.raises(Refused, match="at least 10"):
        ws.compliance.annotate(eli, event, "add_late_justification", "urgent")
    (late_rule,) = allowing_rules("audit_event", "add_late_justification")
    with pytest.raises(Refused) as refused:
        ws.compliance.annotate(cora, event, "add_late_justification", "On behalf of the clinician: pauses of 6 s.")
    assert refused.value.decision.reason == reason("audit_event", late_rule)[0]
    ws.compliance.annotate(eli, event, "add_late_justification", "Rhythm strip showed pauses of 6 s; no time to call.")
    assert ws.compliance.open_questions(eli) == []  # answered
    assert ws.compliance.reminders_for(eli) == ["Please request the proper role before access next time."]
    ws.compliance.annotate(cora, event, "resolve_review", "Late justification accepted.")
    item = ws.compliance.queue(cora)[0]
    assert item.state == "resolved" and not item.needs_attention
    assert item.late_justification.startswith("Rhythm strip")
    assert [a.event_type for a in item.annotations] == [
        "reject_review",
        "remind",
        "add_late_justification",
        "resolve_review",
    ]
    assert all(a.ref == event and a.effect == Effect.ALLOW.value for a in item.annotations)
    assert [a.rule for a in item.annotations] == [rule_id("audit_event", "compliance_officer_reviews")] * 2 + [
        rule_id("audit_event", late_rule),
        rule_id("audit_event", "compliance_officer_reviews"),
    ]
    assert ws.chain.verify().ok


def test_accepting_closes_the_review(ws: Workstation) -> None:
    cora = user(ws, "co_cora")
    ws.compliance.annotate(cora, event_id(ws), "accept_review", "  Justified by the ER notes.  ")
    item = ws.compliance.queue(cora)[0]
    assert item.state == "accepted" and not item.needs_attention
    assert item.annotations[0].justification == "Justified by the ER notes."


def test_what_cannot_be_annotated(ws: Workstation) -> None:
    cora = user(ws, "co_cora")
    with pytest.raises(Refused, match="no such event"):
        ws.compliance.annotate(cora, "no-such-record", "accept_review", "Looks fine to me")
    decision = next(r for r in ws.audit.records() if r.kind == "decision")
    with pytest.raises(Refused, match="no such event"):  # a decision record is not an event
        ws.compliance.annotate(cora, decision.record_id, "accept_review", "Looks fine to me")
    with pytest.raises(Refused, match="Unknown review step"):
        ws.compliance.annotate(cora, event_id(ws), "delete", "Looks fine to me")
    annotations = [r for r in ws.audit.records() if r.kind == "annotation"]
    assert annotations == []


def test_another_hospitals_events_are_not_reviewed(make_ws: Callable[..., Workstation]) -> None:
    ws = make_ws()
    visiting = user(ws, "dr_visiting")  # works at h1 and h2
    other = ws.store.patients(["h2"])[0].id
    ws.store.db["patients"].update(other, {"emergency": 1})
    ws.break_glass.start(visiting, other, "ETREAT", WHY, DEMO_PASSWORD)
    event = next(r.record_id for r in ws.audit.records() if r.event_type == "break_glass_started")
    cora = user(ws, "co_cora")
    assert ws.compliance.queue(cora) == []
    with pytest.raises(Refused) as refused:
        ws.compliance.annotate(cora, event, "accept_review", "Looks fine to me")
    assert refused.value.decision.reason == reason("audit_event", "compliance_officer_reviews")[0]


def test_a_flagged_export_is_in_the_queue_until_its_reason_is_added(
    make_ws: Callable[..., Workstation], clocks: Clocks, tmp_path: Path
) -> None:
    ws = make_ws()
    aly, max_, cora = (user(ws, u) for u in ("dr_aly", "eng_max", "co_cora"))
    ws.consents.record(aly, SEED_PATIENT, "export", "Patient p02", clocks.in_days(30), patients_word=True)
    flagged = ws.exports.export(max_, SEED_PATIENT, deidentified=True, reason="", fmt="json", directory=tmp_path)
    plain = ws.exports.export(
        aly, SEED_PATIENT, deidentified=False, reason="Referral to the EP clinic", fmt="json", directory=tmp_path
    )
    items = {i.event.record_id: i for i in ws.compliance.queue(cora)}
    assert set(items) == {flagged.audit_record_id, plain.audit_record_id}
    assert items[flagged.audit_record_id].needs_attention and not items[plain.audit_record_id].needs_attention
    ws.compliance.annotate(cora, flagged.audit_record_id, "remind", "Please add the reason for this export.")
    asked = (flagged.audit_record_id, "Please add the reason for this export.")
    # whoever exported may answer, and so may the patient's assigned physician
    assert (
        [q[:2] for q in ws.compliance.open_questions(max_)]
        == [q[:2] for q in ws.compliance.open_questions(aly)]
        == [asked]
    )
    assert ws.compliance.open_questions(user(ws, "dr_ben")) == []
    ws.compliance.annotate(
        max_, flagged.audit_record_id, "add_late_justification", "Root-cause analysis of sensing drift"
    )
    assert ws.compliance.open_questions(max_) == ws.compliance.open_questions(aly) == []
    ws.compliance.annotate(cora, flagged.audit_record_id, "accept_review", "Reason added, accepted.")
    item = next(i for i in ws.compliance.queue(cora) if i.event.record_id == flagged.audit_record_id)
    assert item.late_justification == "Root-cause analysis of sensing drift" and not item.needs_attention


def test_reports_by_role(ws: Workstation) -> None:
    cora, hal, aly = user(ws, "co_cora"), user(ws, "admin_hal"), user(ws, "dr_aly")
    report = ws.compliance.report(cora, "break_glass", "h1")
    assert dict(report.rows) == {"Emergency access opened": 1, "Emergency access ended": 1} and report.total == 2
    assert report.hospital_name and report.hospital_name != "h1" and report.title == "Emergency access (break-glass)"
    access = dict(ws.compliance.report(cora, "access", "h1").rows)
    assert access == {"Record opened: allowed": 3, "Health data shown: allowed": 3}
    usage = ws.compliance.report(hal, "usage", "h1")
    assert usage.total == 6 and all(len(label) == 10 for label, _ in usage.rows)
    assert {t: d.allowed for t, d in ws.compliance.report_types(hal, "h1").items()} == {
        t: t == "usage" for t in REPORT_TYPES
    }
    assert all(d.allowed for d in ws.compliance.report_types(cora, "h1").values())
    with pytest.raises(Refused) as refused:
        ws.compliance.report(hal, "break_glass", "h1")
    assert refused.value.decision.reason == reasons("compliance_report", "admin_generates_usage_reports")[-1][0]
    with pytest.raises(Refused, match="hospitals you work at"):
        ws.compliance.report(cora, "usage", "h2")  # not her hospital
    with pytest.raises(Refused, match="compliance officers and hospital administrators"):
        ws.compliance.report(aly, "usage", "h1")
    with pytest.raises(Refused, match="Unknown report type"):
        ws.compliance.report(cora, "everything", "h1")
