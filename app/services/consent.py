"""The patient's consent, captured in the app: who gave it, to what scope, when, until when, and
who recorded it. The policies read it as ``R.attr.consent`` (policies/README.md)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from authz.audit import AuditChain, AuditRecord

from .store import Store
from .users import SignedInUser

SCOPES = {"export": "Export of my data (identified to my physician, de-identified to the device manufacturer)"}


class ConsentRefused(Exception):
    """The consent could not be recorded; the message says why."""


@dataclass(frozen=True)
class Consent:
    id: str
    patient_id: str
    scope: str
    given_by: str  # the patient (or their legal representative), by name as signed
    recorded_by: str
    recorded_at: datetime
    expires_at: datetime

    def attribute(self) -> dict[str, object]:
        return {"export": self.scope == "export", "expires_at": self.expires_at.isoformat(),
                "recorded_by": self.recorded_by}


class ConsentService:
    def __init__(self, store: Store, audit: AuditChain, may_view: Callable[[SignedInUser, str], bool],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store, self.audit, self.may_view, self.clock = store, audit, may_view, clock

    def record(self, recorder: SignedInUser, patient_id: str, scope: str, given_by: str,
               expires_at: datetime) -> Consent:
        """Records consent given in person; the recorder must be someone allowed to view the chart."""
        if scope not in SCOPES:
            raise ConsentRefused(f"Unknown consent scope {scope!r}.")
        if not given_by.strip():
            raise ConsentRefused("Enter who gave the consent (the patient's name as signed).")
        if expires_at <= self.clock():
            raise ConsentRefused("The consent must last until a time in the future.")
        if not self.may_view(recorder, patient_id):
            raise ConsentRefused("Only someone who may open this patient's record can record their consent.")
        consent = Consent(f"consent-{uuid.uuid4().hex[:12]}", patient_id, scope, given_by.strip(), recorder.id,
                          self.clock(), expires_at.astimezone(UTC))
        self.audit.append(AuditRecord(
            "event", recorder.id, "record_consent", list(recorder.roles), "patient_record", patient_id, patient_id,
            event_type="consent_recorded",
            details={"consent_id": consent.id, "scope": scope, "expires_at": consent.expires_at.isoformat()}))
        self.store.add_consent({**consent.__dict__, "recorded_at": consent.recorded_at.isoformat(),
                                "expires_at": consent.expires_at.isoformat()})
        return consent

    def current(self, patient_id: str, scope: str = "export") -> Consent | None:
        """The latest consent of that scope still in force, else None."""
        rows = self.store.consents_in_force(patient_id, scope, self.clock().isoformat())
        if not rows:
            return None
        r = rows[0]
        return Consent(r["id"], r["patient_id"], r["scope"], r["given_by"], r["recorded_by"],
                       datetime.fromisoformat(r["recorded_at"]), datetime.fromisoformat(r["expires_at"]))
