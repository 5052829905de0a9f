"""authz.Decision: one action's answer with the policies' words. The deciding rule speaks first,
then the first reason given; where none is given the decision says so and names what decided; an
erroring condition and a missing policy are refusals that say so."""

from __future__ import annotations

from pathlib import Path

import pytest

from authz import Decision, Effect, Engine, EvalParams, Principal, Resource
from tests.support.policy_files import resource_policy, write_policies

RULES = """    - name: owners_read
      actions: [read, share]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.owner == P.id
      output:
        when:
          conditionNotMet: '{"reason": "Only the owner reads this.", "remedy": "ask_owner"}'
    - name: locked
      actions: [read]
      effect: EFFECT_DENY
      roles: [user]
      condition:
        match:
          expr: R.attr.locked == true
      output:
        when:
          ruleActivated: '{"reason": "The document is locked."}'
    - name: strict
      actions: [audit]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.level > 3
    - name: plain
      actions: [print]
      effect: EFFECT_ALLOW
      roles: [admin]
    - name: flags
      actions: [read]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: R.attr.owner == P.id
      output:
        when:
          ruleActivated: '{"audit_flag": "read"}'
    - name: odd
      actions: [peek]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: "false"
      output:
        when:
          conditionNotMet: '{"reason": 42}'
    - name: why_not_peek
      actions: [peek]
      effect: EFFECT_ALLOW
      roles: [user]
      condition:
        match:
          expr: "false"
      output:
        when:
          conditionNotMet: '{"reason": "Peeking is not a thing."}'
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    root: Path = tmp_path_factory.mktemp("policies")
    write_policies(root, {"doc.yaml": resource_policy("doc", RULES)})
    return Engine.from_directory(root)


def decide(engine: Engine, action: str, **attr: object) -> Decision:
    return engine.decide(Principal("ann", ["user"]), Resource("doc", "d1", dict(attr)), [action])[action]


def test_effects_are_the_only_place_the_wire_strings_live() -> None:
    assert Effect.ALLOW.value == "EFFECT_ALLOW" and Effect.DENY.value == "EFFECT_DENY"


def test_an_allowed_decision_has_no_reason_but_keeps_its_outputs(engine: Engine) -> None:
    d = decide(engine, "read", owner="ann", locked=False)
    assert d.allowed and d.effect is Effect.ALLOW and d.reason == "" and d.remedy == ""
    assert d.rule.endswith("#owners_read") and d.output("audit_flag") == "read"


def test_the_deciding_deny_rule_speaks_first(engine: Engine) -> None:
    d = decide(engine, "read", owner="bob", locked=True)  # both rules give a reason; the DENY decided
    assert not d.allowed and d.reason == "The document is locked." and d.rule.endswith("#locked")


def test_otherwise_the_first_reason_given_with_its_remedy(engine: Engine) -> None:
    d = decide(engine, "share", owner="bob")
    assert (d.reason, d.remedy, d.rule) == ("Only the owner reads this.", "ask_owner", "")


def test_a_value_that_is_not_a_sentence_is_not_a_reason(engine: Engine) -> None:
    d = decide(engine, "peek")  # the first rule's "reason" is 42
    assert d.reason == "Peeking is not a thing."


def test_no_reason_given_says_so_and_names_the_policy(engine: Engine) -> None:
    d = decide(engine, "print")
    assert d.reason == "Refused by policy resource.doc.vdefault (no rule allows it), which gives no reason."


def test_no_policy_at_all_is_a_refusal_that_says_so(engine: Engine) -> None:
    d = engine.decide(Principal("ann", ["user"]), Resource("folder", "f1", {}), ["open"])["open"]
    assert not d.allowed and d.reason == "No policy covers 'open' here, so it is refused."


def test_a_condition_that_cannot_be_evaluated_is_a_refusal_that_says_why(engine: Engine) -> None:
    d = decide(engine, "audit")  # R.attr.level is missing: strict evaluation denies
    assert not d.allowed and "could not be evaluated" in d.reason and "resource.doc.vdefault" in d.reason


def test_in_cerbos_default_evaluation_the_same_error_is_just_false(tmp_path: Path) -> None:
    write_policies(tmp_path, {"doc.yaml": resource_policy("doc", RULES)})
    lax = Engine.from_directory(tmp_path, EvalParams(strict_evaluation=False))
    d = lax.decide(Principal("ann", ["user"]), Resource("doc", "d1", {}), ["audit"])["audit"]
    assert not d.allowed and "no rule allows it" in d.reason


def test_a_refusal_made_without_the_engine() -> None:
    d = Decision.refused("view", "There is no such patient.")
    assert not d.allowed and d.reason == "There is no such patient." and d.outputs == ()
