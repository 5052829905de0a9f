"""Decisions per second: our engine in-process and as ``ccc-authz check``, against a Cerbos 0.55
PDP over HTTP from Python (httpx, keep-alive), all on the same requests in the same run.

    .venv/bin/python bench/bench_engine.py [--requests 20000] [--workload clinic,ward] [--write]

Two workloads:

- ``clinic``: the differential suite's randomised requests (1-4 resources of mixed kinds, 1-3
  actions each, attributes of every type, outputs) on ``tests/authz/policysets/clinic``;
- ``ward``: the workstation's own decisions on ``policies/``: a demo-hospital user opening a
  patient record (one resource, the record's seven actions), users and patients drawn from the
  seeded demo database.

Figures are ratios against the Cerbos HTTP path measured in the same run, because absolute numbers
say more about the machine than about the engine. Every path is warmed with the same first 200
requests before it is timed, and runs ``--rounds`` times; its fastest run counts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import publish  # noqa: E402

from authz import Engine, api, evaluate, native  # noqa: E402
from authz.cli import default_processes  # noqa: E402
from tests.authz.differential import random_requests  # noqa: E402
from tests.support.cerbos_pdp import CerbosPDP  # noqa: E402

WARM_UP = 200
RECORD_ACTIONS = ["view", "view_phi", "view_history", "edit_clinical_notes", "export", "break_glass", "delegate_access"]


@dataclass
class Workload:
    name: str
    policies: Path
    bodies: list[dict[str, Any]]
    describe: str


def clinic_workload(count: int) -> Workload:
    return Workload(
        "clinic",
        ROOT / "tests/authz/policysets/clinic",
        random_requests("clinic", count, seed=7),
        "randomised requests of 1-4 resources, policy set tests/authz/policysets/clinic",
    )


def ward_workload(count: int) -> Workload:
    """Users of the seeded demo hospital opening patient records (the app's RECORD_ACTIONS and
    ``view``, ``view_phi``), with the attributes the workstation sends."""
    from app.services import resources as app_resources
    from app.services.store import Store
    from app.services.users import DemoUserDirectory, SignedInUser

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "ccc.db")
        users = DemoUserDirectory(store)
        staff = sorted(store.staff_ids())
        principals = []
        for sid in staff:
            user = users.refresh(SignedInUser(sid, "", (), {}))
            principals.append({"id": user.id, "roles": list(user.roles), "attr": user.attributes})
        resources = []
        for patient in store.patients():
            record = app_resources.patient_record(patient)
            resources.append({"kind": record.kind, "id": record.id, "attr": record.attr})
        store.close()
    rng = random.Random(7)
    bodies = [
        {
            "requestId": f"ward-{i}",
            "principal": rng.choice(principals),
            "resources": [{"actions": RECORD_ACTIONS, "resource": rng.choice(resources)}],
        }
        for i in range(count)
    ]
    return Workload(
        "ward",
        ROOT / "policies",
        json.loads(json.dumps(bodies)),
        f"{len(principals)} demo users x {len(resources)} patient records, one record per request, "
        f"{len(RECORD_ACTIONS)} actions, policy set policies/",
    )


def decisions(body: dict) -> int:
    return sum(len(r["actions"]) for r in body["resources"])


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_each(fn: Callable[[Any], Any], items: list[Any]) -> tuple[list[float], float]:
    for item in items[:WARM_UP]:
        fn(item)
    latencies = []
    clock = time.perf_counter
    start = clock()
    for item in items:
        t0 = clock()
        fn(item)
        latencies.append(clock() - t0)
    return latencies, clock() - start


Timing = tuple[list[float] | None, float]  # per-item latencies (when measured), total seconds


def best_round(rounds: int, measure: Callable[[], Timing]) -> Timing:
    """The fastest of ``rounds`` runs: every path gets the same number of tries, so a noisy
    neighbour on the machine penalises none of them more than the others."""
    return min((measure() for _ in range(rounds)), key=lambda result: result[1])


# ``ccc-authz check`` runs as installed, with its modules' bytecode cached (pip and the Debian package
# compile it at install): not compiled again at every start because the calling environment sets
# PYTHONDONTWRITEBYTECODE (this machine's does: 0.17 s of a 1.8 s run). The cache is kept out of
# the tree; the first run of each path, a warm-up, fills it.
CLI_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
CLI_ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "ccc-bench-pycache")


def bench_cli(policies: Path, bodies: list[dict], workers: int | None = None) -> float:
    """``ccc-authz check`` over the requests as a file, start to end (``workers``: its default)."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for body in bodies:
            f.write(json.dumps(body) + "\n")
        path = f.name
    start = time.perf_counter()
    with open(path) as stdin:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "authz.cli",
                "check",
                "--policies",
                str(policies),
                *(["--workers", str(workers)] if workers else []),
            ],
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            check=True,
            cwd=ROOT,
            env=CLI_ENV,
        )
    return time.perf_counter() - start


def load_ms(policies: Path) -> float:
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        Engine.from_directory(policies)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def python_api(engine: Engine) -> Callable[[tuple[str, list, bool]], None]:
    """The engine as the workstation calls it: CheckInputs in, CheckOutputs out (no JSON)."""

    def check(parsed: tuple[str, list, bool]) -> None:
        shared: dict = {}
        when = engine.params.now()
        for inp in parsed[1]:
            engine.check(inp, when, shared, parsed[2])

    return check


def single_resource_bodies(bodies: list[dict]) -> list[dict]:
    return [{**body, "resources": [entry]} for body in bodies for entry in body["resources"]]


def run(workload: Workload, rounds: int) -> list[str]:
    bodies = workload.bodies
    total = sum(decisions(b) for b in bodies)
    load = load_ms(workload.policies)
    parsed = [api.parse_check_request(b) for b in bodies]
    singles = single_resource_bodies(bodies)
    # The benchmark holds all its requests in memory (a server or `ccc-authz check` streams
    # them): keep them out of the garbage collector's full passes, which would otherwise walk
    # hundreds of thousands of request objects and be charged to whichever path runs then.
    gc.collect()
    gc.freeze()

    # Each round of a path gets a fresh engine: plans are built as requests arrive, as in a
    # real process.
    def fresh() -> Engine:
        return Engine.from_directory(workload.policies)

    json_lat, json_s = best_round(rounds, lambda: time_each(fresh().check_request, bodies))
    api_lat, api_s = best_round(rounds, lambda: time_each(python_api(fresh()), parsed))
    single_lat, _ = best_round(rounds, lambda: time_each(fresh().check_request, singles))
    bench_cli(workload.policies, bodies[:WARM_UP], workers=1)  # bytecode cached, as installed
    _, cli_s = best_round(rounds, lambda: (None, bench_cli(workload.policies, bodies)))
    _, cli1_s = best_round(rounds, lambda: (None, bench_cli(workload.policies, bodies, workers=1)))
    with CerbosPDP(workload.policies) as pdp:
        http_lat, http_s = best_round(rounds, lambda: time_each(pdp.check, bodies))
    gc.unfreeze()

    rows = [
        ("Cerbos 0.55 PDP over HTTP (httpx)", http_s, http_lat),
        (f"ccc-authz check (whole process; as it runs by default here: {default_processes()} processes)", cli_s, None),
        ("ccc-authz check --workers 1 (whole process, one process)", cli1_s, None),
        ("Engine in-process, Cerbos JSON in and out (`check_request`)", json_s, json_lat),
        ("Engine in-process, Python API (`CheckInput` in, `CheckOutput` out)", api_s, api_lat),
    ]
    lines = [
        f"## {time.strftime('%Y-%m-%d')} — {workload.name}: {len(bodies)} requests, {total} decisions",
        "",
        f"Workload: {workload.describe}. Machine: {platform.machine()}, Python {platform.python_version()}; "
        f"engine: {'compiled (scripts/build-native)' if native.is_compiled(evaluate) else 'Python sources'}; "
        f"load and compile of the policy set {load:.0f} ms (median of 5).",
        "",
        "| path | decisions/s | vs Cerbos HTTP | p50 per request | p99 per request |",
        "|---|---|---|---|---|",
    ]
    for name, seconds, lat in rows:
        rate = total / seconds
        p50 = f"{statistics.median(lat) * 1e6:.0f} µs" if lat else "—"
        p99 = f"{percentile(lat, 0.99) * 1e6:.0f} µs" if lat else "—"
        lines.append(f"| {name} | {rate:,.0f} | {rate / (total / http_s):.1f}x | {p50} | {p99} |")
    lines += [
        "",
        f"Single-resource requests ({len(singles)}, each resource of the requests above on its own, "
        f"`check_request`, fresh engine): p50 {statistics.median(single_lat) * 1e6:.0f} µs, "
        f"p99 {percentile(single_lat, 0.99) * 1e6:.0f} µs.",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--workload", default="clinic,ward", help="comma-separated: clinic, ward")
    parser.add_argument("--rounds", type=int, default=3, help="runs per path; the fastest counts")
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args()
    makers = {"clinic": clinic_workload, "ward": ward_workload}
    lines: list[str] = []
    for name in args.workload.split(","):
        lines += run(makers[name](args.requests), args.rounds)
    lines.append(
        f"Command: `.venv/bin/python bench/bench_engine.py --requests {args.requests} "
        f"--workload {args.workload} --rounds {args.rounds}` (each path: the fastest of "
        f"{args.rounds} runs, each after the same {WARM_UP}-request warm-up)"
    )
    publish(lines, args.write)


if __name__ == "__main__":
    main()
