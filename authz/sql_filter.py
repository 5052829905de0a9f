"""A query plan's filter as a SQLAlchemy Core condition: the rows a principal may act on,
selected by the database instead of checked one by one.

The caller maps each attribute the policies read to a column, as ``cerbos-sqlalchemy`` does
(``{"request.resource.attr.owner": table.c.owner}``); a list attribute lives in a child table, one
element per row (``ListColumn``), so membership, intersection and ``exists``/``all`` become
``EXISTS`` subqueries that work the same for a list of 2 or of 20,000 elements.

NULL is how a missing attribute reaches the database, and SQL's three-valued logic is CEL's error
logic: a comparison with a missing attribute is neither true nor false (an error in CEL, NULL in
SQL), ``false && error`` is false, ``true || error`` is true, ``!error`` is an error, and ``WHERE``
keeps only rows whose condition is true. So a NULL column yields exactly the rows a check allows,
given the filter's own presence tests (``ne(attribute, null)``: ``IS NOT NULL``). A list attribute
is always present (an empty list when it has no rows).

Anything this module cannot express exactly raises ``SqlFilterError`` naming it: a wrong row is
never returned instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    Numeric,
    Table,
    and_,
    case,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import KeyedColumnElement

ALWAYS_ALLOWED = "KIND_ALWAYS_ALLOWED"
ALWAYS_DENIED = "KIND_ALWAYS_DENIED"
CONDITIONAL = "KIND_CONDITIONAL"


class SqlFilterError(Exception):
    """A filter this translator cannot express exactly (named in the message)."""


@dataclass(frozen=True)
class ListColumn:
    """A list attribute stored in a child table: ``value`` holds one element per row, ``key``
    refers to the owning row's ``parent_key``."""

    value: KeyedColumnElement[Any]
    key: KeyedColumnElement[Any]
    parent_key: KeyedColumnElement[Any]

    def having(self, element_test: ColumnElement[bool]) -> ColumnElement[bool]:
        """Whether some element passes the test: the owning row's key among the keys of the
        elements that do (an uncorrelated subquery, so the database can start from an index on
        the elements, a few rows, instead of probing for every row of the owning table)."""
        keys = select(self.key).where(element_test, self.key.is_not(None))
        return self.parent_key.in_(keys)

    @property
    def table(self) -> Table:
        table = self.value.table
        assert isinstance(table, Table)
        return table


Mapping = dict[str, "KeyedColumnElement[Any] | Column[Any] | ListColumn"]


def filter_to_sql(plan_filter: dict[str, Any], mapping: Mapping) -> ColumnElement[bool]:
    """A PlanResources ``filter`` object (``kind`` and ``condition``) as a WHERE condition."""
    kind = plan_filter.get("kind")
    if kind == ALWAYS_ALLOWED:
        return true()
    if kind == ALWAYS_DENIED:
        return false()
    if kind != CONDITIONAL or "condition" not in plan_filter:
        raise SqlFilterError(f"unknown filter kind {kind!r}")
    return _Translator(mapping).boolean(plan_filter["condition"])


class _Translator:
    def __init__(self, mapping: Mapping) -> None:
        self.mapping = mapping
        self.lambdas: dict[str, KeyedColumnElement[Any]] = {}

    # -- operands -----------------------------------------------------------------------------

    def boolean(self, operand: dict[str, Any]) -> ColumnElement[bool]:
        """An operand in a boolean position."""
        if "value" in operand:
            value = operand["value"]
            if type(value) is not bool:
                raise SqlFilterError(f"non-boolean value {value!r} used as a condition")
            return true() if value else false()
        if "variable" in operand:
            column = self.column(operand["variable"])
            is_true: ColumnElement[bool] = column == literal(True)  # NULL (missing) stays unknown
            return is_true
        return self.expression(operand)

    def column(self, name: str) -> Any:
        if name in self.lambdas:
            return self.lambdas[name]
        found = self.mapping.get(name)
        if found is None:
            raise SqlFilterError(f"no column is mapped for {name}")
        if isinstance(found, ListColumn):
            raise SqlFilterError(f"list attribute {name} used where a single value is expected")
        return found

    def list_column(self, operand: dict[str, Any]) -> ListColumn | None:
        name = operand.get("variable")
        found = self.mapping.get(name) if isinstance(name, str) else None
        return found if isinstance(found, ListColumn) else None

    def scalar(self, operand: dict[str, Any]) -> Any:
        """An operand as a SQL value expression."""
        if "value" in operand:
            return literal(operand["value"]) if not isinstance(operand["value"], list) else operand["value"]
        if "variable" in operand:
            return self.column(operand["variable"])
        expr = operand.get("expression")
        if not isinstance(expr, dict):
            raise SqlFilterError(f"malformed operand {operand!r}")
        op, args = expr.get("operator"), expr.get("operands") or []
        if op == "timestamp" and len(args) == 1:
            return self.scalar(args[0]) if "value" not in args[0] else literal(_timestamp(args[0]["value"]))
        if op in ("add", "sub", "mult") and len(args) == 2:
            a, b = (self.number(o, op) for o in args)
            return a + b if op == "add" else a - b if op == "sub" else a * b
        if op == "size" and len(args) == 1:
            lc = self.list_column(args[0])
            if lc is not None:
                return select(func.count()).where(lc.key == lc.parent_key).scalar_subquery()
            return func.length(self.scalar(args[0]))
        if op == "if" and len(args) == 3:
            cond = self.boolean(args[0])
            return case((cond, self.scalar(args[1])), (not_(cond), self.scalar(args[2])))
        if op in ("lowerAscii", "upperAscii") and len(args) == 1:
            raise SqlFilterError(f"{op} cannot be translated exactly (SQL changes more than ASCII letters)")
        return self.expression(operand)

    def number(self, operand: dict[str, Any], op: str) -> Any:
        """An operand of arithmetic: a number or a numeric column. Anything else (a string, whose
        ``+`` concatenates in CEL; a timestamp or duration, whose arithmetic SQL dialects spell
        differently) cannot be translated exactly."""
        if "value" in operand:
            value = operand["value"]
            if type(value) not in (int, float):
                raise SqlFilterError(f"arithmetic ({op}) on {value!r} cannot be translated")
            return literal(value)
        element = self.scalar(operand)
        if not isinstance(getattr(element, "type", None), (Integer, Numeric)):
            raise SqlFilterError(f"arithmetic ({op}) on a non-numeric column cannot be translated")
        return element

    # -- boolean expressions ------------------------------------------------------------------

    def expression(self, operand: dict[str, Any]) -> ColumnElement[bool]:  # noqa: C901
        expr = operand.get("expression")
        if not isinstance(expr, dict):
            raise SqlFilterError(f"malformed operand {operand!r}")
        op, args = expr.get("operator"), expr.get("operands") or []
        if op == "and":
            return and_(*(self.boolean(a) for a in args))
        if op == "or":
            return self.disjunction(args)
        if op == "not" and len(args) == 1:
            return not_(self.boolean(args[0]))
        if op in ("eq", "ne") and len(args) == 2:
            return self.equality(op, args[0], args[1])
        if op in ("lt", "le", "gt", "ge") and len(args) == 2:
            return self.ordering(op, args[0], args[1])
        if op == "in" and len(args) == 2:
            return self.membership(args[0], args[1])
        if op in ("hasIntersection", "has_intersection", "sets.intersects") and len(args) == 2:
            return self.intersection(args[0], args[1])
        if op in ("exists", "all", "exists_one") and len(args) == 2:
            return self.comprehension(op, args[0], args[1])
        if op in ("startsWith", "endsWith", "contains") and len(args) == 2:
            return self.string_test(op, args[0], args[1])
        if op == "if" and len(args) == 3:
            cond = self.boolean(args[0])
            return case((cond, self.boolean(args[1])), (not_(cond), self.boolean(args[2])))
        raise SqlFilterError(f"operator {op!r} cannot be translated to SQL")

    def disjunction(self, args: list[dict[str, Any]]) -> ColumnElement[bool]:
        """``or``, with the equalities of one attribute to values gathered into one ``IN`` (the same
        rows, NULL included): a plan over a long list the principal holds (``exists`` unrolled by
        the planner) would otherwise nest past what SQLite parses (1,000 levels)."""
        values: dict[str, list[Any]] = {}
        rest = []
        for a in args:
            found = _equality_to_value(a)
            if found is not None and self.list_column({"variable": found[0]}) is None:
                values.setdefault(found[0], []).append(found[1])
            else:
                rest.append(a)
        parts: list[ColumnElement[bool]] = []
        for name, listed in values.items():
            column = self.column(name)
            parts.append(column == literal(listed[0]) if len(listed) == 1 else column.in_(listed))
        parts.extend(self.boolean(a) for a in rest)
        return or_(*parts)

    def equality(self, op: str, a: dict[str, Any], b: dict[str, Any]) -> ColumnElement[bool]:
        if b.get("value", 0) is None or a.get("value", 0) is None:  # a presence test
            other = a if b.get("value", 0) is None else b
            if self.list_column(other) is not None:
                return true() if op == "ne" else false()  # a list is always present
            column = self.scalar(other)
            presence: ColumnElement[bool] = column.is_not(None) if op == "ne" else column.is_(None)
            return presence
        x, y = self.compared(a, b)
        result: ColumnElement[bool] = x == y if op == "eq" else x != y
        return result

    def compared(self, a: dict[str, Any], b: dict[str, Any]) -> tuple[Any, Any]:
        if self.list_column(a) is not None or self.list_column(b) is not None:
            raise SqlFilterError("comparing a whole list attribute cannot be translated")
        if _is_timestamp(a) and "value" in b:
            column = self.scalar(a)
            return column, literal(_timestamp(b["value"]), type_=column.type)
        if _is_timestamp(b) and "value" in a:
            column = self.scalar(b)
            return literal(_timestamp(a["value"]), type_=column.type), column
        if isinstance(a.get("value"), (list, dict)) or isinstance(b.get("value"), (list, dict)):
            raise SqlFilterError("comparing with a list or map value cannot be translated")
        return self.scalar(a), self.scalar(b)

    def ordering(self, op: str, a: dict[str, Any], b: dict[str, Any]) -> ColumnElement[bool]:
        x, y = self.compared(a, b)
        if op == "lt":
            return x < y  # type: ignore[no-any-return]
        if op == "le":
            return x <= y  # type: ignore[no-any-return]
        if op == "gt":
            return x > y  # type: ignore[no-any-return]
        return x >= y  # type: ignore[no-any-return]

    def membership(self, item: dict[str, Any], container: dict[str, Any]) -> ColumnElement[bool]:
        lc = self.list_column(container)
        if lc is not None:
            return lc.having(lc.value == self.scalar(item))
        values = container.get("value")
        if isinstance(values, list):
            if any(isinstance(v, (list, dict)) or v is None for v in values):
                raise SqlFilterError("membership in a list of lists, maps or nulls cannot be translated")
            if not values:
                return false()
            return self.scalar(item).in_(values)  # type: ignore[no-any-return]
        raise SqlFilterError("membership in anything but a list value or a list attribute cannot be translated")

    def intersection(self, a: dict[str, Any], b: dict[str, Any]) -> ColumnElement[bool]:
        lc, other = (self.list_column(a), b) if self.list_column(a) is not None else (self.list_column(b), a)
        values = other.get("value")
        if lc is None or not isinstance(values, list):
            raise SqlFilterError("hasIntersection needs one list attribute and one list value")
        if not values:
            return false()
        return lc.having(lc.value.in_(values))

    def comprehension(self, op: str, target: dict[str, Any], fn: dict[str, Any]) -> ColumnElement[bool]:
        lc = self.list_column(target)
        lam = fn.get("expression") or {}
        parts = lam.get("operands") or []
        if lc is None or lam.get("operator") != "lambda" or len(parts) != 2 or "variable" not in parts[1]:
            raise SqlFilterError(f"{op} needs a list attribute and a lambda")
        var = parts[1]["variable"]
        self.lambdas[var] = lc.value
        try:
            body = self.boolean(parts[0])
        finally:
            del self.lambdas[var]
        if op == "exists":
            return lc.having(body)
        if op == "all":
            # every element satisfies the body: none makes it false or unknown
            return not_(lc.having(or_(not_(body), body.is_(None))))
        counted = select(func.count()).where(lc.key == lc.parent_key, body).scalar_subquery()
        return counted == 1

    def string_test(self, op: str, a: dict[str, Any], b: dict[str, Any]) -> ColumnElement[bool]:
        pattern = b.get("value")
        if not isinstance(pattern, str):
            raise SqlFilterError(f"{op} with a non-constant argument cannot be translated")
        column = self.scalar(a)
        if pattern == "":
            return column.is_not(None)  # type: ignore[no-any-return]
        # LIKE with %, _ and the escape character escaped (autoescape), and an exact, case-sensitive
        # test beside it: SQLite's LIKE ignores the case of ASCII letters.
        n = len(pattern)
        if op == "startsWith":
            like = column.startswith(pattern, autoescape=True)
            exact = func.substr(column, 1, n) == pattern
        elif op == "endsWith":
            like = column.endswith(pattern, autoescape=True)
            exact = func.substr(column, func.length(column) - n + 1) == pattern
        else:
            like = column.contains(pattern, autoescape=True)
            exact = func.replace(column, pattern, "") != column
        return and_(like, exact)


def _equality_to_value(operand: dict[str, Any]) -> tuple[str, Any] | None:
    """(attribute, value) for ``eq(attribute, value)`` in either order, the value a plain scalar."""
    expr = operand.get("expression")
    if not isinstance(expr, dict) or expr.get("operator") != "eq" or len(expr.get("operands") or []) != 2:
        return None
    a, b = expr["operands"]
    if "variable" in b and "value" in a:
        a, b = b, a
    if "variable" in a and "value" in b and isinstance(b["value"], (str, int, float)):
        return a["variable"], b["value"]
    return None


def _is_timestamp(operand: dict[str, Any]) -> bool:
    expr = operand.get("expression")
    return isinstance(expr, dict) and expr.get("operator") == "timestamp"


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise SqlFilterError(f"timestamp value {value!r} is not a string")
    try:
        # an instant in UTC: SQLite's DateTime keeps no offset, so columns are to hold UTC
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise SqlFilterError(f"timestamp value {value!r} is not RFC 3339") from None
