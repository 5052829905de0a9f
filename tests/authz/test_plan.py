"""Decision plans (authz/plan.py) and how the evaluator uses them: walks without conditions are
settled once, the cache stays bounded, and a plan built by one thread serves them all."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from authz import CheckInput, Engine, Principal, Resource
from authz import plan as plan_module
from authz.compile import CompiledDerivedRole
from authz.plan import check_plan
from tests.authz.differential import random_requests
from tests.support.policy_files import DERIVED_ROLES, resource_policy, write_policies

CLINIC = Path(__file__).parent / "policysets" / "clinic"

POLICIES = {
    "roles.yaml": DERIVED_ROLES,
    "doc.yaml": resource_policy(
        "doc",
        derived_roles="roles",
        rules="""    - actions: ["*"]
      effect: EFFECT_ALLOW
      roles: [admin]
    - actions: [read, comment]
      effect: EFFECT_ALLOW
      derivedRoles: [owner]
    - actions: [rank, file]
      effect: EFFECT_ALLOW
      derivedRoles: [shaky]
    - actions: [peek]
      effect: EFFECT_ALLOW
      derivedRoles: [curious]
""",
    ),
    "principal_zed.yaml": """apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: zed
  version: default
  rules:
    - resource: doc
      actions:
        - action: read
          effect: EFFECT_DENY
""",
}


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    write_policies(tmp_path, POLICIES)
    return Engine.from_directory(tmp_path)


def check(engine: Engine, pid: str, roles: list[str], actions: list[str], **attr: object) -> dict[str, str]:
    out = engine.check(CheckInput(Principal(pid, roles), Resource("doc", "d1", dict(attr)), actions))
    return {a: e.effect for a, e in out.actions.items()}


def plan_for(engine: Engine, pid: str, roles: tuple[str, ...]) -> plan_module.CheckPlan:
    return check_plan(engine.policy_set, pid, roles, "", "default", "doc", "", "default", False)


def test_a_walk_without_conditions_is_settled_when_planned(engine: Engine) -> None:
    assert check(engine, "ann", ["admin"], ["read"]) == {"read": "EFFECT_ALLOW"}
    assert check(engine, "ann", ["user"], ["read"], owner="ann") == {"read": "EFFECT_ALLOW"}
    assert plan_for(engine, "ann", ("admin",)).actions["read"].settled is not None
    assert plan_for(engine, "ann", ("user",)).actions["read"].settled is None  # needs R.attr.owner
    assert check(engine, "bob", ["user"], ["read"], owner="ann") == {"read": "EFFECT_DENY"}


def test_principal_ids_only_count_where_a_principal_policy_names_them(engine: Engine) -> None:
    for i in range(500):
        check(engine, f"user{i}", ["admin"], ["read"])
    assert plan_for(engine, "user1", ("admin",)) is plan_for(engine, "user499", ("admin",))
    assert check(engine, "zed", ["admin"], ["read"]) == {"read": "EFFECT_DENY"}  # zed's own policy
    assert plan_for(engine, "zed", ("admin",)) is not plan_for(engine, "user1", ("admin",))


def test_a_check_no_rule_can_decide_is_answered_without_a_decision(engine: Engine) -> None:
    """zed's principal policy makes a principal policy exist in the root scope for everyone, but
    only zed's rules can decide, and a kind without a resource policy has none: such a check is
    answered as one with no policy at all (no walk, no CEL activation), with the same answer."""
    # A kind no resource policy names, for someone else: nothing can decide.
    other = check_plan(engine.policy_set, "ann", ("admin",), "", "default", "memo", "", "default", False)
    assert not other.has_policies
    out = engine.check(CheckInput(Principal("ann", ["admin"]), Resource("memo", "m1"), ["read", "write"]))
    assert {a: (e.effect, e.policy) for a, e in out.actions.items()} == {
        "read": ("EFFECT_DENY", "NO_MATCH"),
        "write": ("EFFECT_DENY", "NO_MATCH"),
    }
    # zed's own rules name doc only, but they are rules of his: his checks on any kind still walk.
    assert check_plan(engine.policy_set, "zed", ("admin",), "", "default", "memo", "", "default", False).has_policies
    # A kind with a resource policy walks for everyone.
    assert plan_for(engine, "ann", ("admin",)).has_policies


def test_the_plan_cache_is_bounded_and_answers_stay_right(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_module, "MAX_CACHED_PLANS", 20)
    for i in range(200):
        roles = [f"role{i}", "user"]
        assert check(engine, "ann", roles, ["read"], owner="ann" if i % 2 else "bob") == {
            "read": "EFFECT_ALLOW" if i % 2 else "EFFECT_DENY"
        }
        assert len(engine.policy_set.plan_cache) <= 20


def test_a_plan_does_not_grow_with_invented_action_names(engine: Engine) -> None:
    for i in range(2000):
        assert check(engine, "ann", ["admin"], [f"action{i}"]) == {f"action{i}": "EFFECT_ALLOW"}
    assert len(plan_for(engine, "ann", ("admin",)).actions) == plan_module.MAX_ACTIONS_PER_PLAN


def test_role_steps_kept_per_coordinates_are_bounded(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_module, "MAX_STEPS_PER_TABLE", 50)
    for i in range(200):
        assert check(engine, "ann", ["admin", "user"], [f"action{i}"]) == {f"action{i}": "EFFECT_ALLOW"}
    assert len(plan_for(engine, "ann", ("admin", "user")).resource_steps) == 50


def test_a_derived_role_is_evaluated_once_per_check(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for dr in {d for ds in engine.policy_set.derived_roles.values() for d in ds}:
        original = dr.condition
        assert original is not None

        def counted(act, strict, errors, _original=original, _dr=dr):  # noqa: ANN001, ANN202
            calls.append(_dr.name)
            return _original(act, strict, errors)

        monkeypatch.setattr(dr, "condition", counted)
    inp = CheckInput(Principal("ann", ["user"]), Resource("doc", "d1", {"owner": "ann"}), ["read", "comment"])
    out = engine.check(inp, with_derived_roles=False)  # no meta: only the rules ask
    assert {a: e.effect for a, e in out.actions.items()} == {"read": "EFFECT_ALLOW", "comment": "EFFECT_ALLOW"}
    assert calls == ["owner"]


def test_a_failing_derived_role_denies_every_action_that_names_it(engine: Engine) -> None:
    """Strict evaluation: ``R.attr.level`` is missing, so both rules that use ``shaky`` deny, and
    the error is reported for each, as when each rule evaluated it."""
    out = engine.check(CheckInput(Principal("ann", ["user"]), Resource("doc", "d1", {}), ["rank", "file"]))
    assert {a: e.effect for a, e in out.actions.items()} == {"rank": "EFFECT_DENY", "file": "EFFECT_DENY"}
    assert [e.expression for e in out.evaluation_errors] == ["R.attr.level > 3"] * 2
    assert isinstance(next(iter(engine.policy_set.derived_roles.values()))[0], CompiledDerivedRole)


def test_a_derived_role_that_reads_runtime_is_decided(engine: Engine) -> None:
    assert check(engine, "ann", ["user"], ["peek"], owner="ann") == {"peek": "EFFECT_DENY"}


def test_plans_built_by_concurrent_threads_give_the_same_answers() -> None:
    bodies = random_requests("clinic", 400, seed=3)
    expected = [Engine.from_directory(CLINIC).check_request(b)["results"] for b in bodies]
    shared = Engine.from_directory(CLINIC)  # plans built as the threads ask
    answers: dict[int, list] = {}

    def work(offset: int) -> None:
        for i in range(len(bodies)):
            j = (i + offset) % len(bodies)
            answers.setdefault(j, []).append(shared.check_request(bodies[j])["results"])

    threads = [threading.Thread(target=work, args=(k * 100,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for j, results in answers.items():
        assert all(r == expected[j] for r in results), bodies[j]
