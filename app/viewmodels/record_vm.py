"""The open record: what the record screen shows and the controls the policies allow on it
(notes of each allowed type, firmware steps on the device, consent, delegation), or, when the
record is refused, why, and whether emergency access is offered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from PySide6.QtCore import QObject, Signal

from app.services.access import Decision, Refused, offered
from app.services.alerts import Alert, AlertSummary, state_words
from app.services.delegation import Delegation
from app.services.firmware import FirmwareUpdate
from app.services.patients import Draft, Identity, RecordView, Series
from app.services.storage import STORAGE_ERRORS
from app.viewmodels.session_vm import SessionViewModel

__all__ = [
    "Alert",
    "AlertSummary",
    "Decision",
    "Draft",
    "Delegation",
    "Identity",
    "OpenRecord",
    "RecordRefusal",
    "RecordViewModel",
    "Series",
    "offered",
    "state_words",
]


@dataclass
class OpenRecord:
    """The record and everything its screen offers, each control with its decision."""

    view: RecordView
    firmware: FirmwareUpdate | None = None
    firmware_decisions: dict[str, Decision] = field(default_factory=dict)  # step -> its decision
    exports: dict[str, Decision] = field(default_factory=dict)  # "identified" / "deidentified" -> decision
    identity: Identity | None = None  # the banner: who this record is (identifiers as the record shows them)
    draft: Draft | None = None  # this user's unsaved note here, kept from before (a lock, a switch, a restart)
    saved: str = ""  # "" or the confirmation of the note just saved
    alert_done: str = ""  # "" or the confirmation of the alert just acknowledged or triaged

    @property
    def patient_id(self) -> str:
        return self.view.patient.id

    @property
    def alert_level(self) -> str:
        return self.view.alert_level

    @property
    def alerts(self) -> list[Alert]:
        return self.view.alerts


@dataclass(frozen=True)
class RecordRefusal:
    """A record that was not shown: the policies' decision, and the emergency-access offer when
    the policies name break-glass as the remedy (None otherwise)."""

    patient_id: str
    decision: Decision
    emergency: Decision | None
    identity: Identity | None = None  # whose record, when the policies let this user know (search_identity)


class RecordViewModel(QObject):
    record_changed = Signal(object)  # OpenRecord | None
    record_denied = Signal(object)  # RecordRefusal
    alerts_changed = Signal()  # an alert was acknowledged or triaged: the patient list shows it

    def __init__(self, session: SessionViewModel) -> None:
        super().__init__()
        self.session = session
        ws = session.workstation
        self.patients, self.firmware, self.exports = ws.patients, ws.firmware, ws.exports
        self.consents, self.delegation_service, self.break_glass = ws.consents, ws.delegations, ws.break_glass
        self.record: OpenRecord | None = None
        self._saved = ""
        self._alert_done = ""
        session.signed_in.connect(lambda _user: self.close())
        session.resume.connect(self.open)

    def open(self, patient_id: str) -> None:
        user = self.session.user
        if user is None:
            return
        try:
            view = self.patients.open_record(user, patient_id)
        except Refused as refused:
            self._refused(patient_id, refused.decision)
            return
        except Exception as exc:  # noqa: BLE001 - the audit log could not be written: show nothing
            self.close()
            self.session.message.emit(f"The record cannot be shown: {exc}")
            return
        device = view.device
        self.record = OpenRecord(
            view,
            self.firmware.current(device["id"]) if device else None,
            self.firmware.decisions(user, device["id"]) if device else {},
            self.exports.offers(user, patient_id),
            self.patients.identity_in_record(view),
            self.patients.draft(user, patient_id) if view.note_types else None,
            self._saved if self.record is not None and self.record.patient_id == patient_id else "",
            self._alert_done if self.record is not None and self.record.patient_id == patient_id else "",
        )
        self._saved = self._alert_done = ""
        self.session.open_patient_id = patient_id
        self.record_changed.emit(self.record)
        self.session.show_status()

    def identity(self, patient_id: str) -> Identity | None:
        """Who the patient is, when the policies let the signed-in user know; else None."""
        user = self.session.user
        return self.patients.identity(user, patient_id) if user is not None else None

    def reopen(self) -> None:
        if self.record is not None:
            self.open(self.record.patient_id)

    def close(self) -> None:
        self.record = None
        self.session.open_patient_id = None
        self.record_changed.emit(None)

    def _refused(self, patient_id: str, decision: Decision) -> None:
        self.close()
        emergency = None
        if decision.remedy == "break_glass" and self.session.user is not None:
            emergency = self.break_glass.offer(self.session.user, patient_id)
        identity = self.identity(patient_id)
        self.record_denied.emit(RecordRefusal(patient_id, decision, emergency, identity))
        self.session.message.emit(decision.reason)
        self.session.show_status()

    def _act(self, work: Callable[[], object]) -> str:
        """Runs one user action; "" when done, else why not (the policies' or the form's words)."""
        if self.session.user is None or self.record is None:
            return "Open the patient's record first."
        try:
            work()
        except Refused as refused:
            return str(refused)
        except STORAGE_ERRORS as exc:  # a full disk, a read-only store: what, where, and that nothing was saved
            return str(exc)
        return ""

    def save_note(self, note_type: str, text: str) -> bool:
        saved: list[dict[str, object]] = []
        problem = self._act(
            lambda: saved.append(self.patients.save_note(self.session.user, self.record.patient_id, note_type, text))
        )
        if problem:
            self.session.message.emit(problem)
            return False
        self._saved = f"Note saved at {str(saved[0]['time'])[11:16]} UTC; it is first in the list below."
        self.reopen()
        self.session.message.emit(self._saved)
        return True

    def keep_draft(self, note_type: str, text: str) -> None:
        """What is typed in the note editor, kept at once so no lock, switch or expiry loses it."""
        if self.session.user is not None and self.record is not None:
            try:
                self.patients.keep_draft(self.session.user, self.record.patient_id, note_type, text)
            except STORAGE_ERRORS as exc:  # the note stays in the editor: say why it is not kept
                self.session.message.emit(f"The draft is not kept: {exc}")

    def has_draft(self, patient_id: str) -> bool:
        user = self.session.user
        return user is not None and self.patients.draft(user, patient_id) is not None

    def dispositions(self) -> dict[str, str]:
        """What a triage may conclude (code -> words), as the alert rules file lists them."""
        return dict(self.patients.alerts.rules.dispositions)

    def alert_state(self, alert: Alert) -> str:
        """The alert's state in words, naming who acted ("✓ Acknowledged by Dr. Aly Rahman (dr_aly) at ...")."""
        return state_words(alert, self.dispositions(), self.person)

    def acknowledge_alert(self, alert_id: str) -> str:
        """Records that the signed-in user has seen the alert; "" when done, else why not."""
        return self._on_alert(
            lambda: self.patients.alerts.acknowledge(self.session.user, self.record.patient_id, alert_id),
            "Acknowledged",
        )

    def triage_alert(self, alert_id: str, disposition: str, comment: str = "") -> str:
        """Records the triage of the alert (one of ``dispositions``); "" when done, else why not."""
        return self._on_alert(
            lambda: self.patients.alerts.triage(
                self.session.user, self.record.patient_id, alert_id, disposition, comment
            ),
            "Triaged",
        )

    def _on_alert(self, work: Callable[[], Alert], done: str) -> str:
        alert: list[Alert] = []
        problem = self._act(lambda: alert.append(work()))
        if problem:
            self.session.message.emit(problem)
            return problem
        a = alert[0]
        outcome = f" as “{self.dispositions().get(a.state.disposition, '')}”" if a.state.disposition else ""
        self._alert_done = f"{done}{outcome}: {a.rule.says} (since {a.since_text}); recorded in the audit log."
        self.session.message.emit(self._alert_done)
        self.reopen()
        self.alerts_changed.emit()
        return ""

    def firmware_step(self, action: str, value: str = "") -> str:
        if self.record is not None and self.record.view.device is None:
            return "This patient has no implanted device."
        problem = self._act(lambda: self.firmware.step(self.session.user, action, self.record.view.device["id"], value))
        if not problem:
            self.reopen()
        return problem

    def person(self, user_id: str) -> str:
        """A user named with their identifier ("Dr. Aly Rahman (dr_aly)"), as every screen names people."""
        return self.session.workstation.session.person(user_id)

    def firmware_versions(self) -> list[str]:
        """The released versions the open record's device may be updated to."""
        device = self.record.view.device if self.record is not None else None
        return self.firmware.versions(device["id"]) if device else []

    def check_version(self, text: str) -> str:
        """Why the typed version cannot be requested for this device, or "" (as it is typed)."""
        device = self.record.view.device if self.record is not None else None
        return self.firmware.check_version(device["id"], text) if device else "This patient has no implanted device."

    def schedule_window(self) -> tuple[date, date]:
        return self.firmware.schedule_window()

    def record_consent(self, given_by: str, days: int, patients_word: bool) -> str:
        problem = self._act(
            lambda: self.consents.record(
                self.session.user,
                self.record.patient_id,
                "export",
                given_by,
                datetime.now(UTC) + timedelta(days=days),
                patients_word,
            )
        )
        if not problem:
            self.reopen()
        return problem

    def caregivers(self) -> list[tuple[str, str]]:
        return self.delegation_service.caregivers(self.session.user) if self.session.user else []

    def delegations(self) -> list[Delegation]:
        return self.delegation_service.for_patient(self.record.patient_id) if self.record else []

    def grant_delegation(self, delegate_id: str, days: int, patient_permission: bool) -> str:
        """Grants the open record's patient to a caregiver for ``days``; returns why not, or ""."""
        return self._act(
            lambda: self.delegation_service.grant(
                self.session.user,
                self.record.patient_id,
                delegate_id,
                datetime.now(UTC) + timedelta(days=days),
                patient_permission,
            )
        )

    def revoke_delegation(self, delegation_id: str) -> str:
        return self._act(lambda: self.delegation_service.revoke(self.session.user, delegation_id))
