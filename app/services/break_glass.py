"""Break-glass (emergency access): a coded reason, a real justification and the password again
open one patient's record for 60 minutes. Start, every access and end are audited and flagged for
compliance review.

The window is kept twice: the wall-clock start is recorded (so an app restart resumes it, never
resets it) and, within this process, a monotonic start (so changing the clock cannot lengthen it).
The policies decide as well (``emergency_clinician`` in ccc_roles.yaml), from the recorded start."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from authz.audit import AuditChain, AuditRecord

from .store import Store
from .users import SignedInUser, UserDirectory

WINDOW = timedelta(minutes=60)
WARN_BEFORE = timedelta(minutes=5)
MIN_JUSTIFICATION = 20
# HL7 v3 ActReason purpose-of-use codes the policies accept (ccc_constants.emergency_reasons).
REASONS = {
    "ETREAT": "Emergency treatment",
    "ERTREAT": "Emergency research treatment",
    "BTG": "Break the glass (other emergency)",
}


class BreakGlassRefused(Exception):
    """Emergency access was not granted; the message says why, for the clinician."""


def justification_problem(text: str) -> str:
    """Why a justification is not acceptable, or "" when it is."""
    stripped = " ".join(text.split())
    if len(stripped) < MIN_JUSTIFICATION:
        return f"Write at least {MIN_JUSTIFICATION} characters on why you need emergency access."
    letters = [c for c in stripped.lower() if not c.isspace()]
    if len(set(letters)) < 5:
        return "The justification must say why, in words (not a repeated character)."
    return ""


@dataclass(frozen=True)
class BreakGlassSession:
    id: str
    user_id: str
    patient_id: str
    reason: str
    justification: str
    started_at: datetime  # wall clock, recorded
    started_monotonic: float | None = None  # this process only

    def remaining(self, now: datetime, monotonic_now: float | None = None) -> timedelta:
        """Time left: the smaller of the wall-clock and the monotonic view, so neither a clock
        change nor a restart can extend the window."""
        left = WINDOW - (now - self.started_at)
        if self.started_monotonic is not None and monotonic_now is not None:
            left = min(left, WINDOW - timedelta(seconds=monotonic_now - self.started_monotonic))
        return max(left, timedelta(0))

    def attribute(self) -> dict[str, str]:
        """``P.attr.break_glass`` as the policies read it."""
        return {"patient_id": self.patient_id, "started_at": self.started_at.isoformat(),
                "reason": self.reason, "justification": self.justification}


class BreakGlassService:
    def __init__(self, store: Store, users: UserDirectory, audit: AuditChain,
                 decide: Callable[[SignedInUser, str, str, str], tuple[bool, str, str]],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store, self.users, self.audit, self.decide = store, users, audit, decide
        self.clock, self.monotonic = clock, monotonic
        self._monotonic_starts: dict[str, float] = {}

    def start(self, user: SignedInUser, patient_id: str, reason: str, justification: str,
              password: str) -> BreakGlassSession:
        """Grants emergency access to one patient, or raises BreakGlassRefused saying why."""
        if reason not in REASONS:
            raise BreakGlassRefused("Choose the reason for emergency access.")
        problem = justification_problem(justification)
        if problem:
            raise BreakGlassRefused(problem)
        if self.users.authenticate(user.id, password) is None:
            raise BreakGlassRefused("The password is not correct: emergency access needs your password again.")
        allowed, why, rule = self.decide(user, patient_id, reason, justification.strip())
        if not allowed:
            raise BreakGlassRefused(why)
        self._end_open_sessions(user, "replaced by a new emergency access")
        started = self.monotonic()
        session = BreakGlassSession(f"bg-{uuid.uuid4().hex[:12]}", user.id, patient_id, reason,
                                    justification.strip(), self.clock(), started)
        self._monotonic_starts[session.id] = started
        self.audit.append(AuditRecord(
            "event", user.id, "break_glass", list(user.roles), "patient_record", patient_id, patient_id,
            "EFFECT_ALLOW", rule=rule, purpose_of_use=reason, justification=session.justification,
            event_type="break_glass_started",
            details={"session_id": session.id, "expires_at": (session.started_at + WINDOW).isoformat(),
                     "review": "required"}))
        self.store.add_break_glass_session({"id": session.id, "user_id": user.id, "patient_id": patient_id,
                                            "reason": reason, "justification": session.justification,
                                            "started_at": session.started_at.isoformat(), "ended_at": None,
                                            "end_reason": None})
        return session

    def active(self, user_id: str) -> BreakGlassSession | None:
        """The user's session still inside its window (after a restart too), else None."""
        for row in self.store.open_break_glass_sessions(user_id):
            session = self._session(row)
            if self.remaining(session) > timedelta(0):
                return session
            self.end(session, "expired")
        return None

    def remaining(self, session: BreakGlassSession) -> timedelta:
        return session.remaining(self.clock(), self.monotonic())

    def end(self, session: BreakGlassSession, why: str = "ended by the clinician") -> None:
        """Closes the session (by the clinician or at expiry) and audits it, once."""
        if self.store.end_break_glass_session(session.id, self.clock().isoformat(), why):
            self.audit.append(AuditRecord(
                "event", session.user_id, "break_glass", [], "patient_record", session.patient_id,
                session.patient_id, event_type="break_glass_ended", purpose_of_use=session.reason,
                details={"session_id": session.id, "why": why, "review": "required"}))

    def _end_open_sessions(self, user: SignedInUser, why: str) -> None:
        for row in reversed(self.store.open_break_glass_sessions(user.id)):  # the earliest started first
            self.end(self._session(row), why)

    def _session(self, row: dict[str, Any]) -> BreakGlassSession:
        """A recorded session; its monotonic start is known only in the process that started it."""
        return BreakGlassSession(row["id"], row["user_id"], row["patient_id"], row["reason"], row["justification"],
                                 datetime.fromisoformat(row["started_at"]), self._monotonic_starts.get(row["id"]))
