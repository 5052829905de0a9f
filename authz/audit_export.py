"""Audit records in the shapes other systems read: Cerbos decision-log JSON lines, and FHIR R4
AuditEvent resources with DICOM and HL7 codes (IHE ATNA), for the hospital's audit repository."""

from __future__ import annotations

import json
from typing import Any

from .audit import AuditRecord
from .guard import Checkpoint
from .policy import ALLOW

DCM = "http://dicom.nema.org/resources/ontology/DCM"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
CCC_EVENT = "urn:ccc:audit-event-type"

# (type code, type display, subtype code, subtype display, FHIR action) per clinical event.
_EVENTS: dict[str, tuple[str, str, str, str, str]] = {
    "break_glass_start": ("110113", "Security Alert", "110127", "Emergency Override Started", "E"),
    "break_glass_end": ("110113", "Security Alert", "110138", "Emergency Override Stopped", "E"),
    "export": ("110106", "Export", "", "", "R"),
    "note_saved": ("110110", "Patient Record", "", "", "U"),
    "delegation_granted": ("110136", "Security Roles Changed", "", "", "C"),
    "delegation_revoked": ("110136", "Security Roles Changed", "", "", "D"),
    "firmware_request": ("110132", "Use of Restricted Function", "", "", "C"),
    "firmware_approval": ("110132", "Use of Restricted Function", "", "", "U"),
    "annotation": ("110110", "Patient Record", "", "", "U"),
}
# FHIR action per policy action verb, for decisions.
_ACTIONS = {
    "view": "R",
    "view_phi": "R",
    "view_history": "R",
    "export": "R",
    "edit_clinical_notes": "U",
    "delegate_access": "C",
    "break_glass": "E",
}


def to_decision_log(r: AuditRecord, log_id: str = "") -> dict[str, Any]:
    """A record as a Cerbos decision-log line (``log.kind: decision``), with our chain fields."""
    base = {
        "log.logger": "cerbos.audit",
        "callId": r.call_id or r.record_id,
        "timestamp": r.time,
        "ccc": {
            "seq": r.seq,
            "recordId": r.record_id,
            "hash": r.hash,
            "prevHash": r.prev_hash,
            "workstationId": r.workstation_id,
            "kind": r.kind,
            **({"logId": log_id} if log_id else {}),
        },
    }
    if r.kind != "decision":
        return {
            **base,
            "log.kind": r.kind,
            "event": {
                "type": r.event_type,
                "principalId": r.principal_id,
                "patientId": r.patient_id,
                "resource": {"kind": r.resource_kind, "id": r.resource_id},
                "ref": r.ref,
                "justification": r.justification,
                "details": r.details,
            },
        }
    return {
        **base,
        "log.kind": "decision",
        "checkResources": {
            "inputs": [
                {
                    "requestId": r.call_id,
                    "principal": {"id": r.principal_id, "roles": r.principal_roles},
                    "resource": {"kind": r.resource_kind, "id": r.resource_id},
                    "actions": [r.action],
                }
            ],
            "outputs": [
                {
                    "requestId": r.call_id,
                    "resourceId": r.resource_id,
                    "actions": {r.action: {"effect": r.effect, "policy": r.policy}},
                    **({"outputs": [{**o, "action": r.action} for o in r.outputs]} if r.outputs else {}),
                }
            ],
        },
        "auditTrail": {
            "effectivePolicies": {r.policy: {"attributes": {"rule": r.rule, "bundleVersion": r.bundle_version}}}
        },
        "purposeOfUse": r.purpose_of_use,
    }


def to_fhir(r: AuditRecord, log_id: str = "", checkpoint: Checkpoint | None = None) -> dict[str, Any]:
    """A record as a FHIR R4 AuditEvent; its chain fields (and the guard's latest checkpoint, on
    the last record of a shipped batch) in the details of the entity naming the record."""
    if r.kind == "decision":
        type_code, type_display, sub_code, sub_display = "110110", "Patient Record", "", ""
        action = _ACTIONS.get(r.action.split(":")[0], "E")
        outcome = "0" if r.effect == ALLOW else "4"
    else:
        type_code, type_display, sub_code, sub_display, action = _EVENTS.get(
            r.event_type or r.kind, ("110110", "Patient Record", "", "", "E")
        )
        outcome = "0"
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": r.record_id,
        "type": {"system": DCM, "code": type_code, "display": type_display},
        "action": action,
        "recorded": r.time,
        "outcome": outcome,
        "agent": [
            {
                "who": {"identifier": {"value": r.principal_id}},
                "requestor": True,
                "role": [{"text": role} for role in r.principal_roles],
            }
        ],
        "source": {
            "observer": {"display": r.workstation_id or "ccc-workstation"},
            "type": [{"system": SOURCE_TYPE, "code": "1", "display": "User Device"}],
        },
        "entity": [],
    }
    subtypes = []
    if sub_code:
        subtypes.append({"system": DCM, "code": sub_code, "display": sub_display})
    if r.kind == "decision":
        subtypes.append({"system": CCC_EVENT, "code": r.action})
        event["outcomeDesc"] = f"{r.effect} by {r.policy}" + (f" ({r.rule})" if r.rule else "")
    elif r.event_type:
        subtypes.append({"system": CCC_EVENT, "code": r.event_type})
    if subtypes:
        event["subtype"] = subtypes
    if r.purpose_of_use:
        event["purposeOfEvent"] = [{"coding": [{"system": ACT_REASON, "code": r.purpose_of_use}]}]
    if r.patient_id:
        event["entity"].append(
            {
                "what": {"identifier": {"value": r.patient_id}},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    if r.resource_kind or r.resource_id:
        event["entity"].append(
            {
                "what": {"identifier": {"value": f"{r.resource_kind}/{r.resource_id}"}},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            }
        )
    details = [
        {"type": "hash", "valueString": r.hash},
        {"type": "seq", "valueString": str(r.seq)},
        {"type": "prevHash", "valueString": r.prev_hash},
    ]
    if log_id:
        details.append({"type": "logId", "valueString": log_id})
    if checkpoint is not None:
        details.append({"type": "checkpoint", "valueString": json.dumps(checkpoint.to_json(), sort_keys=True)})
    if r.justification:
        details.append({"type": "justification", "valueString": r.justification})
    if r.ref:
        details.append({"type": "annotates", "valueString": r.ref})
    event["entity"].append({"what": {"identifier": {"value": r.record_id}}, "detail": details})
    return event
