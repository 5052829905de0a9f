"""Decisions per second: our engine in-process and as ``ccc-authz check``, against a Cerbos 0.55
PDP over HTTP from Python (httpx, keep-alive), all on the same requests in the same run.

    .venv/bin/python bench/bench_engine.py [--requests 20000] [--policies DIR] [--write]

Figures are reported as ratios against the Cerbos HTTP path measured in the same run, because
absolute numbers say more about the machine than about the engine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import publish  # noqa: E402

from authz import Engine  # noqa: E402
from tests.authz.differential import random_requests  # noqa: E402
from tests.support.cerbos_pdp import CerbosPDP  # noqa: E402


def decisions(body: dict) -> int:
    return sum(len(r["actions"]) for r in body["resources"])


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_each(fn, bodies: list[dict]) -> tuple[list[float], float]:
    latencies = []
    start = time.perf_counter()
    for body in bodies:
        t0 = time.perf_counter()
        fn(body)
        latencies.append(time.perf_counter() - t0)
    return latencies, time.perf_counter() - start


def bench_cli(policies: Path, bodies: list[dict], workers: int = 1) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for body in bodies:
            f.write(json.dumps(body) + "\n")
        path = f.name
    start = time.perf_counter()
    with open(path) as stdin:
        subprocess.run([sys.executable, "-m", "authz.cli", "check", "--policies", str(policies),
                        "--workers", str(workers)],
                       stdin=stdin, stdout=subprocess.DEVNULL, check=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--policies", default=str(ROOT / "tests/authz/policysets/clinic"))
    parser.add_argument("--set", default="clinic", help="request vocabulary (tests/authz/differential.py)")
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args()
    policies = Path(args.policies)
    bodies = random_requests(args.set, args.requests, seed=7)
    total = sum(decisions(b) for b in bodies)

    t0 = time.perf_counter()
    engine = Engine.from_directory(policies)
    load_ms = (time.perf_counter() - t0) * 1000
    engine_lat, engine_s = time_each(engine.check_request, bodies)
    cli_s = bench_cli(policies, bodies)
    cli2_s = bench_cli(policies, bodies, workers=2)
    with CerbosPDP(policies) as pdp:
        for body in bodies[:200]:
            pdp.check(body)  # warm up connection and caches
        http_lat, http_s = time_each(pdp.check, bodies)

    rows = [
        ("Cerbos 0.55 PDP over HTTP (httpx)", http_s, http_lat),
        ("ccc-authz check (whole process)", cli_s, None),
        ("ccc-authz check --workers 2 (whole process)", cli2_s, None),
        ("Engine in-process", engine_s, engine_lat),
    ]
    lines = [
        f"## {time.strftime('%Y-%m-%d')} — {args.requests} requests, {total} decisions, policies {policies.name}",
        "",
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}; "
        f"policy load and compile {load_ms:.0f} ms.",
        "",
        "| path | decisions/s | vs Cerbos HTTP | p50 per request | p99 per request |",
        "|---|---|---|---|---|",
    ]
    for name, seconds, lat in rows:
        rate = total / seconds
        ratio = rate / (total / http_s)
        p50 = f"{statistics.median(lat) * 1e6:.0f} µs" if lat else "—"
        p99 = f"{percentile(lat, 0.99) * 1e6:.0f} µs" if lat else "—"
        lines.append(f"| {name} | {rate:,.0f} | {ratio:.1f}x | {p50} | {p99} |")
    lines.append("")
    lines.append(f"Command: `.venv/bin/python bench/bench_engine.py --requests {args.requests}`")
    publish(lines, args.write)


if __name__ == "__main__":
    main()
