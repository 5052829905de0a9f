"""``ccc-authz serve`` against hostile clients (issue 16, part 7), on 127.0.0.1 with an ephemeral
port: slow-loris clients holding many connections, a client dripping its headers, and an empty
token file. Before, every connection kept a thread with no timeout, and an empty ``--token-file``
let anyone sending ``Authorization: Bearer`` in."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from authz.bundle import build_bundle, generate_keys, load_private_key
from authz.policy_server import Limits, serve_in_thread

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keys = generate_keys(tmp_path_factory.mktemp("keys"))
    directory = tmp_path_factory.mktemp("published")
    data = build_bundle(POLICIES, load_private_key(keys[0]), 3, {"executed": 0, "passed": 0}, created_at="2026-11-01")
    (directory / "policies-v3.bundle").write_bytes(data)
    return directory


def _slow_client(port: int) -> socket.socket:
    """A slow-loris connection: a request line and half a header, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /current.bundle HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    return sock


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (the client drips one byte of a
    header every 0.2 s meanwhile, as a slow-loris client does)."""
    deadline = time.monotonic() + within
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"a")
            if sock.recv(1024) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset or broken pipe: closed
            return True
    return False


def test_slowloris_connections_do_not_keep_a_normal_client_from_the_bundle(published: Path) -> None:
    """Three times the connection limit of slow-loris connections: the server holds at most its
    limit of them (one thread each), and a normal client still gets the bundle at once."""
    limit = 16
    server, url = serve_in_thread(published, limits=Limits(max_connections=limit))
    before = threading.active_count()
    slow = []
    try:
        slow = [_slow_client(server.server_port) for _ in range(3 * limit)]
        time.sleep(0.5)
        assert threading.active_count() - before <= limit
        started = time.monotonic()
        response = httpx.get(url, timeout=5)
        assert response.status_code == 200
        assert response.content == (published / "policies-v3.bundle").read_bytes()
        assert time.monotonic() - started < 3
        assert len(server.connections) <= limit
    finally:
        for sock in slow:
            sock.close()
        server.shutdown()
        server.server_close()


def test_slowloris_dripping_headers_is_cut_at_the_header_deadline(published: Path) -> None:
    server, _ = serve_in_thread(published, limits=Limits(header_deadline=1.0))
    try:
        sock = _slow_client(server.server_port)
        started = time.monotonic()
        assert _closed_by_server(sock, within=5), "a client dripping its headers kept its connection"
        assert time.monotonic() - started < 3
        sock.close()
        assert httpx.get(f"http://127.0.0.1:{server.server_port}/current.bundle", timeout=5).status_code == 200
    finally:
        server.shutdown()
        server.server_close()


def test_slowloris_reader_of_the_bundle_is_cut_at_the_connection_deadline(published: Path, tmp_path: Path) -> None:
    """A client that asks for a large bundle and then reads nothing is cut (its thread freed)."""
    big = tmp_path / "big"
    big.mkdir()
    # the served file is read whole and written at once: 32 MiB more than loopback buffers hold
    (big / "policies-v3.bundle").write_bytes((published / "policies-v3.bundle").read_bytes() + bytes(32 << 20))
    server, _ = serve_in_thread(big, limits=Limits(connection_deadline=1.0))
    try:
        sock = socket.create_connection(("127.0.0.1", server.server_port), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /current.bundle HTTP/1.0\r\n\r\n")
        deadline = time.monotonic() + 5
        while server.connections and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not server.connections, "a client reading nothing kept its connection past the deadline"
        sock.close()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("content", ["", "  \n\t\n"], ids=["empty", "whitespace"])
def test_empty_token_file_is_refused_at_start(published: Path, tmp_path: Path, content: str) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(content)
    command = [sys.executable, "-m", "authz.cli", "serve", str(published), "--port", "0"]
    try:
        result = subprocess.run(
            [*command, "--token-file", str(token_file)], capture_output=True, text=True, timeout=20, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        pytest.fail("ccc-authz serve started with an empty token file")
    assert result.returncode == 2
    assert f"{token_file}: the token file is empty" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_token_file_is_refused_at_start(published: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "authz.cli", "serve", str(published), "--port", "0"]
        + ["--token-file", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "cannot read the token file" in result.stderr and "Traceback" not in result.stderr


def test_a_token_is_required_when_the_file_has_one(published: Path) -> None:
    server, url = serve_in_thread(published, token="s3cret")
    try:
        assert httpx.get(url, timeout=5).status_code == 401
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=5) as sock:
            sock.sendall(b"GET /current.bundle HTTP/1.0\r\nAuthorization: Bearer \r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.0 401")
        assert httpx.get(url, headers={"Authorization": "Bearer s3cret"}, timeout=5).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
