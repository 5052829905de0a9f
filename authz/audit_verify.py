"""Verifying an audit log as evidence: read-only, and against what the local user cannot rewrite.

The log is opened read-only and nothing is created or changed: a log without a write-ahead log
is opened ``immutable``; a live one (with its -wal and -shm) ``mode=ro``; an evidence copy with a
-wal but no -shm (a read-only directory, say) is read from a private temporary copy. A file that
is not a readable audit log is ``DamagedLog``, never a traceback.

The chain itself finds a record changed, deleted or reordered by someone who did not recompute
the later hashes. Everything else needs a reference from outside the file:

- ``guard``: the checkpoints the guard signed and kept (``authz.guard``): a record rewritten with
  every later hash recomputed (the head at a checkpoint differs), a deleted tail, all records
  deleted, a log replaced by another;
- ``checkpoint_key``: the signed checkpoints stored in the log itself, checked with the guard's
  public key (for an evidence copy away from the workstation): the same findings up to the last
  checkpoint left in the file; removing checkpoints shows as a gap in their numbers only;
- ``against``: what the collector received (``audit export`` JSON lines, FHIR AuditEvents or a
  Bundle, or the RFC 5424 lines the syslog collector wrote): a rewrite, a deleted tail, a
  reordering after shipping, and a gap or a break in what was shipped.

Each finding has a ``kind`` (``FINDING_KINDS``) and a message saying what and where.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .audit import GENESIS, verify_chain
from .errors import AuthzError
from .guard import Checkpoint, GuardClient, GuardError

SQLITE_MAGIC = b"SQLite format 3\x00"
FINDING_KINDS = {
    "changed": "a record changed (later hashes not recomputed)",
    "deleted": "a record deleted from the middle",
    "reordered": "records reordered",
    "rewritten": "a record rewritten, later hashes recomputed",
    "deleted-tail": "the last records deleted",
    "all-deleted": "every record deleted",
    "table-dropped": "the audit table dropped",
    "replaced": "the whole log replaced",
    "checkpoint-removed": "signed checkpoints removed from the log",
    "forged-checkpoint": "a checkpoint not signed by the guard's key",
    "gap": "records that never reached the collector",
}


class DamagedLog(AuthzError):
    """The file is not a readable audit log (empty, truncated, overwritten, malformed)."""


class ReferenceUnavailable(AuthzError):
    """A reference to verify against (guard, key, collector export) cannot be used."""


@dataclass(frozen=True)
class Finding:
    kind: str  # one of FINDING_KINDS
    message: str
    seq: int | None = None


@dataclass
class Report:
    path: Path
    log_id: str
    count: int  # records in the file (the highest seq)
    head: str
    seconds: float
    findings: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what the log was compared with

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class Collected:
    """One record as the collector received it."""

    seq: int
    hash: str
    prev_hash: str
    record_id: str


# ---- opening without changing anything ---------------------------------------------------------


@contextmanager
def open_read_only(path: Path) -> Iterator[tuple[sqlite3.Connection, str]]:
    """A read-only connection to the log and the URI to open more (the parallel hash check)."""
    header = _header(path)
    if header[:16] != SQLITE_MAGIC:
        raise DamagedLog(f"{path} is not an SQLite database (overwritten or damaged)")
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    copy_dir: str | None = None
    if not wal.exists() or wal.stat().st_size == 0:
        uri = f"file:{pathname2url(str(path.resolve()))}?immutable=1"
    elif shm.exists():
        uri = f"file:{pathname2url(str(path.resolve()))}?mode=ro"
    else:  # the committed records in the -wal are read from a copy: SQLite would create a -shm
        copy_dir = tempfile.mkdtemp(prefix="ccc-audit-verify-")
        shutil.copyfile(path, Path(copy_dir) / "audit.db")
        shutil.copyfile(wal, Path(copy_dir) / "audit.db-wal")
        uri = f"file:{pathname2url(str(Path(copy_dir) / 'audit.db'))}?mode=ro"
    try:
        try:
            conn = sqlite3.connect(uri, uri=True)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DamagedLog(f"{path} cannot be read as an audit log: {exc}") from None
        try:
            yield conn, uri
        finally:
            conn.close()
    finally:
        if copy_dir:
            shutil.rmtree(copy_dir, ignore_errors=True)


def _header(path: Path) -> bytes:
    if not path.is_file():  # a fifo or a device would block or never end
        raise DamagedLog(f"{path} is not a regular file, not an audit log")
    try:
        with path.open("rb") as f:
            header = f.read(100)
    except IsADirectoryError:
        raise DamagedLog(f"{path} is a directory, not an audit log") from None
    except PermissionError:
        raise ReferenceUnavailable(f"{path} cannot be read: permission denied") from None
    if not header:
        raise DamagedLog(f"{path} is empty (0 bytes): the file was truncated or emptied")
    if len(header) < 100:
        raise DamagedLog(f"{path} is {len(header)} bytes long: truncated")
    return header


# ---- the whole verification --------------------------------------------------------------------


def verify_log(
    path: Path,
    guard: GuardClient | None = None,
    checkpoint_key: Ed25519PublicKey | None = None,
    against: Path | None = None,
    workers: int | None = None,
) -> Report:
    """Every check the references allow; raises DamagedLog or ReferenceUnavailable."""
    start = time.perf_counter()
    collected = load_collector_export(against) if against is not None else None
    with open_read_only(path) as (conn, uri):
        try:
            return _verify(conn, uri, path, guard, checkpoint_key, collected, workers, start)
        except sqlite3.DatabaseError as exc:
            raise DamagedLog(f"{path} is damaged: {exc}") from None


def _verify(
    conn: sqlite3.Connection,
    uri: str,
    path: Path,
    guard: GuardClient | None,
    key: Ed25519PublicKey | None,
    collected: list[Collected] | None,
    workers: int | None,
    start: float,
) -> Report:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    log_id = _meta(conn, "log_id") if "audit_meta" in tables else ""
    report = Report(path, log_id, 0, "", 0.0)
    if "audit" not in tables:
        report.findings.append(Finding("table-dropped", _no_audit_table(path, tables)))
    else:
        result = verify_chain(conn, uri, workers)
        report.count = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()[0]
        report.head = result.head
        report.checked.append(f"hash chain ({report.count} records)")
        if not result.ok:
            report.findings.append(Finding(result.kind, result.problem, result.first_bad_seq))
    heads = _Heads(conn, "audit" in tables)
    if guard is not None:
        _against_guard(report, guard, heads, conn, tables)
    if key is not None:
        _against_stored_checkpoints(report, key, heads, conn, tables)
    if collected is not None:
        _against_collector(report, collected, heads)
    report.seconds = time.perf_counter() - start
    return report


def _no_audit_table(path: Path, tables: set[str]) -> str:
    """Why there is no audit table. Still a finding (a wiped log must not pass for a wrong file),
    but a file with none of an audit log's tables may just be the wrong file: say so, and what it holds."""
    if tables & {"audit_meta", "audit_checkpoint"}:
        return f"{path} has no audit table: it was dropped"
    names = sorted(tables)
    held = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "") if names else "no table"
    return (
        f"{path} has no audit table, nor any other table of an audit log (it holds {held}): "
        "every table of the log was dropped, or this is not an audit log (the app's is audit.db in its data directory)"
    )


def _meta(conn: sqlite3.Connection, key: str) -> str:
    row = conn.execute("SELECT value FROM audit_meta WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row else ""


class _Heads:
    """The hash and record id the file holds at a seq (GENESIS at 0), one query each."""

    def __init__(self, conn: sqlite3.Connection, has_table: bool) -> None:
        self.conn, self.has_table = conn, has_table
        self.last = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()[0] if has_table else 0

    def at(self, seq: int) -> tuple[str, str] | None:
        if seq == 0:
            return GENESIS, ""
        if not self.has_table:
            return None
        row = self.conn.execute("SELECT hash, record_id FROM audit WHERE seq = ?", (seq,)).fetchone()
        return (row[0], row[1]) if row else None

    def seq_of(self, record_id: str) -> int | None:
        row = self.conn.execute("SELECT seq FROM audit WHERE record_id = ?", (record_id,)).fetchone()
        return row[0] if row else None


def _against_checkpoints(report: Report, checkpoints: list[Checkpoint], heads: _Heads, source: str) -> None:
    """The file against signed checkpoints: each must find its head at its seq (the first that
    does not is a rewrite), and the file must reach the last one (else its tail was deleted)."""
    if not checkpoints:
        return
    last = max(checkpoints, key=lambda c: c.seq)
    _tail(report, heads.last, last.seq, f"{source} signed record {last.seq} at {last.time}")
    previous = 0
    for cp in sorted(checkpoints, key=lambda c: c.seq):
        if cp.seq > heads.last:
            return
        held = heads.at(cp.seq)
        if held is None:
            report.findings.append(Finding("deleted", f"record {cp.seq}, signed by {source}, is missing", cp.seq))
            return
        if held[0] != cp.head:
            report.findings.append(
                Finding(
                    "rewritten",
                    f"a record from {previous + 1} to {cp.seq} was rewritten and the later hashes recomputed: "
                    f"record {cp.seq} has hash {held[0][:16]}..., {source} signed {cp.head[:16]}... at {cp.time}",
                    previous + 1,
                )
            )
            return
        previous = cp.seq


def _tail(report: Report, last_held: int, last_known: int, evidence: str) -> None:
    """A deleted tail (or every record deleted) when the file ends before ``last_known``."""
    if last_known <= last_held:
        return
    if last_held == 0:
        report.findings.append(Finding("all-deleted", f"every record was deleted: {evidence}", 1))
    else:
        report.findings.append(
            Finding(
                "deleted-tail",
                f"the last records were deleted: {evidence}, the log ends at record {last_held} "
                f"(records {last_held + 1}-{last_known} are gone)",
                last_held + 1,
            )
        )


def _against_guard(
    report: Report, guard: GuardClient, heads: _Heads, conn: sqlite3.Connection, tables: set[str]
) -> None:
    if not report.log_id:
        report.findings.append(
            Finding("replaced", "the log has no identity (audit_meta removed): the whole log was replaced or emptied")
        )
        return
    try:
        history = guard.history(report.log_id)
    except GuardError as exc:
        raise ReferenceUnavailable(str(exc)) from None
    if not history.known:
        report.findings.append(
            Finding(
                "replaced",
                f"the guard never saw log {report.log_id}: this is not the log this workstation wrote "
                "(the whole log was replaced)",
            )
        )
        return
    report.checked.append(f"the guard's {len(history.checkpoints)} signed checkpoints")
    if history.replaces and history.replaces_seq > 0:
        report.findings.append(
            Finding(
                "replaced",
                f"this log took the place of log {history.replaces} at {history.first_seen}, which had "
                f"{history.replaces_seq} records at its last checkpoint (the whole log was replaced)",
            )
        )
    if history.replaced_by:
        report.findings.append(
            Finding("replaced", f"another log ({history.replaced_by}) has taken this log's place since")
        )
    _against_checkpoints(report, history.checkpoints, heads, "the guard")
    if "audit_checkpoint" in tables:
        stored = {r[0] for r in conn.execute("SELECT number FROM audit_checkpoint")}
        missing = [c.number for c in history.checkpoints if c.number not in stored]
        if missing:
            report.findings.append(
                Finding("checkpoint-removed", f"{len(missing)} signed checkpoints were removed from the log")
            )


def _against_stored_checkpoints(
    report: Report, key: Ed25519PublicKey, heads: _Heads, conn: sqlite3.Connection, tables: set[str]
) -> None:
    rows = (
        conn.execute(
            "SELECT log_id, number, seq, head, time, signature FROM audit_checkpoint ORDER BY number"
        ).fetchall()
        if "audit_checkpoint" in tables
        else []
    )
    checkpoints = [Checkpoint(*r) for r in rows]
    report.checked.append(f"{len(checkpoints)} signed checkpoints stored in the log")
    forged = [c for c in checkpoints if not c.signed_by(key) or c.log_id != report.log_id]
    for c in forged[:1]:
        report.findings.append(
            Finding("forged-checkpoint", f"checkpoint {c.number} (record {c.seq}) is not signed by the guard's key")
        )
    good = [c for c in checkpoints if c not in forged]
    numbers = [c.number for c in good]
    if not good:  # a log written with the guard has one from its creation (record 0)
        report.findings.append(
            Finding(
                "checkpoint-removed",
                "the log holds no checkpoint signed by this key: removed, or the log was written without the guard",
            )
        )
        return
    if numbers != list(range(1, len(numbers) + 1)):
        report.findings.append(
            Finding("checkpoint-removed", f"signed checkpoints are missing (numbers held: {_ranges(numbers)})")
        )
    _against_checkpoints(report, good, heads, "the guard's checkpoint stored in the log")


def _ranges(numbers: list[int]) -> str:
    if not numbers:
        return "none"
    return f"{numbers[0]}-{numbers[-1]}, {len(numbers)} of them"


def _against_collector(report: Report, collected: list[Collected], heads: _Heads) -> None:
    """What the collector received, in itself (gaps, breaks) and against the file."""
    report.checked.append(f"{len(collected)} records the collector received")
    by_seq: dict[int, Collected] = {}
    for c in collected:
        seen = by_seq.get(c.seq)
        if seen is not None and seen.hash != c.hash:
            report.findings.append(
                Finding(
                    "rewritten",
                    f"the collector received record {c.seq} twice with different hashes: rewritten after shipping",
                    c.seq,
                )
            )
        by_seq.setdefault(c.seq, c)
    previous: Collected | None = None
    for seq in sorted(by_seq):
        c = by_seq[seq]
        if previous is not None and seq != previous.seq + 1:
            report.findings.append(
                Finding("gap", f"records {previous.seq + 1}-{seq - 1} never reached the collector", previous.seq + 1)
            )
        elif previous is not None and c.prev_hash and c.prev_hash != previous.hash:
            report.findings.append(
                Finding(
                    "rewritten",
                    f"record {seq} as shipped does not follow record {previous.seq} as shipped: the log was "
                    "rewritten between two shipments",
                    seq,
                )
            )
        previous = c
    newest = max(by_seq)
    _tail(report, heads.last, newest, f"the collector holds records up to {newest}")
    for seq in sorted(by_seq):
        if seq > heads.last:
            return
        c = by_seq[seq]
        held = heads.at(seq)
        if held is None:
            report.findings.append(Finding("deleted", f"record {seq}, received by the collector, is missing", seq))
            return
        if held[1] != c.record_id:
            moved = heads.seq_of(c.record_id)
            if moved is not None:
                report.findings.append(
                    Finding("reordered", f"record {c.record_id} was shipped as record {seq}, is now {moved}", seq)
                )
            else:
                report.findings.append(
                    Finding("rewritten", f"record {seq} is not the record the collector received ({c.record_id})", seq)
                )
            return
        if held[0] != c.hash:
            report.findings.append(
                Finding("rewritten", f"record {seq} differs from what the collector received (hash)", seq)
            )
            return


# ---- reading what the collector holds ----------------------------------------------------------

_SD = re.compile(r"\[ccc@32473 ([^\]]*)\]")
_SD_PARAM = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def load_collector_export(path: Path) -> list[Collected]:
    """The records in a collector's file: JSON lines (``audit export`` decision-log lines or FHIR
    AuditEvents), a FHIR Bundle, or RFC 5424 syslog lines with the ``ccc@32473`` element."""
    if not path.is_file():
        raise ReferenceUnavailable(f"the collector export {path} is not a regular file")
    try:
        with path.open("rb") as f:
            start = f.read(400).decode("utf-8", errors="replace").lstrip()
            f.seek(0)
            if start.startswith("{") and '"resourceType"' in start and '"Bundle"' in start:
                found = _from_bundle(path, f.read())
            else:
                found = [_from_line(path, number, raw) for number, raw in enumerate(f, start=1) if raw.strip()]
    except OSError as exc:
        raise ReferenceUnavailable(f"the collector export {path} cannot be read: {exc.strerror or exc}") from None
    if not found:
        raise ReferenceUnavailable(f"{path}: holds no audit record")
    return found


def _from_bundle(path: Path, data: bytes) -> list[Collected]:
    try:
        bundle = json.loads(data)
    except ValueError:
        raise ReferenceUnavailable(f"{path}: not a readable FHIR Bundle") from None
    entries = bundle.get("entry", []) if isinstance(bundle, dict) else []
    items = [e.get("resource") for e in entries if isinstance(e, dict)]
    return [c for item in items if (c := _from_json(item)) is not None]


def _from_line(path: Path, number: int, raw: bytes) -> Collected:
    line = raw.decode("utf-8", errors="replace")
    record = _from_json(_json_line(line)) if line.lstrip().startswith("{") else _from_syslog(line)
    if record is None:
        raise ReferenceUnavailable(f"{path}:{number}: not an audit record the collector received")
    return record


def _json_line(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _from_json(item: Any) -> Collected | None:
    if not isinstance(item, dict):
        return None
    ccc = item.get("ccc")
    if isinstance(ccc, dict):  # a decision-log line
        return _collected(ccc.get("seq"), ccc.get("hash"), ccc.get("prevHash"), ccc.get("recordId"))
    if item.get("resourceType") == "AuditEvent":
        details: dict[str, str] = {}
        for entity in item.get("entity", []):
            for d in entity.get("detail", []) if isinstance(entity, dict) else []:
                if isinstance(d, dict):
                    details[str(d.get("type"))] = str(d.get("valueString", ""))
        return _collected(details.get("seq"), details.get("hash"), details.get("prevHash", ""), item.get("id"))
    return None


def _from_syslog(line: str) -> Collected | None:
    match = _SD.search(line)
    if match is None:
        return None
    params = {
        k: v.replace('\\"', '"').replace("\\]", "]").replace("\\\\", "\\") for k, v in _SD_PARAM.findall(match[1])
    }
    return _collected(params.get("seq"), params.get("hash"), params.get("prevHash", ""), params.get("recordId"))


def _collected(seq: Any, digest: Any, prev_hash: Any, record_id: Any) -> Collected | None:
    try:
        number = int(seq)
    except (TypeError, ValueError):
        return None
    if number < 1 or not isinstance(digest, str) or not isinstance(record_id, str):
        return None
    return Collected(number, digest, prev_hash if isinstance(prev_hash, str) else "", record_id)
