"""The hospital administrator's tools: the staff of their hospital, each patient's care team, the
delegations in force, and what the administrator changes there. Seeing them is ``view_assignments``
and each care team change ``assign_care_team`` / ``remove_from_care_team`` on the patient's
``care_team`` (policies/resources/care_team.yaml); ending a delegation is ``revoke_delegation`` on
the patient's record, through the delegation service as for everyone who revokes; suspending and
reinstating a staff account is ``suspend_account`` / ``reinstate_account`` on the ``account``
(policies/resources/account.yaml). Every change is an audit event beside its decision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from authz import Decision, Resource

from . import resources
from .access import AccessService, Refused, refuse
from .audit_trail import AuditTrail
from .delegation import DelegationService
from .store import Patient, Store
from .users import SignedInUser

CHANGES = {"assign_care_team": "care_team_assigned", "remove_from_care_team": "care_team_removed"}
ACCOUNT_CHANGES = {"suspend_account": "account_suspended", "reinstate_account": "account_reinstated"}


@dataclass(frozen=True)
class Assignments:
    """What the admin's screen shows: staff, care teams and delegations in force (one hospital)."""

    staff: list[dict[str, object]]  # id, name, role, suspended (None, or by whom and when)
    patients: list[Patient]  # with their care teams
    delegations: list[dict[str, object]]  # in force: id, patient_id, delegate_id, expires_at, granted_by


class AdminService:
    def __init__(
        self,
        store: Store,
        access: AccessService,
        audit: AuditTrail,
        delegations: DelegationService,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.access, self.audit, self.delegations, self.clock = store, access, audit, delegations, clock

    def tools(self, user: SignedInUser) -> Decision:
        """Whether the policies give this user the admin tools at all."""
        return self.access.decide_one(user, resources.workstation(), "open_admin_tools")

    def assignments(self, user: SignedInUser, now: datetime) -> Assignments:
        """The patients whose care teams this user may see, their hospitals' staff (each marked
        suspended or not) and the delegations in force (not revoked, not expired at ``now``)."""
        teams = [resources.care_team(p) for p in self.store.patients()]
        seen = {r.id for r in self.access.permitted(user, teams, "view_assignments")}
        patients = [p for p in self.store.patients() if p.id in seen]
        hospitals = {p.hospital_id for p in patients}
        suspensions = self.store.suspensions()
        staff = [
            {"id": s["id"], "name": s["name"], "role": s["role"], "suspended": suspensions.get(s["id"])}
            for s in self.store.staff_members()
            if hospitals & set(s.get("hospital_ids") or [])
        ]
        moment = now.isoformat()
        delegations = [
            d
            for p in patients
            for d in self.store.delegations_for_patient(p.id)
            if not d.get("revoked") and str(d.get("expires_at", "")) > moment
        ]
        return Assignments(staff, patients, delegations)

    def change_care_team(self, user: SignedInUser, patient_id: str, member_id: str, action: str) -> Patient:
        """Adds the staff member to the patient's care team or takes them off it, as the policies
        allow (raises Refused saying why); audited. Returns the patient as now stored."""
        if action not in CHANGES:
            raise refuse(action, f"Unknown care team change {action!r}.")
        patient, member = self.store.patient(patient_id), self.store.staff(member_id)
        if patient is None:
            raise refuse(action, "There is no such patient.")
        if member is None:
            raise refuse(action, f"There is no staff account {member_id!r}.")
        team = list(patient.care_team)
        adding = action == "assign_care_team"
        if adding == (member_id in team):
            raise refuse(action, "Already on the care team." if adding else "Not on the care team.")
        resource = resources.care_team(patient, member)
        decision = self.access.require(user, resource, action)
        self.audit.event(user, resource, decision, CHANGES[action], details={"member": member_id})
        self.store.set_care_team(patient_id, [*team, member_id] if adding else [m for m in team if m != member_id])
        changed = self.store.patient(patient_id)
        assert changed is not None
        return changed

    def revocation(self, user: SignedInUser, delegation_id: str) -> Decision:
        """Whether this user may end the delegation now (asked before the screen confirms it)."""
        return self.delegations.revocation(user, delegation_id)

    def revoke_delegation(self, user: SignedInUser, delegation_id: str) -> None:
        """Ends a delegation in force now (a caregiver's access that must end), as the policies allow;
        audited as every revocation is (raises Refused saying why not)."""
        self.delegations.revoke(user, delegation_id)

    def account_change(self, user: SignedInUser, account_id: str, action: str) -> Decision:
        """Whether this user may suspend or reinstate the account now (asked before the screen
        confirms it; the change itself is decided again)."""
        try:
            return self.access.decide_one(user, self._account(account_id, action), action)
        except Refused as refused:  # nothing to change (already suspended, no such account)
            return refused.decision

    def change_account(self, user: SignedInUser, account_id: str, action: str) -> None:
        """Suspends the staff account (it can no longer sign in) or reinstates it, as the policies
        allow (raises Refused saying why not); audited, then recorded in the store."""
        resource = self._account(account_id, action)
        decision = self.access.require(user, resource, action)
        self.audit.event(user, resource, decision, ACCOUNT_CHANGES[action], details={"account": account_id})
        if action == "suspend_account":
            self.store.suspend(account_id, user.id, self.clock().isoformat())
        else:
            self.store.reinstate(account_id)

    def _account(self, account_id: str, action: str) -> Resource:
        """The account as the policies see it for this change; Refused when there is nothing to change."""
        if action not in ACCOUNT_CHANGES:
            raise refuse(action, f"Unknown account change {action!r}.")
        staff = self.store.staff(account_id)
        if staff is None:
            raise refuse(action, f"There is no staff account {account_id!r}.")
        suspended = self.store.suspended(account_id)
        if suspended == (action == "suspend_account"):
            raise refuse(
                action, "This account is already suspended." if suspended else "This account is not suspended."
            )
        return resources.staff_account(staff, suspended)
