"""A clinician saves a note while the data directory's disk is full (issue 16, part 8), driven
through the real window: the status bar says the disk is full and where, the note is not in the
record, the window goes on, and once space is freed the same note saves. Before, the exception
escaped the button's slot and the user was told nothing."""

from __future__ import annotations

import itertools
from pathlib import Path

from app.services.users import DEMO_PASSWORD
from app.services.workstation import Workstation
from app.viewmodels.app_vm import ViewModels
from app.views.main_window import MainWindow
from tests.app.helpers import Clock, choose, click, click_cell, open_dialog, save_report_pdf, search_and_open, sign_in
from tests.support.disks import fill, small_disk


def test_disk_full_saving_a_note_tells_the_clinician_and_saves_nothing(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    clock = Clock()
    with small_disk(tmp_path / "disk", size="8m") as disk:
        ws = Workstation(disk / "data", clock=clock.now, monotonic=clock.monotonic)
        window = MainWindow(ViewModels.build(ws, clock=clock.monotonic, tick_ms=20))
        qtbot.addWidget(window)
        window.show()
        sign_in(qtbot, window, "dr_aly")
        click_cell(qtbot, window.patients.table, 0, 1, double=True)
        before = list(window.vms.record.record.view.notes)
        filler = fill(disk)
        text = "Lead impedance stable. " * 200  # more than the free pages left in either file
        qtbot.keyClicks(window.record.editor, text)
        click(qtbot, window.record.save)
        shown = window.statusBar().currentMessage()
        assert "the disk is full" in shown and str(disk / "data") in shown, shown
        assert window.vms.record.record.view.notes == before
        filler.unlink()
        click(qtbot, window.record.save)
        assert window.vms.record.record.view.notes[0]["text"] == text.strip()
        ws.store.close()
        ws.chain.close()


def test_disk_full_starting_break_glass_says_so_in_the_dialog_and_starts_nothing(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    """Emergency access on a full disk: the dialog says the disk is full and where, no session
    starts (it could not be recorded), the justification stays typed, and once space is freed the
    same click starts it."""
    clock = Clock()
    with small_disk(tmp_path / "disk", size="8m") as disk:
        ws = Workstation(disk / "data", clock=clock.now, monotonic=clock.monotonic)
        window = MainWindow(ViewModels.build(ws, clock=clock.monotonic, tick_ms=20))
        qtbot.addWidget(window)
        window.show()
        sign_in(qtbot, window, "er_eli")
        patient = ws.store.patient("p03")
        search_and_open(qtbot, window, patient.mrn)
        dialog = open_dialog(qtbot, window.record.emergency_button, window.record, "dialog")
        click(qtbot, dialog.confirm)  # the patient checked against the wristband
        # long (a big record to write) and in words of its own, as the policies require
        words = ("".join(p) for p in itertools.product(("ka", "lo", "mi", "ne", "su", "ta", "ri", "vo"), repeat=3))
        justification = "Collapsed in the ER; need device settings and rhythm history now: " + " ".join(words)
        qtbot.keyClicks(dialog.justification, justification)
        qtbot.keyClicks(dialog.password, DEMO_PASSWORD)
        filler = fill(disk)
        click(qtbot, dialog.grant)
        shown = dialog.error.text()
        assert "the disk is full" in shown and str(disk / "data") in shown, shown
        assert window.vms.break_glass.emergency is None and ws.store.open_break_glass_sessions("er_eli") == []
        assert dialog.justification.toPlainText() == justification
        filler.unlink()
        qtbot.keyClicks(dialog.password, DEMO_PASSWORD)
        click(qtbot, dialog.grant)
        assert window.vms.break_glass.emergency is not None and window.vms.record.record.patient_id == "p03"
        ws.store.close()
        ws.chain.close()


def test_disk_full_in_the_compliance_review_says_so_and_nothing_hangs(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    """The compliance officer on a full disk: a review step and a report's PDF each say the disk is
    full and where; the event stays open, the report stays on screen, and once space is freed the
    same clicks work. Before, both errors escaped their slots and were printed to nobody."""
    clock = Clock()
    with small_disk(tmp_path / "disk", size="8m") as disk:
        ws = Workstation(disk / "data", clock=clock.now, monotonic=clock.monotonic)
        eli = ws.session.sign_in("er_eli", DEMO_PASSWORD)
        ws.break_glass.start(eli, "p03", "BTG", "Collapsed in the ER; need device settings now.", DEMO_PASSWORD)
        window = MainWindow(ViewModels.build(ws, clock=clock.monotonic, tick_ms=20))
        qtbot.addWidget(window)
        window.show()
        sign_in(qtbot, window, "co_cora")
        view = window.compliance
        click_cell(qtbot, view.table, 0)
        qtbot.keyClicks(view.comment, "Accepted: documented emergency. " * 300)
        filler = fill(disk)
        click(qtbot, view.step_buttons["accept_review"])
        assert "the disk is full" in view.message.text() and str(disk / "data") in view.message.text()
        assert "needs review" in view.table.item(0, 0).text()

        filler.unlink()
        view.setCurrentIndex(1)
        choose(view.report_type, "break_glass")
        click(qtbot, view.generate)
        qtbot.waitUntil(lambda: view.report is not None, timeout=10_000)
        filler = fill(disk)
        shown = save_report_pdf(qtbot, view)
        assert shown.startswith("The report could not be saved to ") and str(disk / "data") in shown, shown
        filler.unlink()
        assert save_report_pdf(qtbot, view).startswith("Saved ")
        ws.store.close()
        ws.chain.close()
