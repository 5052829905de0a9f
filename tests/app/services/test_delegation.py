"""Delegation on the real policies, store and audit log: who may grant, the patient's permission,
what the delegate then sees, revocation and expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.services.delegation import DelegationRefused
from app.services.users import DEMO_PASSWORD
from app.services.workstation import Workstation


@pytest.fixture
def ws(tmp_path: Path) -> Workstation:
    ws = Workstation(tmp_path / "data")
    for existing in ws.delegations.for_patient("p02"):  # start with Gina delegated to nobody
        ws.store.revoke_delegation(existing.id)
    return ws


def in_days(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def test_assigned_physician_delegates_with_permission_and_revokes(ws: Workstation) -> None:
    aly = ws.sign_in("dr_aly", DEMO_PASSWORD)
    gina = ws.sign_in("gina", DEMO_PASSWORD)
    assert ws.patient_rows(gina) == []
    with pytest.raises(DelegationRefused, match="permission"):
        ws.grant_delegation(aly, "p02", "gina", in_days(30), patient_permission=False)
    delegation = ws.grant_delegation(aly, "p02", "gina", in_days(30), patient_permission=True)
    assert [r.patient.id for r in ws.patient_rows(gina)] == ["p02"]  # the signed-in delegate, at once
    record = ws.open_record(gina, "p02")
    assert not record.decisions["edit_clinical_notes"].allowed and not record.decisions["export"].allowed
    assert {e["category"] for e in record.history}.isdisjoint({"psychiatric", "sexual_health", "substance_use"})
    with pytest.raises(PermissionError):
        ws.open_record(gina, "p01")
    ws.revoke_delegation(aly, delegation.id)
    assert ws.patient_rows(gina) == []
    with pytest.raises(PermissionError):
        ws.open_record(gina, "p02")
    events = [(r.event_type, r.details.get("delegation_id")) for r in ws.audit.records() if r.kind == "event"]
    assert events == [("delegation_granted", delegation.id), ("delegation_revoked", delegation.id)]


def test_the_patient_delegates_their_own_record_only(ws: Workstation) -> None:
    patient = ws.sign_in("pt_p02", DEMO_PASSWORD)
    assert ws.grant_delegation(patient, "p02", "gina", in_days(7), patient_permission=True).granted_by == "pt_p02"
    with pytest.raises(DelegationRefused):
        ws.grant_delegation(patient, "p01", "gina", in_days(7), patient_permission=True)


def test_refusals_say_why(ws: Workstation) -> None:
    nia = ws.sign_in("nurse_nia", DEMO_PASSWORD)
    ben = ws.sign_in("dr_ben", DEMO_PASSWORD)
    aly = ws.sign_in("dr_aly", DEMO_PASSWORD)
    with pytest.raises(DelegationRefused, match="assigned physician"):
        ws.grant_delegation(nia, "p02", "gina", in_days(7), patient_permission=True)
    not_his = next(p.id for p in ws.store.patients(["h1"]) if "dr_ben" not in p.assigned_physicians)
    with pytest.raises(DelegationRefused, match="assigned physician"):
        ws.grant_delegation(ben, not_his, "gina", in_days(7), patient_permission=True)
    with pytest.raises(DelegationRefused, match="caregiver"):
        ws.grant_delegation(aly, "p02", "nurse_nia", in_days(7), patient_permission=True)
    with pytest.raises(DelegationRefused, match="future"):
        ws.grant_delegation(aly, "p02", "gina", in_days(-1), patient_permission=True)
    assert not [r for r in ws.audit.records() if r.kind == "event"]


def test_access_ends_at_expiry(ws: Workstation) -> None:
    aly = ws.sign_in("dr_aly", DEMO_PASSWORD)
    gina = ws.sign_in("gina", DEMO_PASSWORD)
    delegation = ws.grant_delegation(aly, "p02", "gina", in_days(1), patient_permission=True)
    assert ws.patient_rows(gina)
    # the recorded expiry passes (as it will in a day): the policies compare it with now()
    ws.store.db["delegations"].update(delegation.id, {"expires_at": in_days(-0.001).isoformat()})
    assert ws.patient_rows(gina) == []
    with pytest.raises(PermissionError):
        ws.open_record(gina, "p02")
