"""The workstation's local store: a SQLite file (sqlite-utils) created and seeded with the demo
hospital on first run. Views never touch it; the service layer reads it and hands out plain data."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from .demo_data import OBSERVATIONS, DemoHospital, generate

SCHEMA_VERSION = 1
_JSON_COLUMNS = {"care_team", "assigned_physicians", "hospital_ids", "approvals"}


@dataclass(frozen=True)
class Patient:
    id: str
    mrn: str
    name: str
    birth_date: str
    sex: str
    hospital_id: str
    room: str
    bed: str
    care_team: tuple[str, ...]
    assigned_physicians: tuple[str, ...]
    sealed: bool
    emergency: bool
    consent_export: bool


class Store:
    def __init__(self, path: Path, demo: DemoHospital | None = None) -> None:
        """Opens the store, creating it with ``demo`` (by default the demo hospital) on first use."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # one connection, shared with worker threads (exports, reports): SQLite serializes its use
        self.db = sqlite_utils.Database(sqlite3.connect(path, check_same_thread=False))
        if "meta" not in self.db.table_names():
            self.seed(demo or generate())

    def seed(self, demo: DemoHospital) -> None:
        """Creates the tables and fills them with the demo data, in one transaction."""
        with self.db.conn:
            for table, rows in (("hospitals", demo.hospitals), ("staff", demo.staff), ("patients", demo.patients),
                                ("devices", demo.devices), ("notes", demo.notes), ("history", demo.history),
                                ("delegations", demo.delegations), ("firmware_updates", demo.firmware_updates)):
                self.db[table].insert_all([_encode(r) for r in rows], pk="id", replace=True)
            self.db["transmissions"].insert_all(demo.transmissions)
            self.db["transmissions"].create_index(["patient_id", "time"], if_not_exists=True)
            self.db["meta"].insert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, pk="key", replace=True)

    def patients(self, hospital_ids: list[str] | None = None) -> list[Patient]:
        where = f"hospital_id in ({','.join('?' * len(hospital_ids))})" if hospital_ids else None
        rows = self.db["patients"].rows_where(where, hospital_ids or None, order_by="id")
        return [_patient(r) for r in rows]

    def patient(self, patient_id: str) -> Patient | None:
        rows = list(self.db["patients"].rows_where("id = ?", [patient_id]))
        return _patient(rows[0]) if rows else None

    def device_for(self, patient_id: str) -> dict[str, Any] | None:
        rows = list(self.db["devices"].rows_where("patient_id = ?", [patient_id]))
        return rows[0] if rows else None

    def transmissions(self, patient_id: str) -> list[dict[str, Any]]:
        return list(self.db["transmissions"].rows_where("patient_id = ?", [patient_id], order_by="time, code"))

    def latest_transmission(self, patient_id: str) -> str | None:
        row = self.db.execute("SELECT MAX(time) FROM transmissions WHERE patient_id = ?", [patient_id]).fetchone()
        return row[0] if row else None

    def alerts(self, patient_id: str) -> int:
        """Transmissions (days) with a value out of its normal range."""
        row = self.db.execute("SELECT COUNT(DISTINCT time) FROM transmissions WHERE patient_id = ? AND abnormal = 1",
                              [patient_id]).fetchone()
        return int(row[0])

    def staff(self, staff_id: str) -> dict[str, Any] | None:
        rows = list(self.db["staff"].rows_where("id = ?", [staff_id]))
        return _decode(rows[0]) if rows else None

    def delegations_for(self, delegate_id: str) -> list[dict[str, Any]]:
        return list(self.db["delegations"].rows_where("delegate_id = ? AND revoked = 0", [delegate_id]))


def observation_catalogue() -> list[tuple[str, str, str, float, float]]:
    """(MDC IDC name, display name, UCUM unit, normal low, normal high) for every telemetry series."""
    return [(code, display, unit, low, high) for code, display, unit, low, high, _, _ in OBSERVATIONS]


def _encode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in row.items()}


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.loads(v) if k in _JSON_COLUMNS and isinstance(v, str) else v for k, v in row.items()}


def _patient(row: dict[str, Any]) -> Patient:
    r = _decode(row)
    return Patient(r["id"], r["mrn"], r["name"], r["birth_date"], r["sex"], r["hospital_id"], r["room"], r["bed"],
                   tuple(r["care_team"]), tuple(r["assigned_physicians"]), bool(r["sealed"]), bool(r["emergency"]),
                   bool(r["consent_export"]))
