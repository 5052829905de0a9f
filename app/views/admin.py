"""The hospital administrator's tab beside the review queue: the hospital's staff, with suspending
and reinstating an account; each patient's care team with add and remove; and the delegations in
force, with ending one now. Every change is decided by the policies (a refusal in their words, said
before anything is asked) and confirmed once more when it stops someone's access.

Laid out for a 1400x900 window: staff and care teams side by side, the delegations below across the
whole width. Table columns fit their table (names stretch and elide, short columns fit their
contents), and every cell carries its whole text as a tooltip."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.viewmodels.admin_vm import AdminViewModel, Assignments, Patient
from app.views.dialog_parts import Confirmation, confirm

STRETCH, FIT = QHeaderView.ResizeMode.Stretch, QHeaderView.ResizeMode.ResizeToContents
DONE = "Done, and recorded in the audit log."


def _table(headers: Sequence[tuple[str, QHeaderView.ResizeMode]], name: str) -> QTableWidget:
    """A read-only table whose columns fit its width: ``STRETCH`` columns share what the ``FIT``
    ones leave, eliding what does not fit (the tooltip has it whole); one row is selected at a time."""
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels([label for label, _ in headers])
    table.setAccessibleName(name)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setWordWrap(False)
    table.setTextElideMode(Qt.TextElideMode.ElideRight)
    table.verticalHeader().setVisible(False)
    header = table.horizontalHeader()
    for column, (_label, mode) in enumerate(headers):
        header.setSectionResizeMode(column, mode)
    return table


def _fill(table: QTableWidget, rows: list[tuple[str, ...]], keys: list[str]) -> None:
    """The rows, each cell with its whole text as tooltip and the row's key (an id) in column 0."""
    chosen = _key(table)
    table.setRowCount(len(rows))
    for i, (row, key) in enumerate(zip(rows, keys, strict=True)):
        for j, text in enumerate(row):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            item.setData(Qt.ItemDataRole.UserRole, key)
            table.setItem(i, j, item)
    table.clearSelection()
    if chosen in keys:  # the same row stays selected after a change
        table.selectRow(keys.index(chosen))


def _key(table: QTableWidget) -> str:
    """The id of the selected row ("" when none)."""
    rows = table.selectionModel().selectedRows()
    item = table.item(rows[0].row(), 0) if rows else None
    return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else ""


def _button(text: str, name: str, on_click: Callable[[], None]) -> QPushButton:
    button = QPushButton(text)
    button.setAccessibleName(name)
    button.clicked.connect(on_click)
    return button


class AdminView(QWidget):
    def __init__(self, vm: AdminViewModel) -> None:
        super().__init__()
        self.setAccessibleName("Administration: staff, care teams, delegations")
        self.vm = vm
        self.assignments: Assignments | None = None
        self.confirmation: Confirmation | None = None
        self.staff = _table(
            [("Name", STRETCH), ("Account", FIT), ("Role", FIT), ("State", FIT)], "Staff of your hospital"
        )
        self.staff.itemSelectionChanged.connect(self._offer_account_changes)
        self.suspend = _button(
            "Suspen&d account…", "Suspend the selected staff account", lambda: self._account("suspend_account")
        )
        self.reinstate = _button(
            "Rei&nstate account…", "Reinstate the selected staff account", lambda: self._account("reinstate_account")
        )
        self.patient = QComboBox()
        self.patient.setAccessibleName("Patient whose care team to change")
        self.patient.currentIndexChanged.connect(lambda _i: self._show_team())
        self.team = QListWidget()
        self.team.setAccessibleName("Care team")
        self.member = QComboBox()
        self.member.setAccessibleName("Staff member to add or remove")
        self.add = _button("&Add to the care team", "Add to the care team", lambda: self._change("assign_care_team"))
        self.remove = _button(
            "Re&move from the care team", "Remove from the care team", lambda: self._change("remove_from_care_team")
        )
        self.delegations = _table(
            [("Patient", STRETCH), ("Caregiver", STRETCH), ("Until (UTC)", FIT), ("Granted by", STRETCH)],
            "Delegations in force",
        )
        self.delegations.itemSelectionChanged.connect(self._offer_revocation)
        self.revoke = _button("Re&voke delegation…", "Revoke the selected delegation now", self._revoke)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAccessibleName("What became of the last change")
        layout = QGridLayout(self)
        layout.addWidget(self._staff_box(), 0, 0)
        layout.addWidget(self._teams_box(), 0, 1)
        layout.addWidget(self._delegations_box(), 1, 0, 1, 2)
        layout.addWidget(self.message, 2, 0, 1, 2)
        layout.setColumnStretch(0, 11)
        layout.setColumnStretch(1, 9)
        layout.setRowStretch(0, 3)
        layout.setRowStretch(1, 2)
        for combo in (self.patient, self.member):  # long names do not widen the care teams column
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(16)
        vm.changed.connect(self.show_assignments)
        self._offer_account_changes()
        self._offer_revocation()

    def _staff_box(self) -> QGroupBox:
        box = QGroupBox("Staff")
        column = QVBoxLayout(box)
        column.addWidget(self.staff, 1)
        column.addLayout(_row(self.suspend, self.reinstate))
        return box

    def _teams_box(self) -> QGroupBox:
        box = QGroupBox("Care teams")
        column = QVBoxLayout(box)
        for label, field in (("&Patient", self.patient), ("S&taff member", self.member)):
            caption = QLabel(label)
            caption.setBuddy(field)
            column.addWidget(caption)
            column.addWidget(field)
        column.addWidget(self.team, 1)
        column.addLayout(_row(self.add, self.remove))
        return box

    def _delegations_box(self) -> QGroupBox:
        box = QGroupBox("Delegations in force")
        column = QVBoxLayout(box)
        column.addWidget(self.delegations, 1)
        column.addLayout(_row(self.revoke))
        return box

    def show_assignments(self, assignments: Assignments | None) -> None:
        self.assignments = assignments
        chosen, member = self.patient.currentData(), self.member.currentData()
        self.patient.blockSignals(True)
        self.patient.clear()
        self.member.clear()
        staff = assignments.staff if assignments else []
        patients = assignments.patients if assignments else []
        for p in patients:
            self.patient.addItem(f"{p.name} ({p.mrn})", p.id)
        for s in staff:
            self.member.addItem(f"{s['name']} ({s['id']}) — {str(s['role']).replace('_', ' ')}", s["id"])
        self.patient.setCurrentIndex(max(0, self.patient.findData(chosen)))  # the choices stay as they were
        self.member.setCurrentIndex(max(0, self.member.findData(member)))
        self.patient.blockSignals(False)
        _fill(
            self.staff,
            [(str(s["name"]), str(s["id"]), str(s["role"]).replace("_", " "), "Active") for s in staff],
            [str(s["id"]) for s in staff],
        )
        for row, s in enumerate(staff):  # who suspended an account and when, in its tooltip
            if isinstance(suspension := s["suspended"], dict):
                state = self.staff.item(row, 3)
                state.setText("Suspended")
                state.setToolTip(
                    f"Suspended by {self.vm.person(str(suspension['suspended_by']))} "
                    f"on {str(suspension['suspended_at'])[:16].replace('T', ' ')} UTC"
                )
        names = {p.id: _patient_name(p) for p in patients}
        delegations = assignments.delegations if assignments else []
        _fill(
            self.delegations,
            [
                (
                    names.get(str(d["patient_id"]), str(d["patient_id"])),
                    self.vm.person(str(d["delegate_id"])),
                    str(d["expires_at"])[:16].replace("T", " "),
                    self.vm.person(str(d.get("granted_by") or "")),
                )
                for d in delegations
            ],
            [str(d["id"]) for d in delegations],
        )
        self._show_team()
        self._offer_account_changes()
        self._offer_revocation()

    def _show_team(self) -> None:
        self.team.clear()
        patient = self._patient()
        for member in patient.care_team if patient else ():
            self.team.addItem(self.vm.person(member))

    def _patient(self) -> Patient | None:
        chosen = self.patient.currentData()
        patients = self.assignments.patients if self.assignments else []
        return next((p for p in patients if p.id == chosen), None)

    def _change(self, action: str) -> None:
        patient, member = self.patient.currentData(), self.member.currentData()
        if not patient or not member:
            self.message.setText("Choose a patient and a staff member first.")
            return
        problem = self.vm.change(patient, member, action)
        self.message.setText(problem or DONE)

    # staff accounts

    def _selected_staff(self) -> dict[str, object] | None:
        key = _key(self.staff)
        staff = self.assignments.staff if self.assignments else []
        return next((s for s in staff if s["id"] == key), None)

    def _offer_account_changes(self) -> None:
        """Suspend for an active account, reinstate for a suspended one (whether the policies allow
        it is asked when clicked, and said in their words)."""
        chosen = self._selected_staff()
        self.suspend.setEnabled(chosen is not None and not chosen["suspended"])
        self.reinstate.setEnabled(chosen is not None and bool(chosen["suspended"]))

    def _account(self, action: str) -> None:
        chosen = self._selected_staff()
        if chosen is None:
            self.message.setText("Choose a staff account first.")
            return
        account_id = str(chosen["id"])
        refused = self.vm.account_change_refused(account_id, action)
        if refused:
            self.message.setText(refused)
            return
        who = self.vm.person(account_id)
        if action == "suspend_account":
            title, text, label = (
                "Suspend account",
                f"Suspend the account of {who}?\n\nThey cannot sign in to any workstation until an "
                "administrator reinstates the account. This is recorded in the audit log.",
                "Suspend account",
            )
        else:
            title, text, label = (
                "Reinstate account",
                f"Reinstate the account of {who}?\n\nThey can sign in again. This is recorded in the audit log.",
                "Reinstate account",
            )
        self.confirmation = confirm(self, title, text, label, lambda: self._change_account(account_id, action))

    def _change_account(self, account_id: str, action: str) -> None:
        self.message.setText(self.vm.change_account(account_id, action) or DONE)

    # delegations

    def _offer_revocation(self) -> None:
        self.revoke.setEnabled(bool(_key(self.delegations)))

    def _revoke(self) -> None:
        delegation_id = _key(self.delegations)
        delegations = self.assignments.delegations if self.assignments else []
        chosen = next((d for d in delegations if d["id"] == delegation_id), None)
        if chosen is None:
            self.message.setText("Choose a delegation first.")
            return
        refused = self.vm.revocation_refused(delegation_id)
        if refused:
            self.message.setText(refused)
            return
        patients = self.assignments.patients if self.assignments else []
        patient = next((p for p in patients if p.id == chosen["patient_id"]), None)
        whose = _patient_name(patient) if patient else str(chosen["patient_id"])
        delegate = self.vm.person(str(chosen["delegate_id"]))
        self.confirmation = confirm(
            self,
            "Revoke delegation",
            f"End the delegation of {whose} to {delegate} now?\n\n{delegate} will no longer see this "
            "patient's readings. This is recorded in the audit log.",
            "Revoke delegation",
            lambda: self._revoked(delegation_id),
        )

    def _revoked(self, delegation_id: str) -> None:
        self.message.setText(self.vm.revoke(delegation_id) or DONE)


def _row(*buttons: QPushButton) -> QHBoxLayout:
    row = QHBoxLayout()
    for button in buttons:
        row.addWidget(button)
    row.addStretch(1)
    return row


def _patient_name(patient: Patient) -> str:
    """The patient by name and MRN (the identifier the ward knows, never the internal id)."""
    return f"{patient.name} ({patient.mrn})"
