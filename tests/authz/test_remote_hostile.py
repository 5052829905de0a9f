"""A hostile or hijacked Cerbos PDP cannot stop decisions: against real HTTP servers on 127.0.0.1
(ephemeral ports, stopped by each test), a PDP that drips its answer is cut off at the decision
deadline, a gigabyte answer at the size limit while it streams, and an answer of the wrong JSON
type is refused; each time the embedded engine decides instead, in bounded time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from authz import Engine
from authz.remote import MAX_ANSWER_BYTES, DecisionService, RemotePDP

POLICIES = Path(__file__).resolve().parents[2] / "policies"
P1 = {"patient_id": "p1", "hospital_id": "h1", "care_team": ["dr_aly"], "assigned_physicians": ["dr_aly"]}
BODY = {
    "requestId": "r1",
    "principal": {"id": "dr_aly", "roles": ["physician"], "attr": {"hospital_ids": ["h1"]}},
    "resources": [{"resource": {"kind": "patient_record", "id": "p1", "attr": P1}, "actions": ["view"]}],
}


class PDP:
    """A 'PDP' on 127.0.0.1 whose every POST is answered by ``answer(handler)``."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.sent = 0
        self.stop_event = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    answer(self)
                except OSError:
                    pass  # the workstation hung up: what these tests want

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_directory(POLICIES)


@pytest.fixture
def pdp() -> Iterator[Callable[[Callable[[PDP, BaseHTTPRequestHandler], None]], PDP]]:
    started: list[PDP] = []

    def start(answer: Callable[[PDP, BaseHTTPRequestHandler], None]) -> PDP:
        box: list[PDP] = []
        box.append(PDP(lambda h: answer(box[0], h)))
        started.append(box[0])
        return box[0]

    yield start
    for p in started:
        p.stop()


def decide(engine: Engine, url: str, timeout: float) -> tuple[DecisionService, dict, float]:  # type: ignore[type-arg]
    service = DecisionService(lambda: engine, RemotePDP(url, timeout=timeout))
    started = time.monotonic()
    answer = service.check_request(BODY)
    return service, answer, time.monotonic() - started


def test_drip_feed_pdp_hits_decision_deadline_and_the_embedded_engine_decides(pdp, engine: Engine) -> None:  # noqa: ANN001
    def drip(p: PDP, h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
        while not p.stop_event.wait(0.3):
            h.wfile.write(b" ")
            h.wfile.flush()

    server = pdp(drip)
    service, answer, elapsed = decide(engine, server.url, timeout=1.0)  # each byte comes well within 1 s
    assert elapsed < 1.8, elapsed
    assert service.last_source == "embedded"
    assert "did not finish answering within the decision deadline of 1 s" in service.last_remote_error
    assert answer["results"][0]["actions"]["view"] == "EFFECT_ALLOW"


def test_gigabyte_pdp_answer_stops_at_size_limit(pdp, engine: Engine) -> None:  # noqa: ANN001
    def flood(p: PDP, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.end_headers()  # HTTP/1.0, no length: the answer ends when the server closes
        block = b"[" * (1024 * 1024)
        while p.sent < 1024**3:
            h.wfile.write(block)
            p.sent += len(block)

    server = pdp(flood)
    service, answer, elapsed = decide(engine, server.url, timeout=10.0)
    assert service.last_source == "embedded"
    assert f"sent more than the {MAX_ANSWER_BYTES} bytes allowed: stopped reading there" in service.last_remote_error
    time.sleep(0.2)
    assert server.sent < 1024**3 / 8 and answer["results"][0]["actions"]["view"] == "EFFECT_ALLOW"


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"allow"', b"[" * 100000], ids=["list", "string", "nested"])
def test_pdp_answer_of_the_wrong_json_type_falls_back(pdp, engine: Engine, payload: bytes) -> None:  # noqa: ANN001
    def wrong(p: PDP, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)

    service, answer, _ = decide(engine, pdp(wrong).url, timeout=2.0)
    assert service.last_source == "embedded" and "answered with" in service.last_remote_error
    assert answer["results"][0]["actions"]["view"] == "EFFECT_ALLOW"
