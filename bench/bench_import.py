"""Importing transmissions (issue 18, part 4), and what generating the demo through the importer
costs a first start, in the same run.

- demo: ``demo_data.generate()`` (40 patients x 30 daily transmissions, each written as an HL7 v2
  or FHIR message and read back by the importer's reader and mapping), of which the reading (parse
  and map the 1,200 messages) alone; against the rest of a first start measured in the same
  rounds: seeding a new store with that data, and hashing the demo passwords (scrypt, as
  ``DemoUserDirectory`` does on all cores); and the generator as it was before it went through
  messages (``demo_data.py`` of a20d2a1^, from git: the same rows, computed directly).
- import: ``TransmissionImport.import_file`` of 30 days of one patient as one HL7 v2 file (30
  messages) and as 30 FHIR bundles (one file each), on a copy of the demo store, with the real
  policies and a real (fsync'd) audit log: per message, everything included (read, match,
  decide, audit, commit).

Rounds alternate the workloads so a shared machine's other jobs weigh on all alike; medians.

    .venv/bin/python bench/bench_import.py [--rounds 5] [--write]
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.services import demo_data  # noqa: E402
from app.services.idco import read_transmissions  # noqa: E402
from app.services.store import Store  # noqa: E402
from app.services.transmission_import import DEFAULT_ACCOUNT, TransmissionImport, service_account  # noqa: E402
from app.services.users import DemoUserDirectory  # noqa: E402
from app.services.workstation import Workstation  # noqa: E402


def ms(seconds: float) -> float:
    return seconds * 1000


BEFORE = "a20d2a1^"  # the commit before the demo went through the importer


def generator_before(tmp: Path):  # noqa: ANN201
    """The demo generator of BEFORE, loaded from git (it imports only the standard library)."""
    source = subprocess.run(
        ["git", "show", f"{BEFORE}:app/services/demo_data.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    path = tmp / "demo_data_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("demo_data_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_data_before"] = module
    spec.loader.exec_module(module)
    return module


def demo_round(tmp: Path, n: int, before) -> dict[str, float]:  # noqa: ANN001
    tb = time.perf_counter()
    before.generate()
    t0 = time.perf_counter()
    demo = demo_data.generate()
    t1 = time.perf_counter()
    for name, text in demo.messages:
        read_transmissions(text, name)
    t2 = time.perf_counter()
    store = Store(tmp / f"seed{n}" / "ccc.db", demo)
    t3 = time.perf_counter()
    DemoUserDirectory(store)
    t4 = time.perf_counter()
    store.close()
    return {
        "before": ms(t0 - tb),
        "generate": ms(t1 - t0),
        "read": ms(t2 - t1),
        "seed": ms(t3 - t2),
        "passwords": ms(t4 - t3),
    }


def import_round(template: Path, tmp: Path, n: int, files: dict[str, list[Path]]) -> dict[str, float]:
    out = {}
    for kind, paths in files.items():
        data = tmp / f"import{n}-{kind}"
        shutil.copytree(template, data)
        ws = Workstation(data)
        importer = TransmissionImport(ws.store, ws.access, ws.audit)
        gateway = service_account(ws.store, DEFAULT_ACCOUNT)
        assert gateway is not None
        t0 = time.perf_counter()
        added = sum(importer.import_file(gateway, p).added for p in paths)
        out[kind] = ms(time.perf_counter() - t0) / 30  # per message
        assert added == 30 * 9, added
        ws.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as name:
        tmp = Path(name)
        template = tmp / "template"
        store = Store(template / "ccc.db")
        DemoUserDirectory(store)
        store.close()
        later = demo_data.generate(today=datetime.now(UTC).date() + timedelta(days=60))  # new times, same devices
        files: dict[str, list[Path]] = {"hl7v2": [], "fhir": []}
        (tmp / "in").mkdir()
        hl7 = tmp / "in" / "p01-30-days.hl7"
        hl7.write_text("".join(text for n, text in later.messages if n.startswith("p01-")))
        files["hl7v2"].append(hl7)
        for n, text in later.messages:
            if n.startswith("p21-"):
                (tmp / "in" / n).write_text(text)
                files["fhir"].append(tmp / "in" / n)
        before = generator_before(tmp)
        assert before.generate().transmissions == demo_data.generate().transmissions  # the same rows
        demo, imports = [], []
        for n in range(args.rounds):
            demo.append(demo_round(tmp, n, before))
            imports.append(import_round(template, tmp, n, files))
    med = {k: statistics.median(r[k] for r in demo) for k in demo[0]}
    imp = {k: statistics.median(r[k] for r in imports) for k in imports[0]}
    first_start = med["generate"] + med["seed"] + med["passwords"]
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d} — importing transmissions; the demo generated through the importer "
        "(issue 18, part 4)",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}; {args.rounds} rounds, medians.",
        "",
        "| workload | median | share |",
        "|---|---|---|",
        f"| demo `generate()`: 1,200 messages written and read back | {med['generate']:.0f} ms | "
        f"{med['generate'] / first_start:.0%} of a first start's store work |",
        f"| the generator before (same rows, no messages; reference) | {med['before']:.0f} ms | "
        f"through the importer: +{med['generate'] - med['before']:.0f} ms, {med['generate'] / med['before']:.2f}x |",
        f"| of which reading (parse and map the 1,200 messages) | {med['read']:.0f} ms | "
        f"{med['read'] / 1200 * 1000:.0f} µs a message |",
        f"| seeding a new store with it (reference) | {med['seed']:.0f} ms | "
        f"generate = {med['generate'] / med['seed']:.2f}x the seeding |",
        f"| demo passwords, scrypt (reference) | {med['passwords']:.0f} ms | "
        f"generate = {med['generate'] / med['passwords']:.2f}x the hashing |",
        f"| `import_file`, one HL7 v2 file of 30 messages (9 readings each) | {imp['hl7v2']:.1f} ms a message | "
        "read, match, decide, audit (fsync), commit |",
        f"| `import_file`, 30 FHIR bundles, one file each | {imp['fhir']:.1f} ms a message | one transaction a file |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as results:
            results.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
