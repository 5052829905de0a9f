"""The tamper-evident audit log: an append-only SQLite table whose records form a SHA-256 chain.

Every record holds identifiers and links only, never clinical content. Each record's ``hash`` is
the SHA-256 of the previous record's hash and of the record's canonical form (sorted-key JSON of
every other field), so changing, deleting or reordering any record breaks the chain at that
record, and ``AuditChain.verify`` names it. Triggers refuse UPDATE and DELETE; SQLite's WAL with
``synchronous=FULL`` makes a committed record survive a crash or a kill -9.

Kinds of record:
- ``decision``: one authorization decision (who, which resource/patient, action, effect, matched
  policy and rule, bundle version, purpose of use, outputs);
- ``event``: a clinical event (note saved, export, break-glass start and end, delegation granted,
  firmware request and approvals);
- ``annotation``: a late justification or review outcome; it references the original record by
  ``ref`` and never edits it.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .api import new_call_id
from .decision import Decision, decisions
from .errors import AuthzError

GENESIS = "0" * 64

# Purpose of use (HL7 v3 ActReason): treatment, emergency treatment, break-the-glass, ...
PURPOSES = ("TREAT", "ETREAT", "ERTREAT", "BTG", "HOPERAT", "HPAYMT", "HRESCH", "PATRQT", "COC")


class AuditWriteError(AuthzError):
    """The audit store could not durably record: data that needed the record must not be shown."""


@dataclass
class AuditRecord:
    """One audit record; ``seq``, ``prev_hash`` and ``hash`` are set when it is appended."""

    kind: str  # decision | event | annotation
    principal_id: str
    action: str = ""
    principal_roles: list[str] = field(default_factory=list)
    resource_kind: str = ""
    resource_id: str = ""
    patient_id: str = ""
    effect: str = ""
    policy: str = ""
    rule: str = ""
    bundle_version: str = ""
    purpose_of_use: str = ""
    justification: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    event_type: str = ""
    ref: str = ""  # for an annotation: the record_id it comments on
    details: dict[str, Any] = field(default_factory=dict)  # identifiers and links only
    workstation_id: str = ""
    call_id: str = ""
    record_id: str = field(default_factory=new_call_id)
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="microseconds"))
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""

    def canonical(self) -> str:
        """The record as hashed: sorted-key compact JSON of every field except its own hash."""
        return _canonical(_row(self))


def chain_hash(prev_hash: str, record: AuditRecord) -> str:
    return _hash_row(prev_hash, _row(record))


_COLUMNS = [f for f in AuditRecord.__dataclass_fields__]
_JSON_COLUMNS = {"principal_roles", "outputs", "details"}
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode
# The canonical form is built from the stored row (JSON columns are stored in canonical JSON
# already), so verifying never re-creates objects: key order is sorted, "hash" is left out.
_CANON = [(json.dumps(c) + ":", _COLUMNS.index(c), c in _JSON_COLUMNS) for c in sorted(_COLUMNS) if c != "hash"]


def _canonical(row: tuple[Any, ...]) -> str:
    return "{" + ",".join(k + (row[i] if is_json else _dumps(row[i])) for k, i, is_json in _CANON) + "}"


def _hash_row(prev_hash: str, row: tuple[Any, ...]) -> str:
    return hashlib.sha256((prev_hash + _canonical(row)).encode("utf-8")).hexdigest()


@dataclass
class VerifyResult:
    ok: bool
    count: int
    head: str  # the last record's hash: compare it with a copy shipped elsewhere to detect truncation
    seconds: float
    problem: str = ""
    first_bad_seq: int | None = None
    first_bad_record: str = ""


class AuditChain:
    """Appends records durably and verifies the chain. One instance per process; SQLite's
    locking (BEGIN IMMEDIATE) keeps the chain linear when several processes append."""

    def __init__(self, path: str | os.PathLike[str], workstation_id: str = "") -> None:
        self.path = Path(path)
        self.workstation_id = workstation_id
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self._create()
        except (OSError, sqlite3.Error) as exc:
            raise AuditWriteError(f"the audit log at {self.path} cannot be written: {exc}") from exc

    def _create(self) -> None:
        import sqlite_utils  # only needed to create the schema

        db = sqlite_utils.Database(self.conn)
        if "audit" in db.table_names():
            return
        table = db.table("audit")  # a Table (db["audit"] might also be a View, to the type checker)
        table.create(
            {
                "seq": int,
                "record_id": str,
                "kind": str,
                "time": str,
                "workstation_id": str,
                "call_id": str,
                "principal_id": str,
                "principal_roles": str,
                "resource_kind": str,
                "resource_id": str,
                "patient_id": str,
                "action": str,
                "effect": str,
                "policy": str,
                "rule": str,
                "bundle_version": str,
                "purpose_of_use": str,
                "justification": str,
                "outputs": str,
                "event_type": str,
                "ref": str,
                "details": str,
                "prev_hash": str,
                "hash": str,
            },
            pk="seq",
            not_null={"record_id", "kind", "time", "prev_hash", "hash"},
        )
        table.create_index(["record_id"], unique=True)
        table.create_index(["patient_id"])
        table.create_index(["ref"])
        for op in ("UPDATE", "DELETE"):
            self.conn.execute(
                f"CREATE TRIGGER audit_no_{op.lower()} BEFORE {op} ON audit "
                f"BEGIN SELECT RAISE(ABORT, 'audit records are append-only: {op} refused'); END"
            )

    def append(self, record: AuditRecord) -> AuditRecord:
        return self.append_many([record])[0]

    def append_many(self, records: Iterable[AuditRecord]) -> list[AuditRecord]:
        """Appends records in one transaction; returns only once they are durably committed."""
        records = list(records)
        if not records:
            return records
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                last = self.conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (last[0], last[1]) if last else (0, GENESIS)
                rows = []
                for r in records:
                    seq += 1
                    r.seq, r.prev_hash = seq, prev
                    r.workstation_id = r.workstation_id or self.workstation_id
                    r.hash = chain_hash(prev, r)
                    prev = r.hash
                    rows.append(_row(r))
                self.conn.executemany(
                    f"INSERT INTO audit ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})", rows
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise AuditWriteError(f"the audit log at {self.path} cannot be written: {exc}") from exc
        return records

    def annotate(
        self, original: str, principal_id: str, text: str, event_type: str = "annotation", **extra: Any
    ) -> AuditRecord:
        """A late justification or review outcome: a new record that references the original."""
        if self.get(original) is None:
            raise AuthzError(f"no audit record {original} to annotate")
        return self.append(
            AuditRecord("annotation", principal_id, ref=original, justification=text, event_type=event_type, **extra)
        )

    def get(self, record_id: str) -> AuditRecord | None:
        row = self.conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM audit WHERE record_id = ?", (record_id,)).fetchone()
        return _record(row) if row else None

    def records(self, after_seq: int = 0, limit: int | None = None) -> Iterator[AuditRecord]:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM audit WHERE seq > ? ORDER BY seq"
        params: list[Any] = [after_seq]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        for row in self.conn.execute(sql, params):
            yield _record(row)

    def verify(self, workers: int | None = None) -> VerifyResult:
        """Walks the whole chain and names the first record changed, deleted or reordered.

        The links (sequence numbers, each record's prev_hash against the previous record's
        hash) are checked in one pass; every record's own hash is recomputed in parallel over
        ranges, since it depends only on the record and the prev_hash stored in it."""
        start = time.perf_counter()
        problems: list[tuple[int, str]] = []
        prev, expected, count, record_ids = GENESIS, 1, 0, {}
        for seq, prev_hash, digest, record_id in self.conn.execute(
            "SELECT seq, prev_hash, hash, record_id FROM audit ORDER BY seq"
        ):
            record_ids[seq] = record_id
            if seq != expected:
                problems.append((seq, f"record {expected} is missing (deleted); the chain jumps to {seq}"))
                break
            if prev_hash != prev:
                problems.append((seq, f"record {seq} does not follow record {seq - 1} (deleted or reordered)"))
                break
            prev, expected, count = digest, expected + 1, count + 1
        changed = self._first_changed(expected - 1 if not problems else problems[0][0], workers)
        if changed is not None:
            problems.append((changed, f"record {changed} was changed after it was written"))
        if problems:
            seq, problem = min(problems)
            return VerifyResult(False, seq - 1, "", time.perf_counter() - start, problem, seq, record_ids.get(seq, ""))
        return VerifyResult(True, count, prev, time.perf_counter() - start)

    def _first_changed(self, last_seq: int, workers: int | None) -> int | None:
        """The first record up to ``last_seq`` whose stored hash does not match its content."""
        chunk = 50_000
        ranges = [(self.path, lo, min(lo + chunk - 1, last_seq)) for lo in range(1, last_seq + 1, chunk)]
        if len(ranges) <= 1:
            found = [_check_range(r) for r in ranges]
        else:
            ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
            with ctx.Pool(workers or min(len(ranges), os.cpu_count() or 1)) as pool:
                found = pool.map(_check_range, ranges)
        bad = [seq for seq in found if seq is not None]
        return min(bad) if bad else None

    def close(self) -> None:
        self.conn.close()


def _check_range(job: tuple[Path, int, int]) -> int | None:
    path, lo, hi = job
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for row in conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM audit WHERE seq BETWEEN ? AND ? ORDER BY seq", (lo, hi)
        ):
            if _hash_row(row[_PREV], row) != row[_HASH]:
                seq: int = row[_SEQ]
                return seq
    finally:
        conn.close()
    return None


_PREV, _HASH, _SEQ = _COLUMNS.index("prev_hash"), _COLUMNS.index("hash"), _COLUMNS.index("seq")


def _row(r: AuditRecord) -> tuple[Any, ...]:
    return tuple(_dumps(getattr(r, c)) if c in _JSON_COLUMNS else getattr(r, c) for c in _COLUMNS)


def _record(row: tuple[Any, ...]) -> AuditRecord:
    data = dict(zip(_COLUMNS, row, strict=True))
    for c in _JSON_COLUMNS:
        data[c] = json.loads(data[c]) if data[c] else ([] if c != "details" else {})
    for c, v in list(data.items()):
        if v is None:
            data[c] = ""
    return AuditRecord(**data)


def decision_record(
    principal: Any,
    resource: Any,
    decision: Decision,
    *,
    call_id: str = "",
    bundle_version: str = "",
    purpose_of_use: str = "TREAT",
    justification: str = "",
    patient_id: str = "",
) -> AuditRecord:
    """The audit record of one decision: the only place one is made, for the CLI and the app alike."""
    return AuditRecord(
        "decision",
        principal.id,
        decision.action,
        list(principal.roles),
        resource.kind,
        resource.id,
        patient_id or str(resource.attr.get("patient_id", "")),
        decision.effect.value,
        decision.policy,
        decision.rule,
        bundle_version,
        purpose_of_use,
        justification,
        [dict(o) for o in decision.outputs],
        call_id=call_id,
    )


def decision_records(
    principal: Any,
    resource: Any,
    output: Any,
    *,
    call_id: str = "",
    bundle_version: str = "",
    purpose_of_use: str = "TREAT",
    justification: str = "",
    patient_id: str = "",
) -> list[AuditRecord]:
    """One audit record per action of a decided CheckOutput."""
    return [
        decision_record(
            principal,
            resource,
            d,
            call_id=call_id,
            bundle_version=bundle_version,
            purpose_of_use=purpose_of_use,
            justification=justification,
            patient_id=patient_id,
        )
        for d in decisions(output).values()
    ]


def event_record(
    principal: Any,
    resource: Any,
    decision: Decision,
    event_type: str,
    *,
    details: dict[str, Any] | None = None,
    purpose_of_use: str = "",
    justification: str = "",
    bundle_version: str = "",
) -> AuditRecord:
    """What a decision let happen (a note saved, an export written, a session started): the event
    carries the action, effect and rule of the decision that allowed it, and its outputs."""
    return AuditRecord(
        "event",
        principal.id,
        decision.action,
        list(principal.roles),
        resource.kind,
        resource.id,
        str(resource.attr.get("patient_id", "")),
        decision.effect.value,
        decision.policy,
        decision.rule,
        bundle_version,
        purpose_of_use,
        justification,
        [dict(o) for o in decision.outputs],
        event_type=event_type,
        details=dict(details or {}),
    )
