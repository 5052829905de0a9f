"""Break-glass on the real policies, store and audit log: every refusal, the audited grant, the
window that neither a clock change nor a restart can extend, and the end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.services.break_glass import BreakGlassRefused, justification_problem
from app.services.users import DEMO_PASSWORD
from app.services.workstation import Workstation

WHY = "Unconscious in the ER, pacemaker interrogation needed now"
EMERGENCY_PATIENT = "p03"  # flagged as an ER emergency in the demo data, hospital h1


class Clocks:
    """Wall clock and monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.wall = datetime.now(UTC)
        self.mono = 5000.0

    def attach(self, ws: Workstation) -> Workstation:
        ws.break_glass.clock = lambda: self.wall
        ws.break_glass.monotonic = lambda: self.mono
        return ws

    def advance(self, minutes: float) -> None:
        self.wall += timedelta(minutes=minutes)
        self.mono += minutes * 60


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def ws(tmp_path: Path, clocks: Clocks) -> Workstation:
    return clocks.attach(Workstation(tmp_path / "data"))


@pytest.mark.parametrize("text, problem", [
    ("too short", "at least 20"),
    ("                                   ", "at least 20"),
    ("a" * 40, "repeated character"),
    ("ab " * 15, "repeated character"),
])
def test_justifications_that_say_nothing_are_refused(ws: Workstation, text: str, problem: str) -> None:
    assert problem in justification_problem(text)
    eli = ws.sign_in("er_eli", DEMO_PASSWORD)
    with pytest.raises(BreakGlassRefused, match=problem):
        ws.start_emergency_access(eli, EMERGENCY_PATIENT, "ETREAT", text, DEMO_PASSWORD)


def test_other_refusals_say_why(ws: Workstation) -> None:
    eli = ws.sign_in("er_eli", DEMO_PASSWORD)
    nia = ws.sign_in("nurse_nia", DEMO_PASSWORD)
    cases = [
        (eli, EMERGENCY_PATIENT, "ETREAT", "nope", "password"),
        (eli, EMERGENCY_PATIENT, "", DEMO_PASSWORD, "reason"),
        (eli, "p04", "ETREAT", DEMO_PASSWORD, "emergency treatment"),  # not flagged as an emergency
        (nia, EMERGENCY_PATIENT, "ETREAT", DEMO_PASSWORD, "Only physicians"),
    ]
    for user, patient, reason, password, says in cases:
        with pytest.raises(BreakGlassRefused, match=says):
            ws.start_emergency_access(user, patient, reason, WHY, password)
    assert ws.emergency_session(eli) is None
    assert not [r for r in ws.audit.records() if r.event_type.startswith("break_glass")]


def test_granted_access_is_scoped_audited_and_ends(ws: Workstation) -> None:
    eli = ws.sign_in("er_eli", DEMO_PASSWORD)
    assert ws.patient_rows(eli) == []
    with pytest.raises(PermissionError):
        ws.open_record(eli, EMERGENCY_PATIENT)
    eli = ws.start_emergency_access(eli, EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    assert [r.patient.id for r in ws.patient_rows(eli)] == [EMERGENCY_PATIENT]  # that one patient only
    with pytest.raises(PermissionError):
        ws.open_record(eli, "p01")
    record = ws.open_record(eli, EMERGENCY_PATIENT)
    assert record.decisions["edit_clinical_notes"].allowed
    assert ws.save_note(eli, EMERGENCY_PATIENT, "Device interrogated, pacing normal.")["note_type"] == "emergency"
    eli = ws.end_emergency_access(eli)
    with pytest.raises(PermissionError):
        ws.open_record(eli, EMERGENCY_PATIENT)

    audit = list(ws.audit.records())
    started = [r for r in audit if r.event_type == "break_glass_started"]
    assert len(started) == 1 and started[0].justification == WHY and started[0].purpose_of_use == "ETREAT"
    assert started[0].details["review"] == "required"
    under = [r for r in audit if r.kind == "decision" and r.action == "view" and r.effect == "EFFECT_ALLOW"]
    assert under and all({"audit_flag": "break_glass_access"} in [o.get("val") for o in r.outputs] for r in under)
    assert [r.details["why"] for r in audit if r.event_type == "break_glass_ended"] == ["ended by the clinician"]
    assert [r.event_type for r in audit if r.kind == "event"] == ["break_glass_started", "note_saved",
                                                                   "break_glass_ended"]
    assert ws.audit.verify().ok


def test_the_window_closes_at_60_minutes_and_a_clock_change_cannot_extend_it(ws: Workstation,
                                                                          clocks: Clocks) -> None:
    eli = ws.start_emergency_access(ws.sign_in("er_eli", DEMO_PASSWORD), EMERGENCY_PATIENT, "BTG", WHY,
                                    DEMO_PASSWORD)
    session = ws.emergency_session(eli)
    clocks.advance(30)
    clocks.wall -= timedelta(hours=2)  # someone sets the clock back two hours
    assert ws.break_glass.remaining(session) == timedelta(minutes=30)
    clocks.advance(31)
    assert ws.emergency_session(eli) is None  # expired on the monotonic clock, and ended
    assert [r.details["why"] for r in ws.audit.records() if r.event_type == "break_glass_ended"] == ["expired"]
    assert "break_glass" not in ws.as_policies_see(eli).attributes


def test_a_restart_resumes_the_window_from_the_recorded_start(tmp_path: Path, clocks: Clocks) -> None:
    first = clocks.attach(Workstation(tmp_path / "data"))
    first.start_emergency_access(first.sign_in("er_eli", DEMO_PASSWORD), EMERGENCY_PATIENT, "ETREAT", WHY,
                                 DEMO_PASSWORD)
    clocks.advance(10)
    restarted = clocks.attach(Workstation(tmp_path / "data"))
    eli = restarted.sign_in("er_eli", DEMO_PASSWORD)
    assert eli.attributes["break_glass"]["patient_id"] == EMERGENCY_PATIENT
    assert restarted.break_glass.remaining(restarted.emergency_session(eli)) == timedelta(minutes=50)
    assert restarted.open_record(eli, EMERGENCY_PATIENT).patient.id == EMERGENCY_PATIENT
    clocks.advance(51)
    assert restarted.emergency_session(eli) is None
