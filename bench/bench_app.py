"""Workstation figures, each beside a reference measured in the same run:

- cold start to an interactive patient list (a new process: Qt, the policies compiled, the demo
  database opened or created, a physician signed in, the list rendered) against a bare Qt window
  started the same way;
- opening a record with 30 days of telemetry (the audited decision, the data, the charts
  rendered) against reading the same telemetry rows from SQLite;
- a list of 500 patients filtered by policy against the same list built with no decisions.

    .venv/bin/python bench/bench_app.py [--write]

Qt runs offscreen (QT_QPA_PLATFORM=offscreen) so the figures do not depend on a display server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import publish  # noqa: E402

BARE_QT = """
import time; t0 = time.perf_counter()
from PySide6.QtWidgets import QApplication, QMainWindow, QTableWidget
app = QApplication([]); w = QMainWindow(); w.setCentralWidget(QTableWidget(14, 5)); w.show(); app.processEvents()
print(time.perf_counter() - t0)
"""

WORKSTATION = """
import sys, time; t0 = time.perf_counter()
from pathlib import Path
from PySide6.QtWidgets import QApplication
from app.services.users import DEMO_PASSWORD
from app.services.workstation import Workstation
from app.viewmodels.app_vm import ViewModels
from app.views.main_window import MainWindow
app = QApplication([])
vms = ViewModels.build(Workstation(Path(sys.argv[1])))
w = MainWindow(vms); w.show()
assert vms.session.sign_in("dr_aly", DEMO_PASSWORD) and w.patients.table.rowCount() > 0
app.processEvents()
print(time.perf_counter() - t0)
"""


def process_seconds(script: str, *args: str) -> float:
    """Wall time of a new process from its start to the script's last line (interpreter start included)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip()
    return time.perf_counter() - t0


def cold_start(tmp: Path, runs: int) -> tuple[list[float], list[float], list[float]]:
    first, warm, bare = [], [], []
    for i in range(runs):
        data = tmp / f"cold-{i}"
        first.append(process_seconds(WORKSTATION, str(data)))  # creates the demo database
        warm.append(process_seconds(WORKSTATION, str(data)))
        bare.append(process_seconds(BARE_QT))
    return first, warm, bare


def record_open(tmp: Path, runs: int) -> tuple[list[float], list[float]]:
    from PySide6.QtWidgets import QApplication

    from app.services.users import DEMO_PASSWORD
    from app.services.workstation import Workstation
    from app.viewmodels.app_vm import ViewModels
    from app.views.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    ws = Workstation(tmp / "record")
    vms = ViewModels.build(ws)
    window = MainWindow(vms)
    window.show()
    vms.session.sign_in("dr_aly", DEMO_PASSWORD)
    ids = [r.patient.id for r in vms.patients.rows]
    opened, reference = [], []
    for i in range(runs):
        pid = ids[i % len(ids)]
        t0 = time.perf_counter()
        vms.record.open(pid)
        app.processEvents()
        opened.append(time.perf_counter() - t0)
        assert vms.record.record is not None and len(vms.record.record.view.series[0].points) == 30
        t0 = time.perf_counter()
        ws.store.transmissions(pid)
        reference.append(time.perf_counter() - t0)
    return opened, reference


def big_list(tmp: Path, runs: int) -> tuple[list[float], list[float], int, int]:
    from app.services.demo_data import generate
    from app.services.patients import PatientRow
    from app.services.store import Store
    from app.services.users import DEMO_PASSWORD
    from app.services.workstation import Workstation

    Store(tmp / "big" / "ccc.db", generate(patients_per_hospital=250))
    ws = Workstation(tmp / "big")
    user = ws.session.sign_in("dr_visiting", DEMO_PASSWORD)
    total = len(ws.store.patients())
    filtered, unfiltered = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = ws.patients.rows(user)
        filtered.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        [PatientRow(p, ws.store.alerts(p.id), ws.store.latest_transmission(p.id)) for p in ws.store.patients()]
        unfiltered.append(time.perf_counter() - t0)
    return filtered, unfiltered, total, len(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    med = statistics.median
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        first, warm, bare = cold_start(tmp, args.runs)
        opened, rows_only = record_open(tmp, 40)
        filtered, unfiltered, total, shown = big_list(tmp, 20)
    ms = lambda s: f"{s * 1000:.0f} ms" if s >= 0.01 else f"{s * 1000:.1f} ms"  # noqa: E731
    lines = [
        f"## {time.strftime('%Y-%m-%d')} — workstation (Qt offscreen, {os.cpu_count()} cores)",
        "",
        "| figure | median | reference in the same run | ratio | target |",
        "|---|---|---|---|---|",
        f"| cold start to an interactive patient list, first run (creates the demo database) | {ms(med(first))} "
        f"| bare Qt window {ms(med(bare))} | {med(first) / med(bare):.1f}x | ≤ 2 s |",
        f"| cold start to an interactive patient list, later runs | {ms(med(warm))} | bare Qt window "
        f"{ms(med(bare))} | {med(warm) / med(bare):.1f}x | ≤ 2 s |",
        f"| open a record with 30 days of telemetry (audited decision, data, charts rendered) | "
        f"{ms(med(opened))} | its telemetry rows from SQLite {ms(med(rows_only))} | "
        f"{med(opened) / med(rows_only):.0f}x | ≤ 300 ms |",
        f"| list of {total} patients filtered by policy ({shown} shown to a physician of both hospitals) | "
        f"{ms(med(filtered))} | the same list with no decisions {ms(med(unfiltered))} | "
        f"{med(filtered) / med(unfiltered):.1f}x | ≤ 100 ms |",
        "",
        "Command: `.venv/bin/python bench/bench_app.py`",
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
