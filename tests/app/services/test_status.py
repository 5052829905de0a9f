"""The status bar's facts from real parts: a policy server on 127.0.0.1 serving a signed bundle,
the bundle store on disk, and an audit shipper with a real backlog."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.services.users import DEMO_PASSWORD
from app.services.workstation import Workstation
from authz.audit_ship import AuditShipper, Destination, ShippingError
from authz.bundle import build_bundle, generate_keys, load_private_key, load_public_key
from authz.policy_server import serve_in_thread
from authz.sync import BundleStore, PolicySync

POLICIES = Path(__file__).resolve().parents[3] / "policies"


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
    (directory / "policies-v3.bundle").write_bytes(build_bundle(POLICIES, load_private_key(private), 3, {},
                                                                created_at="2026-11-01T00:00:00+00:00"))
    return directory, public


def workstation(tmp_path: Path, url: str, public: Path) -> Workstation:
    sync = PolicySync(url, load_public_key(public), BundleStore(tmp_path / "data" / "bundles"),
                      client=httpx.Client(timeout=httpx.Timeout(1.0)))
    sync.start_offline()
    return Workstation(tmp_path / "data", sync=sync, shipper_factory=lambda chain: AuditShipper(chain,
                                                                                              UnreachableCollector()))


def test_synced_policies_online_then_offline_keep_deciding(published: tuple[Path, Path], tmp_path: Path) -> None:
    directory, public = published
    server, url = serve_in_thread(directory)
    try:
        ws = workstation(tmp_path, url, public)
        before = ws.status()
        assert before.policy_version == "none" and not before.online and "denied" in before.message
        user = ws.sign_in("dr_aly", DEMO_PASSWORD)
        assert ws.patient_rows(user) == []  # no policy set yet: nothing is shown
        assert ws.sync.poll()
        status = ws.status()
        assert status.policy_version == "v3" and status.online and status.policy_age.endswith(" d")
        rows = ws.patient_rows(user)
        assert rows
        ws.open_record(user, rows[0].patient.id)
        with pytest.raises(ShippingError):
            ws.shipper.ship()
        assert ws.status().audit_backlog == len(list(ws.audit.records())) > 0
    finally:
        server.shutdown()
        server.server_close()
    ws.sync.poll()
    offline = ws.status()
    assert not offline.online and "last sync failed" in offline.message and offline.policy_version == "v3"
    assert ws.patient_rows(user) == rows  # offline, the last-known-good policies still decide
    assert "offline" in offline.text and "audit backlog" in offline.text


def test_restart_without_network_uses_the_last_known_good_bundle(published: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    directory, public = published
    server, url = serve_in_thread(directory)
    try:
        assert workstation(tmp_path, url, public).sync.poll()
    finally:
        server.shutdown()
        server.server_close()
    restarted = workstation(tmp_path, url, public)
    assert restarted.status().policy_version == "v3" and not restarted.status().online
    user = restarted.sign_in("nurse_nia", DEMO_PASSWORD)
    assert restarted.patient_rows(user)
