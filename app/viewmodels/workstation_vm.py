"""The app's view-model: the signed-in session, the patient list and the open record, as Qt
signals the views render. Every piece of data it emits was decided by the service layer."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from app.services.access import Decision
from app.services.break_glass import WARN_BEFORE, BreakGlassRefused, BreakGlassSession
from app.services.compliance import ReviewItem, ReviewRefused
from app.services.consent import ConsentRefused
from app.services.delegation import Delegation, DelegationRefused
from app.services.export import ExportRefused
from app.services.firmware import FirmwareRefused
from app.services.users import SignedInUser
from app.services.workstation import DeviceRow, PatientRow, RecordView, Status, Workstation


@dataclass(frozen=True)
class Refusal:
    """A record that was not shown: why, and whether emergency access could open it."""

    patient_id: str
    reason: str
    emergency: Decision | None


class IdleLock(QObject):
    """Locks the session after ``timeout`` seconds without input, warning for the last
    ``warning`` seconds. Measured on a monotonic clock so a clock change cannot skip it."""

    countdown = Signal(int)  # seconds left while warning; -1 when the warning is over
    expired = Signal()

    def __init__(self, timeout: int, warning: int = 60, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.timeout, self.warning, self.clock = timeout, min(warning, timeout), clock
        self.last_input = clock()
        self.warning_shown = False
        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.tick)

    def start(self) -> None:
        self.touch()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        self._end_warning()

    def touch(self) -> None:
        """Input from the user: the idle time starts again."""
        self.last_input = self.clock()
        self._end_warning()

    def tick(self) -> None:
        if not self.timer.isActive():
            return
        left = self.timeout - (self.clock() - self.last_input)
        if left <= 0:
            self.stop()
            self.expired.emit()
        elif left <= self.warning:
            self.warning_shown = True
            self.countdown.emit(int(left + 0.999))

    def _end_warning(self) -> None:
        if self.warning_shown:
            self.warning_shown = False
            self.countdown.emit(-1)


class WorkstationViewModel(QObject):
    signed_in = Signal(object)  # SignedInUser | None
    patients_changed = Signal(list)  # list[PatientRow]
    record_changed = Signal(object)  # RecordView | None
    status_changed = Signal(object)  # Status
    message = Signal(str)  # something the user must read (a denial, an error)
    report_ready = Signal(object)  # Report, or why not (str)
    export_progress = Signal(int, int)  # done, total
    export_finished = Signal(object)  # ExportResult, or why not (str)
    record_denied = Signal(object)  # Refusal: why the record just asked for is not shown
    emergency_changed = Signal(object)  # BreakGlassSession | None
    emergency_countdown = Signal(int, bool)  # seconds left, ending soon
    lock_countdown = Signal(int)  # seconds before the idle lock; -1 hides the warning

    def __init__(self, workstation: Workstation, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.workstation = workstation
        self.user: SignedInUser | None = None
        self.search = ""
        self.record: RecordView | None = None
        self.locked_from: tuple[str, str | None] | None = None  # (user id, open patient) at the idle lock
        self.idle = IdleLock(workstation.idle_lock_seconds, clock=clock)
        self.idle.countdown.connect(self.lock_countdown)
        self.idle.expired.connect(self.lock)
        self.status_timer = QTimer(self)
        self.status_timer.setInterval(5000)
        self.status_timer.timeout.connect(lambda: self.status_changed.emit(self.status()))
        self.status_timer.start()
        self.emergency: BreakGlassSession | None = None
        self.emergency_timer = QTimer(self)
        self.emergency_timer.setInterval(1000)
        self.emergency_timer.timeout.connect(self.emergency_tick)

    @property
    def keyring_notice(self) -> str:
        return self.workstation.secrets.notice

    def staff_choices(self) -> list[tuple[str, str]]:
        return self.workstation.staff_choices()

    def sign_in(self, user_id: str, password: str) -> bool:
        user = self.workstation.sign_in(user_id, password)
        if user is None:
            self.message.emit("Sign-in failed: check the user and the password.")
            return False
        resume, self.locked_from = self.locked_from, None
        self.user = user
        self.record = None  # never leave the previous user's data on screen
        self.signed_in.emit(user)
        self.record_changed.emit(None)
        self.refresh()
        self.idle.start()
        self._set_emergency(self.workstation.emergency_session(user))
        if resume is not None and resume[0] == user.id and resume[1] is not None:
            self.open_patient(resume[1])  # the same user back after a lock: where they were (audited again)
        return True

    def sign_out(self) -> None:
        """Signs out (also fast user switching): nothing of this user stays on screen."""
        self.idle.stop()
        self._set_emergency(None)  # the session itself goes on: it resumes when its user signs in
        self.workstation.sign_out()
        self.user, self.record, self.search = None, None, ""
        self.record_changed.emit(None)
        self.patients_changed.emit([])
        self.signed_in.emit(None)

    def lock(self) -> None:
        """The idle lock: like a sign-out, but the same user signing in again resumes the record."""
        if self.user is None:
            return
        minutes = max(1, self.workstation.idle_lock_seconds // 60)
        self.locked_from = (self.user.id, self.record.patient.id if self.record else None)
        self.sign_out()
        self.message.emit(f"Locked after {minutes} min without activity. Sign in to continue.")

    def continue_session(self) -> None:
        self.idle.touch()

    def user_activity(self) -> None:
        if self.user is not None:
            self.idle.touch()

    def set_search(self, text: str) -> None:
        self.search = text
        self.refresh()

    def refresh(self) -> None:
        if self.user is not None:
            rows: list[PatientRow] = self.workstation.patient_rows(self.user, self.search)
            self.patients_changed.emit(rows)
        self.status_changed.emit(self.status())

    def open_patient(self, patient_id: str) -> None:
        if self.user is None:
            return
        try:
            self.record = self.workstation.open_record(self.user, patient_id)
        except PermissionError as exc:
            self._refused(patient_id, str(exc))
            return
        except Exception as exc:  # the audit log could not be written: show nothing
            self._refused(patient_id, f"The record cannot be shown: {exc}")
            return
        self.record_changed.emit(self.record)
        self.status_changed.emit(self.status())

    def _refused(self, patient_id: str, reason: str) -> None:
        self.record = None
        self.record_changed.emit(None)
        known = self.user is not None and self.workstation.store.patient(patient_id) is not None
        emergency = self.workstation.emergency_access_possible(self.user, patient_id) if known else None
        self.record_denied.emit(Refusal(patient_id, reason, emergency))
        self.message.emit(reason)
        self.status_changed.emit(self.status())

    def open_by_mrn(self, mrn: str) -> None:
        """An exact MRN typed in the search (an ER wristband): opens it, or says why not."""
        patient_id = self.workstation.find_by_mrn(mrn)
        if patient_id is None:
            self.message.emit(f"No patient has the MRN {mrn.strip()}.")
            return
        self.open_patient(patient_id)

    # -- compliance -------------------------------------------------------------------------------

    def workspace(self) -> str:
        """"compliance" for reviewers, "engineering" for manufacturer engineers, else "clinical"."""
        roles = set(self.user.roles) if self.user else set()
        if roles & {"compliance_officer", "hospital_admin"}:
            return "compliance"
        return "engineering" if "manufacturer_engineer" in roles else "clinical"

    def reminders(self) -> list[str]:
        return self.workstation.compliance.reminders_for(self.user) if self.user else []

    def open_questions(self) -> list[tuple[str, str, str]]:
        return self.workstation.compliance.open_questions(self.user) if self.user else []

    def review_queue(self) -> list[ReviewItem]:
        return self.workstation.compliance.queue(self.user) if self.user else []

    def review_step(self, event_id: str, step: str, comment: str) -> str:
        if self.user is None:
            return "Sign in first."
        try:
            self.workstation.compliance.annotate(self.user, event_id, step, comment)
        except ReviewRefused as exc:
            return str(exc)
        return ""

    def hospital_of_user(self) -> str:
        return (self.user.attributes.get("hospital_ids") or [""])[0] if self.user else ""

    def start_report(self, report_type: str) -> None:
        """Builds a report on a worker thread; the outcome arrives as ``report_ready``."""
        user, hospital = self.user, self.hospital_of_user()

        def work() -> None:
            try:
                self.report_ready.emit(self.workstation.compliance.report(user, report_type, hospital))
            except ReviewRefused as exc:
                self.report_ready.emit(str(exc))

        threading.Thread(target=work, name="report", daemon=True).start()

    # -- consent and export -----------------------------------------------------------------------

    def record_consent(self, given_by: str, days: int) -> str:
        if self.user is None or self.record is None:
            return "Open the patient's record first."
        try:
            self.workstation.record_consent(self.user, self.record.patient.id, given_by,
                                            datetime.now(UTC) + timedelta(days=days))
        except ConsentRefused as exc:
            return str(exc)
        self.open_patient(self.record.patient.id)
        return ""

    def export_is_deidentified(self) -> bool:
        return self.user is not None and self.workstation.exports_deidentified(self.user)

    def start_export(self, reason: str, fmt: str, directory: Path, patient_id: str | None = None) -> None:
        """Runs the export (of the open record, or ``patient_id``) on a worker thread; progress and
        the outcome arrive as signals."""
        patient_id = patient_id or (self.record.patient.id if self.record else None)
        if self.user is None or patient_id is None:
            self.export_finished.emit("Open the patient's record first.")
            return
        user, deidentified = self.user, self.export_is_deidentified()

        def work() -> None:
            try:
                result = self.workstation.export(user, patient_id, deidentified=deidentified, reason=reason, fmt=fmt,
                                                 directory=directory, progress=self.export_progress.emit)
            except ExportRefused as exc:
                self.export_finished.emit(str(exc))
            except OSError as exc:
                self.export_finished.emit(f"The export could not be written: {exc}")
            else:
                self.export_finished.emit(result)

        threading.Thread(target=work, name="export", daemon=True).start()

    def default_export_directory(self) -> Path:
        return self.workstation.data_dir / "exports"

    # -- firmware ---------------------------------------------------------------------------------

    def firmware_step(self, action: str, value: str = "", device_id: str | None = None) -> str:
        """A step of a device's update (by default the open record's); returns why not, or ""."""
        if device_id is None and (self.record is None or self.record.device is None):
            return "Open the patient's record first."
        if self.user is None:
            return "Sign in first."
        try:
            self.workstation.firmware_step(self.user, action, device_id or self.record.device["id"], value)
        except FirmwareRefused as exc:
            return str(exc)
        if device_id is None:
            self.open_patient(self.record.patient.id)
        return ""

    def device_rows(self) -> list[DeviceRow]:
        return self.workstation.device_rows(self.user) if self.user else []

    def firmware_decisions(self, device_id: str) -> dict[str, Decision]:
        return self.workstation.firmware_decisions(self.user, device_id) if self.user else {}

    # -- delegation -------------------------------------------------------------------------------

    def caregiver_choices(self) -> list[tuple[str, str]]:
        return self.workstation.caregiver_choices()

    def delegations(self) -> list[Delegation]:
        return self.workstation.delegations.for_patient(self.record.patient.id) if self.record else []

    def grant_delegation(self, delegate_id: str, days: int, patient_permission: bool) -> str:
        """Grants the open record's patient to a caregiver for ``days``; returns why not, or ""."""
        if self.user is None or self.record is None:
            return "Open the patient's record first."
        expires = datetime.now(UTC) + timedelta(days=days)
        try:
            self.workstation.grant_delegation(self.user, self.record.patient.id, delegate_id, expires,
                                              patient_permission)
        except DelegationRefused as exc:
            return str(exc)
        return ""

    def revoke_delegation(self, delegation_id: str) -> str:
        if self.user is None:
            return "Sign in first."
        try:
            self.workstation.revoke_delegation(self.user, delegation_id)
        except DelegationRefused as exc:
            return str(exc)
        return ""

    # -- break-glass ------------------------------------------------------------------------------

    def request_emergency_access(self, patient_id: str, reason: str, justification: str, password: str) -> str:
        """Starts break-glass for one patient and opens the record; returns why not, or ""."""
        if self.user is None:
            return "Sign in first."
        try:
            self.user = self.workstation.start_emergency_access(self.user, patient_id, reason, justification,
                                                                password)
        except BreakGlassRefused as exc:
            return str(exc)
        self._set_emergency(self.workstation.emergency_session(self.user))
        self.refresh()
        self.open_patient(patient_id)
        return ""

    def end_emergency_access(self, why: str = "ended by the clinician") -> None:
        if self.user is None or self.emergency is None:
            return
        patient_id = self.emergency.patient_id
        self.user = self.workstation.end_emergency_access(self.user, why)
        self._set_emergency(None)
        if self.record is not None and self.record.patient.id == patient_id:
            self.record = None
            self.record_changed.emit(None)
        self.refresh()

    def emergency_tick(self) -> None:
        """Every second: the countdown, and at expiry the record closes, idle or not."""
        if self.emergency is None:
            return
        left = self.workstation.break_glass.remaining(self.emergency)
        if left.total_seconds() <= 0:
            self.end_emergency_access("expired")
            self.message.emit("Emergency access ended after 60 minutes; the record is closed.")
            return
        self.emergency_countdown.emit(int(left.total_seconds()), left <= WARN_BEFORE)

    def _set_emergency(self, session: BreakGlassSession | None) -> None:
        self.emergency = session
        if session is None:
            self.emergency_timer.stop()
        else:
            self.emergency_timer.start()
        self.emergency_changed.emit(session)
        if session is not None:
            self.emergency_tick()

    def empty_list_reason(self) -> str:
        return self.workstation.empty_list_reason(self.user) if self.user else ""

    def save_note(self, text: str) -> bool:
        if self.user is None or self.record is None:
            return False
        try:
            self.workstation.save_note(self.user, self.record.patient.id, text)
        except (PermissionError, ValueError) as exc:
            self.message.emit(str(exc))
            return False
        self.open_patient(self.record.patient.id)
        return True

    def decision(self, action: str) -> Decision | None:
        return self.record.decisions.get(action) if self.record else None

    def status(self) -> Status:
        return self.workstation.status()
