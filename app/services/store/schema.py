"""The store's schema, as versioned migrations, and the runner that brings any database to
``SCHEMA_VERSION`` when the store opens.

The version lives where the first release already wrote it: the ``meta`` table's ``schema_version``
row (a database without a ``meta`` table is new, version 0). Pending migrations, the recorded
version and, for a new database, the demo data are written in one transaction: a database is
either left as it was or brought all the way. A database written by a newer release is refused and
never touched, so no release silently undoes a newer one's schema.

A migration is a list of single statements (``executescript`` would commit the transaction); a new
one is appended to ``MIGRATIONS`` with the next number, and ``SCHEMA_VERSION`` raised to it. A
released migration is never edited: databases in the field have already run it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

SCHEMA_VERSION = 8


@dataclass(frozen=True)
class Migration:
    version: int
    summary: str
    statements: tuple[str, ...]


# Version 1: the tables the first release's Store created when it seeded the demo hospital (made
# by sqlite-utils from the rows; the statements are exactly the ones it produced, so databases
# created either way are alike), and the meta table that records the version.
_V1 = (
    'CREATE TABLE "hospitals" (\n   "id" TEXT PRIMARY KEY,\n   "name" TEXT\n)',
    'CREATE TABLE "staff" (\n   "id" TEXT PRIMARY KEY,\n   "name" TEXT,\n   "role" TEXT,\n'
    '   "hospital_ids" TEXT,\n   "manufacturer_id" TEXT,\n   "patient_id" TEXT\n)',
    'CREATE TABLE "patients" (\n   "id" TEXT PRIMARY KEY,\n   "mrn" TEXT,\n   "name" TEXT,\n'
    '   "birth_date" TEXT,\n   "sex" TEXT,\n   "hospital_id" TEXT,\n   "room" TEXT,\n   "bed" TEXT,\n'
    '   "care_team" TEXT,\n   "assigned_physicians" TEXT,\n   "sealed" INTEGER,\n   "emergency" INTEGER,\n'
    '   "consent_export" INTEGER\n)',
    'CREATE TABLE "devices" (\n   "id" TEXT PRIMARY KEY,\n   "patient_id" TEXT,\n   "hospital_id" TEXT,\n'
    '   "manufacturer_id" TEXT,\n   "model" TEXT,\n   "serial" TEXT,\n   "firmware_version" TEXT,\n'
    '   "implanted_on" TEXT\n)',
    'CREATE TABLE "notes" (\n   "id" TEXT PRIMARY KEY,\n   "patient_id" TEXT,\n   "author_id" TEXT,\n'
    '   "note_type" TEXT,\n   "time" TEXT,\n   "text" TEXT\n)',
    'CREATE TABLE "history" (\n   "id" TEXT PRIMARY KEY,\n   "patient_id" TEXT,\n   "category" TEXT,\n'
    '   "date" TEXT,\n   "summary" TEXT\n)',
    'CREATE TABLE "delegations" (\n   "id" TEXT PRIMARY KEY,\n   "patient_id" TEXT,\n   "delegate_id" TEXT,\n'
    '   "granted_by" TEXT,\n   "patient_permission" INTEGER,\n   "expires_at" TEXT,\n   "revoked" INTEGER\n)',
    'CREATE TABLE "firmware_updates" (\n   "id" TEXT PRIMARY KEY,\n   "device_id" TEXT,\n'
    '   "target_version" TEXT,\n   "state" TEXT,\n   "requested_by" TEXT,\n   "approvals" TEXT,\n'
    '   "requested_at" TEXT\n)',
    'CREATE TABLE "transmissions" (\n   "patient_id" TEXT,\n   "time" TEXT,\n   "code" TEXT,\n'
    '   "value" REAL,\n   "unit" TEXT,\n   "abnormal" INTEGER\n)',
    'CREATE INDEX "idx_transmissions_patient_id_time"\n    ON "transmissions" ("patient_id", "time")',
    'CREATE TABLE "meta" (\n   "key" TEXT PRIMARY KEY,\n   "value" TEXT\n)',
)

# Version 2: the tables the first release's services created themselves on first use (credentials
# by the user directory, break_glass and consents by their services), so a version-1 database may
# or may not have them; created here when missing, with the columns they were created with.
_V2 = (
    'CREATE TABLE IF NOT EXISTS "credentials" (\n   "user_id" TEXT PRIMARY KEY,\n   "password_hash" TEXT\n)',
    'CREATE TABLE IF NOT EXISTS "break_glass" (\n   "id" TEXT PRIMARY KEY,\n   "user_id" TEXT,\n'
    '   "patient_id" TEXT,\n   "reason" TEXT,\n   "justification" TEXT,\n   "started_at" TEXT,\n'
    '   "ended_at" TEXT,\n   "end_reason" TEXT\n)',
    'CREATE TABLE IF NOT EXISTS "consents" (\n   "id" TEXT PRIMARY KEY,\n   "patient_id" TEXT,\n'
    '   "scope" TEXT,\n   "given_by" TEXT,\n   "recorded_by" TEXT,\n   "recorded_at" TEXT,\n'
    '   "expires_at" TEXT\n)',
)

# Version 3: an index for each lookup the app makes by something other than a primary key, so a
# ward of thousands of patients does not scan whole tables (the transmissions one is version 1's).
_V3 = (
    'CREATE INDEX "idx_patients_mrn" ON "patients" ("mrn")',
    'CREATE INDEX "idx_devices_patient_id" ON "devices" ("patient_id")',
    'CREATE INDEX "idx_notes_patient_id_time" ON "notes" ("patient_id", "time")',
    'CREATE INDEX "idx_history_patient_id_date" ON "history" ("patient_id", "date")',
    'CREATE INDEX "idx_delegations_delegate_id" ON "delegations" ("delegate_id")',
    'CREATE INDEX "idx_delegations_patient_id" ON "delegations" ("patient_id")',
    'CREATE INDEX "idx_firmware_updates_device_id" ON "firmware_updates" ("device_id", "requested_at")',
    'CREATE INDEX "idx_consents_patient_id_scope" ON "consents" ("patient_id", "scope")',
    'CREATE INDEX "idx_break_glass_user_id" ON "break_glass" ("user_id", "ended_at")',
)

# Version 4: a break-glass session records when it ends, as the policy that granted it said
# (``expires_in``); sessions recorded before keep a missing end, read as the 60 minutes they had.
_V4 = ('ALTER TABLE "break_glass" ADD COLUMN "expires_at" TEXT',)

# Version 5: a note being written is kept, per user and patient, until it is saved or cleared, so
# an idle lock, a user switch, the end of an emergency access or a restart never loses it.
_V5 = (
    'CREATE TABLE "drafts" (\n   "user_id" TEXT NOT NULL,\n   "patient_id" TEXT NOT NULL,\n'
    '   "note_type" TEXT,\n   "text" TEXT NOT NULL,\n   "kept_at" TEXT,\n'
    '   PRIMARY KEY ("user_id", "patient_id")\n)',
)

# Version 6: what the care team did about each remote-monitoring alert (acknowledged, triaged and to
# what), with the audit record that holds the decision; the alert itself is computed from the
# transmissions and the rules file, so only the actions are kept.
_V6 = (
    'CREATE TABLE "alert_actions" (\n   "id" TEXT PRIMARY KEY,\n   "patient_id" TEXT NOT NULL,\n'
    '   "alert_id" TEXT NOT NULL,\n   "action" TEXT NOT NULL,\n   "user_id" TEXT NOT NULL,\n'
    '   "time" TEXT NOT NULL,\n   "disposition" TEXT,\n   "comment" TEXT,\n   "audit_id" TEXT\n)',
    'CREATE INDEX "idx_alert_actions_patient_id" ON "alert_actions" ("patient_id", "time")',
)

# Version 7: the patient list, the searches and the review queue select only the rows the policies
# permit, through a query plan turned into SQL (store/permitted.py). The plan reads a patient's
# care team and assigned physicians as lists: here they are also child tables, one member per row,
# indexed by member, so "on this user's care team" is an index lookup, not a scan of every patient's
# JSON. Triggers keep them equal to the JSON columns on every write (an INSERT OR REPLACE too, which
# fires no delete trigger); the JSON columns stay what the store reads. Indexes for the plans'
# hospital test (with the MRN, so a lookup by part of an MRN reads the index alone) and the search
# by date of birth.
_LIST_COPIES = (("patient_care_team", "care_team"), ("patient_assigned_physicians", "assigned_physicians"))
_V7 = (
    *(f'CREATE TABLE "{table}" (\n   "patient_id" TEXT NOT NULL,\n   "member"\n)' for table, _ in _LIST_COPIES),
    *(f'CREATE INDEX "idx_{table}_member" ON "{table}" ("member", "patient_id")' for table, _ in _LIST_COPIES),
    *(f'CREATE INDEX "idx_{table}_patient_id" ON "{table}" ("patient_id")' for table, _ in _LIST_COPIES),
    *(
        f'INSERT INTO "{table}" ("patient_id", "member") SELECT p."id", j."value" '
        f'FROM "patients" AS p, json_each(p."{column}") AS j WHERE json_type(p."{column}") = \'array\''
        for table, column in _LIST_COPIES
    ),
    'CREATE TRIGGER "patients_lists_inserted" AFTER INSERT ON "patients" BEGIN\n'
    + "".join(
        f'   DELETE FROM "{table}" WHERE "patient_id" = NEW."id";\n'
        f'   INSERT INTO "{table}" ("patient_id", "member") SELECT NEW."id", "value" '
        f'FROM json_each(NEW."{column}") WHERE json_type(NEW."{column}") = \'array\';\n'
        for table, column in _LIST_COPIES
    )
    + "END",
    'CREATE TRIGGER "patients_lists_updated" AFTER UPDATE OF "id", "care_team", "assigned_physicians" '
    'ON "patients" BEGIN\n'
    + "".join(
        f'   DELETE FROM "{table}" WHERE "patient_id" = OLD."id";\n'
        f'   INSERT INTO "{table}" ("patient_id", "member") SELECT NEW."id", "value" '
        f'FROM json_each(NEW."{column}") WHERE json_type(NEW."{column}") = \'array\';\n'
        for table, column in _LIST_COPIES
    )
    + "END",
    'CREATE TRIGGER "patients_lists_deleted" AFTER DELETE ON "patients" BEGIN\n'
    + "".join(f'   DELETE FROM "{table}" WHERE "patient_id" = OLD."id";\n' for table, _ in _LIST_COPIES)
    + "END",
    'CREATE INDEX "idx_patients_hospital_id_mrn" ON "patients" ("hospital_id", "mrn", "id")',
    'CREATE INDEX "idx_patients_birth_date" ON "patients" ("birth_date")',
)

# Version 8: the staff accounts the hospital's administrator suspended (one row while suspended, gone
# when reinstated; the audit log keeps the history). The policies read it as the principal's
# ``suspended`` attribute and refuse a suspended account's sign-in.
_V8 = (
    'CREATE TABLE "suspensions" (\n   "user_id" TEXT PRIMARY KEY,\n   "suspended_by" TEXT NOT NULL,\n'
    '   "suspended_at" TEXT NOT NULL\n)',
)

MIGRATIONS = (
    Migration(1, "the first release's tables, as its demo seed created them, and meta", _V1),
    Migration(2, "credentials, break_glass and consents, which the first release's services created lazily", _V2),
    Migration(3, "indexes for the lookups by patient, device, delegate, user and MRN", _V3),
    Migration(4, "break_glass.expires_at: the end of the window the policy gave", _V4),
    Migration(5, "drafts: the unsaved note of each user on each patient", _V5),
    Migration(6, "alert_actions: acknowledgements and triages of remote-monitoring alerts", _V6),
    Migration(7, "care teams and assigned physicians as indexed child tables, for plans as SQL", _V7),
    Migration(8, "suspensions: staff accounts the hospital admin suspended", _V8),
)


class SchemaError(Exception):
    """The database cannot be used by this release; the message says why and what to do."""


class SchemaTooNew(SchemaError):
    """The database was written by a newer release; it was left unchanged."""


def _check_migrations() -> None:
    numbers = [m.version for m in MIGRATIONS]
    if numbers != list(range(1, SCHEMA_VERSION + 1)):
        raise AssertionError(f"MIGRATIONS are numbered {numbers}; SCHEMA_VERSION is {SCHEMA_VERSION}")


_check_migrations()


def schema_version(conn: sqlite3.Connection, where: object = "the database") -> int:
    """The version recorded in the database: 0 for a new (empty) one."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is None:
        if conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
            raise SchemaError(
                f"{where} is not a CCC Workstation store (it has tables but no schema version); "
                "it was left unchanged. Choose another data directory."
            )
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        return int(row[0])
    except (TypeError, ValueError):
        raise SchemaError(
            f"{where} records no readable schema version ({row[0] if row else 'none'!r}); it was left unchanged."
        ) from None


def migrate(
    conn: sqlite3.Connection, on_new: Callable[[sqlite3.Connection], None] | None = None, where: object = "the database"
) -> tuple[int, int]:
    """Applies every pending migration up to ``SCHEMA_VERSION`` in one transaction, calling
    ``on_new`` (the demo seed) in the same transaction when the database was new. Returns the
    version found and the version now. Raises SchemaTooNew (the database untouched) when the
    database is newer than this release."""
    found = schema_version(conn, where)
    _refuse_newer(found, where)
    if found == SCHEMA_VERSION:
        return found, found
    conn.execute("BEGIN IMMEDIATE")  # the write lock first: another process opening it waits, then sees ours
    try:
        found = schema_version(conn, where)  # again, under the lock
        _refuse_newer(found, where)
        for migration in MIGRATIONS[found:]:
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", [str(migration.version)]
            )
        if found == 0 and on_new is not None:
            on_new(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # (SQLite may have rolled back already, e.g. on a full disk)
            conn.execute("ROLLBACK")
        raise
    return found, SCHEMA_VERSION


def _refuse_newer(found: int, where: object) -> None:
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{where} was written by a newer CCC Workstation (schema version {found}; this release knows versions "
            f"up to {SCHEMA_VERSION}). It was left unchanged: open it with that release or a newer one."
        )
