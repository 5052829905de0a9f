"""Reports: the report types the policies let this user generate for their hospital, each built
on a worker thread."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.services.access import Refused
from app.services.compliance import REPORT_TITLES, Report
from app.services.storage import STORAGE_ERRORS
from app.viewmodels.session_vm import SessionViewModel

__all__ = ["Report", "ReportsViewModel"]


class ReportsViewModel(QObject):
    types_changed = Signal(list)  # [(report type, label)] the user may generate
    ready = Signal(object)  # Report, or why not (str)

    def __init__(self, session: SessionViewModel) -> None:
        super().__init__()
        self.session = session
        self.service = session.workstation.compliance
        self.types: list[tuple[str, str]] = []
        session.signed_in.connect(lambda _user: self.refresh())

    def refresh(self) -> None:
        user = self.session.user
        if user is None or self.session.workspace.name != "compliance":
            self.types = []
        else:
            decided = self.service.report_types(user, self.session.hospital())
            self.types = [(t, REPORT_TITLES.get(t, t)) for t, d in decided.items() if d.allowed]
        self.types_changed.emit(self.types)

    def start(self, report_type: str, start: date | None = None, end: date | None = None) -> None:
        """Builds a report over the period on a worker thread; the outcome arrives as ``ready``."""
        user, hospital = self.session.user, self.session.hospital()
        if user is None:
            self.ready.emit("Sign in first.")
            return

        def work() -> None:
            try:
                self.ready.emit(self._named(self.service.report(user, report_type, hospital, start, end)))
            except Refused as refused:
                self.ready.emit(str(refused))
            except STORAGE_ERRORS as exc:  # the worker ends with a message, never silently
                self.ready.emit(f"The report could not be made: {exc}")

        threading.Thread(target=work, name="report", daemon=True).start()

    def _named(self, report: Report) -> Report:
        """The report with its people named: users by name with their id, patients by name and
        MRN where the policies let this user identify them (else their id)."""
        user = self.session.user
        people = {s.event.principal_id for s in report.sessions}
        patients = [s.event.patient_id for s in report.sessions if s.event.patient_id]
        known = self.session.workstation.patients.identities(user, patients) if patients and user else {}
        names = {p: self.session.workstation.session.person(p) for p in people}
        names |= {p: identity.label for p, identity in known.items()}
        return replace(report, names=names)

    def default_directory(self) -> Path:
        return self.session.workstation.data_dir / "exports"
