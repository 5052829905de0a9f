"""Patient identity on screen (issue 18, part 1), driven by clicks and keys on the real widgets:
the banner that stays in sight over a scrolled record, on refusals and in every dialog; the ER's
hospital-wide search by name and date of birth or partial MRN (identities only); break-glass that
names the patient and opens only once the clinician confirmed who it is; a review queue that names
the patient and the user."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

from app.services.patients import age_on
from app.services.users import DEMO_PASSWORD
from app.views.main_window import MainWindow
from tests.app.helpers import Clock, click, click_cell, open_dialog, search_and_open, sign_in

WHY = "Collapsed in the ER; need device settings and rhythm history now."


def search(qtbot, w: MainWindow, text: str) -> None:  # noqa: ANN001
    w.patients.search.clear()
    qtbot.keyClicks(w.patients.search, text)
    qtbot.keyClick(w.patients.search, Qt.Key.Key_Return)


def test_the_banner_names_the_patient_and_stays_in_sight_when_the_record_scrolls(
    qtbot, window: MainWindow, clock: Clock
) -> None:
    sign_in(qtbot, window, "dr_aly")
    window.resize(1200, 700)
    p = window.vms.session.workstation.store.patient("p02")
    search_and_open(qtbot, window, p.mrn)
    banner = window.record.banner
    age = age_on(p.birth_date, clock.now().date())
    for part in (p.name, f"{age} y", p.birth_date, p.sex, p.mrn, f"Room {p.room}, bed {p.bed}"):
        assert part in banner.text(), part
    level = window.vms.record.record.alert_level
    assert (
        banner.alert.isVisible()
        and {"red": "ALERT", "yellow": "Check", "none": "No alerts"}[level] in banner.alert.text()
    )
    top = banner.mapTo(window, banner.rect().topLeft())
    bar = window.record.scroll.verticalScrollBar()
    assert bar.maximum() > 0  # the record is longer than the window
    bar.setFocus()
    qtbot.keyClick(bar, Qt.Key.Key_End)  # to the bottom of the record
    qtbot.waitUntil(lambda: bar.value() == bar.maximum())
    assert banner.isVisible() and banner.mapTo(window, banner.rect().topLeft()) == top
    assert not window.record.scroll.isAncestorOf(banner)


def test_the_er_finds_a_patient_by_name_and_date_of_birth_and_break_glass_names_and_confirms_them(
    qtbot, window: MainWindow
) -> None:
    p03 = window.vms.session.workstation.store.patient("p03")
    sign_in(qtbot, window, "er_eli")
    search(qtbot, window, f"{p03.name.split()[0].lower()} {p03.name.split()[1][:4]} {p03.birth_date}")
    assert [i.patient_id for i in window.vms.patients.found.matches] == ["p03"]
    assert window.vms.record.record is None and "break-glass" in window.record.denial.text()  # refused: the chart
    banner = window.record.banner.text()
    assert p03.name in banner and p03.mrn in banner and p03.birth_date in banner
    assert not window.record.banner.alert.isVisible()  # a refusal shows nothing of the chart
    dialog = open_dialog(qtbot, window.record.emergency_button, window.record, "dialog")
    assert f"{p03.name} ({p03.mrn})" in dialog.windowTitle() and "p03" not in dialog.windowTitle()
    assert p03.birth_date in dialog.confirm.text() and p03.mrn in dialog.confirm.text()
    qtbot.keyClicks(dialog.justification, WHY)
    qtbot.keyClicks(dialog.password, DEMO_PASSWORD)
    assert not dialog.grant.isEnabled()  # not before the patient is confirmed
    click(qtbot, dialog.confirm)
    click(qtbot, dialog.grant)
    assert window.vms.record.record.patient_id == "p03"
    text = window.emergency_banner.text.text()
    assert f"{p03.name} ({p03.mrn})" in text and "p03" not in text


def test_a_partial_mrn_lists_identities_only_and_opening_one_asks_for_the_record(qtbot, window: MainWindow) -> None:
    store = window.vms.session.workstation.store
    sign_in(qtbot, window, "er_eli")
    search(qtbot, window, "MRN-H1-1001")  # several patients of her hospital, none of h2
    found = window.patients.found
    matches = window.vms.patients.found.matches
    assert found.isVisible() and len(matches) > 1 and found.rowCount() == len(matches)
    assert all(store.patient(i.patient_id).hospital_id == "h1" for i in matches)
    assert window.vms.record.record is None and not window.record.banner.isVisible()
    shown = {found.item(r, c).text() for r in range(found.rowCount()) for c in range(found.columnCount())}
    assert matches[0].name in shown and matches[0].mrn in shown
    assert not any("transmission" in t.lower() or "ALERT" in t for t in shown)  # identities, no chart data
    click_cell(qtbot, found, 1, 0, double=True)
    assert window.record.denial.isVisible() and matches[1].mrn in window.record.banner.text()


def test_a_name_alone_or_another_hospitals_patient_finds_nothing_and_says_what_to_type(
    qtbot, window: MainWindow
) -> None:
    store = window.vms.session.workstation.store
    sign_in(qtbot, window, "er_eli")
    search(qtbot, window, store.patient("p03").name)
    assert "date of birth" in window.statusBar().currentMessage() and window.vms.patients.found.matches == []
    assert "date of birth" in window.patients.found_title.text() and not window.patients.found.isVisible()
    h2 = next(p for p in store.patients(["h2"]))
    search(qtbot, window, h2.mrn)
    assert window.vms.patients.found.matches == [] and window.vms.record.record is None
    assert "No patient you may look up matches" in window.statusBar().currentMessage()
    assert not [w for w in window.findChildren(type(window.patients.found_title)) if h2.name in w.text()]


def test_dialogs_show_the_patient_banner(qtbot, window: MainWindow) -> None:
    p02 = window.vms.session.workstation.store.patient("p02")
    sign_in(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, p02.mrn)
    for button, attribute, dismiss in (
        (window.record.delegate, "delegation_dialog", QDialogButtonBox.StandardButton.Close),
        (window.record.consent, "consent_dialog", QDialogButtonBox.StandardButton.Cancel),
    ):
        dialog = open_dialog(qtbot, button, window.record, attribute)
        banner = dialog.findChild(type(window.record.banner))
        assert banner.isVisible() and p02.name in banner.text() and p02.mrn in banner.text(), attribute
        click(qtbot, dialog.findChild(QDialogButtonBox).button(dismiss))


def test_the_review_queue_names_the_user_and_the_patient(qtbot, window: MainWindow) -> None:
    ws = window.vms.session.workstation
    p03 = ws.store.patient("p03")
    sign_in(qtbot, window, "er_eli")
    search_and_open(qtbot, window, p03.mrn)
    dialog = open_dialog(qtbot, window.record.emergency_button, window.record, "dialog")
    click(qtbot, dialog.confirm)
    qtbot.keyClicks(dialog.justification, WHY)
    qtbot.keyClicks(dialog.password, DEMO_PASSWORD)
    click(qtbot, dialog.grant)
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "co_cora")
    table = window.compliance.table
    row = next(r for r in range(table.rowCount()) if "Emergency access opened" in table.item(r, 3).text())
    assert table.item(row, 2).text() == "Dr. Eli Sato (er_eli)"
    assert table.item(row, 4).text() == f"{p03.name} ({p03.mrn})"
    click_cell(qtbot, table, row, 0)
    assert p03.name in window.compliance.detail.text() and "Dr. Eli Sato" in window.compliance.detail.text()
