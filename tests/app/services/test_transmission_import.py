"""Importing remote-monitoring transmissions (issue 18, part 4): the project's sample IHE PCD IDCO
message (HL7 v2 ORU^R01) and CardX-CIED FHIR bundle read, written back and read again to the same
readings, imported into a real store by the gateway's service account as the real policies allow,
whole or not at all; malformed messages refused naming the file, the message and the segment."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from app import main as app_main
from app.services.demo_data import generate
from app.services.idco import MessageError, read_transmissions
from app.services.idco.fhir import write_bundle
from app.services.idco.hl7v2 import write_message
from app.services.transmission_import import (
    DEFAULT_ACCOUNT,
    ImportRefused,
    TransmissionImport,
    service_account,
)
from app.services.workstation import Workstation
from authz.audit import AuditWriteError
from tests.app.services.support import reason, user

SAMPLES = Path(__file__).parent / "data" / "idco"
HL7 = SAMPLES / "idco_p04.hl7"
FHIR = SAMPLES / "cardx_p21.json"
SKIPPED_P04 = ["MDC_IDC_SESS_TYPE", "MDC_IDC_SET_BRADY_MODE", "MDC_IDC_SET_BRADY_LOWRATE"]


def importer(ws: Workstation) -> TransmissionImport:
    return TransmissionImport(ws.store, ws.access, ws.audit)


def gateway(ws: Workstation):  # noqa: ANN201
    found = service_account(ws.store, DEFAULT_ACCOUNT)
    assert found is not None
    return found


def readings(path: Path) -> list[tuple[str, str, str, str, str]]:
    return [
        (t.message_id, r.code, r.value, r.unit, r.time)
        for t in read_transmissions(path.read_text(), str(path))
        for r in t.readings
    ]


def test_the_samples_read_as_written() -> None:
    first, second = read_transmissions(HL7.read_text(), str(HL7))
    assert (first.message_id, first.mrn, first.serial, first.patient_name) == (
        "IDCO-P04-0001",
        "MRN-H1-100148",  # PID-3's MR identifier, not the manufacturer's patient number beside it
        "MEDCO8055196",
        "Dana Moro",
    )
    by_code = {r.code: r for r in first.readings}
    assert by_code["MDC_IDC_SESS_TYPE"].value == "Remote|scheduled"  # \F\ is a field separator as text
    assert by_code["MDC_IDC_MSMT_LEADCHNL_RV_PACING_THRESHOLD_AMPLITUDE"].time == "2026-10-20T14:25:00+00:00"
    assert by_code["MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE"].where == "OBX 9"
    assert second.time == "2026-10-27T13:30:00+00:00"  # OBR-7 at +0100, kept in UTC
    (bundle,) = read_transmissions(FHIR.read_text(), str(FHIR))
    assert (bundle.message_id, bundle.mrn, bundle.serial, bundle.model) == (
        "cardx-p21-20261021",
        "MRN-H2-100777",
        "ACME6928066",
        "Pacer X2 SR",
    )
    impedance = next(r for r in bundle.readings if r.code == "MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE")
    assert (impedance.value, impedance.unit, impedance.time) == ("495", "Ohm", "2026-10-21T07:10:00+00:00")
    assert impedance.where == "entry 4 (Observation p21-rv-lead) component 1"


@pytest.mark.parametrize("sample", [HL7, FHIR], ids=["idco-hl7v2", "cardx-fhir"])
def test_round_trip_through_both_formats(sample: Path, tmp_path: Path) -> None:
    """Read, written as HL7 v2 and as FHIR, read again: the same readings, devices and patients."""
    original = read_transmissions(sample.read_text(), str(sample))
    as_hl7 = "".join(write_message(t) for t in original)
    as_fhir = [json.dumps(write_bundle(t)) for t in original]
    again_hl7 = read_transmissions(as_hl7, "written.hl7")
    again_fhir = [t for text in as_fhir for t in read_transmissions(text, "written.json")]
    for again in (again_hl7, again_fhir):
        assert [(t.message_id, t.mrn, t.serial) for t in again] == [(t.message_id, t.mrn, t.serial) for t in original]
        assert [[(r.code, r.value, r.unit, r.time, r.numeric) for r in t.readings] for t in again] == [
            [(r.code, r.value, r.unit, r.time, r.numeric) for r in t.readings] for t in original
        ]


def test_other_separators_and_framing_read_the_same() -> None:
    """MSH-1 and MSH-2 are each message's own; MLLP framing and carriage returns are accepted."""
    text = HL7.read_text()
    other = text.replace("|", "!").replace("^", "#")  # neither is in the sample's text
    as_written = [(code, value.replace("|", "!"), time) for code, value, time in readings_of(text)]
    assert readings_of(other) == as_written  # \F\ is that message's field separator
    assert readings_of("\x0b" + text.replace("\n", "\r") + "\x1c\r") == readings_of(text)


def readings_of(text: str) -> list[tuple[str, str, str]]:
    return [(r.code, r.value, r.time) for t in read_transmissions(text, "x.hl7") for r in t.readings]


def test_the_gateway_imports_a_file_whole_and_once(ws: Workstation) -> None:
    before = {(r["time"], r["code"]) for r in ws.store.transmissions("p04")}
    report = importer(ws).import_file(gateway(ws), HL7)
    assert (report.messages, report.added, report.already) == (2, 12, 0)
    assert [s.split(" ")[-1] for s in report.skipped] == SKIPPED_P04  # reported, not dropped silently
    assert "3 readings skipped (series this workstation does not keep)" in report.summary()
    rows = {(r["time"], r["code"]): r for r in ws.store.transmissions("p04")}
    added = {k: v for k, v in rows.items() if k not in before}
    assert len(added) == 12
    lead = added[("2026-10-27T13:30:00+00:00", "MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE")]
    assert (lead["value"], lead["unit"], lead["abnormal"]) == (2240.0, "Ohm", 1)  # above the normal 2000 Ω
    events = [r for r in ws.audit.records() if r.event_type == "transmission_imported"]
    assert [e.details["message_id"] for e in events] == ["IDCO-P04-0001", "IDCO-P04-0002"]
    assert events[0].principal_id == DEFAULT_ACCOUNT and events[0].resource_kind == "transmission"
    assert events[0].details["skipped"] == 3 and events[0].patient_id == "p04"
    again = importer(ws).import_file(gateway(ws), HL7)
    assert (again.added, again.already) == (0, 12)
    assert len(ws.store.transmissions("p04")) == len(rows)


def test_another_value_for_a_held_reading_stops_the_file(ws: Workstation, tmp_path: Path) -> None:
    """A correction is never applied silently: not against the store, not between two messages."""
    importer(ws).import_file(gateway(ws), HL7)
    corrected = tmp_path / "corrected.hl7"
    corrected.write_text(HL7.read_text().replace("|2240|Ohm", "|2250|Ohm"))
    with pytest.raises(MessageError) as error:
        importer(ws).import_file(gateway(ws), corrected)
    assert str(error.value) == (
        f"{corrected}: message IDCO-P04-0002: OBX 3: MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE at "
        "2026-10-27T13:30:00+00:00 is held already with another value (2240, not 2250): a correction is not imported"
    )
    first = HL7.read_text().split("\nMSH")[0].replace("IDCO-P04-0001", "IDCO-P04-0009") + "\n"
    twice = tmp_path / "twice.hl7"
    twice.write_text(first + first.replace("IDCO-P04-0009", "IDCO-P04-0010").replace("|2.97|", "|2.95|"))
    with pytest.raises(MessageError, match="message IDCO-P04-0010: OBX 7: .* is held already .*2.97, not 2.95"):
        importer(ws).import_file(gateway(ws), twice)


def test_a_fhir_bundle_is_imported_for_the_h2_patient(ws: Workstation) -> None:
    report = importer(ws).import_file(gateway(ws), FHIR)
    assert (report.messages, report.added, report.skipped) == (
        1,
        5,
        ["message cardx-p21-20261021: entry 6 (Observation p21-brady-mode) MDC_IDC_SET_BRADY_MODE"],
    )
    burden = [r for r in ws.store.transmissions("p21") if r["time"] == "2026-10-21T07:10:00+00:00"]
    assert {r["code"]: r["value"] for r in burden}["MDC_IDC_STAT_AT_BURDEN_PERCENT"] == 7.5


def test_only_the_gateway_of_the_patients_hospital_imports(ws: Workstation) -> None:
    rows = len(ws.store.transmissions("p21"))
    with pytest.raises(ImportRefused) as refused:
        importer(ws).import_file(user(ws, "dr_visiting"), FHIR)  # a physician of both hospitals
    assert str(refused.value) == (
        f"{FHIR}: message cardx-p21-20261021: not imported: {reason('transmission', 'why_not_import')[0]}"
    )
    ws.store.db["staff"].update(DEFAULT_ACCOUNT, {"hospital_ids": json.dumps(["h1"])})  # IT narrows it to h1
    with pytest.raises(ImportRefused, match="does not serve the patient's hospital"):
        importer(ws).import_file(gateway(ws), FHIR)
    assert len(ws.store.transmissions("p21")) == rows
    refusals = [r for r in ws.audit.records() if r.kind == "decision" and r.resource_kind == "transmission"]
    assert [(r.principal_id, r.effect) for r in refusals] == [
        ("dr_visiting", "EFFECT_DENY"),
        (DEFAULT_ACCOUNT, "EFFECT_DENY"),
    ]


# Malformed messages: (what is changed in the HL7 sample, what the error says after the file's name)
HL7_ERRORS = [
    (
        "OBX|7|NM|^MDC_IDC_MSMT_BATTERY_VOLTAGE^MDC|1|2.97|",
        "OBX|7|NM|^MDC_IDC_MSMT_BATTERY_VOLTAGE^MDC|1|2,97|",
        "message IDCO-P04-0001: OBX 7: OBX-5: '2,97' is not a number (OBX-2 says NM)",
    ),
    (
        "1|2.97|V^V^UCUM",
        "1|2.97|mV^mV^UCUM",
        "message IDCO-P04-0001: OBX 7: MDC_IDC_MSMT_BATTERY_VOLTAGE is kept in UCUM 'V'; the message gives 'mV'",
    ),
    (
        "^Remote\\F\\scheduled",
        "^Remote\\Q\\scheduled",
        "message IDCO-P04-0001: OBX 4: OBX-5: unknown escape sequence \\Q\\",
    ),
    (
        "|||20261020143000+0000",
        "|||202610201430",
        "message IDCO-P04-0001: OBR 1: OBR-7: '202610201430' is not a date and time to the minute with its UTC offset",
    ),
    (
        "ORU^R01^ORU_R01|IDCO-P04-0001",
        "ADT^A01^ADT_A01|IDCO-P04-0001",
        "message IDCO-P04-0001: MSH 1: MSH-9: the message is 'ADT^A01': only ORU^R01 observation results are imported",
    ),
    (
        "MRN-H1-100148^^^h1^MR~",
        "MRN-H1-999999^^^h1^MR~",
        "message IDCO-P04-0001: PID 1: no patient with MRN 'MRN-H1-999999' in this store",
    ),
    (
        "|1|MEDCO8055196||||||F\nOBX|3",
        "|1|MEDCO0000000||||||F\nOBX|3",
        "message IDCO-P04-0001: OBX 1: the device 'MEDCO0000000' is not the device recorded for the patient",
    ),
    (
        "PID|1||MRN-H1-100148^^^h1^MR||Moro^Dana||19620704|F\nOBR",
        "OBR",
        "message IDCO-P04-0002: PID: expected one PID segment (one patient per message), found 0",
    ),
    (
        "OBX|3|NM|722433^MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE^MDC|1|2240|",
        "OBX|3|NM|722433^MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE^MDC|1|2240 Ohm|",
        "message IDCO-P04-0002: OBX 3: OBX-5: '2240 Ohm' is not a number",
    ),
    ("PV1|1|O", "PV1|1|O\nobx|oops", "message IDCO-P04-0001: segment 4: 'obx|oops' is not a segment"),
    (
        "MSH|^~\\&|RM-SERVER",
        "MSH|^^\\&|RM-SERVER",
        "message IDCO-P04-0001: MSH 1: MSH-1 and MSH-2: the separators '|^^\\\\&' must be",
    ),
]


@pytest.mark.parametrize(("before", "after", "said"), HL7_ERRORS)
def test_a_malformed_message_is_refused_naming_message_and_segment(
    ws: Workstation, tmp_path: Path, before: str, after: str, said: str
) -> None:
    text = HL7.read_text()
    assert before in text
    bad = tmp_path / "bad.hl7"
    bad.write_text(text.replace(before, after, 1))
    rows = len(ws.store.transmissions("p04"))
    with pytest.raises(MessageError) as error:
        importer(ws).import_file(gateway(ws), bad)
    assert str(error.value).startswith(f"{bad}: {said}"), str(error.value)
    assert len(ws.store.transmissions("p04")) == rows  # nothing half-imported: the first message neither
    assert not [r for r in ws.audit.records() if r.event_type == "transmission_imported"]


AF_SUBJECT = (
    '"subject": {"reference": "urn:uuid:0f6a3c2e-p21-patient"},\n'
    '        "effectiveDateTime": "2026-10-21T07:10:00Z",\n        "valueQuantity"'
)
FHIR_ERRORS = [
    (
        '"system": "http://unitsofmeasure.org", "code": "V"}',
        '"code": "V"}',
        "entry 3 (Observation p21-battery): valueQuantity.system: the unit 'V' must be a UCUM code",
    ),
    (
        '"effectiveDateTime": "2026-10-21T09:10:00+02:00",\n        "valueQuantity"',
        '"effectiveDateTime": "2026-10-21T09:10:00",\n        "valueQuantity"',
        "entry 3 (Observation p21-battery): effectiveDateTime: '2026-10-21T09:10:00' is not a date",
    ),
    (
        '"value": 12.4',
        '"value": "12.4"',
        "entry 4 (Observation p21-rv-lead) component 2: valueQuantity.value: '12.4' is not a number",
    ),
    (
        AF_SUBJECT,
        AF_SUBJECT.replace("urn:uuid:0f6a3c2e-p21-patient", "Patient/someone-else"),
        "entry 5 (Observation p21-af-burden): subject 'Patient/someone-else' is not the Bundle's Patient",
    ),
    (
        '"serialNumber": "ACME6928066"',
        '"serialNumber": "ACME0000001"',
        "entry 2 (Device p21-device): the device 'ACME0000001' is not the device recorded",
    ),
    ('"resourceType": "Bundle",', '"resourceType": "Bundle"', "not JSON: Expecting ',' delimiter at line"),
]


@pytest.mark.parametrize(("before", "after", "said"), FHIR_ERRORS)
def test_a_malformed_bundle_is_refused_naming_the_entry(
    ws: Workstation, tmp_path: Path, before: str, after: str, said: str
) -> None:
    text = FHIR.read_text()
    assert before in text
    bad = tmp_path / "bad.json"
    bad.write_text(text.replace(before, after, 1))
    with pytest.raises(MessageError) as error:
        importer(ws).import_file(gateway(ws), bad)
    named = said if said.startswith("not JSON") else f"message cardx-p21-20261021: {said}"
    assert str(error.value).startswith(f"{bad}: {named}"), str(error.value)


def test_an_audit_log_that_cannot_be_written_imports_nothing(ws: Workstation, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = len(ws.store.transmissions("p04"))

    def full(*_args: object) -> None:
        raise AuditWriteError("database or disk is full")

    monkeypatch.setattr(ws.audit.chain, "append_many", full)
    with pytest.raises(AuditWriteError):
        importer(ws).import_file(gateway(ws), HL7)
    assert len(ws.store.transmissions("p04")) == rows


def test_the_command_imports_files_and_names_what_failed(
    demo_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    shutil.copytree(demo_store, data)
    bad = tmp_path / "bad.hl7"
    bad.write_text(HL7.read_text().replace("|2.97|", "|2,97|"))
    code = app_main.main(["import", "--data-dir", str(data), str(HL7), str(bad), str(FHIR)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{HL7}: 2 messages, 12 readings imported, 0 already in the store; 3 readings skipped" in out
    assert f"{FHIR}: 1 message, 5 readings imported" in out
    assert f"not imported: {bad}: message IDCO-P04-0001: OBX 7: OBX-5: '2,97' is not a number" in err
    code = app_main.main(["import", "--data-dir", str(data), "--as", "dr_aly", str(HL7)])
    assert code == 1 and reason("transmission", "why_not_import")[0] in capsys.readouterr().err
    assert app_main.main(["import", "--data-dir", str(data), str(HL7)]) == 0
    assert "0 readings imported, 12 already in the store" in capsys.readouterr().out


def test_the_demo_data_comes_through_the_import(make_ws: Callable[..., Workstation], tmp_path: Path) -> None:
    """The demo's telemetry is its messages as the importer reads them: importing the demo's own
    files into its store finds every reading already there, with the same value."""
    ws = make_ws()
    demo = generate()  # the same seed and day as the store's
    p01 = [(name, text) for name, text in demo.messages if name.startswith("p01-")]
    p21 = [(name, text) for name, text in demo.messages if name.startswith("p21-")]
    assert len(p01) == len(p21) == 30 and p01[0][0].endswith(".hl7") and p21[0][0].endswith(".json")
    for name, text in p01 + p21:
        (tmp_path / name).write_text(text)
    reports = [importer(ws).import_file(gateway(ws), tmp_path / name) for name, _ in p01 + p21]
    assert {(r.added, r.already, len(r.skipped)) for r in reports} == {(0, 9, 0)}
