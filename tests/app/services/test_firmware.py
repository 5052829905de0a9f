"""Firmware updates on the real device policy, store and audit log: the state machine, dual
approval with separation of duties, and every refusal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from app.services.access import Refused
from app.services.firmware import STEPS
from app.services.workstation import Workstation
from authz import Effect
from tests.app.services.support import Clocks, acme_device_of_aly, reason, rule_id, store_dump, tomorrow, user


def step(ws: Workstation, user_id: str, action: str, device: str, value: str = "") -> str:
    """One step by that user; the state the update is then in."""
    return ws.firmware.step(user(ws, user_id), action, device, value).state


def test_request_dual_approval_and_separation_of_duties(ws: Workstation) -> None:
    device = acme_device_of_aly(ws)
    assert step(ws, "dr_aly", "request_firmware_update", device, "4.2.1") == "requested"
    before = store_dump(ws)
    with pytest.raises(Refused, match="already in progress"):
        step(ws, "eng_max", "request_firmware_update", device, "4.2.2")  # one update at a time
    with pytest.raises(Refused) as refused:
        step(ws, "dr_aly", "approve_firmware_update", device)  # the requester never approves
    assert refused.value.decision.reason == reason("device", "separation_of_duties")[0]
    assert refused.value.decision.rule == rule_id("device", "separation_of_duties")
    with pytest.raises(Refused, match="assigned physician"):
        step(ws, "dr_ben", "approve_firmware_update", device)  # not the assigned physician
    assert store_dump(ws) == before
    assert step(ws, "eng_max", "approve_firmware_update", device) == "approved_by_one"
    before = store_dump(ws)
    with pytest.raises(Refused, match="neither its requester nor an earlier approver"):
        step(ws, "eng_max", "approve_firmware_update", device)  # never twice
    with pytest.raises(Refused, match="needs the patient's physician"):
        step(ws, "eng_vic", "approve_firmware_update", device)  # each role approves once
    with pytest.raises(Refused, match="only once a physician and an engineer approved"):
        step(ws, "dr_aly", "schedule_firmware_update", device, tomorrow(ws))
    with pytest.raises(Refused, match="only once it was scheduled"):
        step(ws, "dr_aly", "apply_firmware_update", device)
    assert ws.firmware.current(device).state == "approved_by_one" and store_dump(ws) == before  # nothing changed


def test_engineer_request_physician_approval_then_rejection(ws: Workstation) -> None:
    device = acme_device_of_aly(ws)
    step(ws, "eng_max", "request_firmware_update", device, "4.2.1")
    update = ws.firmware.step(user(ws, "dr_aly"), "approve_firmware_update", device)
    assert update.state == "approved_by_one" and update.approvals == ({"by": "dr_aly", "role": "physician"},)
    with pytest.raises(Refused, match="neither its requester"):
        step(ws, "eng_max", "approve_firmware_update", device)  # the requester may not approve
    assert (
        step(ws, "dr_aly", "reject_firmware_update", device, "Patient prefers to wait until the next clinic visit.")
        == "rejected"
    )
    with pytest.raises(Refused, match="in progress"):
        step(ws, "dr_aly", "reject_firmware_update", device, "again")
    rejected = next(r for r in ws.audit.records() if r.event_type == "firmware_rejected")
    assert rejected.details["comment"] == "Patient prefers to wait until the next clinic visit."
    assert step(ws, "eng_max", "request_firmware_update", device, "4.2.2") == "requested"  # a new one may start


def test_the_full_lifecycle_is_persisted_audited_and_shown_on_the_device(
    make_ws: Callable[..., Workstation], clocks: Clocks
) -> None:
    """The seed's 11:00: vendor support initiates, Dr. Aly and an Acme engineer approve."""
    ws = make_ws()
    device = acme_device_of_aly(ws)
    update = ws.firmware.step(user(ws, "eng_vic"), "request_firmware_update", device, " 4.3.0 ")
    assert (update.target_version, update.requested_by, update.requested_at) == (
        "4.3.0",
        "eng_vic",
        clocks.wall.isoformat(),
    )
    assert step(ws, "dr_aly", "approve_firmware_update", device) == "approved_by_one"
    update = ws.firmware.step(user(ws, "eng_max"), "approve_firmware_update", device)
    assert update.state == "approved" and {a["by"] for a in update.approvals} == {"dr_aly", "eng_max"}
    assert [a["role"] for a in update.approvals] == ["physician", "manufacturer_engineer"]
    assert step(ws, "eng_max", "schedule_firmware_update", device, tomorrow(ws)) == "scheduled"
    assert step(ws, "eng_max", "apply_firmware_update", device) == "applied"
    assert ws.store.device(device)["firmware_version"] == "4.3.0"
    assert ws.firmware.decisions(user(ws, "dr_aly"), device)["request_firmware_update"].allowed  # a new one may start
    events = [r for r in ws.audit.records() if r.kind == "event"]
    assert [r.event_type for r in events] == [
        "firmware_requested",
        "firmware_approved",
        "firmware_approved",
        "firmware_scheduled",
        "firmware_applied",
    ]
    assert [r.details["state"] for r in events] == ["requested", "approved_by_one", "approved", "scheduled", "applied"]
    assert all(
        r.resource_kind == "device" and r.resource_id == device and r.effect == Effect.ALLOW.value for r in events
    )
    scheduled = events[3].details["scheduled_for"]
    assert scheduled > clocks.wall.isoformat()
    reopened = make_ws(data_dir=ws.data_dir)  # persisted
    assert reopened.firmware.current(device).state == "applied"
    assert reopened.firmware.current(device).approvals == update.approvals


def test_the_device_panel_offers_each_step_as_the_policy_decides(ws: Workstation) -> None:
    aly, max_ = user(ws, "dr_aly"), user(ws, "eng_max")
    # the seed's pending update on d-p02, requested by eng_max
    decisions = ws.firmware.decisions(aly, "d-p02")
    assert set(decisions) == set(STEPS)
    assert {a for a, d in decisions.items() if d.allowed} == {"approve_firmware_update", "reject_firmware_update"}
    assert {a for a, d in ws.firmware.decisions(max_, "d-p02").items() if d.allowed} == {"reject_firmware_update"}
    assert all(d.reason == "There is no such device." for d in ws.firmware.decisions(aly, "d-nope").values())


def test_who_may_not_touch_firmware_is_told_why(ws: Workstation) -> None:
    device = acme_device_of_aly(ws)
    expected = reason("device", "why_not_firmware")[0]
    for user_id in ("nurse_nia", "co_cora", "pt_p02", "dr_ben"):
        decisions = ws.firmware.decisions(user(ws, user_id), device)
        assert not decisions["request_firmware_update"].allowed
        assert decisions["request_firmware_update"].reason == expected


def test_form_refusals(ws: Workstation) -> None:
    aly = user(ws, "dr_aly")
    device = acme_device_of_aly(ws)
    before = store_dump(ws)
    with pytest.raises(Refused, match="firmware version"):
        ws.firmware.step(aly, "request_firmware_update", device, "  ")
    with pytest.raises(Refused, match="no firmware update"):
        ws.firmware.step(aly, "approve_firmware_update", device)
    with pytest.raises(Refused, match="Unknown firmware step"):
        ws.firmware.step(aly, "downgrade_firmware", device)
    with pytest.raises(Refused, match="no such device"):
        ws.firmware.step(aly, "request_firmware_update", "d-nope", "4.3.0")
    assert store_dump(ws) == before and not [r for r in ws.audit.records() if r.kind == "event"]


def test_each_sees_the_devices_the_policy_lets_them(ws: Workstation) -> None:
    max_rows = ws.firmware.devices(user(ws, "eng_max"))
    acme = {d["id"] for d in ws.store.devices() if d["manufacturer_id"] == "m_acme"}
    assert {r.device_id for r in max_rows} == acme  # across hospitals, its own manufacturer's
    assert next(r for r in max_rows if r.device_id == "d-p02").update.id == "fw-1"
    aly = {r.device_id for r in ws.firmware.devices(user(ws, "dr_aly"))}
    assert aly == {f"d-{p.id}" for p in ws.store.patients() if "dr_aly" in p.care_team}
    assert ws.firmware.devices(user(ws, "co_cora")) == []


def test_a_request_names_a_released_version_of_the_model_and_a_schedule_a_date_within_a_year(
    ws: Workstation, clocks: Clocks
) -> None:
    device = acme_device_of_aly(ws)
    installed, model = ws.store.device(device)["firmware_version"], ws.store.device(device)["model"]
    before = store_dump(ws)
    for typed, says in [
        ("banana", "not a released version"),
        ("4.9.9", "not a released version"),
        (installed, "already runs"),
        ("", "Enter the firmware version"),
    ]:
        with pytest.raises(Refused, match=says):
            step(ws, "dr_aly", "request_firmware_update", device, typed)
    assert store_dump(ws) == before and not [r for r in ws.audit.records() if r.kind == "event"]
    assert installed not in ws.firmware.versions(device) and "4.3.0" in ws.firmware.versions(device)
    assert model in ws.firmware.check_version(device, "banana")
    step(ws, "eng_vic", "request_firmware_update", device, "4.3.0")
    step(ws, "dr_aly", "approve_firmware_update", device)
    step(ws, "eng_max", "approve_firmware_update", device)
    today = clocks.now().date()
    for typed, says in [
        ("", "Choose the date"),
        ("next week", "Choose the date"),
        ((today - timedelta(days=1)).isoformat(), "in the past"),
        ((today + timedelta(days=400)).isoformat(), "more than a year"),
    ]:
        with pytest.raises(Refused, match=says):
            step(ws, "eng_max", "schedule_firmware_update", device, typed)
    assert step(ws, "eng_max", "schedule_firmware_update", device, today.isoformat()) == "scheduled"
    scheduled = next(r for r in ws.audit.records() if r.event_type == "firmware_scheduled")
    assert scheduled.details["scheduled_for"] == today.isoformat()
