"""A transmission as an HL7 CardX-CIED style FHIR R4 Bundle, read and written: one Patient (the MRN
among its identifiers), the implanted Device (serial, model, manufacturer) and one Observation per
measurement, each coded in ISO/IEEE 11073-10101 (the MDC IDC reference id as the coding's code or
display), its value a valueQuantity in UCUM, its time an effectiveDateTime with a UTC offset, its
subject the Patient and its device the Device (the CIED device extension or ``device``). An
Observation with components gives one reading per component. A place in the bundle is named by
entry number and resource ("entry 4 (Observation obs-3)")."""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from .hl7v2 import number_text
from .model import MessageError, Reading, Transmission, utc_iso

MDC_SYSTEM = "urn:iso:std:iso:11073:10101"
UCUM_SYSTEM = "http://unitsofmeasure.org"
CIED_DEVICE_EXTENSION = "http://hl7.org/fhir/uv/cardx-cied/StructureDefinition/cied-device-extension"
MR_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"
USABLE_STATUS = {"final", "amended", "corrected", "preliminary"}


class _Entry:
    def __init__(self, number: int, resource: dict[str, Any]) -> None:
        self.resource = resource
        self.kind = str(resource.get("resourceType", ""))
        self.id = str(resource.get("id", ""))
        self.label = f"entry {number} ({self.kind} {self.id})".replace(" )", ")")

    def fail(self, what: str) -> MessageError:
        return MessageError(what, where=self.label)


def read_bundle(text: str) -> Transmission:
    """The transmission of one Bundle (MessageError naming the bundle, entry and element)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MessageError(f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise MessageError("expected a FHIR Bundle (a JSON object with resourceType 'Bundle')")
    bundle_id = str(data.get("id") or (data.get("identifier") or {}).get("value") or "")
    try:
        return _read(data, bundle_id)
    except MessageError as exc:
        raise exc.located(message=bundle_id or "(a Bundle with no id)") from None


def _read(data: dict[str, Any], bundle_id: str) -> Transmission:
    if not bundle_id:
        raise MessageError("the Bundle has neither an id nor an identifier: the message cannot be named")
    raw_entries = data.get("entry")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise MessageError("the Bundle has no entries", where="Bundle.entry")
    entries, by_reference = [], {}
    for number, raw in enumerate(raw_entries, 1):
        resource = raw.get("resource") if isinstance(raw, dict) else None
        if not isinstance(resource, dict) or not resource.get("resourceType"):
            raise MessageError("an entry without a resource", where=f"entry {number}")
        entry = _Entry(number, resource)
        entries.append(entry)
        if raw.get("fullUrl"):
            by_reference[str(raw["fullUrl"])] = entry
        if entry.id:
            by_reference[f"{entry.kind}/{entry.id}"] = entry
    patients = [e for e in entries if e.kind == "Patient"]
    if len(patients) != 1:
        raise MessageError(f"expected one Patient in the Bundle (one patient per transmission), found {len(patients)}")
    patient = patients[0]
    readings: list[Reading] = []
    devices: set[int] = set()
    for entry in entries:
        if entry.kind == "Observation":
            found, device = _observation(entry, patient, by_reference)
            readings += found
            if device is not None:
                devices.add(id(device))
    if not readings:
        raise MessageError("no Observation with a value: nothing to import", where="Bundle.entry")
    device_entries = [e for e in entries if e.kind == "Device"]
    referenced = [e for e in device_entries if id(e) in devices] or device_entries
    if len(referenced) > 1:
        raise MessageError(f"the observations name {len(referenced)} devices; a transmission comes from one")
    device_resource = referenced[0].resource if referenced else {}
    stamp = data.get("timestamp")
    return Transmission(
        bundle_id,
        _mrn(patient),
        _time(stamp, MessageError, "Bundle.timestamp") if stamp else min(r.time for r in readings),
        tuple(readings),
        serial=str(device_resource.get("serialNumber", "")),
        model=str(device_resource.get("modelNumber", "") or _device_name(device_resource)),
        manufacturer=str(device_resource.get("manufacturer", "")),
        patient_name=_name(patient.resource),
        patient_where=patient.label,
        device_where=referenced[0].label if referenced else "",
    )


def _mrn(patient: _Entry) -> str:
    identifiers = [i for i in patient.resource.get("identifier") or [] if isinstance(i, dict) and i.get("value")]
    if not identifiers:
        raise patient.fail("Patient.identifier: the patient's MRN is needed")
    records = [
        str(i["value"])
        for i in identifiers
        if any(c.get("code") == "MR" for c in (i.get("type") or {}).get("coding") or [] if isinstance(c, dict))
    ]
    if len(records) > 1:
        raise patient.fail(f"Patient.identifier: more than one MR identifier ({', '.join(records)})")
    if not records and len(identifiers) > 1:
        raise patient.fail("Patient.identifier: several identifiers and none of type MR: which is the MRN is not said")
    return records[0] if records else str(identifiers[0]["value"])


def _name(resource: dict[str, Any]) -> str:
    names = resource.get("name") or []
    if not names or not isinstance(names[0], dict):
        return ""
    given = " ".join(str(g) for g in names[0].get("given") or [])
    return " ".join(p for p in (given, str(names[0].get("family", ""))) if p)


def _device_name(resource: dict[str, Any]) -> str:
    names = resource.get("deviceName") or []
    return str(names[0].get("name", "")) if names and isinstance(names[0], dict) else ""


def _reference(value: Any) -> str:
    return str(value.get("reference", "")) if isinstance(value, dict) else ""


def _observation(
    entry: _Entry, patient: _Entry, by_reference: dict[str, _Entry]
) -> tuple[list[Reading], _Entry | None]:
    r = entry.resource
    status = r.get("status")
    if status not in USABLE_STATUS:
        raise entry.fail(f"status {status!r}: only {', '.join(sorted(USABLE_STATUS))} observations are imported")
    subject = _reference(r.get("subject"))
    if by_reference.get(subject) is not patient:
        raise entry.fail(f"subject {subject!r} is not the Bundle's Patient")
    device = None
    device_ref = next(
        (
            _reference(x.get("valueReference"))
            for x in r.get("extension") or []
            if x.get("url") == CIED_DEVICE_EXTENSION
        ),
        "",
    ) or _reference(r.get("device"))
    if device_ref:
        device = by_reference.get(device_ref)
        if device is None or device.kind != "Device":
            raise entry.fail(f"device {device_ref!r} is not a Device of the Bundle")
    if "effectiveDateTime" in r:
        time = _time(r["effectiveDateTime"], entry.fail, "effectiveDateTime")
    elif "effectiveInstant" in r:
        time = _time(r["effectiveInstant"], entry.fail, "effectiveInstant")
    else:
        raise entry.fail("effectiveDateTime: the observation's date and time are missing")
    parts = [(r, entry.label)]
    if r.get("component"):
        parts = [(c, f"{entry.label} component {k}") for k, c in enumerate(r["component"], 1) if isinstance(c, dict)]
    return [_reading(part, where, time) for part, where in parts if _has_value(part)], device


def _has_value(element: dict[str, Any]) -> bool:
    return any(key.startswith("value") for key in element)


def _reading(element: dict[str, Any], where: str, time: str) -> Reading:
    def fail(what: str) -> MessageError:
        return MessageError(what, where=where)

    codings = [c for c in (element.get("code") or {}).get("coding") or [] if isinstance(c, dict)]
    mdc = [c for c in codings if c.get("system") == MDC_SYSTEM]
    reference_id = next(
        (str(v) for c in mdc for v in (c.get("code"), c.get("display")) if str(v or "").startswith("MDC_")), ""
    )
    if reference_id:
        code, system = reference_id, "MDC"
    elif codings:
        code, system = str(codings[0].get("code", "")), str(codings[0].get("system", ""))
    else:
        raise fail("code.coding: the observation is not coded")
    quantity = element.get("valueQuantity")
    if quantity is None:
        value = next(
            (_plain(v) for k, v in element.items() if k.startswith("value") and k != "valueQuantity"),
            "",
        )
        return Reading(code, value, "", time, where, numeric=False, code_system=system)
    if not isinstance(quantity, dict) or isinstance(quantity.get("value"), bool):
        raise fail("valueQuantity: expected an object with a numeric value")
    number = quantity.get("value")
    if not isinstance(number, int | float):
        raise fail(f"valueQuantity.value: {number!r} is not a number")
    unit = str(quantity.get("code") or "")
    if unit and quantity.get("system") != UCUM_SYSTEM:
        raise fail(f"valueQuantity.system: the unit {unit!r} must be a UCUM code ({UCUM_SYSTEM})")
    return Reading(code, number_text(number), unit, time, where, code_system=system)


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        coding = (value.get("coding") or [{}])[0]
        return str(coding.get("display") or coding.get("code") or value.get("text") or "")
    return str(value)


def _time(raw: Any, fail: Any, element: str) -> str:
    utc = _utc(raw) if isinstance(raw, str) else ""
    if not utc:
        raise fail(f"{element}: {raw!r} is not a date and time with a UTC offset (2026-11-03T02:00:00Z)")
    return utc


@functools.lru_cache(maxsize=256)
def _utc(raw: str) -> str:
    """A FHIR dateTime with its offset, in UTC as the store keeps it; "" when it is not one (a
    bundle's observations share a few times: each is converted once)."""
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return ""
    return utc_iso(moment) if moment.tzinfo is not None and "T" in raw else ""


# writing


def write_bundle(t: Transmission, assigning_authority: str = "") -> dict[str, Any]:
    """The transmission as a CardX-CIED style collection Bundle (a dict, for json.dumps)."""
    patient_url, device_url = f"urn:uuid:{t.message_id}-patient", f"urn:uuid:{t.message_id}-device"
    identifier: dict[str, Any] = {"type": {"coding": [{"system": MR_SYSTEM, "code": "MR"}]}, "value": t.mrn}
    if assigning_authority:
        identifier["system"] = f"urn:ccc:mrn:{assigning_authority}"
    given, _, family = t.patient_name.partition(" ")
    patient: dict[str, Any] = {"resourceType": "Patient", "id": f"{t.message_id}-patient", "identifier": [identifier]}
    if t.patient_name:
        patient["name"] = [{"family": family, "given": [given]} if family else {"text": given}]
    device: dict[str, Any] = {"resourceType": "Device", "id": f"{t.message_id}-device"}
    device.update(
        {k: v for k, v in (("serialNumber", t.serial), ("manufacturer", t.manufacturer), ("modelNumber", t.model)) if v}
    )
    entries = [{"fullUrl": patient_url, "resource": patient}, {"fullUrl": device_url, "resource": device}]
    for number, r in enumerate(t.readings, 1):
        observation: dict[str, Any] = {
            "resourceType": "Observation",
            "id": f"{t.message_id}-obs-{number}",
            "extension": [{"url": CIED_DEVICE_EXTENSION, "valueReference": {"reference": device_url}}],
            "status": "final",
            "code": {"coding": [{"system": MDC_SYSTEM, "code": r.code, "display": r.code}]},
            "subject": {"reference": patient_url},
            "effectiveDateTime": r.time,
        }
        if r.numeric:
            number = float(r.value)
            whole = number.is_integer() and r.value.lstrip("+-").isdigit()
            quantity: dict[str, Any] = {"value": int(number) if whole else number}
            if r.unit:
                quantity.update({"unit": r.unit, "system": UCUM_SYSTEM, "code": r.unit})
            observation["valueQuantity"] = quantity
        else:
            observation["valueString"] = r.value
        entries.append({"fullUrl": f"urn:uuid:{t.message_id}-obs-{number}", "resource": observation})
    return {"resourceType": "Bundle", "id": t.message_id, "type": "collection", "timestamp": t.time, "entry": entries}
