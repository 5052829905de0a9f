"""Running Cerbos policy test suites (``*_test.yaml``) against our engine, as ``cerbos compile`` does.

A suite names principals, resources and auxData (its own or shared fixtures from the sibling
``testdata/`` folder), then tests whose input is principals x resources x actions. Every
combination is one test: it expects the effect its ``expected`` entry lists, or DENY when none
does, and the listed outputs. Results come back as data; ``render_results`` prints them the way
``cerbos compile`` does.

As in Cerbos, a problem is the problem of one suite: a suite that does not load (bad YAML, an
unknown or missing field), whose fixtures do not load, that names a principal, resource, group or
auxData that does not exist, repeats a test name or expects what its input does not ask, ERRORS
with Cerbos's message, and every other suite still runs. A suite with ``skip: true`` is SKIPPED.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from .suite_schema import fixture_problems, suite_problems
from .yamlsrc import plain

PASSED = "OK"
FAILED = "FAILED"
SKIPPED = "SKIPPED"
ERRORED = "ERRORED"
_RANK = {"": 0, SKIPPED: 1, PASSED: 2, FAILED: 3, ERRORED: 4}  # Cerbos's TestResults.Result order

USED_DEFAULT_NOW = "a policy used a time-based condition, but `now` was not provided in the test options"


class _WatchedNow(datetime):
    """The clock of a test without ``options.now``: Cerbos evaluates such a test with the zero
    time and ERRORS it if a condition or output read the clock. Any use of this instant (an
    attribute, arithmetic, a comparison) marks it read."""

    def _mark(self) -> None:
        object.__getattribute__(self, "__dict__")["read"] = True

    def __getattribute__(self, name: str) -> Any:
        if name != "__dict__":
            object.__getattribute__(self, "__dict__")["read"] = True
        return datetime.__getattribute__(self, name)

    def __sub__(self, other: Any) -> Any:
        self._mark()
        return datetime.__sub__(self, other)

    def __rsub__(self, other: Any) -> Any:
        self._mark()
        return other - datetime(*self.timetuple()[:6], self.microsecond, self.tzinfo)

    def __add__(self, other: Any) -> Any:
        self._mark()
        return datetime.__add__(self, other)

    __radd__ = __add__

    def __lt__(self, other: Any) -> bool:
        self._mark()
        return datetime.__lt__(self, other)

    def __le__(self, other: Any) -> bool:
        self._mark()
        return datetime.__le__(self, other)

    def __gt__(self, other: Any) -> bool:
        self._mark()
        return datetime.__gt__(self, other)

    def __ge__(self, other: Any) -> bool:
        self._mark()
        return datetime.__ge__(self, other)

    def __eq__(self, other: object) -> bool:
        self._mark()
        return datetime.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        self._mark()
        return datetime.__ne__(self, other)

    __hash__ = datetime.__hash__


def _unset_now() -> _WatchedNow:
    return _WatchedNow(1, 1, 1, tzinfo=UTC)


def _was_read(now: datetime) -> bool:
    return bool(object.__getattribute__(now, "__dict__").get("read"))


# When the sentinel cannot show a read (a function that type-checks its argument refuses the
# stand-in before touching it), the answers at two far-apart instants differing show it.
_FAR_NOW = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


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
    skipped: bool = False
    skip_reason: str = ""

    def count(self, result: str) -> int:
        return sum(1 for c in self.cases if c.result == result)

    @property
    def verdict(self) -> str:
        """The suite's overall result: ERRORED, SKIPPED, or the worst of its cases'."""
        if self.error:
            return ERRORED
        if self.skipped:
            return SKIPPED
        worst = ""
        for c in self.cases:
            if _RANK[c.result] > _RANK[worst]:
                worst = c.result
        return worst or PASSED


@dataclass
class Fixtures:
    principals: dict[str, Any] = field(default_factory=dict)
    principal_groups: dict[str, list[str]] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    resource_groups: dict[str, list[str]] = field(default_factory=dict)
    aux_data: dict[str, Any] = field(default_factory=dict)
    error: str = ""


class SuiteError(Exception):
    """Makes the whole suite ERROR with this message."""


_FIXTURE_FILES = (
    ("principals", ("principals",), "principals", "principalGroups"),
    ("resources", ("resources",), "resources", "resourceGroups"),
    ("auxData", ("auxdata", "auxData", "aux_data"), "aux data", ""),
)


def _fixture_file(folder: Path, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for suffix in (".yaml", ".yml", ".json"):
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    return None


def _load_fixtures(root: Path, folder: Path) -> Fixtures:
    """The fixtures of ``folder/testdata`` (none when it does not exist). A file that does not
    load makes ``error`` say why, in Cerbos's words: every suite beside it then ERRORS."""
    fx = Fixtures()
    data = root / folder / TESTDATA_DIR
    if not data.is_dir():
        return fx
    for kind, stems, noun, group_key in _FIXTURE_FILES:
        path = _fixture_file(data, stems)
        if path is None:
            continue
        try:
            doc = _single_document(root, path.relative_to(root))
        except SuiteError as exc:
            fx.error = f"failed to load {noun}:\n{exc}"
            return fx
        problems = fixture_problems(doc, kind)
        if problems:
            fx.error = f"failed to load {noun}:\n" + "\n".join(problems)
            return fx
        doc = plain(doc)
        fixtures = dict(doc.get(kind) or {})
        if kind == "principals":
            fx.principals = fixtures
        elif kind == "resources":
            fx.resources = fixtures
        else:
            fx.aux_data = fixtures
        if group_key:
            groups = _groups(doc.get(group_key) or {}, kind)
            missing = _missing_member(groups, fixtures.__contains__)
            if missing:
                fx.error = f"failed to load {noun}: {missing}"
                return fx
            if kind == "principals":
                fx.principal_groups = groups
            else:
                fx.resource_groups = groups
    return fx


def _single_document(root: Path, rel: Path) -> Any:
    """The one YAML (or JSON) document of a file, or SuiteError as Cerbos words it."""
    problems: list[PolicyProblem] = []
    docs = read_yaml_documents(root, rel, problems)
    if problems:
        where = problems[0].position
        raise SuiteError(f"{where.line}:{where.column} {problems[0].message}")
    if not docs or docs[0][0] is None:
        raise SuiteError("1:1 invalid document: contents are not valid YAML or JSON")
    if len(docs) > 1:
        where = docs[1][1]
        raise SuiteError(f"{where.line}:{where.column} more than one YAML document detected")
    return docs[0][0]


def _groups(raw: dict[str, Any], key: str) -> dict[str, list[str]]:
    return {name: list((group or {}).get(key) or []) for name, group in raw.items()}


def _missing_member(groups: dict[str, list[str]], exists: Callable[[str], bool]) -> str:
    for group, members in groups.items():
        for member in members:
            if not exists(member):
                return f'missing fixture "{member}" referenced in group "{group}"'
    return ""


class _SuiteRun:
    """One suite's fixtures as Cerbos looks them up: the suite's own first, then testdata's."""

    def __init__(self, suite: dict[str, Any], fx: Fixtures) -> None:
        self.suite = suite
        self.fx = fx
        self.principal_groups = _groups(suite.get("principalGroups") or {}, "principals")
        self.resource_groups = _groups(suite.get("resourceGroups") or {}, "resources")

    def principal(self, name: str) -> Any:
        found = (self.suite.get("principals") or {}).get(name, self.fx.principals.get(name))
        if found is None:
            raise SuiteError(f'principal "{name}" not found')
        return found

    def resource(self, name: str) -> Any:
        found = (self.suite.get("resources") or {}).get(name, self.fx.resources.get(name))
        if found is None:
            raise SuiteError(f'resource "{name}" not found')
        return found

    def aux_data(self, name: str) -> dict[str, Any]:
        if not name:
            return {}
        found = (self.suite.get("auxData") or {}).get(name, self.fx.aux_data.get(name))
        if found is None:
            raise SuiteError(f'auxData "{name}" not found')
        return dict(found)

    def principal_group(self, name: str) -> list[str]:
        if name in self.principal_groups:
            return self.principal_groups[name]
        if name in self.fx.principal_groups:
            return self.fx.principal_groups[name]
        raise SuiteError(f'principal group "{name}" not found')

    def resource_group(self, name: str) -> list[str]:
        if name in self.resource_groups:
            return self.resource_groups[name]
        if name in self.fx.resource_groups:
            return self.fx.resource_groups[name]
        raise SuiteError(f'principal group "{name}" not found')  # sic: Cerbos 0.55's words

    def exists(self, lookup: Callable[[str], Any]) -> Callable[[str], bool]:
        def check(name: str) -> bool:
            try:
                lookup(name)
            except SuiteError:
                return False
            return True

        return check


def _collect(single: str, names: list[str], groups: list[str], lookup: Callable[[str], list[str]]) -> list[str]:
    """Fixture names as Cerbos collects them: ``single`` or the list, then each group's new ones."""
    out = [single] if single else list(names)
    seen = set(out)
    for group in groups:
        for name in lookup(group):
            if name not in seen:
                seen.add(name)
                out.append(name)
    return out


@dataclass
class _Expectation:
    actions: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # action -> src -> value


@dataclass
class _Test:
    table: dict[str, Any]
    principal_name: str
    resource_name: str
    principal: Any
    resource: Any
    aux_data: dict[str, Any]
    expected: _Expectation
    options: dict[str, Any]


def _build_tests(run: _SuiteRun, table: dict[str, Any]) -> list[_Test]:
    inp = table.get("input") or {}
    input_actions = list(inp.get("actions") or [])
    lookup: dict[tuple[str, str], _Expectation] = {}
    for e in table.get("expected") or []:
        outputs = {
            block["action"]: {entry.get("src", ""): entry.get("val") for entry in block.get("expected") or []}
            for block in e.get("outputs") or []
        }
        unreachable = [a for a in outputs if a not in input_actions]
        if unreachable:
            raise SuiteError(
                "found output expectations for actions that are not in the input actions list: "
                f"[{','.join(unreachable)}]"
            )
        principals = _collect(
            e.get("principal") or "", e.get("principals") or [], e.get("principalGroups") or [], run.principal_group
        )
        resources = _collect(
            e.get("resource") or "", e.get("resources") or [], e.get("resourceGroups") or [], run.resource_group
        )
        actions = dict(e.get("actions") or {})
        for p in principals:
            for r in resources:
                extra = sorted(a for a in actions if a not in input_actions)
                if extra:
                    raise SuiteError(
                        "found expectations for actions that do not exist in the input actions list: "
                        f"[{','.join(extra)}]"
                    )
                target = lookup.setdefault((p, r), _Expectation())
                for action, effect in actions.items():
                    if target.actions.setdefault(action, effect) != effect:
                        raise SuiteError(
                            f'found inconsistent expectations for principal "{p}" performing action "{action}" '
                            f'on resource "{r}"'
                        )
                for action, entries in outputs.items():
                    known = target.outputs.setdefault(action, {})
                    for src, val in entries.items():
                        if src in known and not _same_value(known[src], val):
                            raise SuiteError(
                                f'found inconsistent expectations for output "{src}" from principal "{p}" '
                                f'performing action "{action}" on resource "{r}"'
                            )
                        known.setdefault(src, val)
    principals = _collect("", inp.get("principals") or [], inp.get("principalGroups") or [], run.principal_group)
    resources = _collect("", inp.get("resources") or [], inp.get("resourceGroups") or [], run.resource_group)
    matrix = []
    for p in principals:
        for r in resources:
            matrix.append((p, r, lookup.pop((p, r), _Expectation())))
    for p, r in lookup:
        raise SuiteError(
            f'found an expectation for principal "{p}" and resource "{r}", but at least one of these is not '
            "present in input"
        )
    options = table.get("options")
    if options is None:
        options = run.suite.get("options")
    return [
        _Test(
            table,
            p,
            r,
            run.principal(p),
            run.resource(r),
            run.aux_data(inp.get("auxData") or ""),
            expectation,
            dict(options or {}),
        )
        for p, r, expectation in matrix
    ]


def _params(base: EvalParams, options: dict[str, Any]) -> tuple[EvalParams, datetime | None]:
    """The engine settings a test runs with: as in Cerbos, its options can turn strict evaluation
    and lenient scope search on, not off; the others apply when given."""
    params = EvalParams(
        strict_evaluation=base.strict_evaluation or bool(options.get("strictEvaluation")),
        default_policy_version=options.get("defaultPolicyVersion") or base.default_policy_version,
        default_scope=options.get("defaultScope") or base.default_scope,
        lenient_scope_search=base.lenient_scope_search or bool(options.get("lenientScopeSearch")),
        globals=dict(options.get("globals") or base.globals),
        schema_enforcement=base.schema_enforcement,
    )
    now = None
    if options.get("now") is not None:
        try:
            now = parse_timestamp(str(options["now"]))
        except CelError as exc:
            raise SuiteError(f"options.now: {exc}") from None
    return params, now


def run_suite(engine: Engine, doc: Any, file: str, fixtures: Fixtures, fixture_dir: str = TESTDATA_DIR) -> SuiteResult:
    """One suite, as Cerbos's verify runs it (``doc`` as loaded, with positions)."""
    problems = suite_problems(doc)
    if problems:
        return SuiteResult("Unknown", file, error="failed to load test suite:\n" + "\n".join(problems))
    suite: dict[str, Any] = plain(doc)
    name = str(suite["name"])
    result = SuiteResult(name, file)
    if fixtures.error:
        result.error = f"failed to load test fixtures from {fixture_dir}: {fixtures.error}"
        return result
    run = _SuiteRun(suite, fixtures)
    for noun, groups, exists in (
        ("principal", run.principal_groups, run.exists(run.principal)),
        ("resource", run.resource_groups, run.exists(run.resource)),
    ):
        missing = _missing_member(groups, exists)
        if missing:
            result.error = f"Invalid {noun} groups in test suite: {missing}"
            return result
    if suite.get("skip"):
        result.skipped, result.skip_reason = True, str(suite.get("skipReason") or "")
        return result
    seen: set[str] = set()
    duplicates = []
    for table in suite["tests"]:
        if table["name"] in seen:
            duplicates.append(f"another test named {table['name']} already exists")
        seen.add(table["name"])
    if duplicates:
        result.error = "Invalid test suite: " + "; ".join(duplicates)
        return result
    tests: list[_Test] = []
    for table in suite["tests"]:
        try:
            tests.extend(_build_tests(run, table))
        except SuiteError as exc:
            result.error = f'Failed to load the test suite: invalid test "{table["name"]}": {exc}'
            return result
    for test in tests:
        result.cases.extend(_run_test(engine, name, test))
    return result


def _run_test(engine: Engine, suite: str, test: _Test) -> list[TestCase]:
    table = test.table
    test_name = str(table["name"])
    actions = list(table["input"]["actions"])
    p_name, r_name = test.principal_name, test.resource_name

    def each(result: str, message: str) -> list[TestCase]:
        return [TestCase(suite, test_name, p_name, r_name, a, result, message=message) for a in actions]

    if table.get("skip"):
        return each(SKIPPED, str(table.get("skipReason") or ""))
    try:
        params, now = _params(engine.params, test.options)
        principal = parse_principal(test.principal, f"principal {p_name}")
        resource = parse_resource(test.resource, f"resource {r_name}")
    except (SuiteError, RequestError) as exc:
        return each(ERRORED, str(exc))
    runner = Engine(engine.policy_set, params)
    inp = CheckInput(principal, resource, actions, test.aux_data)
    if now is not None:
        out = runner.check(inp, now)
    else:
        watched = _unset_now()
        out = runner.check(inp, watched)
        if _was_read(watched) or _answers(out) != _answers(runner.check(inp, _FAR_NOW)):
            return each(ERRORED, USED_DEFAULT_NOW)
    cases = []
    for action in actions:
        want = test.expected.actions.get(action, DENY)
        got = out.actions[action].effect
        case = TestCase(suite, test_name, p_name, r_name, action, PASSED if want == got else FAILED, want, got)
        if case.result == PASSED and action in test.expected.outputs:
            problem = _output_problem(test.expected.outputs[action], action, out.outputs)
            if problem:
                case.result, case.message = FAILED, problem
        cases.append(case)
    return cases


def _answers(out: Any) -> tuple[object, ...]:
    return (
        tuple(sorted((a, r.effect) for a, r in out.actions.items())),
        tuple((o.src, o.action, repr(o.val), o.error) for o in out.outputs),
    )


def _output_problem(expected: dict[str, Any], action: str, actual: Sequence[OutputEntry]) -> str:
    """Cerbos compares each expected output with the last one its rule produced for the action."""
    by_src = {o.src: o for o in actual if o.action == action}
    for src, want in expected.items():
        got = by_src.get(src)
        if got is None:
            return f"expected output from {src} but none was produced"
        if got.error:
            return f"output from {src}: expected {want!r}, error {got.error}"
        if not _same_value(want, got.val):
            return f"output from {src}: expected {want!r}, actual {got.val!r}"
    return ""


def _same_value(a: Any, b: Any) -> bool:
    """Equal as protobuf Values: numbers are doubles, a bool is never a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def run_test_suites(
    root: Path, policy_set: PolicySet, params: EvalParams | None = None
) -> tuple[list[SuiteResult], list[PolicyProblem]]:
    """Every test suite below ``root``, run against ``policy_set``, sorted by file. A suite that
    cannot run is an ERRORED result of its own; the problem list is kept for callers and stays
    empty."""
    engine = Engine(policy_set, params)
    results: list[SuiteResult] = []
    fixture_cache: dict[Path, Fixtures] = {}
    for rel in test_files(root):
        if TESTDATA_DIR in rel.parts[:-1]:
            continue  # Cerbos does not look for suites inside testdata/
        folder = rel.parent
        if folder not in fixture_cache:
            fixture_cache[folder] = _load_fixtures(root, folder)
        try:
            doc = _single_document(root, rel)
        except SuiteError as exc:
            results.append(SuiteResult("Unknown", str(rel), error=f"failed to load test suite:\n{exc}"))
            continue
        results.append(run_suite(engine, doc, str(rel), fixture_cache[folder], str(folder / TESTDATA_DIR)))
    return results, []


def render_results(results: list[SuiteResult]) -> str:
    """The test report, shaped like ``cerbos compile``'s."""
    lines = ["Test results"]
    for i, s in enumerate(results):
        last = i == len(results) - 1
        lines.append(f"{'└' if last else '├'}──{s.name} ({s.file}) {_counts(s)}")
        pad = "   " if last else "│  "
        if s.error:
            lines.append(f"{pad}└──ERROR: {s.error}")
        for c in s.cases:
            if c.result in (FAILED, ERRORED):
                detail = c.message or f"expected: {c.expected}, actual: {c.actual}"
                lines.append(f"{pad}└──{c.test} / {c.principal} / {c.resource} / {c.action} [{c.result}] {detail}")
    all_cases = [c for s in results for c in s.cases]
    lines.append("")
    counts = " ".join(f"[{n} {r}]" for r in (PASSED, SKIPPED, FAILED, ERRORED) if (n := _n(all_cases, r)))
    errored = sum(1 for s in results if s.error)
    suites = f", {errored} suite(s) ERRORED" if errored else ""
    lines.append(f"{len(all_cases)} tests executed {counts}{suites}")
    return "\n".join(lines)


def _n(cases: list[TestCase], result: str) -> int:
    return sum(1 for c in cases if c.result == result)


def _counts(suite: SuiteResult) -> str:
    if suite.error:
        return "[ERRORED]"
    if suite.skipped:
        return "[SKIPPED]" + (f" {suite.skip_reason}" if suite.skip_reason else "")
    return " ".join(f"[{n} {r}]" for r in (PASSED, SKIPPED, FAILED, ERRORED) if (n := _n(suite.cases, r)))
