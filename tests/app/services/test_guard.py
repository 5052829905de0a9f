"""The workstation with the audit guard (issue 16, parts 1 and 3): its audit log is checkpointed
by a guard running as a separate process, and the rollback floor lives in the guard, so the
signed-in user who swaps or deletes ``active.bundle``, or deletes the fallback floor file, does
not bring an older policy version back. Without a guard, the fallback floor file stops the swap."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.services.users import DEMO_PASSWORD
from app.services.workstation import FLOOR_FILE, Workstation, rollback_floor
from authz.audit_verify import verify_log
from authz.bundle import build_bundle, generate_keys, load_private_key, load_public_key
from authz.guard import GuardClient, LocalFloor
from authz.sync import BundleStore, PolicySync
from tests.support.guard import running_guard

POLICIES = Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture
def guard(tmp_path: Path) -> Iterator[GuardClient]:
    with running_guard(tmp_path / "guard") as client:
        yield client


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, bytes]]:
    """The public key and signed bundles of versions 2 and 5 of the real policies."""
    keys = generate_keys(tmp_path_factory.mktemp("keys"))
    signed = {
        v: build_bundle(POLICIES, load_private_key(keys[0]), v, {}, created_at="2026-11-01T00:00:00+00:00")
        for v in (2, 5)
    }
    return keys[1], signed


def _start_offline(data: Path, floor: object, public_key: Path) -> PolicySync:
    """What app/main.py does at start: the last-known-good bundle, offline, checked against the floor."""
    sync = PolicySync(
        "http://127.0.0.1:9/unused", load_public_key(public_key), BundleStore(data / "bundles"), floor=floor
    )  # type: ignore[arg-type]
    sync.start_offline()
    return sync


def test_the_audit_log_is_checkpointed_by_the_guard(
    make_ws: Callable[..., Workstation], guard: GuardClient, tmp_path: Path
) -> None:
    ws = make_ws(guard=guard)
    assert ws.floor is guard
    user = ws.session.sign_in("dr_aly", DEMO_PASSWORD)
    assert user is not None
    for row in ws.patients.rows(user):
        ws.patients.open_record(user, row.patient.id)  # decisions, each audited
    ws.close()  # at exit (app/main.py): a checkpoint of the head
    report = verify_log(ws.data_dir / "audit.db", guard=guard)
    assert report.ok, report.findings
    assert report.count > 0 and any("signed checkpoints" in c for c in report.checked)
    assert guard.history(ws.chain.log_id).checkpoints[-1].seq == report.count


def test_older_bundle_copied_over_active_bundle_is_refused_with_the_guard(
    tmp_path: Path, guard: GuardClient, bundles: tuple[Path, dict[int, bytes]]
) -> None:
    public_key, signed = bundles
    data = tmp_path / "data"
    BundleStore(data / "bundles").save(signed[5])
    sync = _start_offline(data, rollback_floor(data, guard), public_key)
    assert sync.engine is not None and guard.highest() == 5
    # The user puts the old, validly signed bundle in its place and deletes the fallback floor file.
    (data / "bundles" / "active.bundle").write_bytes(signed[2])
    (data / FLOOR_FILE).unlink(missing_ok=True)
    restarted = _start_offline(data, rollback_floor(data, guard), public_key)
    assert restarted.engine is None
    assert "older than version 5" in restarted.reason
    with pytest.raises(Exception, match="below the highest"):
        guard.raise_to(2)  # and no request lowers it


def test_older_bundle_copied_over_active_bundle_is_refused_without_a_guard(
    tmp_path: Path, bundles: tuple[Path, dict[int, bytes]]
) -> None:
    public_key, signed = bundles
    data = tmp_path / "data"
    BundleStore(data / "bundles").save(signed[5])
    floor = rollback_floor(data, None)
    assert isinstance(floor, LocalFloor)
    assert _start_offline(data, floor, public_key).engine is not None
    (data / "bundles" / "active.bundle").write_bytes(signed[2])
    restarted = _start_offline(data, rollback_floor(data, None), public_key)
    assert restarted.engine is None and "older than version 5" in restarted.reason


def test_a_guard_that_cannot_be_reached_refuses_the_bundle_with_the_reason(
    tmp_path: Path, bundles: tuple[Path, dict[int, bytes]]
) -> None:
    public_key, signed = bundles
    data = tmp_path / "data"
    BundleStore(data / "bundles").save(signed[5])
    sync = _start_offline(data, GuardClient(tmp_path / "absent.sock"), public_key)
    assert sync.engine is None and "rollback floor is unknown" in sync.reason
