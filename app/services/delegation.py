"""Delegation: the patient, or the assigned physician with the patient's permission, lets a named
caregiver see that one patient's permitted data until an expiry; revocable.

Every step is a policy action: ``delegate_access`` and ``revoke_delegation`` on the record, and
``receive_delegation`` on the caregiver's account (who may be chosen at all). The policies also do
the enforcing (``active_delegate`` in ccc_roles.yaml reads ``P.attr.delegations`` and their expiry);
this service records grants and revocations and audits both."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authz import Decision

from . import resources
from .access import Refused, refuse
from .clinical import ClinicalService
from .users import SignedInUser


@dataclass(frozen=True)
class Delegation:
    id: str
    patient_id: str
    delegate_id: str
    granted_by: str
    patient_permission: bool
    expires_at: datetime
    revoked: bool

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Delegation:
        return cls(
            row["id"],
            row["patient_id"],
            row["delegate_id"],
            row["granted_by"],
            bool(row["patient_permission"]),
            datetime.fromisoformat(row["expires_at"]),
            bool(row["revoked"]),
        )


class DelegationService(ClinicalService):
    def offer(self, user: SignedInUser, patient_id: str) -> Decision:
        """Whether this user may delegate the patient's access (remedy "complete_form": once the
        form records the patient's permission)."""
        patient = self.store.patient(patient_id)
        if patient is None:
            return Decision.refused("delegate_access", "There is no such patient.")
        return self.access.decide_one(user, resources.patient_record(patient), "delegate_access")

    def caregivers(self, user: SignedInUser) -> list[tuple[str, str]]:
        """(id, name) of the accounts the policies let this user delegate to."""
        staff = {s["id"]: s for s in self.store.staff_members()}
        accounts = (resources.account(s["id"], [s["role"]]) for s in staff.values())
        return [(r.id, staff[r.id]["name"]) for r in self.access.permitted(user, accounts, "receive_delegation")]

    def grant(
        self, granter: SignedInUser, patient_id: str, delegate_id: str, expires_at: datetime, patient_permission: bool
    ) -> Delegation:
        """Records a delegation the policies allow; raises Refused saying why not."""
        delegate = self.store.staff(delegate_id)
        if delegate is None:
            raise refuse("delegate_access", "Choose the caregiver's account.")
        if expires_at.tzinfo is None or expires_at <= self.clock():
            raise refuse("delegate_access", "The delegation must end at a time in the future.")
        self.access.require(granter, resources.account(delegate_id, [delegate["role"]]), "receive_delegation")
        record = self._record(patient_id, patient_permission=patient_permission)
        decision = self.access.require(granter, record, "delegate_access")
        delegation = Delegation(
            f"del-{uuid.uuid4().hex[:12]}",
            patient_id,
            delegate_id,
            granter.id,
            patient_permission,
            expires_at.astimezone(UTC),
            False,
        )
        self.audit.event(
            granter,
            record,
            decision,
            "delegation_granted",
            details={
                "delegation_id": delegation.id,
                "delegate_id": delegate_id,
                "expires_at": delegation.expires_at.isoformat(),
                "patient_permission": patient_permission,
            },
        )
        self.store.add_delegation(
            {
                "id": delegation.id,
                "patient_id": patient_id,
                "delegate_id": delegate_id,
                "granted_by": granter.id,
                "patient_permission": patient_permission,
                "expires_at": delegation.expires_at.isoformat(),
                "revoked": False,
            }
        )
        return delegation

    def revocation(self, revoker: SignedInUser, delegation_id: str) -> Decision:
        """Whether this user may end this delegation now (asked before a screen confirms it; the
        revocation itself is decided again)."""
        try:
            delegation = self._revocable(delegation_id)
            return self.access.decide_one(revoker, self._record(delegation.patient_id), "revoke_delegation")
        except Refused as refused:
            return refused.decision

    def revoke(self, revoker: SignedInUser, delegation_id: str) -> None:
        """Ends a delegation now, as the policies allow (``revoke_delegation``: the patient, their
        assigned physician, or the hospital's administrator from the admin tools)."""
        delegation = self._revocable(delegation_id)
        record = self._record(delegation.patient_id)
        decision = self.access.require(revoker, record, "revoke_delegation")
        self.audit.event(
            revoker,
            record,
            decision,
            "delegation_revoked",
            details={"delegation_id": delegation.id, "delegate_id": delegation.delegate_id},
        )
        self.store.revoke_delegation(delegation_id)

    def _revocable(self, delegation_id: str) -> Delegation:
        """The delegation, when there is one still to revoke (Refused saying why not)."""
        row = self.store.delegation(delegation_id)
        if row is None:
            raise refuse("revoke_delegation", "There is no such delegation.")
        delegation = Delegation.from_row(row)
        if delegation.revoked:
            raise refuse("revoke_delegation", "This delegation has already been revoked.")
        return delegation

    def for_patient(self, patient_id: str) -> list[Delegation]:
        return [Delegation.from_row(r) for r in self.store.delegations_for_patient(patient_id)]

    def _record(self, patient_id: str, **extra: Any) -> Any:
        patient = self.store.patient(patient_id)
        if patient is None:
            raise refuse("delegate_access", "There is no such patient.")
        return resources.patient_record(patient, **extra)
