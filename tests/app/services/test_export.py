"""Consent and exports on the real policies, store and audit log: consent captured, identified
export by the assigned physician, Safe-Harbor de-identified export by the manufacturer, FHIR R4
shape, the flagged missing reason and its late justification, and every refusal."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import pytest

from app.services.access import Refused
from app.services.export import age_band
from app.services.workstation import Workstation
from authz import Effect
from tests.app.services.support import SEED_PATIENT, Clocks, reason, reasons, rule_id, store_dump, user


def identifiers(ws: Workstation, patient_id: str) -> list[str]:
    p = ws.store.patient(patient_id)
    d = ws.store.device_for(patient_id)
    return [
        p.name,
        p.mrn,
        p.birth_date,
        d["serial"],
        d["implanted_on"],
        f"Room {p.room}",
        f'"{p.room}"',
        *(t["time"][:10] for t in ws.store.transmissions(patient_id)[:5]),
        *(n["text"] for n in ws.store.notes_for(patient_id)),
    ]


def files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.exists() else []


def test_consent_is_the_patients_to_give(ws: Workstation, clocks: Clocks) -> None:
    aly, max_, nia, pt = (user(ws, u) for u in ("dr_aly", "eng_max", "nurse_nia", "pt_p02"))
    assert ws.consents.current(SEED_PATIENT) is None
    offer = ws.consents.offer(aly, SEED_PATIENT)
    assert not offer.allowed and offer.remedy == "complete_form"
    assert ws.consents.offer(pt, SEED_PATIENT).allowed
    before = store_dump(ws)
    with pytest.raises(Refused) as refused:
        ws.consents.record(aly, SEED_PATIENT, "export", "Patient p02", clocks.in_days(30))  # not on her word
    assert (refused.value.decision.reason, refused.value.decision.remedy) == reason(
        "patient_record", "physician_records_consent_on_patients_word"
    )
    with pytest.raises(Refused, match="Engineers"):
        ws.consents.record(max_, SEED_PATIENT, "export", "Patient p02", clocks.in_days(30), patients_word=True)
    with pytest.raises(Refused, match="assigned physician"):
        ws.consents.record(nia, SEED_PATIENT, "export", "Patient p02", clocks.in_days(30), patients_word=True)
    with pytest.raises(Refused, match="own record"):
        ws.consents.record(pt, "p01", "export", "Patient p02", clocks.in_days(30))
    with pytest.raises(Refused, match="future"):
        ws.consents.record(aly, SEED_PATIENT, "export", "Patient p02", clocks.in_days(-1), patients_word=True)
    with pytest.raises(Refused, match="who gave"):
        ws.consents.record(aly, SEED_PATIENT, "export", "  ", clocks.in_days(30), patients_word=True)
    with pytest.raises(Refused, match="Unknown consent scope"):
        ws.consents.record(aly, SEED_PATIENT, "research", "Patient p02", clocks.in_days(30), patients_word=True)
    with pytest.raises(Refused, match="no such patient"):
        ws.consents.record(aly, "p99", "export", "Patient p02", clocks.in_days(30), patients_word=True)
    assert store_dump(ws) == before and not [r for r in ws.audit.records() if r.kind == "event"]

    consent = ws.consents.record(
        aly, SEED_PATIENT, "export", " Patient p02 (signed on the tablet) ", clocks.in_days(90), patients_word=True
    )
    assert (consent.given_by, consent.recorded_by, consent.recorded_at) == (
        "Patient p02 (signed on the tablet)",
        "dr_aly",
        clocks.wall,
    )
    assert ws.consents.current(SEED_PATIENT) == consent
    event = next(r for r in ws.audit.records() if r.event_type == "consent_recorded")
    assert event.details["consent_id"] == consent.id and event.action == "record_consent"
    assert event.rule == rule_id("patient_record", "physician_records_consent_on_patients_word")
    clocks.advance(minutes=5)
    by_patient = ws.consents.record(pt, SEED_PATIENT, "export", "Patient p02", clocks.in_days(30))
    assert ws.consents.current(SEED_PATIENT) == by_patient  # the latest recorded
    clocks.advance(days=31)
    assert ws.consents.current(SEED_PATIENT) == consent  # the patient's ran out, the earlier one did not
    clocks.advance(days=60)
    assert ws.consents.current(SEED_PATIENT) is None


def test_without_consent_nobody_exports(ws: Workstation, tmp_path: Path) -> None:
    aly, max_ = user(ws, "dr_aly"), user(ws, "eng_max")
    out = tmp_path / "out"
    offers = ws.exports.offers(aly, SEED_PATIENT)
    assert not offers["identified"].allowed and offers["identified"].remedy == ""  # no form fixes it
    no_consent = reasons("patient_record", "physician_export_with_consent")[0][0]
    assert offers["identified"].reason == no_consent
    with pytest.raises(Refused) as refused:
        ws.exports.export(
            aly,
            SEED_PATIENT,
            deidentified=False,
            reason="Referral to the electrophysiology clinic",
            fmt="json",
            directory=out,
        )
    assert refused.value.decision.reason == no_consent
    with pytest.raises(Refused, match="consent"):
        ws.exports.export(
            max_,
            SEED_PATIENT,
            deidentified=True,
            reason="Root-cause analysis of sensing drift",
            fmt="fhir",
            directory=out,
        )
    assert files(out) == [] and not [r for r in ws.audit.records() if r.kind == "event"]


def test_with_consent_the_export_still_needs_the_right_person(ws: Workstation, clocks: Clocks, tmp_path: Path) -> None:
    aly, max_, nia, ben = (user(ws, u) for u in ("dr_aly", "eng_max", "nurse_nia", "dr_ben"))
    ws.consents.record(aly, SEED_PATIENT, "export", "Patient p02", clocks.in_days(30), patients_word=True)
    out = tmp_path / "out"
    cases = [
        (nia, False, "does not export"),
        (ben, False, "assigned physician"),
        (max_, False, "de-identified data only"),
        (user(ws, "co_cora"), True, "reviews reports"),
    ]
    for who, deidentified, says in cases:
        with pytest.raises(Refused, match=says):
            ws.exports.export(
                who,
                SEED_PATIENT,
                deidentified=deidentified,
                reason="For the ward file, please",
                fmt="json",
                directory=out,
            )
    with pytest.raises(Refused, match="Unknown export format"):
        ws.exports.export(
            aly, SEED_PATIENT, deidentified=False, reason="For the ward file, please", fmt="pdf", directory=out
        )
    with pytest.raises(Refused, match="no such patient"):
        ws.exports.export(aly, "p99", deidentified=False, reason="For the ward file, please", fmt="json", directory=out)
    other = next(p.id for p in ws.store.patients() if ws.store.device_for(p.id)["manufacturer_id"] == "m_medco")
    ws.consents.record(
        user(ws, ws.store.patient(other).assigned_physicians[0]),
        other,
        "export",
        "The patient",
        clocks.in_days(30),
        patients_word=True,
    )
    with pytest.raises(Refused, match="own manufacturer"):
        ws.exports.export(
            max_, other, deidentified=True, reason="Root-cause analysis of sensing drift", fmt="json", directory=out
        )
    assert files(out) == [] and [r.event_type for r in ws.audit.records() if r.kind == "event"] == [
        "consent_recorded",
        "consent_recorded",
    ]


def test_physician_exports_identified_fhir_with_consent_and_reason(
    ws: Workstation, clocks: Clocks, tmp_path: Path
) -> None:
    aly = user(ws, "dr_aly")
    ws.consents.record(
        aly, SEED_PATIENT, "export", "Patient p02 (signed on the tablet)", clocks.in_days(90), patients_word=True
    )
    offer = ws.exports.offers(aly, SEED_PATIENT)["identified"]
    assert not offer.allowed and offer.remedy == "complete_form"  # the reason is the form's to give
    with pytest.raises(Refused, match="reason") as refused:
        ws.exports.export(
            aly, SEED_PATIENT, deidentified=False, reason="  short  ", fmt="fhir", directory=tmp_path / "out"
        )
    assert refused.value.decision.remedy == "complete_form"
    steps: list[tuple[int, int]] = []
    result = ws.exports.export(
        aly,
        SEED_PATIENT,
        deidentified=False,
        reason="Referral to the electrophysiology clinic",
        fmt="fhir",
        directory=tmp_path / "out",
        progress=lambda done, total: steps.append((done, total)),
    )
    assert steps == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert files(tmp_path / "out") == [result.path] and result.path.name.startswith(f"{SEED_PATIENT}-")
    bundle = json.loads(result.path.read_text())
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert kinds[:2] == ["Patient", "Device"] and kinds.count("Observation") == 270
    obs = bundle["entry"][2]["resource"]
    assert obs["code"]["coding"][0]["system"] == "urn:iso:std:iso:11073:10101"
    assert obs["valueQuantity"]["system"] == "http://unitsofmeasure.org" and obs["effectiveDateTime"]
    assert bundle["entry"][0]["resource"]["identifier"][0]["value"] == ws.store.patient(SEED_PATIENT).mrn
    record = ws.audit.get(result.audit_record_id)
    assert record.event_type == "export" and record.details["deidentified"] is False and not result.reason_missing
    assert record.details["sha256"] == hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert record.details["review"] == "none" and record.justification == "Referral to the electrophysiology clinic"
    assert record.rule == rule_id("patient_record", "physician_export_with_consent")


def test_the_patient_exports_their_own_record(ws: Workstation, tmp_path: Path) -> None:
    result = ws.exports.export(
        user(ws, "pt_p02"), SEED_PATIENT, deidentified=False, reason="", fmt="json", directory=tmp_path
    )
    data = json.loads(result.path.read_text())
    assert data["format"] == "ccc-export/1" and data["patient"]["id"] == SEED_PATIENT and data["notes"]
    with pytest.raises(Refused, match="your own record"):
        ws.exports.export(user(ws, "pt_p02"), "p01", deidentified=False, reason="", fmt="json", directory=tmp_path)


def test_manufacturer_gets_safe_harbor_data_and_a_missing_reason_is_flagged(
    ws: Workstation, clocks: Clocks, tmp_path: Path
) -> None:
    aly, max_ = user(ws, "dr_aly"), user(ws, "eng_max")
    ws.consents.record(aly, SEED_PATIENT, "export", "Patient p02", clocks.in_days(30), patients_word=True)
    offers = ws.exports.offers(max_, SEED_PATIENT)
    assert offers["deidentified"].allowed and not offers["identified"].allowed
    results = []
    for fmt in ("json", "fhir"):
        results.append(ws.exports.export(max_, SEED_PATIENT, deidentified=True, reason="", fmt=fmt, directory=tmp_path))
        clocks.advance(minutes=1)
    for result in results:
        text = result.path.read_text()
        for identifier in identifiers(ws, SEED_PATIENT):
            assert identifier not in text, f"{identifier!r} left in a de-identified export"
        assert SEED_PATIENT not in result.path.name and result.reason_missing and result.deidentified
    data = json.loads(results[0].path.read_text())
    assert set(data["patient"]) == {"sex", "age", "birth_year"} and "serial" not in data["device"]
    assert {h["category"] for h in data["history"]} and "notes" not in data
    assert (
        data["study_id"]
        != json.loads(
            ws.exports.export(
                max_,
                SEED_PATIENT,
                deidentified=True,
                reason="Root-cause analysis of drift",
                fmt="json",
                directory=tmp_path / "again",
            ).path.read_text()
        )["study_id"]
    )
    flagged = ws.audit.get(results[0].audit_record_id)
    assert flagged.details["review"] == "required" and flagged.details["deidentified"] is True
    assert {"audit_flag": "export_reason_missing"} in [o["val"] for o in flagged.outputs]
    assert flagged.rule == rule_id("patient_record", "manufacturer_deidentified_export")
    with pytest.raises(Refused, match="at least 10"):
        ws.compliance.annotate(max_, results[0].audit_record_id, "add_late_justification", "fix")
    late = ws.compliance.annotate(
        max_, results[0].audit_record_id, "add_late_justification", "Root-cause analysis of sensing drift"
    )
    assert late.ref == results[0].audit_record_id and late.event_type == "add_late_justification"
    assert late.effect == Effect.ALLOW.value
    assert ws.chain.verify().ok


def test_the_safe_harbor_data_follow_the_workstation_clock(ws: Workstation, clocks: Clocks, tmp_path: Path) -> None:
    aly, max_ = user(ws, "dr_aly"), user(ws, "eng_max")
    ws.consents.record(aly, SEED_PATIENT, "export", "Patient p02", clocks.in_days(400), patients_word=True)
    first = json.loads(
        ws.exports.export(
            max_, SEED_PATIENT, deidentified=True, reason="", fmt="json", directory=tmp_path / "a"
        ).path.read_text()
    )
    clocks.advance(days=366)
    later = json.loads(
        ws.exports.export(
            max_, SEED_PATIENT, deidentified=True, reason="", fmt="json", directory=tmp_path / "b"
        ).path.read_text()
    )
    assert int(later["patient"]["age"]) == int(first["patient"]["age"]) + 1
    assert [t["days_before_export"] - 366 for t in later["transmissions"]] == [
        t["days_before_export"] for t in first["transmissions"]
    ]


def test_ages_over_89_are_one_group() -> None:
    today = date(2026, 11, 22)
    assert age_band("1936-11-23", today) == "89" and age_band("1936-11-22", today) == "90+"
    assert age_band((today - timedelta(days=365 * 100)).isoformat(), today) == "90+"


def test_an_export_never_replaces_another(ws: Workstation, clocks: Clocks, tmp_path: Path) -> None:
    aly = user(ws, "dr_aly")
    ws.consents.record(aly, SEED_PATIENT, "export", "Patient p02", clocks.in_days(30), patients_word=True)
    first = ws.exports.export(
        aly,
        SEED_PATIENT,
        deidentified=False,
        reason="Referral to the EP clinic",
        fmt="json",
        directory=tmp_path / "out",
    )
    ws.patients.save_note(aly, SEED_PATIENT, "full", "Referral letter sent.")  # the record changes meanwhile
    second = ws.exports.export(
        aly,
        SEED_PATIENT,
        deidentified=False,
        reason="Referral to the EP clinic, updated",
        fmt="json",
        directory=tmp_path / "out",
    )
    results = [first, second]
    for result in results:
        assert result.path.exists()
        recorded = ws.audit.get(result.audit_record_id).details["sha256"]
        assert hashlib.sha256(result.path.read_bytes()).hexdigest() == recorded
