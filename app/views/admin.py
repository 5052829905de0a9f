"""The hospital administrator's tab beside the review queue: the hospital's staff, each patient's
care team with add and remove (each decided by the policies, a refusal in their words), and the
delegations in force."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.viewmodels.admin_vm import AdminViewModel, Assignments, Patient


def _table(headers: list[str], name: str) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.setAccessibleName(name)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setStretchLastSection(True)
    return table


class AdminView(QWidget):
    def __init__(self, vm: AdminViewModel) -> None:
        super().__init__()
        self.setAccessibleName("Administration: staff, care teams, delegations")
        self.vm = vm
        self.assignments: Assignments | None = None
        self.staff = _table(["Name", "Account", "Role"], "Staff of your hospital")
        self.patient = QComboBox()
        self.patient.setAccessibleName("Patient whose care team to change")
        self.patient.currentIndexChanged.connect(lambda _i: self._show_team())
        self.team = QListWidget()
        self.team.setAccessibleName("Care team")
        self.member = QComboBox()
        self.member.setAccessibleName("Staff member to add or remove")
        self.add = QPushButton("&Add to the care team")
        self.add.clicked.connect(lambda: self._change("assign_care_team"))
        self.remove = QPushButton("Re&move from the care team")
        self.remove.clicked.connect(lambda: self._change("remove_from_care_team"))
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.delegations = _table(["Patient", "Caregiver", "Until", "Granted by"], "Delegations in force")
        teams = QGroupBox("Care teams")
        column = QVBoxLayout(teams)
        pick = QVBoxLayout()
        for label, field in (("&Patient", self.patient), ("S&taff member", self.member)):
            caption = QLabel(label)
            caption.setBuddy(field)
            pick.addWidget(caption)
            pick.addWidget(field, 1)
        column.addLayout(pick)
        column.addWidget(self.team, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add)
        buttons.addWidget(self.remove)
        buttons.addStretch(1)
        column.addLayout(buttons)
        column.addWidget(self.message)
        staff_box, delegation_box = QGroupBox("Staff"), QGroupBox("Delegations in force")
        QVBoxLayout(staff_box).addWidget(self.staff)
        QVBoxLayout(delegation_box).addWidget(self.delegations)
        layout = QHBoxLayout(self)
        layout.addWidget(staff_box, 3)
        layout.addWidget(teams, 3)
        layout.addWidget(delegation_box, 4)
        for combo in (self.patient, self.member):  # long names do not widen the middle column
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(16)
        vm.changed.connect(self.show_assignments)

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
        self.staff.setRowCount(len(staff))
        for i, s in enumerate(staff):
            for j, text in enumerate((s["name"], s["id"], str(s["role"]).replace("_", " "))):
                self.staff.setItem(i, j, QTableWidgetItem(str(text)))
        self.staff.resizeColumnsToContents()
        names = {p.id: f"{p.name} ({p.mrn})" for p in patients}
        delegations = assignments.delegations if assignments else []
        self.delegations.setRowCount(len(delegations))
        for i, d in enumerate(delegations):
            row = (
                names.get(str(d["patient_id"]), str(d["patient_id"])),
                self.vm.person(str(d["delegate_id"])),
                str(d["expires_at"])[:16].replace("T", " "),
                self.vm.person(str(d.get("granted_by") or "")),
            )
            for j, text in enumerate(row):
                self.delegations.setItem(i, j, QTableWidgetItem(text))
        self.delegations.resizeColumnsToContents()
        self._show_team()

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
        self.message.setText(problem or "Done, and recorded in the audit log.")
