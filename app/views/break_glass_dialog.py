"""The emergency-access (break-glass) dialog: a coded reason, a justification in words and the
password again. The service decides; the dialog shows why not, and keeps what was typed."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
)

from app.services.break_glass import REASONS, justification_problem
from app.viewmodels.workstation_vm import WorkstationViewModel
from app.views.dialog_parts import action_buttons, message_line


class BreakGlassDialog(QDialog):
    def __init__(self, vm: WorkstationViewModel, patient_id: str, parent: object = None) -> None:
        super().__init__(parent)
        self.vm, self.patient_id = vm, patient_id
        self.setWindowTitle("Emergency access (break-glass)")
        intro = QLabel("Emergency access opens this one patient's record for 60 minutes. It is recorded "
                       "and reviewed by compliance. Use it only when the patient needs care now.")
        intro.setWordWrap(True)
        self.reason = QComboBox()
        for code, label in REASONS.items():
            self.reason.addItem(f"{label} ({code})", code)
        self.justification = QPlainTextEdit()
        self.justification.setPlaceholderText("Why you need access now (at least 20 characters)")
        self.justification.setTabChangesFocus(True)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.error = message_line()
        self.buttons, self.grant = action_buttons(self, "&Open with emergency access", self.submit)
        self.justification.textChanged.connect(self._hint)
        form = QFormLayout()
        form.addRow("&Reason", self.reason)
        form.addRow("&Justification", self.justification)
        form.addRow("&Password", self.password)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self._hint()

    def _hint(self) -> None:
        self.error.setText(justification_problem(self.justification.toPlainText()))

    def submit(self) -> None:
        problem = self.vm.request_emergency_access(self.patient_id, self.reason.currentData(),
                                                   self.justification.toPlainText(), self.password.text())
        if problem:
            self.error.setText(problem)
            self.password.clear()
            return
        self.accept()
