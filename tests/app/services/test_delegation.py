"""Delegation on the real policies, store and audit log: who may grant, the patient's permission,
to whom, what the delegate then sees, revocation and expiry."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.services.access import Refused
from app.services.workstation import Workstation
from authz import Effect
from tests.app.services.support import SEED_PATIENT, Clocks, reason, rule_id, store_dump, user


@pytest.fixture
def ws(make_ws: Callable[..., Workstation]) -> Workstation:
    ws = make_ws()
    for existing in ws.delegations.for_patient(SEED_PATIENT):  # start with Gina delegated to nobody
        ws.store.revoke_delegation(existing.id)
    return ws


def events(ws: Workstation) -> list[tuple[str, str]]:
    return [(r.event_type, r.details.get("delegation_id")) for r in ws.audit.records() if r.kind == "event"]


def test_assigned_physician_delegates_with_permission_and_revokes(ws: Workstation, clocks: Clocks) -> None:
    aly, gina = user(ws, "dr_aly"), user(ws, "gina")
    for category in ("psychiatric", "substance_use"):  # what a delegate's "limited" history leaves out
        ws.store.db["history"].insert(
            {
                "id": f"h-{SEED_PATIENT}-{category}",
                "patient_id": SEED_PATIENT,
                "category": category,
                "date": "2024-05-01",
                "summary": "Restricted.",
            }
        )
    assert ws.patients.rows(gina) == []
    offer = ws.delegations.offer(aly, SEED_PATIENT)
    assert not offer.allowed and offer.remedy == "complete_form"  # once the patient's permission is ticked
    with pytest.raises(Refused, match="permission") as refused:
        ws.delegations.grant(aly, SEED_PATIENT, "gina", clocks.in_days(30), patient_permission=False)
    assert refused.value.decision.remedy == "complete_form"
    delegation = ws.delegations.grant(aly, SEED_PATIENT, "gina", clocks.in_days(30), patient_permission=True)
    assert (delegation.granted_by, delegation.delegate_id, delegation.patient_permission) == ("dr_aly", "gina", True)
    assert delegation.expires_at == clocks.in_days(30) and not delegation.revoked
    assert [r.patient.id for r in ws.patients.rows(gina)] == [SEED_PATIENT]  # the signed-in delegate, at once
    record = ws.patients.open_record(gina, SEED_PATIENT)
    assert record.note_types == () and record.notes_refusal is not None
    assert record.notes_refusal.reason == reason("patient_record", "why_not_write_note")[0]
    assert not ws.exports.offers(gina, SEED_PATIENT)["identified"].allowed
    assert record.history and {e["category"] for e in record.history}.isdisjoint(
        {"psychiatric", "sexual_health", "substance_use", "sealed"}
    )
    everything = {e["category"] for e in ws.patients.open_record(aly, SEED_PATIENT).history}
    assert everything - {e["category"] for e in record.history} == {"psychiatric", "substance_use"}
    with pytest.raises(Refused):
        ws.patients.open_record(gina, "p01")
    ws.delegations.revoke(aly, delegation.id)
    assert ws.delegations.for_patient(SEED_PATIENT)[-1].revoked
    assert ws.patients.rows(gina) == []
    with pytest.raises(Refused, match="delegated access to you"):
        ws.patients.open_record(gina, SEED_PATIENT)
    assert events(ws) == [("delegation_granted", delegation.id), ("delegation_revoked", delegation.id)]
    granted = next(r for r in ws.audit.records() if r.event_type == "delegation_granted")
    assert granted.action == "delegate_access" and granted.effect == Effect.ALLOW.value
    assert granted.rule == rule_id("patient_record", "physician_delegates_with_permission")
    assert granted.details == {
        "delegation_id": delegation.id,
        "delegate_id": "gina",
        "expires_at": delegation.expires_at.isoformat(),
        "patient_permission": True,
    }


def test_the_patient_delegates_and_revokes_their_own_record_only(ws: Workstation, clocks: Clocks) -> None:
    patient = user(ws, "pt_p02")
    assert ws.delegations.offer(patient, SEED_PATIENT).allowed
    delegation = ws.delegations.grant(patient, SEED_PATIENT, "gina", clocks.in_days(7), patient_permission=False)
    assert delegation.granted_by == "pt_p02"
    with pytest.raises(Refused, match="your own record"):
        ws.delegations.grant(patient, "p01", "gina", clocks.in_days(7), patient_permission=True)
    ws.delegations.revoke(patient, delegation.id)
    assert ws.patients.rows(user(ws, "gina")) == []


def test_only_caregiver_accounts_receive_delegations(ws: Workstation) -> None:
    name = ws.store.patient("p02").name  # the demo names her caregiver after her
    gina = ("gina", f"Gina {name.rsplit(' ', 1)[-1]} (granddaughter of {name})")
    assert ws.delegations.caregivers(user(ws, "dr_aly")) == [gina]
    assert ws.delegations.caregivers(user(ws, "pt_p02")) == [gina]
    assert ws.delegations.caregivers(user(ws, "nurse_nia")) == []


def test_refusals_say_why(ws: Workstation, clocks: Clocks) -> None:
    nia, ben, aly, gina = (user(ws, u) for u in ("nurse_nia", "dr_ben", "dr_aly", "gina"))
    before = store_dump(ws)
    with pytest.raises(Refused, match="assigned physician"):
        ws.delegations.grant(nia, SEED_PATIENT, "gina", clocks.in_days(7), patient_permission=True)
    not_his = next(p.id for p in ws.store.patients(["h1"]) if "dr_ben" not in p.assigned_physicians)
    with pytest.raises(Refused, match="assigned physician"):
        ws.delegations.grant(ben, not_his, "gina", clocks.in_days(7), patient_permission=True)
    with pytest.raises(Refused, match="caregiver"):
        ws.delegations.grant(aly, SEED_PATIENT, "nurse_nia", clocks.in_days(7), patient_permission=True)
    with pytest.raises(Refused, match="Choose the caregiver"):
        ws.delegations.grant(aly, SEED_PATIENT, "nobody", clocks.in_days(7), patient_permission=True)
    with pytest.raises(Refused, match="future"):
        ws.delegations.grant(aly, SEED_PATIENT, "gina", clocks.in_days(-1), patient_permission=True)
    with pytest.raises(Refused, match="future"):
        ws.delegations.grant(
            aly, SEED_PATIENT, "gina", clocks.in_days(30).replace(tzinfo=None), patient_permission=True
        )
    with pytest.raises(Refused, match="no such patient"):
        ws.delegations.grant(aly, "p99", "gina", clocks.in_days(7), patient_permission=True)
    for who in (nia, gina, user(ws, "eng_max")):
        with pytest.raises(Refused):
            ws.delegations.revoke(who, "del-1")
    with pytest.raises(Refused, match="no such delegation"):
        ws.delegations.revoke(aly, "del-nope")
    assert events(ws) == [] and store_dump(ws) == before


def test_access_ends_at_expiry(ws: Workstation, clocks: Clocks) -> None:
    aly, gina = user(ws, "dr_aly"), user(ws, "gina")
    ws.delegations.grant(aly, SEED_PATIENT, "gina", clocks.in_days(1), patient_permission=True)
    assert ws.patients.rows(gina)
    clocks.advance(days=1, minutes=1)  # the policies compare the recorded expiry with now()
    assert ws.patients.rows(gina) == []
    with pytest.raises(Refused):
        ws.patients.open_record(gina, SEED_PATIENT)


def test_a_delegation_is_revoked_once(ws: Workstation, clocks: Clocks) -> None:
    aly = user(ws, "dr_aly")
    delegation = ws.delegations.grant(aly, SEED_PATIENT, "gina", clocks.in_days(30), patient_permission=True)
    ws.delegations.revoke(aly, delegation.id)
    try:
        ws.delegations.revoke(aly, delegation.id)
    except Refused:
        pass
    assert [e for e, _ in events(ws)].count("delegation_revoked") == 1
