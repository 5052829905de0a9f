"""Importing remote-monitoring transmissions from files into the store: IHE PCD IDCO messages (HL7
v2 ORU^R01) and CardX-CIED style FHIR Observation bundles (app/services/idco reads both).

A file is imported whole or not at all: every message in it is read, matched to a patient of the
store (the MRN) and to that patient's implanted device (its serial), checked reading by reading
and decided by the policies (``import`` on a ``transmission``, policies/resources/transmission.yaml)
before anything is written; then its readings and one audit record per message are committed in
one transaction. A wrong message stops the file with the file, the message (MSH-10 control id or
Bundle id), the place (segment "OBX 7" or bundle entry) and what is wrong.

Readings of series the workstation does not keep (an IDCO message carries settings, other
chambers, episode details) are skipped, counted and listed in the file's report: the import does
not refuse a real device's message for what it carries besides, and says what it left out.
Readings already held with the same value (in the store: a file imported again; or in an earlier
message of the file) are counted as such and not added twice; one with another value at the same
time stops the file (a correction is not applied silently). Patients and devices are never
created here: a transmission for an MRN or a device the store does not know is refused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authz import Decision, Resource

from . import resources
from .access import Refused
from .clinical import ClinicalService
from .idco import MessageError, Reading, Transmission, read_transmissions
from .idco.rows import Series, store_rows
from .store import Patient, Store, observation_catalogue
from .users import SignedInUser

# The service account the import runs as unless told otherwise (``ccc-workstation import --as``);
# what it may do is the policies' (the demo hospital has it, as IT would create it).
DEFAULT_ACCOUNT = "rm_gateway"


class ImportRefused(Exception):
    """The policies refused a message of the file: nothing of the file was imported."""

    def __init__(self, file: str, message_id: str, refused: Refused) -> None:
        super().__init__(f"{file}: message {message_id}: not imported: {refused.decision.reason}")
        self.decision = refused.decision


@dataclass
class FileImported:
    """What one file's import did."""

    file: str
    messages: int = 0
    added: int = 0
    already: int = 0  # readings the store held already, with the same value
    skipped: list[str] = field(default_factory=list)  # "message M: OBX 5 MDC_IDC_SET_BRADY_MODE"

    def summary(self) -> str:
        text = (
            f"{self.file}: {self.messages} message{'s' if self.messages != 1 else ''}, "
            f"{self.added} readings imported, {self.already} already in the store"
        )
        if self.skipped:
            text += f"; {len(self.skipped)} readings skipped (series this workstation does not keep): " + ", ".join(
                self.skipped
            )
        return text


def series_kept() -> Series:
    """The telemetry series of the store, by MDC IDC reference id: (UCUM unit, normal low, high)."""
    return {code: (unit, low, high) for code, _display, unit, low, high in observation_catalogue()}


@dataclass
class _Planned:
    transmission: Transmission
    patient: Patient
    device: dict[str, Any]
    rows: list[dict[str, Any]]
    skipped: list[Reading]


class TransmissionImport(ClinicalService):
    """Imports files of transmissions for a user (the gateway's service account), as the policies allow."""

    def import_file(self, user: SignedInUser, path: Path) -> FileImported:
        """One file, whole or not at all. MessageError for a wrong message (nothing imported),
        ImportRefused when the policies refuse one (nothing imported, the refusal audited)."""
        name = str(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise MessageError(f"cannot be read: {exc.strerror or exc}", file=name) from None
        except UnicodeDecodeError as exc:
            raise MessageError(f"not UTF-8 text (byte {exc.start})", file=name) from None
        planned = [self._plan(t, name) for t in read_transmissions(text, name)]
        fmt = "fhir" if text.lstrip("\ufeff \t\r\n").startswith("{") else "hl7v2"
        allowed = [self._decide(user, p, name, fmt) for p in planned]
        report = FileImported(name, messages=len(planned))
        rows: list[dict[str, Any]] = []
        done = []
        pending: dict[tuple[str, str, str], float] = {}  # (patient, time, code) -> value, across the file's messages
        for p, (resource, decision) in zip(planned, allowed, strict=True):
            fresh, already = self._new_rows(p, name, pending)
            rows += fresh
            report.added += len(fresh)
            report.already += already
            report.skipped += [f"message {p.transmission.message_id}: {r.where} {r.code}" for r in p.skipped]
            details = {
                "file": path.name,
                "format": fmt,
                "message_id": p.transmission.message_id,
                "device_id": p.device["id"],
                "readings": len(fresh),
                "already_stored": already,
                "skipped": len(p.skipped),
            }
            done.append((resource, decision, "transmission_imported", details))
        self.store.add_transmissions(rows, lambda: self.audit.events(user, done))
        return report

    def _plan(self, t: Transmission, file: str) -> _Planned:
        try:
            patient, device = _patient_and_device(self.store, t)
            rows, skipped = store_rows(t, patient.id, series_kept())
        except MessageError as exc:
            raise exc.located(file=file, message=t.message_id) from None
        return _Planned(t, patient, device, rows, skipped)

    def _decide(self, user: SignedInUser, p: _Planned, file: str, fmt: str) -> tuple[Resource, Decision]:
        resource = resources.transmission(p.transmission.message_id, p.patient, p.device, fmt)
        decision = self.access.decide_one(user, resource, "import")
        if not decision.allowed:
            self.audit.decisions(user, resource, [decision])  # a refused attempt is on the record too
            raise ImportRefused(file, p.transmission.message_id, Refused(decision))
        return resource, decision

    def _new_rows(
        self, p: _Planned, file: str, pending: dict[tuple[str, str, str], float]
    ) -> tuple[list[dict[str, Any]], int]:
        """The rows neither the store nor an earlier message of the file holds yet, and how many
        they hold already with the same value; another value for the same reading stops the file."""
        stored = self.store.readings_at(p.patient.id, [r["time"] for r in p.rows])
        fresh, already = [], 0
        for row in p.rows:
            key = (p.patient.id, row["time"], row["code"])
            held = stored.get(key[1:], pending.get(key))
            if held is None:
                fresh.append(row)
                pending[key] = row["value"]
            elif held == row["value"]:
                already += 1
            else:
                where = next(r.where for r in p.transmission.readings if (r.time, r.code) == key[1:])
                raise MessageError(
                    f"{row['code']} at {row['time']} is held already with another value ({held:g}, "
                    f"not {row['value']:g}): a correction is not imported",
                    file=file,
                    message=p.transmission.message_id,
                    where=where,
                )
        return fresh, already


def _patient_and_device(store: Store, t: Transmission) -> tuple[Patient, dict[str, Any]]:
    """The store's patient with the message's MRN, and their device, which must be the one the
    message came from (its serial): a transmission is never filed under another patient."""
    patient_id = store.patient_id_for_mrn(t.mrn)
    patient = store.patient(patient_id) if patient_id else None
    if patient is None:
        raise MessageError(
            f"no patient with MRN {t.mrn!r} in this store: transmissions are imported for known patients only",
            where=t.patient_where,
        )
    if not t.serial:
        raise MessageError(
            "the device's serial number (MDC_IDC_DEV_SERIAL, or Device.serialNumber) is missing: "
            "it is needed to check the transmission comes from the patient's device",
            where=t.device_where or "device",
        )
    device = store.device_for(patient.id)
    if device is None or device["serial"] != t.serial:
        raise MessageError(
            f"the device {t.serial!r} is not the device recorded for the patient with MRN {t.mrn!r}",
            where=t.device_where,
        )
    return patient, device


def service_account(store: Store, account_id: str) -> SignedInUser | None:
    """The account the import runs as, from the store's directory (its roles and hospitals as
    recorded), or None when there is no such account."""
    staff = store.staff(account_id)
    if staff is None:
        return None
    attrs: dict[str, Any] = {"hospital_ids": list(staff["hospital_ids"] or [])}
    return SignedInUser(staff["id"], staff["name"], (staff["role"],), attrs)


def import_files(service: TransmissionImport, user: SignedInUser, paths: Sequence[Path]) -> list[FileImported]:
    """Each file in turn (each whole or not at all); raises at the first that fails."""
    return [service.import_file(user, path) for path in paths]
