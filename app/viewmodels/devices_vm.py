"""The manufacturer engineer's devices: the devices the policies let them see (no patient
identifiers), the firmware steps allowed on each, and a de-identified export of one."""

from __future__ import annotations

from datetime import date

from PySide6.QtCore import QObject, Signal

from app.services.access import Decision, Refused
from app.services.firmware import STEPS, DeviceRow
from app.viewmodels.export_vm import ExportViewModel
from app.viewmodels.session_vm import SessionViewModel

__all__ = ["STEPS", "DeviceRow", "DevicesViewModel"]


class DevicesViewModel(QObject):
    rows_changed = Signal(list)  # list[DeviceRow]

    def __init__(self, session: SessionViewModel) -> None:
        super().__init__()
        self.session = session
        self.firmware = session.workstation.firmware
        self.rows: list[DeviceRow] = []
        session.signed_in.connect(lambda _user: self.refresh())

    def refresh(self) -> None:
        user = self.session.user
        show = user is not None and self.session.workspace.name == "engineering"
        self.rows = self.firmware.devices(user) if show else []
        self.rows_changed.emit(self.rows)

    def decisions(self, device_id: str) -> dict[str, Decision]:
        return self.firmware.decisions(self.session.user, device_id) if self.session.user else {}

    def versions(self, device_id: str) -> list[str]:
        return self.firmware.versions(device_id)

    def check_version(self, device_id: str, text: str) -> str:
        """Why the typed version cannot be requested for this device, or "" (as it is typed)."""
        return self.firmware.check_version(device_id, text)

    def schedule_window(self) -> tuple[date, date]:
        return self.firmware.schedule_window()

    def step(self, action: str, device_id: str, value: str = "") -> str:
        """A step of the device's update; returns why not, or ""."""
        if self.session.user is None:
            return "Sign in first."
        try:
            self.firmware.step(self.session.user, action, device_id, value)
        except Refused as refused:
            return str(refused)
        return ""

    def export(self, row: DeviceRow) -> ExportViewModel:
        """The export dialog's view-model for the device's patient (de-identified, as the policies say)."""
        return ExportViewModel(self.session, row.patient_id)
