"""The patient list: the patients the signed-in user may view, the search, and what an empty
list tells them (the policies' words)."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.services.patients import Identity, IdentitySearch, PatientRow
from app.viewmodels.record_vm import RecordViewModel
from app.viewmodels.session_vm import SessionViewModel

__all__ = ["Identity", "IdentitySearch", "PatientListViewModel", "PatientRow"]


class PatientListViewModel(QObject):
    rows_changed = Signal(list)  # list[PatientRow]
    identities_changed = Signal(object)  # IdentitySearch: the hospital-wide search (identities only)

    def __init__(self, session: SessionViewModel, record: RecordViewModel) -> None:
        super().__init__()
        self.session, self.record = session, record
        self.patients = session.workstation.patients
        self.search = ""
        self.rows: list[PatientRow] = []
        self.found = IdentitySearch([])
        session.signed_in.connect(self._on_signed_in)

    def _on_signed_in(self, user: object) -> None:
        self.search = ""
        self._found(IdentitySearch([]))
        self.refresh()

    def set_search(self, text: str) -> None:
        self.search = text
        if self.found.matches or self.found.problem:
            self._found(IdentitySearch([]))  # an earlier hospital-wide answer is not this search's
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
        """Enter in the search: opens the only match of the list; with none, searches the hospital
        by name and date of birth or partial MRN (identities only), opening a single match (the
        record is then decided: refused, with break-glass offered when that is the remedy)."""
        if len(self.rows) == 1:
            self.record.open(self.rows[0].patient.id)
        elif not self.rows and self.search.strip():
            self.find_at_hospital()

    def find_at_hospital(self) -> None:
        user = self.session.user
        if user is None:
            return
        found = self.patients.find_identities(user, self.search)
        self._found(found)
        if found.problem:
            self.session.message.emit(found.problem)
        elif len(found.matches) == 1:
            self.record.open(found.matches[0].patient_id)

    def _found(self, found: IdentitySearch) -> None:
        self.found = found
        self.identities_changed.emit(found)
