"""Audited decisions per second (each request's records durably committed before its answer is
written, as ``ccc-authz check --audit`` does) and audit chain verification time per million records
as ``ccc-authz audit verify`` does it (read-only, immutable open, the hash check over two workers
per core), with and without the guard's checkpoints (a guard process on a Unix socket).

    .venv/bin/python bench/bench_audit.py [--requests 20000] [--records 200000] [--write]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import publish  # noqa: E402

from authz import Effect  # noqa: E402
from authz.audit import AuditChain, AuditRecord  # noqa: E402
from authz.audit_verify import verify_log  # noqa: E402
from authz.guard import GuardClient  # noqa: E402
from tests.authz.differential import random_requests  # noqa: E402
from tests.support.guard import running_guard  # noqa: E402


def audited_check(requests: int, policies: Path, workdir: Path) -> tuple[int, float]:
    lines = workdir / "requests.jsonl"
    with lines.open("w") as f:
        for body in random_requests("clinic", requests, seed=3):
            f.write(json.dumps(body) + "\n")
    db = workdir / "audit.db"
    start = time.perf_counter()
    with lines.open() as stdin:
        subprocess.run(
            [sys.executable, "-m", "authz.cli", "check", "--policies", str(policies), "--audit", str(db)],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            check=True,
            cwd=ROOT,
        )
    seconds = time.perf_counter() - start
    chain = AuditChain(db)
    count = sum(1 for _ in chain.conn.execute("SELECT 1 FROM audit"))
    assert chain.verify().ok
    return count, seconds


def verify_time(records: int, workdir: Path, guard: GuardClient | None = None) -> float:
    """Seconds ``audit verify`` takes over ``records`` records (checkpointed by ``guard`` if given)."""
    db = workdir / ("big-guarded.db" if guard else "big.db")
    chain = AuditChain(db, guard=guard)
    for start in range(0, records, 10_000):
        chain.append_many(
            AuditRecord(
                "decision",
                "dr_aly",
                "view",
                ["physician"],
                "patient_record",
                f"p{i}",
                f"p{i}",
                Effect.ALLOW.value,
                "resource.patient_record.vdefault",
                "resource.patient_record.vdefault#view_patient_data",
                outputs=[{"src": "x", "val": {"audit_flag": "none"}}],
            )
            for i in range(start, min(start + 10_000, records))
        )
    chain.close()
    report = verify_log(db, guard=guard)
    assert report.ok and report.count == records, report.findings
    return report.seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--records", type=int, default=200000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        count, seconds = audited_check(args.requests, ROOT / "tests/authz/policysets/clinic", Path(tmp))
        vsec = verify_time(args.records, Path(tmp))
        with running_guard(Path(tmp) / "guard") as guard:
            gsec = verify_time(args.records, Path(tmp), guard)
    lines = [
        f"## {time.strftime('%Y-%m-%d')} — audit log",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, SQLite WAL synchronous=FULL.",
        "",
        "| figure | measured | target |",
        "|---|---|---|",
        f"| audited decisions/s, `ccc-authz check --audit`, commit per request ({args.requests} requests, "
        f"{count} records) | {count / seconds:,.0f} | >= 11,000 |",
        f"| `audit verify` time per million records (measured on {args.records:,}) |"
        f" {vsec * 1_000_000 / args.records:.1f} s | <= 5.5 s |",
        f"| `audit verify --guard` time per million records (checkpoints every 1,000) |"
        f" {gsec * 1_000_000 / args.records:.1f} s | <= 5.5 s |",
        "",
        f"Command: `.venv/bin/python bench/bench_audit.py --requests {args.requests} --records {args.records}`",
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
