"""Malformed CheckResources requests: refused like a Cerbos PDP refuses them (code 3), with
Cerbos's own words where the request fails validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from authz import Engine
from tests.support.cerbos_pdp import CerbosPDP

CLINIC = Path(__file__).parent / "policysets" / "clinic"
OK_RESOURCE = {"actions": ["view"], "resource": {"kind": "record", "id": "1"}}
OK_PRINCIPAL = {"id": "a", "roles": ["user"]}

MALFORMED = {
    "empty principal id": {"principal": {"id": "", "roles": ["user"]}, "resources": [OK_RESOURCE]},
    "no roles": {"principal": {"id": "a", "roles": []}, "resources": [OK_RESOURCE]},
    "no resources": {"principal": OK_PRINCIPAL, "resources": []},
    "repeated role": {"principal": {"id": "a", "roles": ["user", "user"]}, "resources": [OK_RESOURCE]},
    "repeated action": {
        "principal": OK_PRINCIPAL,
        "resources": [{"actions": ["v", "v"], "resource": {"kind": "record", "id": "1"}}],
    },
    "no actions": {
        "principal": OK_PRINCIPAL,
        "resources": [{"actions": [], "resource": {"kind": "record", "id": "1"}}],
    },
    "bad principal scope": {"principal": {"id": "a", "roles": ["u"], "scope": ".bad"}, "resources": [OK_RESOURCE]},
    "bad policy version": {
        "principal": {"id": "a", "roles": ["u"], "policyVersion": "v 1"},
        "resources": [OK_RESOURCE],
    },
    "bad resource scope": {
        "principal": OK_PRINCIPAL,
        "resources": [{"actions": ["v"], "resource": {"kind": "r", "id": "1", "scope": "a..b"}}],
    },
    "empty kind": {"principal": OK_PRINCIPAL, "resources": [{"actions": ["v"], "resource": {"kind": "", "id": "1"}}]},
    "too many resources": {"principal": OK_PRINCIPAL, "resources": [OK_RESOURCE] * 51},
    "too many actions": {
        "principal": OK_PRINCIPAL,
        "resources": [{"actions": [f"a{i}" for i in range(51)], "resource": {"kind": "r", "id": "1"}}],
    },
    "jwt without token": {"principal": OK_PRINCIPAL, "resources": [OK_RESOURCE], "auxData": {"jwt": {}}},
    "unverifiable jwt": {"principal": OK_PRINCIPAL, "resources": [OK_RESOURCE], "auxData": {"jwt": {"token": "a.b.c"}}},
}
# Refused by both, in words that come from each side's JSON decoder.
REFUSED = {
    "unknown field": {"principal": OK_PRINCIPAL, "resources": [OK_RESOURCE], "colour": "red"},
    "attr not an object": {"principal": {"id": "a", "roles": ["u"], "attr": 5}, "resources": [OK_RESOURCE]},
    "request id not a string": {"principal": OK_PRINCIPAL, "resources": [OK_RESOURCE], "requestId": 5},
}


@pytest.fixture(scope="module")
def both():
    with CerbosPDP(CLINIC) as pdp:
        yield Engine.from_directory(CLINIC), pdp


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_same_refusal_as_cerbos(both, case: str) -> None:
    engine, pdp = both
    theirs = pdp.check(MALFORMED[case])
    ours = engine.check_request(MALFORMED[case])
    assert theirs["code"] == ours["code"] == 3
    assert ours["message"] == theirs["message"]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_by_both(both, case: str) -> None:
    engine, pdp = both
    assert pdp.check(REFUSED[case])["code"] == 3
    assert engine.check_request(REFUSED[case])["code"] == 3


def _mutations(body: dict, rng) -> dict:
    """``body`` with one field somewhere replaced by an odd value (or removed, or added)."""
    import copy

    body = copy.deepcopy(body)
    targets = [body, body["principal"], *body["resources"], *(e["resource"] for e in body["resources"])]
    target = rng.choice(targets)
    odd = [None, "", 0, False, [], {}, "x", ["a", "a"], [1], ".bad", "v 1", {"k": 1}, True, 3.5]
    key = rng.choice([*target.keys(), "scope", "policyVersion", "attr", "requestId", "extra", "auxData", "includeMeta"])
    if rng.random() < 0.2:
        target.pop(key, None)
    else:
        target[key] = rng.choice(odd)
    return body


def test_quick_parse_agrees_with_the_checked_parse() -> None:
    """The well-formed fast path accepts only what the step-by-step parse accepts, and parses it
    the same way: 20,000 mutated requests, both ways."""
    import random

    from authz import api
    from authz.errors import RequestError
    from tests.authz.differential import random_requests

    rng = random.Random(5)
    quick_taken = 0
    for body in random_requests("clinic", 2000, seed=11):
        for candidate in [body] + [_mutations(body, rng) for _ in range(9)]:
            quick = api._parse_well_formed(candidate)
            try:
                checked = api._parse_checked(candidate)
            except RequestError:
                checked = None
            if quick is not None:
                quick_taken += 1
                assert checked == quick, candidate
    assert quick_taken > 5000  # most well-formed requests take the quick path


def test_call_ids_are_ordered_unique_ulids_and_a_forked_worker_makes_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from authz import api
    from authz.api import _CROCKFORD, new_call_id

    ids = [new_call_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)
    assert all(len(i) == 26 and set(i) <= set(_CROCKFORD) for i in ids[:100])
    # Parent and child in the same millisecond: only a fresh random part keeps them apart.
    monkeypatch.setattr(api.time, "time_ns", lambda: 1_800_000_000_000_000_000)
    new_call_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what a --workers process would hand out next
        os.write(write, "".join(new_call_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        text = f.read()
    child = {text[i : i + 26] for i in range(0, len(text), 26)}
    parent = {new_call_id() for _ in range(100)}
    assert len(child) == 100 and not child & parent
