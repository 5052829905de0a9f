"""Asking the policy engine on the app's behalf. Every question names a policy action on the
real resource; every answer is an ``authz.Decision`` whose refusal is in the policies' words.
The user is always seen as the policies must see them now (delegations as recorded, an active
emergency access), so no screen can decide on a stale picture."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from authz import CheckInput, Decision, Engine, Principal, Resource, query_plan
from authz.decision import decisions

from .users import SignedInUser

# Shown the live decisions the active engine made in one call (the engine, the requests, their
# instant): the policy sync's shadow evaluation of a candidate bundle. Must not block.
Observer = Callable[[Engine, Sequence[CheckInput], datetime], None]

__all__ = ["AccessService", "Decision", "Refused", "offered", "principal", "refuse"]

NO_POLICIES = "No policy set is loaded, so everything is denied. Ask IT to check the policy server."


class Refused(Exception):
    """An action was not done. ``decision`` says why: the policies' words, or the form's."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


def refuse(action: str, reason: str) -> Refused:
    """A refusal that needs no policy: the input itself is incomplete ("write the reason")."""
    return Refused(Decision.refused(action, reason))


def principal(user: SignedInUser) -> Principal:
    return Principal(user.id, list(user.roles), dict(user.attributes))


class AccessService:
    def __init__(
        self,
        engine: Callable[[], Engine | None],
        resolve: Callable[[SignedInUser], SignedInUser] = lambda user: user,
        no_policy_reason: Callable[[], str] = lambda: "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        observe: Observer | None = None,
    ) -> None:
        """``engine`` gives the active engine (None while no policy set is loaded); ``resolve``
        gives the user as the policies see them now; ``clock`` is the policies' ``now()``;
        ``observe`` is shown every decision (a bundle held in shadow decides it again)."""
        self.engine, self.resolve, self.no_policy_reason, self.clock = engine, resolve, no_policy_reason, clock
        self.observe = observe

    @property
    def bundle_version(self) -> str:
        engine = self.engine()
        return engine.bundle_version if engine is not None else ""

    def decide(self, user: SignedInUser, resource: Resource, actions: Sequence[str]) -> dict[str, Decision]:
        """Each action on ``resource``; with no policy set, each refused with the reason why."""
        engine = self.engine()
        if engine is None:
            reason = self.no_policy_reason() or NO_POLICIES
            return {a: Decision.refused(a, reason) for a in actions}
        return self._decide(engine, principal(self.resolve(user)), resource, actions, self.clock())

    def _decide(
        self, engine: Engine, who: Principal, resource: Resource, actions: Sequence[str], now: datetime
    ) -> dict[str, Decision]:
        """The active engine's decision, shown to the observer after it was made."""
        inp = CheckInput(who, resource, list(actions))
        out = engine.check(inp, now)
        if self.observe is not None:
            self.observe(engine, (inp,), now)
        return decisions(out)

    def decide_one(self, user: SignedInUser, resource: Resource, action: str) -> Decision:
        return self.decide(user, resource, [action])[action]

    def require(self, user: SignedInUser, resource: Resource, action: str) -> Decision:
        """The decision that allows ``action``, or Refused saying why not."""
        decision = self.decide_one(user, resource, action)
        if not decision.allowed:
            raise Refused(decision)
        return decision

    def plan_filter(self, user: SignedInUser, kind: str, action: str) -> dict[str, Any]:
        """Which resources of ``kind`` the user may ``action``, as a PlanResources ``filter``
        (``kind`` KIND_ALWAYS_ALLOWED, KIND_ALWAYS_DENIED, or KIND_CONDITIONAL with its
        ``condition``) for the store to turn into a query: planned for the user as the policies see
        them now, at the policies' ``now()``. With no policy set, always denied. Raises
        query_plan.PlanError for a condition no filter can express (the caller then checks row
        by row)."""
        engine = self.engine()
        if engine is None:
            return {"kind": query_plan.ALWAYS_DENIED}
        return _filter(engine.plan(principal(self.resolve(user)), kind, [action], now=self.clock()))

    def permitted(self, user: SignedInUser, resources: Iterable[Resource], action: str) -> list[Resource]:
        """The resources on which ``action`` is allowed (the user resolved once for all of them)."""
        engine = self.engine()
        if engine is None:
            return []
        who, now, actions = principal(self.resolve(user)), self.clock(), [action]
        requests = [CheckInput(who, r, actions) for r in resources]
        shown = [inp.resource for inp in requests if decisions(engine.check(inp, now))[action].allowed]
        if self.observe is not None:  # once for the whole list
            self.observe(engine, requests, now)
        return shown


def _filter(result: query_plan.PlanResult) -> dict[str, Any]:
    plan_filter: dict[str, Any] = {"kind": result.kind}
    if result.condition is not None:
        plan_filter["condition"] = query_plan.render_node(result.condition)
    return plan_filter


def offered(decision: Decision) -> bool:
    """Whether a screen offers the control behind ``decision``: the policies allow it, or refuse
    it only for what the control's form asks for (remedy "complete_form"); the form's answer is
    then decided again when it is submitted."""
    return decision.allowed or decision.remedy == "complete_form"
