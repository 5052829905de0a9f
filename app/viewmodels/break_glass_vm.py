"""Emergency access (break-glass): the offer on a refused record, the dialog's live answer from
the policies as the clinician types, the start, the countdown with its warning, and the end (by
the clinician, or when the time runs out, whether or not anyone is at the keyboard)."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from app.services.access import Refused
from app.services.break_glass import REASONS, WARN_BEFORE, BreakGlassSession, in_words
from app.services.storage import STORAGE_ERRORS
from app.viewmodels.record_vm import Identity, RecordViewModel
from app.viewmodels.session_vm import SessionViewModel

__all__ = ["BreakGlassSession", "BreakGlassViewModel", "Identity"]


class BreakGlassViewModel(QObject):
    emergency_changed = Signal(object)  # BreakGlassSession | None
    # seconds left (ending_soon() says whether to warn). No bool crosses a signal: under the pinned
    # PySide6 6.12.0 on Python 3.11 each bool emitted through a Python signal loses a reference to
    # True or False, and a session of a few thousand ticks aborted the interpreter ("bool_dealloc").
    countdown = Signal(int)
    ended = Signal()  # the emergency access is over (ended or expired): lists may change

    def __init__(self, session: SessionViewModel, record: RecordViewModel, tick_ms: int = 1000) -> None:
        super().__init__()
        self.session, self.record = session, record
        self.service = session.workstation.break_glass
        self.emergency: BreakGlassSession | None = None
        self.patient: Identity | None = None  # whom the active emergency access concerns
        self.timer = QTimer(self)
        self.timer.setInterval(tick_ms)
        self.timer.timeout.connect(self.tick)
        session.signed_in.connect(self._on_signed_in)

    @staticmethod
    def reason_codes() -> list[tuple[str, str]]:
        return list(REASONS.items())

    def identity(self, patient_id: str) -> Identity | None:
        """Who the patient is (name, date of birth, MRN), for the dialog to confirm; None if the
        policies do not let this user know."""
        return self.record.identity(patient_id)

    def patient_label(self) -> str:
        """How the banner names the patient of the active emergency access: name and MRN."""
        if self.emergency is None:
            return ""
        return self.patient.label if self.patient is not None else "a patient you may not identify"

    def hint(self, patient_id: str, reason: str, justification: str) -> str:
        """What still stands in the way, with what is typed so far: the policies' words (or "")."""
        if self.session.user is None:
            return "Sign in first."
        problem = in_words(justification)
        if problem:
            return problem
        decision = self.service.offer(self.session.user, patient_id, reason, " ".join(justification.split()))
        return "" if decision.allowed else decision.reason

    def request(
        self, patient_id: str, reason: str, justification: str, password: str, patient_confirmed: bool = False
    ) -> str:
        """Starts break-glass for one patient, once the clinician has confirmed who the patient is,
        and opens the record; returns why not, or ""."""
        if self.session.user is None:
            return "Sign in first."
        if not patient_confirmed:
            return "Confirm the patient first: check the name, date of birth and MRN against the patient's wristband."
        try:
            self.service.start(self.session.user, patient_id, reason, justification, password)
        except Refused as refused:
            return str(refused)
        except STORAGE_ERRORS as exc:  # not started: a full disk, a read-only store, said with where
            return str(exc)
        self._set(self.service.active(self.session.user))
        self.record.open(patient_id)
        return ""

    def end(self) -> None:
        """ "End emergency access": the session ends and its record closes."""
        if self.session.user is None or self.emergency is None:
            return
        try:
            self.service.end(self.session.user)
        except Refused as refused:
            self.session.message.emit(str(refused))
        except STORAGE_ERRORS as exc:  # not recorded: said; the record closes all the same
            self.session.message.emit(str(exc))
        self._finish()

    def tick(self) -> None:
        """Every tick: the countdown, and at expiry the record closes, idle or not."""
        if self.emergency is None or self.session.user is None:
            return
        left = self.service.remaining(self.emergency)
        if left.total_seconds() <= 0:
            self.service.active(self.session.user)  # closes (and audits) the expired session
            self._ended("Emergency access has ended; the record is closed.")
            return
        try:
            honoured = self.service.honoured(self.session.user, self.emergency)  # the engine has the last word
            if not honoured:
                self.service.withdraw(self.session.user, self.emergency)
        except Exception:  # noqa: BLE001 - the store cannot be read now (a disk error, shutting down)
            # the window still counts and every record opened is decided again (and fails closed);
            # this extra check waits for the next tick rather than raising out of a timer
            honoured = True
        if not honoured:
            self._ended("Emergency access has ended: the policies no longer allow it. The record is closed.")
            return
        self.countdown.emit(int(left.total_seconds()))

    @staticmethod
    def ending_soon(seconds: int) -> bool:
        """Whether the banner warns: within the last minutes of the window (WARN_BEFORE)."""
        return seconds <= WARN_BEFORE.total_seconds()

    def _ended(self, text: str) -> None:
        """The access is over without the clinician ending it: close the record and say so (and that
        an unsaved note is kept)."""
        assert self.emergency is not None
        kept = self.record.has_draft(self.emergency.patient_id)
        self._finish()
        draft = " Your unsaved note is kept and comes back if you open the record again." if kept else ""
        self.session.message.emit(text + draft)

    def _finish(self) -> None:
        patient_id = self.emergency.patient_id if self.emergency else None
        self._set(None)
        if self.record.record is not None and self.record.record.patient_id == patient_id:
            self.record.close()
        self.ended.emit()

    def _on_signed_in(self, user: object) -> None:
        """A session goes on across sign-outs: it resumes when its user signs in again."""
        self._set(self.service.active(self.session.user) if self.session.user is not None else None)

    def _set(self, emergency: BreakGlassSession | None) -> None:
        self.emergency = emergency
        self.patient = self.identity(emergency.patient_id) if emergency is not None else None
        if emergency is None:
            self.timer.stop()
        else:
            self.timer.start()
        self.emergency_changed.emit(emergency)
        if emergency is not None:
            self.tick()
