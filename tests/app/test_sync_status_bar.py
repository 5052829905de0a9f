"""What the person at the workstation sees when the policy server turns hostile or the saved
policies were rolled back: the status bar of the real window, the sync running on its own thread
against a real HTTP server on 127.0.0.1 (ephemeral port, stopped by the test)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from app.services.workstation import BUNDLED_POLICIES, Workstation
from app.viewmodels.app_vm import ViewModels
from app.views.main_window import MainWindow
from authz.bundle import build_bundle, generate_keys, load_private_key, load_public_key
from authz.sync import BundleStore, PolicySync
from tests.app.helpers import Clock, sign_in

CREATED = "2026-11-01T00:00:00+00:00"


class HostileServer:
    """Serves a good bundle until ``drip`` is set; from then on it answers a byte every 0.3 s."""

    def __init__(self, bundle: bytes) -> None:
        self.bundle = bundle
        self.drip = threading.Event()
        self.stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                try:
                    if not outer.drip.is_set():
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(outer.bundle)))
                        self.end_headers()
                        self.wfile.write(outer.bundle)
                        return
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                    while not outer.stopping.wait(0.3):
                        self.wfile.write(b"C")
                        self.wfile.flush()
                except OSError:
                    pass  # the workstation hung up at its deadline

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/current.bundle"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class MemoryFloor:
    """A ``VersionFloor`` in memory (the app's own is a store the signed-in user cannot rewrite)."""

    def __init__(self, highest: int) -> None:
        self._highest = highest

    def highest(self) -> int:
        return self._highest

    def raise_to(self, version: int) -> None:
        self._highest = max(self._highest, version)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keys(tmp_path / "keys")


def bundle(keys: tuple[Path, Path], version: int) -> bytes:
    return build_bundle(BUNDLED_POLICIES, load_private_key(keys[0]), version, {}, created_at=CREATED)


@pytest.fixture
def hostile(keys: tuple[Path, Path]) -> Iterator[HostileServer]:
    server = HostileServer(bundle(keys, 3))
    yield server
    server.stop()


def window_on(qtbot, tmp_path: Path, clock: Clock, sync: PolicySync) -> MainWindow:  # noqa: ANN001
    ws = Workstation(tmp_path / "data", sync=sync, clock=clock.now, monotonic=clock.monotonic)
    w = MainWindow(ViewModels.build(ws, clock=clock.monotonic, tick_ms=20))
    w.vms.session.status_timer.setInterval(100)  # the status bar's real timer, ticking faster
    qtbot.addWidget(w)
    w.show()
    return w


def test_drip_feed_server_status_bar_says_update_failed(
    qtbot,
    tmp_path: Path,
    clock: Clock,
    keys: tuple[Path, Path],
    hostile: HostileServer,  # noqa: ANN001
) -> None:
    sync = PolicySync(
        hostile.url,
        load_public_key(keys[1]),
        BundleStore(tmp_path / "data" / "bundles"),
        client=httpx.Client(timeout=httpx.Timeout(5.0)),  # longer than the drip: no read ever times out
        poll_deadline=1.0,
    )
    sync.start_offline()
    stop = threading.Event()
    thread = threading.Thread(
        target=sync.run, args=(stop,), kwargs={"interval": 0.2, "max_backoff": 0.4}, name="policy-sync", daemon=True
    )
    thread.start()
    try:
        w = window_on(qtbot, tmp_path, clock, sync)
        qtbot.waitUntil(lambda: " · online · " in w.status_label.text(), timeout=10000)
        sign_in(qtbot, w, "dr_aly")
        assert w.status_label.text().startswith("Policies: v3 (") and w.patients.rows

        hostile.drip.set()  # the server (or anyone in the middle) now answers a byte at a time
        qtbot.waitUntil(lambda: "update failed" in w.status_label.text(), timeout=10000)
        text = w.status_label.text()
        assert " · offline · " in text and "Policies: v3 (" in text
        assert "update failed: the policy server did not finish answering within the poll deadline of 1 s" in text
        assert thread.is_alive() and w.patients.rows  # the last-known-good policies still decide

        hostile.drip.clear()  # the server is well again: the next poll is a success
        qtbot.waitUntil(lambda: "update failed" not in w.status_label.text(), timeout=10000)
        assert " · online · " in w.status_label.text()
    finally:
        stop.set()
        thread.join(5)


def test_rolled_back_active_bundle_status_bar_says_both_versions(
    qtbot,
    tmp_path: Path,
    clock: Clock,
    keys: tuple[Path, Path],  # noqa: ANN001
) -> None:
    store = tmp_path / "data" / "bundles"
    store.mkdir(parents=True)
    (store / "active.bundle").write_bytes(bundle(keys, 2))  # an older, validly signed bundle put back
    sync = PolicySync(
        "http://127.0.0.1:9/current.bundle", load_public_key(keys[1]), BundleStore(store), floor=MemoryFloor(3)
    )
    sync.start_offline()
    w = window_on(qtbot, tmp_path, clock, sync)
    text = w.status_label.text()
    assert text.startswith("Policies: none · offline · ")
    assert "bundle version 2 is older than version 3, the highest ever activated on this workstation" in text
    sign_in(qtbot, w, "dr_aly")
    assert w.patients.rows == []  # nothing is shown without a trusted policy set
