"""What the decision path shows a bundle held in shadow: every live decision, once per call."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from app.services.access import AccessService
from app.services.users import SignedInUser
from authz import CheckInput, Engine, Resource

POLICIES = Path(__file__).resolve().parents[3] / "policies"
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ATTENDING = SignedInUser("dr_att", "Dr. Att", ("physician",), {"hospital_ids": ["h1"]})


def record(n: int, hospital: str = "h1") -> Resource:
    attr = {"patient_id": f"p{n}", "hospital_id": hospital, "care_team": [], "assigned_physicians": ["dr_att"]}
    return Resource("patient_record", f"p{n}", attr)


def test_a_list_is_offered_once_with_every_request_and_a_record_with_its_own() -> None:
    engine = Engine.from_directory(POLICIES)
    offers: list[tuple[Engine, Sequence[CheckInput], datetime]] = []
    access = AccessService(lambda: engine, clock=lambda: NOW, observe=lambda *offer: offers.append(offer))
    ward = [record(1), record(2, hospital="h2"), record(3)]

    shown = access.permitted(ATTENDING, ward, "view")

    assert [r.id for r in shown] == ["p1", "p3"]  # the other hospital's patient is not listed
    assert len(offers) == 1  # one offer for the whole list: the visible path pays once
    offered_engine, requests, at = offers[0]
    assert offered_engine is engine and at == NOW
    assert [(inp.resource.id, inp.actions, inp.principal.id) for inp in requests] == [
        ("p1", ["view"], "dr_att"),
        ("p2", ["view"], "dr_att"),
        ("p3", ["view"], "dr_att"),
    ]
    access.decide(ATTENDING, ward[0], ["view", "view_history"])
    assert [[inp.actions for inp in offer[1]] for offer in offers[1:]] == [[["view", "view_history"]]]
