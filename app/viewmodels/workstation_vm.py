"""The app's view-model: the signed-in session, the patient list and the open record, as Qt
signals the views render. Every piece of data it emits was decided by the service layer."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.services.access import Decision
from app.services.users import SignedInUser
from app.services.workstation import PatientRow, RecordView, Status, Workstation


class WorkstationViewModel(QObject):
    signed_in = Signal(object)  # SignedInUser | None
    patients_changed = Signal(list)  # list[PatientRow]
    record_changed = Signal(object)  # RecordView | None
    status_changed = Signal(object)  # Status
    message = Signal(str)  # something the user must read (a denial, an error)

    def __init__(self, workstation: Workstation) -> None:
        super().__init__()
        self.workstation = workstation
        self.user: SignedInUser | None = None
        self.search = ""
        self.record: RecordView | None = None

    def staff_choices(self) -> list[tuple[str, str]]:
        return self.workstation.staff_choices()

    def sign_in(self, user_id: str, password: str) -> bool:
        user = self.workstation.sign_in(user_id, password)
        if user is None:
            self.message.emit("Sign-in failed: check the user and the password.")
            return False
        self.user = user
        self.record = None  # never leave the previous user's data on screen
        self.signed_in.emit(user)
        self.record_changed.emit(None)
        self.refresh()
        return True

    def sign_out(self) -> None:
        self.user, self.record = None, None
        self.record_changed.emit(None)
        self.patients_changed.emit([])
        self.signed_in.emit(None)

    def set_search(self, text: str) -> None:
        self.search = text
        self.refresh()

    def refresh(self) -> None:
        if self.user is not None:
            rows: list[PatientRow] = self.workstation.patient_rows(self.user, self.search)
            self.patients_changed.emit(rows)
        self.status_changed.emit(self.status())

    def open_patient(self, patient_id: str) -> None:
        if self.user is None:
            return
        try:
            self.record = self.workstation.open_record(self.user, patient_id)
        except PermissionError as exc:
            self.record = None
            self.message.emit(str(exc))
        except Exception as exc:  # the audit log could not be written: show nothing
            self.record = None
            self.message.emit(f"The record cannot be shown: {exc}")
        self.record_changed.emit(self.record)
        self.status_changed.emit(self.status())

    def save_note(self, text: str) -> bool:
        if self.user is None or self.record is None:
            return False
        try:
            self.workstation.save_note(self.user, self.record.patient.id, text)
        except (PermissionError, ValueError) as exc:
            self.message.emit(str(exc))
            return False
        self.open_patient(self.record.patient.id)
        return True

    def decision(self, action: str) -> Decision | None:
        return self.record.decisions.get(action) if self.record else None

    def status(self) -> Status:
        return self.workstation.status()
