"""The app under managed configuration, against real servers on 127.0.0.1 (ephemeral ports, stopped
by each test): a policy server serving a signed bundle and an HTTPS FHIR audit collector.

`python -m app.main` refuses a wrong managed file (exit 2, the file, the key and what is expected)
and starts nothing; with a good one it takes its policies from the managed server (the flags
pointing elsewhere are ignored, and it says so) and its audit records reach the managed collector.
In the window, driven by clicks and keys: the managed idle lock beats the flag, the status bar says
"managed by IT" and shows the audit backlog going down to 0, and the settings screen lists each
setting with its source."""

from __future__ import annotations

import json
import os
import sqlite3
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PySide6.QtWidgets import QTableWidget

from app.main import start_workstation
from app.services.settings import MANAGED_ENV, load_for_app
from app.services.workstation import BUNDLED_POLICIES
from app.viewmodels.app_vm import ViewModels
from app.views.main_window import MainWindow
from authz.bundle import build_bundle, generate_keys, load_private_key
from authz.policy_server import serve_in_thread
from tests.app.helpers import Clock, click, click_cell, open_dialog, sign_in
from tests.support.tls import make_pki

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Collector:
    """A FHIR AuditEvent repository over HTTPS: keeps each PUT by id; fails the first ``failures``."""

    url: str
    ca_file: Path
    server: ThreadingHTTPServer
    received: dict[str, dict] = field(default_factory=dict)
    failures: int = 0


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    pki = make_pki(tmp_path / "pki")

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if state.failures > 0:
                state.failures -= 1
                self.send_response(503)
            else:
                assert self.path == f"/fhir/AuditEvent/{body['id']}"
                state.received[body["id"]] = body
                self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state = Collector(f"https://127.0.0.1:{server.server_port}/fhir", pki.ca_cert, server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class PolicyServer:
    url: str
    public_key: Path
    bundle: bytes


@pytest.fixture
def policy_server(tmp_path: Path) -> Iterator[PolicyServer]:
    private, public = generate_keys(tmp_path / "keys")
    published = tmp_path / "published"
    published.mkdir()
    bundle = build_bundle(BUNDLED_POLICIES, load_private_key(private), 3, {}, created_at="2026-11-01T00:00:00+00:00")
    (published / "policies-v3.bundle").write_bytes(bundle)
    server, url = serve_in_thread(published)
    yield PolicyServer(url, public, bundle)
    server.shutdown()
    server.server_close()


def managed_file(path: Path, **values: object) -> Path:
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    return path


def run_app(tmp_path: Path, managed: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",  # never the machine's real keyring
        **{MANAGED_ENV: str(managed)},
    )
    return subprocess.run(
        [sys.executable, "-m", "app.main", "--data-dir", str(tmp_path / "data"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env=env,
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("idle_lock_minutes = 0\n", "idle_lock_minutes: 0 is out of range; expected whole minutes from 1 to 60"),
        ('policy_server_url = "policy.hospital.example"\n', "policy_server_url: 'policy.hospital.example' does not"),
        ("idle_lock = 5\n", "idle_lock: is not a setting (did you mean idle_lock_minutes?); expected one of"),
        ('ward = "Ward 9\n', "is not valid TOML (Illegal character '\\n' (at line 1, column 15)); expected TOML"),
        ('sign_in_provider = "oidc"\n', 'sign_in_provider: is "oidc" but no oidc_issuer is set'),
        ('audit_collector_ca_file = "/nonexistent/ca.pem"\n', "audit_collector_ca_file: /nonexistent/ca.pem does"),
    ],
)
def test_a_wrong_managed_file_stops_the_app_and_says_where(tmp_path: Path, content: str, problem: str) -> None:
    managed = tmp_path / "managed.toml"
    managed.write_text(content)
    result = run_app(tmp_path, managed, "--screenshot", str(tmp_path / "shot.png"), "--user", "dr_aly")
    assert result.returncode == 2, result.stderr
    assert f"{managed}: {problem}" in result.stderr
    assert "CCC Workstation cannot start" in result.stderr and "the demo is not used instead" in result.stderr
    assert not (tmp_path / "shot.png").exists() and not (tmp_path / "data").exists()  # nothing was started


def test_the_app_uses_the_managed_policy_server_and_ships_to_the_managed_collector(
    tmp_path: Path, policy_server: PolicyServer, collector: Collector
) -> None:
    managed = managed_file(
        tmp_path / "managed.toml",
        policy_server_url=policy_server.url,
        policy_public_key=str(policy_server.public_key),
        workstation_id="ward9-ws01",
        idle_lock_minutes=3,
        audit_collector_url=collector.url,
        audit_collector_ca_file=str(collector.ca_file),
    )
    elsewhere = generate_keys(tmp_path / "elsewhere")[1]
    result = run_app(
        tmp_path,
        managed,
        *("--screenshot", str(tmp_path / "shot.png"), "--user", "dr_aly"),
        *("--policy-server", "http://127.0.0.1:9/current.bundle", "--public-key", str(elsewhere)),
        *("--idle-lock-minutes", "30"),
    )
    assert result.returncode == 0, result.stderr
    for flag, key in [
        ("--policy-server", "policy_server_url"),
        ("--public-key", "policy_public_key"),
        ("--idle-lock-minutes", "idle_lock_minutes"),
    ]:
        assert f"{flag}: {key} is ignored: IT manages it in {managed}" in result.stderr
    data = tmp_path / "data"
    assert (data / "bundles" / "active.bundle").read_bytes() == policy_server.bundle  # the managed server's
    with sqlite3.connect(data / "audit.db") as db:
        records = db.execute(
            "SELECT record_id, kind, bundle_version, workstation_id FROM audit ORDER BY seq"
        ).fetchall()
        shipped = db.execute("SELECT destination, shipped_seq FROM audit_shipping").fetchall()
    decisions = [r for r in records if r[1] == "decision"]
    assert decisions and {r[2] for r in decisions} == {"3"}  # decided by the managed server's bundle
    assert {r[3] for r in records} == {"ward9-ws01"}
    assert set(collector.received) == {r[0] for r in records}  # every record reached the managed collector
    assert shipped == [(collector.url, len(records))]
    assert {e["source"]["observer"]["display"] for e in collector.received.values()} == {"ward9-ws01"}


def find_row(table: QTableWidget, title: str) -> tuple[str, str]:
    for row in range(table.rowCount()):
        if table.item(row, 0).text() == title:
            return table.item(row, 1).text(), table.item(row, 2).text()
    raise AssertionError(f"no row {title!r}")


def test_managed_settings_in_the_running_app(
    qtbot, tmp_path: Path, clock: Clock, policy_server: PolicyServer, collector: Collector
) -> None:  # noqa: ANN001
    data = tmp_path / "data"
    data.mkdir()
    (data / "settings.toml").write_text('ward = "Cardiology 9"\nidle_lock_minutes = 20\n')
    managed = managed_file(
        tmp_path / "managed.toml",
        policy_server_url=policy_server.url,
        policy_public_key=str(policy_server.public_key),
        hospital_id="h1",
        idle_lock_minutes=3,
        audit_collector_url=collector.url,
        audit_collector_ca_file=str(collector.ca_file),
    )
    settings = load_for_app(data, {"idle_lock_minutes": "30"}, {MANAGED_ENV: str(managed)})
    collector.failures = 10**6  # the collector fails until the test has seen the backlog
    stop = threading.Event()
    ws, threads = start_workstation(
        settings, data, BUNDLED_POLICIES, stop, ship_interval=0.1, clock=clock.now, monotonic=clock.monotonic
    )
    try:
        assert [t.name for t in threads] == ["policy-sync", "audit-upload"]
        qtbot.waitUntil(lambda: ws.status.sync.state().version == 3, timeout=10000)
        w = MainWindow(ViewModels.build(ws, clock=clock.monotonic, tick_ms=20))
        w.vms.session.status_timer.setInterval(100)  # the status bar's real timer, ticking faster
        qtbot.addWidget(w)
        w.show()

        # the sign-in screen says what IT manages, and the settings screen lists every setting's source
        assert w.sign_in.managed.isVisible()
        assert w.sign_in.managed.text() == (
            f"Managed by IT ({managed}): Policy server URL, Pinned policy public key, Hospital id, "
            "Idle lock (minutes), Audit collector URL, Audit collector CA file."
        )
        dialog = open_dialog(qtbot, w.sign_in.settings_button, w.sign_in, "settings_dialog")
        table = dialog.table
        assert find_row(table, "Idle lock (minutes)") == ("3", f"managed by IT ({managed})")
        assert find_row(table, "Policy server URL") == (policy_server.url, f"managed by IT ({managed})")
        assert find_row(table, "Audit collector URL") == (collector.url, f"managed by IT ({managed})")
        key_value, key_source = find_row(table, "Pinned policy public key")
        assert key_value.startswith(f"{policy_server.public_key} (SHA-256 ") and key_source.startswith("managed")
        assert find_row(table, "Ward") == ("Cardiology 9", f"user ({data / 'settings.toml'})")
        assert find_row(table, "Sign-in provider") == ("demo", "default")
        assert find_row(table, "Workstation id")[1] == "default"
        click_cell(qtbot, table, 0)
        click(qtbot, dialog.close_button)
        qtbot.waitUntil(lambda: not dialog.isVisible())

        sign_in(qtbot, w, "dr_aly")
        assert w.stack.currentIndex() == 1
        status = w.status_label.text()
        assert status.startswith("Policies: v3 (") and " · online · audit backlog: " in status
        assert status.endswith(" · managed by IT")
        assert w.patients.rows, "the managed server's policies show Dr. Aly her patients"
        click_cell(qtbot, w.patients.table, 0, 1, double=True)
        assert w.vms.record.record is not None

        # the collector fails: the records queue, and the status bar says how many and why
        records = {r.record_id for r in ws.chain.records()}
        qtbot.waitUntil(lambda: "audit upload failing" in w.status_label.text(), timeout=5000)
        assert f"audit backlog: {len(records)} ·" in w.status_label.text() and "HTTP 503" in w.status_label.text()
        assert not collector.received
        # once it answers, the upload catches up: everything written reaches it, the backlog is 0
        collector.failures = 0
        qtbot.waitUntil(lambda: records <= set(collector.received), timeout=10000)
        qtbot.waitUntil(lambda: "audit backlog: 0 ·" in w.status_label.text(), timeout=5000)
        assert "audit upload failing" not in w.status_label.text()

        # the managed idle lock (3 min) beats the flag's 30 and the user's 20
        clock.advance(minutes=2, seconds=50)
        qtbot.waitUntil(w.idle_warning.isVisible)
        assert w.stack.currentIndex() == 1
        clock.advance(seconds=15)
        qtbot.waitUntil(lambda: w.stack.currentIndex() == 0)
        assert "Locked after 3 min without activity" in w.sign_in.error.text()
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert not any(t.is_alive() for t in threads)
