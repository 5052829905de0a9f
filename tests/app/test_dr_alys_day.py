"""Dr. Aly's day (../shared/seeds), step by step, through the real app as each person uses it:
clicks and keys on the real screens, the bundled policies, a real SQLite store and the audit log,
on a clock the test moves (the timers that count down and lock are the real ones)."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLabel

from app.services.users import DEMO_PASSWORD
from app.views.main_window import MainWindow
from tests.app.helpers import (
    Clock,
    choose,
    click,
    click_cell,
    click_confirmed,
    open_dialog,
    save_report_pdf,
    search_and_open,
    sign_in,
)

ER_WHY = "Chest pain on admission, pacemaker patient; need device data and history now."


def keep_working(qtbot, w: MainWindow, clock: Clock, minutes: int) -> None:  # noqa: ANN001
    """Time passes with the clinician at the keyboard (the idle lock does not fire)."""
    centre = w.record.rect().center()
    for minute in range(minutes):
        clock.advance(minutes=1)
        qtbot.mouseMove(w.record, QPoint(centre.x() + minute % 2, centre.y()))  # a real move each time
        qtbot.wait(25)


def switch_to(qtbot, w: MainWindow, user_id: str) -> None:  # noqa: ANN001
    if w.vms.session.user is not None:
        click(qtbot, w.switch_user)
    sign_in(qtbot, w, user_id)
    assert w.vms.session.user is not None and w.vms.session.user.id == user_id


def select_row(qtbot, table, column: int, text: str) -> int:  # noqa: ANN001
    row = next(i for i in range(table.rowCount()) if text in table.item(i, column).text())
    click_cell(qtbot, table, row)
    return row


def test_dr_alys_day(qtbot, window: MainWindow, clock: Clock, tmp_path: Path) -> None:  # noqa: PLR0915 - the story
    ws = window.vms.session.workstation
    store = ws.store
    # The day starts as in the story: no delegate for room 902 yet, no firmware update pending.
    for standing in ws.delegations.for_patient("p02"):
        store.revoke_delegation(standing.id)
    store.update_firmware_update("fw-1", "rejected", [])
    p01, p02, p03 = store.patient("p01"), store.patient("p02"), store.patient("p03")

    # 9:00, room 901: Dr. Aly reviews the new pacemaker and writes a full note.
    switch_to(qtbot, window, "dr_aly")
    assert "p01" in [r.patient.id for r in window.patients.rows]
    search_and_open(qtbot, window, p01.mrn)
    record = window.vms.record.record
    shown = [label.text() for label in window.record.body().findChildren(QLabel)]
    assert any(record.view.device["model"] in t and "firmware" in t for t in shown)  # the new pacemaker
    assert len(record.view.series) == 9 and window.record.note_type.currentData() == "full"
    qtbot.keyClicks(window.record.editor, "Post-implant check: sensing and pacing normal.")
    qtbot.keyClick(window.record.editor, Qt.Key.Key_N, Qt.KeyboardModifier.AltModifier)  # Alt+N saves
    qtbot.waitUntil(lambda: "Post-implant" in window.vms.record.record.view.notes[0]["text"])  # (an animated click)
    assert window.vms.record.record.view.notes[0]["note_type"] == "full"
    assert "Post-implant check" in window.vms.record.record.view.notes[0]["text"]

    # 9:30, the ER: a patient not under her care. Refused, with break-glass offered; she takes it.
    keep_working(qtbot, window, clock, 30)
    assert "dr_aly" not in p03.care_team and p03.emergency
    search_and_open(qtbot, window, p03.mrn)
    assert window.vms.record.record is None and "break-glass" in window.record.denial.text()
    dialog = open_dialog(qtbot, window.record.emergency_button, window.record, "dialog")
    assert p03.name in dialog.windowTitle() and p03.mrn in dialog.windowTitle()
    click(qtbot, dialog.confirm)  # she checks the wristband: name, date of birth, MRN
    choose(dialog.reason, "ETREAT")
    qtbot.keyClicks(dialog.justification, ER_WHY)
    qtbot.keyClicks(dialog.password, DEMO_PASSWORD)
    click(qtbot, dialog.grant)
    assert window.vms.record.record.patient_id == "p03" and window.emergency_banner.isVisible()
    banner = window.emergency_banner.text.text()
    assert "60:00 left" in banner and f"{p03.name} ({p03.mrn})" in banner and "p03" not in banner
    assert window.vms.record.record.view.history  # the emergency team sees the history
    assert window.record.note_type.currentData() == "emergency"
    qtbot.keyClicks(window.record.editor, "ER: device interrogated, intermittent loss of capture; paged EP.")
    click(qtbot, window.record.save)
    assert window.vms.record.record.view.notes[0]["note_type"] == "emergency"
    # the time limit, on screen: counting down, a warning five minutes before the end, then closed
    keep_working(qtbot, window, clock, 20)
    qtbot.waitUntil(lambda: "40:00 left" in window.emergency_banner.text.text())
    keep_working(qtbot, window, clock, 36)
    qtbot.waitUntil(lambda: "ENDING SOON" in window.emergency_banner.text.text())
    keep_working(qtbot, window, clock, 4)
    qtbot.waitUntil(lambda: not window.emergency_banner.isVisible())
    assert window.vms.record.record is None
    search_and_open(qtbot, window, p03.mrn)  # and the record is closed to her again
    assert window.vms.record.record is None and "care team" in window.record.denial.text()

    # 11:00, room 902: vendor support requests a firmware update from the engineering screen...
    clock.advance(minutes=30)
    switch_to(qtbot, window, "eng_vic")
    devices = window.engineering
    row = select_row(qtbot, devices.table, 0, "d-p02")
    qtbot.keyClicks(devices.version, "4.3.0")
    click(qtbot, devices.buttons["request_firmware_update"])
    assert "requested → 4.3.0" in devices.table.item(row, 3).text()
    assert not devices.buttons["approve_firmware_update"].isEnabled()  # never one's own request
    # ...an Acme engineer who did not request it approves on his screen...
    switch_to(qtbot, window, "eng_max")
    row = select_row(qtbot, window.engineering.table, 0, "d-p02")
    click_confirmed(qtbot, window.engineering.buttons["approve_firmware_update"], window.engineering)
    assert "approved by one" in window.engineering.table.item(row, 3).text()
    # ...and Dr. Aly, the physician, on the record's device panel.
    switch_to(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, p02.mrn)
    click_confirmed(qtbot, window.record.firmware_buttons["approve_firmware_update"], window.record)
    state = window.record.firmware_state.text()
    assert "<b>approved</b>" in state and "Max Holt (Acme Cardio) (eng_max), manufacturer engineer" in state
    assert "Dr. Aly Rahman (dr_aly), physician" in state

    # The patient signs the consent to export herself, on her own account.
    switch_to(qtbot, window, "pt_p02")
    assert window.workspaces.currentWidget() is window.personal  # her readings in plain words
    assert window.vms.personal.page.patient_id == "p02"
    consent = open_dialog(qtbot, window.personal.consent, window.personal, "consent_dialog")
    assert consent.patients_word.isHidden()  # it is hers to give
    qtbot.keyClicks(consent.given_by, "Yara Tamm (signed on the tablet)")
    click(qtbot, consent.save)
    assert consent.error.text() == "" and not consent.isVisible()

    # The manufacturer's de-identified export, through its own dialog, with no reason given.
    switch_to(qtbot, window, "eng_max")
    select_row(qtbot, window.engineering.table, 0, "d-p02")
    export = open_dialog(qtbot, window.engineering.export, window.engineering, "export_dialog")
    assert [export.kind.itemData(i) for i in range(export.kind.count())] == ["deidentified"]
    export.directory.setText(str(tmp_path / "exports"))
    click(qtbot, export.start)
    qtbot.waitUntil(lambda: "Exported to" in export.result.text())
    assert "flagged for compliance review" in export.result.text()
    exported = next((tmp_path / "exports").iterdir())
    text = exported.read_text()
    device = store.device_for("p02")
    transmission_times = {t["time"] for t in store.transmissions("p02")}
    identifiers = [
        p02.name,
        *p02.name.split(),
        p02.mrn,
        p02.birth_date,
        f"room {p02.room}",
        device["serial"],
        "St Anne",
        p02.id,
        *p02.care_team,
        *[n["text"] for n in store.notes_for("p02")],
        *[h["summary"] for h in store.history_for("p02")],
        *sorted(transmission_times)[:3],
        device["implanted_on"],
    ]
    assert not [i for i in identifiers if i and i in text], "Safe Harbor identifiers in the export"
    assert json.loads(text)["resourceType"] == "Bundle" and p02.birth_date[:4] in text  # the year may stay

    # The granddaughter becomes a delegate: Dr. Aly, with the patient's permission.
    switch_to(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, p02.mrn)
    delegation = open_dialog(qtbot, window.record.delegate, window.record, "delegation_dialog")
    choose(delegation.caregiver, "gina")
    delegation.days.setValue(1)
    qtbot.mouseClick(delegation.permission, Qt.MouseButton.LeftButton)
    click(qtbot, delegation.grant)
    assert delegation.error.text() == ""
    delegation.close()
    # She signs in and sees her grandmother, and only what a delegate may see.
    switch_to(qtbot, window, "gina")
    assert window.workspaces.currentWidget() is window.personal and window.vms.personal.choices == [("p02", p02.name)]
    categories = {h["category"] for h in window.vms.record.record.view.history}
    assert categories and not categories & {"psychiatric", "sexual_health", "substance_use", "sealed"}
    assert f"Readings of {p02.name}" in window.personal.heading.text()
    assert window.personal.readings.rowCount() > 0 and not window.personal.delegate.isVisibleTo(window.personal)

    # 13:00, compliance: the break-glass accepted with a reminder; the export flagged for its missing reason.
    clock.advance(minutes=60)
    switch_to(qtbot, window, "co_cora")
    queue = window.compliance
    kinds = [queue.table.item(i, 3).text() for i in range(queue.table.rowCount())]
    assert sorted(kinds) == ["Data exported", "Emergency access opened"]
    assert all("needs review" in queue.table.item(i, 0).text() for i in range(queue.table.rowCount()))
    select_row(qtbot, queue.table, 3, "Emergency access opened")
    assert ER_WHY in queue.detail.text()
    qtbot.keyClicks(queue.comment, "Not your patient: request the ER physician role for ER shifts.")
    click(qtbot, queue.step_buttons["remind"])
    qtbot.keyClicks(queue.comment, "Documented emergency; accepted.")
    click(qtbot, queue.step_buttons["accept_review"])
    row = select_row(qtbot, queue.table, 3, "Data exported")
    assert "needs review" in queue.table.item(row, 0).text()
    qtbot.keyClicks(queue.comment, "No reason was recorded for this export: please document it.")
    click(qtbot, queue.step_buttons["remind"])

    # Dr. Aly sees the reminder and adds the export's reason as a late annotation.
    switch_to(qtbot, window, "dr_aly")
    assert "request the ER physician role" in window.statusBar().currentMessage()
    question = window.compliance_question
    assert question.isVisible() and "data exported for patient p02" in question.text.text()
    qtbot.keyClicks(question.answer, "Vendor needed the data to address timely firmware updates for the pacemaker.")
    click(qtbot, question.send)
    assert not question.isVisible()

    # Compliance marks both resolved and generates the compliance report.
    switch_to(qtbot, window, "co_cora")
    queue = window.compliance
    for what in ("Emergency access opened", "Data exported"):
        select_row(qtbot, queue.table, 3, what)
        qtbot.keyClicks(queue.comment, "Resolved after review.")
        click(qtbot, queue.step_buttons["resolve_review"])
    assert [queue.table.item(i, 0).text() for i in range(queue.table.rowCount())] == ["resolved", "resolved"]
    row = select_row(qtbot, queue.table, 3, "Data exported")
    assert "Vendor needed the data" in queue.detail.text()
    queue.setCurrentIndex(1)
    choose(queue.report_type, "export")
    click(qtbot, queue.generate)
    qtbot.waitUntil(lambda: queue.report is not None)
    assert dict(queue.report.rows) == {"De-identified export": 1}
    assert Path(save_report_pdf(qtbot, queue).removeprefix("Saved ")).read_bytes()[:5] == b"%PDF-"

    # The next day the delegation has ended: the granddaughter sees nothing.
    click(qtbot, window.switch_user)
    clock.advance(days=1, minutes=1)
    sign_in(qtbot, window, "gina")
    assert window.vms.personal.choices == [] and window.vms.record.record is None
    assert "permission for you has ended" in window.personal.heading.text()

    # The audit chain holds the whole day, unbroken, every step decided by a named policy action.
    assert ws.chain.verify().ok
    records = list(ws.chain.records())
    # each hospital-wide search (an MRN not in the user's own list) is one record of what it listed
    searches = [r for r in records if r.event_type == "listed"]
    assert searches and all(r.action == "search_identity" and r.details["filter"] for r in searches)
    steps = [(r.event_type, r.action) for r in records if r.kind in ("event", "annotation") and r not in searches]
    assert steps == [
        ("note_saved", "edit_clinical_notes"),
        ("break_glass_started", "break_glass"),
        ("note_saved", "edit_clinical_notes"),
        ("break_glass_ended", ""),
        ("firmware_requested", "request_firmware_update"),
        ("firmware_approved", "approve_firmware_update"),
        ("firmware_approved", "approve_firmware_update"),
        ("consent_recorded", "record_consent"),
        ("export", "export"),
        ("delegation_granted", "delegate_access"),
        ("remind", "remind"),
        ("accept_review", "accept_review"),
        ("remind", "remind"),
        ("add_late_justification", "add_late_justification"),
        ("resolve_review", "resolve_review"),
        ("resolve_review", "resolve_review"),
    ]
    views = [
        r
        for r in ws.chain.records()
        if r.kind == "decision" and r.action == "view" and r.principal_id == "dr_aly" and r.patient_id == "p03"
    ]
    assert [r.effect for r in views] == ["EFFECT_DENY", "EFFECT_ALLOW", "EFFECT_ALLOW", "EFFECT_DENY"]
