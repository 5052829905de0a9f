"""Emergency access (break-glass): the offer on a refused record, the dialog's live answer from
the policies as the clinician types, the start, the countdown with its warning, and the end (by
the clinician, or when the time runs out, whether or not anyone is at the keyboard)."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, QTimer, Signal

from app.services.access import Refused
from app.services.break_glass import REASONS, WARN_BEFORE, BreakGlassSession
from app.services.oidc import ProviderSignIn, ProviderUnreachable, SignInFailed
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
    step_up_result = Signal(str)  # after the provider's fresh sign-in: why not, or "" (access open)
    offline_fallback = Signal(str)  # the provider cannot be reached: confirm with the shift PIN instead
    _stepped_up = Signal(object)  # (ProviderSignIn | SignInFailed, the request), from the worker thread

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
        self._stepped_up.connect(self._after_step_up)

    @property
    def needs_step_up(self) -> bool:
        """Whether emergency access asks the hospital's provider for a fresh sign-in (not a password)."""
        return self.session.workstation.session.provider is not None

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

    def request_with_step_up(
        self, patient_id: str, reason: str, justification: str, patient_confirmed: bool = False
    ) -> str:
        """With the hospital's provider: asks it for a fresh sign-in of this user (prompt=login,
        max_age=0) in the browser, on a worker thread; ``step_up_result`` says how it ended. Returns
        at once why it cannot start, or ""."""
        user, provider = self.session.user, self.session.workstation.session.provider
        if user is None or provider is None:
            return "Sign in first."
        if not patient_confirmed:
            return "Confirm the patient first: check the name, date of birth and MRN against the patient's wristband."
        problem = self.hint(patient_id, reason, justification)
        if problem:
            return problem
        request = (user, patient_id, reason, justification)

        def work() -> None:
            try:
                outcome: ProviderSignIn | SignInFailed = provider.sign_in(fresh=True, login_hint=user.id)
            except SignInFailed as failed:
                outcome = failed
            self._stepped_up.emit((outcome, request))

        threading.Thread(target=work, name="oidc-step-up", daemon=True).start()
        return ""

    def request_offline(
        self, patient_id: str, reason: str, justification: str, pin: str, patient_confirmed: bool = False
    ) -> str:
        """While the provider cannot be reached: emergency access confirmed with the shift PIN."""
        if self.session.user is None:
            return "Sign in first."
        if not patient_confirmed:
            return "Confirm the patient first: check the name, date of birth and MRN against the patient's wristband."
        try:
            self.service.start(self.session.user, patient_id, reason, justification, shift_pin=pin)
        except Refused as refused:
            return str(refused)
        except STORAGE_ERRORS as exc:
            return str(exc)
        self._set(self.service.active(self.session.user))
        self.record.open(patient_id)
        return ""

    def _after_step_up(self, result: object) -> None:
        outcome, (user, patient_id, reason, justification) = result  # type: ignore[misc]
        if self.session.user is not user:  # signed out or switched meanwhile: nothing opens
            self.step_up_result.emit("Emergency access was not opened: the user changed.")
            return
        if isinstance(outcome, ProviderUnreachable) and self.service.offline_pins() is not None:
            self.offline_fallback.emit(
                f"{outcome.message} Confirm it is you with the PIN you chose for this shift: the emergency "
                "access is recorded as opened offline."
            )
            return
        if isinstance(outcome, SignInFailed):
            self.step_up_result.emit(outcome.message)
            return
        if not self.session.workstation.session.stepped_up(outcome):
            self.step_up_result.emit(
                f"The new sign-in was for another account ({outcome.user.id}): emergency access needs your own."
            )
            return
        try:
            self.service.start(user, patient_id, reason, justification, stepped_up_at=outcome.auth_time)
        except Refused as refused:
            self.step_up_result.emit(str(refused))
            return
        except STORAGE_ERRORS as exc:
            self.step_up_result.emit(str(exc))
            return
        self._set(self.service.active(user))
        self.record.open(patient_id)
        self.step_up_result.emit("")

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
