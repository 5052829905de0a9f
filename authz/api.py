"""Cerbos's HTTP API shapes: ``POST /api/check/resources`` request bodies in, response bodies out.

``parse_check_request`` says exactly what is wrong with a malformed request (``RequestError``);
``render_check_response`` writes the same JSON a Cerbos 0.55 PDP returns, empty fields omitted.
"""

from __future__ import annotations

import os
import time
from typing import Any

from .errors import RequestError
from .evaluate import CheckInput, CheckOutput, Principal, Resource


def _require(obj: Any, key: str, kind: type, where: str, required: bool = True) -> Any:
    if not isinstance(obj, dict):
        raise RequestError(f"{where} must be an object")
    if key not in obj or obj[key] is None:
        if required:
            raise RequestError(f"{where}.{key} is required")
        return kind()
    value = obj[key]
    if kind is str and not isinstance(value, str) or kind is list and not isinstance(value, list) \
            or kind is dict and not isinstance(value, dict):
        raise RequestError(f"{where}.{key} must be a {kind.__name__ if kind is not dict else 'object'}")
    return value


def _strings(values: list, where: str) -> list[str]:
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise RequestError(f"{where}[{i}] must be a string")
    return values


def parse_principal(body: Any, where: str = "principal") -> Principal:
    pid = _require(body, "id", str, where)
    if not pid:
        raise RequestError(f"{where}.id must not be empty")
    roles = _strings(_require(body, "roles", list, where), f"{where}.roles")
    if not roles:
        raise RequestError(f"{where}.roles must not be empty")
    if len(set(roles)) != len(roles):
        raise RequestError(f"{where}.roles must be unique")
    return Principal(
        id=pid,
        roles=roles,
        attr=_require(body, "attr", dict, where, required=False),
        policy_version=_require(body, "policyVersion", str, where, required=False),
        scope=_require(body, "scope", str, where, required=False),
    )


def parse_resource(body: Any, where: str = "resource") -> Resource:
    kind = _require(body, "kind", str, where)
    if not kind:
        raise RequestError(f"{where}.kind must not be empty")
    rid = _require(body, "id", str, where)
    if not rid:
        raise RequestError(f"{where}.id must not be empty")
    return Resource(
        kind=kind,
        id=rid,
        attr=_require(body, "attr", dict, where, required=False),
        policy_version=_require(body, "policyVersion", str, where, required=False),
        scope=_require(body, "scope", str, where, required=False),
    )


def parse_check_request(body: Any) -> tuple[str, list[CheckInput], bool]:
    """A CheckResources request body as (request id, one CheckInput per resource, includeMeta)."""
    if not isinstance(body, dict):
        raise RequestError("the request must be a JSON object")
    request_id = _require(body, "requestId", str, "request", required=False)
    principal = parse_principal(_require(body, "principal", dict, "request"))
    entries = _require(body, "resources", list, "request")
    if not entries:
        raise RequestError("request.resources must not be empty")
    aux = _require(body, "auxData", dict, "request", required=False)
    inputs = []
    for i, entry in enumerate(entries):
        where = f"request.resources[{i}]"
        actions = _strings(_require(entry, "actions", list, where), f"{where}.actions")
        if not actions:
            raise RequestError(f"{where}.actions must not be empty")
        resource = parse_resource(_require(entry, "resource", dict, where), f"{where}.resource")
        inputs.append(CheckInput(principal, resource, actions, aux, request_id))
    include_meta = body.get("includeMeta") is True
    return request_id, inputs, include_meta


def render_result(inp: CheckInput, out: CheckOutput, include_meta: bool = False) -> dict[str, Any]:
    resource: dict[str, Any] = {"id": inp.resource.id, "kind": inp.resource.kind}
    if inp.resource.policy_version:
        resource["policyVersion"] = inp.resource.policy_version
    if inp.resource.scope:
        resource["scope"] = inp.resource.scope
    result: dict[str, Any] = {
        "resource": resource,
        "actions": {a: out.actions[a].effect for a in sorted(out.actions)},
    }
    if out.validation_errors:
        result["validationErrors"] = out.validation_errors
    if include_meta:
        meta: dict[str, Any] = {"actions": {}}
        for a, e in out.actions.items():
            m = {"matchedPolicy": e.policy}
            if e.scope:
                m["matchedScope"] = e.scope
            meta["actions"][a] = m
        if out.effective_derived_roles:
            meta["effectiveDerivedRoles"] = out.effective_derived_roles
        result["meta"] = meta
    if out.outputs:
        entries = []
        for o in out.outputs:
            entry: dict[str, Any] = {"src": o.src}
            if o.val is not None or o.error is None:
                entry["val"] = o.val
            entry["action"] = o.action
            if o.error is not None:
                entry["error"] = o.error
            entries.append(entry)
        result["outputs"] = entries
    return result


def render_check_response(request_id: str, results: list[dict[str, Any]], call_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if request_id:
        body["requestId"] = request_id
    body["results"] = results
    body["cerbosCallId"] = call_id or new_call_id()
    return body


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_call_id() -> str:
    """A ULID, as Cerbos uses for ``cerbosCallId`` (time-ordered, 26 characters)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in range(25, -1, -1))


def error_body(message: str) -> dict[str, Any]:
    """Cerbos's (gRPC status) error shape for a request it cannot process."""
    return {"code": 3, "message": message}
