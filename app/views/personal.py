"""The personal workspace (patients and delegated caregivers): whose readings (a choice when the
policies show more than one patient), the latest readings in plain words against their usual range,
and alerts explained simply. Nothing here offers a device workflow or shows clinicians' notes."""

from __future__ import annotations

import html

from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.viewmodels.personal_vm import PersonalPage, PersonalViewModel
from app.views.delegation_dialog import DelegationDialog
from app.views.empty_note import EmptyNote
from app.views.export_dialog import ConsentDialog


class PersonalView(QWidget):
    def __init__(self, vm: PersonalViewModel) -> None:
        super().__init__()
        self.setAccessibleName("Your readings and alerts")
        self.vm = vm
        self.patient = QComboBox()
        self.patient.setAccessibleName("Whose readings")
        self.patient.activated.connect(lambda i: vm.show(self.patient.itemData(i)))
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        self.alerts = QLabel()
        self.alerts.setWordWrap(True)
        self.alerts.setAccessibleName("Alerts, explained")
        self.readings = QTableWidget(0, 3)
        self.readings.setAccessibleName("Latest readings")
        self.readings.setHorizontalHeaderLabels(["Reading", "Latest", "Usual range"])
        self.readings.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.readings.verticalHeader().setVisible(False)
        self.readings.horizontalHeader().setStretchLastSection(True)
        self.no_readings = EmptyNote(self.readings, "")
        self.help = QLabel(
            "These are the readings your clinic receives from the device. Questions about them? "
            "Call your clinic. In an emergency, call the emergency number."
        )
        self.help.setWordWrap(True)
        # The patient's own steps, as the policies offer them on the record (a refusal says why).
        self.consent = QPushButton("Record my &consent to share my data…")
        self.consent.clicked.connect(self.open_consent)
        self.delegate = QPushButton("Let a &caregiver see my readings…")
        self.delegate.clicked.connect(self.open_delegation)
        steps = QHBoxLayout()
        steps.addWidget(self.consent)
        steps.addWidget(self.delegate)
        steps.addStretch(1)
        choose = QHBoxLayout()
        self.whose = QLabel("&Readings of")
        self.whose.setBuddy(self.patient)
        choose.addWidget(self.whose)
        choose.addWidget(self.patient, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(choose)
        layout.addWidget(self.heading)
        layout.addWidget(self.alerts)
        layout.addWidget(self.readings, 1)
        layout.addLayout(steps)
        layout.addWidget(self.help)
        vm.patients_changed.connect(self.show_patients)
        vm.page_changed.connect(self.show_page)

    def show_patients(self, choices: list[tuple[str, str]]) -> None:
        self.patient.clear()
        for patient_id, name in choices:
            self.patient.addItem(name, patient_id)
        several = len(choices) > 1
        self.patient.setVisible(several)
        self.whose.setVisible(several)

    def open_consent(self) -> ConsentDialog:
        self.consent_dialog = ConsentDialog(self.vm.record, self)
        self.consent_dialog.open()
        return self.consent_dialog

    def open_delegation(self) -> DelegationDialog:
        self.delegation_dialog = DelegationDialog(self.vm.record, self)
        self.delegation_dialog.open()
        return self.delegation_dialog

    def _show_steps(self) -> None:
        """Consent and delegation: shown only when the policies offer them to this user here."""
        for button, action in ((self.consent, "record_consent"), (self.delegate, "delegate_access")):
            button.setVisible(self.vm.offers.get(action, False))

    def show_page(self, page: PersonalPage | None) -> None:
        self._show_steps()
        if page is None or page.problem:
            self.heading.setText(html.escape(page.problem if page else self.vm.empty_text()))
            self.alerts.clear()
            self.no_readings.say("No readings to show.")
            self.readings.setRowCount(0)
            return
        latest = max((r.when for r in page.readings), default="")
        self.heading.setText(
            f"<h2>Readings of {html.escape(page.name)}</h2>"
            + (f"Last received {html.escape(latest)}." if latest else "")
        )
        self.no_readings.say("No readings received yet: your clinic has not received a transmission from the device.")
        if page.alerts:
            items = "".join(
                f"<li><b>{'⚠ ' if a.urgent else ''}{html.escape(a.what)}</b><br>{html.escape(a.meaning)}</li>"
                for a in page.alerts
            )
            self.alerts.setText(f"<b>Alerts</b><ul>{items}</ul>")
        else:
            self.alerts.setText("<b>No alerts</b>: nothing needs a look at the moment.")
        self.readings.setRowCount(len(page.readings))
        for i, r in enumerate(page.readings):
            usual = r.usual + ("" if r.in_range else " — outside it, your clinic is told")
            for j, text in enumerate((r.name, r.value + ("" if r.in_range else " ⚠"), usual)):
                self.readings.setItem(i, j, QTableWidgetItem(text))
        self.readings.resizeColumnsToContents()
