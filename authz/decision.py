"""The one decision type, from the engine to the widget.

A ``CheckOutput`` is Cerbos's answer for one resource: an effect per action plus the outputs of
the rules met. Everything downstream (the app's screens, its audit events, the CLI's audit
records) wants one action's answer with the words that explain it, so this module turns the
first into ``Decision``s, once, here: the engine is the only place that spells the effect strings.

Reasons are written in the policies, never in code. The convention (policies/README.md): a rule's
output value that is a map with a ``"reason"`` (and, optionally, a ``"remedy"``) explains a
refusal: ``output.when.ruleActivated`` on a DENY rule, ``output.when.conditionNotMet`` on an
ALLOW rule. The rule that decided speaks first; otherwise the first reason given for the action.
Where no rule gives one, the decision says so plainly and names the policy that decided.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from . import policy
from .evaluate import CheckOutput, OutputEntry
from .plan import NO_MATCH


class Effect(Enum):
    """An action's effect; the values are Cerbos's wire strings."""

    ALLOW = policy.ALLOW
    DENY = policy.DENY


@dataclass(frozen=True, slots=True)
class Decision:
    """One action on one resource, decided: the effect, why (for a refusal), what the policy says
    would change it, which policy and rule decided, and the outputs of the rules met."""

    action: str
    effect: Effect
    reason: str = ""  # the policy's words; empty when allowed
    remedy: str = ""  # the policy's hint at what would change the answer ("break_glass", "complete_form")
    policy: str = ""
    rule: str = ""
    outputs: tuple[Mapping[str, Any], ...] = ()  # {"src": rule, "val": value}, as Cerbos returns them

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW

    def output(self, key: str) -> Any:
        """The value of ``key`` in the first output map that has it (e.g. an ``audit_flag``), else None."""
        for out in self.outputs:
            val = out.get("val")
            if isinstance(val, Mapping) and key in val:
                return val[key]
        return None

    @classmethod
    def refused(cls, action: str, reason: str, remedy: str = "") -> Decision:
        """A refusal made without the engine (no policy set is loaded, the resource does not exist)."""
        return cls(action, Effect.DENY, reason, remedy)


def decisions(output: CheckOutput) -> dict[str, Decision]:
    """Every action of a check as a ``Decision``, in request order."""
    return {action: decision(output, action) for action in output.actions}


def decision(output: CheckOutput, action: str) -> Decision:
    """One action of a check as a ``Decision``, its refusal explained by the policies' words."""
    effect = output.actions[action]
    outs = tuple({"src": o.src, "val": o.val} for o in output.outputs if o.action == action)
    if effect.effect == Effect.ALLOW.value:
        return Decision(action, Effect.ALLOW, "", "", effect.policy, effect.rule, outs)
    entries = [o for o in output.outputs if o.action == action]
    reason, remedy = _reason(entries, effect.rule)
    if not reason:
        reason = _no_reason(output, action, effect.policy, effect.rule, effect.final)
    return Decision(action, Effect.DENY, reason, remedy, effect.policy, effect.rule, outs)


def _reason(entries: Sequence[OutputEntry], deciding_rule: str) -> tuple[str, str]:
    """The deciding rule's reason if it gives one, else the first reason any rule gave."""
    explained = [(o.src, _explanation(o.val)) for o in entries]
    given = [(src, why) for src, why in explained if why is not None]
    for src, why in given:
        if deciding_rule and src == deciding_rule:
            return why
    return given[0][1] if given else ("", "")


def _explanation(val: Any) -> tuple[str, str] | None:
    if not isinstance(val, Mapping):
        return None
    reason = val.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        return None
    remedy = val.get("remedy")
    return reason.strip(), remedy if isinstance(remedy, str) else ""


def _no_reason(output: CheckOutput, action: str, policy: str, rule: str, final: bool) -> str:
    """Said plainly when no rule explains the refusal, naming what decided."""
    if final and output.evaluation_errors:
        error = output.evaluation_errors[0]
        return (
            f"Refused because a condition of policy {policy} could not be evaluated "
            f"({error.message}); ask the policy team to check it."
        )
    if policy in ("", NO_MATCH):
        return f"No policy covers {action!r} here, so it is refused."
    decided_by = f"rule {rule}" if rule else f"policy {policy} (no rule allows it)"
    return f"Refused by {decided_by}, which gives no reason."
