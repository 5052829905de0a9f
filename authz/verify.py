"""Running Cerbos policy test suites (``*_test.yaml``) against our engine.

A suite names principals, resources and auxData (its own or shared fixtures from the sibling
``testdata/`` folder), then tests whose input is principals x resources x actions. Every
combination is one test: it expects the effect its ``expected`` entry lists, or DENY when none
does, and the listed outputs. Results come back as data; ``render_results`` prints them the way
``cerbos compile`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .api import parse_principal, parse_resource
from .cel.timefuncs import parse_timestamp
from .cel.values import CelError
from .compile import PolicySet
from .engine import Engine
from .errors import PolicyProblem, RequestError
from .evaluate import CheckInput, EvalParams, OutputEntry
from .loader import TESTDATA_DIR, read_yaml_documents, test_files
from .policy import DENY
from .yamlsrc import Position, SourceMap, plain

PASSED = "OK"
FAILED = "FAILED"
SKIPPED = "SKIPPED"


@dataclass
class TestCase:
    suite: str
    test: str
    principal: str
    resource: str
    action: str
    result: str
    expected: str = ""
    actual: str = ""
    message: str = ""


@dataclass
class SuiteResult:
    name: str
    file: str
    cases: list[TestCase] = field(default_factory=list)
    error: str = ""

    def count(self, result: str) -> int:
        return sum(1 for c in self.cases if c.result == result)


@dataclass
class Fixtures:
    principals: dict[str, Any] = field(default_factory=dict)
    principal_groups: dict[str, list[str]] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    resource_groups: dict[str, list[str]] = field(default_factory=dict)
    aux_data: dict[str, Any] = field(default_factory=dict)

    def merged(self, suite: dict[str, Any]) -> Fixtures:
        return Fixtures(
            {**self.principals, **suite.get("principals", {})},
            {**self.principal_groups, **_groups(suite.get("principalGroups", {}), "principals")},
            {**self.resources, **suite.get("resources", {})},
            {**self.resource_groups, **_groups(suite.get("resourceGroups", {}), "resources")},
            {**self.aux_data, **suite.get("auxData", {})},
        )


def _groups(raw: dict[str, Any], key: str) -> dict[str, list[str]]:
    return {name: list(group.get(key, [])) for name, group in raw.items()}


def _load_fixtures(root: Path, folder: Path, problems: list[PolicyProblem]) -> Fixtures:
    fx = Fixtures()
    data = root / folder / TESTDATA_DIR
    for stem, attrs in (
        ("principals", ("principals", "principalGroups")),
        ("resources", ("resources", "resourceGroups")),
        ("auxdata", ("auxData",)),
    ):
        for suffix in (".yaml", ".yml", ".json"):
            path = data / f"{stem}{suffix}"
            if not path.is_file():
                continue
            for doc, _ in read_yaml_documents(root, path.relative_to(root), problems):
                doc = plain(doc) or {}
                if "principals" in attrs:
                    fx.principals.update(doc.get("principals", {}))
                    fx.principal_groups.update(_groups(doc.get("principalGroups", {}), "principals"))
                if "resources" in attrs:
                    fx.resources.update(doc.get("resources", {}))
                    fx.resource_groups.update(_groups(doc.get("resourceGroups", {}), "resources"))
                if "auxData" in attrs:
                    fx.aux_data.update(doc.get("auxData", {}))
    return fx


def _names(entry: dict[str, Any], single: str, plural: str, group_key: str, groups: dict[str, list[str]]) -> list[str]:
    names: list[str] = []
    if single in entry:
        names.append(entry[single])
    names.extend(entry.get(plural, []))
    for g in entry.get(group_key, []):
        if g not in groups:
            raise RequestError(f'unknown group "{g}"')
        names.extend(groups[g])
    return names


def _params(base: EvalParams, options: dict[str, Any]) -> tuple[EvalParams, datetime | None]:
    params = EvalParams(
        strict_evaluation=options.get("strictEvaluation", base.strict_evaluation),
        default_policy_version=options.get("defaultPolicyVersion", base.default_policy_version),
        default_scope=options.get("defaultScope", base.default_scope),
        lenient_scope_search=options.get("lenientScopeSearch", base.lenient_scope_search),
        globals={**base.globals, **options.get("globals", {})},
        schema_enforcement=base.schema_enforcement,
    )
    now = None
    if "now" in options:
        try:
            now = parse_timestamp(str(options["now"]))
        except CelError as exc:
            raise RequestError(f"options.now: {exc}") from None
    return params, now


def run_suite(engine: Engine, suite: dict[str, Any], file: str, fixtures: Fixtures) -> SuiteResult:
    name = suite.get("name", file)
    result = SuiteResult(name, file)
    fx = fixtures.merged(suite)
    suite_options = suite.get("options", {}) or {}
    problem = _suite_problem(suite)
    if problem:
        result.error = problem
        return result
    for test in suite.get("tests", []):
        test_name = test.get("name", "")
        inp = test.get("input", {})
        try:
            principals = _names(inp, "principal", "principals", "principalGroups", fx.principal_groups)
            resources = _names(inp, "resource", "resources", "resourceGroups", fx.resource_groups)
            actions = list(inp.get("actions", []))
            params, now = _params(engine.params, {**suite_options, **(test.get("options") or {})})
            expectations = _expectations(test.get("expected", []), fx)
            aux = fx.aux_data.get(inp["auxData"], {}) if inp.get("auxData") else {}
        except (RequestError, KeyError, TypeError) as exc:
            result.error = f"test {test_name!r}: {exc}"
            continue
        runner = Engine(engine.policy_set, params)
        for p_name in principals:
            for r_name in resources:
                result.cases.extend(_run_pair(runner, name, test, p_name, r_name, actions, aux, fx, expectations, now))
    return result


def _suite_problem(suite: dict[str, Any]) -> str:
    """What makes a suite unloadable, as Cerbos's schema for test suites says."""
    tests = suite.get("tests")
    if not isinstance(tests, list) or not tests:
        return "tests: value is required"
    for i, test in enumerate(tests):
        if not isinstance(test, dict):
            return f"tests[{i}]: must be a mapping"
        for key in ("name", "input", "expected"):
            if not test.get(key):
                return f"tests[{i}].{key}: value is required"
        if not test["input"].get("actions"):
            return f"tests[{i}].input.actions: value is required"
    return ""


def _expectations(expected: list[dict[str, Any]], fx: Fixtures) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for e in expected:
        for p in _names(e, "principal", "principals", "principalGroups", fx.principal_groups):
            for r in _names(e, "resource", "resources", "resourceGroups", fx.resource_groups):
                out[(p, r)] = e
    return out


def _run_pair(
    runner: Engine,
    suite: str,
    test: dict[str, Any],
    p_name: str,
    r_name: str,
    actions: list[str],
    aux: dict[str, Any],
    fx: Fixtures,
    expectations: dict[tuple[str, str], dict[str, Any]],
    now: datetime | None,
) -> list[TestCase]:
    test_name = test.get("name", "")
    if test.get("skip"):
        return [
            TestCase(suite, test_name, p_name, r_name, a, SKIPPED, message=test.get("skipReason", "")) for a in actions
        ]
    try:
        principal = parse_principal(fx.principals[p_name], f"principal {p_name}")
        resource = parse_resource(fx.resources[r_name], f"resource {r_name}")
    except KeyError as exc:
        return [
            TestCase(suite, test_name, p_name, r_name, a, FAILED, message=f"unknown fixture {exc}") for a in actions
        ]
    except RequestError as exc:
        return [TestCase(suite, test_name, p_name, r_name, a, FAILED, message=str(exc)) for a in actions]
    out = runner.check(CheckInput(principal, resource, actions, aux), now or datetime.now(UTC))
    expected = expectations.get((p_name, r_name), {})
    cases = []
    for action in actions:
        want = expected.get("actions", {}).get(action, DENY)
        got = out.actions[action].effect
        case = TestCase(suite, test_name, p_name, r_name, action, PASSED if want == got else FAILED, want, got)
        if case.result == PASSED:
            missing = _missing_outputs(expected.get("outputs", []), action, out.outputs)
            if missing:
                case.result, case.message = FAILED, missing
        cases.append(case)
    return cases


def _missing_outputs(expected_outputs: list[dict[str, Any]], action: str, actual: Sequence[OutputEntry]) -> str:
    for block in expected_outputs:
        if block.get("action") != action:
            continue
        for want in block.get("expected", []):
            got = [o.val for o in actual if o.action == action and o.src == want.get("src")]
            if not got:
                return f"expected output from {want.get('src')} but none was produced"
            if want.get("val") not in got:
                return f"output from {want.get('src')}: expected {want.get('val')!r}, actual {got[0]!r}"
    return ""


def run_test_suites(
    root: Path, policy_set: PolicySet, params: EvalParams | None = None
) -> tuple[list[SuiteResult], list[PolicyProblem]]:
    """Every test suite below ``root``, run against ``policy_set``."""
    engine = Engine(policy_set, params)
    problems: list[PolicyProblem] = []
    results: list[SuiteResult] = []
    fixture_cache: dict[Path, Fixtures] = {}
    for rel in test_files(root):
        folder = rel.parent
        if folder not in fixture_cache:
            fixture_cache[folder] = _load_fixtures(root, folder, problems)
        for doc, where in read_yaml_documents(root, rel, problems):
            if not isinstance(doc, SourceMap):
                problems.append(PolicyProblem(where, "a test suite must be a mapping", "invalid test suite"))
                continue
            if "name" not in doc or "tests" not in doc:
                problems.append(
                    PolicyProblem(
                        Position(str(rel), where.line, where.column),
                        "a test suite needs name and tests",
                        "invalid test suite",
                    )
                )
                continue
            results.append(run_suite(engine, plain(doc), str(rel), fixture_cache[folder]))
    return results, problems


def render_results(results: list[SuiteResult]) -> str:
    """The test report, shaped like ``cerbos compile``'s."""
    lines = ["Test results"]
    for i, s in enumerate(results):
        last = i == len(results) - 1
        lines.append(f"{'└' if last else '├'}──{s.name} ({s.file}) {_counts(s.cases)}")
        pad = "   " if last else "│  "
        if s.error:
            lines.append(f"{pad}└──ERROR: {s.error}")
        for c in s.cases:
            if c.result == FAILED:
                detail = c.message or f"expected: {c.expected}, actual: {c.actual}"
                lines.append(f"{pad}└──{c.test} / {c.principal} / {c.resource} / {c.action} [FAILED] {detail}")
    all_cases = [c for s in results for c in s.cases]
    lines.append("")
    lines.append(f"{len(all_cases)} tests executed {_counts(all_cases)}")
    return "\n".join(lines)


def _counts(cases: list[TestCase]) -> str:
    parts = []
    for result in (PASSED, SKIPPED, FAILED):
        n = sum(1 for c in cases if c.result == result)
        if n:
            parts.append(f"[{n} {result}]")
    return " ".join(parts)
