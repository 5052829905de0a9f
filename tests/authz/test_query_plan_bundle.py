"""The app's engine comes from a signed bundle, unpacked into a slot and compiled: it plans from
the policies it compiled, never from the slot's files read again later (they may have changed on
disk since the bundle was verified)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from authz.bundle import build_bundle, generate_keys, load_private_key, load_public_key
from authz.evaluate import Principal
from authz.query_plan import ALWAYS_DENIED, CONDITIONAL, PlanError, render_node
from authz.sync import BundleStore, PolicySync

POLICIES = Path(__file__).resolve().parents[2] / "policies"
NURSE = Principal("nurse_nia", ["nurse"], {"hospital_ids": ["h1"]})


def _active_engine(tmp_path: Path) -> PolicySync:
    private, public = generate_keys(tmp_path / "keys")
    data = build_bundle(POLICIES, load_private_key(private), 1, {})
    store = BundleStore(tmp_path / "bundles")
    store.save(data)
    sync = PolicySync("http://127.0.0.1:9/unused", load_public_key(public), store)
    sync.start_offline()
    assert sync.engine is not None, sync.reason
    return sync


def _plan(sync: PolicySync) -> tuple[str, object]:
    assert sync.engine is not None
    result = sync.engine.plan(NURSE, "patient_record", ["view"], now=datetime.now(UTC))
    return result.kind, render_node(result.condition) if result.condition is not None else None


def test_an_engine_from_a_signed_bundle_plans(tmp_path: Path) -> None:
    kind, condition = _plan(_active_engine(tmp_path))
    assert kind == CONDITIONAL and "nurse_nia" in str(condition)


def test_planning_never_rereads_the_unpacked_files(tmp_path: Path) -> None:
    """Files changed or removed in the slot after activation change nothing: the plan is made from
    what was verified and compiled."""
    sync = _active_engine(tmp_path)
    slots = [p for p in (tmp_path / "bundles" / "slots").iterdir()]
    assert len(slots) == 1
    roles = slots[0] / "derived_roles" / "ccc_roles.yaml"
    roles.write_text(roles.read_text().replace("P.id in R.attr.care_team", "true"))
    kind, condition = _plan(sync)
    assert kind == CONDITIONAL and "nurse_nia" in str(condition)
    shutil.rmtree(slots[0])
    assert _plan(sync) == (kind, condition)
    assert sync.engine is not None
    eli = Principal("er_eli", ["er_physician"], {"hospital_ids": ["h1"]})
    assert sync.engine.plan(eli, "patient_record", ["view"]).kind == ALWAYS_DENIED


def test_a_policy_set_without_its_policies_does_not_plan() -> None:
    from authz.compile import PolicySet
    from authz.engine import Engine

    with pytest.raises(PlanError, match="holds no policies"):
        Engine(PolicySet()).plan(NURSE, "patient_record", ["view"])
