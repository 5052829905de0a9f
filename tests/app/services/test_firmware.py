"""Firmware updates on the real device policy, store and audit log: the state machine, dual
approval with separation of duties, and every refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.services.firmware import FirmwareRefused
from app.services.users import DEMO_PASSWORD
from app.services.workstation import Workstation


@pytest.fixture
def ws(tmp_path: Path) -> Workstation:
    return Workstation(tmp_path / "data")


def acme_device_of_aly(ws: Workstation) -> str:
    """A device of Dr. Aly's patient, made by Acme (eng_max's manufacturer), with no update yet."""
    busy = {r["device_id"] for r in ws.store.db["firmware_updates"].rows}
    for p in ws.store.patients(["h1"]):
        device = ws.store.device_for(p.id)
        if "dr_aly" in p.assigned_physicians and device["manufacturer_id"] == "m_acme" and device["id"] not in busy:
            return device["id"]
    raise AssertionError("the demo data has no such device")


def test_request_dual_approval_schedule_apply(ws: Workstation) -> None:
    aly, max_, ben = (ws.sign_in(u, DEMO_PASSWORD) for u in ("dr_aly", "eng_max", "dr_ben"))
    device = acme_device_of_aly(ws)
    update = ws.firmware.request(aly, device, "4.2.1")
    assert update.state == "requested"
    with pytest.raises(FirmwareRefused, match="request"):
        ws.firmware.request(max_, device, "4.2.2")  # one update at a time
    with pytest.raises(FirmwareRefused, match="own request"):
        ws.firmware.approve(aly, update.id)  # the requester never approves
    with pytest.raises(FirmwareRefused):
        ws.firmware.approve(ben, update.id)  # not the assigned physician
    update = ws.firmware.approve(max_, update.id)
    assert update.state == "approved_by_one"
    with pytest.raises(FirmwareRefused):
        ws.firmware.approve(max_, update.id)  # never twice
    with pytest.raises(FirmwareRefused, match="both approvals"):
        ws.firmware.schedule(aly, update.id, datetime.now(UTC) + timedelta(days=1))
    assert ws.firmware.current(device).state == "approved_by_one"  # refusals change nothing


def test_engineer_request_physician_approval_completes_it(ws: Workstation) -> None:
    aly, max_ = ws.sign_in("dr_aly", DEMO_PASSWORD), ws.sign_in("eng_max", DEMO_PASSWORD)
    device = acme_device_of_aly(ws)
    update = ws.firmware.request(max_, device, "4.2.1")
    update = ws.firmware.approve(aly, update.id)
    assert update.state == "approved_by_one" and [a["role"] for a in update.approvals] == ["physician"]
    # the engineer requested, so a second engineer would be needed; the requester may not approve
    with pytest.raises(FirmwareRefused, match="own request"):
        ws.firmware.approve(max_, update.id)
    update = ws.firmware.reject(aly, update.id, "Patient prefers to wait until the next clinic visit.")
    assert update.state == "rejected"
    with pytest.raises(FirmwareRefused, match="in progress"):
        ws.firmware.reject(aly, update.id, "again")


def test_the_full_lifecycle_is_persisted_audited_and_shown_on_the_device(ws: Workstation) -> None:
    """The seed's 11:00: vendor support initiates, Dr. Aly and an Acme engineer approve."""
    aly, max_, vic = (ws.sign_in(u, DEMO_PASSWORD) for u in ("dr_aly", "eng_max", "eng_vic"))
    device = acme_device_of_aly(ws)
    update = ws.firmware.request(vic, device, "4.3.0")
    assert ws.firmware.approve(aly, update.id).state == "approved_by_one"
    update = ws.firmware.approve(max_, update.id)
    assert update.state == "approved" and {a["by"] for a in update.approvals} == {"dr_aly", "eng_max"}
    update = ws.firmware.schedule(max_, update.id, datetime.now(UTC) + timedelta(days=2))
    assert update.state == "scheduled"
    update = ws.firmware.mark_applied(max_, update.id)
    assert update.state == "applied" and ws.store.device(device)["firmware_version"] == "4.3.0"
    assert ws.firmware_decisions(aly, device)["request_firmware_update"].allowed  # a new one may start
    events = [r.event_type for r in ws.audit.records() if r.kind == "event"]
    assert events == ["firmware_requested", "firmware_approved", "firmware_approved", "firmware_scheduled",
                      "firmware_applied"]
    reopened = Workstation(ws.data_dir)  # persisted
    assert reopened.firmware.current(device).state == "applied"


def test_who_may_not_touch_firmware_is_told_why(ws: Workstation) -> None:
    device = acme_device_of_aly(ws)
    for user_id in ("nurse_nia", "co_cora", "pt_p02"):
        decisions = ws.firmware_decisions(ws.sign_in(user_id, DEMO_PASSWORD), device)
        assert not decisions["request_firmware_update"].allowed
        assert "assigned physician" in decisions["request_firmware_update"].reason
