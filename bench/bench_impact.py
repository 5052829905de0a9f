"""Replay speed and peak memory of ``ccc-authz impact`` (issue 17, part 4): a two-policy-set
comparison over a file of recorded requests, measured as a whole process (start, compile of both
sides, read, replay, report), its memory as the peak of the sum of its processes' resident sizes.

    .venv/bin/python bench/bench_impact.py [--requests 1000000] [--workload clinic|ward|ward-repeats|all]
                                           [--workers 0] [--write]

Workloads: ``clinic`` (the differential suite's randomised requests of 1-4 resources on
tests/authz/policysets/clinic, against the five changes of tests/authz/test_impact_cerbos.py) and
``ward`` (the demo hospital's users opening patient records with the app's actions, policies/
against the story's update of tests/authz/test_impact_bundle.py; every request distinct) and
``ward-repeats`` (the same, the demo's few hundred distinct requests repeated as a ward repeats
them: outcomes reused). The request file is written first, streamed, so the bench itself stays
small too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import publish  # noqa: E402

from authz import native  # noqa: E402
from tests.authz.differential import random_requests  # noqa: E402
from tests.authz.test_impact_bundle import STORY_AFTER, STORY_BEFORE  # noqa: E402
from tests.authz.test_impact_cerbos import _changed_clinic  # noqa: E402

BATCH = 20_000


def clinic_file(path: Path, count: int) -> int:
    """Writes the requests; returns how many are distinct but for their requestId."""
    distinct = set()
    with path.open("w") as f:
        for seed, start in enumerate(range(0, count, BATCH), start=1):
            for body in random_requests("clinic", min(BATCH, count - start), seed=seed):
                line = json.dumps(body, separators=(",", ":"))
                f.write(line + "\n")
                body.pop("requestId")
                distinct.add(hash(json.dumps(body, separators=(",", ":"))))
    return len(distinct)


def ward_file(path: Path, count: int, repeats: bool) -> int:
    """Demo-hospital users opening patient records. Without ``repeats`` every request is distinct
    (each opening names its record by its own id: no outcome can be reused); with it, the 20
    users and 24 records of the demo make a few hundred distinct requests, as a ward repeats."""
    from bench_engine import RECORD_ACTIONS, ward_workload

    sample = ward_workload(2000).bodies
    principals = list({json.dumps(b["principal"], sort_keys=True): b["principal"] for b in sample}.values())
    records = list(
        {
            json.dumps(b["resources"][0]["resource"], sort_keys=True): b["resources"][0]["resource"] for b in sample
        }.values()
    )
    rng = random.Random(17)
    encoded_p = [json.dumps(p, separators=(",", ":")) for p in principals]
    encoded_r = [json.dumps({**r, "id": "@ID@"}, separators=(",", ":")) for r in records]
    actions = json.dumps(RECORD_ACTIONS, separators=(",", ":"))
    distinct = set()
    with path.open("w") as f:
        for i in range(count):
            p, r = rng.randrange(len(encoded_p)), rng.randrange(len(encoded_r))
            rid = f"{records[r]['id']}-{i}" if not repeats else records[r]["id"]
            distinct.add((p, r, rid))
            resource = encoded_r[r].replace('"@ID@"', json.dumps(rid))
            f.write(
                f'{{"requestId":"ward-{i}","principal":{encoded_p[p]},'
                f'"resources":[{{"actions":{actions},"resource":{resource}}}]}}\n'
            )
    return len(distinct)


def ward_sides(workdir: Path) -> tuple[Path, Path]:
    new = workdir / "ward-new"
    if new.exists():
        return ROOT / "policies", new
    shutil.copytree(ROOT / "policies", new)
    policy = new / "resources" / "patient_record.yaml"
    policy.write_text(policy.read_text().replace(STORY_BEFORE, STORY_AFTER))
    return ROOT / "policies", new


class PeakMemory:
    """Samples the proportional set size (PSS: pages shared by forked workers counted once, not
    in each) of a process and its children every 20 ms; keeps the peak sum."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(0.02):
            try:
                processes = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_full_info().pss for p in processes))
            except psutil.Error:
                pass

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak


def measure(old: Path, new: Path, requests: Path, workers: int) -> tuple[float, float, int, str]:
    command = [sys.executable, "-m", "authz.cli", "impact", str(old), str(new), "--requests", str(requests)]
    if workers:
        command += ["--workers", str(workers)]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    memory = PeakMemory(process.pid)
    out, err = process.communicate()
    seconds = time.perf_counter() - start
    peak = memory.stop()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if process.returncode not in (0, 5):
        raise SystemExit(f"impact failed ({process.returncode}): {err.decode()[-2000:]}")
    flips = next(line for line in out.decode().splitlines() if line.startswith("Flips:"))
    return seconds, cpu, peak, flips


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--workload", choices=["clinic", "ward", "ward-repeats", "all"], default="all")
    parser.add_argument("--workers", type=int, default=0, help="0: impact's default (the cores, up to 4)")
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args()
    compiled = not native.stale_modules() and bool(native.compiled_files("evaluate"))
    rows = []
    load = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-impact-") as tmp:
        workdir = Path(tmp)
        for name in ("clinic", "ward", "ward-repeats") if args.workload == "all" else (args.workload,):
            requests = workdir / f"{name}.jsonl"
            if name == "clinic":
                distinct = clinic_file(requests, args.requests)
                old, new = _changed_clinic(workdir)
            else:
                distinct = ward_file(requests, args.requests, repeats=name == "ward-repeats")
                old, new = ward_sides(workdir)
            size = requests.stat().st_size
            seconds, cpu, peak, flips = measure(old, new, requests, args.workers)
            cores = psutil.cpu_count() or 1
            rows.append(
                f"| {name} | {args.requests:,} ({size / 2**20:,.0f} MiB) | {distinct:,} | {seconds:.1f} s | "
                f"{args.requests / seconds:,.0f} | {args.requests / seconds * 60:,.0f} | {cpu:.1f} s | "
                f"{args.requests / cpu * cores:,.0f} | {peak / 2**20:,.0f} MiB | {flips.removeprefix('Flips: ')} |"
            )
            load = os.getloadavg()[0]
            print(rows[-1], flush=True)  # as each workload ends (the table follows at the end)
            requests.unlink()
    lines = [
        f"## {time.strftime('%Y-%m-%d')} — ccc-authz impact, {args.requests:,} requests, two policy sets",
        "",
        f"Machine: {platform.machine()}, {psutil.cpu_count()} cores, Python {platform.python_version()}; "
        f"engine {'compiled (scripts/build-native)' if compiled else 'from the Python sources'}; "
        f"workers {args.workers or 'default'}. Whole process: start, verify and compile both sides, stream, "
        "replay, report; memory the peak sum of the proportional set sizes (PSS) of the process and its workers.",
        "",
        "| workload | requests (file) | distinct but for requestId | wall time | requests/s | requests/min | "
        "CPU time (all processes) | "
        "requests/s if the cores were ours (requests / CPU time x cores) | peak memory | flips |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Load average at the end: {load:.1f} on {psutil.cpu_count()} cores (other work shared the machine).",
        "",
        f"Command: `.venv/bin/python bench/bench_impact.py --requests {args.requests} --workload {args.workload}"
        f"{f' --workers {args.workers}' if args.workers else ''}`",
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
