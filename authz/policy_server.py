"""``ccc-authz serve``: the policy server. It serves the newest bundle in a directory at
``/current.bundle`` with a strong ETag (the bundle's SHA-256) and answers ``If-None-Match`` with
304, optionally behind a bearer token. Any static web server can do the same job in production
(see docs/nginx.conf)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .bundle import MAGIC, MANIFEST, SIGNATURE_SIZE


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


class _Handler(BaseHTTPRequestHandler):
    directory: Path
    token: str | None = None

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split("?")[0] not in ("/current.bundle", "/bundle"):
            self._status(404, b"not found\n")
            return
        if self.token is not None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                self._status(401, b"a bearer token is required\n")
                return
        path = newest_bundle(self.directory)
        if path is None:
            self._status(404, b"no bundle published\n")
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


def make_server(directory: Path, port: int, host: str = "127.0.0.1", token: str | None = None) -> ThreadingHTTPServer:
    handler = type("BundleHandler", (_Handler,), {"directory": directory, "token": token})
    return ThreadingHTTPServer((host, port), handler)


def serve_in_thread(directory: Path, port: int = 0, token: str | None = None) -> tuple[ThreadingHTTPServer, str]:
    server = make_server(directory, port, token=token)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/current.bundle"
