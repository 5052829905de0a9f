"""Shipping this workstation's audit log to the hospital's collector, as the settings name it:
an https:// FHIR base (``FhirHttpDestination``) or ``syslog-tls://HOST:PORT``
(``SyslogTlsDestination``), both checked against the configured CA file (or the system's CAs).

The shipper runs on a background thread with its own connection to the audit log (the app's
writes stay in their own transactions), and stops with the app after one last attempt to ship
what is left. Qt-free."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from authz.audit import AuditChain
from authz.audit_ship import AuditShipper, Destination, FhirHttpDestination, ShippingError, SyslogTlsDestination

SHIP_INTERVAL = 5.0  # seconds between shipments while all is well (backing off while the collector fails)


def destination(url: str, ca_file: Path | None, timeout: float = 5.0) -> Destination:
    parts = urlsplit(url)
    if parts.scheme == "syslog-tls":
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"{url}: expected syslog-tls://HOST:PORT")
        ca = str(ca_file) if ca_file else None  # None: the system's CAs
        return SyslogTlsDestination(parts.hostname, parts.port, ca, timeout=timeout)  # type: ignore[arg-type]
    if parts.scheme == "https":
        verify = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        return FhirHttpDestination(url, client=httpx.Client(verify=verify, timeout=httpx.Timeout(timeout)))
    raise ValueError(f"{url}: expected an https:// FHIR base URL or syslog-tls://HOST:PORT")


def shipper_factory(url: str, ca_file: Path | None) -> Callable[[AuditChain], AuditShipper]:
    """What ``Workstation(shipper_factory=...)`` takes: a shipper on its own connection to the log."""
    target = destination(url, ca_file)

    def make(chain: AuditChain) -> AuditShipper:
        return AuditShipper(AuditChain(chain.path, workstation_id=chain.workstation_id), target)

    return make


def ship_in_background(
    shipper: AuditShipper, stop: threading.Event, interval: float = SHIP_INTERVAL
) -> threading.Thread:
    """Ships every ``interval`` seconds until ``stop`` is set, then tries once more so what the last
    minutes wrote leaves with the app if the collector is there (what does not stays queued)."""

    def run() -> None:
        shipper.run(stop, interval=interval)
        try:
            shipper.ship()
        except ShippingError:
            pass  # stays queued for the next start
        except Exception as exc:  # the app is closing: say why, never crash on the way out
            shipper.last_error = f"unexpected: {exc!r}"

    thread = threading.Thread(target=run, name="audit-upload", daemon=True)
    thread.start()
    return thread
