"""Regular expressions as Cerbos runs them (Go's regexp: RE2 syntax, linear time): ``matches``
and the regex extension's functions give the values and the errors a real Cerbos 0.55 gives, what
Go refuses (back-references, look-arounds, ``\\C``...) is a compile error for a literal pattern and
an error value for one that arrives in the request, and a pattern that makes a backtracking engine
run for ages answers at once on a long input."""

from __future__ import annotations

import io
import json
import textwrap
import time
from pathlib import Path

import pytest

from authz import Engine
from authz.cel import library, regex
from authz.cel.values import CelError
from authz.cli import EXIT_POLICY_ERRORS, build_parser, cmd_compile
from tests.support.cerbos_pdp import CerbosPDP, compile_dir

LONG = "a" * 100_000 + "!"
ATTR = {"s": "banana", "long": LONG, "u": "héllo wörld", "backref": "(a)\\1", "ahead": "a(?=b)", "bad": "["}

# Each expression's value, or its error, must be Cerbos's (CEL string escapes: "\\1" is \1).
EXPRESSIONS = [
    'R.attr.s.matches("an+")',
    'R.attr.s.matches("^b.*a$")',
    '"a\\nb".matches("^b$")',
    '"a\\n".matches("a$")',
    '"ab\\nb".matches("(?m)^b$")',
    '"Ω".matches("(?i)ω")',
    '"k".matches("(?i)\\u212a")',
    '"١".matches("\\\\d")',
    '"é".matches("\\\\w")',
    '"x y".matches("\\\\bx\\\\b")',
    '"a\\u000bb".matches("\\\\s")',
    '"a.c".matches("\\\\Qa.c\\\\E")',
    '"abc".matches("\\\\Qa.c\\\\E")',
    '"a\\\\Cb".matches("\\\\Qa\\\\Cb\\\\E")',
    '"ab".matches("a(?U)b+?")',
    '"é".matches("^.$")',
    'R.attr.u.matches("\\\\p{Greek}")',
    'R.attr.u.matches("[[:alpha:]]+ \\\\pL")',
    # patterns that arrive with the request: Go's parse errors, word for word
    "R.attr.s.matches(R.attr.backref)",
    "R.attr.s.matches(R.attr.ahead)",
    "R.attr.s.matches(R.attr.bad)",
    'matches(R.attr.s, "(?=a)b")',
    'matches(R.attr.s, "(?!a)b")',
    'matches(R.attr.s, "(?<=a)b")',
    'matches(R.attr.s, "(?<!a)b")',
    'matches(R.attr.s, "(a)\\\\1")',
    'matches(R.attr.s, "\\\\C")',
    'matches(R.attr.s, "\\\\Z")',
    'matches(R.attr.s, "[abc")',
    'matches(R.attr.s, "a(b")',
    'matches(R.attr.s, "a)")',
    'matches(R.attr.s, "a**")',
    'matches(R.attr.s, "x{2}{3}")',
    'matches(R.attr.s, "+a")',
    'matches(R.attr.s, "a{1001}")',
    'matches(R.attr.s, "a{2,1}")',
    'matches(R.attr.s, "[z-a]")',
    'matches(R.attr.s, "[[:foo:]]")',
    'matches(R.attr.s, "\\\\p{Foo}")',
    'matches(R.attr.s, "(?P<>a)")',
    'matches(R.attr.s, "(?P<n")',
    'matches(R.attr.s, "(?P=n)")',
    'matches(R.attr.s, "(?z)")',
    'matches(R.attr.s, "a\\\\")',
    'matches(R.attr.s, "\\\\x{110000}")',
    'matches(R.attr.s, "(?P<n>a)(?P<n>b)")',
    # the regex extension
    'regex.replace("banana", "a", "o")',
    'regex.replace("banana", "(an)", "[\\\\1]", 1)',
    'regex.replace("banana", "(an)", "[$1]")',
    'regex.replace("banana", "(an)", "\\\\\\\\x")',
    'regex.replace("banana", "(a)", "\\\\0\\\\0")',
    'regex.replace("banana", "(a)", "\\\\2")',
    'regex.replace("banana", "a", "\\\\x")',
    'regex.replace("banana", "a", "x\\\\")',
    'regex.replace("banana", "q", "x\\\\")',
    'regex.replace("banana", "[", "x", 0)',
    'regex.replace("banana", "a", "o", -2)',
    'regex.replace("banana", "a", "o", 2)',
    'regex.replace("banana", "(a)", "\\\\1\\\\1", 9223372036854775807)',
    'regex.replace("abc", "b*", "X")',
    'regex.replace("aaa", "a*?", "-")',
    'regex.replace("héllo", "", "-")',
    'regex.replace("abc", "", "-", 2)',
    'regex.replace(R.attr.u, "ö", "o")',
    'regex.replace(R.attr.s, "(?<=a)b", "c")',
    'regex.extract("item-42", "[0-9]+").value()',
    'regex.extract("item-42", "([a-z]+)-([0-9]+)")',
    'regex.extract("item-42", "(x)?item").hasValue()',
    'regex.extract("item", "(x*)item").hasValue()',
    'regex.extract("item-42", "(?P<n>[0-9]+)").value()',
    'regex.extract("aé", "(é)").value()',
    'regex.extract("x", "[")',
    'regex.extractAll("a1b22c333", "[0-9]+")',
    'regex.extractAll("a1b22c333", "([a-z])[0-9]+")',
    'regex.extractAll("a1b22c333", "(x)?[0-9]+")',
    'regex.extractAll("abc", "b*")',
    'regex.extractAll("aaa", "")',
    'regex.extractAll("héllo", ".")',
    'regex.extractAll(R.attr.u, "\\\\pL+")',
    'regex.extractAll("x", "(?P<a>x)(?P<b>y)?")',
    # the patterns that take a backtracking engine exponential time, on 100,001 characters
    'R.attr.long.matches("(a+)+$")',
    'R.attr.long.matches("^(a|a)*$")',
    'R.attr.long.matches("^(a|aa)*$")',
    'regex.replace(R.attr.long, "(a*)*b", "x").size()',
    'regex.extractAll(R.attr.long, "(a|a)*!")',
]


def _policy(rules: list[tuple[str, str]]) -> str:
    body = ["apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  version: default\n  resource: rx\n  rules:\n"]
    for action, expr in rules:
        body.append(
            f'    - actions: ["{action}"]\n      effect: EFFECT_ALLOW\n      roles: ["*"]\n'
            f"      output:\n        when:\n          ruleActivated: |-\n{textwrap.indent(expr, ' ' * 12)}\n"
        )
    return "".join(body)


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
def test_values_and_errors_are_cerbos_s(tmp_path: Path, strict: bool) -> None:
    (tmp_path / "rx.yaml").write_text(_policy([(f"e{i}", e) for i, e in enumerate(EXPRESSIONS)]))
    engine = Engine.from_directory(tmp_path)
    differences = []
    with CerbosPDP(tmp_path, strict=strict) as pdp:
        for start in range(0, len(EXPRESSIONS), 50):
            actions = [f"e{i}" for i in range(start, min(start + 50, len(EXPRESSIONS)))]
            body = {
                "principal": {"id": "u", "roles": ["user"]},
                "resources": [{"actions": actions, "resource": {"kind": "rx", "id": "1", "attr": ATTR}}],
            }
            theirs = pdp.check(body)["results"][0]["outputs"]
            ours = engine.check_request(body)["results"][0]["outputs"]
            assert len(theirs) == len(ours) == len(actions)
            for t, o in zip(theirs, ours, strict=True):
                if t != o:
                    differences.append(f"{EXPRESSIONS[int(t['action'][1:])]}\n   cerbos: {t}\n   ours:   {o}")
    assert not differences, "\n".join(differences)


# Patterns Go refuses: a literal one in `x.matches("...")` fails the policy's compilation.
REFUSED_LITERALS = [
    "(a)\\\\1",
    "a(?=b)",
    "(?<=a)b",
    "(?!a)",
    "\\\\C",
    "\\\\Z",
    "a{1001}",
    "a**",
    "x{2}{3}",
    "[a-\\\\d]",
]
# Accepted by both (RE2 syntax a Python regex would read differently or refuse).
ACCEPTED_LITERALS = ["(?P<n>a)(?<m>b)", "\\\\pL\\\\p{Greek}[[:alpha:]]", "\\\\Qa.b\\\\E", "(?U)a+", "a{,3}", "\\\\z"]


def _condition_policy(kind: str, expr: str) -> str:
    return (
        f"apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  version: default\n  resource: {kind}\n  rules:\n"
        '    - actions: ["view"]\n      effect: EFFECT_ALLOW\n      roles: ["user"]\n'
        f"      condition:\n        match:\n          expr: '{expr}'\n"
    )


def test_patterns_go_refuses_are_compile_errors_where_cerbos_reports_them(tmp_path: Path) -> None:
    for i, pattern in enumerate(REFUSED_LITERALS + ACCEPTED_LITERALS):
        (tmp_path / f"p{i:02d}.yaml").write_text(_condition_policy(f"k{i}", f'R.attr.name.matches("{pattern}")'))
    theirs = json.loads(compile_dir(tmp_path, "--skip-tests", "-o", "json").stdout)["compileErrors"]["errors"]
    theirs_at = {e["file"]: (e["position"]["line"], e["description"]) for e in theirs}
    out = io.StringIO()
    assert cmd_compile(build_parser().parse_args(["compile", str(tmp_path), "--skip-tests"]), out) == EXIT_POLICY_ERRORS
    ours_at = {
        line.split(":")[0]: int(line.split(":")[1]) for line in out.getvalue().splitlines() if line.startswith("p")
    }
    refused = {f"p{i:02d}.yaml" for i in range(len(REFUSED_LITERALS))}
    assert set(theirs_at) == set(ours_at) == refused
    for file, (line, error) in theirs_at.items():
        assert error.endswith("[invalid matches argument]")
        assert ours_at[file] == line == 11  # the condition's line (our column points into the expression)
    assert "invalid matches argument" in out.getvalue()


def test_a_literal_pattern_is_compiled_once_when_the_policy_loads(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "p.yaml").write_text(_condition_policy("doc", 'R.attr.name.matches("^dr_[a-z]+$")'))
    engine = Engine.from_directory(tmp_path)
    compiled: list[str] = []
    monkeypatch.setattr(library, "compile_regex", lambda p: compiled.append(p) or regex.Regex(p))
    body = {
        "principal": {"id": "u", "roles": ["user"]},
        "resources": [{"actions": ["view"], "resource": {"kind": "doc", "id": "1", "attr": {"name": "dr_aly"}}}],
    }
    assert engine.check_request(body)["results"][0]["actions"]["view"] == "EFFECT_ALLOW"
    assert compiled == []


def test_a_pathological_pattern_on_a_long_input_answers_in_milliseconds() -> None:
    """A backtracking engine takes seconds for (a+)+$ on 25 characters (2**25 ways to split them);
    RE2 is linear. Measured here: under 1 ms each on 100,001 characters. The bound is generous
    (a loaded CI machine), yet far below what backtracking would take."""
    cases = [
        ("(a+)+$", lambda rx: rx.search(LONG)),
        ("^(a|aa)*$", lambda rx: rx.search(LONG)),
        ("(a*)*b", lambda rx: library._regex_replace(LONG, rx, "x")),
        ("(a|a)*!", lambda rx: library._regex_extract_all(LONG, rx)),
    ]
    for pattern, run in cases:
        rx = regex.compile_regex(pattern)
        started = time.perf_counter()
        run(rx)
        assert time.perf_counter() - started < 0.1, pattern


def test_lone_surrogates_and_non_strings_are_errors_not_crashes() -> None:
    assert regex.compile_regex("a.c").search("a\ud800c")
    assert library._regex_extract_all("x\ud800y", ".") == ["x", "\ud800", "y"]
    with pytest.raises(CelError, match="no such overload"):
        library._matches(1, "a")
    with pytest.raises(CelError, match="no such overload"):
        library._regex_replace("a", regex.compile_regex("a"), 1)
