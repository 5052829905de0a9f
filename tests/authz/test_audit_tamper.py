"""Issue 16, part 1: a user who can write the data directory rewrites, truncates, reorders,
empties or replaces the audit log, and ``ccc-authz audit verify`` names each attack; verify is
read-only and reports a damaged file as damaged. Each test is named after the attack.

The attacker knows the code: a rewrite recomputes every later hash with ``authz.audit`` itself.
What catches it is outside the file: the guard's checkpoints (a separate process here, its own
OS user in the package), the signed checkpoints with the guard's public key, the collector."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from authz.audit import AuditChain, AuditRecord, chain_hash, read_records
from authz.audit_command import EXIT_DAMAGED, EXIT_REFERENCE_UNAVAILABLE, EXIT_TAMPERED
from authz.audit_export import to_decision_log
from authz.audit_ship import syslog_message
from authz.guard import GuardClient, GuardError
from tests.support.guard import running_guard

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[GuardClient]:
    with running_guard(tmp_path / "guard") as client:
        yield client


def _write_log(path: Path, guard: GuardClient | None, n: int = 35) -> None:
    """A log as the app writes it: a checkpoint every 10 records and one on close."""
    chain = AuditChain(path, workstation_id="ward-7", guard=guard, checkpoint_every=10)
    for i in range(n):
        chain.append(AuditRecord("decision", f"dr_{i % 3}", "view", ["physician"], "patient_record", f"p{i}", f"p{i}"))
    chain.close()


def _verify(db: Path, *options: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authz.cli", "audit", "verify", str(db), *map(str, options)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )


def _sql(db: Path, *statements: str) -> None:
    """Edits the file behind the log's back, triggers dropped first, as an attacker would."""
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def _recompute_from(db: Path, seq: int) -> None:
    """Recomputes the hash of record ``seq`` and of every later record, and their links."""
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    prev_row = conn.execute("SELECT hash FROM audit WHERE seq = ?", (seq - 1,)).fetchone()
    prev = prev_row[0] if prev_row else "0" * 64
    for record in list(read_records(conn, after_seq=seq - 1)):
        record.prev_hash = prev
        record.hash = chain_hash(prev, record)
        conn.execute(
            "UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", (record.prev_hash, record.hash, record.seq)
        )
        prev = record.hash
    conn.commit()
    conn.close()


def _key(guard: GuardClient) -> Path:
    return guard.socket_path.parent / "state" / "guard.pub"


def _collector_file(db: Path, out: Path) -> Path:
    """What a collector holds after the log was shipped: its records as syslog lines."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    log_id = conn.execute("SELECT value FROM audit_meta WHERE key = 'log_id'").fetchone()[0]
    lines = [syslog_message(r, "ws", log_id=log_id).split(b" ", 1)[1].decode() for r in read_records(conn)]
    conn.close()
    out.write_text("\n".join(lines) + "\n")
    return out


def _kinds(result: subprocess.CompletedProcess[str]) -> set[str]:
    return {line.split(":")[1].strip() for line in result.stdout.splitlines() if line.startswith("TAMPERED:")}


def test_an_intact_log_verifies_against_every_reference(tmp_path: Path, guard: GuardClient) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, guard)
    collected = _collector_file(db, tmp_path / "collector.log")
    result = _verify(db, "--guard", guard.socket_path, "--checkpoint-key", _key(guard), "--against", collected)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: 35 records")
    assert "the guard's 5 signed checkpoints" in result.stdout  # records 0, 10, 20, 30 and 35 (on close)


def test_rewritten_record_with_every_later_hash_recomputed(tmp_path: Path, guard: GuardClient) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, guard)
    collected = _collector_file(db, tmp_path / "collector.log")
    _sql(db, "UPDATE audit SET effect = 'EFFECT_ALLOW', principal_id = 'someone_else' WHERE seq = 14")
    _recompute_from(db, 14)
    assert _verify(db).returncode == 0  # the chain alone cannot tell: it has no key
    for reference in (("--guard", guard.socket_path), ("--checkpoint-key", _key(guard)), ("--against", collected)):
        result = _verify(db, *reference)
        assert result.returncode == EXIT_TAMPERED, (reference, result.stdout, result.stderr)
        assert "rewritten" in _kinds(result), result.stdout
    by_guard = _verify(db, "--guard", guard.socket_path).stdout
    assert "a record from 11 to 20 was rewritten" in by_guard
    assert "record 14 differs from what the collector received" in _verify(db, "--against", collected).stdout


def test_deleted_tail(tmp_path: Path, guard: GuardClient) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, guard)
    _sql(db, "DELETE FROM audit WHERE seq > 27")
    assert _verify(db).returncode == 0  # what is left is a perfect chain
    result = _verify(db, "--guard", guard.socket_path)
    assert result.returncode == EXIT_TAMPERED and _kinds(result) == {"deleted-tail"}, result.stdout
    assert "records 28-35 are gone" in result.stdout
    assert "deleted-tail" in _kinds(_verify(db, "--checkpoint-key", _key(guard)))


def test_all_rows_deleted(tmp_path: Path, guard: GuardClient) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, guard)
    collected = _collector_file(db, tmp_path / "collector.log")
    _sql(db, "DELETE FROM audit", "DELETE FROM audit_checkpoint")
    result = _verify(db, "--guard", guard.socket_path)
    assert result.returncode == EXIT_TAMPERED and "all-deleted" in _kinds(result), result.stdout
    assert "all-deleted" in _kinds(_verify(db, "--against", collected))
    assert "checkpoint-removed" in _kinds(_verify(db, "--checkpoint-key", _key(guard)))


def test_table_dropped(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, None)
    _sql(db, "DROP TABLE audit")
    result = _verify(db)  # no reference needed: the log's own file says it was an audit log
    assert result.returncode == EXIT_TAMPERED and _kinds(result) == {"table-dropped"}, result.stdout
    with sqlite3.connect(db) as conn:  # and verify did not create it again
        assert "audit" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}


def test_file_truncated_to_0_bytes(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, None)
    db.write_bytes(b"")
    result = _verify(db)
    assert result.returncode == EXIT_DAMAGED, result.stdout + result.stderr
    assert "DAMAGED" in result.stdout and "empty (0 bytes)" in result.stdout and "Traceback" not in result.stderr
    assert db.stat().st_size == 0  # nothing created in it


def test_file_truncated_mid_way(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, None, n=400)
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2 + 100])
    result = _verify(db)
    assert result.returncode in (EXIT_DAMAGED, EXIT_TAMPERED), result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_whole_log_replaced(tmp_path: Path, guard: GuardClient) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, guard)
    # A log written elsewhere, copied over this one: the guard never saw it.
    other = tmp_path / "elsewhere" / "audit.db"
    _write_log(other, None, n=50)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(other.read_bytes())
    result = _verify(db, "--guard", guard.socket_path)
    assert result.returncode == EXIT_TAMPERED and _kinds(result) == {"replaced"}, result.stdout
    assert "never saw log" in result.stdout
    # Deleted, and a new one started by the app in its place: the guard saw it take the old one's place.
    db.unlink()
    _write_log(db, guard, n=5)
    result = _verify(db, "--guard", guard.socket_path)
    assert result.returncode == EXIT_TAMPERED and "replaced" in _kinds(result), result.stdout
    assert "which had 35 records at its last checkpoint" in result.stdout


def test_reordered_records_with_hashes_recomputed(tmp_path: Path, guard: GuardClient) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, guard)
    collected = _collector_file(db, tmp_path / "collector.log")
    conn = sqlite3.connect(db)
    rows = {r[0]: r for r in conn.execute("SELECT * FROM audit WHERE seq IN (22, 23)")}
    conn.close()
    _sql(db, "DELETE FROM audit WHERE seq IN (22, 23)")
    conn = sqlite3.connect(db)
    for seq, other in ((22, 23), (23, 22)):
        conn.execute(f"INSERT INTO audit VALUES ({', '.join('?' for _ in rows[other])})", (seq, *rows[other][1:]))
    conn.commit()
    conn.close()
    plain = _verify(db)  # the links show it, before the attacker recomputes them
    assert plain.returncode == EXIT_TAMPERED and _kinds(plain) == {"reordered"}, plain.stdout
    _recompute_from(db, 22)
    assert _verify(db).returncode == 0
    assert "rewritten" in _kinds(_verify(db, "--guard", guard.socket_path))
    assert "reordered" in _kinds(_verify(db, "--against", collected))


def test_checkpoints_removed_from_the_log(tmp_path: Path, guard: GuardClient) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, guard)
    _sql(db, "DELETE FROM audit_checkpoint WHERE number IN (2, 3)")
    assert "checkpoint-removed" in _kinds(_verify(db, "--checkpoint-key", _key(guard)))
    assert "checkpoint-removed" in _kinds(_verify(db, "--guard", guard.socket_path))


def test_forged_checkpoint(tmp_path: Path, guard: GuardClient) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, guard)
    _sql(db, "UPDATE audit_checkpoint SET seq = 9 WHERE number = 2")
    assert "forged-checkpoint" in _kinds(_verify(db, "--checkpoint-key", _key(guard)))


def test_records_that_never_reached_the_collector(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, None)
    collected = _collector_file(db, tmp_path / "collector.log")
    lines = collected.read_text().splitlines()
    collected.write_text("\n".join(lines[:10] + lines[15:]) + "\n")
    result = _verify(db, "--against", collected)
    assert result.returncode == EXIT_TAMPERED and _kinds(result) == {"gap"}, result.stdout
    assert "records 11-15 never reached the collector" in result.stdout


def test_rewrite_between_two_shipments_is_seen_in_what_was_shipped(tmp_path: Path) -> None:
    """Shipped up to 20, rewritten at 14 with hashes recomputed, shipping goes on from 21."""
    db = tmp_path / "audit.db"
    _write_log(db, None)
    before = _collector_file(db, tmp_path / "before.log").read_text().splitlines()
    _sql(db, "UPDATE audit SET principal_id = 'x' WHERE seq = 14")
    _recompute_from(db, 14)
    after = _collector_file(db, tmp_path / "after.log").read_text().splitlines()
    collected = tmp_path / "collector.log"
    collected.write_text("\n".join(before[:20] + after[20:]) + "\n")
    result = _verify(db, "--against", collected)
    assert "record 21 as shipped does not follow record 20 as shipped" in result.stdout


def test_decision_log_export_is_a_collector_reference(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, None)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    export = tmp_path / "export.jsonl"
    export.write_text("".join(json.dumps(to_decision_log(r)) + "\n" for r in read_records(conn)))
    conn.close()
    _sql(db, "DELETE FROM audit WHERE seq > 30")
    result = _verify(db, "--against", export)
    assert _kinds(result) == {"deleted-tail"}, result.stdout


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_verify_changes_nothing_and_works_on_a_read_only_evidence_copy(tmp_path: Path, guard: GuardClient) -> None:
    db = tmp_path / "live" / "audit.db"
    chain = AuditChain(db, guard=guard, checkpoint_every=10)
    for i in range(25):
        chain.append(AuditRecord("decision", "dr", "view", resource_id=str(i)))
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    for suffix in ("", "-wal"):  # copied while the app runs: the newest records are in the -wal
        (evidence / f"audit.db{suffix}").write_bytes(Path(f"{db}{suffix}").read_bytes())
    live = [db, Path(f"{db}-wal")]
    live_before = [p.read_bytes() for p in live]
    assert _verify(db, "--guard", guard.socket_path).stdout.startswith("OK: 25 records")
    assert [p.read_bytes() for p in live] == live_before  # the live log verified as it is being written
    chain.close()
    copy = evidence / "audit.db"
    for p in evidence.iterdir():
        p.chmod(0o444)
    evidence.chmod(0o555)
    before = _digests(evidence)
    try:
        result = _verify(copy, "--checkpoint-key", _key(guard))
        exported = subprocess.run(
            [sys.executable, "-m", "authz.cli", "audit", "export", str(copy)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
    finally:
        evidence.chmod(0o755)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: 25 records"), result.stdout
    assert len(exported.stdout.splitlines()) == 25, exported.stderr
    assert _digests(evidence) == before  # nothing created, nothing changed


def test_not_an_sqlite_file_is_damaged(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    db.write_bytes(b"this is not a database" * 100)
    result = _verify(db)
    assert result.returncode == EXIT_DAMAGED and "not an SQLite database" in result.stdout
    assert "Traceback" not in result.stderr


def test_unreachable_guard_is_its_own_exit_status(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, None)
    result = _verify(db, "--guard", tmp_path / "no.sock")
    assert result.returncode == EXIT_REFERENCE_UNAVAILABLE and "cannot be reached" in result.stderr
    assert "Traceback" not in result.stderr


def test_guard_refuses_a_checkpoint_going_backwards_or_another_head(tmp_path: Path, guard: GuardClient) -> None:
    first = guard.checkpoint("log-a", "/x/audit.db", 10, "a" * 64)
    assert first.signed_by(guard.public_key()) and first.number == 1
    with pytest.raises(GuardError, match="already has a checkpoint at record 10"):
        guard.checkpoint("log-a", "/x/audit.db", 9, "b" * 64)
    with pytest.raises(GuardError, match="another head at record 10"):
        guard.checkpoint("log-a", "/x/audit.db", 10, "c" * 64)
    assert guard.checkpoint("log-a", "/x/audit.db", 10, "a" * 64) == first
    assert [c.seq for c in guard.history("log-a").checkpoints] == [10]
    with pytest.raises(GuardError, match="head must be"):
        guard.checkpoint("log-a", "/x/audit.db", 11, "not hex")


def test_a_log_keeps_working_while_the_guard_is_down(tmp_path: Path) -> None:
    from authz.guard import GuardClient as Client

    chain = AuditChain(tmp_path / "audit.db", guard=Client(tmp_path / "absent.sock"), checkpoint_every=1)
    chain.append(AuditRecord("decision", "dr", "view"))
    assert "cannot be reached" in chain.checkpoint_error
    assert chain.verify().ok
    chain.close()


def test_fhir_export_is_a_collector_reference(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    _write_log(db, None)
    exported = subprocess.run(
        [sys.executable, "-m", "authz.cli", "audit", "export", str(db), "--format", "fhir"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    export = tmp_path / "fhir.jsonl"
    export.write_text(exported.stdout)
    assert _verify(db, "--against", export).returncode == 0
    bundle = tmp_path / "bundle.json"
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    bundle.write_text(json.dumps({"resourceType": "Bundle", "entry": [{"resource": e} for e in events]}))
    _sql(db, "DELETE FROM audit WHERE seq > 20")
    assert _kinds(_verify(db, "--against", export)) == {"deleted-tail"}
    assert _kinds(_verify(db, "--against", bundle)) == {"deleted-tail"}


def test_a_fifo_in_place_of_the_log_or_the_export_does_not_hang_verify(tmp_path: Path) -> None:
    fifo = tmp_path / "audit.db"
    os.mkfifo(fifo)
    result = _verify(fifo)
    assert result.returncode == EXIT_DAMAGED and "not a regular file" in result.stdout
    db = tmp_path / "real.db"
    _write_log(db, None, n=3)
    export = tmp_path / "export.fifo"
    os.mkfifo(export)
    result = _verify(db, "--against", export)
    assert result.returncode == EXIT_REFERENCE_UNAVAILABLE and "not a regular file" in result.stderr


def test_records_of_a_run_that_ended_without_closing_are_checkpointed_at_the_next_start(
    tmp_path: Path, guard: GuardClient
) -> None:
    db = tmp_path / "audit.db"
    chain = AuditChain(db, guard=guard, checkpoint_every=10)
    for i in range(13):
        chain.append(AuditRecord("decision", "dr", "view", resource_id=str(i)))
    chain.conn.close()  # killed: no checkpoint on close, records 11-13 are covered by none
    assert [c.seq for c in guard.history(chain.log_id).checkpoints] == [0, 10]
    AuditChain(db, guard=guard).close()
    assert [c.seq for c in guard.history(chain.log_id).checkpoints][-1] == 13


def test_check_checkpoints_its_audit_log_with_the_guard(tmp_path: Path, guard: GuardClient) -> None:
    db = tmp_path / "audit.db"
    body = {
        "principal": {"id": "alice", "roles": ["user"]},
        "resources": [{"actions": ["view", "delete"], "resource": {"kind": "record", "id": "r1"}}],
    }
    done = subprocess.run(
        [sys.executable, "-m", "authz.cli", "check", "--policies", str(ROOT / "tests/authz/policysets/clinic")]
        + ["--audit", str(db), "--guard", str(guard.socket_path)],
        input=json.dumps(body) + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = _verify(db, "--guard", guard.socket_path)
    assert result.stdout.startswith("OK: 2 records") and "the guard's 2 signed checkpoints" in result.stdout
    _sql(db, "DELETE FROM audit WHERE seq = 2")
    assert _kinds(_verify(db, "--guard", guard.socket_path)) == {"deleted-tail"}


def test_clients_that_connect_and_say_nothing_hold_up_no_checkpoint(tmp_path: Path, guard: GuardClient) -> None:
    import socket
    import time

    idle = []
    for _ in range(5):
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(guard.socket_path))
        idle.append(s)
    try:
        started = time.monotonic()
        checkpoint = guard.checkpoint("log-b", "/y/audit.db", 3, "d" * 64)
        assert time.monotonic() - started < 1.0  # not after the idle clients' 2 s timeouts
        assert checkpoint.seq == 3
    finally:
        for s in idle:
            s.close()


def test_a_file_that_is_no_audit_log_is_named_so_and_still_not_passed(tmp_path: Path) -> None:
    """An auditor handed the wrong file (the app's store, ccc.db) reads what it holds and that it may
    not be an audit log at all; it is still a finding (exit 5): a log whose every table was dropped
    must not pass for a wrong file."""
    db = tmp_path / "ccc.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE patients (id TEXT)")
    conn.close()
    result = _verify(db)
    assert result.returncode == EXIT_TAMPERED and _kinds(result) == {"table-dropped"}, result.stdout
    assert "nor any other table of an audit log (it holds patients)" in result.stdout
    assert "or this is not an audit log" in result.stdout
    assert "checked: nothing: the file holds no audit records" in result.stdout
