"""Lists of patients a user may see, selected by the store through a query plan instead of a check
per patient: the plan narrows, and opening what the user chooses is still a check (audited).

The engine plans the user's question (one action on one resource kind), the store turns the plan's
filter into one SQL query over its own columns (store/permitted.py) and returns only the rows the
policies permit. Always denied: no query at all. Always allowed: the candidates unfiltered. A plan
that cannot be a filter, or a filter with no SQL for it, falls back to a check row by row, which is
slower but never lists a wrong row; the log says so and why."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from authz import Resource
from authz.query_plan import ALWAYS_DENIED, PlanError
from authz.sql_filter import SqlFilterError

from .access import AccessService
from .store import Patient, Store
from .users import SignedInUser

log = logging.getLogger(__name__)
ROW_BY_ROW = "row_by_row"  # how a list was selected when its plan could not be a query


@dataclass(frozen=True)
class Listing:
    """The permitted patients, by id, and how they were selected: the plan's filter kind
    (KIND_ALWAYS_ALLOWED, KIND_ALWAYS_DENIED, KIND_CONDITIONAL) or ``ROW_BY_ROW``, with why."""

    patients: list[Patient] = field(default_factory=list)
    method: str = ALWAYS_DENIED
    why_row_by_row: str = ""


def permitted_patients(
    access: AccessService,
    store: Store,
    user: SignedInUser,
    kind: str,
    action: str,
    resource_of: Callable[[Patient], Resource],
    *,
    birth_date: str = "",
    mrn_chars: str = "",
    among: list[str] | None = None,
) -> Listing:
    """The patients (as ``resource_of`` makes them resources of ``kind``) on which the user may
    ``action``, among those born on ``birth_date``, with ``mrn_chars`` in order in their MRN and
    of the ids ``among``, when given."""
    narrowing: dict[str, Any] = {"birth_date": birth_date, "mrn_chars": mrn_chars, "among": among}
    try:
        plan_filter = access.plan_filter(user, kind, action)
        if plan_filter["kind"] == ALWAYS_DENIED:
            return Listing([], ALWAYS_DENIED)
        return Listing(store.patients_permitted(plan_filter, kind, **narrowing), plan_filter["kind"])
    except (PlanError, SqlFilterError) as exc:
        why = f"{exc.__class__.__name__}: {exc}"
    log.warning(
        "%s of %s for %s: the query plan cannot be a query (%s); checking row by row", action, kind, user.id, why
    )
    candidates = store.patients_permitted(None, kind, **narrowing)
    allowed = {r.id for r in access.permitted(user, (resource_of(p) for p in candidates), action)}
    return Listing([p for p in candidates if p.id in allowed], ROW_BY_ROW, why)
