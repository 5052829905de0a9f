"""The audit log: append-only, a verifiable hash chain that names the first tampered record,
annotations that never edit, durability across kill -9, and its exports."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from authz.audit import AuditChain, AuditRecord
from authz.audit_export import to_decision_log, to_fhir
from authz.cli import EXIT_AUDIT_FAILURE

ROOT = Path(__file__).resolve().parents[2]
CLINIC = Path(__file__).parent / "policysets" / "clinic"


def _fill(chain: AuditChain, n: int = 10) -> list[AuditRecord]:
    return chain.append_many(
        AuditRecord(
            "decision",
            f"dr_{i}",
            "view",
            ["physician"],
            "patient_record",
            f"p{i}",
            f"p{i}",
            "EFFECT_ALLOW",
            "resource.patient_record.vdefault",
            "resource.patient_record.vdefault#view",
        )
        for i in range(n)
    )


def _tamper(path: Path, sql: str, *params: object) -> None:
    """Edits the file behind the log's back, as an attacker with file access would."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.execute(sql, params)
    conn.commit()
    conn.close()


@pytest.fixture
def chain(tmp_path: Path) -> AuditChain:
    c = AuditChain(tmp_path / "audit.db", workstation_id="ward-7")
    yield c
    c.close()


def test_intact_chain_verifies(chain: AuditChain) -> None:
    records = _fill(chain)
    result = chain.verify()
    assert result.ok and result.count == 10
    assert result.head == records[-1].hash
    assert [r.seq for r in chain.records()] == list(range(1, 11))
    assert all(r.workstation_id == "ward-7" for r in chain.records())


def test_update_and_delete_are_refused(chain: AuditChain) -> None:
    _fill(chain, 2)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        chain.conn.execute("UPDATE audit SET effect = 'EFFECT_DENY' WHERE seq = 1")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        chain.conn.execute("DELETE FROM audit WHERE seq = 1")
    assert chain.verify().ok


def test_changed_field_is_named(chain: AuditChain) -> None:
    _fill(chain)
    _tamper(chain.path, "UPDATE audit SET effect = 'EFFECT_DENY' WHERE seq = 4")
    result = chain.verify()
    assert not result.ok and result.first_bad_seq == 4 and "changed" in result.problem
    assert result.count == 3


def test_deleted_record_is_named(chain: AuditChain) -> None:
    _fill(chain)
    _tamper(chain.path, "DELETE FROM audit WHERE seq = 6")
    result = chain.verify()
    assert not result.ok and "record 6 is missing" in result.problem


def test_swapped_records_are_named(chain: AuditChain) -> None:
    _fill(chain)
    conn = sqlite3.connect(chain.path)
    rows = {r[0]: r for r in conn.execute("SELECT * FROM audit WHERE seq IN (3, 4)")}
    conn.close()
    _tamper(chain.path, "DELETE FROM audit WHERE seq IN (3, 4)")
    conn = sqlite3.connect(chain.path)
    for seq, other in ((3, 4), (4, 3)):
        conn.execute(f"INSERT INTO audit VALUES ({', '.join('?' for _ in rows[other])})", (seq, *rows[other][1:]))
    conn.commit()
    conn.close()
    result = chain.verify()
    assert not result.ok and result.first_bad_seq == 3


def test_annotation_references_the_original_and_leaves_it_untouched(chain: AuditChain) -> None:
    original = chain.append(
        AuditRecord(
            "event",
            "dr_aly",
            event_type="break_glass_start",
            patient_id="p3",
            purpose_of_use="ETREAT",
            justification="chest pain",
        )
    )
    note = chain.annotate(
        original.record_id, "co_cora", "Reviewed: justified emergency access", event_type="review_accepted"
    )
    assert note.ref == original.record_id and note.seq == original.seq + 1
    assert chain.get(original.record_id) == original
    assert chain.verify().ok
    with pytest.raises(Exception, match="no audit record"):
        chain.annotate("nope", "co_cora", "text")


def test_exports_carry_codes_and_chain_fields(chain: AuditChain) -> None:
    _fill(chain, 1)
    bg = chain.append(
        AuditRecord("event", "dr_aly", event_type="break_glass_start", patient_id="p3", purpose_of_use="ETREAT")
    )
    decision = next(chain.records())
    log = to_decision_log(decision)
    assert log["log.kind"] == "decision"
    assert log["checkResources"]["outputs"][0]["actions"]["view"]["effect"] == "EFFECT_ALLOW"
    assert log["ccc"]["hash"] == decision.hash
    fhir = to_fhir(bg)
    assert fhir["resourceType"] == "AuditEvent"
    assert fhir["type"]["code"] == "110113" and fhir["subtype"][0]["code"] == "110127"
    assert fhir["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"
    assert fhir["entity"][0]["what"]["identifier"]["value"] == "p3"


WRITER = """
import sys
from authz.audit import AuditChain, AuditRecord
chain = AuditChain(sys.argv[1])
i = 0
while True:
    r = chain.append(AuditRecord("decision", "dr_aly", "view", resource_kind="patient_record", resource_id=str(i)))
    print(r.record_id, flush=True)
    i += 1
"""


def test_kill_9_loses_no_committed_record(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    committed: list[str] = []
    rng = random.Random(5)
    rounds = 0
    while rounds < 6 or (len(committed) <= 20 and rounds < 30):  # more rounds on a slow machine
        rounds += 1
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the writer is under way (a loaded machine starts it late)
        time.sleep(rng.uniform(0.3, 0.8))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        committed.extend(line.strip() for line in [first, *out.splitlines()] if line.strip())
    chain = AuditChain(db)
    assert chain.verify().ok
    stored = {r.record_id for r in chain.records()}
    assert len(committed) > 20
    assert set(committed) <= stored


def test_check_writes_one_record_per_decision_before_answering(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    body = {
        "principal": {"id": "alice", "roles": ["user"]},
        "resources": [
            {"actions": ["view", "delete"], "resource": {"kind": "record", "id": "r1", "attr": {"owner": "alice"}}}
        ],
    }
    result = subprocess.run(
        [sys.executable, "-m", "authz.cli", "check", "--policies", str(CLINIC), "--audit", str(db)],
        input=json.dumps(body) + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    chain = AuditChain(db)
    records = list(chain.records())
    assert {(r.action, r.effect) for r in records} == {("view", "EFFECT_ALLOW"), ("delete", "EFFECT_DENY")}
    assert {r.call_id for r in records} == {response["cerbosCallId"]}
    assert next(r for r in records if r.action == "view").rule == "resource.record.vdefault#rule-001"


def test_unwritable_audit_log_means_no_answer(tmp_path: Path) -> None:
    """A store that cannot be written (here: its file overwritten with garbage) stops the answers."""
    db = tmp_path / "audit.db"
    AuditChain(db).close()
    db.write_bytes(b"this is not a database" * 100)
    body = {
        "principal": {"id": "alice", "roles": ["user"]},
        "resources": [{"actions": ["view"], "resource": {"kind": "record", "id": "r1"}}],
    }
    result = subprocess.run(
        [sys.executable, "-m", "authz.cli", "check", "--policies", str(CLINIC), "--audit", str(db)],
        input=json.dumps(body) + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == EXIT_AUDIT_FAILURE
    assert result.stdout == ""
    assert "cannot be written" in result.stderr
