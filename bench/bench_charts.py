"""Telemetry charts and alert rules (issue 18, parts 2 and 3), each beside a reference measured in
the same run:

- a chart drawn by Qt Charts (app/views/telemetry_chart.py) against the hand-painted QPainter
  chart it replaced (read from git at REFERENCE), on the same 30 and 365 days of readings: built
  and painted once, then redrawn (a grab of the plot), alternating, medians;
- the alert rules (app/resources/alert_rules.yaml) over one patient's transmissions against reading
  those transmissions from SQLite.

    .venv/bin/python bench/bench_charts.py [--write]

Qt runs offscreen (QT_QPA_PLATFORM=offscreen) so the figures do not depend on a display server.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import publish  # noqa: E402

REFERENCE = "cfbb0ce"  # the last commit whose chart was painted by hand


def hand_painted_chart() -> type:
    """The QPainter chart of REFERENCE, loaded as a module of its own."""
    show = ["git", "show", f"{REFERENCE}:app/views/telemetry_chart.py"]
    source = subprocess.run(show, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "telemetry_chart_painted.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("telemetry_chart_painted", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TelemetryChart


def median_seconds(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    from app.services.alerts import AlertRules, evaluate
    from app.services.patients import Series
    from app.services.store import Store
    from app.views.telemetry_chart import TelemetryChart

    app = QApplication.instance() or QApplication([])
    painted = hand_painted_chart()
    rows = ["| figure | Qt Charts | hand-painted (reference) | ratio |", "|---|---|---|---|"]
    for days in (30, 365):
        start = datetime(2026, 1, 1, tzinfo=UTC)
        points = [
            ((start + timedelta(days=i)).isoformat(), 500 + (i % 7) * 40.0 + 1800 * (i % 50 == 0)) for i in range(days)
        ]
        series = Series("MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE", "RV lead impedance", "Ohm", 200, 2000, points)
        built: dict[str, list[float]] = {"qt": [], "painted": []}
        redrawn: dict[str, list[float]] = {"qt": [], "painted": []}
        for _ in range(5):  # alternating, so both meet the same load
            for name, kind in (("qt", TelemetryChart), ("painted", painted)):
                began = time.perf_counter()
                chart = kind(series)
                chart.resize(600, 230)
                chart.grab()
                built[name].append(time.perf_counter() - began)
                redrawn[name].append(median_seconds(chart.plot.grab, 10))
                chart.deleteLater()
                app.processEvents()
        for label, figures in ((f"{days} days: built and painted", built), (f"{days} days: redrawn", redrawn)):
            qt, ref = statistics.median(figures["qt"]), statistics.median(figures["painted"])
            rows.append(f"| {label} | {qt * 1000:.2f} ms | {ref * 1000:.2f} ms | {qt / ref:.2f}x |")

    with tempfile.TemporaryDirectory() as data:
        store = Store(Path(data) / "ccc.db")
        rules = AlertRules.load()
        patients = [p.id for p in store.patients()]
        read = median_seconds(lambda: [store.transmissions(p) for p in patients], 5)
        transmissions = {p: store.transmissions(p) for p in patients}
        rule_time = median_seconds(lambda: [evaluate(rules, p, transmissions[p]) for p in patients], 5)
        store.close()
    per = len(patients)
    alert_rows = [
        "| figure | alert rules | reading the transmissions (reference) | ratio |",
        "|---|---|---|---|",
        f"| {per} patients x 30 days x 9 series, all {len(rules.rules)} rules | {rule_time * 1000:.1f} ms "
        f"({rule_time / per * 1000:.2f} ms a patient) | {read * 1000:.1f} ms | {rule_time / read:.2f}x |",
    ]
    lines = [
        f"## {date.today().isoformat()} — telemetry charts by Qt Charts and the alert rules (issue 18, parts 2 and 3)",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, Qt offscreen; medians of 5 builds "
        "(each redraw a median of 10 grabs), the two charts alternating on the same readings.",
        "",
        *rows,
        "",
        *alert_rows,
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
