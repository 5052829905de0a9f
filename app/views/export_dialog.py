"""Consent capture and export: the consent the patient gives (who, until when), then an export
(JSON or a FHIR R4 Bundle) with a reason, running off the UI thread with a progress bar."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QSpinBox,
    QVBoxLayout,
)

from app.viewmodels.workstation_vm import WorkstationViewModel
from app.views.dialog_parts import action_buttons, message_line


class ConsentDialog(QDialog):
    def __init__(self, vm: WorkstationViewModel, parent: object = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.setWindowTitle("Record the patient's consent to export")
        self.given_by = QLineEdit()
        self.given_by.setPlaceholderText("The patient's name, as signed")
        self.days = QSpinBox()
        self.days.setRange(1, 3650)
        self.days.setValue(365)
        self.days.setSuffix(" days")
        self.error = message_line()
        buttons, self.save = action_buttons(self, "&Record consent", self.submit)
        form = QFormLayout()
        form.addRow("Scope", QLabel("Export of the patient's data (identified to the physician, "
                                    "de-identified to the device manufacturer)"))
        form.addRow("&Given by", self.given_by)
        form.addRow("&Valid for", self.days)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def submit(self) -> None:
        problem = self.vm.record_consent(self.given_by.text(), self.days.value())
        self.error.setText(problem)
        if not problem:
            self.accept()


class ExportDialog(QDialog):
    def __init__(self, vm: WorkstationViewModel, parent: object = None, patient_id: str | None = None) -> None:
        super().__init__(parent)
        self.vm, self.patient_id = vm, patient_id
        kind = "de-identified (HIPAA Safe Harbor)" if vm.export_is_deidentified() else "identified"
        self.setWindowTitle(f"Export {kind} patient data")
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("Why this export is needed (at least 10 characters)")
        self.format = QComboBox()
        self.format.addItem("FHIR R4 Bundle", "fhir")
        self.format.addItem("JSON", "json")
        self.directory = QLineEdit(str(vm.default_export_directory()))
        self.progress = QProgressBar()
        self.progress.setRange(0, 3)
        self.progress.setValue(0)
        self.result = message_line(error=False)
        buttons, self.start = action_buttons(self, "&Export", self.submit, QDialogButtonBox.StandardButton.Close)
        vm.export_progress.connect(self._progress)
        vm.export_finished.connect(self._finished)
        form = QFormLayout()
        form.addRow("Data", QLabel(kind))
        form.addRow("&Reason", self.reason)
        form.addRow("&Format", self.format)
        form.addRow("&Folder", self.directory)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.result)
        layout.addWidget(buttons)

    def submit(self) -> None:
        self.start.setEnabled(False)
        self.result.setText("Exporting…")
        self.vm.start_export(self.reason.text(), self.format.currentData(), Path(self.directory.text()),
                             self.patient_id)

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _finished(self, outcome: object) -> None:
        self.start.setEnabled(True)
        if isinstance(outcome, str):
            self.result.setText(outcome)
            return
        flag = (" No reason was given: the export is flagged for compliance review; add the reason later."
                if outcome.reason_missing else "")
        self.result.setText(f"Exported to {outcome.path}.{flag}")
