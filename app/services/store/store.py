"""The workstation's local store: a SQLite file (sqlite-utils) whose schema is brought to the current
version when it opens (schema.py) and seeded with the demo hospital when it is new. Views never touch
it; the service layer reads it and hands out plain data."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from ..demo_data import OBSERVATIONS, DemoHospital, generate
from .errors import OPENING, store_error
from .permitted import permitted_ids_sql
from .schema import migrate

log = logging.getLogger(__name__)
_JSON_COLUMNS = {"care_team", "assigned_physicians", "hospital_ids", "approvals"}
_SEEDED = (
    "hospitals",
    "staff",
    "patients",
    "devices",
    "notes",
    "history",
    "delegations",
    "firmware_updates",
    "transmissions",
)
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

        The store's directory is its own: it and the data file are made readable by their owner only.
        StoreError when the file cannot be created, opened or brought up to date (a full disk, a
        read-only file system, a permission), saying which and where; the cause is kept."""
        self.path = path
        try:
            _owner_only(path)
        except OSError as exc:
            raise store_error(path, exc, OPENING) from exc
        # one connection, shared with worker threads (exports, reports): SQLite serializes its use
        conn = sqlite3.connect(path, check_same_thread=False)
        try:
            self.migrated_from, self.schema_version = migrate(conn, lambda c: _seed(c, demo or generate()), path)
        except sqlite3.Error as exc:
            conn.close()
            raise store_error(path, exc, OPENING) from exc
        except BaseException:
            conn.close()
            raise
        _fresh_statistics(conn)
        self.db = sqlite_utils.Database(conn)  # for the store's methods; tests also use it to set up cases

    def close(self) -> None:
        self.db.conn.close()

    # The queries, by table. Rows are plain dicts (JSON columns decoded); nothing else in the app
    # writes SQL. Lists come in a stated order, or in the order the rows were written.

    @contextmanager
    def _using(self, doing: str) -> Iterator[None]:
        """SQLite's errors as StoreError, saying what was being done and where."""
        try:
            yield
        except sqlite3.Error as exc:
            raise store_error(self.path, exc, doing) from exc

    def _rows(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._using("reading the store"):
            return [_decode(r) for r in self.db.query(sql, params if isinstance(params, dict) else list(params))]

    def _row(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _insert(self, table: str, row: Mapping[str, Any], verb: str = "INSERT") -> None:
        with self._using(_saving(table)), self.db.conn:
            _insert_many(self.db.conn, table, [row], verb)

    def _change(self, sql: str, params: Iterable[Any]) -> int:
        """Runs one UPDATE (or DELETE) and commits it; the number of rows it changed."""
        table = _TABLE_OF.search(sql)
        with self._using(_saving(table.group(1) if table else "the store")), self.db.conn:
            return self.db.execute(sql, list(params)).rowcount

    # patients

    def patients(self, hospital_ids: list[str] | None = None) -> list[Patient]:
        """Every patient (of those hospitals), by id."""
        if hospital_ids:
            marks = ",".join("?" * len(hospital_ids))
            return [
                _patient(r)
                for r in self._rows(f"SELECT * FROM patients WHERE hospital_id IN ({marks}) ORDER BY id", hospital_ids)
            ]
        return [_patient(r) for r in self._rows("SELECT * FROM patients ORDER BY id")]

    def patients_permitted(
        self,
        plan_filter: dict[str, Any] | None,
        kind: str,
        *,
        birth_date: str = "",
        mrn_chars: str = "",
        among: list[str] | None = None,
    ) -> list[Patient]:
        """The patients, by id, that a query plan's filter (a PlanResources ``filter``) keeps as
        resources of ``kind``, born on ``birth_date``, with ``mrn_chars`` in order in their MRN
        and among the ids ``among`` when given; with no filter, every such patient (for a check
        row by row). One query: the filter is SQL over the store's columns (permitted.py). Raises
        SqlFilterError when the filter reads an attribute the store has no column for."""
        query, params = permitted_ids_sql(plan_filter, kind, birth_date, mrn_chars, among is not None)
        if among is not None:
            params["among"] = json.dumps(among)
        return [_patient(r) for r in self._rows(f"SELECT * FROM patients WHERE id IN ({query}) ORDER BY id", params)]

    def existing_patient_ids(self, patient_ids: list[str]) -> set[str]:
        """Which of these ids are patients of the store."""
        rows = self._rows(
            "SELECT id FROM patients WHERE id IN (SELECT value FROM json_each(?))", [json.dumps(patient_ids)]
        )
        return {r["id"] for r in rows}

    def patient(self, patient_id: str) -> Patient | None:
        row = self._row("SELECT * FROM patients WHERE id = ?", [patient_id])
        return _patient(row) if row else None

    def patient_id_for_mrn(self, mrn: str) -> str | None:
        """The id of the patient with exactly this MRN, or None."""
        row = self._row("SELECT id FROM patients WHERE mrn = ?", [mrn])
        return row["id"] if row else None

    # staff and their credentials

    def hospital_name(self, hospital_id: str) -> str:
        """The hospital's name, as reports print it ("" when unknown)."""
        row = self._row('SELECT "name" FROM "hospitals" WHERE "id" = ?', (hospital_id,))
        return str(row["name"] or "") if row else ""

    def staff(self, staff_id: str) -> dict[str, Any] | None:
        return self._row("SELECT * FROM staff WHERE id = ?", [staff_id])

    def staff_members(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM staff ORDER BY rowid")

    def staff_with_role(self, role: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM staff WHERE role = ? ORDER BY rowid", [role])

    def staff_ids(self) -> list[str]:
        return [r["id"] for r in self._rows("SELECT id FROM staff ORDER BY rowid")]

    def suspended(self, user_id: str) -> bool:
        """Whether the hospital's administrator suspended this account (and has not reinstated it)."""
        return self._row("SELECT 1 AS found FROM suspensions WHERE user_id = ?", [user_id]) is not None

    def suspensions(self) -> dict[str, dict[str, Any]]:
        """The suspended accounts: user id to who suspended it and when."""
        return {r["user_id"]: r for r in self._rows("SELECT * FROM suspensions ORDER BY suspended_at")}

    def suspend(self, user_id: str, suspended_by: str, suspended_at: str) -> None:
        self._insert("suspensions", {"user_id": user_id, "suspended_by": suspended_by, "suspended_at": suspended_at})

    def reinstate(self, user_id: str) -> None:
        self._change("DELETE FROM suspensions WHERE user_id = ?", [user_id])

    def has_credentials(self) -> bool:
        """Whether any password is recorded (the demo directory records them on first use)."""
        return self._row("SELECT 1 AS found FROM credentials LIMIT 1") is not None

    def password_hash(self, user_id: str) -> str | None:
        row = self._row("SELECT password_hash FROM credentials WHERE user_id = ?", [user_id])
        return row["password_hash"] if row else None

    def set_password_hashes(self, hashes: Mapping[str, str]) -> None:
        """Records (or replaces) each user's password hash, in one transaction."""
        with self._using(_saving("credentials")), self.db.conn:
            _insert_many(
                self.db.conn,
                "credentials",
                [{"user_id": u, "password_hash": h} for u, h in hashes.items()],
                "INSERT OR REPLACE",
            )

    # devices and their firmware updates

    def devices(self) -> list[dict[str, Any]]:
        """Every device, by id."""
        return self._rows("SELECT * FROM devices ORDER BY id")

    def device(self, device_id: str) -> dict[str, Any] | None:
        return self._row("SELECT * FROM devices WHERE id = ?", [device_id])

    def device_for(self, patient_id: str) -> dict[str, Any] | None:
        """The patient's implanted device, or None."""
        return self._row("SELECT * FROM devices WHERE patient_id = ? ORDER BY rowid LIMIT 1", [patient_id])

    def set_device_firmware(self, device_id: str, version: str) -> None:
        self._change("UPDATE devices SET firmware_version = ? WHERE id = ?", [version, device_id])

    def firmware_updates_for(self, device_id: str) -> list[dict[str, Any]]:
        """The device's firmware updates, the latest requested first."""
        return self._rows("SELECT * FROM firmware_updates WHERE device_id = ? ORDER BY requested_at DESC", [device_id])

    def firmware_update(self, update_id: str) -> dict[str, Any] | None:
        return self._row("SELECT * FROM firmware_updates WHERE id = ?", [update_id])

    def add_firmware_update(self, update: Mapping[str, Any]) -> None:
        self._insert("firmware_updates", update)

    def update_firmware_update(self, update_id: str, state: str, approvals: Iterable[Mapping[str, str]]) -> None:
        """Records an update's new state and its approvals so far."""
        self._change(
            "UPDATE firmware_updates SET state = ?, approvals = ? WHERE id = ?",
            [state, json.dumps([dict(a) for a in approvals]), update_id],
        )

    # telemetry

    def transmissions(self, patient_id: str) -> list[dict[str, Any]]:
        """The patient's observations, by time and code."""
        return self._rows("SELECT * FROM transmissions WHERE patient_id = ? ORDER BY time, code", [patient_id])

    def readings_at(self, patient_id: str, times: Iterable[str]) -> dict[tuple[str, str], float]:
        """The patient's stored values at these times, by (time, code): what an import already holds."""
        rows = self._rows(
            "SELECT time, code, value FROM transmissions WHERE patient_id = ? "
            "AND time IN (SELECT value FROM json_each(?))",
            [patient_id, json.dumps(sorted(set(times)))],
        )
        return {(r["time"], r["code"]): float(r["value"]) for r in rows}

    def add_transmissions(self, rows: Iterable[Mapping[str, Any]], before_commit: Callable[[], object]) -> None:
        """Adds imported readings in one transaction, calling ``before_commit`` (the audit record)
        inside it: when either fails, nothing is added."""
        with self._using("importing transmissions"), self.db.conn:
            _insert_many(self.db.conn, "transmissions", rows)
            before_commit()

    def latest_transmission(self, patient_id: str) -> str | None:
        row = self.db.execute("SELECT MAX(time) FROM transmissions WHERE patient_id = ?", [patient_id]).fetchone()
        return row[0] if row else None

    def transmission_summaries(self, patient_ids: list[str]) -> dict[str, tuple[int, str | None]]:
        """(days out of range, latest transmission time) of each of these patients that has any
        transmission, in one query (what ``alerts`` and ``latest_transmission`` say one by one)."""
        rows = self._rows(
            "SELECT patient_id, COUNT(DISTINCT CASE WHEN abnormal = 1 THEN time END) AS alerts, MAX(time) AS latest "
            "FROM transmissions WHERE patient_id IN (SELECT value FROM json_each(?)) GROUP BY patient_id",
            [json.dumps(patient_ids)],
        )
        return {r["patient_id"]: (int(r["alerts"]), r["latest"]) for r in rows}

    def alerts(self, patient_id: str) -> int:
        """Transmissions (days) with a value out of its normal range."""
        row = self.db.execute(
            "SELECT COUNT(DISTINCT time) FROM transmissions WHERE patient_id = ? AND abnormal = 1", [patient_id]
        ).fetchone()
        return int(row[0])

    # what the care team did about each alert (app/services/alerts.py computes the alerts)

    def alert_actions(self, patient_id: str) -> list[dict[str, Any]]:
        """The patient's alert acknowledgements and triages, oldest first."""
        return self._rows("SELECT * FROM alert_actions WHERE patient_id = ? ORDER BY time, rowid", [patient_id])

    def add_alert_action(self, action: Mapping[str, Any]) -> None:
        self._insert("alert_actions", action)

    # notes and history

    def notes_for(self, patient_id: str, newest_first: bool = False) -> list[dict[str, Any]]:
        """The patient's notes by time, oldest first unless ``newest_first``."""
        order = "DESC" if newest_first else "ASC"
        return self._rows(f"SELECT * FROM notes WHERE patient_id = ? ORDER BY time {order}", [patient_id])

    def add_note(self, note: Mapping[str, Any]) -> None:
        self._insert("notes", note)

    def history_for(self, patient_id: str, newest_first: bool = False) -> list[dict[str, Any]]:
        """The patient's history entries by date, oldest first unless ``newest_first``."""
        order = "DESC" if newest_first else "ASC"
        return self._rows(f"SELECT * FROM history WHERE patient_id = ? ORDER BY date {order}", [patient_id])

    # delegations

    def delegations_for(self, delegate_id: str) -> list[dict[str, Any]]:
        """The delegations granted to this caregiver and not revoked (expired ones included: the
        policies read the expiry)."""
        return self._rows(
            "SELECT * FROM delegations WHERE delegate_id = ? AND revoked = 0 ORDER BY rowid", [delegate_id]
        )

    def delegations_for_patient(self, patient_id: str) -> list[dict[str, Any]]:
        """Every delegation of this patient's access, revoked ones included, by expiry."""
        return self._rows("SELECT * FROM delegations WHERE patient_id = ? ORDER BY expires_at", [patient_id])

    def set_care_team(self, patient_id: str, members: list[str]) -> None:
        """The patient's care team as given (the list table follows by trigger)."""
        self._change("UPDATE patients SET care_team = ? WHERE id = ?", [json.dumps(members), patient_id])

    def delegation(self, delegation_id: str) -> dict[str, Any] | None:
        return self._row("SELECT * FROM delegations WHERE id = ?", [delegation_id])

    def add_delegation(self, delegation: Mapping[str, Any]) -> None:
        self._insert("delegations", delegation)

    def revoke_delegation(self, delegation_id: str) -> None:
        self._change("UPDATE delegations SET revoked = 1 WHERE id = ?", [delegation_id])

    # consents

    def add_consent(self, consent: Mapping[str, Any]) -> None:
        self._insert("consents", consent)

    def consents_in_force(self, patient_id: str, scope: str, now: str) -> list[dict[str, Any]]:
        """The patient's consents of that scope expiring after ``now`` (ISO 8601 in UTC), the latest
        recorded first."""
        return self._rows(
            "SELECT * FROM consents WHERE patient_id = ? AND scope = ? AND expires_at > ? ORDER BY recorded_at DESC",
            [patient_id, scope, now],
        )

    # drafts: a user's unsaved note on a patient (one per user and patient)

    def draft(self, user_id: str, patient_id: str) -> dict[str, Any] | None:
        return self._row("SELECT * FROM drafts WHERE user_id = ? AND patient_id = ?", [user_id, patient_id])

    def keep_draft(self, draft: Mapping[str, Any]) -> None:
        """Records (or replaces) the user's draft on the patient."""
        self._insert("drafts", draft, "INSERT OR REPLACE")

    def drop_draft(self, user_id: str, patient_id: str) -> None:
        self._change("DELETE FROM drafts WHERE user_id = ? AND patient_id = ?", [user_id, patient_id])

    # break-glass sessions

    def open_break_glass_sessions(self, user_id: str) -> list[dict[str, Any]]:
        """The user's sessions not yet ended (expired or not), the latest started first."""
        return self._rows(
            "SELECT * FROM break_glass WHERE user_id = ? AND ended_at IS NULL ORDER BY started_at DESC", [user_id]
        )

    def add_break_glass_session(self, session: Mapping[str, Any]) -> None:
        self._insert("break_glass", session)

    def end_break_glass_session(self, session_id: str, ended_at: str, why: str) -> bool:
        """Ends the session if it is still open; whether this call ended it (so it is audited once)."""
        return (
            self._change(
                "UPDATE break_glass SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
                [ended_at, why, session_id],
            )
            > 0
        )


_TABLE_OF = re.compile(r"^(?:UPDATE|DELETE FROM)\s+\"?(\w+)")
_SAVING = {
    "notes": "saving a note",
    "drafts": "saving a draft",
    "credentials": "recording passwords",
    "delegations": "recording a delegation",
    "consents": "recording a consent",
    "break_glass": "recording a break-glass session",
    "firmware_updates": "recording a firmware update",
    "devices": "recording a device's firmware",
    "alert_actions": "recording what was done about an alert",
    "transmissions": "importing transmissions",
    "suspensions": "recording an account's suspension",
}


def _saving(table: str) -> str:
    """What a write to ``table`` is, in the user's words."""
    return _SAVING.get(table, f"saving to {table}")


def observation_catalogue() -> list[tuple[str, str, str, float, float]]:
    """(MDC IDC name, display name, UCUM unit, normal low, normal high) for every telemetry series."""
    return [(code, display, unit, low, high) for code, display, unit, low, high, _, _ in OBSERVATIONS]


def _owner_only(path: Path) -> None:
    """The directory 0700 and the data file (and SQLite's side files) 0600, the file created so
    before SQLite opens it, so patient data is never readable by another account."""
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if directory.stat().st_mode & stat.S_ISVTX:
        raise StoreLocationError(
            f"{directory} is a shared directory (like /tmp): keep the workstation's data in "
            "a directory of its own (CCC_DATA_DIR)."
        )
    os.chmod(directory, 0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # SQLite gives its side files the file's mode
    for file in (path, *(path.with_name(path.name + suffix) for suffix in _SIDE_FILES)):
        try:
            os.chmod(file, 0o600)
        except FileNotFoundError:
            pass


def _fresh_statistics(conn: sqlite3.Connection) -> None:
    """SQLite's statistics (ANALYZE) made again when there are none or the patients have since
    grown or shrunk twofold. A list selected through a query plan needs them: without them SQLite
    takes "the patient's hospital" for a selective index and reads every patient of the hospital
    (tens of milliseconds among 200,000) where the care-team index finds a user's few patients at
    once. Only a speed-up: a store that cannot be written now is read without them."""
    try:
        patients = conn.execute('SELECT COUNT(*) FROM "patients"').fetchone()[0]
        recorded = None
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
            row = conn.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'patients' LIMIT 1").fetchone()
            recorded = int(row[0].split()[0]) if row else None
        if (recorded is None and patients == 0) or (recorded is not None and recorded / 2 <= patients <= recorded * 2):
            return
        with conn:
            conn.execute("ANALYZE")
    except sqlite3.Error as exc:  # the store's own queries will say what is wrong with it
        log.warning("the store's statistics could not be made again (%s): lists may be slower", exc)


def _seed(conn: sqlite3.Connection, demo: DemoHospital) -> None:
    """Fills a new store with ``demo``, inside the migration's transaction."""
    for table in _SEEDED:
        _insert_many(conn, table, getattr(demo, table))


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def _insert_many(conn: sqlite3.Connection, table: str, rows: Iterable[Mapping[str, Any]], verb: str = "INSERT") -> None:
    """Rows of ``table`` (a key missing from a row is NULL; a key the table lacks is an error)."""
    columns = _columns(conn, table)
    rows = [_encode(r) for r in rows]
    unknown = {k for r in rows for k in r} - set(columns)
    if unknown:
        raise ValueError(f"{table} has no column {', '.join(sorted(unknown))}")
    names = ", ".join(f'"{c}"' for c in columns)
    conn.executemany(
        f'{verb} INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})',
        [[r.get(c) for c in columns] for r in rows],
    )


def _encode(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v) if k in _JSON_COLUMNS else v for k, v in row.items()}


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.loads(v) if k in _JSON_COLUMNS and isinstance(v, str) else v for k, v in row.items()}


def _patient(row: dict[str, Any]) -> Patient:
    r = _decode(row)
    return Patient(
        r["id"],
        r["mrn"],
        r["name"],
        r["birth_date"],
        r["sex"],
        r["hospital_id"],
        r["room"],
        r["bed"],
        tuple(r["care_team"]),
        tuple(r["assigned_physicians"]),
        bool(r["sealed"]),
        bool(r["emergency"]),
        bool(r["consent_export"]),
    )
