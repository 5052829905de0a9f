"""Pieces every workflow dialog has: an action button beside Cancel/Close, a message line that
says in words why something did not happen, a duration in days, and the box a form ticks when the
policies ask it to (remedy "complete_form")."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QWidget,
)

from app.viewmodels.record_vm import Decision, Identity, offered
from app.views.patient_banner import PatientBanner


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


class Confirmation(QMessageBox):
    """An irreversible step asked once more, in words, with Cancel as the default (Enter or a
    stray click does not confirm). Window-modal and non-blocking: ``on_confirm`` runs when the
    step's own button is clicked."""

    def __init__(self, parent: QWidget, title: str, text: str, action: str, on_confirm: Callable[[], None]) -> None:
        super().__init__(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Cancel, parent)
        self.confirm_button = self.addButton(action, QMessageBox.ButtonRole.AcceptRole)
        self.setDefaultButton(QMessageBox.StandardButton.Cancel)
        self.confirm_button.clicked.connect(on_confirm)

    @property
    def cancel_button(self) -> QPushButton:
        return self.button(QMessageBox.StandardButton.Cancel)


def confirm(parent: QWidget, title: str, text: str, action: str, on_confirm: Callable[[], None]) -> Confirmation:
    box = Confirmation(parent, title, text, action, on_confirm)
    box.open()
    return box


class Said(QLabel):
    """A line of words (a refusal, a problem) that takes no room while it says nothing: an empty
    line would leave a gap in its panel. Shown again as soon as it has words."""

    def __init__(self, text: str = "", error: bool = False) -> None:
        super().__init__()
        self.setWordWrap(True)
        if error:
            self.setStyleSheet("color: #b3261e")
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's naming
        super().setText(text)
        if not text:
            self.hide()
        elif self.parent() is not None:  # never shown as a window of its own
            self.show()

    def clear(self) -> None:
        self.setText("")


def message_line(error: bool = True) -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    if error:
        label.setStyleSheet("color: #b3261e")
    return label


def patient_banner(identity: Identity | None) -> PatientBanner:
    """The banner of the patient a dialog concerns (identity only, never chart data)."""
    banner = PatientBanner()
    banner.show_identity(identity, None, "the policies do not let you look this patient up.")
    return banner


def days_box(maximum: int, default: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(1, maximum)
    box.setValue(default)
    box.setSuffix(" days")
    return box


def form_answer(text: str, decision: Decision | None) -> QCheckBox:
    """A box shown only when the policies refuse ``decision`` for want of what it affirms (remedy
    "complete_form"); the answer is decided again when the form is submitted."""
    box = QCheckBox(text)
    box.setVisible(decision is not None and not decision.allowed and offered(decision))
    return box
