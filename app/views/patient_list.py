"""The patient list: only the patients the signed-in user may view, with search, alert badges
(a word and a colour) and the last transmission; an empty list says what to do, in the policies' words."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QLineEdit, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from app.viewmodels.patient_list_vm import PatientListViewModel, PatientRow

ALERT_TEXT = {"red": "ALERT", "yellow": "check", "none": ""}
ALERT_COLOUR = {"red": QColor(250, 200, 200), "yellow": QColor(255, 240, 180)}


class PatientListView(QWidget):
    COLUMNS = ["Alert", "Patient", "MRN", "Born", "Last transmission"]

    def __init__(self, vm: PatientListViewModel) -> None:
        super().__init__()
        self.vm = vm
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search name or MRN (Ctrl+F); Enter opens")
        self.search.textChanged.connect(vm.set_search)
        self.search.returnPressed.connect(vm.open_entered)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.cellActivated.connect(self._open)
        self.empty = QLabel()
        self.empty.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.table)
        layout.addWidget(self.empty)
        vm.rows_changed.connect(self.show_rows)
        self.rows: list[PatientRow] = []

    def show_rows(self, rows: list[PatientRow]) -> None:
        self.rows = rows
        if self.vm.session.user is None and self.search.text():
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
        self.empty.setText("" if rows or self.search.text().strip() else self.vm.empty_text())

    def _open(self, row: int, _column: int) -> None:
        self.vm.open(self.rows[row].patient.id)
