"""The hospital administrator's tools: the staff of their hospital, each patient's care team, the
delegations in force, and changes to care teams. Seeing them is ``view_assignments`` and each change
``assign_care_team`` / ``remove_from_care_team`` on the patient's ``care_team``
(policies/resources/care_team.yaml); every change is an audit event beside its decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from authz import Decision

from . import resources
from .access import AccessService, refuse
from .audit_trail import AuditTrail
from .store import Patient, Store
from .users import SignedInUser

CHANGES = {"assign_care_team": "care_team_assigned", "remove_from_care_team": "care_team_removed"}


@dataclass(frozen=True)
class Assignments:
    """What the admin's screen shows: staff, care teams and delegations in force (one hospital)."""

    staff: list[dict[str, object]]  # id, name, role
    patients: list[Patient]  # with their care teams
    delegations: list[dict[str, object]]  # in force: patient_id, delegate_id, expires_at, granted_by


class AdminService:
    def __init__(self, store: Store, access: AccessService, audit: AuditTrail) -> None:
        self.store, self.access, self.audit = store, access, audit

    def tools(self, user: SignedInUser) -> Decision:
        """Whether the policies give this user the admin tools at all."""
        return self.access.decide_one(user, resources.workstation(), "open_admin_tools")

    def assignments(self, user: SignedInUser, now: datetime) -> Assignments:
        """The patients whose care teams this user may see, their hospitals' staff and the
        delegations in force (not revoked, not expired at ``now``)."""
        teams = [resources.care_team(p) for p in self.store.patients()]
        seen = {r.id for r in self.access.permitted(user, teams, "view_assignments")}
        patients = [p for p in self.store.patients() if p.id in seen]
        hospitals = {p.hospital_id for p in patients}
        staff = [
            {"id": s["id"], "name": s["name"], "role": s["role"]}
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
