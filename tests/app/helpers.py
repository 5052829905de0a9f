"""What a person does at the workstation, for the app's tests: only clicks and keys on the real
widgets (and picking an entry in a list, as a mouse would)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QApplication, QComboBox, QDialog, QLineEdit, QTableWidget

from app.services.users import DEMO_PASSWORD
from app.views.main_window import MainWindow


class Clock:
    """The wall and monotonic clocks of a test: they move together, when the test says so, and
    the real timers of the app read them."""

    def __init__(self) -> None:
        self.wall = datetime.now(UTC)
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, **delta: float) -> None:
        step = timedelta(**delta)
        self.wall += step
        self.mono += step.total_seconds()


def choose(combo: QComboBox, data: object) -> None:
    """Picks the entry whose data is ``data``, as a person picks it from the list."""
    index = combo.findData(data)
    assert index >= 0, f"{data!r} is not offered: {[combo.itemData(i) for i in range(combo.count())]}"
    combo.setCurrentIndex(index)


def click(qtbot, button: QAbstractButton) -> None:  # noqa: ANN001
    assert button.isVisible() and button.isEnabled(), f"{button.text()!r} cannot be clicked"
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def click_confirmed(qtbot, button: QAbstractButton, owner: object) -> None:  # noqa: ANN001
    """Clicks an irreversible step's button, then the step's own button in the confirmation it asks."""
    click(qtbot, button)
    confirmation = owner.confirmation
    qtbot.waitUntil(confirmation.isVisible)
    click(qtbot, confirmation.confirm_button)


def click_cell(qtbot, table: QTableWidget, row: int, column: int = 0, double: bool = False) -> None:  # noqa: ANN001
    """A click on the cell (``double``: a double-click, which opens a patient)."""
    table.scrollToItem(table.item(row, column))
    rect = table.visualItemRect(table.item(row, column))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    if double:  # the second click of a double-click
        qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def sign_in(qtbot, w: MainWindow, user_id: str, password: str = DEMO_PASSWORD) -> None:  # noqa: ANN001
    choose(w.sign_in.user, user_id)
    qtbot.keyClicks(w.sign_in.password, password)
    qtbot.keyClick(w.sign_in.password, Qt.Key.Key_Return)


def search_and_open(qtbot, w: MainWindow, mrn: str) -> None:  # noqa: ANN001
    """Types an MRN in the search (Ctrl+F) and presses Enter, as at the bedside."""
    w.patients.search.clear()
    qtbot.keyClicks(w.patients.search, mrn)
    qtbot.keyClick(w.patients.search, Qt.Key.Key_Return)


def open_dialog(qtbot, button: QAbstractButton, owner: object, attribute: str) -> QDialog:  # noqa: ANN001
    """Clicks the button that opens a dialog and returns the dialog it opened."""
    click(qtbot, button)
    dialog = getattr(owner, attribute)
    qtbot.waitUntil(dialog.isVisible)
    return dialog


def save_report_pdf(qtbot, view, path: str = "") -> str:  # noqa: ANN001
    """Clicks "Save as PDF…", pastes a path into the save dialog's file name when given (else
    keeps the name it offers, in the exports folder) and presses Enter; returns what the screen
    then says. (A path typed key by key makes Qt's dialog select each folder on the way.)"""
    click(qtbot, view.pdf)
    dialog = view.save_dialog
    qtbot.waitUntil(dialog.isVisible)
    name = dialog.findChild(QLineEdit, "fileNameEdit")
    if path:
        QApplication.clipboard().setText(path)
        name.selectAll()
        qtbot.keyClick(name, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(name, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not dialog.isVisible())
    return view.report_message.text()
