"""Test suites as ``cerbos compile`` runs them, held against the real Cerbos 0.55 binary: for each
case below (our own files, written to a temporary directory: the situations Cerbos's own verify
test data covers), both tools give the same verdict to every suite and to every test case, with
strict evaluation on and off, and a broken suite ERRORS alone while the others still run.
"""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest

from authz.cli import EXIT_TEST_FAILURES, build_parser, cmd_compile
from authz.compile import compile_policy_dir
from authz.evaluate import EvalParams
from authz.verify import ERRORED, FAILED, PASSED, SKIPPED, run_test_suites
from tests.support.cerbos_pdp import compile_dir

_RESULTS = {"RESULT_PASSED": PASSED, "RESULT_FAILED": FAILED, "RESULT_SKIPPED": SKIPPED, "RESULT_ERRORED": ERRORED}

POLICY = """\
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: ward_note
  version: default
  schemas:
    resourceSchema:
      ref: cerbos:///ward_note.json
  rules:
    - &read_rule
      actions: [read]
      effect: EFFECT_ALLOW
      roles: &clinicians [nurse, doctor]
    - <<: *read_rule
      actions: [comment]
      roles: [doctor]
    - actions: [sign]
      effect: EFFECT_ALLOW
      roles: [doctor]
      name: own-note
      condition:
        match:
          expr: R.attr.author == P.id
      output:
        when:
          ruleActivated: '"signed by " + P.id'
    - actions: [archive]
      effect: EFFECT_ALLOW
      roles: *clinicians
      condition:
        match:
          expr: timestamp(R.attr.written).timeSince() > duration("720h")
    - actions: [audit]
      effect: EFFECT_ALLOW
      roles: [doctor]
      condition:
        match:
          expr: '"ward-auditor" in request.auxData.jwts.staff.claims.groups'
"""

SCHEMA = {
    "type": "object",
    "properties": {"author": {"type": "string"}, "written": {"type": "string"}},
    "required": ["author"],
}

PRINCIPALS = """\
principals:
  dana: &dana
    id: dana
    roles: [doctor]
    attr: &dana_attr {ward: north, grade: senior}
  dan:
    <<: *dana
    id: dan
    attr:
      <<: *dana_attr
      grade: junior
  nia:
    id: nia
    roles: [nurse]
principalGroups:
  doctors:
    principals: [dana, dan]
"""

RESOURCES = """\
resources:
  danas_note: &note
    kind: ward_note
    id: n1
    attr: &note_attr {author: dana, written: "2026-01-01T00:00:00Z"}
  dans_note:
    <<: *note
    id: n2
    attr:
      <<: *note_attr
      author: dan
  unsigned_note:
    kind: ward_note
    id: n3
    attr: {written: "2026-01-01T00:00:00Z"}
"""

AUXDATA = """\
auxData:
  auditor:
    jwts:
      staff:
        claims: {groups: [ward-auditor]}
"""

GOOD_SUITE = """\
name: Notes
options: &opts
  now: "2026-03-01T00:00:00Z"
tests:
  - name: Doctors sign their own notes
    input:
      principalGroups: [doctors]
      resources: [danas_note, dans_note]
      actions: [read, comment, sign]
    expected:
      - principal: dana
        resource: danas_note
        actions: {read: EFFECT_ALLOW, comment: EFFECT_ALLOW, sign: EFFECT_ALLOW}
        outputs:
          - action: sign
            expected:
              - src: resource.ward_note.vdefault#own-note
                val: signed by dana
      - principal: dana
        resource: dans_note
        actions: {read: EFFECT_ALLOW, comment: EFFECT_ALLOW}
      - principals: [dan]
        resources: [dans_note]
        actions: {read: EFFECT_ALLOW, comment: EFFECT_ALLOW, sign: EFFECT_ALLOW}
      - principal: dan
        resource: danas_note
        actions: {read: EFFECT_ALLOW, comment: EFFECT_ALLOW}
  - name: A nurse reads, archives old notes, and neither comments nor signs
    options:
      <<: *opts
      now: "2026-01-10T00:00:00Z"
    input:
      principals: [nia]
      resources: [danas_note]
      actions: [read, comment, sign, archive]
    expected:
      - principal: nia
        resource: danas_note
        actions: {read: EFFECT_ALLOW}
  - name: Old notes are archived
    input:
      principals: [nia]
      resources: [danas_note]
      actions: [archive]
    expected:
      - principal: nia
        resource: danas_note
        actions: {archive: EFFECT_ALLOW}
  - name: Auditors by token
    input:
      principals: [dana]
      resources: [danas_note]
      actions: [audit]
      auxData: auditor
    expected:
      - principal: dana
        resource: danas_note
        actions: {audit: EFFECT_ALLOW}
  - name: Skipped test
    skip: true
    skipReason: later
    input: {principals: [nia], resources: [danas_note], actions: [sign]}
    expected:
      - {principal: nia, resource: danas_note, actions: {sign: EFFECT_ALLOW}}
"""


def _suite(name: str, test: str, extra: str = "") -> str:
    """A one-test suite: ``test`` is the test's YAML body, indented under ``tests:``."""
    return f"name: {name}\n{extra}tests:\n" + textwrap.indent(textwrap.dedent(test), "  ")


BASIC_TEST = """\
- name: Nia reads
  input: {principals: [nia], resources: [danas_note], actions: [read]}
  expected:
    - {principal: nia, resource: danas_note, actions: {read: EFFECT_ALLOW}}
"""

# Each: file name -> its text; every case also has the policy, the schema and GOOD_SUITE.
CASES: dict[str, dict[str, str]] = {
    "good": {},
    "suite skipped": {"skipped_test.yaml": _suite("Skipped", BASIC_TEST, "skip: true\nskipReason: not now\n")},
    "duplicate test names": {"dupes_test.yaml": _suite("Dupes", BASIC_TEST + BASIC_TEST)},
    "unknown principal": {"unknown_test.yaml": _suite("Unknown", BASIC_TEST.replace("[nia]", "[nobody]"))},
    "unknown resource": {"unknown_test.yaml": _suite("Unknown", BASIC_TEST.replace("[danas_note]", "[nothing]"))},
    "unknown auxData": {
        "aux_test.yaml": _suite("Aux", BASIC_TEST.replace("actions: [read]}", "actions: [read], auxData: nope}"))
    },
    "unknown group": {
        "group_test.yaml": _suite("Group", BASIC_TEST.replace("principals: [nia]", "principalGroups: [nurses]"))
    },
    "suite group with a missing member": {
        "group_test.yaml": _suite("Group", BASIC_TEST, "principalGroups:\n  g: {principals: [nia, ghost]}\n")
    },
    "principal without id": {
        "inline_test.yaml": _suite("Inline", BASIC_TEST, "principals:\n  nia: {roles: [nurse]}\n")
    },
    "unknown field": {"field_test.yaml": _suite("Field", BASIC_TEST.replace("- name:", "- nmae: x\n  name:"))},
    "invalid effect": {"effect_test.yaml": _suite("Effect", BASIC_TEST.replace("read: EFFECT_ALLOW", "read: ALLOW"))},
    "expectation for an action not asked": {
        "extra_test.yaml": _suite(
            "Extra", BASIC_TEST.replace("read: EFFECT_ALLOW", "read: EFFECT_ALLOW, sign: EFFECT_DENY")
        )
    },
    "expectation for a principal not in input": {
        "extra_test.yaml": _suite(
            "Extra",
            BASIC_TEST + "    - {principal: dana, resource: danas_note, actions: {read: EFFECT_ALLOW}}\n",
        )
    },
    "inconsistent effect expectations": {
        "twice_test.yaml": _suite(
            "Twice", BASIC_TEST + "    - {principal: nia, resource: danas_note, actions: {read: EFFECT_DENY}}\n"
        )
    },
    "repeated consistent expectations": {
        "twice_test.yaml": _suite(
            "Twice", BASIC_TEST + "    - {principal: nia, resource: danas_note, actions: {read: EFFECT_ALLOW}}\n"
        )
    },
    "inconsistent output expectations": {
        "outputs_test.yaml": _suite(
            "Outputs",
            """\
            - name: Dana signs
              options: {now: "2026-03-01T00:00:00Z"}
              input: {principals: [dana], resources: [danas_note], actions: [sign]}
              expected:
                - principal: dana
                  resource: danas_note
                  actions: {sign: EFFECT_ALLOW}
                  outputs: [{action: sign, expected: [{src: "resource.ward_note.vdefault#own-note", val: a}]}]
                - principal: dana
                  resource: danas_note
                  actions: {sign: EFFECT_ALLOW}
                  outputs: [{action: sign, expected: [{src: "resource.ward_note.vdefault#own-note", val: b}]}]
            """,
        )
    },
    "output expectation for an action not asked": {
        "outputs_test.yaml": _suite(
            "Outputs",
            BASIC_TEST.replace(
                "actions: {read: EFFECT_ALLOW}}",
                "actions: {read: EFFECT_ALLOW}, outputs: [{action: sign, expected: [{src: x, val: 1}]}]}",
            ),
        )
    },
    "no tests": {"empty_test.yaml": "name: Empty\n"},
    "not YAML": {"bad_test.yaml": "name: [unclosed\n"},
    "bad now": {"now_test.yaml": _suite("Now", BASIC_TEST, "options: {now: yesterday}\n")},
    "time read without now": {
        "clock_test.yaml": _suite("Clock", BASIC_TEST.replace("read", "archive")),
    },
    "failing expectations": {
        "wrong_test.yaml": _suite("Wrong", BASIC_TEST.replace("actions: [read]", "actions: [read, sign]")).replace(
            "read: EFFECT_ALLOW", "read: EFFECT_ALLOW, sign: EFFECT_ALLOW"
        )
    },
    "wrong output": {
        "output_test.yaml": _suite(
            "Output",
            """\
            - name: Dana signs
              options: {now: "2026-03-01T00:00:00Z"}
              input: {principals: [dana], resources: [danas_note], actions: [sign]}
              expected:
                - principal: dana
                  resource: danas_note
                  actions: {sign: EFFECT_ALLOW}
                  outputs:
                    - action: sign
                      expected: [{src: "resource.ward_note.vdefault#own-note", val: signed by someone}]
            """,
        )
    },
    "resource breaking its schema": {
        "schema_test.yaml": _suite("Schema", BASIC_TEST.replace("danas_note", "unsigned_note")),
    },
    "strictEvaluation option": {
        "strict_test.yaml": _suite(
            "Strict",
            """\
            - name: Dana audits without a token
              options: {strictEvaluation: true, now: "2026-03-01T00:00:00Z"}
              input: {principals: [dana], resources: [danas_note], actions: [audit, read]}
              expected:
                - {principal: dana, resource: danas_note, actions: {read: EFFECT_ALLOW}}
            """,
        )
    },
    "fixture without id": {"testdata/principals.yaml": PRINCIPALS.replace("    id: nia\n", "")},
    "fixture overriding a merged id": {"testdata/principals.yaml": PRINCIPALS.replace("    id: dan\n", "")},
    "fixture with an unknown field": {
        "testdata/resources.yaml": RESOURCES.replace("    id: n2\n", "    id: n2\n    owner: dan\n")
    },
    "fixture group with a missing member": {
        "testdata/principals.yaml": PRINCIPALS.replace("[dana, dan]", "[dana, dan, ghost]")
    },
    "testdata file wrongly named": {"testdata/principal.yaml": PRINCIPALS, "testdata/principals.yaml": ""},
    "fixture file not YAML": {"testdata/auxdata.yaml": "auxData: {auditor: [\n"},
    "suite in a folder without testdata": {"sub/inline_test.yaml": _suite("Sub", BASIC_TEST)},
}


def _write(root: Path, extra: dict[str, str]) -> Path:
    files = {
        "ward_note.yaml": POLICY,
        "_schemas/ward_note.json": json.dumps(SCHEMA),
        "testdata/principals.yaml": PRINCIPALS,
        "testdata/resources.yaml": RESOURCES,
        "testdata/auxdata.yaml": AUXDATA,
        "notes_test.yaml": GOOD_SUITE,
        **extra,
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if text:
            path.write_text(text)
    if "" in extra.values():
        for name, text in extra.items():
            if not text:
                (root / name).unlink(missing_ok=True)
    return root


def cerbos_verdicts(root: Path, strict: bool, *flags: str) -> dict[tuple[str, ...], str]:
    """Every suite's verdict (key: its file) and every test case's (file, test, principal,
    resource, action), as ``cerbos compile -o json`` reports them."""
    args = ["-o", "json", *flags] + (["--strict-evaluation"] if strict else [])
    report = json.loads(compile_dir(root, *args).stdout)
    out: dict[tuple[str, ...], str] = {}
    for suite in report["suites"]:
        out[(suite["file"],)] = _RESULTS[suite["summary"]["overallResult"]]
        for case in suite.get("testCases", []):
            for p in case["principals"]:
                for r in p["resources"]:
                    for a in r["actions"]:
                        out[(suite["file"], case["name"], p["name"], r["name"], a["name"])] = _RESULTS[
                            a["details"]["result"]
                        ]
    return out


def our_verdicts(root: Path, strict: bool, ignore_schemas: bool = False) -> dict[tuple[str, ...], str]:
    params = EvalParams(strict_evaluation=strict, schema_enforcement="none" if ignore_schemas else "reject")
    results, _ = run_test_suites(root, compile_policy_dir(root, check_schemas=not ignore_schemas), params)
    out: dict[tuple[str, ...], str] = {}
    for s in results:
        out[(s.file,)] = s.verdict
        for c in s.cases:
            out[(s.file, c.test, c.principal, c.resource, c.action)] = c.result
    return out


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
@pytest.mark.parametrize("case", list(CASES))
def test_same_verdicts_as_cerbos(tmp_path: Path, case: str, strict: bool) -> None:
    root = _write(tmp_path / "policies", CASES[case])
    theirs = cerbos_verdicts(root, strict)
    assert our_verdicts(root, strict) == theirs
    if not any(name.startswith("testdata/") for name in CASES[case]):
        # The good suite runs and reports whatever happens to the others.
        assert theirs[("notes_test.yaml",)] == PASSED


def test_the_cases_cover_every_verdict(tmp_path: Path) -> None:
    seen = set()
    for case, extra in CASES.items():
        root = _write(tmp_path / case.replace(" ", "_"), extra)
        seen |= {v for k, v in our_verdicts(root, True).items() if len(k) == 1}
    assert seen == {PASSED, FAILED, SKIPPED, ERRORED}


@pytest.mark.parametrize("case", ["good", "resource breaking its schema"])
def test_ignore_schemas_as_cerbos(tmp_path: Path, case: str) -> None:
    root = _write(tmp_path / "policies", CASES[case])
    (root / "_schemas" / "ward_note.json").unlink()  # a missing schema is an error only when schemas count
    assert cerbos_verdicts(root, True, "--ignore-schemas") == our_verdicts(root, True, ignore_schemas=True)
    out = io.StringIO()
    assert cmd_compile(build_parser().parse_args(["compile", str(root), "--ignore-schemas"]), out) == 0
    assert compile_dir(root).returncode == 3
    assert cmd_compile(build_parser().parse_args(["compile", str(root)]), io.StringIO()) == 3


# Where the words differ: a YAML syntax error is described by each tool's own YAML parser, and Go's
# time parser adds its own detail to a bad timestamp. The first line and the verdict still agree.
_OWN_WORDS = {"not YAML", "fixture file not YAML", "bad now"}


@pytest.mark.parametrize("case", [c for c in CASES if c not in {"good"}])
def test_suite_errors_in_cerbos_words(tmp_path: Path, case: str) -> None:
    root = _write(tmp_path / "policies", CASES[case])
    report = json.loads(compile_dir(root, "-o", "json").stdout)
    theirs = {s["file"]: s["error"] for s in report["suites"] if s.get("error")}
    results, _ = run_test_suites(root, compile_policy_dir(root), EvalParams(schema_enforcement="reject"))
    ours = {s.file: s.error for s in results if s.error}
    assert ours.keys() == theirs.keys()
    for file, error in theirs.items():
        if case in _OWN_WORDS:
            assert ours[file].splitlines()[0] == error.splitlines()[0]
            assert ours[file].splitlines()[1].split(" ")[0].count(":") == 1  # LINE:COL
        else:
            assert ours[file] == error


def test_errored_suites_in_the_report_and_the_exit_status(tmp_path: Path) -> None:
    root = _write(tmp_path / "policies", {**CASES["duplicate test names"], **CASES["unknown auxData"]})
    out = io.StringIO()
    assert cmd_compile(build_parser().parse_args(["compile", str(root)]), out) == EXIT_TEST_FAILURES
    report = out.getvalue()
    assert "Dupes (dupes_test.yaml) [ERRORED]" in report
    assert "ERROR: Invalid test suite: another test named Nia reads already exists" in report
    assert 'ERROR: Failed to load the test suite: invalid test "Nia reads": auxData "nope" not found' in report
    assert "Notes (notes_test.yaml) [" in report and "[1 SKIPPED]" in report
    assert "2 suite(s) ERRORED" in report
    assert compile_dir(root).returncode == EXIT_TEST_FAILURES
