"""Which expressions let a request's whole attribute map escape (``Compiler.attr_escapes``): the
engine skips converting the attributes up front only when no expression of a policy set does."""

from __future__ import annotations

import pytest

from authz.cel.compiler import Scope, compile_expression

NAMED_ONLY = [
    "R.attr.x == 1",
    "has(P.attr.y) && P.attr.y > 2",
    "P.id == R.attr.owner && R.kind == 'doc' && P.roles.size() > 0",
    "R.attr.m.k + 1.0 == 3.0",
    "P.id in R.attr.team",
    "[1, 2].all(R, R > 0)",  # a comprehension variable named R is not the resource
    '"a" == "b"',
]

ESCAPING = [
    ("size(R.attr) > 0", {"R"}),
    ("R.attr['x'] == 1", {"R"}),
    ("R.attr.?x.orValue(1) == 1", {"R"}),
    ("R.attr.all(k, k != '')", {"R"}),
    ("has(R.attr)", {"R"}),
    ("P.attr.map(k, k).size() == 1", {"P"}),
    ("R", {"R"}),
    ("R.?attr.hasValue()", {"R"}),
    ("request.resource.attr.x == 1", {"P", "R"}),
    ("request.principal.id == ''", {"P", "R"}),
    ("P.attr == R.attr", {"P", "R"}),
]


@pytest.mark.parametrize("text", NAMED_ONLY)
def test_reading_attributes_by_name_lets_nothing_escape(text: str) -> None:
    scope = Scope()
    compile_expression(text, scope)
    assert scope.attr_escapes == set()


@pytest.mark.parametrize(("text", "roots"), ESCAPING)
def test_any_other_use_of_an_attribute_map_escapes(text: str, roots: set[str]) -> None:
    scope = Scope()
    compile_expression(text, scope)
    assert scope.attr_escapes == roots


def test_one_escaping_expression_marks_the_shared_scope() -> None:
    scope = Scope()
    for text in [*NAMED_ONLY, "size(P.attr) == 0", "R.attr.x == 2"]:
        compile_expression(text, scope)
    assert scope.attr_escapes == {"P"}
