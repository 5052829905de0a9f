"""Dr. Aly's day (../shared/seeds), in order, through the real app: the window and its view-model,
the service layer, the bundled policies, a real SQLite store and the audit log. Steps a ward
screen does not offer here (the vendor's and the second engineer's side, on their own screens)
go through the same service layer the screens use."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from app.services.users import DEMO_PASSWORD
from app.views.main_window import MainWindow
from tests.app.helpers import sign_in

ER_WHY = "Chest pain on admission, pacemaker patient; need device data and history now."


def test_dr_alys_day(qtbot, window: MainWindow, tmp_path: Path) -> None:
    ws, vm = window.vm.workstation, window.vm
    for standing in ws.delegations.for_patient("p02"):  # the day starts as in the story: no delegate yet
        ws.store.revoke_delegation(standing.id)

    # 9:00, room 901: review the new pacemaker and write a note.
    sign_in(qtbot, window, "dr_aly")
    assert "p01" in [r.patient.id for r in window.patients.rows]
    vm.open_patient("p01")
    assert vm.record.device["model"] and len(vm.record.series) == 9
    qtbot.keyClicks(window.record.editor, "Post-implant check: sensing and pacing normal.")
    qtbot.mouseClick(window.record.save, Qt.MouseButton.LeftButton)
    assert vm.record.notes[0]["note_type"] == "full"

    # 9:30, the ER: a patient not under her care; break-glass, an emergency note, then end it.
    er_patient = ws.store.patient("p03")
    assert "dr_aly" not in er_patient.care_team and er_patient.emergency
    window.patients.search.clear()
    qtbot.keyClicks(window.patients.search, er_patient.mrn)
    qtbot.keyClick(window.patients.search, Qt.Key.Key_Return)
    assert vm.record is None and window.record.emergency_button.isEnabled()
    dialog = window.record.open_break_glass("p03")
    dialog.justification.setPlainText(ER_WHY)
    qtbot.keyClicks(dialog.password, DEMO_PASSWORD)
    qtbot.mouseClick(dialog.grant, Qt.MouseButton.LeftButton)
    assert vm.record.patient.id == "p03" and window.emergency_banner.isVisible()
    assert vm.record.decisions["view_history"].allowed and vm.record.history
    qtbot.keyClicks(window.record.editor, "ER: device interrogated, intermittent loss of capture; paged EP.")
    qtbot.mouseClick(window.record.save, Qt.MouseButton.LeftButton)
    assert vm.record.notes[0]["note_type"] == "emergency"
    qtbot.mouseClick(window.emergency_banner.button, Qt.MouseButton.LeftButton)
    assert vm.record is None and not window.emergency_banner.isVisible()

    # 11:00, room 902: vendor support requests a firmware update; Dr. Aly and an Acme engineer approve.
    vic, max_ = ws.sign_in("eng_vic", DEMO_PASSWORD), ws.sign_in("eng_max", DEMO_PASSWORD)
    device = ws.store.device_for("p02")["id"]
    pending = ws.firmware.current(device)
    if pending is not None and pending.state == "requested":  # the demo's open request is withdrawn first
        ws.firmware.reject(max_, pending.id, "Superseded by the vendor's new request.")
    update = ws.firmware.request(vic, device, "4.3.0")
    vm.open_patient("p02")
    qtbot.mouseClick(window.record.firmware_buttons["approve_firmware_update"], Qt.MouseButton.LeftButton)
    assert "approved by one" in window.record.firmware_state.text()
    assert ws.firmware.approve(max_, update.id).state == "approved"

    # Consent on the tablet, then the manufacturer's de-identified export (no reason: flagged).
    consent = window.record.open_consent()
    qtbot.keyClicks(consent.given_by, "Patient of room 902 (signed on the tablet)")
    qtbot.mouseClick(consent.save, Qt.MouseButton.LeftButton)
    export = ws.export(max_, "p02", deidentified=True, reason="", fmt="fhir", directory=tmp_path / "exports")
    assert export.reason_missing and ws.store.patient("p02").mrn not in export.path.read_text()

    # The granddaughter becomes a delegate, with the patient's permission.
    vm.open_patient("p02")
    delegation = window.record.open_delegation()
    delegation.caregiver.setCurrentIndex(delegation.caregiver.findData("gina"))
    delegation.permission.setChecked(True)
    qtbot.mouseClick(delegation.grant, Qt.MouseButton.LeftButton)
    assert delegation.error.text() == ""
    gina = ws.sign_in("gina", DEMO_PASSWORD)
    assert [r.patient.id for r in ws.patient_rows(gina)] == ["p02"]
    vm.sign_out()

    # 13:00, compliance: the break-glass is questioned, justified late by Dr. Aly, and resolved.
    sign_in(qtbot, window, "co_cora")
    queue = window.compliance
    kinds = [queue.table.item(i, 3).text() for i in range(queue.table.rowCount())]
    assert sorted(kinds) == ["break glass started", "export"]
    row = kinds.index("break glass started")
    queue.table.setCurrentCell(row, 0)
    qtbot.keyClicks(queue.comment, "Not your patient: request the ER physician role next time.")
    qtbot.mouseClick(queue.step_buttons["reminder"], Qt.MouseButton.LeftButton)
    event_id = queue.items[row].event.record_id
    vm.sign_out()
    sign_in(qtbot, window, "dr_aly")
    question = window.compliance_question
    assert question.isVisible() and "request the ER physician role" in question.text.text()
    qtbot.keyClicks(question.answer, "ER physician unavailable; the patient was deteriorating.")
    qtbot.mouseClick(question.send, Qt.MouseButton.LeftButton)
    assert not question.isVisible() and vm.open_questions() == []
    vm.sign_out()
    sign_in(qtbot, window, "co_cora")
    row = [i.event.record_id for i in window.compliance.items].index(event_id)
    window.compliance.table.setCurrentCell(row, 0)
    qtbot.keyClicks(window.compliance.comment, "Late justification accepted.")
    qtbot.mouseClick(window.compliance.step_buttons["review_resolved"], Qt.MouseButton.LeftButton)
    assert window.compliance.items[row].state == "resolved"

    # The audit chain holds the whole day, unbroken.
    assert ws.audit.verify().ok
    events = [r.event_type for r in ws.audit.records() if r.kind in ("event", "annotation")]
    assert events == [
        "note_saved", "break_glass_started", "note_saved", "break_glass_ended",
        "firmware_rejected", "firmware_requested", "firmware_approved", "firmware_approved",
        "consent_recorded", "export", "delegation_granted", "reminder", "late_justification", "review_resolved"]
    views = [r for r in ws.audit.records() if r.kind == "decision" and r.action == "view"
             and r.principal_id == "dr_aly" and r.patient_id == "p03"]
    assert [r.effect for r in views][:2] == ["EFFECT_DENY", "EFFECT_ALLOW"]
