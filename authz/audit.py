"""The tamper-evident audit log: an append-only SQLite table whose records form a SHA-256 chain.

Every record holds identifiers and links only, never clinical content. Each record's ``hash`` is
the SHA-256 of the previous record's hash and of the record's canonical form (sorted-key JSON of
every other field), so changing, deleting or reordering any record breaks the chain at that
record, and ``AuditChain.verify`` names it. Triggers refuse UPDATE and DELETE; SQLite's WAL with
``synchronous=FULL`` makes a committed record survive a crash or a kill -9. The files are created
for their owner only (0600; SQLite gives the -wal and -shm files the database file's mode).

The chain has no key: whoever can write the file can rewrite a record and recompute every later
hash. What catches that is outside the file: each log has a random ``log_id`` (table
``audit_meta``), and with a guard (``authz.guard``) the chain head is checkpointed every
``checkpoint_every`` records or ``checkpoint_seconds`` seconds and on close, signed with a key
the user cannot read and kept by the guard too; the signed checkpoints are also stored in the
log (table ``audit_checkpoint``) and shipped with the records. ``authz.audit_verify`` compares
a log with them and with what a collector received.

Kinds of record:
- ``decision``: one authorization decision (who, which resource/patient, action, effect, matched
  policy and rule, bundle version, purpose of use, outputs);
- ``event``: a clinical event (note saved, export, break-glass start and end, delegation granted,
  firmware request and approvals);
- ``annotation``: a late justification or review outcome; it references the original record by
  ``ref`` and never edits it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .api import new_call_id
from .decision import Decision, decisions
from .errors import AuthzError

if TYPE_CHECKING:  # the guard's module (and cryptography) only when a guard is used: see _checkpoint
    from .guard import Checkpoint, GuardClient

GENESIS = "0" * 64
CHECKPOINT_EVERY = 1000  # records between two signed checkpoints of the head (with a guard)
CHECKPOINT_SECONDS = 60.0  # ... or seconds, whichever comes first (checked at each append)

# Purpose of use (HL7 v3 ActReason): treatment, emergency treatment, break-the-glass, ...
PURPOSES = ("TREAT", "ETREAT", "ERTREAT", "BTG", "HOPERAT", "HPAYMT", "HRESCH", "PATRQT", "COC")


class AuditWriteError(AuthzError):
    """The audit store could not durably record: data that needed the record must not be shown."""


def write_error(path: Path, exc: BaseException) -> AuditWriteError:
    """The reason an audit log cannot be written, in words that say what to fix and where."""
    code = getattr(exc, "sqlite_errorname", "")
    errno_ = getattr(exc, "errno", None)
    where = f"the audit log at {path} cannot be written"
    if code == "SQLITE_FULL" or errno_ == errno.ENOSPC:
        return AuditWriteError(f"{where}: the disk is full (free space on the file system holding {path.parent})")
    if code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")) or errno_ in (
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
    ):
        return AuditWriteError(f"{where}: {_why_not_writable(path)}; decisions need a writable audit log")
    if code.startswith("SQLITE_IOERR"):
        return AuditWriteError(
            f"{where}: a disk I/O error ({code}): the disk may be failing or full, or the file too large"
        )
    if code in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return AuditWriteError(f"{where}: the file is damaged or not an audit log ({exc})")
    return AuditWriteError(f"{where}: {exc}")


def _why_not_writable(path: Path) -> str:
    """A read-only file system, or which file or directory this user may not write."""
    directory = path.parent
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return f"the store is read-only (the file system holding {directory} is mounted read-only)"
    except OSError:
        pass
    for target in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if target.exists() and not os.access(target, os.W_OK):
            return f"permission denied: {target} is not writable by this user"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"permission denied: the directory {directory} is not writable by this user"
    return "the store is read-only (SQLite opened it read-only)"


def _create_private(path: Path) -> None:
    """Creates the log file for its owner only, before SQLite opens it (the -wal and -shm files
    take its mode); an existing file of ours that others could read is narrowed."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            try:
                st = file.stat()
                if st.st_mode & 0o077 and st.st_uid == os.geteuid():
                    os.chmod(file, 0o600)
            except FileNotFoundError:
                pass
        return
    os.close(fd)


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
    kind: str = ""  # changed | deleted | reordered


class AuditChain:
    """Appends records durably and verifies the chain. One instance per process; SQLite's
    locking (BEGIN IMMEDIATE) keeps the chain linear when several processes append."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        workstation_id: str = "",
        guard: GuardClient | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
        checkpoint_seconds: float = CHECKPOINT_SECONDS,
    ) -> None:
        self.path = Path(path)
        self.workstation_id = workstation_id
        self.guard = guard
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.checkpoint_error = ""  # the last checkpoint the guard did not give (retried later)
        # Appends come from more than one thread (the app's, and the shadow evaluation's flips):
        # one transaction at a time on the shared connection.
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _create_private(self.path)
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self._create()
            self.log_id = self._log_id()
            row = self.conn.execute("SELECT MAX(seq) FROM audit_checkpoint").fetchone()
            last = self.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()[0]
        except (OSError, sqlite3.Error) as exc:
            raise write_error(self.path, exc) from exc
        self._checkpointed_seq = row[0] if row[0] is not None else -1
        self._checkpointed_at = time.monotonic()
        if guard is not None and last > self._checkpointed_seq:
            # The guard learns of a new log now (a log replaced later is then seen), and of records
            # a previous run wrote after its last checkpoint (it ended without closing the log).
            self.checkpoint()

    def _create(self) -> None:
        import sqlite_utils  # only needed to create the schema

        db = sqlite_utils.Database(self.conn)
        self.conn.execute("CREATE TABLE IF NOT EXISTS audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS audit_checkpoint (number INTEGER PRIMARY KEY, log_id TEXT NOT NULL,"
            " seq INTEGER NOT NULL, head TEXT NOT NULL, time TEXT NOT NULL, signature TEXT NOT NULL)"
        )
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
        with self._lock:
            return self._append_many(records)

    def _append_many(self, records: list[AuditRecord]) -> list[AuditRecord]:
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
                # SQLite has rolled back already after a full disk or an I/O error: a second
                # ROLLBACK would hide the cause behind "no transaction is active".
                if self.conn.in_transaction:
                    try:
                        self.conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise
        except sqlite3.Error as exc:
            raise write_error(self.path, exc) from exc
        if self.guard is not None and (
            records[-1].seq - self._checkpointed_seq >= self.checkpoint_every
            or time.monotonic() - self._checkpointed_at >= self.checkpoint_seconds
        ):
            self.checkpoint()
        return records

    def _log_id(self) -> str:
        """This log's identity, made once: a log put in its place has another (unless copied)."""
        self.conn.execute(
            "INSERT OR IGNORE INTO audit_meta (key, value) VALUES ('log_id', ?), ('created', ?)",
            (new_call_id(), datetime.now(UTC).isoformat(timespec="microseconds")),
        )
        value: str = self.conn.execute("SELECT value FROM audit_meta WHERE key = 'log_id'").fetchone()[0]
        return value

    def checkpoint(self) -> Checkpoint | None:
        """Has the guard sign the chain head, and keeps the checkpoint in the log too. A guard
        that cannot be reached does not stop the records (they are committed already): the error
        is kept in ``checkpoint_error`` (the status bar shows it) and the first append after the
        next interval (``checkpoint_seconds`` or ``checkpoint_every`` records) tries again; not
        every append, since a guard that hangs would hold each one up for the client's timeout."""
        if self.guard is None:
            return None
        with self._lock:
            return self._checkpoint(self.guard)

    def _checkpoint(self, guard: GuardClient) -> Checkpoint | None:
        from .guard import GuardError  # loaded already: the caller made a GuardClient

        last = self.conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, head = (last[0], last[1]) if last else (0, GENESIS)
        self._checkpointed_at = time.monotonic()
        try:
            checkpoint = guard.checkpoint(self.log_id, str(self.path.resolve()), seq, head)
            self.conn.execute(
                "INSERT OR IGNORE INTO audit_checkpoint (number, log_id, seq, head, time, signature)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    checkpoint.number,
                    checkpoint.log_id,
                    checkpoint.seq,
                    checkpoint.head,
                    checkpoint.time,
                    checkpoint.signature,
                ),
            )
        except GuardError as exc:
            self.checkpoint_error = str(exc)
            return None
        except sqlite3.Error as exc:
            self.checkpoint_error = str(write_error(self.path, exc))
            return None
        self.checkpoint_error = ""
        self._checkpointed_seq = max(self._checkpointed_seq, checkpoint.seq)
        return checkpoint

    def latest_checkpoint(self) -> Checkpoint | None:
        row = self.conn.execute(
            "SELECT log_id, number, seq, head, time, signature FROM audit_checkpoint ORDER BY number DESC LIMIT 1"
        ).fetchone()
        if not row:
            return None
        from .guard import Checkpoint

        return Checkpoint(*row)

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
        """The chain's own check (see ``verify_chain``), on a read-only view of this log."""
        return verify_chain(self.conn, f"file:{self.path}?mode=ro", workers)

    def close(self) -> None:
        """Closes the log, with a last checkpoint of what was written since the previous one."""
        with self._lock:
            if self.guard is not None:
                last = self.conn.execute("SELECT MAX(seq) FROM audit").fetchone()[0] or 0
                if last > self._checkpointed_seq:
                    self.checkpoint()
            self.conn.close()


def verify_chain(conn: sqlite3.Connection, uri: str, workers: int | None = None) -> VerifyResult:
    """Walks the whole chain and names the first record changed, deleted or reordered.

    The links (sequence numbers, each record's prev_hash against the previous record's hash)
    are checked in one pass on ``conn``; every record's own hash is recomputed in parallel over
    ranges, each worker opening ``uri`` (read-only), since a record's hash depends only on the
    record and the prev_hash stored in it. SQLite errors (a damaged file) are raised."""
    start = time.perf_counter()
    problems: list[tuple[int, str, str]] = []
    prev, expected, count = GENESIS, 1, 0
    for seq, prev_hash, digest in conn.execute("SELECT seq, prev_hash, hash FROM audit ORDER BY seq"):
        if seq != expected:
            problems.append((seq, "deleted", f"record {expected} is missing (deleted); the chain jumps to {seq}"))
            break
        if prev_hash != prev:
            problems.append((seq, *_broken_link(conn, seq, prev_hash)))
            break
        prev, expected, count = digest, expected + 1, count + 1
    changed = _first_changed(uri, expected - 1 if not problems else problems[0][0], workers)
    if changed is not None:
        problems.append((changed, "changed", f"record {changed} was changed after it was written"))
    if problems:
        seq, kind, problem = min(problems, key=lambda p: (p[0], p[1] == "changed"))  # at one seq, the link says more
        row = conn.execute("SELECT record_id FROM audit WHERE seq = ?", (seq,)).fetchone()
        return VerifyResult(False, seq - 1, "", time.perf_counter() - start, problem, seq, row[0] if row else "", kind)
    return VerifyResult(True, count, prev, time.perf_counter() - start)


def _broken_link(conn: sqlite3.Connection, seq: int, prev_hash: str) -> tuple[str, str]:
    """Why record ``seq`` does not follow the one before: it follows another record (reordered),
    or one that is no longer there (deleted)."""
    row = conn.execute("SELECT seq FROM audit WHERE hash = ? LIMIT 1", (prev_hash,)).fetchone()
    if row is not None:
        return "reordered", f"record {seq} does not follow record {seq - 1} but record {row[0]} (reordered)"
    return "deleted", f"record {seq} does not follow record {seq - 1} (the record it followed was deleted)"


def _first_changed(uri: str, last_seq: int, workers: int | None) -> int | None:
    """The first record up to ``last_seq`` whose stored hash does not match its content."""
    chunk = 50_000
    ranges = [(uri, lo, min(lo + chunk - 1, last_seq)) for lo in range(1, last_seq + 1, chunk)]
    if len(ranges) <= 1:
        found = [_check_range(r) for r in ranges]
    else:
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with ctx.Pool(workers or min(len(ranges), os.cpu_count() or 1)) as pool:
            found = pool.map(_check_range, ranges)
    bad = [seq for seq in found if seq is not None]
    return min(bad) if bad else None


def _check_range(job: tuple[str, int, int]) -> int | None:
    uri, lo, hi = job
    conn = sqlite3.connect(uri, uri=True)
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


def read_records(conn: sqlite3.Connection, after_seq: int = 0) -> Iterator[AuditRecord]:
    """The records of a log opened by someone else (read-only, for ``audit export``), in order."""
    for row in conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM audit WHERE seq > ? ORDER BY seq", (after_seq,)):
        yield _record(row)


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


SHADOW_FLIP = "policy_shadow_flip"


def shadow_flip_record(flip: Any) -> AuditRecord:
    """One live decision that a bundle held in shadow decides otherwise (a ``shadow.ShadowFlip``):
    an event with the effect and rule enforced (the active bundle's) and, in its details, the
    candidate's effect and rule, the direction and the candidate bundle. Identifiers only."""
    details: dict[str, Any] = {
        "direction": flip.direction,
        "shadow_bundle_version": flip.shadow_version,
        "shadow_bundle_sha256": flip.shadow_sha256,
        "before_effect": flip.before_effect,
        "after_effect": flip.after_effect,
        "before_rule": flip.before_rule,
        "after_rule": flip.after_rule,
        "decided_at": flip.decided_at,
    }
    if flip.outputs is not None:
        details["outputs"] = {"before": flip.outputs[0], "after": flip.outputs[1]}
    return AuditRecord(
        "event",
        flip.principal_id,
        flip.action,
        list(flip.roles),
        flip.resource_kind,
        flip.resource_id,
        flip.patient_id,
        flip.before_effect,
        flip.before_rule.split("#", 1)[0] if "#" in flip.before_rule else "",
        flip.before_rule,
        flip.active_version,
        event_type=SHADOW_FLIP,
        details=details,
    )
