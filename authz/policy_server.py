"""``ccc-authz serve``: the policy server. It serves the newest bundle in a directory at
``/current.bundle`` with a strong ETag (the bundle's SHA-256) and answers ``If-None-Match`` with
304, optionally behind a bearer token; and the policy team's signed rollout notice, when the
directory holds one, at ``/rollout.notice`` (rollout.py; canary workstations read it).

It is a convenience for a single ward (a laptop or a ward server); production serves bundles from
nginx or any CDN (see docs/nginx.conf), which are built to face many clients. Still, a slow or
hostile client must not stop the others: one thread per connection, at most ``max_connections``
of them (a new connection when all are taken evicts the one that has waited longest for its
request line and headers, so clients that send their request at once are always served), every
socket operation bounded by ``io_timeout``, the request's headers by ``header_deadline`` and the
whole connection by ``connection_deadline`` (a client dripping a byte every few seconds is cut)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import socket
import tarfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .bundle import MAGIC, MANIFEST, SIGNATURE_SIZE
from .rollout import NOTICE_FILE


def bundle_version(path: Path) -> int:
    """The version in a bundle's manifest (the server trusts its own directory; clients verify)."""
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        return -1
    try:
        with tarfile.open(fileobj=io.BytesIO(data[len(MAGIC) + SIGNATURE_SIZE :]), mode="r:") as tar:
            member = tar.extractfile(MANIFEST)
            return int(json.loads(member.read())["version"]) if member else -1
    except (tarfile.TarError, KeyError, ValueError):
        return -1


def newest_bundle(directory: Path) -> Path | None:
    bundles = [(bundle_version(p), p) for p in directory.glob("*.bundle")]
    bundles = [(v, p) for v, p in bundles if v > 0]
    return max(bundles)[1] if bundles else None


MAX_CONNECTIONS = 64
IO_TIMEOUT = 10.0  # seconds any one read or write of a connection may take
HEADER_DEADLINE = 10.0  # seconds from accepting a connection to the end of its request headers
CONNECTION_DEADLINE = 120.0  # seconds a whole connection may take (a bundle is a few hundred KiB)


@dataclass
class _Connection:
    accepted: float  # time.monotonic()
    answering: bool = False  # its request line and headers are in


class BundleServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` at once, each within its deadlines
    (enforced between accepts, every half second, by ``service_actions``)."""

    request_queue_size = 128
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        max_connections: int = MAX_CONNECTIONS,
        header_deadline: float = HEADER_DEADLINE,
        connection_deadline: float = CONNECTION_DEADLINE,
    ) -> None:
        self.max_connections = max_connections
        self.header_deadline = header_deadline
        self.connection_deadline = connection_deadline
        self.connections: dict[socket.socket, _Connection] = {}
        self.lock = threading.Lock()
        super().__init__(address, handler)

    def verify_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> bool:
        """Admits a new connection, evicting when all are taken the one longest still sending its
        request; refuses it when every connection is busy answering."""
        assert isinstance(request, socket.socket)
        with self.lock:
            if len(self.connections) >= self.max_connections:
                waiting = [(c.accepted, s) for s, c in self.connections.items() if not c.answering]
                if not waiting:
                    return False
                oldest = min(waiting, key=lambda pair: pair[0])[1]
                _cut(oldest)
                del self.connections[oldest]
            self.connections[request] = _Connection(time.monotonic())
        return True

    def answering(self, request: socket.socket) -> None:
        with self.lock:
            if request in self.connections:
                self.connections[request].answering = True

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        with self.lock:
            self.connections.pop(request, None)  # type: ignore[arg-type]
        super().shutdown_request(request)

    def service_actions(self) -> None:
        """Cuts every connection past its deadline: its thread then ends (its read or write fails)."""
        now = time.monotonic()
        with self.lock:
            late = [
                s
                for s, c in self.connections.items()
                if now - c.accepted > (self.connection_deadline if c.answering else self.header_deadline)
            ]
            for sock in late:
                _cut(sock)
                del self.connections[sock]

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        pass  # a client that went away or was cut: nothing to report, and no traceback on stderr


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    directory: Path
    token: str | None = None
    timeout = IO_TIMEOUT  # every read and write of the socket (StreamRequestHandler sets it)
    server: BundleServer

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self.server.answering(self.request)
        return parsed

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        route = self.path.split("?")[0]
        if route not in ("/current.bundle", "/bundle", f"/{NOTICE_FILE}"):
            self._status(404, b"not found\n")
            return
        if self.token is not None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                self._status(401, b"a bearer token is required\n")
                return
        path = self.directory / NOTICE_FILE if route == f"/{NOTICE_FILE}" else newest_bundle(self.directory)
        if path is None or not path.is_file():
            self._status(404, b"nothing published\n")
            return
        data = path.read_bytes()
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class TokenFileError(ValueError):
    """The bearer token file cannot be used; the message says which file and why."""


def read_token_file(path: Path) -> str:
    """The bearer token in ``path``; refuses an unreadable, empty or whitespace-only file (an
    empty token would let anyone sending "Bearer " in)."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"{path}: cannot read the token file: {exc}") from None
    if not token:
        raise TokenFileError(f"{path}: the token file is empty (or only whitespace): put the bearer token in it")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise TokenFileError(f"{path}: the token must be one line without spaces or control characters")
    return token


@dataclass(frozen=True)
class Limits:
    max_connections: int = MAX_CONNECTIONS
    header_deadline: float = HEADER_DEADLINE  # seconds
    connection_deadline: float = CONNECTION_DEADLINE  # seconds


def make_server(
    directory: Path, port: int, host: str = "127.0.0.1", token: str | None = None, limits: Limits = Limits()
) -> BundleServer:
    if token is not None and not token.strip():
        raise TokenFileError("the bearer token is empty")
    handler = type("BundleHandler", (_Handler,), {"directory": directory, "token": token})
    return BundleServer(
        (host, port), handler, limits.max_connections, limits.header_deadline, limits.connection_deadline
    )


def serve_in_thread(
    directory: Path, port: int = 0, token: str | None = None, limits: Limits = Limits()
) -> tuple[BundleServer, str]:
    server = make_server(directory, port, token=token, limits=limits)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/current.bundle"
