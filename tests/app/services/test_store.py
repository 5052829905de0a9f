"""The store owns the schema: databases of the first release are migrated in place, new ones get
every migration, a newer release's database is refused untouched, and the files are the owner's."""

from __future__ import annotations

import ast
import json
import re
import sqlite3
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from app.services.demo_data import DemoHospital, generate
from app.services.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SchemaError,
    SchemaTooNew,
    Store,
    StoreError,
    StoreLocationError,
)
from app.services.store import schema as schema_module
from app.services.users import DEMO_PASSWORD, DemoUserDirectory, hash_password
from app.services.workstation import Workstation

V1_SCHEMA = Path(__file__).parent / "data" / "schema-v1.sql"  # `sqlite3 ccc.db .schema` of the first release
NOW = datetime.now(UTC)


def make_v1_store(path: Path, demo: DemoHospital, *, services: bool = True) -> None:
    """A database exactly as the first release (schema version 1, commit 57c83bb) made it, frozen
    here: its Store.seed, then, with ``services``, the tables its DemoUserDirectory,
    BreakGlassService and ConsentService created on first use. sqlite-utils builds the tables from
    the rows, as it did; the test below holds the result to data/schema-v1.sql."""
    import json

    db = sqlite_utils.Database(sqlite3.connect(path))
    encode = {"care_team", "assigned_physicians", "hospital_ids", "approvals"}
    with db.conn:
        for table, rows in (
            ("hospitals", demo.hospitals),
            ("staff", demo.staff),
            ("patients", demo.patients),
            ("devices", demo.devices),
            ("notes", demo.notes),
            ("history", demo.history),
            ("delegations", demo.delegations),
            ("firmware_updates", demo.firmware_updates),
        ):
            db[table].insert_all(
                [{k: json.dumps(v) if k in encode else v for k, v in r.items()} for r in rows], pk="id", replace=True
            )
        db["transmissions"].insert_all(demo.transmissions)
        db["transmissions"].create_index(["patient_id", "time"], if_not_exists=True)
        db["meta"].insert({"key": "schema_version", "value": "1"}, pk="key", replace=True)
    if services:
        staff = [sid for (sid,) in db.execute("SELECT id FROM staff").fetchall()]
        with ThreadPoolExecutor() as pool:
            hashes = list(pool.map(lambda _: hash_password(DEMO_PASSWORD), staff))
        db["credentials"].insert_all(
            ({"user_id": s, "password_hash": h} for s, h in zip(staff, hashes, strict=True)), pk="user_id", replace=True
        )
        db["break_glass"].create(
            {
                "id": str,
                "user_id": str,
                "patient_id": str,
                "reason": str,
                "justification": str,
                "started_at": str,
                "ended_at": str,
                "end_reason": str,
            },
            pk="id",
        )
        db["consents"].create(
            {
                "id": str,
                "patient_id": str,
                "scope": str,
                "given_by": str,
                "recorded_by": str,
                "recorded_at": str,
                "expires_at": str,
            },
            pk="id",
        )
    db.conn.close()


def add_v1_activity(path: Path) -> None:
    """What a first-release user left behind: a consent, a revoked and a live delegation beside the
    seed's, an open break-glass session, a note and a firmware approval, written as its services did."""
    db = sqlite_utils.Database(sqlite3.connect(path))
    db["consents"].insert(
        {
            "id": "consent-legacy",
            "patient_id": "p02",
            "scope": "export",
            "given_by": "Patient p02",
            "recorded_by": "dr_aly",
            "recorded_at": (NOW - timedelta(days=2)).isoformat(),
            "expires_at": (NOW + timedelta(days=30)).isoformat(),
        }
    )
    for did, revoked in (("del-old", True), ("del-live", False)):
        db["delegations"].insert(
            {
                "id": did,
                "patient_id": "p01",
                "delegate_id": "gina",
                "granted_by": "dr_aly",
                "patient_permission": True,
                "expires_at": (NOW + timedelta(days=9)).isoformat(),
                "revoked": revoked,
            },
            pk="id",
        )
    db["break_glass"].insert(
        {
            "id": "bg-legacy",
            "user_id": "er_eli",
            "patient_id": "p03",
            "reason": "ETREAT",
            "justification": "Unresponsive in the ER, pacemaker interrogation needed",
            "started_at": (NOW - timedelta(minutes=10)).isoformat(),
            "ended_at": None,
            "end_reason": None,
        }
    )
    db["notes"].insert(
        {
            "id": "n-p02-legacy",
            "patient_id": "p02",
            "author_id": "nurse_nia",
            "note_type": "basic",
            "time": (NOW - timedelta(hours=1)).isoformat(),
            "text": "Written before the upgrade.",
        },
        pk="id",
    )
    db["firmware_updates"].update(
        "fw-1", {"state": "approved_by_one", "approvals": [{"by": "dr_aly", "role": "physician"}]}
    )
    db.conn.close()


def schema_of(conn: sqlite3.Connection) -> dict[str, str | None]:
    """Every table, index and trigger, but SQLite's own statistics (ANALYZE's, which the store
    makes again as the patients grow)."""
    return {
        name: sql
        for name, sql in conn.execute("SELECT name, sql FROM sqlite_master")
        if not name.startswith("sqlite_stat")
    }


def schema_of_file(path: Path) -> dict[str, str | None]:
    conn = sqlite3.connect(path)
    try:
        return schema_of(conn)
    finally:
        conn.close()


def v1_schema() -> dict[str, str | None]:
    conn = sqlite3.connect(":memory:")
    conn.executescript(V1_SCHEMA.read_text())
    return schema_of(conn)


def columns_of(path: Path) -> dict[str, list[str]]:
    conn = sqlite3.connect(path)
    try:
        tables = [
            t
            for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not t.startswith("sqlite_stat")
        ]
        return {t: [row[1] for row in conn.execute(f'PRAGMA table_info("{t}")')] for t in tables}
    finally:
        conn.close()


def contents(path: Path, columns: dict[str, list[str]] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (of ``columns`` where given: what a table had before a migration added some)."""
    names = {**columns_of(path), **(columns or {})}
    conn = sqlite3.connect(path)
    try:
        return {
            t: sorted(conn.execute(f'SELECT {", ".join(f"{chr(34)}{c}{chr(34)}" for c in cs)} FROM "{t}"'), key=repr)
            for t, cs in names.items()
        }
    finally:
        conn.close()


def every_migration() -> dict[str, str | None]:
    """The schema all of MIGRATIONS make, one after another, in an empty database."""
    conn = sqlite3.connect(":memory:")
    for migration in MIGRATIONS:
        for statement in migration.statements:
            conn.execute(statement)
    return schema_of(conn)


def recorded_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        conn.close()


def test_migrations_are_numbered_up_to_the_schema_version() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1)) and SCHEMA_VERSION >= 2


def test_the_frozen_first_release_makes_exactly_the_recorded_version_1_schema(tmp_path: Path) -> None:
    make_v1_store(tmp_path / "ccc.db", generate(patients_per_hospital=3))
    assert schema_of_file(tmp_path / "ccc.db") == v1_schema()


def test_migration_1_and_2_are_the_first_releases_schema_to_the_letter() -> None:
    conn = sqlite3.connect(":memory:")
    for migration in MIGRATIONS[:2]:
        for statement in migration.statements:
            conn.execute(statement)
    assert schema_of(conn) == v1_schema()


@pytest.mark.parametrize("services", [True, False], ids=["every-table", "store-only"])
def test_a_first_release_database_is_migrated_and_the_app_works_on_it(tmp_path: Path, services: bool) -> None:
    data = tmp_path / "data"
    data.mkdir()
    path = data / "ccc.db"
    make_v1_store(path, generate(patients_per_hospital=3), services=services)
    if services:
        add_v1_activity(path)
    before, v1_columns = contents(path), columns_of(path)

    ws = Workstation(data)

    assert (ws.store.migrated_from, ws.store.schema_version) == (1, SCHEMA_VERSION)
    assert recorded_version(path) == SCHEMA_VERSION
    after = contents(path, v1_columns)
    meta = after.pop("meta")
    assert meta == [("schema_version", str(SCHEMA_VERSION))]
    before.pop("meta")
    assert after.pop("drafts") == []  # a later release's table, empty
    assert after.pop("alert_actions") == []  # likewise
    assert after.pop("suspensions") == []  # likewise (version 8)
    # the care teams and assigned physicians, copied one member a row from the JSON lists (version 7)
    columns = columns_of(path)["patients"]
    patients = [dict(zip(columns, row, strict=True)) for row in contents(path)["patients"]]
    for table, column in (("patient_care_team", "care_team"), ("patient_assigned_physicians", "assigned_physicians")):
        expected = sorted(((p["id"], m) for p in patients for m in json.loads(p[column])), key=repr)
        assert after.pop(table) == expected and expected
    if services:  # every row of the first release is still there, unchanged (later columns aside)
        assert after == before
    else:  # the tables its services made lazily now exist; the user directory filled credentials
        assert {t: r for t, r in after.items() if t in before} == before
        assert len(after["credentials"]) == len(before["staff"]) and after["consents"] == after["break_glass"] == []
    # the schema is the one a new store gets
    fresh = Store(tmp_path / "fresh" / "ccc.db", generate(patients_per_hospital=1))
    assert schema_of_file(path) == schema_of(fresh.db.conn)

    # and the app works on it: the first release's password hashes sign in, and the queries the
    # services make read what its users left
    store = ws.store
    assert [p.id for p in store.patients()] == [f"p{i:02d}" for i in range(1, 7)]
    aly = DemoUserDirectory(store).authenticate("dr_aly", DEMO_PASSWORD)
    assert aly is not None and aly.roles == ("physician",) and aly.attributes["hospital_ids"] == ["h1"]
    gina = ws.users.authenticate("gina", DEMO_PASSWORD)
    delegated = sorted(d["patient_id"] for d in gina.attributes["delegations"])
    update = store.firmware_updates_for("d-p02")[0]
    now = datetime.now(UTC).isoformat()
    if services:
        assert [c["id"] for c in store.consents_in_force("p02", "export", now)] == ["consent-legacy"]
        assert store.notes_for("p02", newest_first=True)[0]["text"] == "Written before the upgrade."
        assert update["state"] == "approved_by_one" and update["approvals"] == [{"by": "dr_aly", "role": "physician"}]
        assert delegated == ["p01", "p02"]  # the live one and the seed's; not the revoked one
        assert [s["id"] for s in store.open_break_glass_sessions("er_eli")] == ["bg-legacy"]
        assert store.end_break_glass_session("bg-legacy", now, "ended after the upgrade")
        assert not store.end_break_glass_session("bg-legacy", now, "twice")  # ended once
        assert store.open_break_glass_sessions("er_eli") == []
    else:
        assert store.consents_in_force("p02", "export", now) == store.open_break_glass_sessions("er_eli") == []
        assert update["state"] == "requested" and update["approvals"] == [] and delegated == ["p02"]


def test_a_new_database_gets_every_migration_and_the_demo_data(tmp_path: Path) -> None:
    store = Store(tmp_path / "data" / "ccc.db")
    assert (store.migrated_from, store.schema_version) == (0, SCHEMA_VERSION)
    assert recorded_version(tmp_path / "data" / "ccc.db") == SCHEMA_VERSION
    schema = schema_of(store.db.conn)
    assert schema == every_migration() and set(schema) > set(v1_schema())
    assert "idx_patients_mrn" in schema  # (version 3)
    assert len(store.patients()) == 40 and store.patient("p02").assigned_physicians == ("dr_aly",)
    assert store.db["transmissions"].count == 40 * 30 * 9


def test_opening_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ccc.db"
    Store(path).close()
    image = path.read_bytes()
    again = Store(path)
    assert (again.migrated_from, again.schema_version) == (SCHEMA_VERSION, SCHEMA_VERSION)
    assert again.db["patients"].count == 40
    again.close()
    assert path.read_bytes() == image


def test_a_database_of_a_newer_release_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ccc.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
        conn.execute("CREATE TABLE from_the_future (x)")
    conn.close()
    image = path.read_bytes()
    with pytest.raises(SchemaTooNew) as refused:
        Store(path)
    message = str(refused.value)
    assert "newer" in message and f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"up to {SCHEMA_VERSION}" in message and "left unchanged" in message
    with pytest.raises(SchemaTooNew):
        Workstation(tmp_path / "data")
    assert path.read_bytes() == image


def test_a_database_that_is_not_a_store_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "data" / "ccc.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE patients (id)")
    conn.close()
    image = path.read_bytes()
    with pytest.raises(SchemaError, match="not a CCC Workstation store"):
        Store(path)
    assert path.read_bytes() == image


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ccc.db"
    make_v1_store(path, generate(patients_per_hospital=2), services=False)
    before, schema = contents(path), schema_of_file(path)
    broken = schema_module.Migration(SCHEMA_VERSION + 1, "broken", ('CREATE TABLE "patients" (x)',))
    monkeypatch.setattr(schema_module, "MIGRATIONS", (*MIGRATIONS, broken))
    monkeypatch.setattr(schema_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match=f"opening the store: the store at {path}: table .*patients.* already exists"):
        Store(path)
    assert recorded_version(path) == 1 and contents(path) == before and schema_of_file(path) == schema


def test_the_data_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    Store(data / "ccc.db").close()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "ccc.db").stat().st_mode) == 0o600


def test_a_first_release_database_and_its_side_files_are_made_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    path = data / "ccc.db"
    make_v1_store(path, generate(patients_per_hospital=1), services=False)
    path.chmod(0o644)
    data.chmod(0o755)
    other = sqlite3.connect(path)  # another connection in WAL mode keeps -wal and -shm (0644, as the file was)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("SELECT COUNT(*) FROM patients").fetchone()
    side = [data / "ccc.db-wal", data / "ccc.db-shm"]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o644 for f in side)
    store = Store(path)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in (path, *side))
    store.close()
    other.close()


def test_the_store_refuses_a_shared_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(StoreLocationError, match="shared directory"):
        Store(shared / "ccc.db")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777 and not (shared / "ccc.db").exists()


APP = Path(__file__).resolve().parents[3] / "app"
STORE_PACKAGE = APP / "services" / "store"
SQL_SIGNS = [
    re.compile(p)
    for p in (
        r"\.db\[",
        r"\.db\.\w",
        r"\bstore\.db\b",  # the store's sqlite-utils Database
        r"\bexecute(many|script)?\(",
        r"\.(rows_where|insert_all|upsert_all|upsert|table_names|create_index|query)\(",
        r"\b(SELECT|INSERT|UPDATE|DELETE|PRAGMA) ",  # SQL is written in capitals here
        r"(?i)\b(insert\s+(or\s+\w+\s+)?into|delete\s+from|(create|drop|alter)\s+(table|index)|update\s+\w+\s+set)\b",
    )
]


def sql_in(path: Path) -> list[str]:
    found = [
        f"{path.relative_to(APP.parent)}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if any(p.search(line) for p in SQL_SIGNS)
    ]
    for node in ast.walk(ast.parse(path.read_text())):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
        found += [
            f"{path.relative_to(APP.parent)}:{node.lineno}: imports {n}"
            for n in names
            if n.split(".")[0] in ("sqlite3", "sqlite_utils")
        ]
    return found


def test_no_sql_and_no_database_outside_the_store() -> None:
    """Only app/services/store/ talks to the database; everything else calls its methods."""
    outside = [p for p in APP.rglob("*.py") if STORE_PACKAGE not in p.parents]
    assert len(outside) > 10
    assert [hit for p in outside for hit in sql_in(p)] == []
    # the signs are the right ones: they find the store's own SQL and imports
    inside = [hit for p in STORE_PACKAGE.rglob("*.py") for hit in sql_in(p)]
    for sign in (
        "SELECT ",
        "UPDATE ",
        "INSERT ",
        "CREATE TABLE",
        "self.db.",
        "imports sqlite3",
        "imports sqlite_utils",
    ):
        assert any(sign in hit for hit in inside), sign


def test_a_draft_is_kept_per_user_and_patient_replaced_and_dropped(tmp_path: Path) -> None:
    store = Store(tmp_path / "data" / "ccc.db", generate(patients_per_hospital=2))
    store.keep_draft({"user_id": "dr_aly", "patient_id": "p01", "note_type": "full", "text": "first", "kept_at": "t1"})
    store.keep_draft(
        {"user_id": "dr_aly", "patient_id": "p01", "note_type": "basic", "text": "second", "kept_at": "t2"}
    )
    store.keep_draft(
        {"user_id": "nurse_nia", "patient_id": "p01", "note_type": "basic", "text": "hers", "kept_at": "t3"}
    )
    assert store.draft("dr_aly", "p01") == {
        "user_id": "dr_aly",
        "patient_id": "p01",
        "note_type": "basic",
        "text": "second",
        "kept_at": "t2",
    }
    store.drop_draft("dr_aly", "p01")
    assert store.draft("dr_aly", "p01") is None and store.draft("nurse_nia", "p01")["text"] == "hers"
    store.close()
    again = Store(tmp_path / "data" / "ccc.db")
    assert again.draft("nurse_nia", "p01")["text"] == "hers"  # kept across a restart
