"""Sign-in and the session: who is signed in, which workspace the policies open to them, the
idle lock with its warning, and the status bar. Every other view-model follows this one's
``signed_in`` signal; nothing of a user survives their sign-out.

With the hospital's OpenID provider, the browser leg, the token exchange and the logout run on a
worker thread (the provider may be slow or down: the screen never waits for it); the outcome
comes back as a signal, and the policies then decide whether this user gets a workspace at all."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from app.services.oidc import ProviderSignIn, SignInFailed
from app.services.session import Workspace
from app.services.shift import REFUSED, pin_problem
from app.services.status import Status
from app.services.storage import STORAGE_ERRORS
from app.services.users import SignedInUser
from app.services.workstation import Workstation

__all__ = ["IdleLock", "SessionViewModel", "SignedInUser", "Status", "Workspace"]

log = logging.getLogger(__name__)
PROBE_SECONDS = 1.5  # how long a PIN resume's check of the provider may take (it waits for nobody)


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
    waiting = Signal(str)  # what the sign-in screen says while the provider's sign-in runs; "" when done
    _provider_done = Signal(object)  # ProviderSignIn | SignInFailed, from the worker thread
    _probed = Signal(object)  # (user, workspace, when) of a PIN resume, and whether the provider answered

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
        self.admission_timer = QTimer(self)  # the policies asked again whether the user may be here
        self.admission_timer.setInterval(5 * tick_ms)
        self.admission_timer.timeout.connect(self.recheck_admission)
        self.admission_timer.start()
        self.provider_pending = False
        self._pending_pin = ""
        self._provider_done.connect(self._on_provider_done)
        self._probed.connect(self._record_resume)

    @property
    def keyring_notice(self) -> str:
        return self.workstation.secrets.notice

    @property
    def demo(self) -> bool:
        """Demo users sign in here (no hospital provider): the screens mark them as demo."""
        return self.workstation.session.demo

    def staff_choices(self) -> list[tuple[str, str]]:
        """The demo users, each marked as demo; none with the hospital's provider."""
        return [(user_id, f"{label} (demo)") for user_id, label in self.workstation.session.staff_choices()]

    def sign_in(self, user_id: str, password: str) -> bool:
        session = self.workstation.session
        user = session.sign_in(user_id, password)
        if user is None:
            self.message.emit("Sign-in failed: check the user and the password.")
            return False
        refusal = session.policy_refusal(user)
        if refusal:  # the right password, but the policies refuse the account (suspended): in their words
            if self.user is not None:  # whoever was signed in is signed out by now: the screen follows
                self.sign_out()
            else:
                session.sign_out()
            self.message.emit(f"Sign-in refused: {refusal}")
            return False
        return self._enter(user)

    @property
    def pin_resume(self) -> bool:
        """Whether users who signed in fully this shift may come back with a PIN."""
        return self.workstation.session.shift is not None

    def sign_in_with_provider(self, pin: str = "") -> None:
        """Opens the hospital's sign-in in the browser, on a worker thread; the outcome arrives on
        ``signed_in`` or ``message``. A full sign-in asks the provider for a fresh authentication,
        so nobody inherits the previous user's session at the provider. ``pin``: chosen now, it lets
        the user come back this shift without the provider."""
        provider = self.workstation.session.provider
        if provider is None or self.provider_pending:
            return
        problem = pin_problem(pin) if pin else ""
        if problem:
            self.message.emit(problem)
            return
        self.provider_pending, self._pending_pin = True, pin
        self.waiting.emit("Sign in with your hospital account in the browser window that opened…")

        def work() -> None:
            try:
                outcome: ProviderSignIn | SignInFailed = provider.sign_in(fresh=True)
            except SignInFailed as failed:
                outcome = failed
            except Exception as exc:  # noqa: BLE001 - whatever it is, the screen must hear of it
                outcome = SignInFailed("The hospital sign-in failed. Please try again; if it happens again, call IT.")
                log.exception("provider sign-in failed: %s", exc.__class__.__name__)
            self._provider_done.emit(outcome)

        threading.Thread(target=work, name="oidc-sign-in", daemon=True).start()

    def cancel_provider_sign_in(self) -> None:
        provider = self.workstation.session.provider
        if provider is not None and self.provider_pending:
            provider.cancel()

    def _on_provider_done(self, outcome: object) -> None:
        pin, self._pending_pin = self._pending_pin, ""
        self.provider_pending = False
        self.waiting.emit("")
        self.show_status()
        if isinstance(outcome, SignInFailed):
            log.warning("sign-in refused: %s", outcome.detail)
            self.message.emit(outcome.message)
            return
        assert isinstance(outcome, ProviderSignIn)
        session = self.workstation.session
        workspace = session.workspace(outcome.user)
        refusal = session.sign_in_refusal(outcome.user) or ("" if workspace.name else workspace.decision.reason)
        if refusal:  # a role the policies do not know, or none that opens a workspace: in their words
            log.warning("sign-in of %s with roles %s refused: %s", outcome.user.id, outcome.user.roles, refusal)
            self._end_provider_session(outcome.id_token)
            self.message.emit(f"Sign-in refused: {refusal}")
            return
        user = session.sign_in_verified(outcome, pin)
        session.record_sign_in(user, workspace, "provider", offline=False, auth_time=outcome.auth_time)
        self._enter(user, workspace)

    def resume_with_pin(self, user_id: str, pin: str) -> bool:
        """A user who signed in fully this shift, back with their PIN at once, with or without the
        provider. Whether the provider answers is asked afterwards, off the GUI thread, for the
        audit record (an offline sign-in) and the status bar."""
        session = self.workstation.session
        resumed = session.resume(user_id, pin)
        if resumed is None:
            self.message.emit(REFUSED)
            return False
        workspace = session.workspace(resumed.user)
        refusal = session.sign_in_refusal(resumed.user) or ("" if workspace.name else workspace.decision.reason)
        if refusal:  # the policies changed since the full sign-in
            session.sign_out()
            self.message.emit(f"Sign-in refused: {refusal}")
            return False
        provider = session.provider
        assert provider is not None
        when = resumed.signed_in_at

        def probe() -> None:
            reachable = int(provider.reachable(seconds=PROBE_SECONDS))  # no bool through a signal (break_glass_vm)
            self._probed.emit((resumed.user, workspace, when, reachable))

        threading.Thread(target=probe, name="oidc-probe", daemon=True).start()
        return self._enter(resumed.user, workspace)

    def _record_resume(self, probed: object) -> None:
        user, workspace, when, reachable = probed  # type: ignore[misc]
        try:
            self.workstation.session.record_sign_in(user, workspace, "pin", offline=not reachable, auth_time=when)
        except Exception as exc:  # noqa: BLE001 - a store that cannot be written: said, not raised from a slot
            self.message.emit(f"The sign-in could not be recorded: {exc}")
        self.show_status()

    def _end_provider_session(self, id_token: str) -> None:
        """RP-initiated logout in the browser, off the GUI thread: the provider forgets the user."""
        provider = self.workstation.session.provider
        if provider is None or not id_token:
            return

        def work() -> None:
            try:
                provider.end_session(id_token)
            except Exception as exc:  # noqa: BLE001 - a browser that fails to open stops no sign-out
                log.warning("provider logout not opened: %s", exc.__class__.__name__)

        threading.Thread(target=work, name="oidc-sign-out", daemon=True).start()

    def _enter(self, user: SignedInUser, workspace: Workspace | None = None) -> bool:
        """The user is in: their workspace, the status, the idle lock; back where they were after
        an idle lock."""
        resume, self.locked_from = self.locked_from, None
        self.user = user
        self.workspace = workspace or self.workstation.session.workspace(user)
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
        self._end_provider_session(self.workstation.session.sign_out())
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

    def recheck_admission(self) -> None:
        """Signs the user out when the policies no longer let them sign in here (an account the
        hospital's administrator suspended meanwhile), saying why in the policies' words. Their
        drafts stay, as at any sign-out."""
        if self.user is None:
            return
        try:
            refused = self.workstation.session.admission_withdrawn(self.user)
        except STORAGE_ERRORS as exc:  # the store cannot be read now: asked again at the next tick
            log.warning("admission not checked: %s", exc)
            return
        if refused is not None:
            self.sign_out()
            self.message.emit(f"Signed out: {refused.reason}")

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
