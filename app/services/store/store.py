"""The workstation's local store: a SQLite file (sqlite-utils) whose schema is brought to the current
version when it opens (schema.py) and seeded with the demo hospital when it is new. Views never touch
it; the service layer reads it and hands out plain data."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from ..demo_data import OBSERVATIONS, DemoHospital, generate
from .schema import migrate

_JSON_COLUMNS = {"care_team", "assigned_physicians", "hospital_ids", "approvals"}
_SEEDED = ("hospitals", "staff", "patients", "devices", "notes", "history", "delegations", "firmware_updates",
           "transmissions")
_SIDE_FILES = ("-wal", "-shm", "-journal")


class StoreLocationError(Exception):
    """The store cannot be kept where it was asked to be; the message says why."""


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
        """Opens the store, bringing its schema to the current version (schema.SCHEMA_VERSION) and,
        when it is new, filling it with ``demo`` (by default the demo hospital). Raises
        schema.SchemaTooNew for a database of a newer release, which is left unchanged.

        The store's directory is its own: it and the data file are made readable by their owner only."""
        self.path = path
        _owner_only(path)
        # one connection, shared with worker threads (exports, reports): SQLite serializes its use
        conn = sqlite3.connect(path, check_same_thread=False)
        try:
            self.migrated_from, self.schema_version = migrate(conn, lambda c: _seed(c, demo or generate()), path)
        except BaseException:
            conn.close()
            raise
        self.db = sqlite_utils.Database(conn)  # for the store's methods; tests also use it to set up cases

    def close(self) -> None:
        self.db.conn.close()

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


def _owner_only(path: Path) -> None:
    """The directory 0700 and the data file (and SQLite's side files) 0600, the file created so
    before SQLite opens it, so patient data is never readable by another account."""
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.stat().st_mode & stat.S_ISVTX:
        raise StoreLocationError(f"{directory} is a shared directory (like /tmp): keep the workstation's data in "
                                 "a directory of its own (CCC_DATA_DIR).")
    os.chmod(directory, 0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # SQLite gives its side files the file's mode
    for file in (path, *(path.with_name(path.name + suffix) for suffix in _SIDE_FILES)):
        try:
            os.chmod(file, 0o600)
        except FileNotFoundError:
            pass


def _seed(conn: sqlite3.Connection, demo: DemoHospital) -> None:
    """Fills a new store with ``demo``, inside the migration's transaction."""
    for table in _SEEDED:
        _insert_many(conn, table, getattr(demo, table))


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def _insert_many(conn: sqlite3.Connection, table: str, rows: Iterable[Mapping[str, Any]],
                 verb: str = "INSERT") -> None:
    """Rows of ``table`` (a key missing from a row is NULL; a key the table lacks is an error)."""
    columns = _columns(conn, table)
    rows = [_encode(r) for r in rows]
    unknown = {k for r in rows for k in r} - set(columns)
    if unknown:
        raise ValueError(f"{table} has no column {', '.join(sorted(unknown))}")
    names = ", ".join(f'"{c}"' for c in columns)
    conn.executemany(f'{verb} INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})',
                     [[r.get(c) for c in columns] for r in rows])


def _encode(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in row.items()}


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.loads(v) if k in _JSON_COLUMNS and isinstance(v, str) else v for k, v in row.items()}


def _patient(row: dict[str, Any]) -> Patient:
    r = _decode(row)
    return Patient(r["id"], r["mrn"], r["name"], r["birth_date"], r["sex"], r["hospital_id"], r["room"], r["bed"],
                   tuple(r["care_team"]), tuple(r["assigned_physicians"]), bool(r["sealed"]), bool(r["emergency"]),
                   bool(r["consent_export"]))
