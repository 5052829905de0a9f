"""Never lose work, never show a wrong state (issue 18, part 5), driven by clicks and keys on the
real widgets: messages cleared between users, irreversible steps confirmed (and Cancel does
nothing), the break-glass banner agreeing with the engine whatever the clock does, drafts kept per
user across idle lock, user switch, expiry and restart, and input checked where it is typed."""

from __future__ import annotations

from datetime import timedelta

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel

from app.services.users import DEMO_PASSWORD
from app.views.main_window import MainWindow
from tests.app.helpers import Clock, click, click_cell, open_dialog, search_and_open, sign_in

WHY = "Collapsed in the ER; need device settings and rhythm history now."


def events(w: MainWindow) -> list[str]:
    """What was done, as the audit log records it (a search's one record of what it listed aside)."""
    records = w.vms.session.workstation.chain.records()
    return [r.event_type for r in records if r.kind in ("event", "annotation") and r.event_type != "listed"]


def break_glass(qtbot, w: MainWindow, patient_id: str = "p03") -> None:  # noqa: ANN001
    search_and_open(qtbot, w, w.vms.session.workstation.store.patient(patient_id).mrn)
    dialog = open_dialog(qtbot, w.record.emergency_button, w.record, "dialog")
    click(qtbot, dialog.confirm)
    qtbot.keyClicks(dialog.justification, WHY)
    qtbot.keyClicks(dialog.password, DEMO_PASSWORD)
    click(qtbot, dialog.grant)
    assert w.vms.break_glass.emergency is not None


def test_sign_in_failed_goes_after_a_successful_sign_in(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_aly", "wrong")
    assert "Sign-in failed" in window.sign_in.error.text()
    sign_in(qtbot, window, "dr_aly")
    assert window.stack.currentIndex() == 1
    assert window.sign_in.error.text() == "" and "Sign-in failed" not in window.statusBar().currentMessage()


def test_the_next_user_never_sees_the_previous_users_last_message(qtbot, window: MainWindow) -> None:
    ws = window.vms.session.workstation
    sign_in(qtbot, window, "dr_ben")
    other = next(p for p in ws.store.patients(["h1"]) if "dr_ben" not in p.care_team and not p.emergency)
    search_and_open(qtbot, window, other.mrn)
    refusal = window.statusBar().currentMessage()
    assert "care team" in refusal
    click(qtbot, window.switch_user)
    assert window.statusBar().currentMessage() == "" and window.sign_in.error.text() == ""
    sign_in(qtbot, window, "nurse_nia")
    assert window.statusBar().currentMessage() == "" and window.sign_in.error.text() == ""


def test_irreversible_steps_ask_first_and_cancel_changes_nothing(qtbot, window: MainWindow) -> None:
    ws = window.vms.session.workstation
    sign_in(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, ws.store.patient("p02").mrn)
    click(qtbot, window.record.firmware_buttons["approve_firmware_update"])
    confirmation = window.record.confirmation
    qtbot.waitUntil(confirmation.isVisible)
    assert "4.2.1" in confirmation.text() and "cannot be withdrawn" in confirmation.text()
    assert confirmation.defaultButton() is confirmation.cancel_button  # Enter does not approve
    click(qtbot, confirmation.cancel_button)
    assert ws.firmware.current("d-p02").state == "requested" and events(window) == []
    click(qtbot, window.record.firmware_buttons["approve_firmware_update"])
    click(qtbot, window.record.confirmation.confirm_button)
    assert ws.firmware.current("d-p02").state == "approved_by_one" and events(window) == ["firmware_approved"]


def test_ending_emergency_access_asks_first(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "er_eli")
    break_glass(qtbot, window)
    p03 = window.vms.session.workstation.store.patient("p03")
    click(qtbot, window.emergency_banner.button)
    confirmation = window.emergency_banner.confirmation
    qtbot.waitUntil(confirmation.isVisible)
    assert p03.name in confirmation.text() and p03.mrn in confirmation.text()
    click(qtbot, confirmation.cancel_button)
    assert window.vms.break_glass.emergency is not None and window.vms.record.record is not None
    click(qtbot, window.emergency_banner.button)
    click(qtbot, window.emergency_banner.confirmation.confirm_button)
    assert window.vms.break_glass.emergency is None and window.vms.record.record is None
    assert events(window) == ["break_glass_started", "break_glass_ended"]


def test_a_clock_set_back_before_the_start_closes_the_banner_with_the_record(
    qtbot, window: MainWindow, clock: Clock
) -> None:
    sign_in(qtbot, window, "er_eli")
    break_glass(qtbot, window)
    clock.advance(minutes=5)
    qtbot.waitUntil(lambda: "55:00 left" in window.emergency_banner.text.text())
    clock.wall -= timedelta(hours=2)  # the policies now refuse: the banner must not count on
    qtbot.waitUntil(lambda: not window.emergency_banner.isVisible())
    assert window.vms.record.record is None
    search_and_open(qtbot, window, window.vms.session.workstation.store.patient("p03").mrn)
    assert window.vms.record.record is None and window.record.denial.isVisible()


NOTE = "Patient reports dizziness on stairs since Monday; check rate response"


def type_note(qtbot, w: MainWindow, text: str = NOTE) -> None:  # noqa: ANN001
    qtbot.keyClicks(w.record.editor, text)


def open_patient(qtbot, w: MainWindow, patient_id: str) -> None:  # noqa: ANN001
    search_and_open(qtbot, w, w.vms.session.workstation.store.patient(patient_id).mrn)
    assert w.vms.record.record is not None and w.vms.record.record.patient_id == patient_id


def test_a_draft_survives_the_idle_lock_and_comes_back_to_the_same_user(
    qtbot, window: MainWindow, clock: Clock
) -> None:
    sign_in(qtbot, window, "dr_aly")
    open_patient(qtbot, window, "p02")
    type_note(qtbot, window)
    clock.advance(seconds=601)
    qtbot.waitUntil(lambda: window.stack.currentIndex() == 0)
    assert not [e for e in window.findChildren(type(window.record.editor)) if NOTE in e.toPlainText()]
    sign_in(qtbot, window, "dr_aly")  # the same user: back to the record, the note in the editor
    assert window.vms.record.record.patient_id == "p02"
    assert window.record.editor.toPlainText() == NOTE and "unsaved note" in window.record.draft_note.text()


def test_a_draft_is_the_users_own_across_a_user_switch(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_aly")
    open_patient(qtbot, window, "p01")
    type_note(qtbot, window)
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "nurse_nia")  # on the same patient's care team
    open_patient(qtbot, window, "p01")
    assert window.record.editor.toPlainText() == "" and not window.record.draft_note.isVisible()
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "dr_aly")
    open_patient(qtbot, window, "p01")
    assert window.record.editor.toPlainText() == NOTE and window.record.note_type.currentData() == "full"


def test_a_draft_survives_the_end_of_an_emergency_access(qtbot, window: MainWindow, clock: Clock) -> None:
    sign_in(qtbot, window, "er_eli")
    break_glass(qtbot, window)
    type_note(qtbot, window, "Emergency: intermittent loss of capture")
    for _ in range(61):  # at the keyboard the whole time: the window, not the idle lock, ends it
        clock.advance(minutes=1)
        window.vms.session.user_activity()
        qtbot.wait(25)
    qtbot.waitUntil(lambda: window.vms.break_glass.emergency is None)
    assert window.vms.record.record is None and "unsaved note is kept" in window.statusBar().currentMessage()
    break_glass(qtbot, window)
    assert window.record.editor.toPlainText() == "Emergency: intermittent loss of capture"
    assert window.record.note_type.currentData() == "emergency"


def test_a_draft_survives_a_restart(qtbot, window: MainWindow, clock: Clock) -> None:
    from app.services.workstation import Workstation
    from app.viewmodels.app_vm import ViewModels

    ws = window.vms.session.workstation
    sign_in(qtbot, window, "dr_aly")
    open_patient(qtbot, window, "p02")
    type_note(qtbot, window)
    window.close()
    again = Workstation(ws.data_dir, clock=clock.now, monotonic=clock.monotonic)
    restarted = MainWindow(ViewModels.build(again, clock=clock.monotonic, tick_ms=20))
    qtbot.addWidget(restarted)
    restarted.show()
    sign_in(qtbot, restarted, "dr_aly")
    open_patient(qtbot, restarted, "p02")
    assert restarted.record.editor.toPlainText() == NOTE


def test_saving_confirms_keeps_the_place_and_clears_the_draft(qtbot, window: MainWindow) -> None:
    window.resize(1200, 700)
    sign_in(qtbot, window, "dr_aly")
    open_patient(qtbot, window, "p02")
    bar = window.record.scroll.verticalScrollBar()
    window.record.scroll.ensureWidgetVisible(window.record.save)
    qtbot.waitUntil(lambda: bar.value() > 0)
    where = bar.value()
    type_note(qtbot, window)
    click(qtbot, window.record.save)
    assert window.vms.record.record.view.notes[0]["text"] == NOTE
    assert "Note saved at" in window.record.draft_note.text() and window.record.draft_note.isVisible()
    qtbot.waitUntil(lambda: bar.value() == where)  # the record did not jump to the top
    assert window.vms.session.workstation.store.draft("dr_aly", "p02") is None
    assert window.record.editor.toPlainText() == ""


def test_a_firmware_version_is_checked_as_it_is_typed(qtbot, window: MainWindow) -> None:
    ws = window.vms.session.workstation
    sign_in(qtbot, window, "dr_aly")
    open_patient(qtbot, window, "p01")
    request = window.record.firmware_buttons["request_firmware_update"]
    version = window.record.firmware_version
    assert version.isEnabled() and not request.isEnabled()  # nothing typed yet
    qtbot.keyClicks(version, "banana")
    assert "not a released version" in version.problem.text() and not request.isEnabled()
    assert ws.store.device_for("p01")["model"] in version.problem.text()
    version.selectAll()
    qtbot.keyClicks(version, "4.3.0")
    assert version.problem.text() == "" and request.isEnabled()
    click(qtbot, request)
    assert ws.firmware.current(ws.store.device_for("p01")["id"]).target_version == "4.3.0"


def test_a_schedule_date_is_chosen_on_a_calendar_from_today_to_a_year_ahead(
    qtbot, window: MainWindow, clock: Clock
) -> None:
    ws = window.vms.session.workstation
    device = ws.store.device_for("p01")["id"]
    ws.firmware.step(ws.session.sign_in("eng_vic", DEMO_PASSWORD), "request_firmware_update", device, "4.4.0")
    ws.firmware.step(ws.session.sign_in("eng_max", DEMO_PASSWORD), "approve_firmware_update", device)
    ws.firmware.step(ws.session.sign_in("dr_aly", DEMO_PASSWORD), "approve_firmware_update", device)
    sign_in(qtbot, window, "eng_max")
    view = window.engineering
    row = [r.device_id for r in view.rows].index(device)
    click_cell(qtbot, view.table, row)
    day = view.schedule_date
    today = clock.now().date()
    assert day.isEnabled() and day.minimumDate().toString("yyyy-MM-dd") == today.isoformat()
    assert day.maximumDate().toString("yyyy-MM-dd") == (today + timedelta(days=365)).isoformat()
    day.setFocus()
    day.setCurrentSection(day.Section.DaySection)
    offered = day.date()
    qtbot.keyClick(day, Qt.Key.Key_Up)  # one day later than offered (a month's last day stays)
    chosen = day.date().toString("yyyy-MM-dd")
    assert offered.toString("yyyy-MM-dd") == (today + timedelta(days=1)).isoformat()
    last_of_month = offered.day() == offered.daysInMonth()
    assert chosen == (offered if last_of_month else offered.addDays(1)).toString("yyyy-MM-dd")
    click(qtbot, view.buttons["schedule_firmware_update"])
    scheduled = next(r for r in ws.audit.records() if r.event_type == "firmware_scheduled")
    assert scheduled.details["scheduled_for"] == chosen


def test_the_idle_lock_closes_any_open_dialog_of_the_record(qtbot, window: MainWindow, clock: Clock) -> None:
    p02 = window.vms.session.workstation.store.patient("p02")

    def lock() -> None:
        clock.advance(seconds=601)
        qtbot.waitUntil(lambda: window.stack.currentIndex() == 0)
        shown = [w for w in QApplication.topLevelWidgets() if w.isVisible() and w is not window]
        assert not shown, [w.windowTitle() for w in shown]
        assert p02.name not in " ".join(label.text() for label in window.findChildren(QLabel) if label.isVisible())

    sign_in(qtbot, window, "dr_aly")
    open_patient(qtbot, window, "p02")
    click(qtbot, window.record.firmware_buttons["approve_firmware_update"])
    question = window.record.confirmation
    qtbot.waitUntil(question.isVisible)
    lock()
    assert not question.isVisible()
    assert window.vms.session.workstation.firmware.current("d-p02").state == "requested"  # nothing was done
    sign_in(qtbot, window, "dr_aly")  # back to the record
    dialog = open_dialog(qtbot, window.record.delegate, window.record, "delegation_dialog")
    lock()
    assert not dialog.isVisible()


def test_the_banner_stops_when_the_policies_stop_the_access_before_its_time(qtbot, window: MainWindow) -> None:
    """The account changes under a running emergency access (moved to another hospital): the engine
    refuses from then on, so the banner does not go on counting beside a refused record."""
    ws = window.vms.session.workstation
    sign_in(qtbot, window, "er_eli")
    break_glass(qtbot, window)
    assert window.emergency_banner.isVisible()
    ws.store.db["staff"].update("er_eli", {"hospital_ids": '["h2"]'})
    qtbot.waitUntil(lambda: not window.emergency_banner.isVisible())
    assert window.vms.record.record is None and window.vms.break_glass.emergency is None
    assert "no longer allow" in window.statusBar().currentMessage()
    ended = [r for r in ws.chain.records() if r.event_type == "break_glass_ended"]
    assert [r.details["why"] for r in ended] == ["no longer allowed by the policies"] and ended[0].effect == ""
