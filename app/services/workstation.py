"""The composition root of the service layer: one ``Workstation`` owns the store, the users, the
active policy engine and the audit log, and offers the app exactly what its screens need, each
piece already decided by the engine (Qt-free, so it is tested without a display)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from authz import Engine, Resource
from authz.audit import AuditChain, AuditRecord

from .access import AccessService, Decision
from .store import Patient, Store, observation_catalogue
from .users import DemoUserDirectory, SignedInUser

BUNDLED_POLICIES = Path(__file__).resolve().parents[2] / "policies"
RECORD_ACTIONS = ["view_history", "edit_clinical_notes", "export", "break_glass", "delegate_access"]
NOTE_TYPE_FOR_ROLE = {"nurse": "basic", "physician": "full", "er_physician": "emergency"}


@dataclass(frozen=True)
class PatientRow:
    patient: Patient
    alerts: int
    last_transmission: str | None

    @property
    def alert_level(self) -> str:
        return "red" if self.alerts >= 3 else "yellow" if self.alerts > 0 else "none"


@dataclass(frozen=True)
class Series:
    code: str
    display: str
    unit: str
    low: float
    high: float
    points: list[tuple[str, float]]


@dataclass
class RecordView:
    patient: Patient
    device: dict[str, Any] | None
    series: list[Series]
    notes: list[dict[str, Any]]
    history: list[dict[str, Any]]
    decisions: dict[str, Decision] = field(default_factory=dict)


@dataclass(frozen=True)
class Status:
    policy_version: str
    online: bool
    audit_backlog: int
    message: str


class Workstation:
    def __init__(self, data_dir: Path, policies: Path = BUNDLED_POLICIES, workstation_id: str | None = None) -> None:
        self.data_dir = data_dir
        self.store = Store(data_dir / "ccc.db")
        self.users = DemoUserDirectory(self.store)
        self.audit = AuditChain(data_dir / "audit.db", workstation_id=workstation_id or socket.gethostname())
        self._engine: Engine | None = Engine.from_directory(policies, bundle_version="bundled")
        self.access = AccessService(lambda: self._engine, self.store, self.audit)

    def engine(self) -> Engine | None:
        return self._engine

    def sign_in(self, user_id: str, password: str) -> SignedInUser | None:
        return self.users.authenticate(user_id, password)

    def staff_choices(self) -> list[tuple[str, str]]:
        return [(r["id"], f"{r['name']} — {r['role'].replace('_', ' ')}") for r in self.store.db["staff"].rows]

    def patient_rows(self, user: SignedInUser, search: str = "") -> list[PatientRow]:
        """The patients this user may view (each decided by the engine), matching the search."""
        needle = search.strip().lower()
        rows = []
        for p in self.access.visible_patients(user):
            if needle and needle not in p.name.lower() and needle not in p.mrn.lower():
                continue
            rows.append(PatientRow(p, self.store.alerts(p.id), self.store.latest_transmission(p.id)))
        return rows

    def open_record(self, user: SignedInUser, patient_id: str) -> RecordView:
        """Everything the record screen shows, after the audited decision that allows it."""
        patient = self.access.open_record(user, patient_id)
        resource = self.access.record(patient, note_type=NOTE_TYPE_FOR_ROLE.get(user.roles[0], "basic"))
        decisions = self.access.decide(user, resource, RECORD_ACTIONS)
        raw = self.store.transmissions(patient_id)
        series = []
        for code, display, unit, low, high in observation_catalogue():
            points = [(t["time"], float(t["value"])) for t in raw if t["code"] == code]
            series.append(Series(code, display, unit, low, high, points))
        history = self._history(user, patient) if decisions["view_history"].allowed else []
        notes = list(self.store.db["notes"].rows_where("patient_id = ?", [patient_id], order_by="time desc"))
        return RecordView(patient, self.store.device_for(patient_id), series, notes, history, decisions)

    def _history(self, user: SignedInUser, patient: Patient) -> list[dict[str, Any]]:
        """History entries one by one: a delegate's history is limited by policy."""
        entries = []
        for entry in self.store.db["history"].rows_where("patient_id = ?", [patient.id], order_by="date desc"):
            resource = Resource("history_entry", entry["id"], {
                "patient_id": patient.id, "hospital_id": patient.hospital_id, "care_team": list(patient.care_team),
                "assigned_physicians": list(patient.assigned_physicians), "category": entry["category"]})
            if self.access.decide(user, resource, ["view"])["view"].allowed:
                entries.append(entry)
        return entries

    def save_note(self, user: SignedInUser, patient_id: str, text: str) -> dict[str, Any]:
        """Saves a note after a policy check; the audit record is committed with it."""
        patient = self.store.patient(patient_id)
        if patient is None:
            raise PermissionError("There is no such patient.")
        if not text.strip():
            raise ValueError("The note is empty.")
        note_type = NOTE_TYPE_FOR_ROLE.get(user.roles[0], "basic")
        resource = self.access.record(patient, note_type=note_type)
        decision = self.access.decide(user, resource, ["edit_clinical_notes"])["edit_clinical_notes"]
        if not decision.allowed:
            raise PermissionError(decision.reason)
        now = datetime.now(UTC).isoformat()
        note = {"id": f"n-{patient_id}-{now}", "patient_id": patient_id, "author_id": user.id,
                "note_type": note_type, "time": now, "text": text.strip()}
        self.audit.append(AuditRecord("event", user.id, "edit_clinical_notes", list(user.roles), "patient_record",
                                      patient_id, patient_id, "EFFECT_ALLOW", rule=decision.rule,
                                      event_type="note_saved", details={"note_id": note["id"],
                                                                        "note_type": note_type}))
        self.store.db["notes"].insert(note, pk="id")
        return note

    def status(self) -> Status:
        engine = self._engine
        backlog = self.audit.conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
        if engine is None:
            return Status("none", False, backlog, "No policy set: everything is denied.")
        return Status(engine.bundle_version or "bundled", False, backlog, "Embedded policies (offline)")
