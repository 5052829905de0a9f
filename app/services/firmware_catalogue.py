"""The firmware each device model may be updated to: the manufacturers' released versions, as data
(the demo hospital's models; a deployment loads its manufacturers' catalogues here). A request
names one of these, never free text, so a typo or "banana" is refused where it is typed."""

from __future__ import annotations

# model -> released firmware versions, oldest first
RELEASED = {
    "Pacer X2 DR": ("4.1.0", "4.1.2", "4.2.0", "4.2.1", "4.2.2", "4.3.0", "4.4.0"),
    "Pacer X2 SR": ("4.1.0", "4.1.2", "4.2.0", "4.2.1", "4.2.2", "4.3.0", "4.4.0"),
    "RhythmOne DDD": ("4.1.0", "4.1.2", "4.2.0", "4.2.1", "4.2.2", "4.3.0"),
    "RhythmOne VVI": ("4.1.0", "4.1.2", "4.2.0", "4.2.1", "4.2.2", "4.3.0"),
}


def versions_for(model: str) -> tuple[str, ...]:
    """The released versions of this model (none for a model the catalogue does not know)."""
    return RELEASED.get(model, ())
