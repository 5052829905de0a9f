"""Compliance review: the queue of events the policies let this user review, the review steps
allowed on the selected one, and, for a clinician, the questions compliance asked about their
own events, answered with a late justification."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from app.services.access import Decision, Refused
from app.services.break_glass import reason_in_words
from app.services.compliance import LATE_JUSTIFICATION, REVIEW_STEPS, ReviewItem, in_words, summary
from app.services.patients import Identity
from app.services.storage import STORAGE_ERRORS
from app.viewmodels.session_vm import SessionViewModel

__all__ = ["REVIEW_STEPS", "ComplianceViewModel", "ReviewItem", "in_words", "reason_in_words", "summary"]


class ComplianceViewModel(QObject):
    queue_changed = Signal(list)  # list[ReviewItem]
    questions_changed = Signal(list)  # list[(event id, reminder, what)]

    def __init__(self, session: SessionViewModel) -> None:
        super().__init__()
        self.session = session
        self.service = session.workstation.compliance
        self.items: list[ReviewItem] = []
        self.names: dict[str, tuple[str, str]] = {}  # event id -> (who, patient), by name with the identifier
        session.signed_in.connect(lambda _user: self.refresh())

    def refresh(self) -> None:
        """Only reviewers load the queue: a clinician's sign-in does not read the whole audit log
        for it, only for their own open questions."""
        user = self.session.user
        reviewing = user is not None and self.session.workspace.name == "compliance"
        self.items = self.service.queue(user) if reviewing else []
        patients = [item.event.patient_id for item in self.items if item.event.patient_id]
        known = self.session.workstation.patients.identities(user, patients) if patients and user else {}
        self.names = {item.event.record_id: self._names(item, known) for item in self.items}
        self.queue_changed.emit(self.items)
        self.questions_changed.emit(self.open_questions())

    def _names(self, item: ReviewItem, known: dict[str, Identity]) -> tuple[str, str]:
        """Who acted and on which patient, by name with the identifier (the patient only when the
        policies let the reviewer identify them: ``known``, the queue's patients they may)."""
        event = item.event
        who = self.session.workstation.session.person(event.principal_id)
        identity = known.get(event.patient_id)
        return who, identity.label if identity is not None else event.patient_id

    def steps(self, event_id: str) -> dict[str, Decision]:
        """Each review step on the event: the policies' decision (reason when refused)."""
        return self.service.steps(self.session.user, event_id) if self.session.user else {}

    def review_step(self, event_id: str, step: str, comment: str) -> str:
        """Records a review step; returns why not, or ""."""
        if self.session.user is None:
            return "Sign in first."
        try:
            self.service.annotate(self.session.user, event_id, step, comment)
        except Refused as refused:
            return str(refused)
        except STORAGE_ERRORS as exc:  # a full disk, a read-only log: what and where, and not recorded
            return f"Not recorded: {exc}"
        self.refresh()
        return ""

    def open_questions(self) -> list[tuple[str, str, str]]:
        return self.service.open_questions(self.session.user) if self.session.user else []

    def reminders(self) -> list[str]:
        return self.service.reminders_for(self.session.user) if self.session.user else []

    def justify(self, event_id: str, text: str) -> str:
        """The clinician's late justification for one of their own events; why not, or ""."""
        return self.review_step(event_id, LATE_JUSTIFICATION, text)
