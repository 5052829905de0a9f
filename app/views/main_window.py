"""The main window: sign-in, then the patient list beside the open record, and a status bar with
the policy set, online/offline and the audit log."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter, QStackedWidget

from app.services.workstation import Status
from app.viewmodels.workstation_vm import WorkstationViewModel
from app.views.patient_list import PatientListView
from app.views.record import RecordViewWidget
from app.views.sign_in import SignInView


class MainWindow(QMainWindow):
    def __init__(self, vm: WorkstationViewModel) -> None:
        super().__init__()
        self.vm = vm
        self.setWindowTitle("CCC Workstation")
        self.sign_in = SignInView(vm)
        self.patients = PatientListView(vm)
        self.record = RecordViewWidget(vm)
        work = QSplitter()
        work.addWidget(self.patients)
        work.addWidget(self.record)
        work.setSizes([380, 900])
        self.stack = QStackedWidget()
        self.stack.addWidget(self.sign_in)
        self.stack.addWidget(work)
        self.setCentralWidget(self.stack)
        self.status_label = QLabel()
        self.statusBar().addPermanentWidget(self.status_label)
        vm.signed_in.connect(self._on_signed_in)
        vm.status_changed.connect(self.show_status)
        vm.message.connect(lambda text: self.statusBar().showMessage(text, 15000))
        QShortcut(QKeySequence("Ctrl+F"), self, activated=self.patients.search.setFocus)
        QShortcut(QKeySequence("Ctrl+L"), self, activated=vm.sign_out)
        self.show_status(vm.status())

    def _on_signed_in(self, user: object) -> None:
        self.stack.setCurrentIndex(1 if user is not None else 0)
        self.setWindowTitle(f"CCC Workstation — {user.name}" if user is not None else "CCC Workstation")

    def show_status(self, status: Status) -> None:
        user = self.vm.user
        who = f"{user.name} ({', '.join(r.replace('_', ' ') for r in user.roles)}) · " if user else ""
        online = "online" if status.online else "offline"
        self.status_label.setText(f"{who}Policies: {status.policy_version} · {online} · "
                                  f"audit records: {status.audit_backlog} · {status.message}")
