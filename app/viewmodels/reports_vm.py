"""Reports: the report types the policies let this user generate for their hospital, each built
on a worker thread."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.services.access import Refused
from app.services.compliance import Report
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
            self.types = [(t, t.replace("_", " ")) for t, d in decided.items() if d.allowed]
        self.types_changed.emit(self.types)

    def start(self, report_type: str) -> None:
        """Builds a report on a worker thread; the outcome arrives as ``ready``."""
        user, hospital = self.session.user, self.session.hospital()
        if user is None:
            self.ready.emit("Sign in first.")
            return

        def work() -> None:
            try:
                self.ready.emit(self.service.report(user, report_type, hospital))
            except Refused as refused:
                self.ready.emit(str(refused))
            except STORAGE_ERRORS as exc:  # the worker ends with a message, never silently
                self.ready.emit(f"The report could not be made: {exc}")

        threading.Thread(target=work, name="report", daemon=True).start()

    def default_directory(self) -> Path:
        return self.session.workstation.data_dir / "exports"
