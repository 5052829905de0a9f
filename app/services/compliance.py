"""Compliance review: the queue of break-glass sessions and exports with their context; accept or
reject with a comment, remind the clinician, take a late justification, mark resolved. Every step
is an annotation in the audit log that references the event, so the log itself holds the review
(nothing is edited). Reports: a compliance officer any type, a hospital admin usage only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from authz import Resource
from authz.audit import AuditChain, AuditRecord

from .access import Decision
from .store import Store
from .users import SignedInUser

REVIEWED_EVENTS = ("break_glass_started", "export")
REVIEW_STEPS = {"review_accepted": "accepted", "review_rejected": "rejected", "review_resolved": "resolved"}
REPORT_TYPES = ("usage", "access", "break_glass", "export", "firmware")


class ReviewRefused(Exception):
    """The review step was not allowed; the message says why."""


@dataclass
class ReviewItem:
    event: AuditRecord
    hospital_id: str
    state: str = "open"  # open, accepted, rejected, resolved
    annotations: list[AuditRecord] = field(default_factory=list)
    accesses: int = 0  # decisions made under a break-glass session

    @property
    def late_justification(self) -> str:
        return next((a.justification for a in reversed(self.annotations) if a.event_type == "late_justification"), "")

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


Decide = Callable[[SignedInUser, Resource, str], Decision]


class ComplianceService:
    def __init__(self, store: Store, audit: AuditChain, decide: Decide,
                 resolve: Callable[[SignedInUser], SignedInUser] = lambda user: user) -> None:
        """``resolve`` gives the user as the policies see them now; each public method calls it once."""
        self.store, self.audit, self.decide, self.resolve = store, audit, decide, resolve

    def _event_resource(self, event: AuditRecord) -> Resource:
        patient = self.store.patient(event.patient_id) if event.patient_id else None
        return Resource("audit_event", event.record_id, {
            "hospital_id": patient.hospital_id if patient else "", "actor_id": event.principal_id,
            "event_type": event.event_type, "patient_id": event.patient_id})

    def queue(self, user: SignedInUser) -> list[ReviewItem]:
        """The events this user may review, with their review state and context, newest first."""
        user = self.resolve(user)
        records = list(self.audit.records())
        annotations: dict[str, list[AuditRecord]] = {}
        for r in records:
            if r.kind == "annotation":
                annotations.setdefault(r.ref, []).append(r)
        items = []
        for event in records:
            if event.kind != "event" or event.event_type not in REVIEWED_EVENTS:
                continue
            resource = self._event_resource(event)
            if not self.decide(user, resource, "review").allowed:
                continue
            item = ReviewItem(event, resource.attr["hospital_id"], annotations=annotations.get(event.record_id, []))
            for a in item.annotations:
                item.state = REVIEW_STEPS.get(a.event_type, item.state)
            if event.event_type == "break_glass_started":
                item.accesses = self._accesses_under(event, records)
            items.append(item)
        return sorted(items, key=lambda i: i.event.seq, reverse=True)

    @staticmethod
    def _accesses_under(start: AuditRecord, records: list[AuditRecord]) -> int:
        session = start.details.get("session_id")
        end_seq = next((r.seq for r in records if r.event_type == "break_glass_ended"
                        and r.details.get("session_id") == session), None)
        return sum(1 for r in records if r.kind == "decision" and r.principal_id == start.principal_id
                   and r.patient_id == start.patient_id and r.seq > start.seq and (end_seq is None or r.seq < end_seq)
                   and {"audit_flag": "break_glass_access"} in [o.get("val") for o in r.outputs])

    def annotate(self, user: SignedInUser, event_id: str, step: str, comment: str) -> AuditRecord:
        """accept, reject, remind or resolve (compliance), or a late justification (the actor)."""
        user = self.resolve(user)
        event = self.audit.get(event_id)
        if event is None or event.kind != "event":
            raise ReviewRefused("There is no such event to review.")
        if step != "late_justification" and len(comment.strip()) < 5:
            raise ReviewRefused("Write a comment for the clinician and the record.")
        if step == "late_justification" and len(comment.strip()) < 10:
            raise ReviewRefused("Write the justification (at least 10 characters).")
        if step not in ("review_accepted", "review_rejected", "review_resolved", "reminder", "late_justification"):
            raise ReviewRefused(f"Unknown review step {step!r}.")
        decision = self.decide(user, self._event_resource(event), "annotate")
        if not decision.allowed or (step != "late_justification" and "compliance_officer" not in user.roles):
            raise ReviewRefused("Only a compliance officer of this hospital reviews events; the clinician who "
                                "acted may add a late justification.")
        return self.audit.annotate(event_id, user.id, comment.strip(), event_type=step,
                                   principal_roles=list(user.roles))

    def reminders_for(self, user: SignedInUser) -> list[str]:
        """Reminders compliance sent to this clinician about their own events."""
        return [text for _, text, _ in self.open_questions(user, include_answered=True)]

    def open_questions(self, user: SignedInUser, include_answered: bool = False) -> list[tuple[str, str, str]]:
        """(event id, compliance's reminder, what the event was) for this clinician's own events
        that compliance asked about and that have no late justification yet."""
        records = list(self.audit.records())
        by_id = {r.record_id: r for r in records}
        answered = {r.ref for r in records if r.kind == "annotation" and r.event_type == "late_justification"}
        out = []
        for r in records:
            if r.kind == "annotation" and r.event_type == "reminder":
                original = by_id.get(r.ref)
                if original is None or original.principal_id != user.id:
                    continue
                if include_answered or r.ref not in answered:
                    what = f"{original.event_type.replace('_', ' ')} for patient {original.patient_id} " \
                           f"on {original.time[:16].replace('T', ' ')} UTC"
                    out.append((r.ref, r.justification, what))
        return out

    def report(self, user: SignedInUser, report_type: str, hospital_id: str) -> Report:
        """A report the policy allows this user to generate (raises ReviewRefused)."""
        user = self.resolve(user)
        if report_type not in REPORT_TYPES:
            raise ReviewRefused(f"Unknown report type {report_type!r}.")
        resource = Resource("compliance_report", f"{report_type}-{hospital_id}",
                            {"hospital_id": hospital_id, "report_type": report_type})
        if not self.decide(user, resource, "generate").allowed:
            raise ReviewRefused("Hospital administrators generate usage reports only; compliance officers "
                                "generate every report of their hospital.")
        patients = {p.id for p in self.store.patients([hospital_id])}
        records = [r for r in self.audit.records() if r.patient_id in patients or not r.patient_id]
        counts: Counter[str] = Counter()
        for r in records:
            label = self._label(report_type, r)
            if label:
                counts[label] += 1
        rows = sorted(counts.items())
        return Report(report_type, hospital_id, rows, sum(counts.values()))

    @staticmethod
    def _label(report_type: str, r: AuditRecord) -> str:
        if report_type == "usage":
            return r.time[:10] if r.kind == "decision" else ""
        if report_type == "access":
            return f"{r.action}: {r.effect.replace('EFFECT_', '').lower()}" if r.kind == "decision" else ""
        if report_type == "break_glass":
            return r.event_type if r.event_type.startswith("break_glass") else ""
        if report_type == "export":
            return ("de-identified" if r.details.get("deidentified") else "identified") \
                if r.event_type == "export" else ""
        return r.event_type if r.event_type.startswith("firmware") else ""


def summary(item: ReviewItem) -> dict[str, Any]:
    """What a reviewer reads first: who, what, when, why."""
    e = item.event
    return {"who": e.principal_id, "roles": e.principal_roles, "what": e.event_type, "patient": e.patient_id,
            "when": e.time[:16].replace("T", " "), "reason": e.purpose_of_use, "justification": e.justification,
            "late_justification": item.late_justification, "state": item.state, "accesses": item.accesses}
