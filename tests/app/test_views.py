"""The app as people use it, offscreen with pytest-qt: sign-in, each role's view of the same
patient, notes saved through a policy check and the audit log, denials explained, sign-out."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QLabel  # noqa: E402

from app.services.users import DEMO_PASSWORD  # noqa: E402
from app.services.workstation import Workstation  # noqa: E402
from app.viewmodels.workstation_vm import WorkstationViewModel  # noqa: E402
from app.views.main_window import MainWindow  # noqa: E402
from tests.app.helpers import sign_in  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_wrong_password_is_refused(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_aly", "nope")
    assert window.stack.currentIndex() == 0
    assert "Sign-in failed" in window.sign_in.error.text()


def test_physician_sees_her_patients_and_writes_a_full_note(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_aly")
    assert window.stack.currentIndex() == 1
    rows = window.patients.rows
    assert rows and all("dr_aly" in r.patient.care_team for r in rows)
    window.patients._open(0, 0)
    record = window.vm.record
    assert record is not None and record.patient.id == rows[0].patient.id
    assert window.record.save.isEnabled()
    qtbot.keyClicks(window.record.editor, "Lead impedance stable; review in 3 months.")
    qtbot.mouseClick(window.record.save, Qt.MouseButton.LeftButton)
    notes = window.vm.record.notes
    assert notes[0]["text"] == "Lead impedance stable; review in 3 months." and notes[0]["note_type"] == "full"
    audit = list(window.vm.workstation.audit.records())
    assert [r.event_type for r in audit if r.kind == "event"] == ["note_saved"]
    assert any(r.kind == "decision" and r.action == "view" for r in audit)


def test_nurse_sees_only_assigned_patients_and_basic_notes(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "nurse_nia")
    rows = window.patients.rows
    assert rows and all("nurse_nia" in r.patient.care_team and not r.patient.sealed for r in rows)
    window.patients._open(0, 0)
    assert window.record.save.isEnabled()  # basic notes


def test_er_physician_sees_no_patients_and_is_told_why(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "er_eli")
    assert window.patients.rows == []
    assert "break-glass" in window.patients.empty.text()


def test_denied_record_is_explained_and_not_shown(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_ben")
    other = next(p for p in window.vm.workstation.store.patients(["h1"]) if "dr_ben" not in p.care_team)
    messages: list[str] = []
    window.vm.message.connect(messages.append)
    window.vm.open_patient(other.id)
    assert window.vm.record is None
    reason = "You are not on this patient's care team. In an emergency, use break-glass."
    assert messages == [reason]
    assert reason in window.record.denial.text() and other.mrn not in window.record.denial.text()


def test_compliance_officer_is_told_where_her_work_is(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "co_cora")
    assert window.patients.rows == [] and "reports" in window.patients.empty.text()


def test_patient_and_delegate_see_only_that_patient(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "pt_p02")
    assert [r.patient.id for r in window.patients.rows] == ["p02"]
    window.patients._open(0, 0)
    assert not window.record.save.isEnabled() and window.record.reason.text()  # patients write no notes
    window.vm.sign_out()
    sign_in(qtbot, window, "gina")
    assert [r.patient.id for r in window.patients.rows] == ["p02"]


def test_switching_user_leaves_nothing_of_the_previous_one(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_aly")
    window.patients._open(0, 0)
    assert window.vm.record is not None
    window.activateWindow()
    qtbot.keyClick(window.patients.table, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)  # lock
    if window.stack.currentIndex() != 0:  # offscreen windows may not take the shortcut's focus
        window.vm.sign_out()
    assert window.vm.record is None and window.stack.currentIndex() == 0
    sign_in(qtbot, window, "co_cora")
    assert window.vm.record is None and window.patients.rows == []


def test_screenshot_mode_renders_a_png(tmp_path: Path) -> None:
    out = tmp_path / "main.png"
    result = subprocess.run([sys.executable, "-m", "app.main", "--data-dir", str(tmp_path / "data"),
                             "--screenshot", str(out), "--user", "dr_aly"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


class FakeClock:
    """The monotonic clock, advanced by the test instead of by waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def locking_window(qtbot, tmp_path: Path, clock: FakeClock) -> MainWindow:
    vm = WorkstationViewModel(Workstation(tmp_path / "data", idle_lock_seconds=600), clock=clock)
    w = MainWindow(vm)
    qtbot.addWidget(w)
    w.show()
    return w


def test_idle_lock_warns_counts_down_and_continue_keeps_the_session(qtbot, tmp_path: Path) -> None:
    clock = FakeClock()
    w = locking_window(qtbot, tmp_path, clock)
    sign_in(qtbot, w, "dr_aly")
    w.patients._open(0, 0)
    clock.now += 530
    w.vm.idle.tick()
    assert w.idle_warning.isHidden()
    clock.now += 15  # 55 s left
    w.vm.idle.tick()
    assert w.idle_warning.isVisible() and "locks in 55 s" in w.idle_warning.text.text()
    qtbot.mouseClick(w.idle_warning.button, Qt.MouseButton.LeftButton)
    assert w.idle_warning.isHidden()
    clock.now += 599
    w.vm.idle.tick()
    assert w.vm.user is not None and w.vm.record is not None  # continue restarted the idle time


def test_idle_lock_hides_everything_and_the_same_user_resumes(qtbot, tmp_path: Path) -> None:
    clock = FakeClock()
    w = locking_window(qtbot, tmp_path, clock)
    sign_in(qtbot, w, "dr_aly")
    w.patients._open(1, 0)
    patient = w.vm.record.patient
    clock.now += 601
    w.vm.idle.tick()
    assert w.stack.currentIndex() == 0 and w.vm.record is None and w.patients.table.rowCount() == 0
    assert not [label.text() for label in w.findChildren(QLabel) if patient.mrn in label.text()]
    assert "Locked after 10 min" in w.sign_in.error.text()
    assert w.sign_in.user.currentData() == "dr_aly" and w.vm.workstation.session is None
    sign_in(qtbot, w, "dr_aly")
    assert w.vm.record is not None and w.vm.record.patient.id == patient.id


def test_after_an_idle_lock_another_user_gets_nothing_of_the_first(qtbot, tmp_path: Path) -> None:
    clock = FakeClock()
    w = locking_window(qtbot, tmp_path, clock)
    sign_in(qtbot, w, "dr_aly")
    w.patients._open(0, 0)
    clock.now += 601
    w.vm.idle.tick()
    sign_in(qtbot, w, "nurse_nia")
    assert w.vm.record is None and w.vm.locked_from is None


def test_real_input_resets_the_idle_time(qtbot, tmp_path: Path) -> None:
    clock = FakeClock()
    w = locking_window(qtbot, tmp_path, clock)
    sign_in(qtbot, w, "dr_aly")
    clock.now += 590
    qtbot.keyClick(w.patients.search, Qt.Key.Key_A)  # typing is activity
    clock.now += 30
    w.vm.idle.tick()
    assert w.vm.user is not None and w.idle_warning.isHidden()


def test_sign_in_screen_explains_a_missing_keyring(qtbot, tmp_path: Path) -> None:
    from keyring.backends import fail

    from app.services.credentials import SecretStore

    vm = WorkstationViewModel(Workstation(tmp_path / "data", secrets=SecretStore(fail.Keyring())))
    w = MainWindow(vm)
    qtbot.addWidget(w)
    assert "No OS keyring" in w.sign_in.keyring_notice.text() and not w.sign_in.keyring_notice.isHidden()
    sign_in(qtbot, w, "nurse_nia")
    assert w.vm.user is not None and "demo-only session store" in w.status_label.text()


def test_keyboard_only_search_open_and_save_a_note(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "nurse_nia")  # typed password, Enter
    target = window.patients.rows[1].patient
    qtbot.keyClicks(window.patients.search, target.mrn)
    assert [r.patient.id for r in window.patients.rows] == [target.id]
    window.patients.table.setFocus()
    window.patients.table.setCurrentCell(0, 1)
    qtbot.keyClick(window.patients.table, Qt.Key.Key_Return)
    assert window.vm.record is not None and window.vm.record.patient.id == target.id
    qtbot.keyClicks(window.record.editor, "Wound site clean.")
    qtbot.keyClick(window.record.save, Qt.Key.Key_Space)
    note = window.vm.record.notes[0]
    assert note["text"] == "Wound site clean." and note["note_type"] == "basic"


def test_er_break_glass_emergency_note_and_closed_at_expiry(qtbot, window: MainWindow) -> None:
    bg = window.vm.workstation.break_glass
    offset = {"minutes": 0.0}
    real_clock, real_mono = bg.clock, bg.monotonic
    bg.clock = lambda: real_clock() + timedelta(minutes=offset["minutes"])
    bg.monotonic = lambda: real_mono() + offset["minutes"] * 60
    sign_in(qtbot, window, "er_eli")
    patient = window.vm.workstation.store.patient("p03")
    qtbot.keyClicks(window.patients.search, patient.mrn)
    qtbot.keyClick(window.patients.search, Qt.Key.Key_Return)
    assert window.vm.record is None and "break-glass" in window.record.denial.text()
    assert window.record.emergency_button.isEnabled()
    dialog = window.record.open_break_glass("p03")
    qtbot.keyClicks(dialog.justification, "aaaaaaaaaaaaaaaaaaaaaaaaa")
    qtbot.keyClicks(dialog.password, DEMO_PASSWORD)
    qtbot.mouseClick(dialog.grant, Qt.MouseButton.LeftButton)
    assert "repeated character" in dialog.error.text() and window.vm.emergency is None  # refused, text kept
    dialog.justification.setPlainText("Collapsed in the ER; need device settings and rhythm history now.")
    qtbot.keyClicks(dialog.password, DEMO_PASSWORD)
    qtbot.mouseClick(dialog.grant, Qt.MouseButton.LeftButton)
    assert window.vm.emergency is not None and window.vm.record.patient.id == "p03"
    assert window.emergency_banner.isVisible() and "59:5" in window.emergency_banner.text.text()
    qtbot.keyClicks(window.record.editor, "Emergency: pacing at 70/min, capture confirmed.")
    qtbot.mouseClick(window.record.save, Qt.MouseButton.LeftButton)
    assert window.vm.record.notes[0]["note_type"] == "emergency"
    offset["minutes"] = 56
    window.vm.emergency_tick()
    assert "ENDING SOON" in window.emergency_banner.text.text()
    offset["minutes"] = 61
    window.vm.emergency_tick()
    assert window.vm.record is None and window.vm.emergency is None and not window.emergency_banner.isVisible()
    assert window.patients.rows == []
    events = [r.event_type for r in window.vm.workstation.audit.records() if r.kind == "event"]
    assert events == ["break_glass_started", "note_saved", "break_glass_ended"]


def test_a_physician_is_not_offered_break_glass_for_a_non_emergency_patient(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_ben")
    other = next(p for p in window.vm.workstation.store.patients(["h1"])
                 if "dr_ben" not in p.care_team and not p.emergency)
    window.vm.open_patient(other.id)
    assert not window.record.emergency_button.isEnabled()
    assert "emergency treatment" in window.record.emergency_reason.text()


def test_dr_aly_delegates_to_the_granddaughter_from_the_record(qtbot, window: MainWindow) -> None:
    ws = window.vm.workstation
    for existing in ws.delegations.for_patient("p02"):
        ws.store.revoke_delegation(existing.id)
    sign_in(qtbot, window, "dr_aly")
    window.vm.open_patient("p02")
    assert window.record.delegate.isEnabled()
    dialog = window.record.open_delegation()
    dialog.caregiver.setCurrentIndex(dialog.caregiver.findData("gina"))
    qtbot.mouseClick(dialog.grant, Qt.MouseButton.LeftButton)
    assert "permission" in dialog.error.text()  # the patient was not asked yet
    dialog.permission.setChecked(True)
    qtbot.mouseClick(dialog.grant, Qt.MouseButton.LeftButton)
    texts = [dialog.current.item(i).text() for i in range(dialog.current.count())]
    assert dialog.error.text() == "" and sum("gina — until" in t for t in texts) == 1
    gina = ws.sign_in("gina", DEMO_PASSWORD)
    assert [r.patient.id for r in ws.patient_rows(gina)] == ["p02"]
    dialog.current.setCurrentRow(next(i for i, t in enumerate(texts) if "gina — until" in t))
    qtbot.mouseClick(dialog.revoke, Qt.MouseButton.LeftButton)
    texts = [dialog.current.item(i).text() for i in range(dialog.current.count())]
    assert ws.patient_rows(gina) == [] and all("revoked" in t for t in texts)


def test_a_nurse_sees_why_she_cannot_delegate(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "nurse_nia")
    window.patients._open(0, 0)
    assert not window.record.delegate.isEnabled() and "assigned physician" in window.record.delegate_reason.text()


def test_device_panel_firmware_request_and_dual_approval(qtbot, window: MainWindow) -> None:
    """Vendor support has requested an update for room 902's pacemaker (demo data); Dr. Aly approves
    from the panel, then the requester's own approval is refused with the reason."""
    sign_in(qtbot, window, "dr_aly")
    window.vm.open_patient("p02")
    assert "requested" in window.record.firmware_state.text()
    assert not window.record.firmware_buttons["request_firmware_update"].isEnabled()  # one at a time
    approve = window.record.firmware_buttons["approve_firmware_update"]
    assert approve.isEnabled()
    qtbot.mouseClick(approve, Qt.MouseButton.LeftButton)
    assert "approved by one" in window.record.firmware_state.text()
    assert not window.record.firmware_buttons["approve_firmware_update"].isEnabled()
    assert "approves twice" in window.record.firmware_message.text()
    assert [r.event_type for r in window.vm.workstation.audit.records() if r.kind == "event"] == ["firmware_approved"]


def test_consent_then_export_runs_off_the_ui_thread_with_progress(qtbot, window: MainWindow, tmp_path: Path) -> None:
    sign_in(qtbot, window, "dr_aly")
    window.vm.open_patient("p02")
    assert not window.record.export.isEnabled() and "consent" in window.record.export_reason.text()
    consent = window.record.open_consent()
    qtbot.keyClicks(consent.given_by, "Patient p02 (signed on the tablet)")
    qtbot.mouseClick(consent.save, Qt.MouseButton.LeftButton)
    assert window.record.export.isEnabled()
    dialog = window.record.open_export()
    qtbot.keyClicks(dialog.reason, "Referral to the electrophysiology clinic")
    dialog.directory.setText(str(tmp_path / "exports"))
    with qtbot.waitSignal(window.vm.export_finished, timeout=10_000):
        qtbot.mouseClick(dialog.start, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Exported to" in dialog.result.text())
    assert dialog.progress.value() == dialog.progress.maximum() == 3
    files = list((tmp_path / "exports").iterdir())
    assert len(files) == 1 and files[0].name.endswith(".fhir.json")
    events = [r.event_type for r in window.vm.workstation.audit.records() if r.kind == "event"]
    assert events == ["consent_recorded", "export"]


def test_compliance_officer_reviews_in_the_queue_and_exports_a_report_pdf(qtbot, window: MainWindow,
                                                                         tmp_path: Path) -> None:
    ws = window.vm.workstation
    eli = ws.start_emergency_access(ws.sign_in("er_eli", DEMO_PASSWORD), "p03", "BTG",
                                    "Collapsed in the ER; need device settings now.", DEMO_PASSWORD)
    ws.open_record(eli, "p03")
    sign_in(qtbot, window, "co_cora")
    assert window.workspaces.currentWidget() is window.compliance
    view = window.compliance
    assert view.table.rowCount() == 1 and "needs review" in view.table.item(0, 0).text()
    view.table.setCurrentCell(0, 0)
    assert "Collapsed in the ER" in view.detail.text() and "accesses under it: 1" in view.detail.text()
    qtbot.keyClicks(view.comment, "Accepted: documented emergency.")
    qtbot.mouseClick(view.step_buttons["review_accepted"], Qt.MouseButton.LeftButton)
    assert view.table.item(0, 0).text() == "accepted" and "Recorded" in view.message.text()
    view.setCurrentIndex(1)
    view.report_type.setCurrentIndex(view.report_type.findData("break_glass"))
    with qtbot.waitSignal(window.vm.report_ready, timeout=10_000):
        qtbot.mouseClick(view.generate, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.report is not None)
    assert dict(view.report.rows) == {"break_glass_started": 1}
    pdf = view.export_pdf(str(tmp_path / "bg.pdf"))
    assert Path(pdf).read_bytes()[:5] == b"%PDF-"


def test_hospital_admin_sees_the_queue_but_only_usage_reports(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "admin_hal")
    view = window.compliance
    assert window.workspaces.currentWidget() is window.compliance
    assert not view.step_buttons["review_accepted"].isEnabled()
    view.report_type.setCurrentIndex(view.report_type.findData("break_glass"))
    with qtbot.waitSignal(window.vm.report_ready, timeout=10_000):
        qtbot.mouseClick(view.generate, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "usage reports only" in view.report_message.text())
    assert view.report is None and not view.pdf.isEnabled()


def test_engineer_approves_from_the_device_list_and_exports_de_identified(qtbot, window: MainWindow,
                                                                          tmp_path: Path) -> None:
    ws = window.vm.workstation
    ws.record_consent(ws.sign_in("dr_aly", DEMO_PASSWORD), "p02", "Patient p02", datetime.now(UTC) + timedelta(days=9))
    vic = ws.sign_in("eng_vic", DEMO_PASSWORD)
    pending = ws.firmware.current("d-p02")
    ws.firmware.reject(vic, pending.id, "Superseded.")
    ws.firmware.request(vic, "d-p02", "4.3.0")
    sign_in(qtbot, window, "eng_max")
    view = window.engineering
    assert window.workspaces.currentWidget() is view
    ids = [r.device_id for r in view.rows]
    assert "d-p02" in ids and all(ws.store.device(i)["manufacturer_id"] == "m_acme" for i in ids)
    names = {p.name for p in ws.store.patients()}
    shown = {view.table.item(i, j).text() for i in range(view.table.rowCount()) for j in range(4)}
    assert not shown & names  # no patient identifiers on an engineer's screen
    view.table.setCurrentCell(ids.index("d-p02"), 0)
    qtbot.mouseClick(view.buttons["approve_firmware_update"], Qt.MouseButton.LeftButton)
    assert ws.firmware.current("d-p02").state == "approved_by_one" and "approved by one" in view.table.item(
        ids.index("d-p02"), 3).text()
    dialog = view.open_export()
    dialog.directory.setText(str(tmp_path / "out"))
    with qtbot.waitSignal(window.vm.export_finished, timeout=10_000):
        qtbot.mouseClick(dialog.start, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Exported to" in dialog.result.text())
    assert "flagged for compliance review" in dialog.result.text()
    exported = next((tmp_path / "out").iterdir()).read_text()
    assert ws.store.patient("p02").mrn not in exported


# Room 902's patient (p02), as each role sees her: (may open the record, may write a note).
SAME_PATIENT = {
    "dr_aly": (True, True),  # attending physician: full notes
    "nurse_nia": (True, True),  # on her care team: basic notes
    "pt_p02": (True, False),  # her own record
    "gina": (True, False),  # delegate of that patient
    "nurse_omar": (False, False),  # a nurse of the other hospital
    "er_eli": (False, False),  # ER: only under break-glass
    "eng_max": (False, False),  # engineers: device data, never the chart
    "co_cora": (False, False),  # compliance: reports, not charts
    "admin_hal": (False, False),
}


@pytest.mark.parametrize("user_id", SAME_PATIENT)
def test_each_role_sees_the_same_patient_as_the_matrix_says(qtbot, window: MainWindow, user_id: str) -> None:
    may_open, may_write = SAME_PATIENT[user_id]
    sign_in(qtbot, window, user_id)
    window.vm.open_patient("p02")
    record = window.vm.record
    assert (record is not None) == may_open
    mrn = window.vm.workstation.store.patient("p02").mrn
    if may_open:
        assert mrn in window.record.widget().findChild(QLabel, "banner").text()
        assert window.record.save.isEnabled() == may_write
        assert may_write or window.record.reason.text()  # a disabled control says why
    else:
        assert window.record.denial.text() and mrn not in window.record.denial.text()


def test_without_a_display_the_app_says_what_to_do_and_exits(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-m", "app.main", "--data-dir", str(tmp_path / "data")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
    assert result.returncode == 2
    assert "needs a display" in result.stderr and "--screenshot" in result.stderr
