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
    one: str = ""  # the word for exactly one, when the symbol is a plural word ("1 episode", "1 month")


UNITS = {
    "Ohm": UnitDisplay("Ω", 0),
    "V": UnitDisplay("V", 2),
    "mV": UnitDisplay("mV", 1),
    "%": UnitDisplay("%", 1),
    "/min": UnitDisplay("/min", 0),
    "mo": UnitDisplay("months", 0, one="month"),
    "{episodes}": UnitDisplay("episodes", 0, counts=True, one="episode"),
}


def unit_display(ucum: str) -> UnitDisplay:
    """The display of a UCUM unit; an unknown one is shown as written (braces dropped), to 2 decimals."""
    known = UNITS.get(ucum)
    if known is not None:
        return known
    annotation = ucum.startswith("{") and ucum.endswith("}")
    return UnitDisplay(ucum.strip("{}"), 0 if annotation else 2, counts=annotation)


def amount(value: float, ucum: str) -> str:
    """The number alone, at the unit's precision ("2192", "3.01")."""
    return f"{value:.{unit_display(ucum).decimals}f}"


def formatted(value: float, ucum: str) -> str:
    """The value at its unit's precision, with the unit's symbol ("2192 Ω", "3.01 V", "2 episodes");
    a word unit reads in the singular for one ("1 episode", not "1 episodes")."""
    shown, number = unit_display(ucum), amount(value, ucum)
    return f"{number} {shown.one if shown.one and float(number) == 1 else shown.symbol}"
