"""The manufacturer engineer's workspace: their company's devices (no patient identifiers), the
firmware update of each with the steps the device policy allows, and de-identified exports."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.viewmodels.devices_vm import DeviceRow, DevicesViewModel
from app.views.dialog_parts import Confirmation, confirm
from app.views.empty_note import EmptyNote
from app.views.export_dialog import ExportDialog
from app.views.firmware_inputs import VersionInput, iso, schedule_date
from app.views.record import FIRMWARE_STEPS, IRREVERSIBLE


class EngineeringView(QWidget):
    def __init__(self, vm: DevicesViewModel) -> None:
        super().__init__()
        self.vm = vm
        self.rows: list[DeviceRow] = []
        self.table = QTableWidget(0, 4)
        self.table.setAccessibleName("Devices of your manufacturer")
        self.table.setHorizontalHeaderLabels(["Device", "Model", "Firmware", "Update"])
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)  # no blank strip beside the table
        self.table.currentCellChanged.connect(lambda row, *_: self._select(row))
        self.empty = EmptyNote(self.table, "No devices of your manufacturer to show here.")
        self.version = VersionInput()
        self.schedule_date = schedule_date(vm.schedule_window())
        self.buttons: dict[str, QPushButton] = {}
        steps = QHBoxLayout()
        steps.addWidget(self.version)
        for action, label in FIRMWARE_STEPS.items():
            button = QPushButton(label)
            button.setEnabled(False)
            button.clicked.connect(lambda _=False, a=action: self._step(a))
            self.buttons[action] = button
            if action == "schedule_firmware_update":
                steps.addWidget(self.schedule_date)
            steps.addWidget(button)
        self.export = QPushButton("Export &de-identified data…")
        self.export.setEnabled(False)
        self.export.clicked.connect(self.open_export)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Devices of your manufacturer. Patient identifiers are never shown here."))
        layout.addWidget(self.table, 1)
        layout.addLayout(steps)
        layout.addWidget(self.version.problem)
        layout.addWidget(self.export)
        layout.addWidget(self.message)
        vm.rows_changed.connect(self.show_rows)

    def show_rows(self, rows: list[DeviceRow]) -> None:
        if not rows:  # signed out or locked: no question or export stays open
            for dialog in self.findChildren(QDialog):
                if dialog.isVisible():
                    dialog.reject()
        self.rows = rows
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            state = f"{r.update.state.replace('_', ' ')} → {r.update.target_version}" if r.update else ""
            for j, text in enumerate([r.device_id, r.model, r.firmware_version, state]):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self._select(self.table.currentRow())

    def current(self) -> DeviceRow | None:
        row = self.table.currentRow()
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def _select(self, row: int) -> None:
        device = self.rows[row] if 0 <= row < len(self.rows) else None
        decisions = self.vm.decisions(device.device_id) if device else {}
        for action, button in self.buttons.items():
            decision = decisions.get(action)
            button.setEnabled(decision is not None and decision.allowed)
            button.setToolTip(decision.reason if decision is not None else "")
        request = decisions.get("request_firmware_update")
        self.version.offer(
            self.vm.versions(device.device_id) if device else [],
            (lambda text: self.vm.check_version(device.device_id, text)) if device else (lambda _text: ""),
            self.buttons["request_firmware_update"],
            request is not None and request.allowed,
        )
        self.schedule_date.setEnabled(self.buttons["schedule_firmware_update"].isEnabled())
        approve = decisions.get("approve_firmware_update")
        waiting = device is not None and device.update is not None and approve is not None and not approve.allowed
        self.export.setEnabled(device is not None)
        self.message.setText(approve.reason if waiting else "")

    def _step(self, action: str) -> Confirmation | None:
        """A step of the selected device's update; an irreversible one asks for confirmation first."""
        device = self.current()
        if device is None:
            return None
        if action in IRREVERSIBLE and device.update is not None:
            label, text = IRREVERSIBLE[action]
            named = f"device {device.device_id} ({device.model})"
            what = text.format(device=named, version=device.update.target_version)
            self.confirmation = confirm(self, label, what, label, lambda: self._take_step(action))
            return self.confirmation
        self._take_step(action)
        return None

    def _take_step(self, action: str) -> None:
        device = self.current()
        if device is None:
            return
        value = {
            "request_firmware_update": self.version.text(),
            "schedule_firmware_update": iso(self.schedule_date),
            "reject_firmware_update": "Rejected by the manufacturer.",
        }.get(action, "")
        row = self.table.currentRow()
        problem = self.vm.step(action, device.device_id, value)
        self.vm.refresh()
        self.table.setCurrentCell(row, 0)
        self.message.setText(problem or "Recorded in the audit log.")

    def open_export(self) -> ExportDialog | None:
        device = self.current()
        if device is None:
            return None
        self.export_dialog = ExportDialog(self.vm.export(device), self)
        self.export_dialog.open()
        return self.export_dialog
