"""Asking the policy engine on the app's behalf: every control the views show is enabled by a
decision from here, and every denial comes with a sentence a clinician understands. Patient data
is handed out only after the decision that allows it is durably in the audit log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authz import CheckInput, Engine, Principal, Resource
from authz.audit import AuditChain, AuditRecord, decision_records

from .store import Patient, Store
from .users import SignedInUser

ALLOW = "EFFECT_ALLOW"
_WHO = "the patient's assigned physician or an engineer of the device's manufacturer"
EXPORT_REASONS = {
    "physician": "An export needs the patient's consent in force and a reason of at least 10 characters; "
                 "only the assigned physician exports identified data.",
    "manufacturer_engineer": "Engineers export de-identified data of their own manufacturer's devices, and only "
                             "with the patient's consent in force.",
    "patient": "You can export your own record only.",
}
FIRMWARE_REASONS = {
    "request_firmware_update": f"A firmware update is requested by {_WHO}, and only when none is in progress.",
    "approve_firmware_update": "Approval needs a pending request and both a physician and a manufacturer engineer; "
                               "nobody approves their own request or approves twice.",
    "reject_firmware_update": f"Only {_WHO} can reject an update, while it is in progress.",
    "schedule_firmware_update": f"Only {_WHO} can schedule an update, once both approvals are in.",
    "apply_firmware_update": f"Only {_WHO} can record an update as applied, once it is scheduled.",
}


@dataclass(frozen=True)
class Decision:
    action: str
    allowed: bool
    reason: str  # empty when allowed
    rule: str = ""
    outputs: tuple[dict[str, Any], ...] = ()  # the policy's outputs for this action ({src, val})


class NoPolicies(Exception):
    """No policy set is active: everything is denied (the status bar says why)."""


class AccessService:
    def __init__(self, engine: Callable[[], Engine | None], store: Store, audit: AuditChain | None = None,
                 no_policy_reason: Callable[[], str] = lambda: "No policy set is loaded.") -> None:
        self.engine = engine
        self.store = store
        self.audit = audit
        self.no_policy_reason = no_policy_reason

    @staticmethod
    def principal(user: SignedInUser) -> Principal:
        return Principal(user.id, list(user.roles), dict(user.attributes))

    @staticmethod
    def record(patient: Patient, **extra: Any) -> Resource:
        """A patient_record resource with the attributes of the contract (policies/README.md)."""
        attrs = {"patient_id": patient.id, "hospital_id": patient.hospital_id, "care_team": list(patient.care_team),
                 "assigned_physicians": list(patient.assigned_physicians), "sealed": patient.sealed,
                 "emergency": patient.emergency, **extra}
        return Resource("patient_record", patient.id, attrs)

    def decide(self, user: SignedInUser, resource: Resource, actions: list[str]) -> dict[str, Decision]:
        engine = self.engine()
        if engine is None:
            reason = self.no_policy_reason()
            return {a: Decision(a, False, reason) for a in actions}
        out = engine.check(CheckInput(self.principal(user), resource, actions))
        return {a: Decision(a, e.effect == ALLOW, "" if e.effect == ALLOW else self.explain(user, resource, a), e.rule,
                            tuple({"src": o.src, "val": o.val} for o in out.outputs if o.action == a))
                for a, e in out.actions.items()}

    def visible_patients(self, user: SignedInUser, patients: list[Patient] | None = None) -> list[Patient]:
        """The patients the user may view, each decided by the engine."""
        patients = self.store.patients() if patients is None else patients
        engine = self.engine()
        if engine is None:
            return []
        principal = self.principal(user)
        return [p for p in patients
                if engine.check(CheckInput(principal, self.record(p), ["view"])).actions["view"].effect == ALLOW]

    def open_record(self, user: SignedInUser, patient_id: str, purpose_of_use: str = "TREAT") -> Patient:
        """The patient's record, once a decision allowed it and that decision is in the audit log.
        Raises PermissionError with the reason, or AuditWriteError when the log cannot be written."""
        patient = self.store.patient(patient_id)
        if patient is None:
            raise PermissionError("There is no such patient.")
        resource = self.record(patient)
        engine = self.engine()
        if engine is None:
            raise PermissionError(self.no_policy_reason())
        out = engine.check(CheckInput(self.principal(user), resource, ["view"]))
        if self.audit is not None:
            records: list[AuditRecord] = decision_records(self.principal(user), resource, out,
                                                          bundle_version=engine.bundle_version,
                                                          purpose_of_use=purpose_of_use)
            self.audit.append_many(records)  # durably committed before anything is shown
        if out.actions["view"].effect != ALLOW:
            raise PermissionError(self.explain(user, resource, "view"))
        return patient

    def explain(self, user: SignedInUser, resource: Resource, action: str) -> str:
        """Why a decision denied, in a clinician's words (the engine decided; this only explains)."""
        roles, attrs = set(user.roles), resource.attr
        here = attrs.get("hospital_id") in user.attributes.get("hospital_ids", [])
        on_team = user.id in attrs.get("care_team", []) or user.id in attrs.get("assigned_physicians", [])
        if action == "export":
            return EXPORT_REASONS.get(next(iter(roles), ""), "Your role does not export patient data.")
        if roles & {"compliance_officer", "hospital_admin"} and resource.kind == "patient_record":
            return "Your role reviews reports and recorded events, not patient charts."
        if "manufacturer_engineer" in roles and resource.kind == "patient_record":
            return "Engineers see de-identified device data only, never the patient's chart."
        if attrs.get("sealed") and roles & {"nurse", "delegated_caregiver"}:
            return "This record is sealed: only the patient, the attending physician or emergency access may open it."
        if roles & {"nurse", "physician", "er_physician"} and not here:
            return "This patient is at a hospital you do not work at."
        if resource.kind == "device":
            return FIRMWARE_REASONS.get(action, "Your role does not allow this for this device.")
        if action == "delegate_access":
            return ("Access can be delegated by the patient, or by the assigned physician with the patient's "
                    "permission recorded.")
        if action == "break_glass":
            if not roles & {"physician", "er_physician"}:
                return "Only physicians and ER physicians can use emergency access."
            if not attrs.get("emergency"):
                return "Emergency access is only for a patient under emergency treatment (flagged by the ER)."
            return "Emergency access needs a reason code and a justification of at least 20 characters."
        if "er_physician" in roles and action in ("view", "view_history", "view_phi", "edit_clinical_notes"):
            return "This record opens for the emergency team only under break-glass (emergency access)."
        if roles & {"nurse", "physician"} and not on_team:
            if "physician" in roles:
                return "You are not on this patient's care team. In an emergency, use break-glass."
            return "You are not on this patient's care team."
        if action == "edit_clinical_notes":
            return {"nurse": "Nurses write basic notes only.", "physician": "This note type is not yours to write.",
                    "er_physician": "Only emergency notes, under break-glass."}.get(next(iter(roles)),
                                                                                  "Your role does not edit notes.")
        return "Your role does not allow this for this patient."
