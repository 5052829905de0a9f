"""The patient's consent, captured in the app: who gave it, to what scope, when, until when, and
who recorded it. Recording it is the ``record_consent`` action (the patient, or the assigned
physician on the patient's word); the policies read it as ``R.attr.consent`` (policies/README.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from authz import Decision

from . import resources
from .access import refuse
from .clinical import ClinicalService
from .users import SignedInUser

SCOPES = {"export": "Export of my data (identified to my physician, de-identified to the device manufacturer)"}


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
        return {
            "export": self.scope == "export",
            "expires_at": self.expires_at.isoformat(),
            "recorded_by": self.recorded_by,
        }


class ConsentService(ClinicalService):
    def offer(self, user: SignedInUser, patient_id: str) -> Decision:
        """Whether this user may record the patient's consent (remedy "complete_form": once the
        form says the patient gave it in person)."""
        patient = self.store.patient(patient_id)
        if patient is None:
            return Decision.refused("record_consent", "There is no such patient.")
        return self.access.decide_one(user, resources.patient_record(patient), "record_consent")

    def record(
        self,
        recorder: SignedInUser,
        patient_id: str,
        scope: str,
        given_by: str,
        expires_at: datetime,
        patients_word: bool = False,
    ) -> Consent:
        """Records consent given in person, as the policies allow (raises Refused saying why).
        ``patients_word``: the recorder confirms the patient gave it to them in person."""
        if scope not in SCOPES:
            raise refuse("record_consent", f"Unknown consent scope {scope!r}.")
        if not given_by.strip():
            raise refuse("record_consent", "Enter who gave the consent (the patient's name as signed).")
        if expires_at <= self.clock():
            raise refuse("record_consent", "The consent must last until a time in the future.")
        patient = self.store.patient(patient_id)
        if patient is None:
            raise refuse("record_consent", "There is no such patient.")
        record = resources.patient_record(patient, patient_permission=patients_word)
        decision = self.access.require(recorder, record, "record_consent")
        consent = Consent(
            f"consent-{uuid.uuid4().hex[:12]}",
            patient_id,
            scope,
            given_by.strip(),
            recorder.id,
            self.clock(),
            expires_at.astimezone(UTC),
        )
        self.audit.event(
            recorder,
            record,
            decision,
            "consent_recorded",
            details={"consent_id": consent.id, "scope": scope, "expires_at": consent.expires_at.isoformat()},
        )
        self.store.add_consent(
            {
                **consent.__dict__,
                "recorded_at": consent.recorded_at.isoformat(),
                "expires_at": consent.expires_at.isoformat(),
            }
        )
        return consent

    def current(self, patient_id: str, scope: str = "export") -> Consent | None:
        """The latest consent of that scope still in force, else None."""
        rows = self.store.consents_in_force(patient_id, scope, self.clock().isoformat())
        if not rows:
            return None
        r = rows[0]
        return Consent(
            r["id"],
            r["patient_id"],
            r["scope"],
            r["given_by"],
            r["recorded_by"],
            datetime.fromisoformat(r["recorded_at"]),
            datetime.fromisoformat(r["expires_at"]),
        )
