"""The one place that says which store columns hold each attribute the policies read of a patient,
so a query plan's filter (authz.sql_filter) becomes SQL over the store's own tables.

Each column holds the attribute as ``resources.py`` builds it from the row, so the rows the SQL
returns are the rows a check of each built resource allows: ``sealed`` and ``emergency`` are read
as ``bool()`` reads them (NULL and 0 false), a care team or the assigned physicians are the child
tables the store keeps equal to the JSON lists (schema version 7), and a NULL column is an
attribute the resource leaves out (``resources.present``), which the filter treats as missing.
An attribute with no column here (a per-event one of an audit event, a note type) makes the filter
untranslatable: the caller then checks row by row."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.elements import KeyedColumnElement
from sqlalchemy.sql.expression import Select

from authz.sql_filter import ALWAYS_ALLOWED, ListColumn, Mapping, SqlFilterError, filter_to_sql

_META = MetaData()
PATIENTS = Table(
    "patients",
    _META,
    Column("id", String, primary_key=True),
    Column("mrn", String),
    Column("name", String),
    Column("birth_date", String),
    Column("hospital_id", String),
    Column("sealed", Integer),
    Column("emergency", Integer),
)
CARE_TEAM = Table("patient_care_team", _META, Column("patient_id", String), Column("member", String))
PHYSICIANS = Table("patient_assigned_physicians", _META, Column("patient_id", String), Column("member", String))

_ATTR = "request.resource.attr."


def _flag(column: Column[Any]) -> KeyedColumnElement[Any]:
    """A 0/1 column as the resource's boolean: ``bool(value)``, so NULL is false, never missing."""
    return (func.coalesce(column, 0) != 0).label(column.name)


# What each attribute of a patient is in the store, for every resource kind built from a patient
# (resources.py): a record, an identity, and the patient-side attributes of an audit event.
_PATIENT_ATTRS: dict[str, Any] = {
    _ATTR + "patient_id": PATIENTS.c.id,
    _ATTR + "hospital_id": PATIENTS.c.hospital_id,
    _ATTR + "care_team": ListColumn(CARE_TEAM.c.member, CARE_TEAM.c.patient_id, PATIENTS.c.id),
    _ATTR + "assigned_physicians": ListColumn(PHYSICIANS.c.member, PHYSICIANS.c.patient_id, PATIENTS.c.id),
}
MAPPINGS: dict[str, Mapping] = {
    "patient_record": {
        "request.resource.id": PATIENTS.c.id,
        **_PATIENT_ATTRS,
        _ATTR + "sealed": _flag(PATIENTS.c.sealed),
        _ATTR + "emergency": _flag(PATIENTS.c.emergency),
    },
    "patient_identity": {"request.resource.id": PATIENTS.c.id, **_PATIENT_ATTRS},
    # an audit event's resource id is the event's, and its actor and type are the event's: a filter
    # reading those is not a question about the patient, and is checked event by event
    "audit_event": {
        _ATTR + "patient_id": PATIENTS.c.id,
        _ATTR + "hospital_id": PATIENTS.c.hospital_id,
        _ATTR + "assigned_physicians": _PATIENT_ATTRS[_ATTR + "assigned_physicians"],
    },
}


def patient_ids_query(
    plan_filter: dict[str, Any] | None, kind: str, birth_date: str = "", mrn_chars: str = "", among: bool = False
) -> Select[Any]:
    """SELECT the ids of the patients (as resources of ``kind``) the plan's filter keeps (every
    patient when ``plan_filter`` is None: the candidates a row-by-row check then decides), born on
    ``birth_date`` and with ``mrn_chars`` in their MRN in that order (a superset of a partial MRN
    typed with or without its separators, narrowed exactly by the caller), when given; ``among``:
    only the ids listed in the JSON array bound to the parameter ``among``. Raises
    authz.sql_filter.SqlFilterError when the filter reads what has no column here."""
    if plan_filter is None or plan_filter.get("kind") == ALWAYS_ALLOWED:
        where: ColumnElement[bool] = true()
    else:
        mapping = MAPPINGS.get(kind)
        if mapping is None:
            raise SqlFilterError(f"no store columns are mapped for resource kind {kind!r}")
        where = filter_to_sql(plan_filter, mapping)
    query = select(PATIENTS.c.id).where(where)
    if birth_date:
        query = query.where(PATIENTS.c.birth_date == birth_date)
    if among:
        listed: Select[Any] = select(literal_column("value")).select_from(
            func.json_each(bindparam("among", "[]", type_=String))
        )
        query = query.where(PATIENTS.c.id.in_(listed))
    if mrn_chars:
        query = query.where(PATIENTS.c.mrn.like("%" + "%".join(_like_escaped(c) for c in mrn_chars) + "%", escape="\\"))
    return query


def _like_escaped(char: str) -> str:
    return "\\" + char if char in "%_\\" else char


def as_sqlite(query: Select[Any]) -> tuple[str, dict[str, Any]]:
    """The query as SQLite text with named parameters (lists of an IN expanded)."""
    compiled = query.compile(dialect=sqlite.dialect(paramstyle="named"), compile_kwargs={"render_postcompile": True})
    return compiled.string, dict(compiled.params)


def permitted_ids_sql(
    plan_filter: dict[str, Any] | None, kind: str, birth_date: str = "", mrn_chars: str = "", among: bool = False
) -> tuple[str, dict[str, Any]]:
    """``patient_ids_query`` as SQLite text and parameters. The same filter comes back at every
    key typed in a search (the plan is made again each time, for the user as they are then), so
    the translation of each recent one is kept: it depends on nothing but its arguments."""
    try:
        key = json.dumps(plan_filter, sort_keys=True)
    except (TypeError, ValueError):  # a value JSON does not hold: translated as it is, not kept
        return as_sqlite(patient_ids_query(plan_filter, kind, birth_date, mrn_chars, among))
    sql, params = _translated(key, kind, birth_date, mrn_chars, among)
    return sql, dict(params)


@lru_cache(maxsize=256)
def _translated(
    filter_json: str, kind: str, birth_date: str, mrn_chars: str, among: bool
) -> tuple[str, dict[str, Any]]:
    return as_sqlite(patient_ids_query(json.loads(filter_json), kind, birth_date, mrn_chars, among))
