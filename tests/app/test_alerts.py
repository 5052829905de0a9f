"""Alerts you can act on, as a clinician meets them: the patient list says each patient's alerts in
words (a column and a tooltip: value, limit, since when), the record lists them with their state
in words and symbols, and Acknowledge and Record triage write the audit log, as the policies allow;
a refusal is shown in the policies' words."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton

from app import main as app_main
from app.services import alerts
from app.views.main_window import MainWindow
from tests.app.helpers import choose, click, search_and_open, sign_in

SEED_PATIENT = "p02"  # Dr. Aly's, a lead problem (red), Gina her delegate


def list_row(w: MainWindow, patient_id: str) -> int:
    table = w.patients.table
    return next(r for r in range(table.rowCount()) if table.item(r, 1).data(Qt.ItemDataRole.UserRole) == patient_id)


def audit(w: MainWindow) -> list:  # noqa: ANN001
    return list(w.vms.session.workstation.audit.records())


def open_patient(qtbot, w: MainWindow, patient_id: str) -> None:  # noqa: ANN001
    search_and_open(qtbot, w, w.vms.session.workstation.store.patient(patient_id).mrn)
    qtbot.waitUntil(lambda: w.vms.record.record is not None and w.vms.record.record.patient_id == patient_id)


def test_the_list_says_each_patients_alerts_in_words_in_a_column_and_a_tooltip(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_aly")
    table = window.patients.table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers[:3] == ["Alert", "Patient", "Alerts in words"]
    row = list_row(window, SEED_PATIENT)
    assert table.item(row, 0).text() == "⚠ Red · 2 new"  # a symbol and a word, not colour alone
    assert "RV lead impedance out of range" in table.item(row, 2).text()
    tip = table.item(row, 1).toolTip()
    assert "⚠ Red alert: RV lead impedance out of range:" in tip
    assert "above the normal range 200–2000 Ω" in tip and "since " in tip and "● New" in tip
    quiet = next(r for r in range(table.rowCount()) if not table.item(r, 0).text())
    assert table.item(quiet, 0).toolTip() == "No alerts in these transmissions."


def test_the_alerts_in_words_are_in_sight_in_a_1400_pixel_window(qtbot, window: MainWindow) -> None:
    """Beside the name, where the list's width allows them at the app's size (no scrolling)."""
    window.resize(1400, 900)
    sign_in(qtbot, window, "dr_aly")
    table = window.patients.table
    qtbot.waitUntil(lambda: table.rowCount() > 0)
    for column in (2, 3):  # the alerts in words, and the MRN after them
        right = table.columnViewportPosition(column) + table.columnWidth(column)
        assert right <= table.viewport().width(), f"{window.patients.COLUMNS[column]} cut off or needs scrolling"
    assert table.columnWidth(2) >= 120


def test_the_record_states_each_alert_and_acknowledge_and_triage_are_audited(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "dr_aly")
    open_patient(qtbot, window, SEED_PATIENT)
    panel = window.record.alerts
    assert panel.title() == "Alerts (2 new)"
    cells = [[panel.table.item(r, c).text() for c in range(5)] for r in range(panel.table.rowCount())]
    tier, what, finding, since, state = cells[0]
    assert tier == "⚠ Red: act today" and what == "RV lead impedance out of range"
    assert "above the normal range 200–2000 Ω" in finding and since.startswith("since ") and "UTC" in since
    assert state == "● New: not yet acknowledged."
    assert "▲ Yellow" in cells[1][0] and "baseline" in cells[1][2]
    banner = window.record.banner.alert.text()
    assert "ALERT (red)" in banner and "RV lead impedance" in banner
    for control in (panel.acknowledge, panel.outcome, panel.comment, panel.triage, panel.table):
        assert control.accessibleName()

    alert_id = window.vms.record.record.alerts[0].id
    click(qtbot, panel.acknowledge)  # the first new alert is selected
    event = [r for r in audit(window) if r.event_type == "alert_acknowledged"][-1]
    assert (event.event_type, event.principal_id, event.details["alert_id"]) == (
        "alert_acknowledged",
        "dr_aly",
        alert_id,
    )
    panel = window.record.alerts
    assert panel.table.item(0, 4).text().startswith("✓ Acknowledged by Dr. Aly Rahman (dr_aly) at ")
    assert "Acknowledged: RV lead impedance out of range" in panel.done.text() and panel.done.isVisible()
    assert panel.title() == "Alerts (1 new)"
    assert window.patients.table.item(list_row(window, SEED_PATIENT), 0).text() == "▲ Yellow · 1 new"
    assert "▲ Check (yellow)" in window.record.banner.alert.text()

    panel.table.selectRow(0)  # the acknowledged alert: triaged now
    assert not panel.acknowledge.isEnabled() and not panel.triage.isEnabled()  # no outcome chosen yet
    choose(panel.outcome, "contact_patient")
    qtbot.keyClicks(panel.comment, "Lead check booked")
    click(qtbot, panel.triage)
    event = [r for r in audit(window) if r.event_type == "alert_triaged"][-1]
    assert (event.details["alert_id"], event.details["disposition"]) == (alert_id, "contact_patient")
    state = window.record.alerts.table.item(0, 4).text()
    assert state.startswith("✔ Triaged: Contact the patient, by Dr. Aly Rahman (dr_aly)")
    assert "Lead check booked" in state


def test_a_refusal_is_shown_in_the_policies_words(qtbot, window: MainWindow) -> None:
    # a nurse of the care team triages, but closing an alert with no action is the physician's
    sign_in(qtbot, window, "nurse_nia")
    open_patient(qtbot, window, "p01")
    panel = window.record.alerts
    assert panel.acknowledge.isEnabled()
    choose(panel.outcome, "no_action")
    click(qtbot, panel.triage)
    assert "Closing an alert with no action is a physician's decision" in panel.reason.text()
    last = audit(window)[-1]
    assert (last.kind, last.action, last.effect) == ("decision", "triage_alert", "EFFECT_DENY")
    assert not [r for r in audit(window) if r.event_type == "alert_triaged"]
    assert window.record.alerts.table.item(0, 4).text().startswith("● New")


def test_a_delegate_sees_the_alerts_explained_simply_and_nothing_to_act_on(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "gina")
    view = window.personal
    assert window.workspaces.currentWidget() is view and window.vms.personal.page.patient_id == SEED_PATIENT
    alerts = view.alerts.text()
    assert alerts.count("needs a look since") == 1  # one line a reading, the most urgent alert's
    assert "The wire (lead) to your heart" in alerts and "Your clinic has been alerted" in alerts
    assert not [b for b in view.findChildren(QPushButton) if "acknowledge" in b.text().lower()]


def test_a_wrong_rules_file_stops_the_start_and_says_which_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "alert_rules.yaml"
    wrong.write_text(alerts.RULES_FILE.read_text().replace("tier: red", "tier: crimson", 1))
    monkeypatch.setattr(alerts, "RULES_FILE", wrong)
    shot = tmp_path / "shot.png"
    code = app_main.main(["--data-dir", str(tmp_path / "data"), "--screenshot", str(shot), "--user", "dr_aly"])
    assert code == 2 and not shot.exists()
    said = capsys.readouterr().err
    assert f"CCC Workstation cannot start: {wrong}: rule 1 (lead_impedance_out_of_range): 'tier' must be" in said
