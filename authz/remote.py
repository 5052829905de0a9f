"""Online mode: asking a Cerbos PDP over its HTTP API, as hospitals do to scale authorization
beyond one machine, with the embedded engine as the fallback when the PDP cannot be reached.

A PDP that is down, slow, hostile or hijacked cannot stop decisions: each request has one overall
deadline (``timeout``; a PDP dripping its answer a byte at a time is cut off there) and a size
limit read while streaming (``MAX_ANSWER_BYTES``), both from ``bounded_http``; past either, the
embedded engine decides. Each request uses a connection of its own (``Connection: close``), the
price of a deadline that also covers a PDP stalling its headers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from . import api
from .bounded_http import AnswerRefused, bounded_request
from .engine import Engine
from .errors import AuthzError
from .policy import DENY

MAX_ANSWER_BYTES = 16 * 1024 * 1024


class PDPUnavailable(AuthzError):
    """The remote PDP did not answer usefully (network, timeout, 5xx)."""


class RemotePDP:
    def __init__(self, base_url: str, client: httpx.Client | None = None, timeout: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout))

    def check_request(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = bounded_request(
                self.client,
                "POST",
                f"{self.base_url}/api/check/resources",
                peer=f"Cerbos PDP at {self.base_url}",
                seconds=self.timeout,
                max_bytes=MAX_ANSWER_BYTES,
                deadline_name="decision deadline",
                headers={"Content-Type": "application/json"},
                content=json.dumps(body).encode(),
            )
        except AnswerRefused as exc:
            raise PDPUnavailable(str(exc)) from None
        if answer.status >= 500:
            raise PDPUnavailable(f"Cerbos PDP at {self.base_url} answered HTTP {answer.status}")
        try:
            decoded = json.loads(answer.body)
        except (ValueError, RecursionError):
            raise PDPUnavailable(f"Cerbos PDP at {self.base_url} answered with invalid JSON") from None
        if not isinstance(decoded, dict):
            raise PDPUnavailable(f"Cerbos PDP at {self.base_url} answered with a JSON {type(decoded).__name__}")
        return decoded


class DecisionService:
    """Decides CheckResources requests: the remote PDP first when one is configured, the embedded
    engine when it is unreachable (or not configured). With neither, everything is denied."""

    def __init__(
        self,
        embedded: Callable[[], Engine | None],
        remote: RemotePDP | None = None,
        no_policy_reason: Callable[[], str] = lambda: "no policy set is loaded",
    ) -> None:
        self.embedded = embedded
        self.remote = remote
        self.no_policy_reason = no_policy_reason
        self.last_source = ""
        self.last_remote_error = ""

    def check_request(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.remote is not None:
            try:
                response = self.remote.check_request(body)
                self.last_source, self.last_remote_error = "remote", ""
                return response
            except PDPUnavailable as exc:
                self.last_remote_error = str(exc)
        engine = self.embedded()
        if engine is None:
            self.last_source = "none"
            return deny_all(body, self.no_policy_reason())
        self.last_source = "embedded"
        return engine.check_request(body)


def deny_all(body: dict[str, Any], reason: str) -> dict[str, Any]:
    """Every action denied, for when there is no policy set to decide with (fail closed)."""
    try:
        request_id, inputs, _ = api.parse_check_request(body)
    except AuthzError as exc:
        return api.error_body(str(exc))
    results = [
        {
            "resource": {"id": i.resource.id, "kind": i.resource.kind},
            "actions": {a: DENY for a in sorted(i.actions)},
            "outputs": [{"src": "ccc#no-policies", "val": reason, "action": a} for a in i.actions],
        }
        for i in inputs
    ]
    return api.render_check_response(request_id, results)
