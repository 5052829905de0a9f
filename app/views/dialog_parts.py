"""Pieces every workflow dialog has: an action button beside Cancel/Close, and a message line
that says in words why something did not happen."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPushButton


def action_buttons(
    dialog: QDialog,
    label: str,
    on_accept: Callable[[], None],
    dismiss: QDialogButtonBox.StandardButton = QDialogButtonBox.StandardButton.Cancel,
) -> tuple[QDialogButtonBox, QPushButton]:
    """The dialog's button row: ``label`` runs ``on_accept`` (which decides whether to close)."""
    buttons = QDialogButtonBox()
    accept = buttons.addButton(label, QDialogButtonBox.ButtonRole.AcceptRole)
    buttons.addButton(dismiss)
    buttons.accepted.connect(on_accept)
    buttons.rejected.connect(dialog.reject)
    return buttons, accept


def message_line(error: bool = True) -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    if error:
        label.setStyleSheet("color: #b3261e")
    return label
