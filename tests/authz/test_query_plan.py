"""Query plans on small policy sets written here: kinds, the filter's shape, errors as the check
meets them, and the ``ccc-authz plan`` command."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Boolean, Column, DateTime, MetaData, String, Table, create_engine, select

from authz.cli import build_parser, cmd_plan
from authz.engine import Engine
from authz.evaluate import CheckInput, EvalParams, Principal, Resource
from authz.query_plan import Op, Value, Var, _decided, render_node
from authz.sql_filter import filter_to_sql

POLICY = """
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: chart
  version: default
  variables:
    local:
      on_ward: R.attr.ward in P.attr.wards
  constants:
    local:
      ward_state: {"w1": "open", "w2": "closed", "w3": "open"}
  rules:
    - actions: ["read"]
      effect: EFFECT_ALLOW
      roles: ["nurse"]
      condition:
        match:
          expr: V.on_ward
    - actions: ["read"]
      effect: EFFECT_DENY
      roles: ["nurse"]
      condition:
        match:
          expr: R.attr.sealed == true
    - actions: ["read", "list"]
      effect: EFFECT_ALLOW
      roles: ["admin"]
    - actions: ["tag"]
      effect: EFFECT_ALLOW
      roles: ["nurse"]
      condition:
        match:
          expr: R.attr.tags.exists(t, t.startsWith(P.attr.prefix))
    - actions: ["team"]
      effect: EFFECT_ALLOW
      roles: ["nurse"]
      condition:
        match:
          expr: P.attr.teams.exists(t, t == R.attr.team)
    - actions: ["visit"]
      effect: EFFECT_ALLOW
      roles: ["nurse"]
      condition:
        match:
          expr: C.ward_state[R.attr.ward] == "open"
    - actions: ["visit"]
      effect: EFFECT_DENY
      roles: ["nurse"]
      condition:
        match:
          expr: C.ward_state[R.attr.ward] != "open" && R.attr.sealed == true
    - actions: ["recent"]
      effect: EFFECT_ALLOW
      roles: ["nurse"]
      condition:
        match:
          expr: timestamp(R.attr.seen) > now() - duration("1h")
"""


@pytest.fixture()
def policies(tmp_path: Path) -> Path:
    (tmp_path / "chart.yaml").write_text(POLICY)
    return tmp_path


def _plan(policies: Path, roles: list[str], action: str, attr: dict | None = None, strict: bool = True) -> dict:
    engine = Engine.from_directory(policies, EvalParams(strict_evaluation=strict))
    body = {
        "requestId": "r",
        "action": action,
        "principal": {"id": "n1", "roles": roles, "attr": {"wards": ["w1", "w2"], "prefix": "a%"}},
        "resource": {"kind": "chart", "attr": attr or {}},
        "includeMeta": True,
    }
    return engine.plan_request(body)


def test_kinds(policies: Path) -> None:
    assert _plan(policies, ["admin"], "read")["filter"] == {"kind": "KIND_ALWAYS_ALLOWED"}
    assert _plan(policies, ["nurse"], "list")["filter"] == {"kind": "KIND_ALWAYS_DENIED"}
    assert _plan(policies, ["nurse"], "read")["filter"]["kind"] == "KIND_CONDITIONAL"
    # a known attribute decides
    assert _plan(policies, ["nurse"], "read", {"ward": "w1", "sealed": False})["filter"]["kind"] == (
        "KIND_ALWAYS_ALLOWED"
    )
    assert _plan(policies, ["nurse"], "read", {"ward": "w9"})["filter"]["kind"] == "KIND_ALWAYS_DENIED"


def test_strict_filter_shape(policies: Path) -> None:
    answer = _plan(policies, ["nurse"], "read")
    assert answer["action"] == "read" and answer["resourceKind"] == "chart"
    assert answer["filter"]["condition"] == {
        "expression": {
            "operator": "and",
            "operands": [
                {
                    "expression": {
                        "operator": "in",
                        "operands": [{"variable": "request.resource.attr.ward"}, {"value": ["w1", "w2"]}],
                    }
                },
                {
                    "expression": {
                        "operator": "not",
                        "operands": [
                            {
                                "expression": {
                                    "operator": "eq",
                                    "operands": [{"variable": "request.resource.attr.sealed"}, {"value": True}],
                                }
                            }
                        ],
                    }
                },
            ],
        }
    }
    assert answer["meta"]["filterDebug"] == (
        '(and (in request.resource.attr.ward ["w1","w2"]) (not (eq request.resource.attr.sealed true)))'
    )


def test_lax_mode_spells_out_missing_attributes(policies: Path) -> None:
    """Without strict evaluation, a DENY rule whose attribute is missing does not apply: the
    filter says so with a presence test, as the check decides."""
    debug = _plan(policies, ["nurse"], "read", strict=False)["meta"]["filterDebug"]
    assert "(eq request.resource.attr.sealed null)" in debug
    engine = Engine.from_directory(policies, EvalParams(strict_evaluation=False))
    check = engine.check(
        CheckInput(Principal("n1", ["nurse"], {"wards": ["w1"]}), Resource("chart", "c", {"ward": "w1"}), ["read"])
    )
    assert check.actions["read"].effect == "EFFECT_ALLOW"


def test_lambda_over_unknown_list(policies: Path) -> None:
    cond = _plan(policies, ["nurse"], "tag")["filter"]["condition"]["expression"]
    assert cond["operator"] == "exists"
    assert cond["operands"][0] == {"variable": "request.resource.attr.tags"}
    assert cond["operands"][1]["expression"]["operator"] == "lambda"


def test_timestamps_through_sql(policies: Path) -> None:
    """``now()`` is the request's: the filter compares the column with that instant, and the rows
    SQLite returns are those the check allows at that instant."""
    engine = Engine.from_directory(policies)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    nurse = Principal("n1", ["nurse"], {})
    plan = engine.plan(nurse, "chart", ["recent"], now=now)
    rendered = {"kind": plan.kind, "condition": render_node(plan.condition)} if plan.condition else {"kind": plan.kind}
    seen = {
        "a": now - timedelta(minutes=59),
        "b": now - timedelta(minutes=61),
        "c": None,
        "d": now + timedelta(days=1),
    }
    db = create_engine("sqlite://")
    meta = MetaData()
    charts = Table("charts", meta, Column("id", String, primary_key=True), Column("seen", DateTime))
    meta.create_all(db)
    with db.begin() as conn:
        conn.execute(
            charts.insert(), [{"id": k, "seen": v.replace(tzinfo=None) if v else None} for k, v in seen.items()]
        )
    where = filter_to_sql(rendered, {"request.resource.attr.seen": charts.c.seen})
    with db.connect() as conn:
        selected = {r[0] for r in conn.execute(select(charts.c.id).where(where))}
    allowed = {
        k
        for k, v in seen.items()
        if engine.check(CheckInput(nurse, Resource("chart", k, {"seen": v.isoformat()} if v else {}), ["recent"]), now)
        .actions["recent"]
        .effect
        == "EFFECT_ALLOW"
    }
    assert selected == allowed == {"a", "d"}


def test_a_long_list_the_principal_holds(policies: Path) -> None:
    """``exists`` over 3,000 teams the request knows is unrolled into 3,000 equalities: planned in
    bounded time, and run by SQLite as one IN (an OR that deep is past SQLite's parser)."""
    engine = Engine.from_directory(policies)
    teams = [f"team-{i}" for i in range(3000)]
    start = time.perf_counter()
    plan = engine.plan(Principal("n1", ["nurse"], {"teams": teams}), "chart", ["team"])
    assert time.perf_counter() - start < 10
    db = create_engine("sqlite://")
    meta = MetaData()
    charts = Table("charts", meta, Column("id", String, primary_key=True), Column("team", String))
    meta.create_all(db)
    with db.begin() as conn:
        conn.execute(
            charts.insert(), [{"id": "a", "team": "team-2999"}, {"id": "b", "team": "other"}, {"id": "c", "team": None}]
        )
    assert plan.condition is not None
    where = filter_to_sql(
        {"kind": plan.kind, "condition": render_node(plan.condition)}, {"request.resource.attr.team": charts.c.team}
    )
    with db.connect() as conn:
        assert {r[0] for r in conn.execute(select(charts.c.id).where(where))} == {"a"}


def test_bad_requests_are_named(policies: Path) -> None:
    engine = Engine.from_directory(policies)
    assert (
        "actions"
        in engine.plan_request({"principal": {"id": "a", "roles": ["x"]}, "resource": {"kind": "chart"}})["message"]
    )
    assert "resource" in engine.plan_request({"action": "read", "principal": {"id": "a", "roles": ["x"]}})["message"]
    assert engine.plan_request([1])["code"] == 3


def test_plan_command(policies: Path) -> None:
    args = build_parser().parse_args(["plan", "--policies", str(policies)])
    body = {"action": "read", "principal": {"id": "a", "roles": ["admin"]}, "resource": {"kind": "chart"}}
    out = io.StringIO()
    deep = "[" * 5000 + "]" * 5000
    lines = [json.dumps(body), "{oops", deep, json.dumps({**body, "actions": ["read"]}), json.dumps(body)]
    assert cmd_plan(args, io.StringIO("\n".join(lines) + "\n"), out) == 0
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert answers[0]["filter"] == {"kind": "KIND_ALWAYS_ALLOWED"} and answers[4] == {
        **answers[0],
        "cerbosCallId": answers[4]["cerbosCallId"],
    }
    assert answers[1]["code"] == 3 and answers[1]["message"].startswith("line 2: invalid character")
    assert answers[2]["message"].startswith("line 3: ") and "exceeded max depth" in answers[2]["message"]
    assert answers[3]["message"] == "line 4: validation error: only one of action or actions may be given"


def test_filters_decided_case_by_case() -> None:
    """A filter true on every resource is always allowed, one never true always denied; one that a
    missing attribute leaves unknown stays conditional."""
    x, y = Var("request.resource.attr.x"), Var("request.resource.attr.y")
    a, b = Op("eq", (x, Value(1))), Op("lt", (y, Value(2)))
    missing_x = Op("eq", (x, Value(None)))
    assert _decided(Op("or", (missing_x, Op("not", (a,)), Op("and", (a, Op("not", (b,)))), Op("and", (a, b))))) is None
    missing_y = Op("eq", (y, Value(None)))
    whole = Op("or", (missing_x, Op("not", (a,)), Op("and", (a, missing_y)), Op("and", (a, Op("not", (b,)))), b))
    assert _decided(whole) is True
    assert _decided(Op("and", (a, Op("not", (a,))))) is False
    assert _decided(Op("or", (a, Op("not", (a,))))) is None  # unknown where x is missing


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
def test_lookup_in_a_known_map(policies: Path, strict: bool) -> None:
    """``C.map[R.attr.ward] == "open"``: the wards whose value is "open"; a ward that is no key errs
    (strictly denying, and under a DENY rule leniently not applying), as the check decides."""
    engine = Engine.from_directory(policies, EvalParams(strict_evaluation=strict))
    nurse = Principal("n1", ["nurse"], {})
    plan = engine.plan(nurse, "chart", ["visit"])
    assert plan.condition is not None
    db = create_engine("sqlite://")
    meta = MetaData()
    charts = Table(
        "charts", meta, Column("id", String, primary_key=True), Column("ward", String), Column("sealed", Boolean)
    )
    meta.create_all(db)
    rows = {
        f"{w}-{sealed}": {"ward": w, "sealed": sealed}
        for w in ("w1", "w2", "w3", "w9", None)
        for sealed in (True, False, None)
    }
    with db.begin() as conn:
        conn.execute(charts.insert(), [{"id": k, **v} for k, v in rows.items()])
    where = filter_to_sql(
        {"kind": plan.kind, "condition": render_node(plan.condition)},
        {"request.resource.attr.ward": charts.c.ward, "request.resource.attr.sealed": charts.c.sealed},
    )
    with db.connect() as conn:
        selected = {r[0] for r in conn.execute(select(charts.c.id).where(where))}
    allowed = {
        k
        for k, v in rows.items()
        if engine.check(
            CheckInput(nurse, Resource("chart", k, {a: x for a, x in v.items() if x is not None}), ["visit"])
        )
        .actions["visit"]
        .effect
        == "EFFECT_ALLOW"
    }
    assert selected == allowed and allowed


GUARDED = """
apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: device
  version: default
  variables:
    local:
      state: 'has(R.attr.update) ? R.attr.update.state : "none"'
  rules:
    - actions: ["apply"]
      effect: EFFECT_ALLOW
      roles: ["physician"]
    - actions: ["apply"]
      effect: EFFECT_DENY
      roles: ["*"]
      condition:
        match:
          expr: V.state != "scheduled"
"""


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
def test_an_attribute_read_only_in_a_branch_not_taken_does_not_err(tmp_path: Path, strict: bool) -> None:
    """``has(R.attr.update) ? R.attr.update.state : "none"`` does not err where ``update`` is
    absent: the DENY applies there, leniently too. (The plan took any missing attribute the
    expression reads for an error, so leniently it listed devices with no update at all, which
    the check refuses; seen in CI on the project's device policy.)"""
    (tmp_path / "device.yaml").write_text(GUARDED)
    engine = Engine.from_directory(tmp_path, EvalParams(strict_evaluation=strict))
    physician = Principal("d1", ["physician"], {})
    plan = engine.plan(physician, "device", ["apply"])
    db = create_engine("sqlite://")
    meta = MetaData()
    devices = Table(
        "devices", meta, Column("id", String, primary_key=True), Column("upd", String), Column("state", String)
    )
    meta.create_all(db)
    updates: dict[str, dict | None] = {
        "none": None,
        "scheduled": {"state": "scheduled"},
        "approved": {"state": "approved"},
        "stateless": {"by": "e1"},
    }
    with db.begin() as conn:
        conn.execute(
            devices.insert(),
            [
                {"id": k, "upd": None if u is None else json.dumps(u), "state": (u or {}).get("state")}
                for k, u in updates.items()
            ],
        )
    rendered = {"kind": plan.kind, "condition": render_node(plan.condition)} if plan.condition else {"kind": plan.kind}
    where = filter_to_sql(
        rendered, {"request.resource.attr.update": devices.c.upd, "request.resource.attr.update.state": devices.c.state}
    )
    with db.connect() as conn:
        selected = {r[0] for r in conn.execute(select(devices.c.id).where(where))}
    allowed = {
        k
        for k, u in updates.items()
        if engine.check(CheckInput(physician, Resource("device", k, {} if u is None else {"update": u}), ["apply"]))
        .actions["apply"]
        .effect
        == "EFFECT_ALLOW"
    }
    assert selected == allowed
    assert allowed == ({"scheduled"} if strict else {"scheduled", "stateless"})  # leniently, an erring DENY is no DENY
