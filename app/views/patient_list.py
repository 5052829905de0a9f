"""The patient list: only the patients the signed-in user may view, with search, alert badges
(a word and a colour) and the last transmission."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QLineEdit, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from app.services.workstation import PatientRow
from app.viewmodels.workstation_vm import WorkstationViewModel

ALERT_TEXT = {"red": "ALERT", "yellow": "check", "none": ""}
ALERT_COLOUR = {"red": QColor(250, 200, 200), "yellow": QColor(255, 240, 180)}


class PatientListView(QWidget):
    COLUMNS = ["Alert", "Patient", "MRN", "Born", "Last transmission"]

    def __init__(self, vm: WorkstationViewModel) -> None:
        super().__init__()
        self.vm = vm
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search name or MRN (Ctrl+F); Enter opens")
        self.search.textChanged.connect(vm.set_search)
        self.search.returnPressed.connect(self._search_entered)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.cellActivated.connect(self._open)
        self.table.cellDoubleClicked.connect(self._open)
        self.empty = QLabel()
        self.empty.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.table)
        layout.addWidget(self.empty)
        vm.patients_changed.connect(self.show_rows)
        self.rows: list[PatientRow] = []

    def show_rows(self, rows: list[PatientRow]) -> None:
        self.rows = rows
        if self.vm.user is None and self.search.text():
            self.search.blockSignals(True)  # the next user starts with an empty search
            self.search.clear()
            self.search.blockSignals(False)
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            p = row.patient
            last = (row.last_transmission or "")[:16].replace("T", " ")
            cells = [ALERT_TEXT[row.alert_level], p.name, p.mrn, p.birth_date, last]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, p.id)
                if j == 0 and row.alert_level in ALERT_COLOUR:
                    item.setBackground(ALERT_COLOUR[row.alert_level])
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        signed_in = self.vm.user is not None
        self.empty.setText("" if rows or not signed_in else self.vm.empty_list_reason())

    def _search_entered(self) -> None:
        """Enter in the search: opens the only match, or an exact MRN the list does not show (ER)."""
        if len(self.rows) == 1:
            self.vm.open_patient(self.rows[0].patient.id)
        elif not self.rows and self.search.text().strip():
            self.vm.open_by_mrn(self.search.text())

    def _open(self, row: int, _column: int) -> None:
        self.vm.open_patient(self.rows[row].patient.id)
