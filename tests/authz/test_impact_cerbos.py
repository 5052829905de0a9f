"""``ccc-authz impact`` against two real Cerbos 0.55 PDPs, one per policy set: the flips Cerbos's
own answers show (computed here, from its responses) are exactly the flips the report lists, in
strict and in Cerbos-default evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from authz.cli import main
from tests.authz.differential import random_requests
from tests.support.cerbos_pdp import CerbosPDP

POLICY_SETS = Path(__file__).parent / "policysets"
REQUESTS = 1500

# Changes a policy author might make to the clinic set's record policy: a role added to a rule,
# a boundary moved, an output reworded, a role removed, a constant raised.
MUTATIONS = [
    ('      roles: ["auditor"]\n', '      roles: ["auditor", "nurse"]\n'),
    ("age_ok: R.attr.age_days <= C.max_age_days", "age_ok: R.attr.age_days < C.max_age_days"),
    ("ruleActivated: '\"sealed:\" + R.id'", "ruleActivated: '\"sealed!\" + R.id'"),
    ('      effect: EFFECT_ALLOW\n      roles: ["admin"]\n', '      effect: EFFECT_ALLOW\n      roles: ["root"]\n'),
    ("      min_len: 10\n", "      min_len: 30\n"),
]


# Changes to shared files (a principal policy that speaks for every kind, the derived roles): any
# kind may flip then, so none is left out of the replay (authz/impact.py, affected_kinds).
SHARED_MUTATIONS = {
    "principal_bob.yaml": [('        - action: "annotate"\n', '        - action: "view_firmware"\n')],
    "common_roles.yaml": [("senior_grade: 5", "senior_grade: 6")],
}


# Changes to rules alone (the record policy's variables and constants untouched): only the
# actions those rules name are decided twice (authz/impact.py, ChangeScope).
RULE_MUTATIONS = [
    MUTATIONS[0],
    MUTATIONS[3],
    (
        "conditionNotMet: '\"no-annotate:\" + string(P.attr.grade)'",
        "conditionNotMet: '\"no-annotate!\" + string(P.attr.grade)'",
    ),
]
SCENARIOS = {
    "rules": [("record.yaml", RULE_MUTATIONS)],
    "record": [("record.yaml", MUTATIONS)],
    "shared": [("record.yaml", MUTATIONS), *SHARED_MUTATIONS.items()],
}


def _changed_clinic(tmp_path: Path, scenario: str = "record") -> tuple[Path, Path]:
    old = tmp_path / "old"
    shutil.copytree(POLICY_SETS / "clinic", old)
    new = tmp_path / "new"
    shutil.copytree(POLICY_SETS / "clinic", new)
    for name, mutations in SCENARIOS[scenario]:
        text = (new / name).read_text()
        for before, after in mutations:
            assert text.count(before) == 1, before
            text = text.replace(before, after)
        (new / name).write_text(text)
    return old, new


def _outputs(result: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [o for o in result.get("outputs", []) if o.get("action") == action]


def cerbos_flips(before: dict[str, Any], after: dict[str, Any], index: int) -> set[tuple[Any, ...]]:
    """The flips between two Cerbos responses to one request, as (request, resource id, action,
    direction, before, after)."""
    flips = set()
    for rb, ra in zip(before["results"], after["results"], strict=True):
        rid = rb["resource"]["id"]
        for action, eb in rb["actions"].items():
            ea = ra["actions"][action]
            if eb != ea:
                direction = "newly_allowed" if ea == "EFFECT_ALLOW" else "newly_denied"
                flips.add((index, rid, action, direction, eb, ea))
            elif _outputs(rb, action) != _outputs(ra, action):
                flips.add(
                    (
                        index,
                        rid,
                        action,
                        "output_changed",
                        json.dumps(_outputs(rb, action), sort_keys=True),
                        json.dumps(_outputs(ra, action), sort_keys=True),
                    )
                )
    return flips


def report_flips(report: dict[str, Any]) -> set[tuple[Any, ...]]:
    flips = set()
    for f in report["flips"]:
        if f["direction"] == "output_changed":
            before = json.dumps(f["output"]["before"], sort_keys=True)
            after = json.dumps(f["output"]["after"], sort_keys=True)
        else:
            before, after = f["before"], f["after"]
        flips.add((f["request"], f["resource"]["id"], f["action"], f["direction"], before, after))
    return flips


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "cerbos-default"])
def test_report_lists_exactly_the_flips_two_cerbos_pdps_show(
    tmp_path: Path, strict: bool, scenario: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    old, new = _changed_clinic(tmp_path, scenario)
    requests = random_requests("clinic", REQUESTS, seed=17)
    requests_file = tmp_path / "requests.jsonl"
    requests_file.write_text("".join(json.dumps(body) + "\n" for body in requests))
    expected: set[tuple[Any, ...]] = set()
    with CerbosPDP(old, strict=strict) as pdp_old, CerbosPDP(new, strict=strict) as pdp_new:
        for index, body in enumerate(requests):
            expected |= cerbos_flips(pdp_old.check(body), pdp_new.check(body), index)
    directions = {flip[3] for flip in expected}
    assert directions == {"newly_allowed", "newly_denied", "output_changed"}, "the mutations exercise every direction"

    args = [str(old), str(new), "--requests", str(requests_file), "--format", "json", "--workers", "2"]
    code = main(["impact", *args, *([] if strict else ["--no-strict-evaluation"])])
    report = json.loads(capsysbinary.readouterr().out)

    ours = report_flips(report)
    assert ours == expected, (
        f"only in the report: {sorted(ours - expected)[:5]}; only Cerbos: {sorted(expected - ours)[:5]}"
    )
    assert code == 5
    summary = report["summary"]
    assert summary["flips"] == len(expected) == len(report["flips"])
    assert summary["requests"] == REQUESTS and summary["malformed"] == 0
    assert summary["evaluation"] == ("strict" if strict else "cerbos default (not strict)")
    assert sum(g["count"] for g in summary["groups"]) == len(expected)
    assert {g["kind"] for g in summary["groups"]} == ({"record", "device"} if scenario == "shared" else {"record"})


def test_change_scope_of_rule_changes(tmp_path: Path) -> None:
    """The actions the rules-only scenario can touch, and no others, are decided twice."""
    from authz.impact import ChangeScope, compile_files, load_side

    old, new = (load_side(p, None) for p in _changed_clinic(tmp_path, "rules"))
    keep: list[Any] = []
    scope = ChangeScope(old.files, new.files, compile_files(old.files, keep), compile_files(new.files, keep))
    assert not scope.everything and not scope.kind("device") and scope.kind("record")
    touched = {
        a
        for a in ("view", "view:summary", "view:history", "edit", "export", "delete", "annotate", "read")
        if scope.action("record", a)
    }
    assert touched == {"view:summary", "view:history", "delete", "annotate"}
    old, new = (load_side(p, None) for p in _changed_clinic(tmp_path / "shared", "shared"))
    scope = ChangeScope(old.files, new.files, compile_files(old.files, keep), compile_files(new.files, keep))
    assert scope.everything and scope.kind("device") and scope.action("device", "view_firmware")
