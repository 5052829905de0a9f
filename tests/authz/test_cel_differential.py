"""CEL expressions compiled and evaluated by our engine and by a real Cerbos 0.55 PDP.

Each line of ``cel_corpus.txt`` must be accepted or rejected by both compilers alike, and where
both accept it, its value (returned as a rule output, so errors show too) must be identical.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from authz import Engine
from authz.cel.compiler import CelCompileError, Scope, compile_expression
from tests.support.cerbos_pdp import CerbosPDP, compile_dir

CORPUS = [
    line
    for line in (Path(__file__).parent / "cel_corpus.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

PRINCIPAL = {
    "id": "u1",
    "roles": ["user", "admin"],
    "attr": {
        "dept": "eng",
        "level": 3,
        "tags": ["a", "b"],
        "ip": "10.1.2.3",
        "scope": "acme.hr",
        "nested": {"x": {"y": 1}},
    },
}
RESOURCE_ATTR = {
    "owner": "u1",
    "n": 5,
    "f": 2.5,
    "s": "Hello, World",
    "list": [3, 1, 2],
    "map": {"k": "v"},
    "empty": "",
    "nul": None,
    "flag": True,
    "created": "2021-04-22T10:00:00Z",
    "ttl": "90m",
}


def _policy(kind: str, rules: list[tuple[str, str]]) -> str:
    body = [f"apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  version: default\n  resource: {kind}\n  rules:\n"]
    for action, expr in rules:
        body.append(
            f'    - actions: ["{action}"]\n      effect: EFFECT_ALLOW\n      roles: ["*"]\n'
            f"      output:\n        when:\n          ruleActivated: |-\n{textwrap.indent(expr, ' ' * 12)}\n"
        )
    return "".join(body)


def _ours_compiles(expr: str) -> bool:
    try:
        compile_expression(expr, Scope())
        return True
    except CelCompileError:
        return False


@pytest.fixture(scope="module")
def cerbos_rejects(tmp_path_factory: pytest.TempPathFactory) -> set[int]:
    root = tmp_path_factory.mktemp("cel-compile")
    for i, expr in enumerate(CORPUS):
        (root / f"e{i:03d}.yaml").write_text(_policy(f"e{i}", [("x", expr)]))
    result = compile_dir(root, "--skip-tests", "-o", "json")
    report = json.loads(result.stdout or "{}")
    files = {e["file"] for e in report.get("compileErrors", {}).get("errors", [])}
    return {int(f[1:4]) for f in files}


def test_both_compilers_accept_and_reject_the_same_expressions(cerbos_rejects: set[int]) -> None:
    ours = {i for i, expr in enumerate(CORPUS) if not _ours_compiles(expr)}
    only_cerbos = sorted(CORPUS[i] for i in cerbos_rejects - ours)
    only_ours = sorted(CORPUS[i] for i in ours - cerbos_rejects)
    assert not only_cerbos and not only_ours, f"rejected only by Cerbos: {only_cerbos}\nonly by us: {only_ours}"
    assert len(cerbos_rejects) >= 10  # the corpus really does exercise compile errors


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
def test_values_agree_with_cerbos(cerbos_rejects: set[int], tmp_path: Path, strict: bool) -> None:
    accepted = [(i, e) for i, e in enumerate(CORPUS) if i not in cerbos_rejects and _ours_compiles(e)]
    (tmp_path / "cel.yaml").write_text(_policy("cel", [(f"e{i}", e) for i, e in accepted]))
    actions = [f"e{i}" for i, _ in accepted]
    resources = [
        {"actions": actions[k : k + 50], "resource": {"kind": "cel", "id": f"r{k}", "attr": RESOURCE_ATTR}}
        for k in range(0, len(actions), 50)
    ]
    engine = Engine.from_directory(tmp_path)
    differences = []
    with CerbosPDP(tmp_path, strict=strict) as pdp:
        for start in range(0, len(resources), 1):
            body = {"principal": PRINCIPAL, "resources": resources[start : start + 1]}
            response = pdp.check(body)
            assert "results" in response, response
            theirs = response["results"]
            ours = engine.check_request(body)["results"]
            for t, o in zip(theirs, ours, strict=True):
                for t_out, o_out in zip(t.get("outputs", []), o.get("outputs", []), strict=True):
                    if t_out != o_out:
                        expr = CORPUS[int(t_out["action"][1:])]
                        differences.append(f"{expr}\n   cerbos: {t_out}\n   ours:   {o_out}")
    assert not differences, f"{len(differences)} expressions differ:\n" + "\n".join(differences)
