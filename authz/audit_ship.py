"""Shipping audit records to the hospital's audit repository, the way IHE ATNA does it.

The audit table is append-only and ordered, so the queue is simply "every record after the last
one a destination acknowledged": a small ``audit_shipping`` table remembers that position per
destination, in the same SQLite file, so nothing is lost while offline or across restarts.
Delivery is at least once; every message carries the record id, so the repository keeps one copy
of each (idempotent by record id).

Every record shipped carries its place in the chain (log id, seq, prev hash, hash), and the
last record of each batch the latest checkpoint the guard signed: the collector sees a gap (a
seq missing), a rewrite (a record that does not follow the one before, or comes again with
another hash) and, compared with the log later (``ccc-authz audit verify --against``), a deleted
tail or a rewrite after shipping.

Destinations:
- ``SyslogTlsDestination``: RFC 5424 messages over TLS (RFC 5425, octet-counting framing),
  facility 10 (security/authorization), the FHIR AuditEvent JSON as the message and the record
  id and chain fields in structured data (``ccc@32473``; the checkpoint in ``cccCheckpoint@32473``);
- ``FhirHttpDestination``: ``PUT {base}/AuditEvent/{record id}`` (idempotent), with an optional
  bearer token from a provider callable (never stored).
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx

from .audit import AuditChain, AuditRecord
from .audit_export import to_fhir
from .guard import Checkpoint
from .policy import ALLOW

FACILITY_AUTHPRIV = 10
SEVERITY_INFO, SEVERITY_NOTICE, SEVERITY_WARNING = 6, 5, 4


class ShippingError(Exception):
    """The destination did not take the records; they stay queued."""


@dataclass(frozen=True)
class ChainPosition:
    """What the shipper tells a destination about the log a batch comes from."""

    log_id: str = ""
    checkpoint: Checkpoint | None = None


class Destination:
    name: str
    position: ChainPosition = ChainPosition()  # set by the shipper before each batch

    def send(self, records: Sequence[AuditRecord]) -> None:  # pragma: no cover - interface
        raise NotImplementedError


def _severity(r: AuditRecord) -> int:
    if r.event_type.startswith("break_glass"):
        return SEVERITY_WARNING
    if r.kind == "decision" and r.effect != ALLOW:
        return SEVERITY_NOTICE
    return SEVERITY_INFO


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_message(
    r: AuditRecord,
    hostname: str,
    app: str = "ccc-workstation",
    log_id: str = "",
    checkpoint: Checkpoint | None = None,
) -> bytes:
    """One RFC 5424 message, framed for TLS transport (RFC 5425: length, space, message)."""
    pri = FACILITY_AUTHPRIV * 8 + _severity(r)
    stamp = datetime.fromisoformat(r.time).isoformat(timespec="microseconds").replace("+00:00", "Z")
    sd = (
        f'[ccc@32473 recordId="{_sd_escape(r.record_id)}" seq="{r.seq}" prevHash="{r.prev_hash}" hash="{r.hash}"'
        f' logId="{_sd_escape(log_id)}" kind="{_sd_escape(r.kind)}"]'
    )
    if checkpoint is not None:
        sd += (
            f'[cccCheckpoint@32473 logId="{_sd_escape(checkpoint.log_id)}" number="{checkpoint.number}"'
            f' seq="{checkpoint.seq}" head="{checkpoint.head}" time="{_sd_escape(checkpoint.time)}"'
            f' signature="{_sd_escape(checkpoint.signature)}"]'
        )
    body = json.dumps(to_fhir(r, log_id, checkpoint), separators=(",", ":"), ensure_ascii=False)
    msg = f"<{pri}>1 {stamp} {hostname[:255] or '-'} {app} - IHE+FHIR {sd} \ufeff{body}".encode()
    return f"{len(msg)} ".encode() + msg


class SyslogTlsDestination(Destination):
    def __init__(
        self, host: str, port: int, ca_file: str, timeout: float = 5.0, client_cert: tuple[str, str] | None = None
    ) -> None:
        self.name = f"syslog-tls://{host}:{port}"
        self.host, self.port, self.timeout = host, port, timeout
        self.context = ssl.create_default_context(cafile=ca_file)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        if client_cert:
            self.context.load_cert_chain(*client_cert)
        self.hostname = socket.gethostname()

    def send(self, records: Sequence[AuditRecord]) -> None:
        log_id, checkpoint = self.position.log_id, self.position.checkpoint
        payload = b"".join(
            syslog_message(r, self.hostname, log_id=log_id, checkpoint=checkpoint if r is records[-1] else None)
            for r in records
        )
        try:
            with (
                socket.create_connection((self.host, self.port), timeout=self.timeout) as raw,
                self.context.wrap_socket(raw, server_hostname=self.host) as tls,
            ):
                tls.sendall(payload)
                try:
                    # close_notify, then wait for the peer to close: everything written was read.
                    # Syslog has no acknowledgements (RFC 5425 §4.2); this is the best evidence TLS gives.
                    tls.unwrap()
                except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError):
                    pass
        except (OSError, ssl.SSLError) as exc:
            raise ShippingError(f"{self.name}: {exc}") from exc


class FhirHttpDestination(Destination):
    def __init__(
        self, base_url: str, client: httpx.Client | None = None, token_provider: Callable[[], str] | None = None
    ) -> None:
        self.name = base_url
        self.base = base_url.rstrip("/")
        self.client = client or httpx.Client(timeout=httpx.Timeout(5.0))
        self.token_provider = token_provider

    def send(self, records: Sequence[AuditRecord]) -> None:
        headers = {"Content-Type": "application/fhir+json"}
        if self.token_provider is not None:
            headers["Authorization"] = f"Bearer {self.token_provider()}"
        log_id, checkpoint = self.position.log_id, self.position.checkpoint
        for r in records:
            event = to_fhir(r, log_id, checkpoint if r is records[-1] else None)
            try:
                response = self.client.put(
                    f"{self.base}/AuditEvent/{r.record_id}", headers=headers, content=json.dumps(event)
                )
            except httpx.HTTPError as exc:
                raise ShippingError(f"{self.name}: {exc}") from exc
            if response.status_code >= 300:
                raise ShippingError(f"{self.name}: HTTP {response.status_code} for record {r.record_id}")


@dataclass
class ShippingState:
    destination: str
    shipped_seq: int
    pending: int
    last_error: str


class AuditShipper:
    """Ships the records a destination has not acknowledged yet, in order, in batches."""

    def __init__(self, chain: AuditChain, destination: Destination, batch_size: int = 200) -> None:
        self.chain = chain
        self.destination = destination
        self.batch_size = batch_size
        self.last_error = ""
        self._lock = threading.Lock()
        chain.conn.execute(
            "CREATE TABLE IF NOT EXISTS audit_shipping (destination TEXT PRIMARY KEY, shipped_seq INTEGER NOT NULL)"
        )

    def shipped_seq(self) -> int:
        row = self.chain.conn.execute(
            "SELECT shipped_seq FROM audit_shipping WHERE destination = ?", (self.destination.name,)
        ).fetchone()
        return row[0] if row else 0

    def ship(self) -> int:
        """Sends everything pending; returns how many records were acknowledged. A failure keeps
        the rest queued and raises ShippingError."""
        with self._lock:
            sent = 0
            while True:
                batch = list(self.chain.records(after_seq=self.shipped_seq(), limit=self.batch_size))
                if not batch:
                    self.last_error = ""
                    return sent
                self.destination.position = ChainPosition(self.chain.log_id, self.chain.latest_checkpoint())
                try:
                    self.destination.send(batch)
                except ShippingError as exc:
                    self.last_error = str(exc)
                    raise
                self.chain.conn.execute(
                    "INSERT INTO audit_shipping (destination, shipped_seq) VALUES (?, ?) "
                    "ON CONFLICT(destination) DO UPDATE SET shipped_seq = excluded.shipped_seq",
                    (self.destination.name, batch[-1].seq),
                )
                sent += len(batch)

    def run(
        self, stop: threading.Event, interval: float = 5.0, max_backoff: float = 300.0, rng: random.Random | None = None
    ) -> None:
        """Ships until ``stop`` is set: every ``interval`` seconds when all is well, backing off
        exponentially (with jitter, up to ``max_backoff``) while the destination fails."""
        rng = rng or random.Random()
        delay = interval
        while not stop.is_set():
            try:
                self.ship()
                delay = interval
            except ShippingError:
                delay = min(max_backoff, delay * 2)
            except Exception as exc:  # never let the shipping thread die silently
                self.last_error = f"unexpected: {exc!r}"
                delay = min(max_backoff, delay * 2)
            stop.wait(delay * rng.uniform(0.8, 1.2))

    def state(self) -> ShippingState:
        shipped = self.shipped_seq()
        total = self.chain.conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()[0]
        return ShippingState(self.destination.name, shipped, total - shipped, self.last_error)
