"""Break-glass (emergency access): a coded reason, a justification in words and the password again
open one patient's record for the time the policies give (``expires_in`` of the break_glass rule).
Start, every access and end are audited and flagged for compliance review.

The window is kept twice: the wall-clock start and end are recorded (so an app restart resumes it,
never resets it) and, within this process, a monotonic start (so changing the clock cannot
lengthen it). The policies decide every access as well (``emergency_clinician`` in ccc_roles.yaml),
from the recorded start, on the wall clock: the time left is computed so that it is more than zero
only while they allow it (one source for the banner and the engine)."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from authz import Decision

from . import resources
from .access import AccessService, refuse
from .audit_trail import AuditTrail
from .shift import ShiftPins
from .store import Store
from .text_measure import measure
from .users import SignedInUser, UserDirectory

WARN_BEFORE = timedelta(minutes=5)
STEP_UP_FRESH = timedelta(minutes=5)  # how recent the provider's new authentication must be
# Used only if a policy set allows emergency access without saying for how long (its own rules
# still decide every access under it).
FALLBACK_WINDOW = timedelta(minutes=60)
# HL7 v3 ActReason purpose-of-use codes, as the dialog names them; the policies decide which count.
REASONS = {
    "ETREAT": "Emergency treatment",
    "ERTREAT": "Emergency research treatment",
    "BTG": "Break the glass (other emergency)",
}


def reason_in_words(code: str) -> str:
    """A purpose-of-use code as the dialog named it, with the code ("Emergency treatment (ETREAT)");
    an unknown one as recorded, and none said as such."""
    if not code:
        return "no reason given"
    return f"{REASONS[code]} ({code})" if code in REASONS else code


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


def window_of(decision: Decision) -> timedelta:
    """The time the policy gives an emergency access (a duration such as "60m" or "1h30m")."""
    text = decision.output("expires_in")
    parts = _DURATION.findall(text) if isinstance(text, str) else []
    if not parts or "".join(n + u for n, u in parts) != text:
        return FALLBACK_WINDOW
    unit = {"h": 3600, "m": 60, "s": 1}
    return timedelta(seconds=sum(float(n) * unit[u] for n, u in parts))


@dataclass(frozen=True)
class BreakGlassSession:
    id: str
    user_id: str
    patient_id: str
    reason: str
    justification: str
    started_at: datetime  # wall clock, recorded
    expires_at: datetime  # wall clock, recorded
    started_monotonic: float | None = None  # this process only

    def remaining(self, now: datetime, monotonic_now: float | None = None) -> timedelta:
        """Time left: the smaller of the wall-clock and the monotonic view, and never more than the
        window itself, so neither a clock set back nor a restart can extend it. The policies allow
        the access only while started_at <= now() <= started_at + window: a clock set back before
        the start leaves none (the banner never counts down while the record is refused)."""
        window = self.expires_at - self.started_at
        if now < self.started_at:
            return timedelta(0)
        left = min(self.expires_at - now, window)
        if self.started_monotonic is not None and monotonic_now is not None:
            left = min(left, window - timedelta(seconds=monotonic_now - self.started_monotonic))
        return max(left, timedelta(0))

    def attribute(self) -> dict[str, str]:
        """``P.attr.break_glass`` as the policies read it."""
        return {
            "patient_id": self.patient_id,
            "started_at": self.started_at.isoformat(),
            "reason": self.reason,
            "justification": self.justification,
        }


class BreakGlassSessions:
    """The recorded sessions and, within this process, their monotonic starts."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.clock, self.monotonic = store, clock, monotonic
        self._monotonic_starts: dict[str, float] = {}

    def open_sessions(self, user_id: str) -> list[BreakGlassSession]:
        """The user's sessions not yet closed, the latest first (some may be past their window)."""
        return [self._session(row) for row in self.store.open_break_glass_sessions(user_id)]

    def active(self, user_id: str) -> BreakGlassSession | None:
        """The user's session still inside its window (after a restart too), else None."""
        return next((s for s in self.open_sessions(user_id) if self.remaining(s) > timedelta(0)), None)

    def remaining(self, session: BreakGlassSession) -> timedelta:
        return session.remaining(self.clock(), self.monotonic())

    def open(
        self, user_id: str, patient_id: str, reason: str, justification: str, window: timedelta
    ) -> BreakGlassSession:
        started, now = self.monotonic(), self.clock()
        session = BreakGlassSession(
            f"bg-{uuid.uuid4().hex[:12]}", user_id, patient_id, reason, justification, now, now + window, started
        )
        self._monotonic_starts[session.id] = started
        self.store.add_break_glass_session(
            {
                "id": session.id,
                "user_id": user_id,
                "patient_id": patient_id,
                "reason": reason,
                "justification": justification,
                "started_at": session.started_at.isoformat(),
                "expires_at": session.expires_at.isoformat(),
                "ended_at": None,
                "end_reason": None,
            }
        )
        return session

    def close(self, session: BreakGlassSession, why: str) -> bool:
        """Closes it if still open; whether this call closed it (so it is audited once)."""
        return self.store.end_break_glass_session(session.id, self.clock().isoformat(), why)

    def _session(self, row: dict[str, Any]) -> BreakGlassSession:
        started = datetime.fromisoformat(row["started_at"])
        expires = datetime.fromisoformat(row["expires_at"]) if row.get("expires_at") else started + FALLBACK_WINDOW
        return BreakGlassSession(
            row["id"],
            row["user_id"],
            row["patient_id"],
            row["reason"],
            row["justification"],
            started,
            expires,
            self._monotonic_starts.get(row["id"]),
        )


class Principals:
    """The user as the policies must see them now: delegations as currently recorded, and
    ``break_glass`` while an emergency access is active."""

    def __init__(self, users: UserDirectory, sessions: BreakGlassSessions) -> None:
        self.users, self.sessions = users, sessions

    def __call__(self, user: SignedInUser) -> SignedInUser:
        current = self.users.refresh(user)
        session = self.sessions.active(user.id)
        if session is None:
            return current
        return SignedInUser(
            current.id, current.name, current.roles, {**current.attributes, "break_glass": session.attribute()}
        )


class BreakGlassService:
    def __init__(
        self,
        store: Store,
        sessions: BreakGlassSessions,
        users: UserDirectory,
        access: AccessService,
        audit: AuditTrail,
        offline_pins: Callable[[], ShiftPins | None] = lambda: None,
    ) -> None:
        """``offline_pins``: the shift's PINs while the hospital's provider cannot be reached (None
        otherwise): then a clinician confirms it is them with their shift PIN instead of a step-up."""
        self.store, self.sessions, self.users, self.access, self.audit = store, sessions, users, access, audit
        self.offline_pins = offline_pins

    def offer(self, user: SignedInUser, patient_id: str, reason: str = "", justification: str = "") -> Decision:
        """Whether emergency access would be granted with what is typed so far (nothing, at
        first): the policies' answer and, when only the form is missing, remedy "complete_form"."""
        patient = self.store.patient(patient_id)
        if patient is None:
            return Decision.refused("break_glass", "There is no such patient.")
        return self.access.decide_one(user, self._record(patient_id, reason, justification), "break_glass")

    def start(
        self,
        user: SignedInUser,
        patient_id: str,
        reason: str,
        justification: str,
        password: str = "",
        stepped_up_at: datetime | None = None,
        shift_pin: str = "",
    ) -> BreakGlassSession:
        """Grants emergency access to one patient, or raises Refused saying why. The clinician
        authenticates again: with the password (the demo), or, with the hospital's provider, by a
        fresh sign-in there (``stepped_up_at``: its authentication time, at most STEP_UP_FRESH ago),
        or, while the provider cannot be reached, with their shift PIN. The audit record says how
        and when."""
        justification = " ".join(justification.split())
        authentication = self._authenticated(user, password, stepped_up_at, shift_pin)
        if self.store.patient(patient_id) is None:
            raise refuse("break_glass", "There is no such patient.")
        record = self._record(patient_id, reason, justification)
        decision = self.access.require(user, record, "break_glass")
        current = self.active(user)
        if current is not None:
            self._close(user, current, "replaced by a new emergency access")
        window = window_of(decision)
        session = self.sessions.open(user.id, patient_id, reason, justification, window)
        self.audit.event(
            user,
            record,
            decision,
            "break_glass_started",
            purpose_of_use=reason,
            justification=justification,
            details={
                "session_id": session.id,
                "expires_at": session.expires_at.isoformat(),
                "review": "required",
                **authentication,
            },
        )
        return session

    def _authenticated(
        self, user: SignedInUser, password: str, stepped_up_at: datetime | None, shift_pin: str
    ) -> dict[str, str]:
        """How and when the clinician authenticated again for this emergency access, or Refused."""
        now = self.sessions.clock()
        if shift_pin:
            pins = self.offline_pins()
            if pins is None:
                raise refuse("break_glass", "The hospital sign-in can be reached: sign in again there instead.")
            if pins.resume(user.id, shift_pin) is None:
                raise refuse("break_glass", "The PIN is not correct: emergency access needs your shift PIN.")
            return {"authentication": "shift PIN, hospital sign-in unreachable", "auth_time": now.isoformat()}
        if stepped_up_at is not None:
            if not now - STEP_UP_FRESH <= stepped_up_at <= now + timedelta(minutes=1):
                raise refuse("break_glass", "Your new sign-in is too old: emergency access needs a fresh one.")
            return {"authentication": "provider step-up", "auth_time": stepped_up_at.isoformat()}
        if self.users.authenticate(user.id, password) is None:
            raise refuse("break_glass", "The password is not correct: emergency access needs your password again.")
        return {"authentication": "password", "auth_time": now.isoformat()}

    def active(self, user: SignedInUser) -> BreakGlassSession | None:
        """The user's session inside its window; any that ran out are closed (and audited) first."""
        for session in self.sessions.open_sessions(user.id):
            if self.sessions.remaining(session) <= timedelta(0):
                self._close(user, session, "expired")
        return self.sessions.active(user.id)

    def remaining(self, session: BreakGlassSession) -> timedelta:
        return self.sessions.remaining(session)

    def honoured(self, user: SignedInUser, session: BreakGlassSession) -> bool:
        """Whether the policies still open the session's record to the user (a new policy set or a
        changed account may stop it before its time): the banner counts only while they do."""
        return self.access.decide_one(user, self._record(session.patient_id), "view").allowed

    def withdraw(self, user: SignedInUser, session: BreakGlassSession) -> None:
        """Ends a session the policies no longer honour; nobody decided it, so the system records it."""
        why = "no longer allowed by the policies"
        if self.sessions.close(session, why):
            details = {"session_id": session.id, "why": why, "review": "required"}
            self.audit.closed_by_the_system(
                user.id,
                self._record(session.patient_id),
                "break_glass_ended",
                details=details,
                purpose_of_use=session.reason,
            )

    def end(self, user: SignedInUser, why: str = "ended by the clinician") -> None:
        """Ends the user's emergency access now (decided by ``end_break_glass``)."""
        for session in self.sessions.open_sessions(user.id):
            self._close(user, session, why)

    def _close(self, user: SignedInUser, session: BreakGlassSession, why: str) -> None:
        record = self._record(session.patient_id)
        if self.sessions.remaining(session) <= timedelta(0):
            why = "expired"
        details = {"session_id": session.id, "why": why, "review": "required"}
        if why == "expired":  # nobody decided this: the time ran out
            if self.sessions.close(session, why):
                self.audit.closed_by_the_system(
                    user.id, record, "break_glass_ended", details=details, purpose_of_use=session.reason
                )
            return
        decision = self.access.require(user, record, "end_break_glass")
        if self.sessions.close(session, why):
            self.audit.event(
                user, record, decision, "break_glass_ended", details=details, purpose_of_use=session.reason
            )

    def _record(self, patient_id: str, reason: str = "", justification: str = "") -> Any:
        patient = self.store.patient(patient_id)
        if patient is None:
            raise refuse("break_glass", "There is no such patient.")
        extra: dict[str, Any] = {
            k: v for k, v in (("break_glass_reason", reason), ("break_glass_justification", justification)) if v
        }
        if justification:  # the policies judge it on the text measure (a fact, not a verdict)
            extra["justification_measure"] = measure(justification)
        return resources.patient_record(patient, **extra)
