"""Exports of a patient's data, as JSON or a FHIR R4 Bundle: identified (the patient, or a
physician with consent and a reason) or de-identified by HIPAA Safe Harbor (a manufacturer
engineer, with consent). Decided by the policy, written whole or not at all, and audited; a
missing reason, where the policy allows it, is flagged and can be added later as an annotation."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from authz import Decision

from . import resources
from .access import AccessService, refuse
from .audit_trail import AuditTrail
from .consent import ConsentService
from .store import Store
from .users import SignedInUser

MDC_SYSTEM = "urn:iso:std:iso:11073:10101"
UCUM_SYSTEM = "http://unitsofmeasure.org"
DAYS_BEFORE_EXPORT = "https://ccc-workstation.invalid/fhir/StructureDefinition/days-before-export"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    audit_record_id: str
    deidentified: bool
    reason_missing: bool  # allowed by policy but flagged: compliance asks for a late justification


def age_band(born: str, today: date) -> str:
    """Ages over 89 are one group under Safe Harbor."""
    b = date.fromisoformat(born)
    age = today.year - b.year - ((today.month, today.day) < (b.month, b.day))
    return "90+" if age >= 90 else str(age)


def patient_data(store: Store, patient_id: str) -> dict[str, Any]:
    """Everything an export may contain, identified."""
    patient = store.patient(patient_id)
    if patient is None:
        raise refuse("export", "There is no such patient.")
    return {
        "patient": {
            k: getattr(patient, k) for k in ("id", "mrn", "name", "birth_date", "sex", "hospital_id", "room", "bed")
        },
        "device": store.device_for(patient_id),
        "transmissions": store.transmissions(patient_id),
        "history": store.history_for(patient_id),
        "notes": store.notes_for(patient_id),
    }


def deidentify(data: dict[str, Any], today: date) -> dict[str, Any]:
    """HIPAA Safe Harbor (45 CFR 164.514(b)(2)): names, MRN, room and bed, facility, device serial
    numbers, every date element but the year, ages over 89 and free text are removed or generalized.
    The study id is random, not derived from any identifier, so it cannot be reversed."""
    p, d = data["patient"], data["device"] or {}
    born_year = p["birth_date"][:4]
    return {
        "study_id": f"ccc-{secrets.token_hex(8)}",
        "patient": {
            "sex": p["sex"],
            "age": age_band(p["birth_date"], today),
            "birth_year": born_year if age_band(p["birth_date"], today) != "90+" else None,
        },
        "device": {
            "manufacturer_id": d.get("manufacturer_id"),
            "model": d.get("model"),
            "firmware_version": d.get("firmware_version"),
            "implanted_year": (d.get("implanted_on") or "")[:4] or None,
        },
        "transmissions": [
            {
                "days_before_export": (today - date.fromisoformat(t["time"][:10])).days,
                "code": t["code"],
                "value": t["value"],
                "unit": t["unit"],
            }
            for t in data["transmissions"]
        ],
        "history": [{"year": h["date"][:4], "category": h["category"]} for h in data["history"]],
    }


def fhir_bundle(data: dict[str, Any], deidentified: bool) -> dict[str, Any]:
    """A FHIR R4 collection Bundle: Patient, Device and one Observation per measurement."""
    pid = "subject"  # the Bundle's own id for its Patient resource
    if deidentified:
        patient = {"resourceType": "Patient", "id": pid, "gender": data["patient"]["sex"]}
        if data["patient"]["birth_year"]:
            patient["birthDate"] = data["patient"]["birth_year"]
        device = {
            "resourceType": "Device",
            "id": "device",
            "patient": {"reference": f"Patient/{pid}"},
            "modelNumber": data["device"]["model"],
            "version": [{"value": data["device"]["firmware_version"]}],
        }
    else:
        p, d = data["patient"], data["device"]
        patient = {
            "resourceType": "Patient",
            "id": pid,
            "name": [{"text": p["name"]}],
            "gender": p["sex"],
            "birthDate": p["birth_date"],
            "identifier": [{"type": {"text": "MRN"}, "value": p["mrn"]}],
        }
        device = {
            "resourceType": "Device",
            "id": "device",
            "patient": {"reference": f"Patient/{pid}"},
            "serialNumber": d["serial"],
            "modelNumber": d["model"],
            "version": [{"value": d["firmware_version"]}],
        }
    entries = [patient, device]
    for i, t in enumerate(data["transmissions"]):
        obs: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"obs-{i}",
            "status": "final",
            "code": {"coding": [{"system": MDC_SYSTEM, "code": t["code"]}]},
            "subject": {"reference": f"Patient/{pid}"},
            "device": {"reference": "Device/device"},
            "valueQuantity": {"value": t["value"], "unit": t["unit"], "system": UCUM_SYSTEM, "code": t["unit"]},
        }
        if deidentified:
            obs["extension"] = [{"url": DAYS_BEFORE_EXPORT, "valueInteger": t["days_before_export"]}]
        else:
            obs["effectiveDateTime"] = t["time"]
        entries.append(obs)
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{secrets.token_hex(16)}", "resource": r} for r in entries],
    }


def write_atomically(path: Path, content: bytes) -> None:
    """The whole file or none of it: a half-written export is never left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".export-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ExportService:
    def __init__(
        self,
        store: Store,
        access: AccessService,
        audit: AuditTrail,
        consents: ConsentService,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.access, self.audit, self.consents, self.clock = store, access, audit, consents, clock

    def offers(self, user: SignedInUser, patient_id: str) -> dict[str, Decision]:
        """The export of this record as this user could make it, identified and de-identified,
        decided on the record as it stands (consent included) before a reason is typed: allowed,
        or refused with remedy "complete_form" when only the form's reason is missing."""
        return {
            kind: self.access.decide_one(user, self._record(patient_id, "", kind == "deidentified"), "export")
            for kind in ("identified", "deidentified")
        }

    def export(
        self,
        user: SignedInUser,
        patient_id: str,
        *,
        deidentified: bool,
        reason: str,
        fmt: str,
        directory: Path,
        progress: Progress | None = None,
    ) -> ExportResult:
        """Decides, builds, writes and audits one export (raises Refused saying why)."""
        if fmt not in ("json", "fhir"):
            raise refuse("export", f"Unknown export format {fmt!r}: use json or fhir.")
        record = self._record(patient_id, reason.strip(), deidentified)
        decision = self.access.require(user, record, "export")
        step = progress or (lambda done, total: None)
        step(0, 3)
        today = self.clock().date()
        data = patient_data(self.store, patient_id)
        if deidentified:
            data = deidentify(data, today)
        step(1, 3)
        document = fhir_bundle(data, deidentified) if fmt == "fhir" else {"format": "ccc-export/1", **data}
        content = json.dumps(document, indent=1, sort_keys=True, default=str).encode()
        # a random part: two exports in the same second never share a file (nor an audited hash)
        stem = data["study_id"] if deidentified else patient_id
        name = f"{stem}-{self.clock():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}.{'fhir.json' if fmt == 'fhir' else 'json'}"
        step(2, 3)
        flagged = decision.output("audit_flag") == "export_reason_missing"
        event = self.audit.event(
            user,
            record,
            decision,
            "export",
            justification=reason.strip(),
            details={
                "format": fmt,
                "deidentified": deidentified,
                "sha256": hashlib.sha256(content).hexdigest(),
                "file": name,
                "review": "required" if flagged else "none",
            },
        )
        write_atomically(directory / name, content)  # after the audit record: nothing leaves unrecorded
        step(3, 3)
        return ExportResult(directory / name, event.record_id, deidentified, flagged)

    def _record(self, patient_id: str, reason: str, deidentified: bool) -> Any:
        """The record as the export rule reads it: consent in force, the reason, the kind of data
        and the device's manufacturer."""
        patient = self.store.patient(patient_id)
        if patient is None:
            raise refuse("export", "There is no such patient.")
        extra: dict[str, Any] = {"deidentified": deidentified}
        consent = self.consents.current(patient_id)
        if consent is not None:
            extra["consent"] = consent.attribute()
        if reason:
            extra["export_reason"] = reason
        device = self.store.device_for(patient_id)
        if device is not None:
            extra["manufacturer_id"] = device["manufacturer_id"]
        return resources.patient_record(patient, **extra)
