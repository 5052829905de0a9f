"""Delegating the open record's patient to a caregiver: who (the accounts the policies allow),
until when, the patient's permission; the current delegations with Revoke. The service decides
and audits."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
)

from app.viewmodels.record_vm import RecordViewModel
from app.views.dialog_parts import action_buttons, days_box, form_answer, message_line, patient_banner
from app.views.empty_note import EmptyNote


class DelegationDialog(QDialog):
    def __init__(self, vm: RecordViewModel, parent: object = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.setWindowTitle("Delegate access to a caregiver")
        self.caregiver = QComboBox()
        for caregiver_id, name in vm.caregivers():
            self.caregiver.addItem(name, caregiver_id)
        self.days = days_box(365, 30)
        decision = vm.record.view.decisions.get("delegate_access") if vm.record else None
        self.permission = form_answer("The patient has given permission (asked in person)", decision)
        self.current = QListWidget()
        self.current.setWordWrap(True)  # "... (granted by Dr. Aly Rahman (dr_aly))" read whole
        self.none = EmptyNote(self.current, "Nobody else may see this patient's record by a delegation.")
        self.revoke = QPushButton("&Revoke selected")
        self.revoke.clicked.connect(self._revoke)
        revoking = vm.record.view.decisions.get("revoke_delegation") if vm.record else None
        self.revoke.setEnabled(revoking is not None and revoking.allowed)
        self.error = message_line()
        buttons, self.grant = action_buttons(self, "&Grant access", self._grant, QDialogButtonBox.StandardButton.Close)
        form = QFormLayout()
        form.addRow("&Caregiver", self.caregiver)
        form.addRow("&Until", self.days)
        form.addRow("", self.permission)
        layout = QVBoxLayout(self)
        layout.addWidget(patient_banner(vm.record.identity if vm.record else None))
        layout.addLayout(form)
        layout.addWidget(QLabel("Current delegations"))
        layout.addWidget(self.current)
        layout.addWidget(self.revoke)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self._list()

    def _list(self) -> None:
        self.current.clear()
        for d in self.vm.delegations():
            state = "revoked" if d.revoked else f"until {d.expires_at:%Y-%m-%d %H:%M} UTC"
            who, by = self.vm.person(d.delegate_id), self.vm.person(d.granted_by)
            item = QListWidgetItem(f"{who} — {state} (granted by {by})")
            item.setData(256, d.id)
            self.current.addItem(item)

    def _grant(self) -> None:
        self.error.setText(
            self.vm.grant_delegation(self.caregiver.currentData(), self.days.value(), self.permission.isChecked())
        )
        self._list()

    def _revoke(self) -> None:
        item = self.current.currentItem()
        if item is not None:
            self.error.setText(self.vm.revoke_delegation(item.data(256)))
            self._list()
