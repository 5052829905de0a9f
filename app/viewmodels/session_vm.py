"""Sign-in and the session: who is signed in, which workspace the policies open to them, the
idle lock with its warning, and the status bar. Every other view-model follows this one's
``signed_in`` signal; nothing of a user survives their sign-out."""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from app.services.session import Workspace
from app.services.status import Status
from app.services.users import SignedInUser
from app.services.workstation import Workstation

__all__ = ["IdleLock", "SessionViewModel", "SignedInUser", "Status", "Workspace"]


class IdleLock(QObject):
    """Locks the session after ``timeout`` seconds without input, warning for the last
    ``warning`` seconds. Measured on a monotonic clock so a clock change cannot skip it; the
    ``clock`` is injectable so a test moves time while the real timer fires."""

    countdown = Signal(int)  # seconds left while warning; -1 when the warning is over
    expired = Signal()

    def __init__(
        self, timeout: int, warning: int = 60, clock: Callable[[], float] = time.monotonic, interval_ms: int = 1000
    ) -> None:
        super().__init__()
        self.timeout, self.warning, self.clock = timeout, min(warning, timeout), clock
        self.last_input = clock()
        self.warning_shown = False
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
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


class SessionViewModel(QObject):
    signed_in = Signal(object)  # SignedInUser | None
    status_changed = Signal(object)  # Status
    message = Signal(str)  # something the user must read (a refusal, an error)
    lock_countdown = Signal(int)  # seconds before the idle lock; -1 hides the warning
    resume = Signal(str)  # the patient to reopen: the same user back after an idle lock

    def __init__(
        self, workstation: Workstation, clock: Callable[[], float] = time.monotonic, tick_ms: int = 1000
    ) -> None:
        super().__init__()
        self.workstation = workstation
        self.user: SignedInUser | None = None
        self.workspace = Workspace.closed()
        self.open_patient_id: str | None = None  # kept by the record view-model, for the idle lock
        self.locked_from: tuple[str, str | None] | None = None  # (user id, open patient) at the idle lock
        self.idle = IdleLock(workstation.idle_lock_seconds, clock=clock, interval_ms=tick_ms)
        self.idle.countdown.connect(self.lock_countdown)
        self.idle.expired.connect(self.lock)
        self.status_timer = QTimer(self)
        self.status_timer.setInterval(5000)
        self.status_timer.timeout.connect(self.show_status)
        self.status_timer.start()

    @property
    def keyring_notice(self) -> str:
        return self.workstation.secrets.notice

    def staff_choices(self) -> list[tuple[str, str]]:
        return self.workstation.session.staff_choices()

    def sign_in(self, user_id: str, password: str) -> bool:
        user = self.workstation.session.sign_in(user_id, password)
        if user is None:
            self.message.emit("Sign-in failed: check the user and the password.")
            return False
        resume, self.locked_from = self.locked_from, None
        self.user = user
        self.workspace = self.workstation.session.workspace(user)
        self.signed_in.emit(user)
        self.show_status()
        self.idle.start()
        if not self.workspace.name:
            self.message.emit(self.workspace.decision.reason)
        if resume is not None and resume[0] == user.id and resume[1] is not None:
            self.resume.emit(resume[1])  # where they were (the record is decided and audited again)
        return True

    def sign_out(self) -> None:
        """Signs out (also fast user switching): nothing of this user stays on screen."""
        self.idle.stop()
        self.workstation.session.sign_out()
        self.user, self.open_patient_id, self.workspace = None, None, Workspace.closed()
        self.signed_in.emit(None)

    def lock(self) -> None:
        """The idle lock: like a sign-out, but the same user signing in again resumes the record."""
        if self.user is None:
            return
        minutes = max(1, self.workstation.idle_lock_seconds // 60)
        self.locked_from = (self.user.id, self.open_patient_id)
        self.sign_out()
        self.message.emit(f"Locked after {minutes} min without activity. Sign in to continue.")

    def continue_session(self) -> None:
        self.idle.touch()

    def user_activity(self) -> None:
        if self.user is not None:
            self.idle.touch()

    def hospital(self) -> str:
        """The user's (first) hospital: what reports are about."""
        return (self.user.attributes.get("hospital_ids") or [""])[0] if self.user else ""

    def status(self) -> Status:
        return self.workstation.status.status()

    def show_status(self) -> None:
        self.status_changed.emit(self.status())
