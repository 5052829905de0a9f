"""The app as people use it, offscreen with pytest-qt, driven only by clicks and keys on the real
widgets: sign-in, each role's view of the same patient, notes, refusals in the policies' words,
break-glass with its countdown, delegation, consent and export, firmware, compliance and
reports, the idle lock (its real timer, on the test's clock), sign-out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QLabel, QPushButton

from app.services.credentials import SecretStore
from app.services.users import DEMO_PASSWORD
from app.services.workstation import BUNDLED_POLICIES, Workstation
from app.viewmodels.app_vm import ViewModels
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

ROOT = Path(__file__).resolve().parents[2]


def reason_in_policy(policy: str, rule: str, needle: str) -> str:
    """A sentence the policies say (so a test follows the policy's words, not a copy of them)."""
    text = (BUNDLED_POLICIES / "resources" / policy).read_text()
    start = text.index(f"- name: {rule}")
    found = text.index(needle, start)
    return text[found : text.index('"', found)]


def events(w: MainWindow) -> list[str]:
    """What was done, as the audit log records it (a search's one record of what it listed aside)."""
    records = w.vms.session.workstation.chain.records()
    return [r.event_type for r in records if r.kind in ("event", "annotation") and r.event_type != "listed"]


def open_row(qtbot, w: MainWindow, row: int = 0) -> None:  # noqa: ANN001
    click_cell(qtbot, w.patients.table, row, 1, double=True)


def keep_working(qtbot, w: MainWindow, clock: Clock, minutes: int) -> None:  # noqa: ANN001
    """Time passes with the clinician at the keyboard (the idle lock does not fire)."""
    centre = w.record.rect().center()
    for minute in range(minutes):
        clock.advance(minutes=1)
        qtbot.mouseMove(w.record, QPoint(centre.x() + minute % 2, centre.y()))  # a real move each time
        qtbot.wait(30)


def test_wrong_password_is_refused(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_aly", "nope")
    assert window.stack.currentIndex() == 0
    assert "Sign-in failed" in window.sign_in.error.text()


def test_physician_sees_her_patients_and_writes_a_full_note(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_aly")
    assert window.stack.currentIndex() == 1 and window.workspaces.currentWidget() is not window.compliance
    rows = window.patients.rows
    assert rows and all("dr_aly" in r.patient.care_team for r in rows)
    open_row(qtbot, window)
    assert window.vms.record.record.patient_id == rows[0].patient.id
    assert window.record.note_type.currentData() == "full" and window.record.note_type.count() == 2
    qtbot.keyClicks(window.record.editor, "Lead impedance stable; review in 3 months.")
    click(qtbot, window.record.save)
    notes = window.vms.record.record.view.notes
    assert notes[0]["text"] == "Lead impedance stable; review in 3 months." and notes[0]["note_type"] == "full"
    audit = list(window.vms.session.workstation.chain.records())
    assert events(window) == ["note_saved"]
    assert any(r.kind == "decision" and r.action == "view" and r.effect == "EFFECT_ALLOW" for r in audit)


def test_nurse_sees_only_assigned_patients_and_writes_basic_notes(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "nurse_nia")
    rows = window.patients.rows
    assert rows and all("nurse_nia" in r.patient.care_team and not r.patient.sealed for r in rows)
    open_row(qtbot, window)
    assert window.record.save.isEnabled() and window.record.note_type.currentData() == "basic"
    assert window.record.note_type.isHidden()  # one note type: nothing to choose


def test_er_physician_sees_no_patients_and_is_told_why_in_the_policies_words(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "er_eli")
    assert window.patients.rows == []
    expected = reason_in_policy("workstation.yaml", "clinical_workspace", "No patients to show yet")
    assert window.patients.empty.text() == expected and "break-glass" in expected


def test_refused_record_is_explained_in_the_policies_words_and_not_shown(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_ben")
    other = next(
        p
        for p in window.vms.session.workstation.store.patients(["h1"])
        if "dr_ben" not in p.care_team and not p.emergency
    )
    search_and_open(qtbot, window, other.mrn)
    assert window.vms.record.record is None
    reason = reason_in_policy("patient_record.yaml", "why_not_view", "You are not on this patient's care team. In")
    assert reason in window.record.denial.text() and other.mrn not in window.record.denial.text()
    assert reason in window.statusBar().currentMessage()
    # break-glass is the policies' remedy, but this patient is not an emergency: offered, closed, and why
    assert not window.record.emergency_button.isEnabled()
    assert "emergency treatment" in window.record.emergency_reason.text()


def test_compliance_officer_gets_the_review_workspace(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "co_cora")
    assert window.workspaces.currentWidget() is window.compliance and window.patients.rows == []


def test_patient_and_delegate_get_the_personal_view_of_that_patient_only(qtbot, window: MainWindow) -> None:
    """Their own readings and alerts in plain words; no device workflow, no clinicians' notes."""
    ws = window.vms.session.workstation
    aly = ws.session.sign_in("dr_aly", DEMO_PASSWORD)
    ws.patients.save_note(aly, "p02", "full", "Discussed the lead with the family.")
    p02 = ws.store.patient("p02")
    for user_id in ("pt_p02", "gina"):
        if window.vms.session.user is not None:
            click(qtbot, window.switch_user)
        sign_in(qtbot, window, user_id)
        view = window.personal
        assert window.workspaces.currentWidget() is view and window.vms.personal.choices == [("p02", p02.name)]
        assert view.patient.isHidden()  # one patient: nothing to choose
        assert f"Readings of {p02.name}" in view.heading.text()
        names = [view.readings.item(i, 0).text() for i in range(view.readings.rowCount())]
        assert "Battery time left" in names and "The wire (lead) to your heart" in names
        wire = names.index("The wire (lead) to your heart")
        assert "⚠" in view.readings.item(wire, 1).text() and "your clinic is told" in view.readings.item(wire, 2).text()
        alerts = view.alerts.text()
        assert "The wire (lead) to your heart needs a look since" in alerts and "will contact you" in alerts
        assert "RV lead impedance" not in alerts and "MDC_IDC" not in alerts  # plain words only
        shown = " ".join(w.text() for w in view.findChildren(QLabel) if w.isVisibleTo(view))
        assert "Discussed the lead" not in shown and "d-p02" not in shown  # no notes, no device serial
        assert not [b for b in view.findChildren(QPushButton) if "firmware" in b.text().lower()]
        assert view.delegate.isVisibleTo(view) == (user_id == "pt_p02")  # hers to give, not the caregiver's


def test_ctrl_l_switches_user_and_leaves_nothing_of_the_previous_one(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_aly")
    open_row(qtbot, window)
    assert window.vms.record.record is not None
    qtbot.keyClick(window.patients.table, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.stack.currentIndex() == 0)
    assert window.vms.record.record is None and window.patients.table.rowCount() == 0
    sign_in(qtbot, window, "co_cora")
    assert window.vms.record.record is None and window.patients.rows == []


def test_screenshot_mode_renders_a_png(tmp_path: Path) -> None:
    out = tmp_path / "main.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.main",
            "--data-dir",
            str(tmp_path / "data"),
            "--screenshot",
            str(out),
            "--user",
            "dr_aly",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_idle_lock_warns_counts_down_and_continue_keeps_the_session(qtbot, window: MainWindow, clock: Clock) -> None:
    sign_in(qtbot, window, "dr_aly")
    open_row(qtbot, window)
    clock.advance(seconds=530)
    qtbot.wait(100)  # the idle timer ticks: 70 s left, no warning yet
    assert window.idle_warning.isHidden()
    clock.advance(seconds=15)
    qtbot.waitUntil(lambda: "locks in 55 s" in window.idle_warning.text.text())
    assert window.idle_warning.isVisible()
    click(qtbot, window.idle_warning.button)
    assert window.idle_warning.isHidden()
    clock.advance(seconds=599)
    qtbot.wait(100)
    assert window.vms.session.user is not None and window.vms.record.record is not None


def test_idle_lock_hides_everything_and_the_same_user_resumes(qtbot, window: MainWindow, clock: Clock) -> None:
    sign_in(qtbot, window, "dr_aly")
    open_row(qtbot, window, 1)
    patient = window.vms.record.record.view.patient
    clock.advance(seconds=601)
    qtbot.waitUntil(lambda: window.stack.currentIndex() == 0)
    assert window.vms.record.record is None and window.patients.table.rowCount() == 0
    assert not [label.text() for label in window.findChildren(QLabel) if patient.mrn in label.text()]
    assert "Locked after 10 min" in window.sign_in.error.text()
    assert window.sign_in.user.currentData() == "dr_aly" and window.vms.session.workstation.session.session is None
    qtbot.keyClicks(window.sign_in.password, DEMO_PASSWORD)  # the locked user is preselected
    qtbot.keyClick(window.sign_in.password, Qt.Key.Key_Return)
    assert window.vms.record.record is not None and window.vms.record.record.patient_id == patient.id


def test_after_an_idle_lock_another_user_gets_nothing_of_the_first(qtbot, window: MainWindow, clock: Clock) -> None:
    sign_in(qtbot, window, "dr_aly")
    open_row(qtbot, window)
    clock.advance(seconds=601)
    qtbot.waitUntil(lambda: window.stack.currentIndex() == 0)
    sign_in(qtbot, window, "nurse_nia")
    assert window.vms.record.record is None and window.vms.session.locked_from is None


def test_real_input_resets_the_idle_time(qtbot, window: MainWindow, clock: Clock) -> None:
    sign_in(qtbot, window, "dr_aly")
    clock.advance(seconds=590)
    qtbot.keyClick(window.patients.search, Qt.Key.Key_A)  # typing is activity
    clock.advance(seconds=30)
    qtbot.wait(100)
    assert window.vms.session.user is not None and window.idle_warning.isHidden()


def test_sign_in_screen_explains_a_missing_keyring(qtbot, tmp_path: Path) -> None:
    from keyring.backends import fail

    ws = Workstation(tmp_path / "data", secrets=SecretStore(fail.Keyring()))
    w = MainWindow(ViewModels.build(ws))
    qtbot.addWidget(w)
    w.show()
    assert "No OS keyring" in w.sign_in.keyring_notice.text() and not w.sign_in.keyring_notice.isHidden()
    sign_in(qtbot, w, "nurse_nia")
    assert w.vms.session.user is not None and "demo-only session store" in w.status_label.text()


def test_keyboard_only_search_open_and_save_a_note(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "nurse_nia")  # typed password, Enter
    target = window.patients.rows[1].patient
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)  # Ctrl+F: the search
    qtbot.keyClicks(window.patients.search, target.mrn)
    assert [r.patient.id for r in window.patients.rows] == [target.id]
    qtbot.keyClick(window.patients.search, Qt.Key.Key_Return)  # the only match opens
    assert window.vms.record.record.patient_id == target.id
    qtbot.keyClicks(window.record.editor, "Wound site clean.")
    qtbot.keyClick(window.record.save, Qt.Key.Key_Space)
    note = window.vms.record.record.view.notes[0]
    assert note["text"] == "Wound site clean." and note["note_type"] == "basic"


def test_er_break_glass_emergency_note_countdown_warning_and_expiry(qtbot, window: MainWindow, clock: Clock) -> None:
    sign_in(qtbot, window, "er_eli")
    patient = window.vms.session.workstation.store.patient("p03")
    search_and_open(qtbot, window, patient.mrn)
    assert window.vms.record.record is None and "break-glass" in window.record.denial.text()
    dialog = open_dialog(qtbot, window.record.emergency_button, window.record, "dialog")
    assert f"{patient.name} ({patient.mrn})" in dialog.windowTitle() and "p03" not in dialog.windowTitle()
    click(qtbot, dialog.confirm)
    assert "justification of at least 20 characters" in dialog.error.text()  # the policy's words, before typing
    qtbot.keyClicks(dialog.justification, "aaaaaaaaaaaaaaaaaaaaaaaaa")
    qtbot.keyClicks(dialog.password, DEMO_PASSWORD)
    click(qtbot, dialog.grant)
    assert "in your own words" in dialog.error.text() and window.vms.break_glass.emergency is None  # refused, kept
    assert dialog.justification.toPlainText() == "a" * 25
    dialog.justification.clear()
    qtbot.keyClicks(dialog.justification, "Collapsed in the ER; need device settings and rhythm history now.")
    assert dialog.error.text() == ""  # the policies would allow it now
    qtbot.keyClicks(dialog.password, DEMO_PASSWORD)
    click(qtbot, dialog.grant)
    assert window.vms.break_glass.emergency is not None and window.vms.record.record.patient_id == "p03"
    assert window.emergency_banner.isVisible() and "60:00 left" in window.emergency_banner.text.text()
    assert window.record.note_type.currentData() == "emergency"
    qtbot.keyClicks(window.record.editor, "Emergency: pacing at 70/min, capture confirmed.")
    click(qtbot, window.record.save)
    assert window.vms.record.record.view.notes[0]["note_type"] == "emergency"
    keep_working(qtbot, window, clock, minutes=10)
    qtbot.waitUntil(lambda: "50:00 left" in window.emergency_banner.text.text())
    assert "ENDING SOON" not in window.emergency_banner.text.text()
    keep_working(qtbot, window, clock, minutes=46)
    qtbot.waitUntil(lambda: "ENDING SOON" in window.emergency_banner.text.text())
    keep_working(qtbot, window, clock, minutes=5)
    qtbot.waitUntil(lambda: not window.emergency_banner.isVisible())
    assert window.vms.record.record is None and window.vms.break_glass.emergency is None
    assert window.patients.rows == [] and "Emergency access has ended" in window.statusBar().currentMessage()
    assert events(window) == ["break_glass_started", "note_saved", "break_glass_ended"]


def test_end_emergency_access_button_closes_the_record(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "er_eli")
    search_and_open(qtbot, window, window.vms.session.workstation.store.patient("p03").mrn)
    dialog = open_dialog(qtbot, window.record.emergency_button, window.record, "dialog")
    click(qtbot, dialog.confirm)
    choose(dialog.reason, "BTG")
    qtbot.keyClicks(dialog.justification, "Unresponsive on arrival, pacemaker check needed now.")
    qtbot.keyClicks(dialog.password, DEMO_PASSWORD)
    click(qtbot, dialog.grant)
    assert window.vms.record.record is not None
    click_confirmed(qtbot, window.emergency_banner.button, window.emergency_banner)
    assert window.vms.record.record is None and not window.emergency_banner.isVisible()
    ended = [r for r in window.vms.session.workstation.chain.records() if r.event_type == "break_glass_ended"]
    assert [(r.action, r.effect) for r in ended] == [("end_break_glass", "EFFECT_ALLOW")]


def test_dr_aly_delegates_to_the_granddaughter_from_the_record(qtbot, window: MainWindow) -> None:
    ws = window.vms.session.workstation
    for existing in ws.delegations.for_patient("p02"):
        ws.store.revoke_delegation(existing.id)
    sign_in(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, ws.store.patient("p02").mrn)
    dialog = open_dialog(qtbot, window.record.delegate, window.record, "delegation_dialog")
    assert [dialog.caregiver.itemData(i) for i in range(dialog.caregiver.count())] == ["gina"]  # caregivers only
    choose(dialog.caregiver, "gina")
    click(qtbot, dialog.grant)
    assert "patient's permission" in dialog.error.text()  # the policy's words: the patient was not asked yet
    qtbot.mouseClick(dialog.permission, Qt.MouseButton.LeftButton)
    click(qtbot, dialog.grant)
    texts = [dialog.current.item(i).text() for i in range(dialog.current.count())]
    assert dialog.error.text() == "" and sum("(gina) — until" in t for t in texts) == 1
    assert all("granted by Dr. Aly Rahman (dr_aly)" in t for t in texts if "(gina) — until" in t)
    gina = ws.session.sign_in("gina", DEMO_PASSWORD)
    assert [r.patient.id for r in ws.patients.rows(gina)] == ["p02"]
    dialog.current.setCurrentRow(next(i for i, t in enumerate(texts) if "(gina) — until" in t))
    click(qtbot, dialog.revoke)
    texts = [dialog.current.item(i).text() for i in range(dialog.current.count())]
    assert ws.patients.rows(gina) == [] and all("revoked" in t for t in texts)


def test_a_nurse_sees_why_she_cannot_delegate(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "nurse_nia")
    open_row(qtbot, window)
    expected = reason_in_policy("patient_record.yaml", "why_not_delegate", "This is for the patient")
    assert not window.record.delegate.isEnabled() and window.record.delegate_reason.text() == expected


def test_device_panel_firmware_dual_approval_and_separation_of_duties(qtbot, window: MainWindow) -> None:
    """Vendor support has requested an update for room 902's pacemaker (demo data); Dr. Aly approves
    from the panel, and a second approval by her is refused with the policy's reason."""
    sign_in(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, window.vms.session.workstation.store.patient("p02").mrn)
    assert "requested" in window.record.firmware_state.text()
    assert not window.record.firmware_buttons["request_firmware_update"].isEnabled()  # one at a time
    click_confirmed(qtbot, window.record.firmware_buttons["approve_firmware_update"], window.record)
    state = window.record.firmware_state.text()
    assert "approved by one" in state and "Dr. Aly Rahman (dr_aly), physician" in state  # the role the policy says
    assert not window.record.firmware_buttons["approve_firmware_update"].isEnabled()
    assert "neither its requester nor an earlier approver" in window.record.firmware_message.text()
    assert events(window) == ["firmware_approved"]


def test_consent_then_export_runs_off_the_ui_thread_with_progress(qtbot, window: MainWindow, tmp_path: Path) -> None:
    sign_in(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, window.vms.session.workstation.store.patient("p02").mrn)
    assert not window.record.export.isEnabled() and "consent" in window.record.export_reason.text()
    consent = open_dialog(qtbot, window.record.consent, window.record, "consent_dialog")
    qtbot.keyClicks(consent.given_by, "Patient p02 (signed on the tablet)")
    click(qtbot, consent.save)
    assert "in person" in consent.error.text()  # the physician records it on the patient's word only
    qtbot.mouseClick(consent.patients_word, Qt.MouseButton.LeftButton)
    click(qtbot, consent.save)
    assert window.record.export.isEnabled()
    dialog = open_dialog(qtbot, window.record.export, window.record, "export_dialog")
    assert dialog.kind.currentData() == "identified"
    click(qtbot, dialog.start)
    qtbot.waitUntil(lambda: "reason for this export" in dialog.result.text())  # the policy asks for it
    qtbot.keyClicks(dialog.reason, "Referral to the electrophysiology clinic")
    dialog.directory.setText(str(tmp_path / "exports"))
    click(qtbot, dialog.start)
    qtbot.waitUntil(lambda: "Exported to" in dialog.result.text())
    assert dialog.progress.value() == dialog.progress.maximum() == 3
    files = list((tmp_path / "exports").iterdir())
    assert len(files) == 1 and files[0].name.endswith(".fhir.json")
    assert events(window) == ["consent_recorded", "export"]


def test_compliance_officer_reviews_in_the_queue_and_exports_a_report_pdf(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    ws = window.vms.session.workstation
    eli = ws.session.sign_in("er_eli", DEMO_PASSWORD)
    ws.break_glass.start(eli, "p03", "BTG", "Collapsed in the ER; need device settings now.", DEMO_PASSWORD)
    ws.patients.open_record(eli, "p03")
    sign_in(qtbot, window, "co_cora")
    view = window.compliance
    assert view.table.rowCount() == 1 and "needs review" in view.table.item(0, 0).text()
    click_cell(qtbot, view.table, 0)
    assert "Collapsed in the ER" in view.detail.text() and "accesses under it: 1" in view.detail.text()
    qtbot.keyClicks(view.comment, "Accepted: documented emergency.")
    click(qtbot, view.step_buttons["accept_review"])
    assert view.table.item(0, 0).text() == "accepted" and "Recorded" in view.message.text()
    view.setCurrentIndex(1)
    assert [view.report_type.itemData(i) for i in range(view.report_type.count())] == [
        "usage",
        "access",
        "break_glass",
        "export",
        "firmware",
    ]
    choose(view.report_type, "break_glass")
    click(qtbot, view.generate)
    qtbot.waitUntil(lambda: view.report is not None)
    assert dict(view.report.rows) == {"Emergency access opened": 1}
    pdf = Path(save_report_pdf(qtbot, view).removeprefix("Saved "))
    assert pdf.parent == ws.data_dir / "exports" and pdf.read_bytes()[:5] == b"%PDF-"


def test_hospital_admin_sees_the_queue_but_decides_nothing_and_gets_usage_reports_only(
    qtbot, window: MainWindow
) -> None:
    ws = window.vms.session.workstation
    eli = ws.session.sign_in("er_eli", DEMO_PASSWORD)
    ws.break_glass.start(eli, "p03", "BTG", "Collapsed in the ER; need device settings now.", DEMO_PASSWORD)
    sign_in(qtbot, window, "admin_hal")
    view = window.compliance
    assert window.workspaces.currentWidget() is view and view.table.rowCount() == 1
    click_cell(qtbot, view.table, 0)
    assert not any(b.isEnabled() for b in view.step_buttons.values())
    expected = reason_in_policy("audit_event.yaml", "why_admins_do_not_decide_reviews", "Hospital administrators")
    assert view.message.text() == expected
    assert [view.report_type.itemData(i) for i in range(view.report_type.count())] == ["usage"]


def test_engineer_approves_from_the_device_list_and_exports_de_identified(
    qtbot, window: MainWindow, tmp_path: Path
) -> None:
    ws = window.vms.session.workstation
    pt = ws.session.sign_in("pt_p02", DEMO_PASSWORD)
    ws.consents.record(pt, "p02", "export", "Patient p02", ws.consents.clock() + timedelta(days=9))
    vic = ws.session.sign_in("eng_vic", DEMO_PASSWORD)
    ws.firmware.step(vic, "reject_firmware_update", "d-p02", "Superseded.")
    ws.firmware.step(vic, "request_firmware_update", "d-p02", "4.3.0")
    sign_in(qtbot, window, "eng_max")
    view = window.engineering
    assert window.workspaces.currentWidget() is view
    ids = [r.device_id for r in view.rows]
    assert "d-p02" in ids and all(ws.store.device(i)["manufacturer_id"] == "m_acme" for i in ids)
    names = {p.name for p in ws.store.patients()}
    shown = {view.table.item(i, j).text() for i in range(view.table.rowCount()) for j in range(4)}
    assert not shown & names  # no patient identifiers on an engineer's screen
    click_cell(qtbot, view.table, ids.index("d-p02"))
    click_confirmed(qtbot, view.buttons["approve_firmware_update"], view)
    assert ws.firmware.current("d-p02").state == "approved_by_one"
    assert "approved by one" in view.table.item(ids.index("d-p02"), 3).text()
    dialog = open_dialog(qtbot, view.export, view, "export_dialog")
    assert [dialog.kind.itemData(i) for i in range(dialog.kind.count())] == ["deidentified"]
    dialog.directory.setText(str(tmp_path / "out"))
    click(qtbot, dialog.start)
    qtbot.waitUntil(lambda: "Exported to" in dialog.result.text())
    assert "flagged for compliance review" in dialog.result.text()
    exported = next((tmp_path / "out").iterdir()).read_text()
    assert ws.store.patient("p02").mrn not in exported and ws.store.patient("p02").name not in exported


# Room 902's patient (p02), as each clinical role sees her: (may open the record, may write a note).
# (The patient and her delegate get the personal view: test_patient_and_delegate_get_the_personal_view...)
SAME_PATIENT = {
    "dr_aly": (True, True),  # attending physician: full notes
    "nurse_nia": (True, True),  # on her care team: basic notes
    "nurse_omar": (False, False),  # a nurse of the other hospital
    "er_eli": (False, False),  # ER: only under break-glass
}


@pytest.mark.parametrize("user_id", SAME_PATIENT)
def test_each_role_sees_the_same_patient_as_the_matrix_says(qtbot, window: MainWindow, user_id: str) -> None:
    may_open, may_write = SAME_PATIENT[user_id]
    sign_in(qtbot, window, user_id)
    mrn = window.vms.session.workstation.store.patient("p02").mrn
    search_and_open(qtbot, window, mrn)
    assert (window.vms.record.record is not None) == may_open
    if may_open:
        assert mrn in window.record.banner.text()
        assert window.record.save.isEnabled() == may_write
        assert may_write or window.record.reason.text()  # a disabled control says why
    elif user_id == "nurse_omar":  # another hospital's nurse may not even look the patient up
        assert "No patient you may look up matches" in window.statusBar().currentMessage()
        assert not window.record.banner.isVisible() and not hasattr(window.record, "denial")
    else:  # refused, the banner saying whose record (identity only, no alert state) and the refusal why
        assert window.record.denial.text() and mrn not in window.record.denial.text()
        assert mrn in window.record.banner.text() and not window.record.banner.alert.isVisible()


@pytest.mark.parametrize("user_id", ["eng_max", "co_cora", "admin_hal"])
def test_roles_without_charts_have_no_patient_list_at_all(qtbot, window: MainWindow, user_id: str) -> None:
    sign_in(qtbot, window, user_id)
    assert window.workspaces.currentWidget() is not window.patients.parentWidget()
    assert window.vms.patients.rows == []


def test_a_changed_policy_changes_the_screen_with_no_code_change(qtbot, tmp_path: Path, clock: Clock) -> None:
    """A copy of policies/ where the analyst reworded a refusal and took basic notes from nurses."""
    policies = tmp_path / "policies"
    shutil.copytree(BUNDLED_POLICIES, policies)
    shutil.rmtree(policies / "tests")  # the suites describe the old rules
    path = policies / "resources" / "patient_record.yaml"
    doc = yaml.safe_load(path.read_text())
    for rule in doc["resourcePolicy"]["rules"]:
        if rule["name"] == "why_not_view":
            rule["output"]["when"]["conditionNotMet"] = rule["output"]["when"]["conditionNotMet"].replace(
                "You are not on this patient's care team. In an emergency, use break-glass.",
                "Ask the attending physician to add you to the care team, or use break-glass.",
            )
    doc["resourcePolicy"]["rules"] = [r for r in doc["resourcePolicy"]["rules"] if r["name"] != "nurse_basic_notes"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    ws = Workstation(tmp_path / "data", policies=policies, clock=clock.now, monotonic=clock.monotonic)
    w = MainWindow(ViewModels.build(ws))
    qtbot.addWidget(w)
    w.show()
    sign_in(qtbot, w, "dr_ben")
    other = next(p for p in ws.store.patients(["h1"]) if "dr_ben" not in p.care_team)
    search_and_open(qtbot, w, other.mrn)
    assert "Ask the attending physician to add you to the care team" in w.record.denial.text()
    click(qtbot, w.switch_user)
    sign_in(qtbot, w, "nurse_nia")
    open_row(qtbot, w)
    assert w.vms.record.record is not None and not w.record.save.isEnabled() and not w.record.editor.isEnabled()
    assert w.record.reason.text()  # and it says why (no rule of the copy explains it: says so, names the policy)


def test_without_a_display_the_app_says_what_to_do_and_exits(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run(
        [sys.executable, "-m", "app.main", "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env=env,
    )
    assert result.returncode == 2
    assert "needs a display" in result.stderr and "--screenshot" in result.stderr


def test_firmware_update_from_request_to_applied_on_the_screens(qtbot, window: MainWindow) -> None:
    """Every firmware step's button: rejected from the record's panel, requested, approved by an
    engineer and by the physician, scheduled and marked applied from the engineering screen."""
    ws = window.vms.session.workstation
    p02 = ws.store.patient("p02")
    sign_in(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, p02.mrn)
    click(qtbot, window.record.firmware_buttons["reject_firmware_update"])  # the demo's pending request
    assert "rejected" in window.record.firmware_state.text()
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "eng_vic")
    view = window.engineering
    row = [r.device_id for r in view.rows].index("d-p02")
    click_cell(qtbot, view.table, row)
    qtbot.keyClicks(view.version, "4.3.0")
    click(qtbot, view.buttons["request_firmware_update"])
    assert not view.buttons["schedule_firmware_update"].isEnabled()
    assert "once a physician and an engineer approved it" in view.buttons["schedule_firmware_update"].toolTip()
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "eng_max")
    click_cell(qtbot, window.engineering.table, row)
    click_confirmed(qtbot, window.engineering.buttons["approve_firmware_update"], window.engineering)
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, p02.mrn)
    click_confirmed(qtbot, window.record.firmware_buttons["approve_firmware_update"], window.record)
    assert "<b>approved</b>" in window.record.firmware_state.text()
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "eng_max")
    view = window.engineering
    click_cell(qtbot, view.table, row)
    click(qtbot, view.buttons["schedule_firmware_update"])
    assert "scheduled → 4.3.0" in view.table.item(row, 3).text()
    click_confirmed(qtbot, view.buttons["apply_firmware_update"], view)
    assert view.table.item(row, 2).text() == "4.3.0" and "applied" in view.table.item(row, 3).text()
    assert events(window) == [
        "firmware_rejected",
        "firmware_requested",
        "firmware_approved",
        "firmware_approved",
        "firmware_scheduled",
        "firmware_applied",
    ]


def test_compliance_officer_rejects_a_review_and_the_event_stays_flagged(qtbot, window: MainWindow) -> None:
    ws = window.vms.session.workstation
    eli = ws.session.sign_in("er_eli", DEMO_PASSWORD)
    ws.break_glass.start(eli, "p03", "BTG", "Collapsed in the ER; need device settings now.", DEMO_PASSWORD)
    sign_in(qtbot, window, "co_cora")
    view = window.compliance
    click_cell(qtbot, view.table, 0)
    click(qtbot, view.step_buttons["reject_review"])
    assert "Write a comment" in view.message.text() and view.table.item(0, 0).text().startswith("open")
    qtbot.keyClicks(view.comment, "No emergency documented for this patient.")
    click(qtbot, view.step_buttons["reject_review"])
    assert view.table.item(0, 0).text() == "rejected ⚑ needs review"
    assert events(window) == ["break_glass_started", "reject_review"]


def test_with_no_policy_set_everything_is_refused_and_the_screen_says_why(qtbot, tmp_path: Path) -> None:
    """No bundle could be loaded (a policy server never reached): the user signs in, sees why
    nothing opens, and nothing is written but the refusals' audit records."""
    ws = Workstation(tmp_path / "data")
    ws.access.engine = lambda: None
    w = MainWindow(ViewModels.build(ws))
    qtbot.addWidget(w)
    w.show()
    sign_in(qtbot, w, "dr_aly")
    assert w.workspaces.currentWidget() is w.no_workspace
    assert "No policy set is loaded" in w.no_workspace.text() and "IT" in w.no_workspace.text()
    assert "No policy set is loaded" in w.statusBar().currentMessage()
    assert w.vms.patients.rows == [] and not list(ws.chain.records())


def test_the_sign_in_button_signs_in(qtbot, window: MainWindow) -> None:
    choose(window.sign_in.user, "nurse_nia")
    qtbot.keyClicks(window.sign_in.password, DEMO_PASSWORD)
    click(qtbot, window.sign_in.button)
    assert window.vms.session.user is not None and window.vms.session.user.id == "nurse_nia"
    assert window.sign_in.password.text() == ""


def test_the_physician_moves_an_update_along_from_the_record_panel(qtbot, window: MainWindow) -> None:
    """Request from the record's device panel (and the engineer's screen rejects it); for an update
    the vendor requested and an engineer approved: approve, schedule and mark applied, all from
    the panel."""
    ws = window.vms.session.workstation
    p01 = ws.store.patient("p01")
    device = ws.store.device_for("p01")["id"]
    sign_in(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, p01.mrn)
    qtbot.keyClicks(window.record.firmware_version, "4.3.0")
    click(qtbot, window.record.firmware_buttons["request_firmware_update"])
    assert "requested" in window.record.firmware_state.text()
    assert not window.record.firmware_buttons["approve_firmware_update"].isEnabled()  # her own request
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "eng_max")
    row = [r.device_id for r in window.engineering.rows].index(device)
    click_cell(qtbot, window.engineering.table, row)
    click(qtbot, window.engineering.buttons["reject_firmware_update"])
    assert "rejected" in window.engineering.table.item(row, 3).text()
    ws.firmware.step(ws.session.sign_in("eng_vic", DEMO_PASSWORD), "request_firmware_update", device, "4.4.0")
    ws.firmware.step(ws.session.sign_in("eng_max", DEMO_PASSWORD), "approve_firmware_update", device)
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, p01.mrn)
    click_confirmed(qtbot, window.record.firmware_buttons["approve_firmware_update"], window.record)
    click(qtbot, window.record.firmware_buttons["schedule_firmware_update"])
    assert "scheduled" in window.record.firmware_state.text()
    click_confirmed(qtbot, window.record.firmware_buttons["apply_firmware_update"], window.record)
    assert "<b>4.4.0</b>" in " ".join(label.text() for label in window.record.body().findChildren(QLabel))
    assert ws.store.device(device)["firmware_version"] == "4.4.0"


def test_cancel_and_close_leave_without_doing_anything(qtbot, window: MainWindow) -> None:
    from PySide6.QtWidgets import QDialogButtonBox

    def dismiss(dialog: object, which: QDialogButtonBox.StandardButton) -> None:
        box = dialog.findChild(QDialogButtonBox)
        click(qtbot, box.button(which))
        assert not dialog.isVisible()

    ws = window.vms.session.workstation
    sign_in(qtbot, window, "er_eli")
    search_and_open(qtbot, window, ws.store.patient("p03").mrn)
    dialog = open_dialog(qtbot, window.record.emergency_button, window.record, "dialog")
    qtbot.keyClicks(dialog.justification, "Collapsed in the ER; need device settings now.")
    dismiss(dialog, QDialogButtonBox.StandardButton.Cancel)
    assert window.vms.break_glass.emergency is None
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, ws.store.patient("p02").mrn)
    dismiss(
        open_dialog(qtbot, window.record.delegate, window.record, "delegation_dialog"),
        QDialogButtonBox.StandardButton.Close,
    )
    dismiss(
        open_dialog(qtbot, window.record.consent, window.record, "consent_dialog"),
        QDialogButtonBox.StandardButton.Cancel,
    )
    assert events(window) == []
