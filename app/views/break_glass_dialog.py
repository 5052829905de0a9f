"""The emergency-access (break-glass) dialog: a coded reason, a justification in words and the
password again. As the clinician types, the policies' answer says what is still missing; the
dialog keeps what was typed when a request is refused."""

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

from app.viewmodels.break_glass_vm import BreakGlassViewModel
from app.views.dialog_parts import action_buttons, message_line


class BreakGlassDialog(QDialog):
    def __init__(self, vm: BreakGlassViewModel, patient_id: str, parent: object = None) -> None:
        super().__init__(parent)
        self.vm, self.patient_id = vm, patient_id
        self.setWindowTitle(f"Emergency access (break-glass) to patient {patient_id}")
        intro = QLabel(
            f"Emergency access opens the record of patient {patient_id}, and only that one, for a "
            "limited time. It is recorded and reviewed by compliance. Use it only when the patient "
            "needs care now."
        )
        intro.setWordWrap(True)
        self.reason = QComboBox()
        for code, label in vm.reason_codes():
            self.reason.addItem(f"{label} ({code})", code)
        self.justification = QPlainTextEdit()
        self.justification.setPlaceholderText("Why you need access now, in words")
        self.justification.setTabChangesFocus(True)
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.error = message_line()
        self.buttons, self.grant = action_buttons(self, "&Open with emergency access", self.submit)
        self.justification.textChanged.connect(self._hint)
        self.reason.currentIndexChanged.connect(self._hint)
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
        self.error.setText(self.vm.hint(self.patient_id, self.reason.currentData(), self.justification.toPlainText()))

    def submit(self) -> None:
        problem = self.vm.request(
            self.patient_id, self.reason.currentData(), self.justification.toPlainText(), self.password.text()
        )
        if problem:
            self.error.setText(problem)
            self.password.clear()
            return
        self.accept()
