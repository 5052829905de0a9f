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
from datetime import date, datetime
from typing import Any

from authz import Decision, Effect, Resource
from authz.audit import AuditRecord
from authz.query_plan import ALWAYS_DENIED, PlanError
from authz.sql_filter import SqlFilterError

from . import resources
from .access import AccessService, refuse
from .audit_trail import AuditTrail
from .break_glass import reason_in_words
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
# What a committee reads: each report, action and event in words (never a code name).
REPORT_TITLES = {
    "usage": "Workstation use per day",
    "access": "Access decisions",
    "break_glass": "Emergency access (break-glass)",
    "export": "Data exports",
    "firmware": "Firmware updates",
}
ACTION_WORDS = {
    "view": "Record opened",
    "view_phi": "Health data shown",
    "view_history": "History shown",
    "edit_clinical_notes": "Note written",
    "export": "Data exported",
    "break_glass": "Emergency access asked",
    "end_break_glass": "Emergency access ended",
    "delegate_access": "Access delegated",
    "revoke_delegation": "Delegation revoked",
    "request_firmware_update": "Firmware update requested",
    "approve_firmware_update": "Firmware update approved",
    "view_firmware_version": "Firmware version shown",
    "generate": "Report made",
    "review": "Review queue shown",
}
EVENT_WORDS = {
    "break_glass_started": "Emergency access opened",
    "break_glass_ended": "Emergency access ended",
    "export": "Data exported",
    "note_saved": "Note written",
}
RELY = "rely_on_justification"


def in_words(code: str, words: dict[str, str] | None = None) -> str:
    """A code name as a committee reads it: its words when known, else the code spelt out."""
    known = (words or {}).get(code) or EVENT_WORDS.get(code) or ACTION_WORDS.get(code)
    return known or code.replace("_", " ").capitalize()


@dataclass
class ReviewItem:
    event: AuditRecord
    hospital_id: str
    state: str = "open"  # open, accepted, rejected, resolved
    annotations: list[AuditRecord] = field(default_factory=list)
    accesses: int = 0  # decisions made under a break-glass session
    weak_justification: str = ""  # the policies' words when the review may not rely on it
    timeline: list[tuple[str, str]] = field(default_factory=list)  # (time, what), for a break-glass session
    ended: str = ""  # how a break-glass session ended ("" while open)
    duration: str = ""  # how long it lasted (or has lasted so far)

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
    start: date | None = None  # the period covered, both days included
    end: date | None = None
    hospital_name: str = ""
    sessions: list[ReviewItem] = field(default_factory=list)  # break-glass sessions, for their timelines
    names: dict[str, str] = field(default_factory=dict)  # user and patient ids -> name with the id

    def named(self, some_id: str) -> str:
        return self.names.get(some_id, some_id)

    @property
    def title(self) -> str:
        return REPORT_TITLES.get(self.report_type, in_words(self.report_type))

    @property
    def period(self) -> str:
        first = self.start.isoformat() if self.start else "the first record"
        return f"{first} to {self.end.isoformat() if self.end else 'today'}"


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
                self._session_story(item, records)
                item.weak_justification = self._weakness(user, event)
            items.append(item)
        return sorted(items, key=lambda i: i.event.seq, reverse=True)

    def _weakness(self, user: SignedInUser, event: AuditRecord) -> str:
        """The policies' words when a review may not rely on the event's justification, or ""."""
        decision = self.access.decide_one(user, self._resource(event), RELY)
        return "" if decision.allowed else decision.reason

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

    def report(
        self,
        user: SignedInUser,
        report_type: str,
        hospital_id: str,
        start: date | None = None,
        end: date | None = None,
    ) -> Report:
        """A report the policies allow this user to generate (raises Refused), over the records
        from ``start`` to ``end`` (both days included; None: unbounded). The break-glass report
        carries each session with its timeline."""
        if report_type not in REPORT_TYPES:
            raise refuse("generate", f"Unknown report type {report_type!r}.")
        if start and end and start > end:
            raise refuse("generate", f"The period starts ({start}) after it ends ({end}): choose the dates again.")
        self.access.require(user, resources.compliance_report(report_type, hospital_id), "generate")
        patients = {p.id for p in self.store.patients([hospital_id])}
        first, last = start.isoformat() if start else "", end.isoformat() if end else "9999"
        every = list(self.audit.records())
        records = [r for r in every if (r.patient_id in patients or not r.patient_id) and first <= r.time[:10] <= last]
        counts: Counter[str] = Counter(label for r in records if (label := _label(report_type, r)))
        sessions = []
        if report_type == "break_glass":
            for r in records:
                if r.kind == "event" and r.event_type == "break_glass_started":
                    item = ReviewItem(r, hospital_id)
                    self._session_story(item, every)
                    sessions.append(item)
        name = self.store.hospital_name(hospital_id) or hospital_id
        return Report(
            report_type, hospital_id, sorted(counts.items()), sum(counts.values()), start, end, name, sessions
        )

    def _resource(self, event: AuditRecord) -> Any:
        patient = self.store.patient(event.patient_id) if event.patient_id else None
        return resources.audit_event(
            event.record_id, event.principal_id, event.event_type, patient, event.justification
        )

    @staticmethod
    def _session_story(item: ReviewItem, records: list[AuditRecord]) -> None:
        """A break-glass session as a reviewer reads it: opened, every record opened and note
        written under it, how it ended and how long it lasted (so far, while open)."""
        start = item.event
        session = start.details.get("session_id")
        end = next(
            (r for r in records if r.event_type == "break_glass_ended" and r.details.get("session_id") == session),
            None,
        )
        within = [
            r
            for r in records
            if r.principal_id == start.principal_id
            and r.patient_id == start.patient_id
            and r.seq > start.seq
            and (end is None or r.seq < end.seq)
        ]
        opened = [
            r
            for r in within
            if r.kind == "decision"
            and r.action == "view"  # one per record opened (its view_phi is decided beside it)
            and {"audit_flag": "break_glass_access"} in [o.get("val") for o in r.outputs]
        ]
        notes = [r for r in within if r.kind == "event" and r.event_type == "note_saved"]
        item.accesses = len(opened)
        story = [(start.time, f"Emergency access opened: {reason_in_words(start.purpose_of_use)}")]
        story += [(r.time, "Record opened") for r in opened]
        story += [(r.time, f"Note written ({r.details.get('note_type', 'note')})") for r in notes]
        if end is not None:
            item.ended = str(end.details.get("why", "ended"))
            story.append((end.time, f"Emergency access ended: {item.ended}"))
        item.timeline = sorted(story)
        stop = end.time if end is not None else datetime.now(datetime.fromisoformat(start.time).tzinfo).isoformat()
        item.duration = _duration(start.time, stop) + ("" if end is not None else " so far (still open)")


def _what(event: AuditRecord) -> str:
    return f"{in_words(event.event_type).lower()} for patient {event.patient_id} on {_when(event.time)} UTC"


def _when(time: str) -> str:
    return time[:16].replace("T", " ")


def _duration(start: str, stop: str) -> str:
    """How long from one recorded time to another, in minutes and seconds ("12 min 5 s")."""
    seconds = max(0, int((datetime.fromisoformat(stop) - datetime.fromisoformat(start)).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return (f"{hours} h " if hours else "") + f"{rest // 60} min {rest % 60} s"


def _label(report_type: str, r: AuditRecord) -> str:
    """The row a record counts in, in words."""
    if report_type == "usage":
        return r.time[:10] if r.kind == "decision" else ""
    if report_type == "access":
        allowed = "allowed" if r.effect == Effect.ALLOW.value else "refused"
        return f"{in_words(r.action)}: {allowed}" if r.kind == "decision" else ""
    if report_type == "break_glass":
        return in_words(r.event_type) if r.event_type.startswith("break_glass") else ""
    if report_type == "export":
        if r.event_type != "export":
            return ""
        return "De-identified export" if r.details.get("deidentified") else "Identified export"
    return in_words(r.event_type) if r.event_type.startswith("firmware") else ""


def summary(item: ReviewItem) -> dict[str, Any]:
    """What a reviewer reads first: who, what, when, why."""
    e = item.event
    return {
        "who": e.principal_id,
        "roles": e.principal_roles,
        "what": in_words(e.event_type),
        "patient": e.patient_id,
        "when": e.time[:16].replace("T", " "),
        "reason": e.purpose_of_use,
        "justification": e.justification,
        "late_justification": item.late_justification,
        "state": item.state,
        "accesses": item.accesses,
    }
