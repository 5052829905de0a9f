"""Cerbos's HTTP API shapes: ``POST /api/check/resources`` request bodies in, response bodies out.

``parse_check_request`` says exactly what is wrong with a malformed request (``RequestError``);
``render_check_response`` writes the same JSON a Cerbos 0.55 PDP returns, empty fields omitted.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from typing import Any, TypeGuard

from .errors import RequestError
from .evaluate import CheckInput, CheckOutput, OutputEntry, Principal, Resource

_SCOPE_RE = re.compile(r"^(^$|\.|[0-9a-zA-Z][\w\-]*(\.\w[\w\-]*)*)$")
_VERSION_RE = re.compile(r"^[\w]*$")
MAX_RESOURCES = 50
MAX_ACTIONS = 50
_FIELDS = {
    "request": {"requestId", "principal", "resources", "auxData", "includeMeta"},
    "principal": {"id", "policyVersion", "roles", "attr", "scope"},
    "resource entry": {"actions", "resource"},
    "resource": {"kind", "policyVersion", "id", "attr", "scope"},
    "auxData": {"jwt"},
    "jwt": {"token", "keySetId"},
}
# protojson reads a field by its proto name too (include_meta for includeMeta), as Cerbos does.
_JSON_NAMES = {
    "request_id": "requestId",
    "include_meta": "includeMeta",
    "aux_data": "auxData",
    "policy_version": "policyVersion",
    "key_set_id": "keySetId",
}


def _invalid(path: str, what: str) -> RequestError:
    """Cerbos's wording for a request that fails validation."""
    return RequestError(f"validation error: {path}: {what}")


def _object(value: Any, path: str, kind: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(f"{path or 'the request'} must be a JSON object")
    fields = _FIELDS[kind]
    renamed = False
    for key in value:
        if key not in fields:
            if _JSON_NAMES.get(key) in fields:
                renamed = True
                continue
            raise RequestError(f'unknown field "{key}" in {path or "the request"}')
    if renamed:
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = str(_JSON_NAMES.get(k, k))
            if name in out:
                raise RequestError(f'duplicate field "{k}"')  # the same field in both spellings
            out[name] = v
        return out
    return value


def _token(value: Any) -> str:
    """A JSON value as protojson quotes an unexpected one."""
    if isinstance(value, dict):
        return "{"
    if isinstance(value, list):
        return "["
    return json.dumps(value, ensure_ascii=False)


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
    jwt = _jwt(body)
    if jwt is None:
        return {}
    if not jwt.get("token"):
        raise _invalid("aux_data.jwt.token", "value is required")
    raise RequestError("invalid auxData")


def _jwt(body: dict[str, Any]) -> dict[str, Any] | None:
    """auxData.jwt as protojson decodes it: refused if it has the wrong shape, None if absent."""
    aux = body.get("auxData")
    if aux is None:
        return None
    if not isinstance(aux, dict):
        raise RequestError(f"syntax error: unexpected token {_token(aux)}")
    aux = _object(aux, "auxData", "auxData")
    jwt = aux.get("jwt")
    if jwt is None:
        return None
    if not isinstance(jwt, dict):
        raise RequestError(f"syntax error: unexpected token {_token(jwt)}")
    jwt = _object(jwt, "auxData.jwt", "jwt")
    for key in ("token", "keySetId"):
        value = jwt.get(key)
        if value is not None and not isinstance(value, str):
            raise RequestError(f"invalid value for string field {key}: {_token(value)}")
    return jwt


def _include_meta(body: dict[str, Any]) -> bool:
    value = body.get("includeMeta")
    if value is None or type(value) is bool:
        return value is True
    raise RequestError(f"invalid value for bool field includeMeta: {_token(value)}")


def parse_check_request(body: Any) -> tuple[str, list[CheckInput], bool]:
    """A CheckResources request body as (request id, one CheckInput per resource, includeMeta).

    A well-formed request takes a quick path; anything unusual is parsed step by step, which
    names exactly what is wrong."""
    parsed = _parse_well_formed(body)
    if parsed is not None:
        return parsed
    return _parse_checked(body)


_KEYS = {kind: frozenset(keys) for kind, keys in _FIELDS.items()}


def _plain_scope_and_version(obj: dict[str, Any]) -> tuple[str, str] | None:
    """Scope and policy version when both are absent or valid strings; None otherwise."""
    scope, version = obj.get("scope"), obj.get("policyVersion")
    scope = "" if scope is None else scope
    version = "" if version is None else version
    if type(scope) is not str or type(version) is not str:
        return None
    if (scope and not _SCOPE_RE.match(scope)) or (version and not _VERSION_RE.match(version)):
        return None
    return scope, version


def _plain_strings(values: Any, limit: int) -> TypeGuard[list[str]]:
    """A non-empty list of at most ``limit`` distinct strings."""
    if type(values) is not list or not 0 < len(values) <= limit:
        return False
    try:
        "".join(values)  # TypeError unless every item is a string; faster than a type test each
    except TypeError:
        return False
    return len(set(values)) == len(values)


def _parse_well_formed(body: Any) -> tuple[str, list[CheckInput], bool] | None:
    """The common case, checked in one pass: None as soon as anything needs a closer look."""
    if type(body) is not dict or not _KEYS["request"].issuperset(body) or body.get("auxData") is not None:
        return None
    include_meta = body.get("includeMeta")
    if include_meta is not None and type(include_meta) is not bool:
        return None
    request_id = body.get("requestId")
    request_id = "" if request_id is None else request_id
    p = body.get("principal")
    entries = body.get("resources")
    if (
        type(request_id) is not str
        or type(p) is not dict
        or not _KEYS["principal"].issuperset(p)
        or type(entries) is not list
        or not 0 < len(entries) <= MAX_RESOURCES
    ):
        return None
    pid, roles, pattr = p.get("id"), p.get("roles"), p.get("attr")
    sv = _plain_scope_and_version(p)
    if (
        type(pid) is not str
        or not pid
        or not _plain_strings(roles, len(roles) if type(roles) is list else 0)
        or sv is None
        or (pattr is not None and type(pattr) is not dict)
    ):
        return None
    principal = Principal(pid, roles, pattr or {}, sv[1], sv[0])
    inputs = []
    resource_keys, entry_keys = _KEYS["resource"], _KEYS["resource entry"]
    for entry in entries:
        if type(entry) is not dict or not entry_keys.issuperset(entry):
            return None
        actions, r = entry.get("actions"), entry.get("resource")
        if type(r) is not dict or not resource_keys.issuperset(r) or not _plain_strings(actions, MAX_ACTIONS):
            return None
        kind, rid, rattr = r.get("kind"), r.get("id"), r.get("attr")
        sv = _plain_scope_and_version(r)
        if (
            type(kind) is not str
            or not kind
            or type(rid) is not str
            or not rid
            or sv is None
            or (rattr is not None and type(rattr) is not dict)
        ):
            return None
        inputs.append(CheckInput(principal, Resource(kind, rid, rattr or {}, sv[1], sv[0]), actions, {}, request_id))
    return request_id, inputs, include_meta is True


def _parse_checked(body: Any) -> tuple[str, list[CheckInput], bool]:
    obj = _object(body, "", "request")
    include_meta = _include_meta(obj)  # decoding errors come before validation's, as in Cerbos
    _jwt(obj)
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
    return request_id, inputs, include_meta


def render_result(inp: CheckInput, out: CheckOutput, include_meta: bool = False) -> dict[str, Any]:
    r = inp.resource
    resource: dict[str, Any] = {"id": r.id, "kind": r.kind}
    if r.policy_version:
        resource["policyVersion"] = r.policy_version
    if r.scope:
        resource["scope"] = r.scope
    effects = out.actions
    result: dict[str, Any] = {"resource": resource, "actions": {a: e.effect for a, e in effects.items()}}
    if out.validation_errors:
        result["validationErrors"] = out.validation_errors
    if include_meta:
        result["meta"] = _meta(out)
    if out.outputs:
        result["outputs"] = [_output_entry(o) for o in out.outputs]
    return result


def _meta(out: CheckOutput) -> dict[str, Any]:
    actions = {}
    for a, e in out.actions.items():
        actions[a] = {"matchedPolicy": e.policy, "matchedScope": e.scope} if e.scope else {"matchedPolicy": e.policy}
    meta: dict[str, Any] = {"actions": actions}
    if out.effective_derived_roles:
        meta["effectiveDerivedRoles"] = out.effective_derived_roles
    return meta


def _output_entry(o: OutputEntry) -> dict[str, Any]:
    if o.error is None:
        return {"src": o.src, "val": o.val, "action": o.action}
    if o.val is None:
        return {"src": o.src, "action": o.action, "error": o.error}
    return {"src": o.src, "val": o.val, "action": o.action, "error": o.error}


def render_check_response(request_id: str, results: list[dict[str, Any]], call_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if request_id:
        body["requestId"] = request_id
    body["results"] = results
    body["cerbosCallId"] = call_id or new_call_id()
    return body


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # every 10-bit group as two characters


class _MonotonicUlid:
    """ULIDs as Cerbos uses them for ``cerbosCallId`` and we for audit record ids: 48 bits of
    milliseconds, then 80 random bits drawn afresh each millisecond and incremented within one
    (the ULID spec's monotonic mode), so ids stay unique and ordered without a system call each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.last_ms = -1
        self.random = 0
        self.high = -1
        self.prefix = ""

    def next(self) -> str:
        ms = time.time_ns() // 1_000_000
        with self.lock:
            if ms > self.last_ms:
                self.last_ms, self.random = ms, int.from_bytes(os.urandom(10), "big")
            else:
                ms = self.last_ms  # the clock stepped back or stood still: stay ordered
                self.random = (self.random + 1) & _RANDOM_MASK
                if self.random == 0:
                    self.last_ms = ms = ms + 1
            value = (ms << 80) | self.random
            high = value >> 20
            if high != self.high:  # the first 22 characters change only every 2**20 ids
                self.high = high
                self.prefix = "".join([_PAIRS[(high >> (10 * i)) & 1023] for i in range(10, -1, -1)])
            prefix = self.prefix
        return prefix + _PAIRS[(value >> 10) & 1023] + _PAIRS[value & 1023]


_RANDOM_MASK = (1 << 80) - 1
_ULIDS = _MonotonicUlid()
os.register_at_fork(after_in_child=_ULIDS.reset)  # a forked worker must not repeat its parent's ids


def new_call_id() -> str:
    """A new ULID (26 characters, time-ordered)."""
    return _ULIDS.next()


def error_body(message: str) -> dict[str, Any]:
    """Cerbos's (gRPC status) error shape for a request it cannot process."""
    return {"code": 3, "message": message}
