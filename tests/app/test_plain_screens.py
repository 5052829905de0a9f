"""The rough edges a ward would notice last (issue 18): an empty list or table says why in words,
readings read in plain language, the status bar says what is true and leaves the message its
room, and the demo's sign-in list offers only the accounts the policies let a person sign in with."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from app.services.users import DEMO_PASSWORD
from app.services.workstation import Workstation
from app.viewmodels.app_vm import ViewModels
from app.views.main_window import STATUS_SHARE, MainWindow
from tests.app.helpers import choose, click, click_cell, open_dialog, search_and_open, sign_in

WHY = "Collapsed in the ER; need device settings now."


def test_an_empty_review_queue_says_so_in_words_until_a_session_waits(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "co_cora")
    view = window.compliance
    assert view.table.rowCount() == 0 and view.empty.shown
    assert view.empty.text().startswith("Nothing waits for review") and view.detail.text() == ""
    click(qtbot, window.switch_user)
    ws = window.vms.session.workstation
    eli = ws.session.sign_in("er_eli", DEMO_PASSWORD)
    ws.break_glass.start(eli, "p03", "ETREAT", WHY, DEMO_PASSWORD)  # what the review is about
    sign_in(qtbot, window, "co_cora")
    assert view.table.rowCount() == 1 and not view.empty.shown
    assert view.table.item(0, 5).text() == "Emergency treatment (ETREAT)"  # the purpose in words, not its code
    assert view.detail.text() == "Select an event to see its context."
    click_cell(qtbot, view.table, 0)
    detail = view.detail.text()
    assert WHY in detail and "Open for 0 min" in detail and "Ended:" not in detail  # not "still open" twice
    assert "(er physician)" in detail and "Emergency access opened: Emergency treatment (ETREAT)" in detail


def test_an_empty_patient_list_says_why_inside_it_and_a_search_without_match_says_what_to_do(
    qtbot, window: MainWindow
) -> None:
    sign_in(qtbot, window, "er_eli")
    note = window.patients.empty
    assert window.patients.table.rowCount() == 0 and note.shown and "break-glass" in note.text()  # the policies'
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "dr_aly")
    assert window.patients.table.rowCount() > 0 and not note.shown
    qtbot.keyClicks(window.patients.search, "nobody by this name")
    assert window.patients.table.rowCount() == 0 and note.shown
    assert note.text().startswith("None of your patients matches this search. Press Enter")


def test_emergency_access_says_its_purpose_in_words_and_clears_the_refusal_message(qtbot, window: MainWindow) -> None:
    p03 = window.vms.session.workstation.store.patient("p03")
    sign_in(qtbot, window, "er_eli")
    search_and_open(qtbot, window, p03.mrn)
    assert "break-glass" in window.statusBar().currentMessage()  # the refusal, said
    dialog = open_dialog(qtbot, window.record.emergency_button, window.record, "dialog")
    choose(dialog.reason, "ETREAT")
    qtbot.keyClicks(dialog.justification, WHY)
    qtbot.keyClicks(dialog.password, DEMO_PASSWORD)
    click(qtbot, dialog.confirm)
    click(qtbot, dialog.grant)
    text = window.emergency_banner.text.text()
    assert "(break-glass: Emergency treatment)" in text and "ETREAT" not in text
    assert window.statusBar().currentMessage() == ""  # the refusal is no longer true: not left under the record


def test_a_record_without_alerts_says_so_and_offers_nothing_to_act_on(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_aly")
    quiet = next(i for i, row in enumerate(window.vms.patients.rows) if not row.alerts.alerts)
    click_cell(qtbot, window.patients.table, quiet, 1, double=True)
    panel = window.record.alerts
    assert panel.none.isVisible() and panel.title() == "Alerts"
    assert not any(c.isVisible() for c in (panel.table, panel.acknowledge, panel.outcome, panel.comment, panel.triage))


def test_no_delegation_is_said_in_words_and_a_granted_one_replaces_them(qtbot, window: MainWindow) -> None:
    ws = window.vms.session.workstation
    sign_in(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, ws.store.patient("p01").mrn)
    dialog = open_dialog(qtbot, window.record.delegate, window.record, "delegation_dialog")
    assert dialog.current.count() == 0 and dialog.none.shown and "delegation" in dialog.none.text()
    qtbot.mouseClick(dialog.permission, Qt.MouseButton.LeftButton)
    click(qtbot, dialog.grant)
    assert dialog.current.count() == 1 and not dialog.none.shown and dialog.current.wordWrap()


def test_notes_name_their_author_and_kind_not_their_codes(qtbot, window: MainWindow) -> None:
    ws = window.vms.session.workstation
    sign_in(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, ws.store.patient("p02").mrn)
    notes = window.record.notes
    texts = [notes.item(i).text() for i in range(notes.count())]
    assert texts and not window.record.no_notes.shown
    authors = [ws.store.staff(n["author_id"]) for n in window.vms.record.record.view.notes]
    for text, author in zip(texts, authors, strict=True):
        assert f" UTC · {author['name']} ({author['id']}) · Full note: " in text and "T" not in text[:16], text
    assert notes.wordWrap()  # a long note is read whole


def test_the_history_dates_the_implantation_as_the_device_panel_does(qtbot, window: MainWindow) -> None:
    store = window.vms.session.workstation.store
    sign_in(qtbot, window, "dr_aly")
    implanted = next(
        row.patient.id
        for row in window.vms.patients.rows
        if any(h["summary"].startswith("Pacemaker implantation") for h in store.history_for(row.patient.id))
    )
    search_and_open(qtbot, window, store.patient(implanted).mrn)
    texts = [label.text() for label in window.record.body().findChildren(QLabel) if label.isVisibleTo(window.record)]
    device = next(t for t in texts if " · implanted " in t)
    day = device.rsplit("implanted ", 1)[1]
    assert f"{day} — Pacemaker implantation, uneventful." in texts


def test_the_report_tab_shows_no_idle_progress_bar(qtbot, window: MainWindow) -> None:
    """Busy only while a report is made: never a full bar reading "100%" beside the buttons."""
    sign_in(qtbot, window, "co_cora")
    view = window.compliance
    view.setCurrentIndex(1)
    assert not view.busy.isVisible()
    click(qtbot, view.generate)
    qtbot.waitUntil(lambda: view.report is not None)
    assert not view.busy.isVisible() and not view.busy.isTextVisible()


def test_the_patient_reads_her_readings_in_plain_words_and_plurals(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "pt_p02")
    table = window.personal.readings
    rows = {
        table.item(i, 0).text(): (table.item(i, 1).text(), table.item(i, 2).text()) for i in range(table.rowCount())
    }
    latest, usual = rows["Fast or irregular heartbeat episodes"]
    assert latest in ("0 episodes", "1 episode") or latest.endswith(" episodes")
    assert usual == "up to 1 episode"
    assert rows["Average heart rate"][1] == "50 to 100 per minute" and rows["Average heart rate"][0].endswith(
        " per minute"
    )
    assert rows["Battery time left"][1] == "12 to 180 months"
    every = " ".join(" ".join(pair) for pair in rows.values())
    assert "1 episodes" not in every and "/min" not in every and " 1 months" not in every
    assert not window.personal.no_readings.shown


def test_the_built_in_policies_are_called_what_they_are_not_offline(qtbot, window: MainWindow) -> None:
    text = window.status_label.text()
    assert text.startswith("Policies: built-in demo set · ") and "offline" not in text and "bundled" not in text


def test_a_long_status_wraps_and_leaves_the_message_its_room_at_1400_px(qtbot, tmp_path: Path) -> None:
    """The status line (here with a long repaired-directory notice) keeps to its share of the
    window and wraps; a reminder from compliance on the left is shown whole beside it."""
    notice = "the audit log /var/lib/ccc-workstation/a-long-directory-name/audit.db was readable by other accounts"
    ws = Workstation(tmp_path / "data", data_dir_warnings=[notice])
    w = MainWindow(ViewModels.build(ws))
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    eli = ws.session.sign_in("er_eli", DEMO_PASSWORD)
    ws.break_glass.start(eli, "p03", "ETREAT", WHY, DEMO_PASSWORD)
    sign_in(qtbot, w, "co_cora")
    click_cell(qtbot, w.compliance.table, 0)
    qtbot.keyClicks(w.compliance.comment, "Please ask for the right role next time.")
    click(qtbot, w.compliance.step_buttons["remind"])
    click(qtbot, w.switch_user)
    sign_in(qtbot, w, "er_eli")
    message = w.statusBar().currentMessage()
    assert message.startswith("From compliance: Please ask for the right role")
    label = w.status_label
    qtbot.waitUntil(lambda: label.width() <= 1400 * STATUS_SHARE)
    assert notice in label.text() and label.height() >= label.heightForWidth(label.width())  # wrapped, whole
    room = w.statusBar().width() - label.width()
    assert label.fontMetrics().horizontalAdvance(message) < room - 20


def test_the_sign_in_list_offers_people_not_the_gateways_service_account(qtbot, window: MainWindow) -> None:
    """Who may sign in is the policies' ``sign_in`` on the workstation (the gateway is refused
    there), so the list is theirs: no role name decides it in the app."""
    listed = [window.sign_in.user.itemData(i) for i in range(window.sign_in.user.count())]
    staff = window.vms.session.workstation.store.staff_ids()
    assert "rm_gateway" not in listed and listed == [s for s in staff if s != "rm_gateway"]


def test_the_sign_in_screen_keeps_no_empty_lines_for_messages_not_said(qtbot, window: MainWindow) -> None:
    """A failed sign-in is said where it happened; an empty message line takes no room."""
    error = window.sign_in.error
    assert not error.isVisible() and not window.sign_in.waiting.isVisible()
    sign_in(qtbot, window, "dr_aly", "not the password")
    assert error.isVisible() and error.text().startswith("Sign-in failed")
    sign_in(qtbot, window, "dr_aly")
    click(qtbot, window.switch_user)
    assert not error.isVisible() and error.text() == ""
