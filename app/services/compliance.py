"""Compliance review: the queue of break-glass sessions and exports with their context; accept or
reject with a comment, remind the clinician, take a late justification, mark resolved. Every step
is a policy action on the event (``accept_review``, ``reject_review``, ``remind``,
``resolve_review``, ``add_late_justification``) and an annotation in the audit log that references
it, so the log itself holds the review (nothing is edited). Reports: one ``generate`` decision per
report type."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from authz import Decision, Effect, Resource
from authz.audit import AuditRecord
from authz.query_plan import ALWAYS_DENIED, PlanError
from authz.sql_filter import SqlFilterError

from . import resources
from .access import AccessService, refuse
from .audit_trail import AuditTrail
from .store import Store
from .users import SignedInUser

log = logging.getLogger(__name__)
REVIEWED_EVENTS = ("break_glass_started", "export")
REVIEW_STEPS = ("accept_review", "reject_review", "remind", "resolve_review")
LATE_JUSTIFICATION = "add_late_justification"
# An event's review state after each kind of annotation (the earlier release's names too).
STATE_AFTER = {
    "accept_review": "accepted",
    "reject_review": "rejected",
    "resolve_review": "resolved",
    "review_accepted": "accepted",
    "review_rejected": "rejected",
    "review_resolved": "resolved",
}
REMINDERS = ("remind", "reminder")
LATE = (LATE_JUSTIFICATION, "late_justification")
REPORT_TYPES = ("usage", "access", "break_glass", "export", "firmware")


@dataclass
class ReviewItem:
    event: AuditRecord
    hospital_id: str
    state: str = "open"  # open, accepted, rejected, resolved
    annotations: list[AuditRecord] = field(default_factory=list)
    accesses: int = 0  # decisions made under a break-glass session

    @property
    def late_justification(self) -> str:
        return next((a.justification for a in reversed(self.annotations) if a.event_type in LATE), "")

    @property
    def needs_attention(self) -> bool:
        flagged = self.event.details.get("review") == "required"
        return self.state in ("open", "rejected") and (flagged or self.event.event_type == "break_glass_started")


@dataclass(frozen=True)
class Report:
    report_type: str
    hospital_id: str
    rows: list[tuple[str, int]]  # label, count: what the chart and the table show
    total: int


class ComplianceService:
    def __init__(self, store: Store, access: AccessService, audit: AuditTrail) -> None:
        self.store, self.access, self.audit = store, access, audit

    def queue(self, user: SignedInUser) -> list[ReviewItem]:
        """The events this user may review, with their review state and context, newest first."""
        records = list(self.audit.records())
        annotations: dict[str, list[AuditRecord]] = {}
        for r in records:
            if r.kind == "annotation":
                annotations.setdefault(r.ref, []).append(r)
        events = {r.record_id: r for r in records if r.kind == "event" and r.event_type in REVIEWED_EVENTS}
        allowed = self._reviewable(user, list(events.values()))
        items = []
        for resource in allowed:
            event = events[resource.id]
            item = ReviewItem(
                event, resource.attr.get("hospital_id", ""), annotations=annotations.get(event.record_id, [])
            )
            for a in item.annotations:
                item.state = STATE_AFTER.get(a.event_type, item.state)
            if event.event_type == "break_glass_started":
                item.accesses = self._accesses_under(event, records)
            items.append(item)
        return sorted(items, key=lambda i: i.event.seq, reverse=True)

    def _reviewable(self, user: SignedInUser, events: list[AuditRecord]) -> list[Resource]:
        """The events this user may ``review``, as resources, in the order given. The store selects
        the patients whose events the query plan permits (an event's hospital and physicians are
        its patient's), so no event of a patient is checked one by one; an event with no patient
        in the store is checked. A plan that cannot be a query: every event checked, and logged."""
        try:
            plan_filter = self.access.plan_filter(user, "audit_event", "review")
            if plan_filter["kind"] == ALWAYS_DENIED:
                return []
            permitted = {p.id: p for p in self.store.patients_permitted(plan_filter, "audit_event")}
        except (PlanError, SqlFilterError) as exc:
            log.warning(
                "review of audit_event for %s: the query plan cannot be a query (%s); checking event by event",
                user.id,
                exc,
            )
            return self.access.permitted(user, (self._resource(e) for e in events), "review")
        unlisted = self.store.existing_patient_ids([e.patient_id for e in events if e.patient_id not in permitted])
        allowed: dict[str, Resource] = {}
        for e in events:
            if e.patient_id in permitted:
                allowed[e.record_id] = resources.audit_event(
                    e.record_id, e.principal_id, e.event_type, permitted[e.patient_id]
                )
        unsure = [e for e in events if e.patient_id not in permitted and e.patient_id not in unlisted]
        for r in self.access.permitted(user, (self._resource(e) for e in unsure), "review"):
            allowed[r.id] = r
        return [allowed[e.record_id] for e in events if e.record_id in allowed]

    def steps(self, user: SignedInUser, event_id: str) -> dict[str, Decision]:
        """The review steps this user may take on the event (each decided by the policies)."""
        event = self.audit.get(event_id)
        if event is None:
            return {s: Decision.refused(s, "There is no such event to review.") for s in REVIEW_STEPS}
        return self.access.decide(user, self._resource(event), REVIEW_STEPS)

    def annotate(self, user: SignedInUser, event_id: str, step: str, comment: str) -> AuditRecord:
        """A review step or a late justification, as the policies allow (raises Refused)."""
        event = self.audit.get(event_id)
        if event is None or event.kind != "event":
            raise refuse(step, "There is no such event to review.")
        if step not in (*REVIEW_STEPS, LATE_JUSTIFICATION):
            raise refuse(step, f"Unknown review step {step!r}.")
        if step == LATE_JUSTIFICATION and len(comment.strip()) < 10:
            raise refuse(step, "Write the justification (at least 10 characters).")
        if step != LATE_JUSTIFICATION and len(comment.strip()) < 5:
            raise refuse(step, "Write a comment for the clinician and the record.")
        decision = self.access.require(user, self._resource(event), step)
        return self.audit.annotate(user, event_id, comment.strip(), decision)

    def open_questions(self, user: SignedInUser) -> list[tuple[str, str, str]]:
        """(event id, compliance's reminder, what the event was) for each event compliance asked
        about that this user may answer (``add_late_justification``) and nobody has answered yet,
        unless the review has closed it (accepted or resolved)."""
        records = list(self.audit.records())
        asked: dict[str, str] = {}
        for r in records:
            if r.kind != "annotation":
                continue
            if r.event_type in REMINDERS:
                asked[r.ref] = r.justification
            elif r.event_type in LATE or STATE_AFTER.get(r.event_type) in ("accepted", "resolved"):
                asked.pop(r.ref, None)
        by_id = {r.record_id: r for r in records if r.record_id in asked}
        return [
            (ref, text, _what(by_id[ref]))
            for ref, text in asked.items()
            if ref in by_id and self.access.decide_one(user, self._resource(by_id[ref]), LATE_JUSTIFICATION).allowed
        ]

    def reminders_for(self, user: SignedInUser) -> list[str]:
        """What compliance told this clinician about their own events (a reminder to request the
        proper role, say), newest last."""
        records = list(self.audit.records())
        own = {r.record_id for r in records if r.kind == "event" and r.principal_id == user.id}
        return [
            r.justification for r in records if r.kind == "annotation" and r.event_type in REMINDERS and r.ref in own
        ]

    def report_types(self, user: SignedInUser, hospital_id: str) -> dict[str, Decision]:
        """Each report type, as the policies let this user generate it for the hospital."""
        return {
            t: self.access.decide_one(user, resources.compliance_report(t, hospital_id), "generate")
            for t in REPORT_TYPES
        }

    def report(self, user: SignedInUser, report_type: str, hospital_id: str) -> Report:
        """A report the policies allow this user to generate (raises Refused)."""
        if report_type not in REPORT_TYPES:
            raise refuse("generate", f"Unknown report type {report_type!r}.")
        self.access.require(user, resources.compliance_report(report_type, hospital_id), "generate")
        patients = {p.id for p in self.store.patients([hospital_id])}
        records = [r for r in self.audit.records() if r.patient_id in patients or not r.patient_id]
        counts: Counter[str] = Counter(label for r in records if (label := _label(report_type, r)))
        return Report(report_type, hospital_id, sorted(counts.items()), sum(counts.values()))

    def _resource(self, event: AuditRecord) -> Any:
        patient = self.store.patient(event.patient_id) if event.patient_id else None
        return resources.audit_event(event.record_id, event.principal_id, event.event_type, patient)

    @staticmethod
    def _accesses_under(start: AuditRecord, records: list[AuditRecord]) -> int:
        session = start.details.get("session_id")
        end_seq = next(
            (r.seq for r in records if r.event_type == "break_glass_ended" and r.details.get("session_id") == session),
            None,
        )
        return sum(
            1
            for r in records
            if r.kind == "decision"
            and r.action == "view"  # one per record opened (its view_phi is decided beside it)
            and r.principal_id == start.principal_id
            and r.patient_id == start.patient_id
            and r.seq > start.seq
            and (end_seq is None or r.seq < end_seq)
            and {"audit_flag": "break_glass_access"} in [o.get("val") for o in r.outputs]
        )


def _what(event: AuditRecord) -> str:
    return (
        f"{event.event_type.replace('_', ' ')} for patient {event.patient_id} "
        f"on {event.time[:16].replace('T', ' ')} UTC"
    )


def _label(report_type: str, r: AuditRecord) -> str:
    if report_type == "usage":
        return r.time[:10] if r.kind == "decision" else ""
    if report_type == "access":
        return f"{r.action}: {Effect(r.effect).name.lower()}" if r.kind == "decision" else ""
    if report_type == "break_glass":
        return r.event_type if r.event_type.startswith("break_glass") else ""
    if report_type == "export":
        return ("de-identified" if r.details.get("deidentified") else "identified") if r.event_type == "export" else ""
    return r.event_type if r.event_type.startswith("firmware") else ""


def summary(item: ReviewItem) -> dict[str, Any]:
    """What a reviewer reads first: who, what, when, why."""
    e = item.event
    return {
        "who": e.principal_id,
        "roles": e.principal_roles,
        "what": e.event_type,
        "patient": e.patient_id,
        "when": e.time[:16].replace("T", " "),
        "reason": e.purpose_of_use,
        "justification": e.justification,
        "late_justification": item.late_justification,
        "state": item.state,
        "accesses": item.accesses,
    }
