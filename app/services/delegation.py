"""Delegation: the patient, or the assigned physician with the patient's permission recorded,
lets a named caregiver see that one patient's permitted data until an expiry; revocable.

The policies do the enforcing (``active_delegate`` in ccc_roles.yaml reads ``P.attr.delegations``
and their expiry); this service records grants and revocations and audits both."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authz.audit import AuditChain, AuditRecord

from .store import Store
from .users import SignedInUser


class DelegationRefused(Exception):
    """The grant or revocation was not allowed; the message says why."""


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
        return cls(row["id"], row["patient_id"], row["delegate_id"], row["granted_by"],
                   bool(row["patient_permission"]), datetime.fromisoformat(row["expires_at"]), bool(row["revoked"]))


class DelegationService:
    def __init__(self, store: Store, audit: AuditChain,
                 may_delegate: Callable[[SignedInUser, str, bool], tuple[bool, str, str]],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store, self.audit, self.may_delegate, self.clock = store, audit, may_delegate, clock

    def grant(self, granter: SignedInUser, patient_id: str, delegate_id: str, expires_at: datetime,
              patient_permission: bool) -> Delegation:
        """Records a delegation after the policy allowed ``delegate_access``; raises DelegationRefused."""
        delegate = self.store.staff(delegate_id)
        if delegate is None or delegate["role"] != "delegated_caregiver":
            raise DelegationRefused("Choose a registered caregiver account to delegate to.")
        if expires_at.tzinfo is None or expires_at <= self.clock():
            raise DelegationRefused("The delegation must end at a time in the future.")
        allowed, why, rule = self.may_delegate(granter, patient_id, patient_permission)
        if not allowed:
            raise DelegationRefused(why)
        delegation = Delegation(f"del-{uuid.uuid4().hex[:12]}", patient_id, delegate_id, granter.id,
                                patient_permission, expires_at.astimezone(UTC), False)
        self.audit.append(AuditRecord(
            "event", granter.id, "delegate_access", list(granter.roles), "patient_record", patient_id, patient_id,
            "EFFECT_ALLOW", rule=rule, event_type="delegation_granted",
            details={"delegation_id": delegation.id, "delegate_id": delegate_id,
                     "expires_at": delegation.expires_at.isoformat(), "patient_permission": patient_permission}))
        self.store.add_delegation({
            "id": delegation.id, "patient_id": patient_id, "delegate_id": delegate_id, "granted_by": granter.id,
            "patient_permission": patient_permission, "expires_at": delegation.expires_at.isoformat(),
            "revoked": False})
        return delegation

    def revoke(self, revoker: SignedInUser, delegation_id: str) -> None:
        """Ends a delegation now; the same people who may grant it may revoke it."""
        row = self.store.delegation(delegation_id)
        if row is None:
            raise DelegationRefused("There is no such delegation.")
        delegation = Delegation.from_row(row)
        allowed, why, rule = self.may_delegate(revoker, delegation.patient_id, True)
        if not allowed:
            raise DelegationRefused(why)
        self.audit.append(AuditRecord(
            "event", revoker.id, "delegate_access", list(revoker.roles), "patient_record", delegation.patient_id,
            delegation.patient_id, "EFFECT_ALLOW", rule=rule, event_type="delegation_revoked",
            details={"delegation_id": delegation.id, "delegate_id": delegation.delegate_id}))
        self.store.revoke_delegation(delegation_id)

    def for_patient(self, patient_id: str) -> list[Delegation]:
        return [Delegation.from_row(r) for r in self.store.delegations_for_patient(patient_id)]
