"""The compiled build of the decision engine (scripts/build-native, authz/native.py): it decides
exactly as the Python sources do, and a build older than its sources is never used."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from authz import Engine, EvalParams, api, native
from authz import evaluate as engine_module
from tests.authz.differential import random_requests

POLICY_SETS = Path(__file__).parent / "policysets"
compiled_only = pytest.mark.skipif(
    not (native.is_compiled(engine_module) and native.is_compiled(api)),
    reason="no compiled build (scripts/build-native) in use",
)


def _answers(check, json_api, engine: Engine, bodies: list[dict]) -> list[list[dict]]:  # noqa: ANN001
    """Each request parsed, decided and rendered by the given modules."""
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    answers = []
    for body in bodies:
        _, inputs, meta = json_api.parse_check_request(body)
        shared: dict = {}
        answers.append(
            [
                json_api.render_result(inp, check(engine.policy_set, inp, engine.params, now, shared, meta), meta)
                for inp in inputs
            ]
        )
    return answers


@compiled_only
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
@pytest.mark.parametrize("policy_set", ["clinic", "scopes"])
def test_the_compiled_build_decides_as_the_sources_do(policy_set: str, strict: bool) -> None:
    source = native.load_source("evaluate", "authz._evaluate_from_source")
    source_api = native.load_source("api", "authz._api_from_source")
    assert not native.is_compiled(source) and not native.is_compiled(source_api)
    bodies = [{**b, "includeMeta": i % 3 == 0} for i, b in enumerate(random_requests(policy_set, 2000, seed=21))]
    params = EvalParams(strict_evaluation=strict)
    compiled = _answers(engine_module.check, api, Engine.from_directory(POLICY_SETS / policy_set, params), bodies)
    interpreted = _answers(
        source.check,
        source_api,  # type: ignore[attr-defined]
        Engine.from_directory(POLICY_SETS / policy_set, params),
        bodies,
    )
    assert compiled == interpreted


def _fake_build(root: Path, recorded: str) -> None:
    (root / "evaluate.py").write_text("X = 1\n")
    (root / "plan.py").write_text("Y = 1\n")
    (root / "evaluate.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    (root / "native.json").write_text(json.dumps({"sources": recorded}))


def test_a_build_is_used_only_with_the_sources_it_was_built_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(native, "PACKAGE", tmp_path)
    monkeypatch.setattr(native, "STAMP", tmp_path / "native.json")
    monkeypatch.delenv("CCC_AUTHZ_PURE", raising=False)
    _fake_build(tmp_path, "not these sources")
    assert native.stale_modules() == ["evaluate"]  # plan.py has no build: nothing to shun
    _fake_build(tmp_path, native.sources_hash())
    assert native.stale_modules() == []
    (tmp_path / "plan.py").write_text("Y = 2\n")  # a module the build relies on changed
    assert native.stale_modules() == ["evaluate"]
    _fake_build(tmp_path, native.sources_hash())
    monkeypatch.setenv("CCC_AUTHZ_PURE", "1")
    assert native.stale_modules() == ["evaluate"]


@compiled_only
def test_an_edited_source_is_loaded_instead_of_its_stale_build(tmp_path: Path) -> None:
    copy = tmp_path / "authz"
    shutil.copytree(Path(native.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / "evaluate.py").open("a") as f:
        f.write("\nEDITED = True\n")
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "always",
            "-c",
            "import authz.evaluate as e, authz.plan as p; print(e.__file__, e.EDITED, p.__file__)",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    evaluate_file, edited, plan_file = result.stdout.split()
    assert evaluate_file.endswith("evaluate.py") and edited == "True"
    assert plan_file.endswith("plan.py")  # its build relied on the old evaluate.py's neighbours too
    assert "changed since scripts/build-native compiled" in result.stderr
