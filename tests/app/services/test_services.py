"""The Qt-free service layer on a real SQLite file, the real policies/ and a real audit log: the
demo data and its users, who sees which patients, records opened only once audited, notes, and
the workspace each user gets."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from app.services.access import NO_POLICIES, AccessService, Refused, offered
from app.services.audit_trail import AuditTrail
from app.services.demo_data import STAFF, generate
from app.services.patients import RECORD_ACTIONS, PatientService
from app.services.resources import patient_record, workstation
from app.services.session import Workspace
from app.services.store import Store
from app.services.users import DEMO_PASSWORD, SignedInUser, check_password, hash_password
from app.services.workstation import Workstation
from authz import Decision, Effect, Engine
from authz.audit import AuditChain, AuditRecord, AuditWriteError
from tests.app.services.support import (
    POLICIES,
    SEED_PATIENT,
    Clocks,
    not_on_care_team,
    reason,
    reasons,
    rule_id,
    store_dump,
    user,
)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_directory(POLICIES)


def test_demo_data_is_deterministic_and_complete() -> None:
    a, b = generate(), generate()
    assert a == b
    assert len(a.patients) == 40 and len({p["hospital_id"] for p in a.patients}) == 2
    assert {s["role"] for s in a.staff} == {
        "physician",
        "nurse",
        "er_physician",
        "manufacturer_engineer",
        "compliance_officer",
        "hospital_admin",
        "delegated_caregiver",
        "patient",
        "remote_monitoring_gateway",  # the service account transmissions are imported as
    }
    assert len(a.transmissions) == 40 * 30 * 9 and len(a.messages) == 40 * 30  # one message a day each
    assert all(t["unit"] for t in a.transmissions)
    assert a.firmware_updates[0]["state"] == "requested" and a.delegations[0]["patient_id"] == SEED_PATIENT


def test_store_is_seeded_once(tmp_path: Path) -> None:
    first = Store(tmp_path / "ccc.db")
    count = first.db["transmissions"].count
    again = Store(tmp_path / "ccc.db")
    assert again.db["transmissions"].count == count == 40 * 30 * 9
    assert again.patient("p01").hospital_id == "h1"


def test_passwords_are_salted_hashes_only(ws: Workstation) -> None:
    store, users = ws.store, ws.users
    stored = [store.password_hash(sid) for sid in store.staff_ids()]
    assert all(DEMO_PASSWORD not in s for s in stored) and len(set(stored)) == len(stored)
    assert check_password("x", hash_password("x")) and not check_password("y", hash_password("x"))
    assert not check_password("x", "plain") and not check_password("x", "md5$aa$bb")
    assert users.authenticate("dr_aly", "wrong") is None and users.authenticate("nobody", DEMO_PASSWORD) is None
    aly = users.authenticate("dr_aly", DEMO_PASSWORD)
    assert aly is not None and aly.roles == ("physician",) and aly.attributes["hospital_ids"] == ["h1"]
    gina = users.authenticate("gina", DEMO_PASSWORD)
    assert gina.attributes["delegations"][0]["patient_id"] == SEED_PATIENT
    assert users.authenticate("eng_max", DEMO_PASSWORD).attributes == {"manufacturer_id": "m_acme"}
    assert users.authenticate("pt_p02", DEMO_PASSWORD).attributes == {"patient_id": SEED_PATIENT}


def test_each_role_sees_the_patients_policy_allows(ws: Workstation) -> None:
    seen = {sid: {r.patient.id for r in ws.patients.rows(user(ws, sid))} for sid, *_ in STAFF}
    patients = {p.id: p for p in ws.store.patients()}
    assert seen["nurse_nia"] == {pid for pid, p in patients.items() if "nurse_nia" in p.care_team and not p.sealed}
    assert seen["dr_aly"] == {pid for pid, p in patients.items() if "dr_aly" in p.care_team}
    assert seen["er_eli"] == set()  # nobody until break-glass
    assert seen["co_cora"] == seen["admin_hal"] == seen["eng_max"] == set()
    assert seen["gina"] == seen["pt_p02"] == {SEED_PATIENT}
    assert seen["dr_visiting"] >= {pid for pid, p in patients.items() if "dr_visiting" in p.care_team}


def test_rows_carry_alerts_and_search_by_name_or_mrn(ws: Workstation) -> None:
    aly = user(ws, "dr_aly")
    rows = {r.patient.id: r for r in ws.patients.rows(aly)}
    assert rows[SEED_PATIENT].alert_level == "red"  # the lead problem
    assert "RV lead impedance out of range" in rows[SEED_PATIENT].alerts.reasons
    assert rows["p01"].alert_level == "yellow" and len(rows["p01"].alerts.open) == 2  # two AF episodes
    assert all(r.last_transmission for r in rows.values())
    p02 = ws.store.patient(SEED_PATIENT)
    assert [r.patient.id for r in ws.patients.rows(aly, p02.mrn.lower())] == [SEED_PATIENT]
    assert SEED_PATIENT in [r.patient.id for r in ws.patients.rows(aly, f"  {p02.name.split()[1].upper()} ")]
    outsider = ws.store.patient(not_on_care_team(ws, "dr_aly"))
    assert ws.patients.rows(aly, outsider.mrn) == []  # search never widens what may be seen
    assert ws.patients.find_by_mrn(outsider.mrn) == outsider.id  # the ER's exact lookup
    assert ws.patients.find_by_mrn(outsider.mrn[:-1]) is None


def test_denials_explain_themselves(ws: Workstation) -> None:
    outsider = not_on_care_team(ws, "dr_ben")
    cases = {
        "dr_ben": reason("patient_record", "why_not_view", after='"physician" in P.roles'),
        "er_eli": reason("patient_record", "why_not_view", after='"er_physician" in P.roles'),
        "co_cora": reason("patient_record", "reviewers_see_no_charts"),
        "eng_max": reason("patient_record", "engineers_see_no_charts"),
        "gina": reason("patient_record", "why_not_view", after='"delegated_caregiver" in P.roles'),
        "pt_p02": reason("patient_record", "why_not_view", after='"patient" in P.roles'),
    }
    for who, (why, remedy) in cases.items():
        with pytest.raises(Refused) as refused:
            ws.patients.open_record(user(ws, who), outsider)
        assert (refused.value.decision.reason, refused.value.decision.remedy) == (why, remedy), who
    with pytest.raises(Refused, match="no such patient"):
        ws.patients.open_record(user(ws, "dr_aly"), "p99")


def test_sealed_records_stay_closed_to_the_nurse_on_the_care_team(ws: Workstation) -> None:
    sealed = next(p for p in ws.store.patients() if p.sealed and any(m.startswith("nurse_") for m in p.care_team))
    nurse = next(m for m in sealed.care_team if m.startswith("nurse_"))
    with pytest.raises(Refused) as refused:
        ws.patients.open_record(user(ws, nurse), sealed.id)
    assert refused.value.decision.rule == rule_id("patient_record", "sealed_record")
    assert refused.value.decision.reason == reason("patient_record", "sealed_record")[0]


def test_no_policies_means_everything_denied_with_the_reason(ws: Workstation) -> None:
    aly = user(ws, "dr_aly")
    access = AccessService(lambda: None, ws.access.resolve, no_policy_reason=lambda: "No valid policy bundle.")
    record = patient_record(ws.store.patient("p01"))
    assert access.permitted(aly, [record], "view") == [] and access.bundle_version == ""
    assert access.decide(aly, record, ["view", "export"]) == {
        "view": Decision.refused("view", "No valid policy bundle."),
        "export": Decision.refused("export", "No valid policy bundle."),
    }
    with pytest.raises(Refused, match="No valid policy bundle"):
        access.require(aly, record, "view")
    assert AccessService(lambda: None).decide_one(aly, record, "view").reason == NO_POLICIES


def test_the_policies_read_the_workstation_clock(engine: Engine, ws: Workstation, clocks: Clocks) -> None:
    gina = user(ws, "gina")
    record = patient_record(ws.store.patient(SEED_PATIENT))
    access = AccessService(lambda: engine, ws.access.resolve, clock=clocks.now)
    assert access.decide_one(gina, record, "view").allowed
    clocks.advance(days=91)  # the seed's delegation ends in 90 days
    assert not access.decide_one(gina, record, "view").allowed


def test_a_record_offers_what_the_policies_allow(ws: Workstation) -> None:
    aly = ws.patients.open_record(user(ws, "dr_aly"), SEED_PATIENT)
    assert set(aly.decisions) == {"view", "view_phi", *RECORD_ACTIONS}
    assert aly.note_types == ("full", "basic") and aly.notes_refusal is None
    assert aly.decisions["view_history"].allowed and aly.history
    assert offered(aly.decisions["delegate_access"]) and not aly.decisions["delegate_access"].allowed
    assert aly.device["id"] == f"d-{SEED_PATIENT}" and len(aly.series) == 9
    assert all(len(s.points) == 30 for s in aly.series) and aly.notes
    nia = ws.patients.open_record(user(ws, "nurse_nia"), "p01")
    assert nia.note_types == ("basic",)
    assert not offered(nia.decisions["delegate_access"]) and not offered(nia.decisions["record_consent"])
    assert nia.decisions["delegate_access"].reason == reasons("patient_record", "why_not_delegate")[-1][0]
    patient = ws.patients.open_record(user(ws, "pt_p02"), SEED_PATIENT)
    assert (
        patient.note_types == () and patient.notes_refusal.reason == reason("patient_record", "why_not_write_note")[0]
    )
    assert patient.decisions["record_consent"].allowed and patient.decisions["delegate_access"].allowed


def test_notes_are_saved_only_as_the_policies_allow(ws: Workstation, clocks: Clocks) -> None:
    aly, nia = user(ws, "dr_aly"), user(ws, "nurse_nia")
    note = ws.patients.save_note(aly, SEED_PATIENT, "full", "  Lead impedance trend reviewed.  ")
    assert (note["author_id"], note["note_type"], note["text"]) == ("dr_aly", "full", "Lead impedance trend reviewed.")
    assert ws.store.notes_for(SEED_PATIENT, newest_first=True)[0] == note
    ws.patients.save_note(nia, "p01", "basic", "Wound check done.")
    before = store_dump(ws)
    for who, patient, note_type in (
        (nia, "p01", "full"),
        (nia, "p01", "emergency"),
        (aly, SEED_PATIENT, "emergency"),
        (aly, SEED_PATIENT, "bogus"),
        (user(ws, "gina"), SEED_PATIENT, "basic"),
        (aly, not_on_care_team(ws, "dr_aly"), "full"),
    ):
        with pytest.raises(Refused) as refused:
            ws.patients.save_note(who, patient, note_type, "Something to say.")
        assert refused.value.decision.action == "edit_clinical_notes" and refused.value.decision.reason
    with pytest.raises(Refused, match="empty"):
        ws.patients.save_note(aly, SEED_PATIENT, "full", "   ")
    with pytest.raises(Refused, match="no such patient"):
        ws.patients.save_note(aly, "p99", "full", "Something to say.")
    assert store_dump(ws) == before
    events = [r for r in ws.audit.records() if r.kind == "event"]
    assert [(r.principal_id, r.event_type, r.details["note_type"]) for r in events] == [
        ("dr_aly", "note_saved", "full"),
        ("nurse_nia", "note_saved", "basic"),
    ]
    assert events[0].details["note_id"] == note["id"] and events[0].action == "edit_clinical_notes"
    assert [r.rule for r in events] == [
        rule_id("patient_record", "physician_full_notes"),
        rule_id("patient_record", "nurse_basic_notes"),
    ]


def test_a_note_is_stamped_with_the_workstation_clock(ws: Workstation, clocks: Clocks) -> None:
    clocks.advance(days=3)
    note = ws.patients.save_note(user(ws, "dr_aly"), SEED_PATIENT, "full", "Seen in clinic.")
    assert note["time"] == clocks.wall.isoformat()


def test_record_is_shown_only_after_its_decision_is_audited(ws: Workstation, tmp_path: Path) -> None:
    aly = user(ws, "dr_aly")
    mine = SEED_PATIENT
    assert ws.patients.open_record(aly, mine).patient.id == mine
    records = list(ws.audit.records())
    assert [(r.kind, r.principal_id, r.patient_id, r.action, r.effect, r.rule) for r in records] == [
        ("decision", "dr_aly", mine, action, Effect.ALLOW.value, rule_id("patient_record", "view_patient_data"))
        for action in ("view", "view_phi")
    ]
    assert records[0].bundle_version == "bundled" and records[0].purpose_of_use == "TREAT"
    other = not_on_care_team(ws, "dr_aly")
    with pytest.raises(Refused, match="care team"):
        ws.patients.open_record(aly, other)
    denied = list(ws.audit.records())[-1]
    assert (denied.kind, denied.patient_id, denied.effect) == ("decision", other, Effect.DENY.value)
    ws.patients.open_record(aly, mine, purpose_of_use="ETREAT")
    assert list(ws.audit.records())[-1].purpose_of_use == "ETREAT"

    (tmp_path / "broken.db").write_bytes(b"garbage" * 100)
    broken = PatientService(ws.store, ws.access, AuditTrail(_ReopenedChain(tmp_path / "broken.db")))
    with pytest.raises(AuditWriteError):
        broken.open_record(aly, mine)


class _ReopenedChain(AuditChain):
    """An audit log whose file was destroyed under the running app: each write opens it again."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append_many(self, records: Iterable[AuditRecord]) -> list[AuditRecord]:
        return AuditChain(self.path).append_many(records)


def test_each_user_gets_the_workspace_the_policies_open(ws: Workstation) -> None:
    workspaces = {sid: ws.session.workspace(user(ws, sid)).name for sid, *_ in STAFF}
    assert workspaces == {
        sid: {
            "compliance_officer": "compliance",
            "hospital_admin": "compliance",
            "manufacturer_engineer": "engineering",
            "patient": "personal",  # their own readings in plain words (issue 18, part 7)
            "delegated_caregiver": "personal",
            "remote_monitoring_gateway": "",  # a service account: it imports transmissions, it has no screen
        }.get(role, "clinical")
        for sid, _, role, *_ in STAFF
    }
    er = ws.session.workspace(user(ws, "er_eli"))
    assert "break-glass" in er.empty_list and er.decision.rule == rule_id("workstation", "clinical_workspace")
    assert "not assigned" in ws.session.workspace(user(ws, "nurse_nia")).empty_list
    nobody = ws.session.workspace(SignedInUser("it_ivan", "Ivan", ("it_support",), {"hospital_ids": ["h1"]}))
    assert nobody.name == "" and nobody.decision.reason == reason("workstation", "why_not_workspace")[0]
    assert Workspace.closed().name == "" and Workspace.closed().decision.reason == "Sign in first."


def test_the_sign_in_list_names_every_account_the_policies_let_sign_in(ws: Workstation) -> None:
    """Every person's account; the remote-monitoring gateway's service account is refused
    ``sign_in`` by the policies (no role name in the app), so it is not offered."""
    choices = dict(ws.session.staff_choices())
    assert list(choices) == [sid for sid, *_ in STAFF if sid != "rm_gateway"]
    assert choices["er_eli"] == "Dr. Eli Sato — er physician"
    gateway = ws.access.decide_one(user(ws, "rm_gateway"), workstation(), "sign_in")
    assert not gateway.allowed and gateway.rule == rule_id("workstation", "service_accounts_do_not_sign_in")


def test_with_no_policy_set_the_sign_in_list_names_every_account(ws: Workstation) -> None:
    """Nothing to ask: each account is listed, and signing in then says why nothing opens."""
    ws.access.engine = lambda: None
    assert [sid for sid, _ in ws.session.staff_choices()] == [sid for sid, *_ in STAFF]


def test_the_policies_see_the_user_as_recorded_now(ws: Workstation) -> None:
    gina = user(ws, "gina")  # signed in with the seed's delegation
    assert [r.patient.id for r in ws.patients.rows(gina)] == [SEED_PATIENT]
    ws.store.revoke_delegation("del-1")  # revoked after she signed in
    assert "delegations" in gina.attributes and "delegations" not in ws.access.resolve(gina).attributes
    assert ws.patients.rows(gina) == []
    assert not ws.access.decide_one(gina, patient_record(ws.store.patient(SEED_PATIENT)), "view").allowed
    gone = SignedInUser("dr_gone", "Dr. Gone", ("physician",), {"hospital_ids": ["h1"]})  # account removed
    assert ws.access.resolve(gone).attributes == {} and ws.patients.rows(gone) == []
