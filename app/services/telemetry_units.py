"""How a telemetry series' UCUM unit is shown to clinicians: the symbol (Ω, not "Ohm"; no UCUM
braces), the precision a device clinic reads it at, and whether the series counts events (drawn as
bars, not a line). Data, keyed by the UCUM code the series carries (units.ucum.org: "Ohm", "V",
"mV", "%", "/min", "mo", and annotations in braces such as "{episodes}")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class UnitDisplay:
    symbol: str
    decimals: int
    counts: bool = False  # a count of events per transmission: bars


UNITS = {
    "Ohm": UnitDisplay("Ω", 0),
    "V": UnitDisplay("V", 2),
    "mV": UnitDisplay("mV", 1),
    "%": UnitDisplay("%", 1),
    "/min": UnitDisplay("/min", 0),
    "mo": UnitDisplay("months", 0),
    "{episodes}": UnitDisplay("episodes", 0, counts=True),
}


def unit_display(ucum: str) -> UnitDisplay:
    """The display of a UCUM unit; an unknown one is shown as written (braces dropped), to 2 decimals."""
    known = UNITS.get(ucum)
    if known is not None:
        return known
    annotation = ucum.startswith("{") and ucum.endswith("}")
    return UnitDisplay(ucum.strip("{}"), 0 if annotation else 2, counts=annotation)


def formatted(value: float, ucum: str) -> str:
    """The value at its unit's precision, with the unit's symbol ("2192 Ω", "3.01 V", "2 episodes")."""
    shown = unit_display(ucum)
    return f"{value:.{shown.decimals}f} {shown.symbol}"
