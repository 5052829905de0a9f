"""The SQL translator on SQLite: wildcards escaped, case kept, NULL as a missing attribute, lists
in child tables, and a named error for what it cannot express."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, create_engine, select

from authz.sql_filter import ListColumn, SqlFilterError, filter_to_sql

ROWS = {"a": "50%_off", "b": "50x off", "c": "A_B\\c", "d": "a_b\\c", "e": None, "f": "Zoë ✓"}
TAGS = {"a": ["x"], "b": [], "c": ["y", "x"], "d": [f"t{i}" for i in range(40)] + ["z"]}


@pytest.fixture()
def db() -> tuple[Any, Table, Table]:
    engine = create_engine("sqlite://")
    meta = MetaData()
    items = Table("items", meta, Column("id", String, primary_key=True), Column("name", String))
    tags = Table("tags", meta, Column("rid", String), Column("value", String))
    meta.create_all(engine)
    with engine.begin() as conn:
        for rid, name in ROWS.items():
            conn.execute(items.insert().values(id=rid, name=name))
        for rid, values in TAGS.items():
            for v in values:
                conn.execute(tags.insert().values(rid=rid, value=v))
    return engine, items, tags


def _rows(db: tuple[Any, Table, Table], condition: dict[str, Any]) -> set[str]:
    engine, items, tags = db
    mapping = {
        "request.resource.attr.name": items.c.name,
        "request.resource.attr.tags": ListColumn(tags.c.value, tags.c.rid, items.c.id),
    }
    where = filter_to_sql({"kind": "KIND_CONDITIONAL", "condition": condition}, mapping)
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(select(items.c.id).where(where))}


def _op(operator: str, *operands: dict[str, Any]) -> dict[str, Any]:
    return {"expression": {"operator": operator, "operands": list(operands)}}


NAME = {"variable": "request.resource.attr.name"}
TAGS_VAR = {"variable": "request.resource.attr.tags"}


def test_string_functions_escape_wildcards_and_keep_case(db: Any) -> None:
    assert _rows(db, _op("startsWith", NAME, {"value": "50%"})) == {"a"}
    assert _rows(db, _op("contains", NAME, {"value": "_b\\"})) == {"d"}  # not c (case), not b (wildcard)
    assert _rows(db, _op("endsWith", NAME, {"value": "✓"})) == {"f"}


def test_null_is_neither_true_nor_false(db: Any) -> None:
    equal = _op("eq", NAME, {"value": "50%_off"})
    assert _rows(db, equal) == {"a"}
    assert _rows(db, _op("not", equal)) == {"b", "c", "d", "f"}  # e: the check errs, so neither
    assert _rows(db, _op("eq", NAME, {"value": None})) == {"e"}
    assert _rows(db, _op("or", _op("eq", NAME, {"value": None}), _op("not", equal))) == {"b", "c", "d", "e", "f"}


def test_lists_in_child_tables(db: Any) -> None:
    assert _rows(db, _op("in", {"value": "x"}, TAGS_VAR)) == {"a", "c"}
    assert _rows(db, _op("in", {"value": "z"}, TAGS_VAR)) == {"d"}  # the 41st element of a long list
    assert _rows(db, _op("hasIntersection", TAGS_VAR, {"value": ["y", "z"]})) == {"c", "d"}
    body = _op("lambda", _op("startsWith", {"variable": "t"}, {"value": "t"}), {"variable": "t"})
    assert _rows(db, _op("exists", TAGS_VAR, body)) == {"d"}
    assert _rows(db, _op("all", TAGS_VAR, body)) == {"b", "e", "f"}  # every element of an empty list


def test_what_cannot_be_translated_is_named(db: Any) -> None:
    with pytest.raises(SqlFilterError, match=r"arithmetic \(add\) on a non-numeric column"):
        _rows(db, _op("eq", _op("add", NAME, {"value": "x"}), {"value": "50%_offx"}))
    with pytest.raises(SqlFilterError, match=r"arithmetic \(sub\) on '3600s'"):
        _rows(db, _op("lt", _op("sub", {"value": 1}, {"value": "3600s"}), {"value": 1}))
    with pytest.raises(SqlFilterError, match="matches"):
        _rows(db, _op("matches", NAME, {"value": "^a"}))
    with pytest.raises(SqlFilterError, match="no column is mapped for request.resource.attr.other"):
        _rows(db, _op("eq", {"variable": "request.resource.attr.other"}, {"value": 1}))
