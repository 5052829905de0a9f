"""A transmission's readings as the store's telemetry rows, for the series the workstation keeps.

A reading of a kept series must be a number in that series' UCUM unit; anything else stops the
import with the place named (a value in the wrong unit is never charted as if it were right). A
reading of a series the workstation does not keep (device settings, other chambers, episode
details: an IDCO message carries many) is skipped and listed, never silently dropped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import MessageError, Reading, Transmission

# code -> (UCUM unit, normal low, normal high)
Series = Mapping[str, tuple[str, float, float]]


def store_rows(t: Transmission, patient_id: str, series: Series) -> tuple[list[dict[str, Any]], list[Reading]]:
    """The rows of the readings of kept series, and the readings skipped (series not kept)."""
    rows: list[dict[str, Any]] = []
    skipped: list[Reading] = []
    seen: dict[tuple[str, str], str] = {}
    for r in t.readings:
        kept = series.get(r.code) if r.code_system == "MDC" else None
        if kept is None:
            skipped.append(r)
            continue
        unit, low, high = kept
        value = _value(r, unit)
        key = (r.time, r.code)
        if key in seen:
            if seen[key] != r.value:
                raise MessageError(
                    f"{r.code} at {r.time} is given twice, {seen[key]} and {r.value}", where=r.where
                ).located(message=t.message_id)
            continue
        seen[key] = r.value
        rows.append(
            {
                "patient_id": patient_id,
                "time": r.time,
                "code": r.code,
                "value": value,
                "unit": unit,
                "abnormal": not (low <= value <= high),
            }
        )
    return rows, skipped


def _value(r: Reading, unit: str) -> float:
    if not r.numeric or not r.value:
        raise MessageError(f"{r.code} needs a number, got {r.value!r}", where=r.where)
    if r.unit != unit:
        raise MessageError(
            f"{r.code} is kept in UCUM {unit!r}; the message gives {r.unit or 'no unit'!r}", where=r.where
        )
    try:
        return float(r.value)
    except ValueError:
        raise MessageError(f"{r.code}: {r.value!r} is not a number", where=r.where) from None
