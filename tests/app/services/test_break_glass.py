"""Break-glass on the real policies, store and audit log: every refusal, the audited grant, the
window that neither a clock change nor a restart can extend, and the end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from app.services.access import Refused
from app.services.break_glass import window_of
from app.services.text_measure import measure
from app.services.users import DEMO_PASSWORD, SignedInUser
from app.services.workstation import Workstation
from authz import Decision, Effect
from tests.app.services.support import EMERGENCY_PATIENT, WHY, Clocks, reasons, store_dump, user


def ended(ws: Workstation) -> list[str]:
    return [r.details["why"] for r in ws.audit.records() if r.event_type == "break_glass_ended"]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("too short", "at least 20"),
        ("                                   ", "at least 20"),
        ("a" * 40, "repeats words or placeholder text"),
        ("ab " * 15, "repeats words or placeholder text"),
        ("qwerty qwerty qwerty", "keys run along the keyboard"),
        ("test test test test test test test", "repeats words or placeholder text"),
        ("asdfghjkl qwertyuiop patient", "keys run along the keyboard"),
        ("lorem ipsum dolor sit amet test", "repeats words or placeholder text"),
        ("pain pain pain pain pain chest patient", "repeats words or placeholder text"),
    ],
)
def test_justifications_that_say_nothing_are_refused(ws: Workstation, text: str, problem: str) -> None:
    """The policies judge the text on its measure (break_glass in patient_record.yaml)."""
    eli = user(ws, "er_eli")
    with pytest.raises(Refused, match=problem) as refused:
        ws.break_glass.start(eli, EMERGENCY_PATIENT, "ETREAT", text, DEMO_PASSWORD)
    assert refused.value.decision.action == "break_glass" and not refused.value.decision.allowed
    assert ws.break_glass.active(eli) is None


def test_the_text_measure_counts_words_distinct_words_letters_and_keyboard_runs() -> None:
    assert measure("Qwerty qwerty, QWERTY!") == {
        "words": 3,
        "distinct_words": ["qwerty"],
        "letters": 18,
        "keyboard_run_letters": 18,
    }
    why = measure(WHY)
    assert why["keyboard_run_letters"] == 0 and why["words"] == len(why["distinct_words"])
    assert measure("zyxw 4321 abc")["keyboard_run_letters"] == 8  # runs of 4 either way; "abc" is too short
    assert measure("") == {"words": 0, "distinct_words": [], "letters": 0, "keyboard_run_letters": 0}


def test_other_refusals_say_why(ws: Workstation) -> None:
    eli, nia = user(ws, "er_eli"), user(ws, "nurse_nia")
    cases = [
        (eli, EMERGENCY_PATIENT, "ETREAT", "nope", "password"),
        (eli, EMERGENCY_PATIENT, "", DEMO_PASSWORD, "reason code"),
        (eli, EMERGENCY_PATIENT, "SOMETIMES", DEMO_PASSWORD, "reason code"),  # not an HL7 emergency code
        (eli, "p04", "ETREAT", DEMO_PASSWORD, "emergency treatment"),  # not flagged as an emergency
        (eli, "p99", "ETREAT", DEMO_PASSWORD, "no such patient"),
        (nia, EMERGENCY_PATIENT, "ETREAT", DEMO_PASSWORD, "Only physicians"),
        (user(ws, "eng_max"), EMERGENCY_PATIENT, "ETREAT", DEMO_PASSWORD, "Engineers"),
    ]
    before = store_dump(ws)
    for who, patient, code, password, says in cases:
        with pytest.raises(Refused, match=says):
            ws.break_glass.start(who, patient, code, WHY, password)
    assert ws.break_glass.active(eli) is None
    assert not [r for r in ws.audit.records() if r.kind == "event"] and store_dump(ws) == before


def test_the_offer_says_what_the_form_still_needs(ws: Workstation) -> None:
    eli = user(ws, "er_eli")
    offer = ws.break_glass.offer(eli, EMERGENCY_PATIENT)
    assert not offer.allowed and offer.remedy == "complete_form"
    assert (offer.reason, offer.remedy) == reasons("patient_record", "break_glass")[-1]
    assert ws.break_glass.offer(eli, EMERGENCY_PATIENT, "ETREAT", WHY).allowed
    assert ws.break_glass.offer(eli, EMERGENCY_PATIENT, "ETREAT", "short").remedy == "complete_form"
    not_emergency = ws.break_glass.offer(eli, "p04", "ETREAT", WHY)
    assert not not_emergency.allowed and not_emergency.remedy == ""  # no form makes this one possible
    assert ws.break_glass.offer(eli, "p99").reason == "There is no such patient."
    assert not [r for r in ws.audit.records() if r.kind == "event"]  # offers write nothing


def test_granted_access_is_scoped_audited_and_ends(ws: Workstation) -> None:
    eli = user(ws, "er_eli")
    assert ws.patients.rows(eli) == []
    with pytest.raises(Refused) as refused:
        ws.patients.open_record(eli, EMERGENCY_PATIENT)
    assert refused.value.decision.remedy == "break_glass"
    session = ws.break_glass.start(eli, EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    assert session.expires_at - session.started_at == timedelta(minutes=60)  # the policy's expires_in
    assert ws.break_glass.active(eli) == session
    assert [r.patient.id for r in ws.patients.rows(eli)] == [EMERGENCY_PATIENT]  # that one patient only
    with pytest.raises(Refused):
        ws.patients.open_record(eli, "p01")
    record = ws.patients.open_record(eli, EMERGENCY_PATIENT)
    assert record.note_types == ("emergency",) and record.history
    note = ws.patients.save_note(eli, EMERGENCY_PATIENT, "emergency", "Device interrogated, pacing normal.")
    assert note["note_type"] == "emergency" and note["author_id"] == "er_eli"
    ws.break_glass.end(eli)
    assert ws.break_glass.active(eli) is None
    with pytest.raises(Refused):
        ws.patients.open_record(eli, EMERGENCY_PATIENT)
    ws.break_glass.end(eli)  # nothing left to end: nothing happens

    audit = list(ws.audit.records())
    started = [r for r in audit if r.event_type == "break_glass_started"]
    assert len(started) == 1 and started[0].justification == WHY and started[0].purpose_of_use == "ETREAT"
    assert started[0].details["review"] == "required" and started[0].details["session_id"] == session.id
    assert started[0].action == "break_glass" and started[0].effect == Effect.ALLOW.value
    under = [r for r in audit if r.kind == "decision" and r.action == "view" and r.effect == Effect.ALLOW.value]
    assert under and all({"audit_flag": "break_glass_access"} in [o.get("val") for o in r.outputs] for r in under)
    assert ended(ws) == ["ended by the clinician"]
    assert [r.event_type for r in audit if r.kind == "event"] == [
        "break_glass_started",
        "note_saved",
        "break_glass_ended",
    ]
    assert ws.chain.verify().ok


def test_the_user_is_seen_by_the_policies_with_the_session_only_while_it_lasts(ws: Workstation, clocks: Clocks) -> None:
    eli = user(ws, "er_eli")
    assert "break_glass" not in ws.access.resolve(eli).attributes
    ws.break_glass.start(eli, EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    seen = ws.access.resolve(eli).attributes["break_glass"]
    assert seen["patient_id"] == EMERGENCY_PATIENT and seen["reason"] == "ETREAT" and seen["justification"] == WHY
    assert "break_glass" not in eli.attributes  # the signed-in user itself is never changed
    clocks.advance(60.5)
    assert "break_glass" not in ws.access.resolve(eli).attributes


def allows(ws: Workstation, who: SignedInUser) -> bool:
    try:
        ws.patients.open_record(who, EMERGENCY_PATIENT)
    except Refused:
        return False
    return True


def test_the_time_left_is_more_than_zero_exactly_while_the_policies_allow_the_access(
    ws: Workstation, clocks: Clocks
) -> None:
    """What the banner counts down and what the engine decides agree whatever the clock does."""
    eli = user(ws, "er_eli")
    session = ws.break_glass.start(eli, EMERGENCY_PATIENT, "BTG", WHY, DEMO_PASSWORD)
    clocks.advance(30)
    clocks.wall -= timedelta(minutes=10)  # set back, but still after the start
    assert ws.break_glass.remaining(session) == timedelta(minutes=30) and allows(ws, eli)
    clocks.wall -= timedelta(hours=2)  # set back before the start: the policies refuse
    assert ws.break_glass.remaining(session) == timedelta(0) and not allows(ws, eli)
    assert ws.break_glass.active(eli) is None and ended(ws) == ["expired"]


def test_the_window_closes_at_60_minutes_and_a_clock_change_cannot_extend_it(ws: Workstation, clocks: Clocks) -> None:
    eli = user(ws, "er_eli")
    session = ws.break_glass.start(eli, EMERGENCY_PATIENT, "BTG", WHY, DEMO_PASSWORD)
    clocks.advance(30)
    clocks.wall -= timedelta(minutes=20)  # someone sets the clock back twenty minutes
    assert ws.break_glass.remaining(session) == timedelta(minutes=30)
    clocks.advance(29)
    assert ws.break_glass.active(eli) == session
    clocks.advance(2)
    assert ws.break_glass.active(eli) is None  # expired on the monotonic clock, and ended
    assert ended(ws) == ["expired"]
    ws.break_glass.active(eli)
    assert ended(ws) == ["expired"]  # recorded once
    assert "break_glass" not in ws.access.resolve(eli).attributes
    expired = next(r for r in ws.audit.records() if r.event_type == "break_glass_ended")
    assert (expired.action, expired.effect, expired.rule) == ("", "", "")  # nobody decided it
    assert ws.store.open_break_glass_sessions("er_eli") == []


def test_the_window_closes_on_the_wall_clock_too(ws: Workstation, clocks: Clocks) -> None:
    eli = user(ws, "er_eli")
    session = ws.break_glass.start(eli, EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    clocks.wall += timedelta(minutes=61)  # the wall clock jumps ahead (the monotonic one did not move)
    assert ws.break_glass.remaining(session) == timedelta(0)
    with pytest.raises(Refused):  # and the policies, which read the wall clock, agree
        ws.patients.open_record(eli, EMERGENCY_PATIENT)
    assert ws.break_glass.active(eli) is None and ended(ws) == ["expired"]


def test_ending_is_a_decision_of_the_policies(ws: Workstation, clocks: Clocks) -> None:
    eli = user(ws, "er_eli")
    ws.break_glass.start(eli, EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    clocks.advance(5)
    ws.break_glass.end(eli, "patient handed over to cardiology")
    end = next(r for r in ws.audit.records() if r.event_type == "break_glass_ended")
    assert end.details["why"] == "patient handed over to cardiology" and end.purpose_of_use == "ETREAT"
    assert end.action == "end_break_glass" and end.effect == Effect.ALLOW.value
    assert end.rule.endswith("#end_own_break_glass")


def test_a_new_emergency_access_replaces_the_current_one(ws: Workstation) -> None:
    eli = user(ws, "er_eli")
    first = ws.break_glass.start(eli, EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    second = ws.break_glass.start(eli, EMERGENCY_PATIENT, "BTG", WHY + ", again", DEMO_PASSWORD)
    assert ws.break_glass.active(eli) == second != first
    assert ended(ws) == ["replaced by a new emergency access"]
    assert [s["id"] for s in ws.store.open_break_glass_sessions("er_eli")] == [second.id]


def test_a_physician_may_break_the_glass_too_but_not_at_another_hospital(ws: Workstation) -> None:
    aly = user(ws, "dr_aly")
    ws.break_glass.start(aly, EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    assert ws.patients.open_record(aly, EMERGENCY_PATIENT).note_types[0] == "emergency"
    other_hospital = next(p.id for p in ws.store.patients(["h2"]))
    ws.store.db["patients"].update(other_hospital, {"emergency": 1})
    with pytest.raises(Refused, match="hospital you do not work at"):
        ws.break_glass.start(aly, other_hospital, "ETREAT", WHY, DEMO_PASSWORD)


def test_a_restart_resumes_the_window_from_the_recorded_start(
    make_ws: Callable[..., Workstation], clocks: Clocks
) -> None:
    first = make_ws()
    eli = user(first, "er_eli")
    session = first.break_glass.start(eli, EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    clocks.advance(10)
    restarted = make_ws(data_dir=first.data_dir)
    resumed = restarted.break_glass.active(eli)
    assert resumed is not None and resumed.id == session.id and resumed.started_monotonic is None
    assert restarted.access.resolve(eli).attributes["break_glass"]["patient_id"] == EMERGENCY_PATIENT
    assert restarted.break_glass.remaining(resumed) == timedelta(minutes=50)
    assert restarted.patients.open_record(eli, EMERGENCY_PATIENT).patient.id == EMERGENCY_PATIENT
    clocks.advance(51)
    assert restarted.break_glass.active(eli) is None
    assert ended(restarted) == ["expired"]


def test_after_a_restart_a_clock_set_back_cannot_make_the_window_longer(
    make_ws: Callable[..., Workstation], clocks: Clocks
) -> None:
    first = make_ws()
    eli = user(first, "er_eli")
    first.break_glass.start(eli, EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    clocks.advance(10)
    restarted = make_ws(data_dir=first.data_dir)
    clocks.wall -= timedelta(minutes=30)  # before the recorded start: the policies refuse, and so does the window
    assert restarted.break_glass.active(eli) is None and not allows(restarted, eli)
    assert ended(restarted) == ["expired"]


def test_the_window_is_the_one_the_policy_gives() -> None:
    def allowed(expires_in: object) -> Decision:
        return Decision("break_glass", Effect.ALLOW, outputs=({"src": "r", "val": {"expires_in": expires_in}},))

    assert window_of(allowed("60m")) == timedelta(minutes=60)
    assert window_of(allowed("1h30m")) == timedelta(minutes=90)
    assert window_of(allowed("45s")) == timedelta(seconds=45)
    for unreadable in ("an hour", "60", "", None, 60, "60m and more"):
        assert window_of(allowed(unreadable)) == timedelta(minutes=60)  # the documented fallback
