"""The export dialog: the kinds of export the policies offer this user for this patient
(identified, de-identified), the patient's consent, and the export itself on a worker thread with
its progress."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.services.access import Refused, offered
from app.services.patients import Identity
from app.services.storage import STORAGE_ERRORS
from app.viewmodels.session_vm import SessionViewModel

__all__ = ["ExportViewModel"]

KIND_LABELS = {"identified": "identified", "deidentified": "de-identified (HIPAA Safe Harbor)"}


class ExportViewModel(QObject):
    progress = Signal(int, int)  # done, total
    finished = Signal(object)  # ExportResult, or why not (str)

    def __init__(self, session: SessionViewModel, patient_id: str) -> None:
        super().__init__()
        self.session, self.patient_id = session, patient_id
        self.service = session.workstation.exports

    def kinds(self) -> list[tuple[str, str]]:
        """(kind, label) of each export the policies offer here; identified first."""
        if self.session.user is None:
            return []
        offers = self.service.offers(self.session.user, self.patient_id)
        return [(kind, KIND_LABELS[kind]) for kind, decision in offers.items() if offered(decision)]

    def identity(self) -> Identity | None:
        """Who the patient is, when the policies let this user know (an engineer's export: never)."""
        user = self.session.user
        return self.session.workstation.patients.identity(user, self.patient_id) if user is not None else None

    def default_directory(self) -> Path:
        return self.session.workstation.data_dir / "exports"

    def start(self, kind: str, reason: str, fmt: str, directory: Path) -> None:
        """Runs the export on a worker thread; progress and the outcome arrive as signals."""
        user = self.session.user
        if user is None:
            self.finished.emit("Sign in first.")
            return

        def work() -> None:
            try:
                result = self.service.export(
                    user,
                    self.patient_id,
                    deidentified=kind == "deidentified",
                    reason=reason,
                    fmt=fmt,
                    directory=directory,
                    progress=self.progress.emit,
                )
            except Refused as refused:
                self.finished.emit(str(refused))
            except OSError as exc:
                self.finished.emit(f"The export could not be written: {exc}")
            except STORAGE_ERRORS as exc:  # its audit record could not be written: no export either
                self.finished.emit(f"The export was not made: {exc}")
            else:
                self.finished.emit(result)

        threading.Thread(target=work, name="export", daemon=True).start()
