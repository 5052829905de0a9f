"""The emergency-access (break-glass) dialog: whose record it opens (the patient banner), a coded
reason, a justification in words, the password again, and the clinician's confirmation that this
is the patient in front of them (name, date of birth, MRN), without which access does not open. As
the clinician types, the policies' answer says what is still missing; the dialog keeps what was
typed when a request is refused."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
)

from app.viewmodels.break_glass_vm import BreakGlassViewModel, Identity
from app.views.dialog_parts import action_buttons, message_line, patient_banner


class BreakGlassDialog(QDialog):
    def __init__(
        self, vm: BreakGlassViewModel, patient_id: str, identity: Identity | None, parent: object = None
    ) -> None:
        super().__init__(parent)
        self.vm, self.patient_id, self.identity = vm, patient_id, identity
        whom = identity.label if identity is not None else "a patient the policies do not let you identify"
        self.setWindowTitle(f"Emergency access (break-glass) to {whom}")
        intro = QLabel(
            f"Emergency access opens the record of {whom}, and only that one, for a limited time. It is "
            "recorded and reviewed by compliance. Use it only when the patient needs care now."
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
        self.confirm = QCheckBox(self._confirm_text(identity))
        self.confirm.setEnabled(identity is not None)
        self.error = message_line()
        self.buttons, self.grant = action_buttons(self, "&Open with emergency access", self.submit)
        self.grant.setEnabled(False)
        self.confirm.toggled.connect(self.grant.setEnabled)
        self.justification.textChanged.connect(self._hint)
        self.reason.currentIndexChanged.connect(self._hint)
        form = QFormLayout()
        form.addRow("&Reason", self.reason)
        form.addRow("&Justification", self.justification)
        self.offline = False  # the provider cannot be reached: the shift PIN confirms who it is
        self.pin = QLineEdit()
        self.pin.setEchoMode(QLineEdit.EchoMode.Password)
        self.pin.setPlaceholderText("The PIN you chose for this shift")
        if vm.needs_step_up:  # the hospital's provider asks for the password, in the browser
            self.grant.setText("Sign in &again and open with emergency access")
            vm.step_up_result.connect(self._after_step_up)
            vm.offline_fallback.connect(self._offline)
            form.addRow("Shift P&IN", self.pin)
            form.labelForField(self.pin).hide()
            self.pin.hide()
        else:
            form.addRow("&Password", self.password)
        form.addRow("", self.confirm)
        self.form = form
        layout = QVBoxLayout(self)
        layout.addWidget(patient_banner(identity))
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)
        self._hint()

    @staticmethod
    def _confirm_text(identity: Identity | None) -> str:
        if identity is None:
            return "The patient cannot be confirmed: emergency access needs a patient you can identify."
        return (
            f"I have checked the patient in front of me (wristband): {identity.name}, born {identity.birth_date}, "
            f"{identity.mrn_text}"
        )

    def _hint(self) -> None:
        self.error.setText(self.vm.hint(self.patient_id, self.reason.currentData(), self.justification.toPlainText()))

    def submit(self) -> None:
        if self.offline:
            self._open_offline()
            return
        if self.vm.needs_step_up:
            self._step_up()
            return
        problem = self.vm.request(
            self.patient_id,
            self.reason.currentData(),
            self.justification.toPlainText(),
            self.password.text(),
            patient_confirmed=self.confirm.isChecked(),
        )
        if problem:
            self.error.setText(problem)
            self.password.clear()
            return
        self.accept()

    def _step_up(self) -> None:
        problem = self.vm.request_with_step_up(
            self.patient_id,
            self.reason.currentData(),
            self.justification.toPlainText(),
            patient_confirmed=self.confirm.isChecked(),
        )
        if problem:
            self.error.setText(problem)
            return
        self.grant.setEnabled(False)
        self.error.setText("Sign in again with your hospital account in the browser window that opened…")

    def _offline(self, text: str) -> None:
        if not self.isVisible():
            return
        self.offline = True
        self.error.setText(text)
        self.grant.setText("&Open with emergency access (offline, with your PIN)")
        self.grant.setEnabled(self.confirm.isChecked())
        self.form.labelForField(self.pin).show()
        self.pin.show()
        self.pin.setFocus()

    def _open_offline(self) -> None:
        problem = self.vm.request_offline(
            self.patient_id,
            self.reason.currentData(),
            self.justification.toPlainText(),
            self.pin.text(),
            patient_confirmed=self.confirm.isChecked(),
        )
        self.pin.clear()
        if problem:
            self.error.setText(problem)
            return
        self.accept()

    def _after_step_up(self, problem: str) -> None:
        if not self.isVisible():
            return
        if problem:
            self.error.setText(problem)
            self.grant.setEnabled(self.confirm.isChecked())
            return
        self.accept()
