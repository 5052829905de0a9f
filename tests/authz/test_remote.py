"""Online mode: the decision service asks a real Cerbos PDP serving the same bundle, gets the
same decisions as the embedded engine, and falls back to it when the PDP goes away."""

from __future__ import annotations

import itertools
from pathlib import Path

import yaml

from authz import Engine
from authz.bundle import build_bundle, generate_keys, load_private_key, load_public_key, verify_bundle
from authz.remote import DecisionService, RemotePDP
from tests.support.cerbos_pdp import CerbosPDP

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def _requests() -> list[dict]:
    data = POLICIES / "tests" / "testdata"
    principals = yaml.safe_load((data / "principals.yaml").read_text())["principals"]
    resources = yaml.safe_load((data / "resources.yaml").read_text())["resources"]
    actions = [
        "view",
        "view_phi",
        "view_history",
        "edit_clinical_notes",
        "export",
        "break_glass",
        "delegate_access",
        "view_firmware_version",
        "request_firmware_update",
        "approve_firmware_update",
        "generate",
        "review",
        "annotate",
    ]
    bodies = []
    for (pname, principal), chunk in itertools.product(
        principals.items(), [list(resources.values())[i : i + 10] for i in range(0, len(resources), 10)]
    ):
        bodies.append(
            {
                "requestId": pname,
                "principal": principal,
                "resources": [{"actions": actions, "resource": r} for r in chunk],
            }
        )
    return bodies


def test_remote_and_embedded_agree_on_the_same_bundle_and_fallback_works(tmp_path: Path) -> None:
    private, public = generate_keys(tmp_path / "keys")
    bundle = verify_bundle(build_bundle(POLICIES, load_private_key(private), 1, {}), load_public_key(public))
    slot = bundle.extract(tmp_path / "slot")
    engine = Engine.from_directory(slot, bundle_version="1")
    bodies = _requests()
    with CerbosPDP(slot, strict=True) as pdp:
        service = DecisionService(lambda: engine, RemotePDP(pdp.url))
        for body in bodies:
            remote = service.check_request(body)
            assert service.last_source == "remote"
            local = engine.check_request(body)
            remote.pop("cerbosCallId"), local.pop("cerbosCallId")
            assert remote == local, body["requestId"]
    fallback = service.check_request(bodies[0])
    assert service.last_source == "embedded" and "unreachable" in service.last_remote_error
    expected = engine.check_request(bodies[0])
    fallback.pop("cerbosCallId"), expected.pop("cerbosCallId")
    assert fallback == expected


def test_without_any_policy_set_everything_is_denied_with_a_reason() -> None:
    service = DecisionService(lambda: None, None, lambda: "no valid policy bundle is installed")
    body = _requests()[0]
    response = service.check_request(body)
    assert service.last_source == "none"
    assert all(e == "EFFECT_DENY" for r in response["results"] for e in r["actions"].values())
    assert response["results"][0]["outputs"][0]["val"] == "no valid policy bundle is installed"
