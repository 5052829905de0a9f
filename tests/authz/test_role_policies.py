"""Role policies in full, and action names with colons and wildcards (issue 15, part 2), against
the real Cerbos 0.55 PDP: every effect, matched policy and scope, and output compared, strict and
lax. The randomised ``roles`` policy set of the differential suite covers the combinations; these
tests pin the individual behaviours, each also asserted on its own so a change of either side is
named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from authz import Engine, EvalParams
from tests.authz.test_differential import _normalise
from tests.support.cerbos_pdp import CerbosPDP
from tests.support.policy_files import resource_policy, write_policies

MEMO = resource_policy(
    "memo",
    """    - name: staff_memos
      actions: [read, write, file]
      effect: EFFECT_ALLOW
      roles: [staff]
""",
)
COLON_KIND = resource_policy(
    '"app:doc"',
    """    - actions: [read, write]
      effect: EFFECT_ALLOW
      roles: [staff]
""",
)
MEMO_V2 = """apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: memo
  version: v2
  rules:
    - actions: ["*"]
      effect: EFFECT_ALLOW
      roles: [staff]
"""

ROLE_POLICIES = {
    # No rules: the role only inherits (nothing to narrow).
    "role_idle.yaml": """apiVersion: api.cerbos.dev/v1
rolePolicy:
  role: idle
  parentRoles: [staff]
  rules: []
""",
    # Names a kind with a colon: Cerbos never matches it to the (sanitised) request kind.
    "role_colon.yaml": """apiVersion: api.cerbos.dev/v1
rolePolicy:
  role: colon_user
  parentRoles: [staff]
  rules:
    - resource: "app:doc"
      allowActions: [read]
""",
    # Two conditional rules numbered 0 within their resources ("*" and memo): Cerbos keys both
    # as sharer_rule-000, so within one check the first outcome is reused for the second.
    "role_sharer.yaml": """apiVersion: api.cerbos.dev/v1
rolePolicy:
  role: sharer
  parentRoles: [staff]
  rules:
    - resource: "*"
      name: any_kind
      allowActions: [read]
      condition:
        match:
          expr: R.attr.open == true
      output:
        when:
          ruleActivated: '"any: open"'
          conditionNotMet: '"any: closed"'
    - resource: memo
      name: memo_kind
      allowActions: [write]
      condition:
        match:
          expr: R.attr.draft == true
      output:
        when:
          ruleActivated: '"memo: draft"'
          conditionNotMet: '"memo: final"'
""",
    # Local and imported constants and variables; an unconditional rule with an output; an
    # unnamed rule with an output.
    "role_editor.yaml": """apiVersion: api.cerbos.dev/v1
rolePolicy:
  role: editor
  parentRoles: [staff]
  constants:
    import: [limits]
    local:
      desk: copy
  variables:
    import: [memo_facts]
    local:
      at_desk: P.attr.desk == C.desk
  rules:
    - resource: memo
      name: edit_small
      allowActions: [write]
      condition:
        match:
          all:
            of:
              - expr: V.at_desk
              - expr: V.pages <= C.max_pages
      output:
        when:
          ruleActivated: '{"desk": C.desk, "pages": V.pages}'
          conditionNotMet: '"too long or wrong desk"'
    - resource: memo
      allowActions: [read]
      output:
        when:
          ruleActivated: '"read by " + P.id'
""",
    "limits.yaml": """apiVersion: api.cerbos.dev/v1
exportConstants:
  name: limits
  definitions:
    max_pages: 10
""",
    "memo_facts.yaml": """apiVersion: api.cerbos.dev/v1
exportVariables:
  name: memo_facts
  definitions:
    pages: R.attr.pages
""",
    # A version of its own: it narrows only requests for that policy version.
    "role_v2.yaml": """apiVersion: api.cerbos.dev/v1
rolePolicy:
  role: v2_reader
  version: v2
  parentRoles: [staff]
  rules:
    - resource: memo
      name: v2_reads
      allowActions: [read]
""",
    # A custom role on a custom role: each policy narrows on its own.
    "role_junior.yaml": """apiVersion: api.cerbos.dev/v1
rolePolicy:
  role: junior_editor
  parentRoles: [editor]
  rules:
    - resource: memo
      allowActions: [read, write, file]
""",
}

FILES = {"memo.yaml": MEMO, "memo_v2.yaml": MEMO_V2, "app_doc.yaml": COLON_KIND, **ROLE_POLICIES}


def _body(roles: list[str], kind: str, attr: dict[str, Any], version: str = "", **principal_attr: Any) -> dict:
    resource: dict[str, Any] = {"kind": kind, "id": "m1", "attr": attr}
    if version:
        resource["policyVersion"] = version
    return {
        "requestId": "r",
        "includeMeta": True,
        "principal": {"id": "uma", "roles": roles, "attr": principal_attr},
        "resources": [{"actions": ["read", "write", "file", "other"], "resource": resource}],
    }


def _compare(root: Path, bodies: list[dict], strict: bool) -> list[dict]:
    engine = Engine.from_directory(root, EvalParams(strict_evaluation=strict))
    with CerbosPDP(root, strict=strict) as pdp:
        theirs = [_normalise(pdp.check(body)) for body in bodies]
        ours = [_normalise(engine.check_request(body)) for body in bodies]
        for i, (t, o) in enumerate(zip(theirs, ours, strict=True)):
            if o != t:
                again = _normalise(pdp.check(bodies[i]))
                report = _disagreement(root, bodies, i, t, o, again, strict)
                if again == o:  # the oracle itself answered one request two ways: not ours to fix
                    pytest.xfail(f"Cerbos changed its answer when asked again\n{report}")
                pytest.fail(report)
    return [o["results"][0] for o in ours]


def _disagreement(root: Path, bodies: list[dict], i: int, theirs: dict, ours: dict, again: dict, strict: bool) -> str:
    """What differs, and which side is unstable: Cerbos's answer when asked again, and a fresh
    engine's after the same requests (an intermittent failure of the lax action-name case, issue
    15, said neither; it was Cerbos answering differently from one server start to the next)."""
    fresh = Engine.from_directory(root, EvalParams(strict_evaluation=strict))
    replayed = [_normalise(fresh.check_request(body)) for body in bodies[: i + 1]][-1]
    t, o = theirs["results"][0], ours["results"][0]
    lines = [
        f"request {i}: {json.dumps(bodies[i])}",
        f"  Cerbos asked again: {'same answer' if again == theirs else 'a different answer: ' + json.dumps(again)}",
        f"  a fresh engine:     {'same answer' if replayed == ours else 'a different answer: ' + json.dumps(replayed)}",
    ]
    t_meta, o_meta = t.get("meta", {}), o.get("meta", {})
    fields = {
        "effect": (t["actions"], o["actions"]),
        "meta": (t_meta.get("actions", {}), o_meta.get("actions", {})),
    }
    for name, (t_field, o_field) in fields.items():
        for action in sorted(set(t_field) | set(o_field)):
            tv, ov = json.dumps(t_field.get(action)), json.dumps(o_field.get(action))
            if tv != ov:
                lines.append(f"  {name} of {action}: cerbos {tv}, ours {ov}")
    if t_meta.get("effectiveDerivedRoles") != o_meta.get("effectiveDerivedRoles"):
        lines.append(
            f"  derived roles: cerbos {t_meta.get('effectiveDerivedRoles')}, ours {o_meta.get('effectiveDerivedRoles')}"
        )
    t_out = [json.dumps(x, sort_keys=True) for x in t.get("outputs", [])]
    o_out = [json.dumps(x, sort_keys=True) for x in o.get("outputs", [])]
    lines += [f"  output only cerbos gives: {x}" for x in t_out if x not in o_out]
    lines += [f"  output only we give:      {x}" for x in o_out if x not in t_out]
    if t_out != o_out and sorted(t_out) == sorted(o_out):
        lines.append("  the same outputs in another order")
    lines += [f"  cerbos: {json.dumps(theirs)}", f"  ours:   {json.dumps(ours)}"]
    return "\n".join(lines)


ROLE_BODIES = [
    _body(["idle"], "memo", {}),
    _body(["colon_user"], "app:doc", {}),
    _body(["colon_user"], "memo", {}),
    *(
        _body(roles, "memo", attr)
        for roles in (["sharer"], ["sharer", "staff"], ["staff", "sharer"])
        for attr in ({"open": True, "draft": False}, {"open": False, "draft": True}, {}, {"open": "yes"})
    ),
    *(_body(["editor"], "memo", {"pages": pages}, desk=desk) for pages in (3, 30, "many") for desk in ("copy", "news")),
    _body(["editor"], "memo", {}, desk="copy"),
    _body(["junior_editor"], "memo", {"pages": 3}, desk="copy"),
    _body(["junior_editor"], "memo", {"pages": 3}, desk="news"),
    _body(["v2_reader"], "memo", {}),
    _body(["v2_reader"], "memo", {}, version="v2"),
    _body(["editor"], "memo", {"pages": 3}, version="v2", desk="copy"),
    _body(["staff", "v2_reader"], "memo", {}, version="v2"),
]


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
def test_role_policies_decide_and_report_as_cerbos_does(tmp_path: Path, strict: bool) -> None:
    write_policies(tmp_path, FILES)
    results = _compare(tmp_path, ROLE_BODIES, strict)

    def effects(i: int) -> dict[str, str]:
        return {a: e.removeprefix("EFFECT_") for a, e in results[i]["actions"].items()}

    def matched(i: int, action: str) -> str:
        return results[i]["meta"]["actions"][action]["matchedPolicy"]

    # A role policy without rules narrows nothing.
    assert effects(0) == {"read": "ALLOW", "write": "ALLOW", "file": "ALLOW", "other": "DENY"}
    # A kind the role policy does not name (or names with a colon) is denied in its name.
    assert effects(2)["read"] == "DENY" and matched(2, "read") == "role.colon_user.vdefault"
    assert effects(1)["read"] == "DENY" and matched(1, "read") == "role.colon_user.vdefault"
    # Narrowing: sharer may read when open; "file" is not in its allow-list, though staff may.
    open_memo = results[3]
    assert effects(3)["read"] == "ALLOW" and effects(3)["file"] == "DENY"
    assert matched(3, "file") == "role.sharer.vdefault"
    # The rule keyed like "any_kind" reuses its outcome: write is allowed though draft is false.
    assert effects(3)["write"] == "ALLOW"
    assert [(o["src"], o["val"]) for o in open_memo["outputs"]] == [
        ("role.sharer.vdefault#any_kind", "any: open"),
        ("role.sharer.vdefault#memo_kind", "memo: draft"),
    ]
    # A failed condition denies, and reports the rule's conditionNotMet.
    closed = results[4]
    assert effects(4)["read"] == "DENY" and ("role.sharer.vdefault#any_kind", "any: closed") in [
        (o["src"], o["val"]) for o in closed["outputs"]
    ]
    # The same principal with the base role beside the custom one: the base role allows.
    assert effects(7)["file"] == "ALLOW"
    # Constants and variables, local and imported; an unnamed rule's output src ends in "#".
    editor = results[15]  # pages 3, desk copy
    assert effects(15)["write"] == "ALLOW"
    assert {"src": "role.editor.vdefault#edit_small", "val": {"desk": "copy", "pages": 3}, "action": "write"} in (
        editor["outputs"]
    )
    assert {"src": "role.editor.vdefault#", "val": "read by uma", "action": "read"} in editor["outputs"]
    # A version's role policy narrows that version only.
    assert effects(24)["write"] == "ALLOW"  # v2_reader, default version: its policy is not in play
    assert effects(25) == {"read": "ALLOW", "write": "DENY", "file": "DENY", "other": "DENY"}
    assert matched(25, "write") == "role.v2_reader.vv2"
    assert effects(26)["write"] == "ALLOW"  # editor's (default) policy does not narrow v2


ACTION_POLICY = resource_policy(
    "doc",
    """    - name: views
      actions: ["view:*"]
      effect: EFFECT_ALLOW
      roles: [reader]
    - name: deep_edits
      actions: ["edit:**"]
      effect: EFFECT_ALLOW
      roles: [reader]
    - name: hidden_public
      actions: ["view:public"]
      effect: EFFECT_DENY
      roles: [reader]
      condition:
        match:
          expr: R.attr.hidden == true
    - name: patterns
      actions: ["ask:?", "tag:{a,b}", "file:[xy]"]
      effect: EFFECT_ALLOW
      roles: [reader]
    - name: drafts
      actions: ["*:draft"]
      effect: EFFECT_ALLOW
      roles: [writer]
""",
)
ACTION_PRINCIPAL = """apiVersion: api.cerbos.dev/v1
principalPolicy:
  principal: pam
  version: default
  rules:
    - resource: doc
      actions:
        - action: "view:*"
          effect: EFFECT_DENY
          condition:
            match:
              expr: R.attr.hidden == true
        - action: "view:public"
          effect: EFFECT_ALLOW
        - action: "purge:**"
          effect: EFFECT_ALLOW
    - resource: "*"
      actions:
        - action: "*"
          name: owner_anything
          effect: EFFECT_ALLOW
          condition:
            match:
              expr: R.attr.owner == P.id
          output:
            when:
              conditionNotMet: '"not the owner"'
"""
ACTIONS = [
    "view",
    "view:",
    "view:public",
    "view:a",
    "view:a:b",
    "edit",
    "edit:x",
    "edit:x:y",
    "ask:a",
    "ask:ab",
    "ask:?",
    "tag:a",
    "tag:c",
    "tag:{a,b}",
    "file:x",
    "file:z",
    "x:draft",
    "a:b:draft",
    "draft",
    "purge:a:b",
    "purge",
    "other",
]


def _action_bodies(attrs: tuple[dict[str, Any], ...]) -> list[dict]:
    return [
        {
            "requestId": "a",
            "includeMeta": True,
            "principal": {"id": pid, "roles": roles},
            "resources": [{"actions": ACTIONS, "resource": {"kind": "doc", "id": "d", "attr": attr}}],
        }
        for pid, roles in (("pam", ["reader"]), ("ron", ["reader"]), ("pam", ["writer"]), ("ron", ["writer", "reader"]))
        for attr in attrs
    ]


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
def test_action_names_with_colons_and_wildcards_match_as_in_cerbos(tmp_path: Path, strict: bool) -> None:
    write_policies(tmp_path, {"doc.yaml": ACTION_POLICY, "pam.yaml": ACTION_PRINCIPAL})
    # A hidden document is pam's own, so owner_anything holds wherever view:* denies: what Cerbos
    # reports then does not depend on its rule order (see the test below).
    bodies = _action_bodies(({"hidden": True, "owner": "pam"}, {"hidden": False, "owner": "pam"}, {}))
    results = _compare(tmp_path, bodies, strict)
    ron_reader = {a: e.removeprefix("EFFECT_") for a, e in results[5]["actions"].items()}  # ron, reader, no attr
    assert ron_reader["view:a"] == "ALLOW" and ron_reader["view:a:b"] == "DENY"  # "*" stops at ":"
    assert ron_reader["edit:x:y"] == "ALLOW" and ron_reader["edit"] == "DENY"  # "**" crosses it
    # Only a name with "*" is a pattern: "?", "{}" and "[]" alone match themselves literally.
    assert ron_reader["ask:a"] == "DENY" and ron_reader["ask:?"] == "ALLOW"
    assert ron_reader["tag:a"] == "DENY" and ron_reader["tag:{a,b}"] == "ALLOW"
    pam_hidden = results[0]["actions"]
    # The principal policy's view:* DENY beats its own "*" ALLOW, whichever Cerbos meets first.
    assert pam_hidden["view:public"] == pam_hidden["view:a"] == "EFFECT_DENY"
    assert pam_hidden["view:a:b"] == "EFFECT_ALLOW"  # owner_anything: "view:*" does not reach it
    # Without the owner, lax evaluation reports owner_anything's conditionNotMet for every action,
    # colons and patterns included (view:* errs there: no hidden attribute, counted as false).
    if not strict:
        assert [o["action"] for o in results[2]["outputs"]] == ACTIONS


# The same principal policy with owner_anything first: it is evaluated before view:* denies.
_HEAD, _DOC_RULE = ACTION_PRINCIPAL.split("    - resource: doc\n")
_DOC_RULE, _ANY_RULE = _DOC_RULE.split('    - resource: "*"\n')
OWNER_FIRST_PRINCIPAL = f'{_HEAD}    - resource: "*"\n{_ANY_RULE}    - resource: doc\n{_DOC_RULE}'


@pytest.mark.parametrize("owner_first", [False, True], ids=["deny-first", "owner-first"])
def test_outputs_of_rules_after_a_satisfied_deny_are_not_reported(tmp_path: Path, owner_first: bool) -> None:
    """Where a policy's DENY holds, the rules after it in that policy are not evaluated, so their
    outputs are not reported: here owner_anything's conditionNotMet for the actions view:* denies,
    unless owner_anything comes first in the policy.

    Cerbos 0.55 is not stable here: the two rules sit under different ``resource`` entries of the
    principal policy (doc and "*"), and in some server starts (lax evaluation: 8 of 45 measured
    with view:* first, 4 of 15 with owner_anything first) it evaluates the entries in the other
    order, then does so for every request to that server. Effects never differ, but those three
    outputs come and go. (Both rules under one entry, or in a resource policy, gave one answer in
    20 and 15 starts.) This was the intermittent failure of the lax case of the test above (issue
    15; 5 of 37 runs on a busy machine). We answer in the policy's order, as Cerbos's other starts
    do, the same in every run; Cerbos is held to one of its two answers."""
    principal = OWNER_FIRST_PRINCIPAL if owner_first else ACTION_PRINCIPAL
    write_policies(tmp_path, {"doc.yaml": ACTION_POLICY, "pam.yaml": principal})
    body = _action_bodies(({"hidden": True},))[0]  # pam, reader: view:* denies, not the owner
    engine = Engine.from_directory(tmp_path, EvalParams(strict_evaluation=False))
    ours = _normalise(engine.check_request(body))
    reported = [o["action"] for o in ours["results"][0]["outputs"]]
    denied = ["view:", "view:public", "view:a"]  # the actions view:* matches
    assert reported == [a for a in ACTIONS if owner_first or a not in denied]
    assert all(ours["results"][0]["actions"][a] == "EFFECT_DENY" for a in denied)
    with CerbosPDP(tmp_path, strict=False) as pdp:
        theirs = _normalise(pdp.check(body))
    if theirs != ours:  # Cerbos's other order: the same answer with or without those three outputs
        fewer, more = (theirs, ours) if owner_first else (ours, theirs)
        extra = [o for o in more["results"][0]["outputs"] if o not in fewer["results"][0]["outputs"]]
        assert [(o["action"], o["src"]) for o in extra] == [
            (a, "principal.pam.vdefault#owner_anything") for a in denied
        ]
        more["results"][0]["outputs"] = [o for o in more["results"][0]["outputs"] if o not in extra]
        assert theirs == ours
