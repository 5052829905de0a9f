"""A patient's record: a fixed patient banner (patient_banner.py) that never scrolls away, then, in
a scrolling area, the device panel, telemetry charts with normal ranges, history, notes, and controls enabled by the
engine's decisions, each refusal explained in the policies' words."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.viewmodels.break_glass_vm import BreakGlassViewModel
from app.viewmodels.export_vm import ExportViewModel
from app.viewmodels.record_vm import OpenRecord, RecordRefusal, RecordViewModel, offered
from app.views.alerts_panel import AlertsPanel
from app.views.break_glass_dialog import BreakGlassDialog
from app.views.delegation_dialog import DelegationDialog
from app.views.dialog_parts import Confirmation, Said, confirm
from app.views.empty_note import EmptyNote
from app.views.export_dialog import ConsentDialog, ExportDialog
from app.views.firmware_inputs import VersionInput, iso, schedule_date
from app.views.patient_banner import PatientBanner
from app.views.telemetry_chart import TelemetryChart

FIRMWARE_STEPS = {
    "request_firmware_update": "Request &update",
    "approve_firmware_update": "&Approve",
    "reject_firmware_update": "Re&ject",
    "schedule_firmware_update": "S&chedule",
    "apply_firmware_update": "Mark a&pplied",
}
# The steps that cannot be taken back: each is asked once more before it is done.
IRREVERSIBLE = {
    "approve_firmware_update": (
        "Approve",
        "Approve the firmware update of {device} to version {version}? An approval is recorded for "
        "review and cannot be withdrawn.",
    ),
    "apply_firmware_update": (
        "Mark applied",
        "Record that {device} now runs firmware {version}? This changes the device's record and cannot be undone.",
    ),
}
NOTE_LABELS = {"emergency": "Emergency note", "full": "Full note", "basic": "Basic note"}


def refusal_label(text: str) -> QLabel:
    """Why a control is refused, beside it; no room taken when there is nothing to say."""
    return Said(text)


class RecordViewWidget(QWidget):
    """The banner on top, fixed; the record (or its refusal) below it, in a scrolling area."""

    def __init__(self, vm: RecordViewModel, break_glass: BreakGlassViewModel) -> None:
        super().__init__()
        self.vm, self.break_glass = vm, break_glass
        self.banner = PatientBanner()
        self.shown_patient: str | None = None
        self.scroll = QScrollArea()
        self.scroll.setAccessibleName("Patient record")
        self.scroll.setWidgetResizable(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.banner)
        layout.addWidget(self.scroll, 1)
        vm.record_changed.connect(self.show_record)
        vm.record_denied.connect(self.show_denial)
        self.show_record(None)

    def body(self) -> QWidget:
        """What scrolls under the banner: the record, or the refusal."""
        return self.scroll.widget()

    def show_denial(self, refusal: RecordRefusal) -> None:
        """A refused record says why, in the place the record would have been, and offers
        emergency access when the policies name it as the remedy (or says why it is closed)."""
        self.shown_patient = None
        self.close_dialogs()
        self.banner.show_identity(refusal.identity, None, "the policies do not let you look this patient up.")
        body = QWidget()
        layout = QVBoxLayout(body)
        self.denial = QLabel(f"<h3>This record is not available to you</h3><p>{refusal.decision.reason}</p>")
        self.denial.setWordWrap(True)
        self.denial.setStyleSheet("QLabel { background: #fdecea; border: 1px solid #b3261e; padding: 12px; }")
        layout.addWidget(self.denial)
        self.emergency_button = QPushButton("&Emergency access (break-glass)…")
        self.emergency_reason = refusal_label("")
        if refusal.emergency is not None:
            self.emergency_button.setEnabled(offered(refusal.emergency))
            self.emergency_reason.setText("" if offered(refusal.emergency) else refusal.emergency.reason)
            self.emergency_button.clicked.connect(lambda: self.open_break_glass(refusal.patient_id))
            layout.addWidget(self.emergency_button)
            layout.addWidget(self.emergency_reason)
        layout.addStretch(1)
        self.scroll.setWidget(body)

    def open_break_glass(self, patient_id: str) -> BreakGlassDialog:
        self.dialog = BreakGlassDialog(self.break_glass, patient_id, self.break_glass.identity(patient_id), self)
        self.dialog.open()
        return self.dialog

    def close_dialogs(self) -> None:
        """The dialogs and questions of a record that is gone (a lock, a sign-out, an expiry, another
        patient) close with it: none stays on screen with a patient's name or a step to take."""
        for dialog in self.findChildren(QDialog):
            if dialog.isVisible():
                dialog.reject()

    def show_record(self, record: OpenRecord | None) -> None:
        """The record under its banner; shown again (after a save or a step), it stays where it was scrolled."""
        again = record is not None and self.shown_patient == record.patient_id
        if not again:
            self.close_dialogs()
        position = self.scroll.verticalScrollBar().value() if again else 0
        self.shown_patient = record.patient_id if record is not None else None
        self._fill(record)
        if position:
            QTimer.singleShot(0, lambda: self.scroll.verticalScrollBar().setValue(position))

    def _fill(self, record: OpenRecord | None) -> None:
        body = QWidget()
        layout = QVBoxLayout(body)
        if record is None:
            self.banner.clear()
            layout.addWidget(QLabel("Select a patient to open the record."))
            layout.addStretch(1)
            self.scroll.setWidget(body)
            return
        view = record.view
        self.banner.show_identity(
            record.identity, record.alert_level, alerts=[a.rule.says for a in record.alerts if a.open]
        )
        self.alerts = AlertsPanel(self.vm, record)
        layout.addWidget(self.alerts)
        if view.device:
            layout.addWidget(self._device(record))
        charts = QGroupBox(
            "Remote monitoring, last 30 days (green band: normal range; ✕: out of range; click a chart, "
            "then ← → Home End to read a point)"
        )
        grid = QGridLayout(charts)
        for i, series in enumerate(view.series):
            grid.addWidget(TelemetryChart(series), i // 2, i % 2)
        layout.addWidget(charts)
        history = QGroupBox("History")
        hl = QVBoxLayout(history)
        decision = view.decisions.get("view_history")
        if decision is not None and not decision.allowed:
            hl.addWidget(refusal_label(decision.reason))
        for entry in view.history:
            hl.addWidget(QLabel(f"{entry['date']} — {entry['summary']}"))
        if not view.history and (decision is None or decision.allowed):
            hl.addWidget(QLabel("No history recorded for this patient."))
        layout.addWidget(history)
        layout.addWidget(self._actions(record))
        layout.addWidget(self._notes(record))
        layout.addStretch(1)
        self.scroll.setWidget(body)

    def _device(self, record: OpenRecord) -> QGroupBox:
        """The device, its firmware, the update in progress and the steps this user may take."""
        d, update = record.view.device, record.firmware
        box = QGroupBox("Implanted device")
        column = QVBoxLayout(box)
        column.addWidget(
            QLabel(
                f"{d['model']} · serial {d['serial']} · firmware <b>{d['firmware_version']}</b> · "
                f"implanted {d['implanted_on']}"
            )
        )
        self.firmware_state = QLabel("")
        if update is not None:
            approvals = (
                ", ".join(f"{self.vm.person(a['by'])}, {a['role'].replace('_', ' ')}" for a in update.approvals)
                or "none yet"
            )
            self.firmware_state.setText(
                f"Firmware update to <b>{update.target_version}</b>: "
                f"<b>{update.state.replace('_', ' ')}</b> · requested by "
                f"{self.vm.person(update.requested_by)} · approvals: {approvals}"
            )
            column.addWidget(self.firmware_state)
        row = QHBoxLayout()
        self.firmware_version = VersionInput()
        self.schedule_date = schedule_date(self.vm.schedule_window())
        self.firmware_buttons: dict[str, QPushButton] = {}
        for action, label in FIRMWARE_STEPS.items():
            decision = record.firmware_decisions.get(action)
            button = QPushButton(label)
            button.setEnabled(decision is not None and decision.allowed)
            button.setToolTip(decision.reason if decision is not None else "")
            button.clicked.connect(lambda _=False, a=action: self._firmware(a))
            self.firmware_buttons[action] = button
            if action == "request_firmware_update":
                allowed = button.isEnabled()
                self.firmware_version.offer(self.vm.firmware_versions(), self.vm.check_version, button, allowed)
                row.addWidget(self.firmware_version)
            if action == "schedule_firmware_update":
                self.schedule_date.setEnabled(button.isEnabled())
                row.addWidget(self.schedule_date)
            row.addWidget(button)
        column.addLayout(row)
        column.addWidget(self.firmware_version.problem)
        approve = record.firmware_decisions.get("approve_firmware_update")
        waiting = update is not None and approve is not None and not approve.allowed
        self.firmware_message = refusal_label(approve.reason if waiting else "")
        column.addWidget(self.firmware_message)
        return box

    def _firmware(self, action: str) -> Confirmation | None:
        """A step of the device's update; an irreversible one asks for confirmation first."""
        record = self.vm.record
        if action in IRREVERSIBLE and record is not None and record.view.device and record.firmware:
            label, text = IRREVERSIBLE[action]
            device = f"{record.view.device['model']} (serial {record.view.device['serial']})"
            self.confirmation = confirm(
                self,
                label,
                text.format(device=device, version=record.firmware.target_version),
                label,
                lambda: self._firmware_step(action),
            )
            return self.confirmation
        self._firmware_step(action)
        return None

    def _firmware_step(self, action: str) -> None:
        value = {
            "request_firmware_update": self.firmware_version.text(),
            "schedule_firmware_update": iso(self.schedule_date),
            "reject_firmware_update": "Rejected from the device panel.",
        }.get(action, "")
        problem = self.vm.firmware_step(action, value)
        if problem:
            self.firmware_message.setText(problem)

    def _offer(self, column: QVBoxLayout, label: str, decision: object, slot: object) -> tuple[QPushButton, QLabel]:
        """A record action: enabled when the policies offer it, its refusal written beside it."""
        button = QPushButton(label)
        button.clicked.connect(slot)
        button.setEnabled(decision is not None and offered(decision))
        why = refusal_label(decision.reason if decision is not None and not offered(decision) else "")
        column.addWidget(button)
        column.addWidget(why)
        return button, why

    def _actions(self, record: OpenRecord) -> QGroupBox:
        """Record actions, each enabled by its decision; a refused one says why beside it."""
        box = QGroupBox("Actions")
        column = QVBoxLayout(box)
        decisions = record.view.decisions
        self.delegate, self.delegate_reason = self._offer(
            column, "&Delegate access to a caregiver…", decisions.get("delegate_access"), self.open_delegation
        )
        self.consent, self.consent_reason = self._offer(
            column, "Record the patient's &consent to export…", decisions.get("record_consent"), self.open_consent
        )
        exports = record.exports
        offer = next((d for d in exports.values() if offered(d)), exports.get("identified"))
        self.export, self.export_reason = self._offer(column, "E&xport…", offer, self.open_export)
        return box

    def open_consent(self) -> ConsentDialog:
        self.consent_dialog = ConsentDialog(self.vm, self)
        self.consent_dialog.open()
        return self.consent_dialog

    def open_export(self) -> ExportDialog:
        assert self.vm.record is not None
        self.export_dialog = ExportDialog(ExportViewModel(self.vm.session, self.vm.record.patient_id), self)
        self.export_dialog.open()
        return self.export_dialog

    def open_delegation(self) -> DelegationDialog:
        self.delegation_dialog = DelegationDialog(self.vm, self)
        self.delegation_dialog.open()
        return self.delegation_dialog

    def _keep_draft(self) -> None:
        self.vm.keep_draft(self.note_type.currentData() or "", self.editor.toPlainText())

    def _notes(self, record: OpenRecord) -> QGroupBox:
        box = QGroupBox("Notes")
        nl = QVBoxLayout(box)
        self.notes = notes = QListWidget()
        notes.setAccessibleName("Notes written on this record")
        notes.setWordWrap(True)  # a long note is read whole, not cut at the list's edge
        for n in record.view.notes:
            when, kind = n["time"][:16].replace("T", " "), NOTE_LABELS.get(n["note_type"], n["note_type"])
            notes.addItem(f"{when} UTC · {self.vm.person(n['author_id'])} · {kind}: {n['text']}")
        self.no_notes = EmptyNote(notes, "No notes on this record yet.")
        nl.addWidget(notes)
        self.note_type = QComboBox()
        for note_type in record.view.note_types:
            self.note_type.addItem(NOTE_LABELS.get(note_type, note_type), note_type)
        self.note_type.setVisible(len(record.view.note_types) > 1)
        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("New note (kept as a draft as you type, until you save it)")
        self.editor.setAccessibleName("New note")
        self.save = QPushButton("Save &note")
        can_write = bool(record.view.note_types)
        refusal = record.view.notes_refusal
        self.reason = refusal_label(refusal.reason if refusal is not None else "")
        self.editor.setEnabled(can_write)
        self.save.setEnabled(can_write)
        self.save.setToolTip(self.reason.text())
        self.save.clicked.connect(lambda: self.vm.save_note(self.note_type.currentData(), self.editor.toPlainText()))
        self.draft_note = QLabel()
        self.draft_note.setWordWrap(True)
        draft = record.draft
        if can_write and draft is not None:
            self.editor.setPlainText(draft.text)
            index = self.note_type.findData(draft.note_type)
            self.note_type.setCurrentIndex(max(index, 0))
            kept = draft.kept_at[:16].replace("T", " ")
            self.draft_note.setText(f"Your unsaved note from {kept} UTC is back in the editor.")
        elif record.saved:
            self.draft_note.setText(record.saved)
        self.draft_note.setVisible(bool(self.draft_note.text()))
        self.editor.textChanged.connect(self._keep_draft)
        self.note_type.currentIndexChanged.connect(self._keep_draft)
        nl.addWidget(self.draft_note)
        nl.addWidget(self.note_type)
        nl.addWidget(self.editor)
        nl.addWidget(self.save)
        nl.addWidget(self.reason)
        return box
