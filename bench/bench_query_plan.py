"""Listing the patients a user may see among 200,000: through a query plan (plan the request, then
one SQL query) against checking each patient (read every row, decide each one), in the same run.

    .venv/bin/python bench/bench_query_plan.py [--patients 200000] [--rounds 5] [--write]

The table is the store's ``patients`` table (the columns the policies read) with the care team and
assigned physicians as child tables, one member per row, each indexed by (patient, member) and by
(member, patient), and an index on ``hospital_id``. Principals: a nurse and a physician of one
hospital (of 20) who are on a few hundred care teams, an ER physician (the hospital-wide lookup),
and a patient. The per-patient path is the engine's Python API with the record built from the row,
as the patient list does today. Each path's fastest round counts; the plan path's answer is checked
against the per-patient path's.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import publish  # noqa: E402
from sqlalchemy import Boolean, Column, Index, MetaData, String, Table, create_engine, select  # noqa: E402

from authz.engine import Engine  # noqa: E402
from authz.evaluate import CheckInput, Principal, Resource  # noqa: E402
from authz.sql_filter import ListColumn, filter_to_sql  # noqa: E402

HOSPITALS = [f"h{i}" for i in range(20)]
STAFF = [f"s{i}" for i in range(4000)]


def build(db_path: Path, patients: int, seed: int = 7) -> tuple[Any, Table, Table, Table]:
    rng = random.Random(seed)
    engine = create_engine(f"sqlite:///{db_path}")
    meta = MetaData()
    table = Table(
        "patients",
        meta,
        Column("id", String, primary_key=True),
        Column("hospital_id", String),
        Column("sealed", Boolean),
        Column("emergency", Boolean),
        Index("idx_bench_patients_hospital", "hospital_id"),
    )
    children = []
    for name in ("care_team", "assigned_physicians"):
        children.append(
            Table(
                f"patient_{name}",
                meta,
                Column("patient_id", String, nullable=False),
                Column("member", String, nullable=False),
                Index(f"idx_bench_{name}_patient", "patient_id", "member"),
                Index(f"idx_bench_{name}_member", "member", "patient_id"),
            )
        )
    meta.create_all(engine)
    care, assigned = children
    rows, care_rows, assigned_rows = [], [], []
    for i in range(patients):
        pid = f"p{i}"
        hospital = HOSPITALS[i % len(HOSPITALS)]
        rows.append(
            {"id": pid, "hospital_id": hospital, "sealed": rng.random() < 0.03, "emergency": rng.random() < 0.01}
        )
        team = rng.sample(STAFF, 3)
        care_rows.extend({"patient_id": pid, "member": s} for s in team)
        assigned_rows.append({"patient_id": pid, "member": team[0]})
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
        conn.execute(care.insert(), care_rows)
        conn.execute(assigned.insert(), assigned_rows)
        conn.exec_driver_sql("ANALYZE")
    return engine, table, care, assigned


def cases() -> list[tuple[str, Principal, str, str]]:
    """(who, principal, resource kind, action): the patient list (a chart may be opened), and the
    ER's hospital-wide lookup (a patient may be named)."""
    return [
        ("nurse, patient list", Principal("s1", ["nurse"], {"hospital_ids": ["h1"]}), "patient_record", "view"),
        (
            "physician, patient list",
            Principal("s21", ["physician"], {"hospital_ids": ["h1"]}),
            "patient_record",
            "view",
        ),
        ("patient, own record", Principal("p12345", ["patient"], {"patient_id": "p12345"}), "patient_record", "view"),
        (
            "ER physician, hospital-wide lookup",
            Principal("s41", ["er_physician"], {"hospital_ids": ["h1", "h2"]}),
            "patient_identity",
            "search_identity",
        ),
    ]


def via_plan(
    engine: Engine, db: Any, table: Table, care: Table, assigned: Table, who: Principal, kind: str, action: str
) -> set[str]:
    plan = engine.plan(who, kind, [action])
    plan_filter: dict[str, Any] = {"kind": plan.kind}
    if plan.condition is not None:
        from authz.query_plan import render_node

        plan_filter["condition"] = render_node(plan.condition)
    mapping = {
        "request.resource.id": table.c.id,
        "request.resource.attr.patient_id": table.c.id,
        "request.resource.attr.hospital_id": table.c.hospital_id,
        **(
            {"request.resource.attr.sealed": table.c.sealed, "request.resource.attr.emergency": table.c.emergency}
            if kind == "patient_record"
            else {}
        ),
        "request.resource.attr.care_team": ListColumn(care.c.member, care.c.patient_id, table.c.id),
        "request.resource.attr.assigned_physicians": ListColumn(assigned.c.member, assigned.c.patient_id, table.c.id),
    }
    where = filter_to_sql(plan_filter, mapping)  # type: ignore[arg-type]
    with db.connect() as conn:
        return {r[0] for r in conn.execute(select(table.c.id).where(where))}


def via_checks(
    engine: Engine, db: Any, table: Table, care: Table, assigned: Table, who: Principal, kind: str, action: str
) -> set[str]:
    teams: dict[str, list[str]] = {}
    heads: dict[str, list[str]] = {}
    with db.connect() as conn:
        for pid, member in conn.execute(select(care.c.patient_id, care.c.member)):
            teams.setdefault(pid, []).append(member)
        for pid, member in conn.execute(select(assigned.c.patient_id, assigned.c.member)):
            heads.setdefault(pid, []).append(member)
        patients = conn.execute(select(table.c.id, table.c.hospital_id, table.c.sealed, table.c.emergency)).all()
    out = set()
    for pid, hospital, sealed, emergency in patients:
        attrs = {
            "patient_id": pid,
            "hospital_id": hospital,
            "care_team": teams.get(pid, []),
            "assigned_physicians": heads.get(pid, []),
        }
        if kind == "patient_record":
            attrs.update(sealed=bool(sealed), emergency=bool(emergency))
        decision = engine.check(CheckInput(who, Resource(kind, pid, attrs), [action]))
        if decision.actions[action].effect == "EFFECT_ALLOW":
            out.add(pid)
    return out


def fastest(fn: Callable[[], set[str]], rounds: int) -> tuple[float, set[str]]:
    best, result = float("inf"), set()
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        db, table, care, assigned = build(Path(tmp) / "bench.db", args.patients)
        built = time.perf_counter() - start
        engine = Engine.from_directory(ROOT / "policies")
        lines = [
            f"## Query plan: permitted patients among {args.patients:,} ({time.strftime('%Y-%m-%d')}, "
            f"Python {platform.python_version()}, SQLite)",
            "",
            f"Table built in {built:.1f} s. Fastest of {args.rounds} rounds for the plan path, of 1 for the "
            "per-patient checks (the same answer required).",
            "",
            "| principal | permitted | plan + SQL | checking each patient | ratio |",
            "|---|---|---|---|---|",
        ]
        for name, who, kind, action in cases():
            planned, rows = fastest(
                lambda who=who, kind=kind, action=action: via_plan(
                    engine, db, table, care, assigned, who, kind, action
                ),
                args.rounds,
            )
            checked, expected = fastest(
                lambda who=who, kind=kind, action=action: via_checks(
                    engine, db, table, care, assigned, who, kind, action
                ),
                1,
            )
            assert rows == expected, f"{name}: the plan selects {len(rows)} patients, the checks allow {len(expected)}"
            lines.append(
                f"| {name} | {len(rows):,} | {planned * 1000:.1f} ms | {checked * 1000:,.0f} ms | "
                f"{checked / planned:,.0f}x faster |"
            )
    publish(lines, args.write)


if __name__ == "__main__":
    main()
