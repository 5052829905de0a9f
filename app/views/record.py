"""A patient's record: a banner with two identifiers (name and MRN, date of birth; never the room),
the device panel, telemetry charts with normal ranges, history, notes, and controls enabled by the
engine's decisions, each denial explained in words."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.services.workstation import RecordView
from app.viewmodels.workstation_vm import Refusal, WorkstationViewModel
from app.views.break_glass_dialog import BreakGlassDialog
from app.views.delegation_dialog import DelegationDialog
from app.views.export_dialog import ConsentDialog, ExportDialog
from app.views.telemetry_chart import TelemetryChart

FIRMWARE_STEPS = {
    "request_firmware_update": "Request &update",
    "approve_firmware_update": "&Approve",
    "reject_firmware_update": "Re&ject",
    "schedule_firmware_update": "S&chedule",
    "apply_firmware_update": "Mark a&pplied",
}


class RecordViewWidget(QScrollArea):
    def __init__(self, vm: WorkstationViewModel) -> None:
        super().__init__()
        self.vm = vm
        self.setWidgetResizable(True)
        vm.record_changed.connect(self.show_record)
        vm.record_denied.connect(self.show_denial)
        self.show_record(None)

    def show_denial(self, refusal: Refusal) -> None:
        """A refused record says why, in the place the record would have been, and offers
        emergency access when the policies would allow it (or says why it would not)."""
        body = QWidget()
        layout = QVBoxLayout(body)
        self.denial = QLabel(f"<h3>This record is not available to you</h3><p>{refusal.reason}</p>")
        self.denial.setWordWrap(True)
        self.denial.setStyleSheet("QLabel { background: #fdecea; border: 1px solid #b3261e; padding: 12px; }")
        layout.addWidget(self.denial)
        self.emergency_button = QPushButton("&Emergency access (break-glass)…")
        self.emergency_reason = QLabel()
        self.emergency_reason.setWordWrap(True)
        if refusal.emergency is not None:
            self.emergency_button.setEnabled(refusal.emergency.allowed)
            self.emergency_reason.setText(refusal.emergency.reason)
            self.emergency_button.clicked.connect(lambda: self.open_break_glass(refusal.patient_id))
            layout.addWidget(self.emergency_button)
            layout.addWidget(self.emergency_reason)
        layout.addStretch(1)
        self.setWidget(body)

    def open_break_glass(self, patient_id: str) -> BreakGlassDialog:
        self.dialog = BreakGlassDialog(self.vm, patient_id, self)
        self.dialog.open()
        return self.dialog

    def show_record(self, record: RecordView | None) -> None:
        body = QWidget()
        layout = QVBoxLayout(body)
        if record is None:
            layout.addWidget(QLabel("Select a patient to open the record."))
            layout.addStretch(1)
            self.setWidget(body)
            return
        p = record.patient
        banner = QLabel(f"<h2>{p.name}</h2><b>MRN</b> {p.mrn} &nbsp; <b>Born</b> {p.birth_date} &nbsp; {p.sex}")
        banner.setObjectName("banner")
        layout.addWidget(banner)
        if record.device:
            layout.addWidget(self._device(record))
        charts = QGroupBox("Remote monitoring, last 30 days (shaded: normal range; ✕: out of range)")
        grid = QGridLayout(charts)
        for i, series in enumerate(record.series):
            grid.addWidget(TelemetryChart(series), i // 2, i % 2)
        layout.addWidget(charts)
        history = QGroupBox("History")
        hl = QVBoxLayout(history)
        allowed = record.decisions.get("view_history")
        if allowed is not None and not allowed.allowed:
            hl.addWidget(QLabel(allowed.reason))
        for entry in record.history:
            hl.addWidget(QLabel(f"{entry['date']} — {entry['summary']}"))
        layout.addWidget(history)
        layout.addWidget(self._actions(record))
        layout.addWidget(self._notes(record))
        layout.addStretch(1)
        self.setWidget(body)

    def _device(self, record: RecordView) -> QGroupBox:
        """The device, its firmware, the update in progress and the steps this user may take."""
        d, update = record.device, record.firmware
        box = QGroupBox("Implanted device")
        column = QVBoxLayout(box)
        column.addWidget(QLabel(f"{d['model']} · serial {d['serial']} · firmware <b>{d['firmware_version']}</b> · "
                                f"implanted {d['implanted_on']}"))
        if update is not None:
            approvals = ", ".join(f"{a['by']} ({a['role'].replace('_', ' ')})" for a in update.approvals) or "none yet"
            self.firmware_state = QLabel(f"Firmware update to <b>{update.target_version}</b>: "
                                         f"<b>{update.state.replace('_', ' ')}</b> · requested by "
                                         f"{update.requested_by} · approvals: {approvals}")
            column.addWidget(self.firmware_state)
        row = QHBoxLayout()
        self.firmware_version = QLineEdit()
        self.firmware_version.setPlaceholderText("Target version")
        self.firmware_buttons: dict[str, QPushButton] = {}
        reasons = []
        for action, label in FIRMWARE_STEPS.items():
            decision = record.firmware_decisions.get(action)
            button = QPushButton(label)
            button.setEnabled(decision is not None and decision.allowed)
            if decision is not None and not decision.allowed:
                button.setToolTip(decision.reason)
                if update is not None and update.state in ("requested", "approved_by_one") and \
                        action == "approve_firmware_update":
                    reasons.append(decision.reason)
            button.clicked.connect(lambda _=False, a=action: self._firmware(a))
            self.firmware_buttons[action] = button
            if action == "request_firmware_update":
                self.firmware_version.setEnabled(button.isEnabled())
                row.addWidget(self.firmware_version)
            row.addWidget(button)
        column.addLayout(row)
        self.firmware_message = QLabel(" ".join(reasons))
        self.firmware_message.setWordWrap(True)
        column.addWidget(self.firmware_message)
        return box

    def _firmware(self, action: str) -> None:
        value = self.firmware_version.text() if action == "request_firmware_update" else ""
        if action == "reject_firmware_update":
            value = "Rejected from the device panel."
        problem = self.vm.firmware_step(action, value)
        if problem:
            self.firmware_message.setText(problem)

    def _actions(self, record: RecordView) -> QGroupBox:
        """Record actions, each enabled by its decision; a refused one says why beside it."""
        box = QGroupBox("Actions")
        column = QVBoxLayout(box)
        self.delegate = QPushButton("&Delegate access to a caregiver…")
        self.delegate.clicked.connect(self.open_delegation)
        decision = record.decisions.get("delegate_access")
        self.delegate.setEnabled(decision is not None and decision.allowed)
        column.addWidget(self.delegate)
        if decision is not None and not decision.allowed:
            self.delegate_reason = QLabel(decision.reason)
            self.delegate_reason.setWordWrap(True)
            column.addWidget(self.delegate_reason)
        self.consent = QPushButton("Record the patient's &consent to export…")
        self.consent.clicked.connect(self.open_consent)
        column.addWidget(self.consent)
        self.export = QPushButton("E&xport…")
        self.export.clicked.connect(self.open_export)
        export = record.decisions.get("export")
        self.export.setEnabled(export is not None and export.allowed)
        self.export_reason = QLabel("" if export is None or export.allowed else export.reason)
        self.export_reason.setWordWrap(True)
        column.addWidget(self.export)
        column.addWidget(self.export_reason)
        return box

    def open_consent(self) -> ConsentDialog:
        self.consent_dialog = ConsentDialog(self.vm, self)
        self.consent_dialog.open()
        return self.consent_dialog

    def open_export(self) -> ExportDialog:
        self.export_dialog = ExportDialog(self.vm, self)
        self.export_dialog.open()
        return self.export_dialog

    def open_delegation(self) -> DelegationDialog:
        self.delegation_dialog = DelegationDialog(self.vm, self)
        self.delegation_dialog.open()
        return self.delegation_dialog

    def _notes(self, record: RecordView) -> QGroupBox:
        box = QGroupBox("Notes")
        nl = QVBoxLayout(box)
        notes = QListWidget()
        for n in record.notes:
            notes.addItem(f"{n['time'][:16]} {n['author_id']} ({n['note_type']}): {n['text']}")
        nl.addWidget(notes)
        decision = record.decisions.get("edit_clinical_notes")
        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("New note")
        self.save = QPushButton("Save &note")
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        can_write = decision is not None and decision.allowed
        self.editor.setEnabled(can_write)
        self.save.setEnabled(can_write)
        if decision is not None and not decision.allowed:
            self.reason.setText(decision.reason)
            self.save.setToolTip(decision.reason)
        self.save.clicked.connect(lambda: self.vm.save_note(self.editor.toPlainText()))
        nl.addWidget(self.editor)
        nl.addWidget(self.save)
        nl.addWidget(self.reason)
        return box
