"""Cerbos's HTTP API shapes: ``POST /api/check/resources`` request bodies in, response bodies out.

``parse_check_request`` says exactly what is wrong with a malformed request (``RequestError``);
``render_check_response`` writes the same JSON a Cerbos 0.55 PDP returns, empty fields omitted.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from .errors import RequestError
from .evaluate import CheckInput, CheckOutput, Principal, Resource

_SCOPE_RE = re.compile(r"^(^$|\.|[0-9a-zA-Z][\w\-]*(\.\w[\w\-]*)*)$")
_VERSION_RE = re.compile(r"^[\w]*$")
MAX_RESOURCES = 50
MAX_ACTIONS = 50
_FIELDS = {
    "request": {"requestId", "principal", "resources", "auxData", "includeMeta"},
    "principal": {"id", "policyVersion", "roles", "attr", "scope"},
    "resource entry": {"actions", "resource"},
    "resource": {"kind", "policyVersion", "id", "attr", "scope"},
}


def _invalid(path: str, what: str) -> RequestError:
    """Cerbos's wording for a request that fails validation."""
    return RequestError(f"validation error: {path}: {what}")


def _object(value: Any, path: str, kind: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(f"{path or 'the request'} must be a JSON object")
    for key in value:
        if key not in _FIELDS[kind]:
            raise RequestError(f'unknown field "{key}" in {path or "the request"}')
    return value


def _string(obj: dict[str, Any], key: str, path: str, required: bool = False) -> str:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise _invalid(path, "value is required")
        return ""
    if not isinstance(value, str):
        raise RequestError(f"invalid value for string field {path}: {json.dumps(value)}")
    return value


def _strings(obj: dict[str, Any], key: str, path: str, limit: int | None = None) -> list[str]:
    value = obj.get(key)
    if not value:
        raise _invalid(path, "value is required")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RequestError(f"{path} must be a list of strings")
    if len(set(value)) != len(value):
        raise _invalid(path, "repeated value must contain unique items")
    if limit is not None and len(value) > limit:
        raise RequestError(f"number of actions ({len(value)}) exceeds configured limit ({limit})")
    return value


def _attributes(obj: dict[str, Any], path: str) -> dict[str, Any]:
    value = obj.get("attr")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(f"{path} must be a JSON object")
    return value


def _scope_and_version(obj: dict[str, Any], path: str) -> tuple[str, str]:
    if "scope" not in obj and "policyVersion" not in obj:
        return "", ""
    scope = _string(obj, "scope", f"{path}.scope")
    if not _SCOPE_RE.match(scope):
        raise _invalid(f"{path}.scope", f"does not match regex pattern `{_SCOPE_RE.pattern}`")
    version = _string(obj, "policyVersion", f"{path}.policy_version")
    if not _VERSION_RE.match(version):
        raise _invalid(f"{path}.policy_version", f"does not match regex pattern `{_VERSION_RE.pattern}`")
    return scope, version


def parse_principal(body: Any, path: str = "principal") -> Principal:
    obj = _object(body, path, "principal")
    scope, version = _scope_and_version(obj, path)
    return Principal(
        id=_string(obj, "id", f"{path}.id", required=True),
        roles=_strings(obj, "roles", f"{path}.roles"),
        attr=_attributes(obj, f"{path}.attr"),
        policy_version=version,
        scope=scope,
    )


def parse_resource(body: Any, path: str = "resource") -> Resource:
    obj = _object(body, path, "resource")
    scope, version = _scope_and_version(obj, path)
    return Resource(
        kind=_string(obj, "kind", f"{path}.kind", required=True),
        id=_string(obj, "id", f"{path}.id", required=True),
        attr=_attributes(obj, f"{path}.attr"),
        policy_version=version,
        scope=scope,
    )


def _aux_data(body: dict[str, Any]) -> dict[str, Any]:
    """auxData.jwt would need JWT verification keys, which an embedded workstation engine does not
    hold: like a Cerbos PDP without key sets, the request is refused rather than trusted."""
    aux = body.get("auxData")
    if not aux:
        return {}
    if not isinstance(aux, dict):
        raise RequestError("auxData must be a JSON object")
    jwt = aux.get("jwt")
    if jwt is None:
        return {}
    if not isinstance(jwt, dict) or not jwt.get("token"):
        raise _invalid("aux_data.jwt.token", "value is required")
    raise RequestError("invalid auxData")


def parse_check_request(body: Any) -> tuple[str, list[CheckInput], bool]:
    """A CheckResources request body as (request id, one CheckInput per resource, includeMeta)."""
    obj = _object(body, "", "request")
    request_id = _string(obj, "requestId", "requestId")
    if "principal" not in obj or obj["principal"] is None:
        raise _invalid("principal", "value is required")
    principal = parse_principal(obj["principal"])
    entries = obj.get("resources")
    if not entries:
        raise _invalid("resources", "value is required")
    if not isinstance(entries, list):
        raise RequestError("resources must be a list")
    if len(entries) > MAX_RESOURCES:
        raise RequestError(f"number of resources in batch ({len(entries)}) exceeds configured limit ({MAX_RESOURCES})")
    aux = _aux_data(obj)
    inputs = []
    for i, entry in enumerate(entries):
        path = f"resources[{i}]"
        entry = _object(entry, path, "resource entry")
        actions = _strings(entry, "actions", f"{path}.actions", MAX_ACTIONS)
        if "resource" not in entry or entry["resource"] is None:
            raise _invalid(f"{path}.resource", "value is required")
        resource = parse_resource(entry["resource"], f"{path}.resource")
        inputs.append(CheckInput(principal, resource, actions, aux, request_id))
    return request_id, inputs, obj.get("includeMeta") is True


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


_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # every 10-bit group as two characters


def new_call_id() -> str:
    """A ULID, as Cerbos uses for ``cerbosCallId`` (time-ordered, 26 characters)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_PAIRS[(value >> (10 * i)) & 1023] for i in range(12, -1, -1))


def error_body(message: str) -> dict[str, Any]:
    """Cerbos's (gRPC status) error shape for a request it cannot process."""
    return {"code": 3, "message": message}
