"""Randomised CheckResources requests for the differential suites, built from a per-policy-set
vocabulary of ids, roles, attribute values, scopes and actions (seeded, so runs repeat)."""

from __future__ import annotations

import random
from typing import Any

# Attribute values chosen to hit every branch, including wrong types and missing keys
# (a key whose value is the MISSING marker is left out of the request).
MISSING = object()

VOCABULARIES: dict[str, dict[str, Any]] = {
    "clinic": {
        "principal_ids": ["alice", "bob", "mallory", "nina", "phil", "trudy"],
        "roles": ["user", "patient", "nurse", "physician", "auditor", "engineer", "admin", "guest"],
        "principal_attr": {
            "hospital": ["h1", "h2", MISSING, 3],
            "ward": ["w1", "w2", MISSING],
            "grade": [1, 5, 6, 8, 9.5, "high", MISSING],
            "override": [True, False, MISSING, "yes"],
            "manufacturer": ["acme", "medco", MISSING],
        },
        "kinds": ["record", "record", "device", "settings", "unknown"],
        "versions": ["", "", "", "v2"],
        "scopes": [""],
        "resource_attr": {
            "owner": ["alice", "bob", "nina", MISSING],
            "hospital": ["h1", "h2", MISSING],
            "ward": ["w1", "w2", MISSING],
            "care_team": [["nina", "phil"], ["alice"], [], MISSING, "nina"],
            "age_days": [1, 30, 31, 45.5, "old", MISSING],
            "sealed": [True, False, MISSING, "true"],
            "note": ["short", "a long enough clinical note", MISSING, 42],
            "note_type": ["basic", "full", MISSING],
            "consent": [True, False, MISSING],
            "deidentified": [True, False, MISSING],
            "manufacturer": ["acme", "medco", MISSING],
            "author": ["alice", "phil", MISSING],
            "locked": [True, False, MISSING],
            "hour": [3, 22, 23, "late", MISSING],
            "requested_by": ["alice", "phil", MISSING],
            "approvals": [[], ["nina"], ["alice", "phil"], MISSING],
            "state": ["requested", "applied", MISSING],
        },
        "actions": [
            "view",
            "view:summary",
            "view:history",
            "view:a:b",
            "edit",
            "export",
            "delete",
            "read",
            "write",
            "annotate",
            "view_firmware",
            "request_update",
            "approve_update",
            "other",
        ],
    },
    "edge": {
        "principal_ids": ["zed", "amy", "bo"],
        "roles": ["reader", "deep_reader", "member", "member_x", "owner", "owner_admin", "junior", "senior", "guest"],
        "principal_attr": {"team": ["blue", "red", MISSING], "suspended": [True, False, MISSING]},
        "principal_scopes": ["", "", "org", "team", "org.x"],
        "kinds": ["app:doc", "app:doc", "app:other", "doc", "note", "note"],
        "versions": [""],
        "scopes": ["", "org", "team", "team.sub", "org.x", "."],
        "resource_attr": {
            "level": [1, 2, 4.0, 6, 9, 2.5, "x", MISSING],
            "team": ["blue", "red", MISSING],
            "locked": [True, False, MISSING],
        },
        "actions": [
            "read:a",
            "read:a:b",
            "read:secret",
            "write:draft",
            "write:final",
            "write:x",
            "write:xy",
            "share",
            "rank",
            "other",
        ],
    },
    "roles": {
        "principal_ids": ["pat", "quinn", "rhea"],
        "roles": [
            "nurse",
            "charge_nurse",
            "night_nurse",
            "float_nurse",
            "billing_clerk",
            "ward_auditor",
            "trainee",
            "clerk",
            "physician",
            "observer",
        ],
        "principal_attr": {
            "ward": ["w1", "w2", "icu", MISSING],
            "shift": ["night", "day", MISSING],
            "scheduled": [True, False, "yes", MISSING],
        },
        "principal_scopes": [""],
        "kinds": ["chart", "chart", "chart", "invoice", "invoice", "memo"],
        "versions": ["", "", "", "v2"],
        "scopes": ["", "north", "north", "north.icu", "north.icu", "south"],
        "resource_attr": {
            "ward": ["w1", "w2", "icu", MISSING],
            "grade": [1, 3, 4, 5, "high", MISSING],
            "sealed": [True, False, MISSING],
            "amount": [100, 700, 5000, "x", MISSING],
        },
        "actions": [
            "view",
            "view:vitals",
            "view:notes",
            "view:public",
            "view:summary",
            "view:a:b",
            "annotate",
            "sign",
            "sign:fast",
            "pay",
            "other",
        ],
    },
    "scopes": {
        "principal_ids": ["alice", "carol", "dave"],
        "roles": ["user", "admin", "manager", "acme_jr", "guest"],
        "principal_attr": {},
        "principal_scopes": ["", "", "acme", "acme.hr", "beta", "zeta"],
        "kinds": ["doc", "doc", "doc", "other"],
        "versions": [""],
        "scopes": ["", "acme", "acme.hr", "acme.hr.uk", "beta", "beta.x", "beta.y", "gamma", "zeta"],
        "resource_attr": {
            "public": [True, False, MISSING],
            "author": ["alice", "carol", MISSING],
            "retained": [True, False, MISSING],
            "frozen": [True, False, MISSING],
            "confidential": [True, False, MISSING],
            "level": [1, 4, 6, 9, "x", MISSING],
            "draft": [True, False, MISSING],
        },
        "actions": ["read", "write", "list", "purge", "approve", "other"],
    },
}


def _attrs(rng: random.Random, spec: dict[str, list[Any]]) -> dict[str, Any]:
    out = {}
    for key, values in spec.items():
        value = rng.choice(values)
        if value is not MISSING:
            out[key] = value
    return out


def random_requests(name: str, count: int, seed: int = 1) -> list[dict[str, Any]]:
    """``count`` request bodies, each for one principal and 1-4 resources."""
    vocab = VOCABULARIES[name]
    rng = random.Random(f"{name}-{seed}")
    requests = []
    for i in range(count):
        principal: dict[str, Any] = {
            "id": rng.choice(vocab["principal_ids"]),
            "roles": rng.sample(vocab["roles"], rng.choice([1, 1, 2, 3])),
            "attr": _attrs(rng, vocab["principal_attr"]),
        }
        if vocab.get("principal_scopes"):
            scope = rng.choice(vocab["principal_scopes"])
            if scope:
                principal["scope"] = scope
        resources = []
        for j in range(rng.randint(1, 4)):
            resource: dict[str, Any] = {
                "kind": rng.choice(vocab["kinds"]),
                "id": f"r{i}-{j}",
                "attr": _attrs(rng, vocab["resource_attr"]),
            }
            version = rng.choice(vocab["versions"])
            if version:
                resource["policyVersion"] = version
            scope = rng.choice(vocab["scopes"])
            if scope:
                resource["scope"] = scope
            actions = rng.sample(vocab["actions"], rng.randint(1, min(5, len(vocab["actions"]))))
            resources.append({"actions": actions, "resource": resource})
        body = {"requestId": f"req-{i}", "principal": principal, "resources": resources}
        if rng.random() < 0.3:
            body["includeMeta"] = True
        requests.append(body)
    return requests
