"""Every control has an accessible name, for every role: the test signs each demo user in as a
person does, opens the first patient of their list (when they have one), shows each tab, and walks
the main window's widgets, asking Qt's accessibility layer (what a screen reader reads) for the
name of every control in sight. The parts of a composite control (a table's header, a scroll bar,
a date field's inner line edit) are named by their control."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QHeaderView,
    QLineEdit,
    QPlainTextEdit,
    QScrollBar,
    QTabBar,
    QTabWidget,
    QTextEdit,
    QWidget,
)

from app.views.main_window import MainWindow
from tests.app.helpers import click, click_cell, sign_in

CONTROLS = (
    QAbstractButton,
    QLineEdit,
    QComboBox,
    QAbstractSpinBox,
    QPlainTextEdit,
    QTextEdit,
    QAbstractItemView,
    QAbstractSlider,
    QTabBar,
)
ROLES = ["dr_aly", "nurse_nia", "er_eli", "eng_max", "co_cora", "admin_hal", "gina", "pt_p02"]


def is_control(widget: QWidget) -> bool:
    """A widget a person operates: a control class, or anything that takes focus with Tab."""
    if isinstance(widget, (QScrollBar, QHeaderView)) or widget.objectName().startswith("qt_"):
        return False  # a part of a composite control, named by it
    return isinstance(widget, CONTROLS) or bool(widget.focusPolicy() & Qt.FocusPolicy.TabFocus)


def unnamed(w: MainWindow) -> list[str]:
    found = []
    for widget in w.findChildren(QWidget):
        if not widget.isVisibleTo(w) or not is_control(widget):
            continue
        face = QAccessible.queryAccessibleInterface(widget)
        if face is None or not face.text(QAccessible.Text.Name).strip():
            text = widget.text() if isinstance(widget, QAbstractButton) else ""
            found.append(f"{type(widget).__name__} {text!r} in {type(widget.parent()).__name__}")
    return found


def every_tab(qtbot, w: MainWindow) -> list[str]:  # noqa: ANN001
    """The unnamed controls of each tab of each tabbed view in sight, each tab chosen by a click."""
    found = unnamed(w)
    for tabs in [t for t in w.findChildren(QTabWidget) if t.isVisibleTo(w)]:
        bar = tabs.tabBar()
        for index in range(tabs.count()):
            qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
            assert tabs.currentIndex() == index
            found += unnamed(w)
    return found


@pytest.mark.parametrize("user_id", ROLES)
def test_every_control_in_sight_has_an_accessible_name(qtbot, window: MainWindow, user_id: str) -> None:
    assert unnamed(window) == []  # the sign-in screen
    sign_in(qtbot, window, user_id)
    assert window.vms.session.user is not None
    table = window.patients.table
    if table.isVisibleTo(window) and table.rowCount():
        click_cell(qtbot, table, 0, 1, double=True)
        qtbot.waitUntil(lambda: window.vms.record.record is not None)  # the record, its alerts and charts
    missing = sorted(set(every_tab(qtbot, window)))
    assert missing == [], f"{user_id}: controls without an accessible name"
    click(qtbot, window.switch_user)
