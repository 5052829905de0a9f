"""Validating request attributes against the JSON schemas a resource policy names
(``cerbos:///principal.json`` is ``_schemas/principal.json``), as Cerbos's schema enforcement does:
``none`` skips it, ``warn`` reports problems and decides anyway, ``reject`` denies every action.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import globs
from .compile import scope_chain
from .names import sanitize, scope_value

if TYPE_CHECKING:
    from .compile import PolicySet, ResourceSchemas
    from .evaluate import CheckInput


class SchemaValidator:
    def __init__(self, policy_set: PolicySet) -> None:
        self.policy_set = policy_set
        self.root = policy_set.schema_root
        self._validator = lru_cache(maxsize=64)(self._load)

    def _load(self, ref: str) -> Any:
        import jsonschema  # loaded on first use: most requests never need a schema

        if self.root is None or not ref.startswith("cerbos:///"):
            return None
        path = self.root / ref[len("cerbos:///") :]
        try:
            schema = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        cls = jsonschema.validators.validator_for(schema)
        return cls(schema)

    def schemas_for(self, inp: CheckInput, default_version: str) -> ResourceSchemas | None:
        version = inp.resource.policy_version or default_version
        for scope in scope_chain(scope_value(inp.resource.scope)):
            found = self.policy_set.schemas.get((sanitize(inp.resource.kind), version, scope))
            if found is not None:
                return found
        return None

    def validate(
        self, inp: CheckInput, enforcement: str, default_version: str = "default"
    ) -> tuple[list[dict[str, str]], bool]:
        """Validation errors for the request, and whether they reject it."""
        if enforcement == "none":
            return [], False
        schemas = self.schemas_for(inp, default_version)
        if schemas is None:
            return [], False
        errors: list[dict[str, str]] = []
        for ref, attrs, source in (
            (schemas.principal, inp.principal.attr, "SOURCE_PRINCIPAL"),
            (schemas.resource, inp.resource.attr, "SOURCE_RESOURCE"),
        ):
            if ref is None:
                continue
            if ref.ignore_actions and all(
                any(globs.matches(a, act) for a in ref.ignore_actions) for act in inp.actions
            ):
                continue
            validator = self._validator(ref.ref)
            if validator is None:
                errors.append({"path": "/", "message": f"schema {ref.ref} cannot be loaded", "source": source})
                continue
            for err in sorted(validator.iter_errors(attrs), key=lambda e: list(e.absolute_path)):
                path = "/" + "/".join(str(p) for p in err.absolute_path)
                errors.append({"path": path, "message": _message(err), "source": source})
        return errors, bool(errors) and enforcement == "reject"


_JSON_TYPES: dict[type, str] = {str: "string", list: "array", dict: "object"}


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _message(err: Any) -> str:
    """The validation message in the words Cerbos's validator uses, where we know them."""
    v, value = err.validator, err.validator_value
    if v == "required":
        missing = [p for p in value if isinstance(err.instance, dict) and p not in err.instance]
        return "missing properties: " + ", ".join(f"'{p}'" for p in missing)
    if v == "type":
        want = value if isinstance(value, str) else " or ".join(value)
        return f"expected {want}, but got {_json_type(err.instance)}"
    if v == "minimum":
        return f"must be >= {value} but found {err.instance}"
    if v == "maximum":
        return f"must be <= {value} but found {err.instance}"
    if v == "additionalProperties" and isinstance(err.instance, dict):
        allowed = err.schema.get("properties", {})
        extra = [k for k in err.instance if k not in allowed]
        return "additionalProperties " + ", ".join(f"'{k}'" for k in extra) + " not allowed"
    message: str = err.message  # err: a jsonschema ValidationError
    return message
