"""One HTTP request to a peer that may be hostile (a hijacked policy server, a rogue PDP), answered
within a size limit and one overall deadline, or refused with a reason.

A per-read timeout alone does not bound a request: a server that sends a byte every few seconds
never lets it fire. So each request has a deadline for connecting, the headers and the body
together. The client's own timeouts are capped to what is left of it, and at the deadline a timer
shuts down every socket the request opened (found through httpx's ``trace`` extension), which
wakes a read blocked on such a server at once. The request asks for ``Connection: close`` so that
it always opens, and so knows, its own connection. The body is streamed as sent
(``Accept-Encoding: identity``: no decompression bomb) and reading stops at ``max_bytes``; a
``Content-Length`` above it is refused before reading. The name lookup is not covered: the
operating system's resolver bounds it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from .errors import AuthzError

CHUNK = 64 * 1024


class AnswerRefused(AuthzError):
    """The peer could not be reached, or did not answer within the limits: says which and how."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes


def bounded_request(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    peer: str,
    seconds: float,
    max_bytes: int,
    deadline_name: str = "deadline",
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
    read_body: Callable[[int], bool] = lambda status: True,
) -> Answer:
    """The answer to one request, its body read only when ``read_body(status)`` says so. Raises
    ``AnswerRefused`` naming ``peer`` (e.g. "policy server") and what went wrong."""
    headers = {**(headers or {}), "Accept-Encoding": "identity", "Connection": "close"}
    with Deadline(seconds, f"the {peer} did not finish answering within the {deadline_name} of {seconds:g} s") as end:
        try:
            with client.stream(
                method,
                url,
                headers=headers,
                content=content,
                timeout=_capped(client.timeout, end.remaining()),
                extensions={"trace": end.trace},
            ) as response:
                end.check()
                body = _body(response, peer, max_bytes, end) if read_body(response.status_code) else b""
                return Answer(response.status_code, response.headers, body)
        except httpx.HTTPError as exc:
            if end.reached():  # a shut socket, or a timeout capped at the deadline
                raise AnswerRefused(end.message) from None
            raise AnswerRefused(f"{peer} unreachable: {exc.__class__.__name__}: {exc}") from None


def _capped(own: httpx.Timeout, remaining: float) -> httpx.Timeout:
    """The client's own timeouts, none longer than what is left of the deadline."""

    def cap(value: float | None) -> float:
        return remaining if value is None else min(value, remaining)

    return httpx.Timeout(connect=cap(own.connect), read=cap(own.read), write=cap(own.write), pool=cap(own.pool))


def _body(response: httpx.Response, peer: str, max_bytes: int, end: Deadline) -> bytes:
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise AnswerRefused(f"{peer} sent its answer {encoding}-encoded; only plain bytes are accepted")
    length = response.headers.get("Content-Length", "")
    if length.strip().isdigit() and int(length) > max_bytes:
        raise AnswerRefused(f"{peer} offers {int(length)} bytes, more than the {max_bytes} allowed")
    body = bytearray()
    for chunk in response.iter_raw(CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise AnswerRefused(f"{peer} sent more than the {max_bytes} bytes allowed: stopped reading there")
        end.check()
    return bytes(body)


class Deadline:
    """The end of one request. At the deadline every socket the request opened is shut down."""

    def __init__(self, seconds: float, message: str) -> None:
        self.message = message
        self.end = time.monotonic() + seconds
        self.passed = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()

    def remaining(self) -> float:
        return max(self.end - time.monotonic(), 0.001)

    def reached(self) -> bool:
        return self.passed or time.monotonic() >= self.end - 0.05

    def check(self) -> None:
        if self.passed or time.monotonic() >= self.end:
            self.passed = True
            raise AnswerRefused(self.message)

    def trace(self, event: str, info: dict[str, object]) -> None:
        """httpx's ``trace`` extension: remembers each connection the request opens."""
        if event not in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            return
        stream = info.get("return_value")
        get_extra_info = getattr(stream, "get_extra_info", None)
        sock = get_extra_info("socket") if get_extra_info is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.append(sock)
                if self.passed:
                    _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.passed = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    """Ends both directions of the connection; the plain socket method also for a TLS socket, whose
    own ``shutdown`` would pull its state from under the thread reading it."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass
