"""The main window: sign-in, then the patient list beside the open record; an idle-lock warning
with "Continue"; a status bar with the policy set and its age, online/offline and the audit
backlog."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.viewmodels.app_vm import ViewModels
from app.viewmodels.break_glass_vm import BreakGlassViewModel
from app.viewmodels.compliance_vm import ComplianceViewModel
from app.viewmodels.session_vm import SessionViewModel, Status
from app.views.admin import AdminView
from app.views.compliance import ComplianceView
from app.views.dialog_parts import Confirmation, confirm
from app.views.engineering import EngineeringView
from app.views.patient_list import PatientListView
from app.views.personal import PersonalView
from app.views.record import RecordViewWidget
from app.views.sign_in import SignInView

STATUS_SHARE = 0.45  # of the window's width at most for the status line (it wraps), the rest for messages
USER_INPUT = {QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.Wheel}


class IdleWarning(QFrame):
    """ "Locking in 42 s": in words, not only in colour, with a Continue button."""

    def __init__(self, vm: SessionViewModel) -> None:
        super().__init__()
        self.setStyleSheet("IdleWarning { background: #fff3c4; border: 1px solid #b08800; }")
        self.text = QLabel()
        self.button = QPushButton("&Continue working")
        self.button.clicked.connect(vm.continue_session)
        layout = QHBoxLayout(self)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.button)
        vm.lock_countdown.connect(self.show_countdown)
        self.hide()

    def show_countdown(self, seconds: int) -> None:
        if seconds < 0:
            self.hide()
            return
        self.text.setText(f"⚠ No activity: this workstation locks in {seconds} s to protect patient data.")
        self.show()


class EmergencyBanner(QFrame):
    """The red banner of an active break-glass session: whose record, the time left (in words),
    a warning near the end, and "End emergency access"."""

    def __init__(self, vm: BreakGlassViewModel) -> None:
        super().__init__()
        self.vm = vm
        self.setStyleSheet("EmergencyBanner { background: #b3261e; } QLabel { color: white; font-weight: bold; }")
        self.text = QLabel()
        self.button = QPushButton("&End emergency access")
        self.button.clicked.connect(self.ask_to_end)
        layout = QHBoxLayout(self)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.button)
        vm.emergency_changed.connect(self._changed)
        vm.countdown.connect(self.show_countdown)
        self.hide()

    def _changed(self, session: object) -> None:
        self.setVisible(session is not None)
        confirmation = getattr(self, "confirmation", None)
        if session is None and confirmation is not None and confirmation.isVisible():
            confirmation.reject()  # nothing left to end

    def ask_to_end(self) -> Confirmation:
        """Ending is for good: the record closes and opening it again needs a new break-glass."""
        self.confirmation = confirm(
            self,
            "End emergency access",
            f"End emergency access to {self.vm.patient_label()} now? The record closes; opening it again "
            "needs a new emergency access with its justification.",
            "End emergency access",
            self.vm.end,
        )
        return self.confirmation

    def show_countdown(self, seconds: int) -> None:
        ending_soon = self.vm.ending_soon(seconds)
        session = self.vm.emergency
        if session is None:
            return
        minutes, secs = divmod(seconds, 60)
        soon = " — ENDING SOON: save your work" if ending_soon else ""
        reason = dict(self.vm.reason_codes()).get(session.reason, session.reason)  # in words, not its code
        self.text.setText(
            f"EMERGENCY ACCESS (break-glass: {reason}) to {self.vm.patient_label()}: "
            f"{minutes:02d}:{secs:02d} left{soon}. Every access is recorded for review."
        )


class ComplianceQuestion(QFrame):
    """Compliance asked about one of this clinician's own events: answer with a late justification."""

    def __init__(self, vm: ComplianceViewModel) -> None:
        super().__init__()
        self.vm = vm
        self.event_id = ""
        self.setStyleSheet("ComplianceQuestion { background: #e8f0fe; border: 1px solid #1a56b0; }")
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.answer = QLineEdit()
        self.answer.setPlaceholderText("Your justification (at least 10 characters)")
        self.send = QPushButton("Send &justification")
        self.send.clicked.connect(self.submit)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        row = QHBoxLayout()
        row.addWidget(self.answer, 1)
        row.addWidget(self.send)
        layout.addLayout(row)
        vm.questions_changed.connect(self.show_questions)
        self.hide()

    def show_questions(self, questions: list[tuple[str, str, str]]) -> None:
        if not questions:
            self.event_id = ""
            self.hide()
            return
        self.event_id, reminder, what = questions[0]
        self.text.setText(f"<b>Compliance asks about your {what}:</b> {reminder}")
        self.show()

    def submit(self) -> None:
        problem = self.vm.justify(self.event_id, self.answer.text())
        if problem:
            self.text.setText(f"{self.text.text()}<br><i>{problem}</i>")
            return
        self.answer.clear()


class NoWorkspace(QLabel):
    """Shown when the policies open no workspace to the signed-in user: their reason."""

    def __init__(self) -> None:
        super().__init__()
        self.setWordWrap(True)


class MainWindow(QMainWindow):
    def __init__(self, vms: ViewModels) -> None:
        super().__init__()
        self.vms = vms
        session = vms.session
        self.vm = session
        self.setWindowTitle("CCC Workstation")
        self.sign_in = SignInView(session, vms.settings)
        self.patients = PatientListView(vms.patients)
        self.record = RecordViewWidget(vms.record, vms.break_glass)
        self.idle_warning = IdleWarning(session)
        self.emergency_banner = EmergencyBanner(vms.break_glass)
        self.compliance_question = ComplianceQuestion(vms.compliance)
        self.who = QLabel()
        self.switch_user = QPushButton("Switch &user / lock (Ctrl+L)")
        self.switch_user.clicked.connect(session.sign_out)
        splitter = QSplitter()
        splitter.addWidget(self.patients)
        splitter.addWidget(self.record)
        splitter.setSizes([520, 880])
        self.compliance = ComplianceView(vms.compliance, vms.reports)
        self.admin = AdminView(vms.admin)  # a tab beside the review queue, when the policies give the tools
        vms.admin.changed.connect(self._admin_tab)
        self.engineering = EngineeringView(vms.devices)
        self.personal = PersonalView(vms.personal)
        self.no_workspace = NoWorkspace()
        self.workspaces = QStackedWidget()  # the one the policies open: clinical, personal, compliance, engineering
        self.workspace_pages = {
            "clinical": splitter,
            "personal": self.personal,
            "compliance": self.compliance,
            "engineering": self.engineering,
            "": self.no_workspace,
        }
        for page in self.workspace_pages.values():
            self.workspaces.addWidget(page)
        header = QHBoxLayout()
        header.addWidget(self.who, 1)
        header.addWidget(self.switch_user)
        work = QWidget()
        column = QVBoxLayout(work)
        column.addWidget(self.emergency_banner)
        column.addWidget(self.idle_warning)
        column.addWidget(self.compliance_question)
        column.addLayout(header)
        column.addWidget(self.workspaces, 1)
        self.stack = QStackedWidget()  # sign-in, or the signed-in user's workspace
        self.stack.addWidget(self.sign_in)
        self.stack.addWidget(work)
        self.setCentralWidget(self.stack)
        self.status_label = QLabel()
        self.status_label.setAccessibleName("Workstation status")
        self.statusBar().addPermanentWidget(self.status_label)
        session.signed_in.connect(self._on_signed_in)
        session.status_changed.connect(self.show_status)
        session.message.connect(self.show_message)  # a method: Qt disconnects it when the window goes
        self.record_patient: str | None = None  # whose record is on screen, to tell a new one from a reshow
        vms.record.record_changed.connect(self._record_shown)
        self.find_shortcut = QShortcut(QKeySequence("Ctrl+F"), self, activated=self.patients.search.setFocus)
        self.lock_shortcut = QShortcut(QKeySequence("Ctrl+L"), self, activated=session.sign_out)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self)
        self.show_status(session.status())

    def _admin_tab(self, tools: object) -> None:
        """The Administration tab is there only while the policies give this user the tools."""
        index = self.compliance.indexOf(self.admin)
        if tools is not None and index < 0:
            self.compliance.addTab(self.admin, "&Administration")
        elif tools is None and index >= 0:
            self.compliance.removeTab(index)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's naming
        if event.type() in USER_INPUT:
            self.vm.user_activity()
        return False

    def _on_signed_in(self, user: object) -> None:
        self.statusBar().clearMessage()  # nobody reads the previous user's last message
        if user is None:
            self.stack.setCurrentIndex(0)
            self.setWindowTitle("CCC Workstation")
            self.who.clear()
            return
        self.stack.setCurrentIndex(1)
        workspace = self.vm.workspace
        self.no_workspace.setText(workspace.decision.reason if not workspace.name else "")
        self.workspaces.setCurrentWidget(self.workspace_pages[workspace.name])
        roles = ", ".join(r.replace("_", " ") for r in user.roles)
        self.setWindowTitle(f"CCC Workstation — {user.name}")
        demo = " · <i>demo user (not for patient care)</i>" if self.vm.demo else ""
        self.who.setText(f"<b>{user.name}</b> · {roles}{demo}")
        for reminder in self.vms.compliance.reminders():
            self.statusBar().showMessage(f"From compliance: {reminder}", 30000)

    def _record_shown(self, record: object) -> None:
        """Another patient's record on screen (or the same one opened by emergency access after its
        refusal) makes the last message stale: "You are not on this patient's care team" must not
        sit under an open record. A record shown again (a save, an acknowledgement) keeps it."""
        patient = getattr(record, "patient_id", None)
        if patient is not None and patient != self.record_patient:
            self.statusBar().clearMessage()
        self.record_patient = patient

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 15000)

    def show_status(self, status: Status) -> None:
        self.status_label.setText(status.text)
        self._fit_status()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's naming
        super().resizeEvent(event)
        self._fit_status()

    def _fit_status(self) -> None:
        """The status line keeps to its share of the width, wrapping onto more lines only when it
        must, so a message on the left (a refusal, a reminder) is never cut off by it. Its height
        is set from its width then and there, so the bar does not change height under the record."""
        label = self.status_label
        limit = int(self.width() * STATUS_SHARE)
        wide = label.fontMetrics().horizontalAdvance(label.text())
        wrap = wide > limit
        label.setWordWrap(wrap)
        label.setMaximumWidth(limit)
        label.setMinimumWidth(limit if wrap else wide)
        label.setMinimumHeight(label.heightForWidth(limit) if wrap else 0)
        self.statusBar().reformat()  # the bar's height follows now, not at its next message
