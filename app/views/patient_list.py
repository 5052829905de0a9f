"""The patient list: only the patients the signed-in user may view, with search, the alerts waiting
(tier and count with a symbol and a word as well as a colour; what they are, in a column of words;
every alert with its value, limit, since when and state in the row's tooltip) and the last
transmission; an empty list says what to do, in the policies' words.
Enter with no match of the list searches the hospital (name and date of birth, or part of the MRN):
identities only, in a second table; opening one asks the policies for the record as any open does."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QLineEdit, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from app.viewmodels.patient_list_vm import IdentitySearch, PatientListViewModel, PatientRow
from app.views.empty_note import EmptyNote

NO_MATCH = (
    "None of your patients matches this search. Press Enter to search the hospital by name and date of "
    "birth, or by part of the MRN."
)
ALERT_COLOUR = {"red": QColor(250, 200, 200), "yellow": QColor(255, 240, 180)}


class PatientListView(QWidget):
    COLUMNS = ["Alert", "Patient", "Alerts in words", "MRN", "Born", "Last transmission"]
    WORDS_WIDTH = 160  # px: the alerts in words beside the name, cut with "…" (the tooltip has them all)
    FOUND_COLUMNS = ["Patient", "Born", "Sex", "MRN", "Location"]

    def __init__(self, vm: PatientListViewModel) -> None:
        super().__init__()
        self.vm = vm
        self.search = QLineEdit()
        self.search.setPlaceholderText(
            "Search your patients by name or MRN (Ctrl+F); Enter opens, or searches the hospital by "
            "name and date of birth or part of the MRN"
        )
        self.search.setAccessibleName("Patient search")
        self.search.textChanged.connect(vm.set_search)
        self.search.returnPressed.connect(vm.open_entered)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setAccessibleName("Your patients, with their alerts")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.cellActivated.connect(self._open)
        self.empty = EmptyNote(self.table, "")  # in the empty list: the policies' guidance, or no match
        self.found_title = QLabel()
        self.found_title.setWordWrap(True)
        self.found = QTableWidget(0, len(self.FOUND_COLUMNS))
        self.found.setAccessibleName("Patients found at the hospital (identity only)")
        self.found.setHorizontalHeaderLabels(self.FOUND_COLUMNS)
        self.found.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.found.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.found.verticalHeader().setVisible(False)
        self.found.cellActivated.connect(self._open_found)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search)
        layout.addWidget(self.table)
        layout.addWidget(self.found_title)
        layout.addWidget(self.found)
        vm.rows_changed.connect(self.show_rows)
        vm.identities_changed.connect(self.show_found)
        self.rows: list[PatientRow] = []
        self.identities: IdentitySearch = IdentitySearch([])
        self.show_found(self.identities)

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
            alerts = row.alerts
            cells = [alerts.label, p.name, alerts.reasons, p.mrn, p.birth_date, last]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, p.id)
                item.setToolTip(alerts.details or "No alerts in these transmissions.")
                if j == 0 and row.alert_level in ALERT_COLOUR:
                    item.setBackground(ALERT_COLOUR[row.alert_level])
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        words = self.COLUMNS.index("Alerts in words")
        self.table.setColumnWidth(words, min(self.table.columnWidth(words), self.WORDS_WIDTH))
        signed_in = self.vm.session.user is not None
        self.empty.say(NO_MATCH if signed_in and self.search.text().strip() else self.vm.empty_text())

    def show_found(self, found: IdentitySearch) -> None:
        """The hospital-wide search's answer: identities only, or what to type."""
        self.identities = found
        shown = bool(found.matches or found.problem)
        self.found_title.setVisible(shown)
        self.found.setVisible(bool(found.matches))
        title = "<b>At the hospital (identity only)</b>: open one to ask for the record."
        self.found_title.setText(title if found.matches else found.problem)
        self.found.setRowCount(len(found.matches))
        for i, who in enumerate(found.matches):
            age = f"{who.age} y" if who.age is not None else ""
            for j, text in enumerate([who.name, f"{who.birth_date} ({age})", who.sex, who.mrn, who.location]):
                self.found.setItem(i, j, QTableWidgetItem(text))
        self.found.resizeColumnsToContents()

    def _open(self, row: int, _column: int) -> None:
        self.vm.open(self.rows[row].patient.id)

    def _open_found(self, row: int, _column: int) -> None:
        self.vm.open(self.identities.matches[row].patient_id)
