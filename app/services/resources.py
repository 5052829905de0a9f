"""The resources the app asks the policies about, built the one way the attribute contract says
(policies/README.md): each screen's question goes to the engine on the real thing it concerns."""

from __future__ import annotations

from typing import Any

from authz import Resource

from .store import Patient
from .text_measure import measure


def present(attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes the store has a value for: a NULL column is an attribute left out (missing
    to the policies, as to a query plan's SQL), never a null one."""
    return {k: v for k, v in attrs.items() if v is not None}


def patient_record(patient: Patient, **extra: Any) -> Resource:
    """A patient_record: the patient's tenancy, care team and flags, plus what one action adds
    (a note type, the consent, an export's reason, a break-glass justification, ...)."""
    attrs = {
        "patient_id": patient.id,
        "hospital_id": patient.hospital_id,
        "care_team": list(patient.care_team),
        "assigned_physicians": list(patient.assigned_physicians),
        "sealed": patient.sealed,
        "emergency": patient.emergency,
    }
    return Resource("patient_record", patient.id, {**present(attrs), **extra})


def patient_identity(patient: Patient) -> Resource:
    """Who the patient is (name, date of birth, MRN, location), apart from the chart: what a
    search returns and a banner shows (``search_identity``, policies/resources/patient_identity.yaml)."""
    return Resource(
        "patient_identity",
        patient.id,
        present(
            {
                "patient_id": patient.id,
                "hospital_id": patient.hospital_id,
                "care_team": list(patient.care_team),
                "assigned_physicians": list(patient.assigned_physicians),
            }
        ),
    )


def history_entry(patient: Patient, entry_id: str, category: str) -> Resource:
    return Resource(
        "history_entry",
        entry_id,
        {
            "patient_id": patient.id,
            "hospital_id": patient.hospital_id,
            "care_team": list(patient.care_team),
            "assigned_physicians": list(patient.assigned_physicians),
            "category": category,
        },
    )


def device(device_id: str, manufacturer_id: str, patient: Patient, update: dict[str, Any] | None) -> Resource:
    """An implanted device with its patient's tenancy and care team, and the update in progress."""
    attrs: dict[str, Any] = {
        "patient_id": patient.id,
        "hospital_id": patient.hospital_id,
        "manufacturer_id": manufacturer_id,
        "care_team": list(patient.care_team),
        "assigned_physicians": list(patient.assigned_physicians),
    }
    if update is not None:
        attrs["update"] = update
    return Resource("device", device_id, attrs)


def transmission(message_id: str, patient: Patient, device: dict[str, Any], message_format: str) -> Resource:
    """One imported message of a patient's implanted device: its patient's tenancy, the device and
    its manufacturer (``import``, policies/resources/transmission.yaml)."""
    attrs = {
        "patient_id": patient.id,
        "hospital_id": patient.hospital_id,
        "device_id": device.get("id"),
        "manufacturer_id": device.get("manufacturer_id"),
        "format": message_format,
    }
    return Resource("transmission", message_id, present(attrs))


def audit_event(
    record_id: str, actor_id: str, event_type: str, patient: Patient | None, justification: str = ""
) -> Resource:
    """A recorded event: who acted, what it was, and its patient's hospital and physicians; with
    the measure of its justification when it has one (the policies judge it)."""
    return Resource(
        "audit_event",
        record_id,
        present(
            {
                "hospital_id": patient.hospital_id if patient else "",
                "actor_id": actor_id,
                "event_type": event_type,
                "patient_id": patient.id if patient else "",
                "assigned_physicians": list(patient.assigned_physicians) if patient else [],
                "justification_measure": measure(justification) if justification.strip() else None,
            }
        ),
    )


def compliance_report(report_type: str, hospital_id: str) -> Resource:
    return Resource(
        "compliance_report", f"{report_type}-{hospital_id}", {"hospital_id": hospital_id, "report_type": report_type}
    )


def account(account_id: str, roles: list[str]) -> Resource:
    """A user account as something an action concerns (a delegation's receiver)."""
    return Resource("account", account_id, {"roles": list(roles)})


def staff_account(staff: dict[str, Any], suspended: bool) -> Resource:
    """A staff account as the hospital admin suspends or reinstates it: its roles, the hospitals it
    works at, and whether it is suspended now."""
    attrs = {"roles": [staff["role"]], "hospital_ids": list(staff.get("hospital_ids") or []), "suspended": suspended}
    return Resource("account", staff["id"], attrs)


def care_team(patient: Patient, member: dict[str, Any] | None = None) -> Resource:
    """A patient's care team as the hospital admin manages it, with the staff member a change
    concerns (their roles and hospitals), when there is one."""
    attrs: dict[str, Any] = {
        "patient_id": patient.id,
        "hospital_id": patient.hospital_id,
        "care_team": list(patient.care_team),
    }
    if member is not None:
        attrs |= {
            "member": member["id"],
            "member_roles": [member["role"]],
            "member_hospital_ids": list(member.get("hospital_ids") or []),
        }
    return Resource("care_team", patient.id, attrs)


def workstation() -> Resource:
    return Resource("workstation", "this", {})
