"""``Engine``: load policies once, check many requests.

Thread use: an ``Engine`` is immutable after construction (its ``PolicySet`` holds only compiled
closures and lookup tables; the per-request state lives in the check itself), so one engine may
serve any number of threads. Swapping in new policies means building a new ``Engine`` and
replacing the reference, which is atomic in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import api
from .audit import AuditRecord, decision_records
from .compile import PolicySet, compile_policy_dir
from .decision import Decision, decisions
from .errors import RequestError
from .evaluate import ActionEffect, CheckInput, CheckOutput, EvalParams, Principal, Resource, check
from .policy import DENY
from .schemas import SchemaValidator

if TYPE_CHECKING:  # the query planner is imported when a plan is asked for (not by `check`)
    from . import query_plan


class Engine:
    """An embedded policy decision point with Cerbos 0.55 semantics (strict evaluation by default)."""

    def __init__(self, policy_set: PolicySet, params: EvalParams | None = None, bundle_version: str = "") -> None:
        self.policy_set = policy_set
        self.params = params or EvalParams()
        self.schemas = SchemaValidator(policy_set)
        self.bundle_version = bundle_version  # recorded in every audit record

    @classmethod
    def from_directory(cls, root: str | Path, params: EvalParams | None = None, bundle_version: str = "") -> Engine:
        """Compiles every policy below ``root``; raises ``PolicyErrors`` listing every problem."""
        return cls(compile_policy_dir(Path(root)), params, bundle_version)

    def check(
        self,
        inp: CheckInput,
        now: datetime | None = None,
        shared: dict[Any, Any] | None = None,
        with_derived_roles: bool = True,
    ) -> CheckOutput:
        """Decides one resource's actions. Never raises for what the request or policies contain.

        ``shared`` and ``with_derived_roles`` are as for ``evaluate.check``."""
        if self.params.schema_enforcement == "none":
            return check(self.policy_set, inp, self.params, now, shared, with_derived_roles)
        errors, reject = self.schemas.validate(inp, self.params.schema_enforcement, self.params.default_policy_version)
        if reject:
            out = CheckOutput(inp.request_id, inp.resource.id, {})
            key = self.policy_set.resource_policy_key(
                inp.resource.kind, inp.resource.policy_version or self.params.default_policy_version, inp.resource.scope
            )
            out.actions = {a: ActionEffect(DENY, key) for a in inp.actions}
            out.validation_errors = errors
            return out
        out = check(self.policy_set, inp, self.params, now, shared, with_derived_roles)
        out.validation_errors = errors
        return out

    def decide(
        self, principal: Principal, resource: Resource, actions: Sequence[str], now: datetime | None = None
    ) -> dict[str, Decision]:
        """Each action on ``resource`` as a ``Decision``, its refusal explained in the policies' words."""
        return decisions(self.check(CheckInput(principal, resource, list(actions)), now))

    def plan(
        self,
        principal: Principal,
        resource_kind: str,
        actions: Sequence[str],
        known_attributes: dict[str, Any] | None = None,
        policy_version: str = "",
        scope: str = "",
        now: datetime | None = None,
    ) -> query_plan.PlanResult:
        """Which resources of a kind ``principal`` may act on, as Cerbos's PlanResources answers:
        always allowed, always denied, or a condition on the unknown attributes (all ``actions``
        allowed). Raises ``query_plan.PlanError`` for a condition a filter cannot express."""
        from . import query_plan

        req = query_plan.PlanRequest(
            principal, resource_kind, list(actions), dict(known_attributes or {}), policy_version, scope
        )
        return query_plan.plan_resources(self.policy_set, self._plan_sources(), self.params, req, now)

    def plan_request(self, body: Any, now: datetime | None = None) -> dict[str, Any]:
        """A Cerbos ``/api/plan/resources`` request body in, its response body out (or Cerbos's
        error shape, naming what is wrong)."""
        from . import query_plan

        try:
            req, include_meta = query_plan.parse_plan_request(body)
            single = isinstance(body, dict) and bool(body.get("action"))
            result = query_plan.plan_resources(self.policy_set, self._plan_sources(), self.params, req, now)
            return query_plan.render_plan_response(result, include_meta, api.new_call_id(), single)
        except (RequestError, query_plan.PlanError) as exc:
            return api.error_body(str(exc))

    def _plan_sources(self) -> query_plan.Sources:
        """The policies' conditions (the planner evaluates them partially), taken once from the
        policies this engine was compiled from: never re-read from the directory, whose files (a
        verified bundle's, unpacked) may have changed on disk since."""
        from . import query_plan

        sources: query_plan.Sources | None = getattr(self, "_sources", None)
        if sources is None:
            sources = self._sources = query_plan.sources_of(self.policy_set)
        return sources

    def check_request(
        self, body: Any, now: datetime | None = None, audit: list[AuditRecord] | None = None
    ) -> dict[str, Any]:
        """A Cerbos ``/api/check/resources`` request body in, its response body out.

        A malformed request gets Cerbos's error shape, naming what is wrong. When ``audit`` is a
        list, one audit record per decision is appended to it (the caller commits them).
        """
        try:
            request_id, inputs, include_meta = api.parse_check_request(body)
        except RequestError as exc:
            return api.error_body(str(exc))
        when = now or self.params.now()
        call_id = api.new_call_id()
        results = []
        shared: dict[Any, Any] = {}  # the request's principal and globals, converted for CEL once
        for inp in inputs:
            out = self.check(inp, when, shared, with_derived_roles=include_meta)
            if audit is not None:
                audit.extend(
                    decision_records(
                        inp.principal, inp.resource, out, call_id=call_id, bundle_version=self.bundle_version
                    )
                )
            results.append(api.render_result(inp, out, include_meta))
        return api.render_check_response(request_id, results, call_id)
