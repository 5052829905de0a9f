"""Policy test suites: ``cerbos compile`` and ``ccc-authz compile`` must run the same tests and
reach the same verdict on each, with strict evaluation on and off."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from authz import compile_policy_dir
from authz.cli import EXIT_TEST_FAILURES, build_parser, cmd_compile
from authz.evaluate import EvalParams
from authz.verify import FAILED, PASSED, run_test_suites
from tests.support.cerbos_pdp import compile_dir

CLINIC = Path(__file__).parent / "policysets" / "clinic"

FAILING_SUITE = """name: WrongExpectations
tests:
  - name: A nurse is expected to delete, which she may not
    input: {principals: [nina], resources: [alice_record], actions: [delete, view]}
    expected:
      - principal: nina
        resource: alice_record
        actions: {delete: EFFECT_ALLOW, view: EFFECT_ALLOW}
  - name: Skipped
    skip: true
    skipReason: not yet
    input: {principals: [bob], resources: [alice_record], actions: [view]}
    expected:
      - {principal: bob, resource: alice_record, actions: {view: EFFECT_ALLOW}}
"""


def _cerbos_results(root: Path, strict: bool) -> dict[tuple[str, ...], str]:
    args = ["-o", "json"] + (["--strict-evaluation"] if strict else [])
    report = json.loads(compile_dir(root, *args).stdout)
    out = {}
    for suite in report["suites"]:
        for case in suite.get("testCases", []):
            for p in case["principals"]:
                for r in p["resources"]:
                    for a in r["actions"]:
                        verdict = a["details"]["result"]
                        result = {"RESULT_PASSED": PASSED, "RESULT_FAILED": FAILED}.get(verdict, "SKIPPED")
                        out[(suite["name"], case["name"], p["name"], r["name"], a["name"])] = result
    return out


def _our_results(root: Path, strict: bool) -> dict[tuple[str, ...], str]:
    results, problems = run_test_suites(root, compile_policy_dir(root), EvalParams(strict_evaluation=strict))
    assert not problems
    return {(c.suite, c.test, c.principal, c.resource, c.action): c.result for s in results for c in s.cases}


@pytest.fixture
def clinic_with_failures(tmp_path: Path) -> Path:
    root = tmp_path / "clinic"
    shutil.copytree(CLINIC, root)
    (root / "wrong_test.yaml").write_text(FAILING_SUITE)
    return root


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
def test_same_tests_and_verdicts_as_cerbos(clinic_with_failures: Path, strict: bool) -> None:
    theirs = _cerbos_results(clinic_with_failures, strict)
    ours = _our_results(clinic_with_failures, strict)
    assert ours == theirs
    assert list(ours.values()).count(FAILED) == 1  # the deliberately wrong expectation, and only it


def test_compile_exit_status_and_report(clinic_with_failures: Path) -> None:
    out = io.StringIO()
    code = cmd_compile(build_parser().parse_args(["compile", str(clinic_with_failures)]), out)
    report = out.getvalue()
    assert code == EXIT_TEST_FAILURES
    assert "delete [FAILED] expected: EFFECT_ALLOW, actual: EFFECT_DENY" in report
    assert "[1 SKIPPED]" in report


def test_malformed_suite_is_an_error_not_a_pass(tmp_path: Path) -> None:
    root = tmp_path / "clinic"
    shutil.copytree(CLINIC, root)
    (root / "bad_test.yaml").write_text(
        "name: Bad\ntests:\n  - name: no expectations\n"
        "    input: {principals: [bob], resources: [alice_record], actions: [view]}\n"
    )
    assert compile_dir(root).returncode == EXIT_TEST_FAILURES
    out = io.StringIO()
    assert cmd_compile(build_parser().parse_args(["compile", str(root)]), out) == EXIT_TEST_FAILURES
    assert "expected" in out.getvalue()


def test_passing_suites_exit_zero() -> None:
    out = io.StringIO()
    assert cmd_compile(build_parser().parse_args(["compile", str(CLINIC)]), out) == 0
    assert "22 tests executed [22 OK]" in out.getvalue()
