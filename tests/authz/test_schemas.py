"""Attribute schemas (``_schemas/``) enforced like a Cerbos PDP: ``warn`` decides and reports,
``reject`` denies every action and reports, and ``ignoreWhen`` skips validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authz import Engine, EvalParams
from tests.support.cerbos_pdp import CerbosPDP

ROOT = Path(__file__).parent / "policysets_schemas"
REQUESTS = [json.loads(line) for line in (ROOT / "requests.jsonl").read_text().splitlines() if line.strip()]


def _comparable(body: dict) -> dict:
    body = dict(body)
    body.pop("cerbosCallId", None)
    for result in body["results"]:
        if "validationErrors" in result:
            result["validationErrors"] = sorted(result["validationErrors"], key=lambda e: json.dumps(e, sort_keys=True))
    return body


@pytest.mark.parametrize("enforcement", ["warn", "reject"])
def test_schema_enforcement_agrees_with_cerbos(enforcement: str) -> None:
    root = ROOT / "records"
    engine = Engine.from_directory(root, EvalParams(schema_enforcement=enforcement))
    with CerbosPDP(root, schema_enforcement=enforcement) as pdp:
        for body in REQUESTS:
            assert _comparable(engine.check_request(body)) == _comparable(pdp.check(body))


def test_enforcement_none_skips_validation() -> None:
    engine = Engine.from_directory(ROOT / "records")
    result = engine.check_request(REQUESTS[1])["results"][0]
    assert "validationErrors" not in result
    assert result["actions"]["view"] == "EFFECT_ALLOW"
