"""``ccc-authz audit verify|export``: reading an audit log without changing it.

    ccc-authz audit verify DB [--guard SOCKET] [--checkpoint-key PUB] [--against COLLECTOR_EXPORT]
    ccc-authz audit export DB --format jsonl|fhir

``verify`` exit statuses:
    0  the log is intact (as far as the references given can tell: the report says which)
    5  tampered: each finding is named (rewritten, deleted-tail, all-deleted, table-dropped,
       replaced, reordered, changed, deleted, checkpoint-removed, forged-checkpoint, gap)
    6  damaged: not a readable audit log (empty or truncated file, not SQLite, malformed)
    7  a reference cannot be used (the guard unreachable, the key or the export unreadable)
    2  usage: no such file
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any, TextIO

# The verifier's and exporter's modules (and the bundle's, with cryptography) are imported when the
# command runs: every ccc-authz command builds this parser, and `check`'s start-up should not pay.

EXIT_TAMPERED = 5
EXIT_DAMAGED = 6
EXIT_REFERENCE_UNAVAILABLE = 7
EXIT_USAGE = 2


def add_parser(sub: Any) -> None:
    p_audit = sub.add_parser("audit", help="verify or export an audit log (read-only)")
    audit_sub = p_audit.add_subparsers(dest="audit_command", required=True)
    p_verify = audit_sub.add_parser(
        "verify",
        help="check the hash chain, and against the guard, its signed checkpoints or the collector",
        description="Exit 0 intact, 5 tampered, 6 damaged file, 7 reference unusable, 2 no such file.",
    )
    p_verify.add_argument("db", help="the audit log (audit.db), or an evidence copy of it")
    p_verify.add_argument("--guard", metavar="SOCKET", help="compare with the checkpoints the guard kept")
    p_verify.add_argument(
        "--checkpoint-key", metavar="PUB", help="check the signed checkpoints stored in the log with this key"
    )
    p_verify.add_argument("--against", metavar="COLLECTOR_EXPORT", help="compare with what the collector received")
    p_export = audit_sub.add_parser(
        "export", help="write the records to stdout as JSON lines: Cerbos decision-log entries or FHIR AuditEvents"
    )
    p_export.add_argument("db", help="the audit log (audit.db)")
    p_export.add_argument(
        "--format",
        choices=["jsonl", "fhir"],
        default="jsonl",
        help="jsonl: Cerbos decision-log lines (the default); fhir: one FHIR R4 AuditEvent per line",
    )


def cmd_audit(args: argparse.Namespace, out: TextIO) -> int:
    from .audit_verify import DamagedLog, ReferenceUnavailable

    path = Path(args.db)
    if not path.exists():
        sys.stderr.write(f"no audit log at {path}\n")
        return EXIT_USAGE
    try:
        if args.audit_command == "verify":
            return _verify(args, path, out)
        return _export(args, path, out)
    except DamagedLog as exc:
        out.write(f"DAMAGED: {exc}\n")
        return EXIT_DAMAGED
    except ReferenceUnavailable as exc:
        sys.stderr.write(f"cannot verify {path}: {exc}\n")
        return EXIT_REFERENCE_UNAVAILABLE


def _verify(args: argparse.Namespace, path: Path, out: TextIO) -> int:
    from .audit_verify import ReferenceUnavailable, verify_log
    from .bundle import BundleError, load_public_key
    from .guard import GuardClient

    key = None
    if args.checkpoint_key:
        try:
            key = load_public_key(Path(args.checkpoint_key))
        except BundleError as exc:
            raise ReferenceUnavailable(str(exc)) from None
    guard = GuardClient(Path(args.guard), key) if args.guard else None
    report = verify_log(path, guard, key, Path(args.against) if args.against else None)
    checked = "; ".join(report.checked) or "nothing: the file holds no audit records"
    if report.ok:
        out.write(
            f"OK: {report.count} records, chain intact, head {report.head} (verified in {report.seconds:.2f} s)\n"
            f"checked: {checked}\n"
        )
        if guard is None and key is None and not args.against:
            out.write(
                "note: the chain alone does not show a rewrite with every later hash recomputed, a deleted tail "
                "or a replaced log: verify with --guard, --checkpoint-key or --against\n"
            )
        return 0
    for finding in report.findings:
        out.write(f"TAMPERED: {finding.kind}: {finding.message}\n")
    out.write(f"checked: {checked}\n")
    return EXIT_TAMPERED


def _export(args: argparse.Namespace, path: Path, out: TextIO) -> int:
    from .audit import read_records
    from .audit_export import to_decision_log, to_fhir
    from .audit_verify import DamagedLog, open_read_only

    with open_read_only(path) as (conn, _uri):
        try:
            row = conn.execute("SELECT value FROM audit_meta WHERE key = 'log_id'").fetchone()
        except sqlite3.Error:
            row = None
        log_id = str(row[0]) if row else ""
        try:
            for record in read_records(conn):
                converted = to_fhir(record, log_id) if args.format == "fhir" else to_decision_log(record, log_id)
                out.write(json.dumps(converted, separators=(",", ":"), ensure_ascii=False) + "\n")
        except sqlite3.DatabaseError as exc:
            raise DamagedLog(f"{path} is damaged: {exc}") from None
    return 0
