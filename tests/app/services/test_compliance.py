"""Compliance review on the real policies and audit log: the queue with context, accept/reject,
reminders, late justifications and resolution as annotations; reports by role."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.compliance import ReviewRefused, summary
from app.services.users import DEMO_PASSWORD
from app.services.workstation import Workstation

WHY = "Unconscious in the ER, pacemaker interrogation needed now"


@pytest.fixture
def ws(tmp_path: Path) -> Workstation:
    ws = Workstation(tmp_path / "data")
    eli = ws.start_emergency_access(ws.sign_in("er_eli", DEMO_PASSWORD), "p03", "ETREAT", WHY, DEMO_PASSWORD)
    ws.open_record(eli, "p03")
    ws.open_record(eli, "p03")
    ws.end_emergency_access(eli)
    return ws


def test_the_queue_shows_break_glass_with_its_context_to_compliance_only(ws: Workstation) -> None:
    cora, hal, aly = (ws.sign_in(u, DEMO_PASSWORD) for u in ("co_cora", "admin_hal", "dr_aly"))
    items = ws.compliance.queue(cora)
    assert [i.event.event_type for i in items] == ["break_glass_started"]
    info = summary(items[0])
    assert info["who"] == "er_eli" and info["reason"] == "ETREAT" and info["justification"] == WHY
    assert info["accesses"] == 2 and info["state"] == "open" and items[0].needs_attention
    assert len(ws.compliance.queue(hal)) == 1  # admins review too (matrix), but do not annotate
    assert ws.compliance.queue(aly) == []


def test_reject_remind_late_justification_resolve(ws: Workstation) -> None:
    cora, hal, eli = (ws.sign_in(u, DEMO_PASSWORD) for u in ("co_cora", "admin_hal", "er_eli"))
    event = ws.compliance.queue(cora)[0].event.record_id
    with pytest.raises(ReviewRefused, match="compliance officer"):
        ws.compliance.annotate(hal, event, "review_accepted", "Looks fine to me")
    with pytest.raises(ReviewRefused, match="comment"):
        ws.compliance.annotate(cora, event, "review_rejected", "")
    ws.compliance.annotate(cora, event, "review_rejected", "Patient was stable; request the consulting role.")
    ws.compliance.annotate(cora, event, "reminder", "Please request the proper role before access next time.")
    assert ws.compliance.reminders_for(eli) == ["Please request the proper role before access next time."]
    with pytest.raises(ReviewRefused, match="compliance officer"):
        ws.compliance.annotate(eli, event, "review_resolved", "I resolve my own case")
    ws.compliance.annotate(eli, event, "late_justification", "Rhythm strip showed pauses of 6 s; no time to call.")
    ws.compliance.annotate(cora, event, "review_resolved", "Late justification accepted.")
    item = ws.compliance.queue(cora)[0]
    assert item.state == "resolved" and not item.needs_attention
    assert item.late_justification.startswith("Rhythm strip")
    assert [a.event_type for a in item.annotations] == ["review_rejected", "reminder", "late_justification",
                                                        "review_resolved"]
    assert ws.audit.verify().ok


def test_reports_by_role(ws: Workstation) -> None:
    cora, hal = ws.sign_in("co_cora", DEMO_PASSWORD), ws.sign_in("admin_hal", DEMO_PASSWORD)
    report = ws.compliance.report(cora, "break_glass", "h1")
    assert dict(report.rows) == {"break_glass_started": 1, "break_glass_ended": 1}
    usage = ws.compliance.report(hal, "usage", "h1")
    assert usage.total >= 2 and all(len(label) == 10 for label, _ in usage.rows)
    with pytest.raises(ReviewRefused, match="usage reports only"):
        ws.compliance.report(hal, "break_glass", "h1")
    with pytest.raises(ReviewRefused):
        ws.compliance.report(cora, "usage", "h2")  # not her hospital
