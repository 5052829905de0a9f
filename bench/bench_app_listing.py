"""The app's own lists among 200,000 patients, through its services and its store: the patient list
(``PatientService.rows``), the ER's hospital-wide lookup (``PatientService.find_identities``, by
partial MRN and by name and date of birth), each through the query plan as the app runs it, against
the same service checking each patient (the row-by-row path it falls back to when a plan cannot be
a query), in the same run.

    .venv/bin/python bench/bench_app_listing.py [--patients 200000] [--rounds 5] [--write]

The store is the app's (``Store``, every migration: the care-team and physician tables with their
indexes, kept by the store's triggers), seeded with generated patients of 20 hospitals, 3 of 4,000
staff on each care team, the first of them the assigned physician. What a service call costs
includes planning (the engine's partial evaluation), the SQL, reading the rows into ``Patient``
and, for the list, each row's alert summary and last transmission (none here: the list's own cost).
Each path's fastest round counts; the plan path's answer must be the checked path's.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import publish  # noqa: E402

from app.services.access import AccessService  # noqa: E402
from app.services.audit_trail import AuditTrail  # noqa: E402
from app.services.demo_data import DemoHospital  # noqa: E402
from app.services.patients import PatientService  # noqa: E402
from app.services.store import Store  # noqa: E402
from app.services.users import SignedInUser  # noqa: E402
from authz import Engine  # noqa: E402
from authz.audit import AuditChain  # noqa: E402
from authz.query_plan import PlanError  # noqa: E402

HOSPITALS = [f"h{i}" for i in range(20)]
STAFF = [f"s{i}" for i in range(4000)]
FIRST = ["Ada", "Ben", "Cleo", "Dara", "Emil", "Fay", "Gus", "Hana", "Ivo", "Jon"]
LAST = ["Brenner", "Okafor", "Rahman", "Moro", "Tamm", "Quist", "Sato", "Holt", "Lund", "Vega"]


def demo(patients: int, seed: int = 7) -> DemoHospital:
    rng = random.Random(seed)
    hospital = DemoHospital(hospitals=[{"id": h, "name": h} for h in HOSPITALS])
    for i in range(patients):
        team = rng.sample(STAFF, 3)
        hospital.patients.append(
            {
                "id": f"p{i:06d}",
                "mrn": f"MRN-{HOSPITALS[i % 20].upper()}-{100000 + i}",
                "name": f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                "birth_date": f"{rng.randint(1936, 1990)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "sex": rng.choice(["female", "male"]),
                "hospital_id": HOSPITALS[i % 20],
                "room": "",
                "bed": "",
                "care_team": team,
                "assigned_physicians": team[:1],
                "sealed": rng.random() < 0.03,
                "emergency": rng.random() < 0.01,
                "consent_export": False,
            }
        )
    return hospital


def timed(fn: Callable[[], list[str]], rounds: int) -> tuple[float, float, list[str]]:
    """(the first round's time, the fastest round's, the answer)."""
    times, result = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times[0], min(times), result


class RowByRow(AccessService):
    """The same access service, with no plan: every list is checked patient by patient."""

    def plan_filter(self, user: SignedInUser, kind: str, action: str) -> dict[str, Any]:
        raise PlanError("benchmark reference: checking row by row")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)  # the row-by-row reference says so at each call
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        store = Store(Path(tmp) / "data" / "ccc.db", demo(args.patients))
        built = time.perf_counter() - start
        engine = Engine.from_directory(ROOT / "policies")
        now = datetime.now(UTC)
        audit = AuditTrail(AuditChain(Path(tmp) / "data" / "audit.db", workstation_id="bench"))
        planned = PatientService(store, AccessService(lambda: engine, clock=lambda: now), audit, clock=lambda: now)
        checked = PatientService(store, RowByRow(lambda: engine, clock=lambda: now), audit, clock=lambda: now)
        own = f"p{args.patients // 2:06d}"
        someone = store.patient(f"p{args.patients // 2 // 20 * 20 + 1:06d}")  # a patient of h1
        assert someone is not None
        cases: list[tuple[str, SignedInUser, Callable[[PatientService, SignedInUser], list[str]]]] = [
            (
                "nurse, patient list",
                SignedInUser("s1", "Nurse", ("nurse",), {"hospital_ids": ["h1"]}),
                lambda s, u: [r.patient.id for r in s.rows(u)],
            ),
            (
                "physician, patient list",
                SignedInUser("s21", "Physician", ("physician",), {"hospital_ids": ["h1"]}),
                lambda s, u: [r.patient.id for r in s.rows(u)],
            ),
            (
                "patient, own record",
                SignedInUser(own, "Patient", ("patient",), {"patient_id": own}),
                lambda s, u: [r.patient.id for r in s.rows(u)],
            ),
            (
                "ER physician, lookup by partial MRN",
                SignedInUser("s41", "ER", ("er_physician",), {"hospital_ids": ["h1", "h2"]}),
                lambda s, u: [i.patient_id for i in s.find_identities(u, "H1-1123").matches],
            ),
            (
                "ER physician, lookup by name and date of birth",
                SignedInUser("s41", "ER", ("er_physician",), {"hospital_ids": ["h1", "h2"]}),
                lambda s, u: [
                    i.patient_id for i in s.find_identities(u, f"{someone.name} {someone.birth_date}").matches
                ],
            ),
        ]
        lines = [
            f"## The app's lists among {args.patients:,} patients, through its services "
            f"({time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, SQLite)",
            "",
            f"The app's store (every migration) seeded in {built:.1f} s. Fastest of {args.rounds} rounds through "
            "the plan (the first call, which also translates the filter to SQL, in brackets); the reference is "
            "the same service with no plan, checking row by row (its fallback: every patient for a list, the "
            "candidates the typed date of birth or MRN digits select for a lookup), in the same run, and must "
            "give the same answer.",
            "",
            "| user, list | shown | through the plan (first call) | checking row by row | ratio |",
            "|---|---|---|---|---|",
        ]
        for name, who, listing in cases:
            first, plan_time, rows = timed(lambda who=who, listing=listing: listing(planned, who), args.rounds)
            _, check_time, expected = timed(lambda who=who, listing=listing: listing(checked, who), 1)
            assert rows == expected, f"{name}: the plan shows {len(rows)} patients, the checks {len(expected)}"
            lines.append(
                f"| {name} | {len(rows):,} | {plan_time * 1000:.1f} ms ({first * 1000:.1f} ms) | "
                f"{check_time * 1000:,.0f} ms | {check_time / plan_time:,.0f}x faster |"
            )
            print(lines[-1], flush=True)
    publish(lines, args.write)


if __name__ == "__main__":
    main()
