"""The status bar's facts from real parts: a policy server on 127.0.0.1 serving a signed bundle,
the bundle store on disk, and an audit shipper with a real backlog."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from app.services.access import Refused
from app.services.credentials import SecretStore
from app.services.status import age
from app.services.workstation import Workstation
from authz.audit_ship import AuditShipper, Destination, ShippingError
from authz.bundle import build_bundle, generate_keys, load_private_key, load_public_key
from authz.policy_server import serve_in_thread
from authz.sync import BundleStore, PolicySync
from tests.app.services.support import POLICIES, user
from tests.support.keyrings import MemoryKeyring


class UnreachableCollector(Destination):
    """The hospital's audit collector while the network is down."""

    name = "collector"

    def send(self, records: object) -> None:
        raise ShippingError("connection refused")


@pytest.fixture
def published(tmp_path: Path) -> tuple[Path, Path]:
    private, public = generate_keys(tmp_path / "keys")
    directory = tmp_path / "published"
    directory.mkdir()
    (directory / "policies-v3.bundle").write_bytes(
        build_bundle(POLICIES, load_private_key(private), 3, {}, created_at="2026-11-01T00:00:00+00:00")
    )
    return directory, public


@pytest.fixture
def synced(make_ws: Callable[..., Workstation], demo_store: Path, tmp_path: Path) -> Callable[[str, Path], Workstation]:
    """A Workstation on the policy server at ``url`` (the same data directory each time: a restart)."""

    def make(url: str, public: Path) -> Workstation:
        data = tmp_path / "data"
        if not data.exists():
            shutil.copytree(demo_store, data)
        sync = PolicySync(
            url, load_public_key(public), BundleStore(data / "bundles"), client=httpx.Client(timeout=httpx.Timeout(1.0))
        )
        sync.start_offline()
        return make_ws(
            data_dir=data, sync=sync, shipper_factory=lambda chain: AuditShipper(chain, UnreachableCollector())
        )

    return make


def test_synced_policies_online_then_offline_keep_deciding(
    published: tuple[Path, Path], synced: Callable[[str, Path], Workstation]
) -> None:
    directory, public = published
    server, url = serve_in_thread(directory)
    try:
        ws = synced(url, public)
        before = ws.status.status()
        assert before.policy_version == "none" and not before.online and "denied" in before.message
        aly = user(ws, "dr_aly")
        assert ws.patients.rows(aly) == []  # no policy set yet: nothing is shown
        with pytest.raises(Refused) as refused:
            ws.patients.open_record(aly, "p02")
        assert refused.value.decision.reason == ws.status.sync.state().reason  # the sync's words
        assert ws.status.sync.poll()
        status = ws.status.status()
        assert status.policy_version == "v3" and status.online and status.policy_age.endswith(" d")
        assert ws.access.bundle_version == ws.status.sync.engine.bundle_version != ""
        rows = ws.patients.rows(aly)
        assert rows
        ws.patients.open_record(aly, rows[0].patient.id)
        assert [r.bundle_version for r in ws.audit.records()][-1] == ws.access.bundle_version
        with pytest.raises(ShippingError):
            ws.status.shipper.ship()
        assert ws.status.status().audit_backlog == len(list(ws.audit.records())) > 0
    finally:
        server.shutdown()
        server.server_close()
    ws.status.sync.poll()
    offline = ws.status.status()
    assert (
        not offline.online
        and "update failed: policy server unreachable" in offline.message
        and offline.policy_version == "v3"
    )
    assert ws.patients.rows(aly) == rows  # offline, the last-known-good policies still decide
    assert "offline" in offline.text and "audit backlog" in offline.text


def test_restart_without_network_uses_the_last_known_good_bundle(
    published: tuple[Path, Path], synced: Callable[[str, Path], Workstation]
) -> None:
    directory, public = published
    server, url = serve_in_thread(directory)
    try:
        assert synced(url, public).status.sync.poll()
    finally:
        server.shutdown()
        server.server_close()
    restarted = synced(url, public)
    assert restarted.status.status().policy_version == "v3" and not restarted.status.status().online
    assert restarted.patients.rows(user(restarted, "nurse_nia"))


def test_the_built_in_policies_and_the_session_store_are_said(make_ws: Callable[..., Workstation]) -> None:
    """The built-in demo set has no policy server: it is neither online nor offline, only what it is."""
    status = make_ws(secrets=SecretStore(MemoryKeyring())).status.status()
    assert (status.policy_version, status.policy_age, status.online, status.audit_backlog) == (
        "built-in demo set",
        "",
        None,
        None,
    )
    assert status.message == ""
    assert status.text == "Policies: built-in demo set · audit upload not configured"


def test_the_parts_of_the_line_are_set_apart_as_its_fields_are(make_ws: Callable[..., Workstation]) -> None:
    """A part may hold commas of its own ("shadow bundle v2: 0 flips in 3 decisions, activates at ..."):
    joined by commas, "(no OS keyring), shadow bundle v2" read as one phrase; the parts are set apart
    by the line's own separator."""
    from keyring.backends import fail

    status = make_ws(secrets=SecretStore(fail.Keyring())).status.status()
    assert status.text == (
        "Policies: built-in demo set · audit upload not configured · demo-only session store (no OS keyring)"
    )


def test_ages_read_as_minutes_hours_or_days() -> None:
    assert [age(timedelta(seconds=s)) for s in (-5, 59, 3599, 3600, 86399, 86400, 9 * 86400)] == [
        "0 min",
        "0 min",
        "59 min",
        "1 h",
        "23 h",
        "1 d",
        "9 d",
    ]


def test_the_shadow_line_says_what_it_did_not_evaluate_or_audit() -> None:
    """IT reads the bundle in shadow in the status bar, with what it missed: decisions dropped
    because the queue was full, flips whose audit record could not be written."""
    from datetime import UTC, datetime

    from app.services.status import shadow_text
    from authz.shadow import ShadowCounts
    from authz.sync import ShadowState

    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    counts = ShadowCounts(decisions=12_345, flips=7)
    shadow = ShadowState(2, "0" * 64, start, start + timedelta(hours=48), counts)
    assert shadow_text(None) == ""
    assert shadow_text(shadow) == "shadow bundle v2: 7 flips in 12,345 decisions, activates at 2026-12-03 08:00 UTC"
    counts.dropped, counts.unaudited, counts.last_error = 1_500, 2, "audit record not written: the disk is full"
    assert shadow_text(shadow) == (
        "shadow bundle v2: 7 flips in 12,345 decisions, activates at 2026-12-03 08:00 UTC; 1,500 not evaluated "
        "(queue full); 2 flips not audited (audit record not written: the disk is full)"
    )
