"""The patient list: the patients the signed-in user may view, the search, and what an empty
list tells them (the policies' words)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.services.patients import PatientRow
from app.viewmodels.record_vm import RecordViewModel
from app.viewmodels.session_vm import SessionViewModel

__all__ = ["PatientListViewModel", "PatientRow"]


class PatientListViewModel(QObject):
    rows_changed = Signal(list)  # list[PatientRow]

    def __init__(self, session: SessionViewModel, record: RecordViewModel) -> None:
        super().__init__()
        self.session, self.record = session, record
        self.patients = session.workstation.patients
        self.search = ""
        self.rows: list[PatientRow] = []
        session.signed_in.connect(self._on_signed_in)

    def _on_signed_in(self, user: object) -> None:
        self.search = ""
        self.refresh()

    def set_search(self, text: str) -> None:
        self.search = text
        self.refresh()

    def refresh(self) -> None:
        user = self.session.user
        show = user is not None and self.session.workspace.name == "clinical"
        self.rows = self.patients.rows(user, self.search) if show else []
        self.rows_changed.emit(self.rows)

    def empty_text(self) -> str:
        """What an empty list says: the policies' guidance for this user, or nothing."""
        return self.session.workspace.empty_list if self.session.user is not None else ""

    def open(self, patient_id: str) -> None:
        self.record.open(patient_id)

    def open_entered(self) -> None:
        """Enter in the search: opens the only match, or an exact MRN the list does not show (ER)."""
        if len(self.rows) == 1:
            self.record.open(self.rows[0].patient.id)
        elif not self.rows and self.search.strip():
            patient_id = self.patients.find_by_mrn(self.search.strip().upper())
            if patient_id is None:
                self.session.message.emit(f"No patient has the MRN {self.search.strip()}.")
            else:
                self.record.open(patient_id)
