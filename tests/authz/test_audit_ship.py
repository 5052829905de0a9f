"""Shipping audit records: RFC 5425 syslog over TLS to a real rsyslog, and FHIR AuditEvents to an
HTTP endpoint; at least once, idempotent by record id, nothing lost while the collector is down."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from authz.audit import AuditChain, AuditRecord
from authz.audit_ship import AuditShipper, FhirHttpDestination, ShippingError, SyslogTlsDestination
from tests.support.rsyslog import RsyslogCollector
from tests.support.tls import make_pki


def _records(chain: AuditChain, n: int, start: int = 0) -> list[AuditRecord]:
    return chain.append_many(
        AuditRecord("decision", "dr_aly", "view", ["physician"], "patient_record", f"p{i}", f"p{i}", "EFFECT_ALLOW")
        for i in range(start, start + n)
    )


def _ids(lines: list[str]) -> list[str]:
    return [m.group(1) for line in lines for m in [re.search(r'recordId="([^"]+)"', line)] if m]


def _wait_for(predicate, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _need_rsyslog() -> None:
    """scripts/system-deps installs rsyslog; on CI its absence is a failure, not a skip."""
    if not RsyslogCollector.available():
        if os.environ.get("CI"):
            pytest.fail("rsyslogd is missing on CI: scripts/system-deps should have installed it")
        pytest.skip("rsyslogd is not installed (scripts/system-deps installs it)")


def test_syslog_tls_survives_a_collector_outage(tmp_path: Path) -> None:
    _need_rsyslog()
    pki = make_pki(tmp_path / "pki")
    collector = RsyslogCollector(tmp_path / "rsyslog", pki).start()
    chain = AuditChain(tmp_path / "audit.db")
    destination = SyslogTlsDestination("127.0.0.1", collector.port, str(pki.ca_cert), timeout=2)
    shipper = AuditShipper(chain, destination, batch_size=25)
    try:
        first = _records(chain, 60)
        assert shipper.ship() == 60
        assert _wait_for(lambda: len(set(_ids(collector.received()))) == 60)

        collector.stop()  # the collector goes down; records keep being written and queue up
        queued = _records(chain, 40, start=60)
        with pytest.raises(ShippingError):
            shipper.ship()
        state = shipper.state()
        assert state.pending == 40 and state.last_error

        shipper2 = AuditShipper(AuditChain(tmp_path / "audit.db"), destination)  # a restart keeps the queue
        assert shipper2.shipped_seq() == 60
        collector = RsyslogCollector(tmp_path / "rsyslog2", pki)
        collector.port = destination.port
        collector.start()
        assert shipper2.ship() == 40
        assert _wait_for(lambda: set(_ids(collector.received())) == {r.record_id for r in queued})
        assert shipper2.state().pending == 0
        line = collector.received()[0]
        event = json.loads(line[line.index("{") :])
        assert event["resourceType"] == "AuditEvent" and event["id"] in {r.record_id for r in first + queued}
    finally:
        collector.stop()


def test_syslog_refuses_an_untrusted_server(tmp_path: Path) -> None:
    _need_rsyslog()
    pki = make_pki(tmp_path / "pki")
    other = make_pki(tmp_path / "other")
    collector = RsyslogCollector(tmp_path / "rsyslog", pki).start()
    try:
        chain = AuditChain(tmp_path / "audit.db")
        _records(chain, 3)
        shipper = AuditShipper(chain, SyslogTlsDestination("127.0.0.1", collector.port, str(other.ca_cert)))
        with pytest.raises(ShippingError, match="certificate"):
            shipper.ship()
        assert shipper.state().pending == 3
    finally:
        collector.stop()


class _FhirRepository(BaseHTTPRequestHandler):
    store: dict[str, dict] = {}
    failures_left = 0
    puts = 0

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        cls = type(self)
        cls.puts += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if cls.failures_left > 0:
            cls.failures_left -= 1
            self.send_response(500)
            self.end_headers()
            return
        assert self.path == f"/fhir/AuditEvent/{body['id']}"
        cls.store[body["id"]] = body
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_fhir_endpoint_gets_every_record_once_in_effect(tmp_path: Path) -> None:
    _FhirRepository.store, _FhirRepository.failures_left, _FhirRepository.puts = {}, 0, 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FhirRepository)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        chain = AuditChain(tmp_path / "audit.db")
        records = _records(chain, 30)
        shipper = AuditShipper(
            chain,
            FhirHttpDestination(f"http://127.0.0.1:{server.server_port}/fhir", token_provider=lambda: "t0ken"),
            batch_size=10,
        )
        _FhirRepository.failures_left = 1  # the repository fails in the middle of the second batch
        with pytest.raises(ShippingError):
            shipper.ship()
        assert shipper.state().pending == 30
        assert shipper.ship() > 0
        assert set(_FhirRepository.store) == {r.record_id for r in records}
        assert _FhirRepository.puts > 30  # a batch was resent: at least once, idempotent by id
        assert shipper.state().pending == 0
        # Each event carries its place in the chain: the collector sees a gap or a rewrite.
        from authz.audit_verify import _from_json

        got = sorted((c for c in map(_from_json, _FhirRepository.store.values()) if c), key=lambda c: c.seq)
        assert [(c.seq, c.hash, c.prev_hash) for c in got] == [(r.seq, r.hash, r.prev_hash) for r in records]
        details = {
            d["type"]: d["valueString"] for d in _FhirRepository.store[records[0].record_id]["entity"][-1]["detail"]
        }
        assert details["logId"] == chain.log_id
    finally:
        server.shutdown()


class _FlakyDestination:
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[str] = []

    def send(self, records):  # noqa: ANN001
        if self.failures > 0:
            self.failures -= 1
            raise ShippingError("collector unreachable")
        self.received.extend(r.record_id for r in records)


def test_background_loop_backs_off_and_delivers(tmp_path: Path) -> None:
    chain = AuditChain(tmp_path / "audit.db", workstation_id="ward-7")
    records = _records(chain, 12)
    destination = _FlakyDestination(failures=3)
    shipper = AuditShipper(chain, destination)  # type: ignore[arg-type]
    stop = threading.Event()
    thread = threading.Thread(target=shipper.run, args=(stop, 0.01, 0.05), daemon=True)
    thread.start()
    assert _wait_for(lambda: shipper.state().pending == 0, 5)
    stop.set()
    thread.join(5)
    assert destination.received == [r.record_id for r in records]
    assert shipper.state().last_error == ""


def test_collector_file_shows_a_rewrite_and_a_deleted_tail_after_shipping(tmp_path: Path) -> None:
    """Shipped to a real rsyslog with the guard's checkpoints, then rewritten (every later hash
    recomputed) and cut short on the workstation: ``audit verify --against`` the collector's own
    file names both, and the records carry their chain fields and the signed checkpoint."""
    import sqlite3
    import subprocess
    import sys

    from authz.audit import chain_hash, read_records
    from authz.audit_command import EXIT_TAMPERED
    from tests.support.guard import running_guard

    _need_rsyslog()
    pki = make_pki(tmp_path / "pki")
    collector = RsyslogCollector(tmp_path / "rsyslog", pki).start()
    db = tmp_path / "audit.db"
    try:
        with running_guard(tmp_path / "guard") as guard:
            chain = AuditChain(db, guard=guard, checkpoint_every=10)
            records = _records(chain, 40)
            shipper = AuditShipper(
                chain, SyslogTlsDestination("127.0.0.1", collector.port, str(pki.ca_cert), timeout=2), batch_size=25
            )
            assert shipper.ship() == 40
            assert _wait_for(lambda: len(set(_ids(collector.received()))) == 40)
            chain.close()
        received = collector.received()
        assert f'logId="{chain.log_id}"' in received[0] and f'prevHash="{records[0].prev_hash}"' in received[0]
        assert sum("cccCheckpoint@32473" in line for line in received) == 2  # the last record of each batch
    finally:
        collector.stop()
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    conn.execute("UPDATE audit SET effect = 'EFFECT_DENY' WHERE seq = 7")
    prev = conn.execute("SELECT hash FROM audit WHERE seq = 6").fetchone()[0]
    for r in list(read_records(conn, after_seq=6)):
        r.prev_hash = prev
        r.hash = chain_hash(prev, r)
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", (r.prev_hash, r.hash, r.seq))
        prev = r.hash
    conn.execute("DELETE FROM audit WHERE seq > 33")
    conn.commit()
    conn.close()
    received_file = tmp_path / "rsyslog" / "received.log"
    result = subprocess.run(
        [sys.executable, "-m", "authz.cli", "audit", "verify", str(db), "--against", str(received_file)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert result.returncode == EXIT_TAMPERED, result.stdout + result.stderr
    assert "record 7 differs from what the collector received" in result.stdout
    assert "records 34-40 are gone" in result.stdout
    plain = subprocess.run(
        [sys.executable, "-m", "authz.cli", "audit", "verify", str(db)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert plain.returncode == 0  # the chain alone is fooled: that is why the collector's copy matters
