"""Consent and exports on the real policies, store and audit log: consent captured, identified
export by the assigned physician, Safe-Harbor de-identified export by the manufacturer, FHIR R4
shape, the flagged missing reason and its late justification, and every refusal."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from app.services.consent import ConsentRefused
from app.services.export import ExportRefused, age_band
from app.services.users import DEMO_PASSWORD
from app.services.workstation import Workstation

SEED_PATIENT = "p02"  # room 902: Dr. Aly attending, an Acme pacemaker


@pytest.fixture
def ws(tmp_path: Path) -> Workstation:
    return Workstation(tmp_path / "data")


def in_days(days: int) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def identifiers(ws: Workstation, patient_id: str) -> list[str]:
    p = ws.store.patient(patient_id)
    d = ws.store.device_for(patient_id)
    return [p.name, p.mrn, p.birth_date, d["serial"], d["implanted_on"], f"Room {p.room}",
            *(t["time"][:10] for t in ws.store.transmissions(patient_id)[:5])]


def test_without_consent_nobody_exports_and_consent_needs_a_viewer(ws: Workstation, tmp_path: Path) -> None:
    aly, max_, nia = (ws.sign_in(u, DEMO_PASSWORD) for u in ("dr_aly", "eng_max", "nurse_nia"))
    with pytest.raises(ExportRefused, match="consent"):
        ws.export(aly, SEED_PATIENT, deidentified=False, reason="Referral to the electrophysiology clinic",
                  fmt="json", directory=tmp_path / "out")
    with pytest.raises(ExportRefused, match="consent"):
        ws.export(max_, SEED_PATIENT, deidentified=True, reason="Root-cause analysis of sensing drift",
                  fmt="fhir", directory=tmp_path / "out")
    with pytest.raises(ConsentRefused, match="open this patient's record"):
        ws.record_consent(max_, SEED_PATIENT, "Patient p02", in_days(30))
    with pytest.raises(ConsentRefused, match="future"):
        ws.record_consent(aly, SEED_PATIENT, "Patient p02", in_days(-1))
    with pytest.raises(ExportRefused):  # a nurse never exports, consent or not
        ws.record_consent(aly, SEED_PATIENT, "Patient p02", in_days(30))
        ws.export(nia, SEED_PATIENT, deidentified=False, reason="For the ward file, please",
                  fmt="json", directory=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_physician_exports_identified_fhir_with_consent_and_reason(ws: Workstation, tmp_path: Path) -> None:
    aly = ws.sign_in("dr_aly", DEMO_PASSWORD)
    ws.record_consent(aly, SEED_PATIENT, "Patient p02 (signed on the tablet)", in_days(90))
    with pytest.raises(ExportRefused, match="reason"):
        ws.export(aly, SEED_PATIENT, deidentified=False, reason="", fmt="fhir", directory=tmp_path)
    steps: list[tuple[int, int]] = []
    result = ws.export(aly, SEED_PATIENT, deidentified=False, reason="Referral to the electrophysiology clinic",
                       fmt="fhir", directory=tmp_path, progress=lambda done, total: steps.append((done, total)))
    assert steps[0] == (0, 3) and steps[-1] == (3, 3)
    bundle = json.loads(result.path.read_text())
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert kinds[:2] == ["Patient", "Device"] and kinds.count("Observation") == 270
    obs = bundle["entry"][2]["resource"]
    assert obs["code"]["coding"][0]["system"] == "urn:iso:std:iso:11073:10101"
    assert obs["valueQuantity"]["system"] == "http://unitsofmeasure.org"
    assert bundle["entry"][0]["resource"]["identifier"][0]["value"].startswith("MRN-")
    record = ws.audit.get(result.audit_record_id)
    assert record.event_type == "export" and record.details["deidentified"] is False and not result.reason_missing


def test_manufacturer_gets_safe_harbor_data_and_a_missing_reason_is_flagged(ws: Workstation,
                                                                            tmp_path: Path) -> None:
    aly, max_ = ws.sign_in("dr_aly", DEMO_PASSWORD), ws.sign_in("eng_max", DEMO_PASSWORD)
    with pytest.raises(ExportRefused, match="de-identified"):
        ws.record_consent(aly, SEED_PATIENT, "Patient p02", in_days(30))
        ws.export(max_, SEED_PATIENT, deidentified=False, reason="Need the full record please",
                  fmt="json", directory=tmp_path)
    results = [ws.export(max_, SEED_PATIENT, deidentified=True, reason="", fmt=fmt, directory=tmp_path)
               for fmt in ("json", "fhir")]
    for result in results:
        text = result.path.read_text()
        for identifier in identifiers(ws, SEED_PATIENT):
            assert identifier not in text, f"{identifier!r} left in a de-identified export"
        assert SEED_PATIENT not in result.path.name and result.reason_missing
    data = json.loads(results[0].path.read_text())
    assert set(data["patient"]) == {"sex", "age", "birth_year"} and "serial" not in data["device"]
    assert {h["category"] for h in data["history"]} and "notes" not in data
    flagged = ws.audit.get(results[0].audit_record_id)
    assert flagged.details["review"] == "required"
    assert {"audit_flag": "export_reason_missing"} in [o["val"] for o in flagged.outputs]
    with pytest.raises(ExportRefused, match="at least 10"):
        ws.exports.add_late_reason(max_, results[0].audit_record_id, "fix")
    late = ws.exports.add_late_reason(max_, results[0].audit_record_id, "Root-cause analysis of sensing drift")
    assert late.ref == results[0].audit_record_id and late.event_type == "late_justification"
    assert ws.audit.verify().ok


def test_ages_over_89_are_one_group() -> None:
    today = date(2026, 11, 22)
    assert age_band("1936-11-23", today) == "89" and age_band("1936-11-22", today) == "90+"
