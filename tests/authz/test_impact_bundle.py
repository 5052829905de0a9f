"""The story's update: a change that passes every policy test yet silently stops the attending
physician (assigned, not on the care team) from seeing their own patients' history. ``bundle
build --baseline --requests`` replays the ward's requests and refuses to build it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from authz.cli import main

ROOT = Path(__file__).resolve().parents[2]
STORY_BEFORE = """    - name: view_patient_history
      actions: ["view_history"]
      effect: EFFECT_ALLOW
      derivedRoles: ["own_patient", "active_delegate", "care_team_member", "assigned_physician","""
STORY_AFTER = """    - name: view_patient_history
      actions: ["view_history"]
      effect: EFFECT_ALLOW
      derivedRoles: ["own_patient", "active_delegate", "care_team_member","""


def ward_requests(path: Path) -> None:
    """A ward's morning: the attending physician opens each of their patients' charts and
    history, the ward nurse (on every care team) too, and each patient their own record."""
    lines = []
    for n in range(1, 21):
        record = {
            "kind": "patient_record",
            "id": f"p{n}",
            "attr": {
                "patient_id": f"p{n}",
                "hospital_id": "h1",
                "care_team": ["nurse_nia"],
                "assigned_physicians": ["dr_att"],
            },
        }
        for principal in (
            {"id": "dr_att", "roles": ["physician"], "attr": {"hospital_ids": ["h1"]}},
            {"id": "nurse_nia", "roles": ["nurse"], "attr": {"hospital_ids": ["h1"]}},
            {"id": f"pat{n}", "roles": ["patient"], "attr": {"patient_id": f"p{n}"}},
        ):
            body = {"principal": principal, "resources": [{"actions": ["view", "view_history"], "resource": record}]}
            lines.append(json.dumps(body))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def story(tmp_path: Path) -> dict[str, Path]:
    keys = tmp_path / "keys"
    assert main(["keygen", "--out", str(keys)]) == 0
    baseline = tmp_path / "v1.bundle"
    assert (
        main(
            [
                "bundle",
                "build",
                str(ROOT / "policies"),
                "--key",
                str(keys / "private.key"),
                "--version",
                "1",
                "--out",
                str(baseline),
            ]
        )
        == 0
    )
    candidate = tmp_path / "candidate"
    shutil.copytree(ROOT / "policies", candidate)
    policy = candidate / "resources" / "patient_record.yaml"
    text = policy.read_text()
    assert text.count(STORY_BEFORE) == 1
    policy.write_text(text.replace(STORY_BEFORE, STORY_AFTER))
    requests = tmp_path / "ward.jsonl"
    ward_requests(requests)
    return {"keys": keys, "baseline": baseline, "candidate": candidate, "requests": requests, "tmp": tmp_path}


def _build(story: dict[str, Path], *extra: str) -> tuple[int, Path]:
    out = story["tmp"] / "v2.bundle"
    code = main(
        [
            "bundle",
            "build",
            str(story["candidate"]),
            "--key",
            str(story["keys"] / "private.key"),
            "--version",
            "2",
            "--out",
            str(out),
            "--baseline",
            str(story["baseline"]),
            "--requests",
            str(story["requests"]),
            *extra,
        ]
    )
    return code, out


def test_bundle_build_refuses_the_story_update(story: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _build(story)
    printed = capsys.readouterr()
    assert code == 5
    assert not out.exists()
    assert "bundle not built: 20 decisions flip" in printed.err
    # Every policy test passed: the suites did not see it; the ward's traffic did.
    assert "tests executed" in printed.out and "FAILED" not in printed.out
    assert "NEWLY DENIED  kind patient_record  action view_history  roles physician: 20 [UNEXPECTED]" in printed.out
    assert "before: resource.patient_record.vdefault#view_patient_history" in printed.out
    assert "newly allowed 0, newly denied 20, output changed 0" in printed.out


def test_bundle_build_goes_ahead_when_the_change_is_expected(
    story: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    accept = story["tmp"] / "accept.yaml"
    accept.write_text(
        "expected:\n  - {kind: patient_record, action: view_history, role: physician, direction: newly_denied}\n"
    )
    code, out = _build(story, "--accept", str(accept))
    assert code == 0, capsys.readouterr().err
    assert out.exists()
    assert "20 flips, all expected" in capsys.readouterr().out


def test_bundle_build_refuses_a_baseline_that_does_not_verify(
    story: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(story["baseline"].read_bytes())
    data[-10] ^= 1
    story["baseline"].write_bytes(bytes(data))
    code, out = _build(story)
    assert code == 2 and not out.exists()
    assert "bundle refused: signature does not match" in capsys.readouterr().err
