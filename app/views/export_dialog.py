"""Consent capture and export: the consent the patient gives (who, until when), then an export
(JSON or a FHIR R4 Bundle) of a kind the policies offer, with a reason, running off the UI thread
with a progress bar."""

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
    QVBoxLayout,
)

from app.viewmodels.export_vm import ExportViewModel
from app.viewmodels.record_vm import RecordViewModel
from app.views.dialog_parts import action_buttons, days_box, form_answer, message_line, patient_banner


class ConsentDialog(QDialog):
    def __init__(self, vm: RecordViewModel, parent: object = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.setWindowTitle("Record the patient's consent to export")
        self.given_by = QLineEdit()
        self.given_by.setPlaceholderText("The patient's name, as signed")
        self.days = days_box(3650, 365)
        decision = vm.record.view.decisions.get("record_consent") if vm.record else None
        self.patients_word = form_answer("The patient gave this consent to me, in person", decision)
        self.error = message_line()
        buttons, self.save = action_buttons(self, "&Record consent", self.submit)
        form = QFormLayout()
        form.addRow(
            "Scope",
            QLabel(
                "Export of the patient's data (identified to the physician, de-identified to the device manufacturer)"
            ),
        )
        form.addRow("&Given by", self.given_by)
        form.addRow("&Valid for", self.days)
        form.addRow("", self.patients_word)
        layout = QVBoxLayout(self)
        layout.addWidget(patient_banner(vm.record.identity if vm.record else None))
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def submit(self) -> None:
        problem = self.vm.record_consent(self.given_by.text(), self.days.value(), self.patients_word.isChecked())
        self.error.setText(problem)
        if not problem:
            self.accept()


class ExportDialog(QDialog):
    def __init__(self, vm: ExportViewModel, parent: object = None) -> None:
        super().__init__(parent)
        self.vm = vm
        identity = vm.identity()
        self.setWindowTitle(f"Export patient data ({identity.label if identity else 'de-identified'})")
        self.kind = QComboBox()
        for kind, label in vm.kinds():
            self.kind.addItem(label, kind)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("Why this export is needed")
        self.format = QComboBox()
        self.format.addItem("FHIR R4 Bundle", "fhir")
        self.format.addItem("JSON", "json")
        self.directory = QLineEdit(str(vm.default_directory()))
        self.progress = QProgressBar()
        self.progress.setRange(0, 3)
        self.progress.setValue(0)
        self.result = message_line(error=False)
        buttons, self.start = action_buttons(self, "&Export", self.submit, QDialogButtonBox.StandardButton.Close)
        self.start.setEnabled(self.kind.count() > 0)
        vm.progress.connect(self._progress)
        vm.finished.connect(self._finished)
        form = QFormLayout()
        form.addRow("&Data", self.kind)
        form.addRow("&Reason", self.reason)
        form.addRow("&Format", self.format)
        form.addRow("F&older", self.directory)
        layout = QVBoxLayout(self)
        layout.addWidget(patient_banner(identity))
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.result)
        layout.addWidget(buttons)

    def submit(self) -> None:
        self.start.setEnabled(False)
        self.result.setText("Exporting…")
        self.vm.start(
            self.kind.currentData(), self.reason.text(), self.format.currentData(), Path(self.directory.text())
        )

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _finished(self, outcome: object) -> None:
        self.start.setEnabled(True)
        if isinstance(outcome, str):
            self.result.setText(outcome)
            return
        flag = (
            " No reason was given: the export is flagged for compliance review; add the reason later."
            if outcome.reason_missing
            else ""
        )
        self.result.setText(f"Exported to {outcome.path}.{flag}")
