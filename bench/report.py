"""Printing a benchmark's figures and, when asked, appending them to bench/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def publish(lines: list[str], write: bool) -> None:
    report = "\n".join(lines)
    print(report)
    if write:
        with RESULTS.open("a") as f:
            f.write("\n" + report + "\n")
