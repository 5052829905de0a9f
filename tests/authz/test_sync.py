"""Offline-first sync against real servers on 127.0.0.1 (ours and nginx): every fault leaves the
workstation on a valid bundle or denying, with a clear message, never on a half-written one."""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from authz import CheckInput, Principal, Resource
from authz.bundle import build_bundle, generate_keys, load_private_key, load_public_key
from authz.policy_server import serve_in_thread
from authz.sync import BundleStore, PolicySync
from tests.support.nginx import Nginx

POLICIES = Path(__file__).resolve().parents[2] / "policies"
P1 = {"patient_id": "p1", "hospital_id": "h1", "care_team": ["dr_aly"], "assigned_physicians": ["dr_aly"]}
ALY_VIEWS_P1 = CheckInput(
    Principal("dr_aly", ["physician"], {"hospital_ids": ["h1"]}), Resource("patient_record", "p1", P1), ["view"]
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keys(tmp_path_factory.mktemp("keys"))


def publish(directory: Path, keys: tuple[Path, Path], version: int, policies: Path = POLICIES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"policies-v{version}.bundle"
    path.write_bytes(
        build_bundle(
            policies,
            load_private_key(keys[0]),
            version,
            {"executed": 0, "passed": 0},
            created_at="2026-11-01T00:00:00+00:00",
        )
    )
    return path


def client_for(url: str, keys: tuple[Path, Path], store: Path, **kw: object) -> PolicySync:
    return PolicySync(
        url, load_public_key(keys[1]), BundleStore(store), client=httpx.Client(timeout=httpx.Timeout(1.0)), **kw
    )


def test_no_bundle_means_deny_everything_with_a_reason(keys: tuple[Path, Path], tmp_path: Path) -> None:
    sync = client_for("http://127.0.0.1:9/current.bundle", keys, tmp_path / "store")
    sync.start_offline()
    assert sync.engine is None
    assert "everything is denied" in sync.state().reason
    assert not sync.poll()
    assert "unreachable" in sync.state().last_error


def test_updates_unchanged_polls_rollback_and_offline_restart(keys: tuple[Path, Path], tmp_path: Path) -> None:
    published = tmp_path / "published"
    publish(published, keys, 1)
    server, url = serve_in_thread(published)
    try:
        sync = client_for(url, keys, tmp_path / "store")
        sync.start_offline()
        assert sync.poll() and sync.state().version == 1
        assert sync.engine.check(ALY_VIEWS_P1).actions["view"].effect == "EFFECT_ALLOW"
        assert not sync.poll() and sync.state().last_error == ""  # unchanged: a 304

        publish(published, keys, 2)
        assert sync.poll() and sync.state().version == 2

        for p in published.glob("*.bundle"):
            p.unlink()
        publish(published, keys, 1)  # the server now offers an older bundle
        assert not sync.poll()
        assert "rollback" in sync.state().last_error and sync.state().version == 2
    finally:
        server.shutdown()

    restarted = client_for(url, keys, tmp_path / "store")  # network down now
    restarted.start_offline()
    assert restarted.state().version == 2
    assert restarted.engine.check(ALY_VIEWS_P1).actions["view"].effect == "EFFECT_ALLOW"
    assert not restarted.poll() and "unreachable" in restarted.state().last_error
    assert restarted.engine is not None


def test_tampered_and_foreign_bundles_leave_the_active_one(keys: tuple[Path, Path], tmp_path: Path) -> None:
    published = tmp_path / "published"
    publish(published, keys, 1)
    server, url = serve_in_thread(published)
    try:
        sync = client_for(url, keys, tmp_path / "store")
        assert sync.poll()
        v2 = publish(published, keys, 2)
        data = bytearray(v2.read_bytes())
        data[-1] ^= 0xFF  # still a well-formed archive the server can read; only the signature tells
        v2.write_bytes(bytes(data))
        assert not sync.poll() and "signature" in sync.state().last_error
        other_keys = generate_keys(tmp_path / "other-keys")
        v3 = publish(published, other_keys, 3)
        assert not sync.poll() and "pinned public key" in sync.state().last_error
        assert sync.state().version == 1
        v3.unlink()
        v2.unlink()
    finally:
        server.shutdown()
    store = BundleStore(tmp_path / "store")
    assert store.load(load_public_key(keys[1]))[1].manifest.version == 1


class _Misbehaving(BaseHTTPRequestHandler):
    mode = "garbage"

    def do_GET(self) -> None:  # noqa: N802
        if self.mode == "slow":
            time.sleep(2.5)
        if self.mode == "error":
            self.send_response(500)
            self.end_headers()
            return
        body = os.urandom(4096)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("mode", ["garbage", "error", "slow"])
def test_misbehaving_server_is_survived(keys: tuple[Path, Path], tmp_path: Path, mode: str) -> None:
    published = tmp_path / "published"
    publish(published, keys, 1)
    store = tmp_path / "store"
    good, url = serve_in_thread(published)
    client_for(url, keys, store).poll()
    good.shutdown()
    handler = type("H", (_Misbehaving,), {"mode": mode})
    bad = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=bad.serve_forever, daemon=True).start()
    try:
        sync = client_for(f"http://127.0.0.1:{bad.server_port}/current.bundle", keys, store)
        sync.start_offline()
        assert not sync.poll()
        expected = {"garbage": "not a CCC policy bundle", "error": "HTTP 500", "slow": "Timeout"}[mode]
        assert expected in sync.state().last_error
        assert sync.state().version == 1 and sync.engine is not None
    finally:
        bad.shutdown()


def test_disk_full_while_saving_keeps_the_previous_bundle(
    keys: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = tmp_path / "published"
    publish(published, keys, 1)
    server, url = serve_in_thread(published)
    try:
        sync = client_for(url, keys, tmp_path / "store")
        assert sync.poll()
        before = (tmp_path / "store" / "active.bundle").read_bytes()
        publish(published, keys, 2)

        def no_space(fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fsync", no_space)  # the edge of the machine: the disk
        assert not sync.poll()
        monkeypatch.undo()
        assert "No space left" in sync.state().last_error
        assert sync.state().version == 1
        assert (tmp_path / "store" / "active.bundle").read_bytes() == before
        assert not list((tmp_path / "store").glob(".incoming-*"))
        assert sync.poll() and sync.state().version == 2  # space is back: the update goes through
    finally:
        server.shutdown()


def test_corrupted_saved_bundle_denies_everything(keys: tuple[Path, Path], tmp_path: Path) -> None:
    published = tmp_path / "published"
    publish(published, keys, 1)
    server, url = serve_in_thread(published)
    try:
        assert client_for(url, keys, tmp_path / "store").poll()
    finally:
        server.shutdown()
    active = tmp_path / "store" / "active.bundle"
    active.write_bytes(active.read_bytes()[:-1])
    sync = client_for(url, keys, tmp_path / "store")
    sync.start_offline()
    assert sync.engine is None and "cannot be trusted" in sync.state().reason


def test_bearer_token(keys: tuple[Path, Path], tmp_path: Path) -> None:
    published = tmp_path / "published"
    publish(published, keys, 1)
    server, url = serve_in_thread(published, token="s3cret")
    try:
        anonymous = client_for(url, keys, tmp_path / "a")
        assert not anonymous.poll() and "HTTP 401" in anonymous.state().last_error
        authorised = client_for(url, keys, tmp_path / "b", token_provider=lambda: "s3cret")
        assert authorised.poll()
    finally:
        server.shutdown()


def test_stale_bundle_warning(keys: tuple[Path, Path], tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    published = tmp_path / "published"
    publish(published, keys, 1)
    server, url = serve_in_thread(published)
    try:
        sync = client_for(
            url, keys, tmp_path / "store", max_age=timedelta(days=3), clock=lambda: datetime(2026, 11, 10, tzinfo=UTC)
        )
        assert sync.poll()
        assert sync.state().stale and sync.state().age == timedelta(days=9)
    finally:
        server.shutdown()


def test_sync_from_a_real_nginx(keys: tuple[Path, Path], tmp_path: Path) -> None:
    if Nginx.binary() is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing on CI: scripts/system-deps should have installed it")
        pytest.skip("nginx is not installed (scripts/system-deps installs it)")
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(publish(tmp_path / "built", keys, 1), site / "current.bundle")
    nginx = Nginx(tmp_path / "nginx", site).start()
    try:
        sync = client_for(nginx.url, keys, tmp_path / "store")
        assert sync.poll() and sync.state().version == 1
        assert not sync.poll() and sync.state().last_error == ""  # nginx's ETag: a 304
        incoming = site / ".incoming"
        shutil.copy(publish(tmp_path / "built", keys, 2), incoming)
        # nginx's ETag is mtime-size: same-size bundles published within a second need a new mtime
        later = (site / "current.bundle").stat().st_mtime + 2
        os.utime(incoming, (later, later))
        os.replace(incoming, site / "current.bundle")  # publish atomically, as docs/nginx.conf says
        assert sync.poll() and sync.state().version == 2
    finally:
        nginx.stop()


def test_bundle_for_a_newer_app_is_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    published = tmp_path / "published"
    publish(published, keys, 1)
    server, url = serve_in_thread(published)
    try:
        sync = client_for(url, keys, tmp_path / "store", app_version="0.1.0")
        assert sync.poll()
        (published / "policies-v2.bundle").write_bytes(
            build_bundle(POLICIES, load_private_key(keys[0]), 2, {}, min_app_version="2.0.0")
        )
        assert not sync.poll()
        assert "needs CCC Workstation 2.0.0 or newer" in sync.state().last_error
        assert sync.state().version == 1
    finally:
        server.shutdown()
