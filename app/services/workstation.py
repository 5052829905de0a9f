"""The composition root of the service layer: one ``Workstation`` owns the store, the users, the
active policy engine and the audit log, and offers the app exactly what its screens need, each
piece already decided by the engine (Qt-free, so it is tested without a display)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from authz import Engine, Resource
from authz.audit import AuditChain, AuditRecord
from authz.audit_ship import AuditShipper
from authz.sync import PolicySync

from .access import AccessService, Decision
from .break_glass import BreakGlassService, BreakGlassSession
from .compliance import ComplianceService
from .consent import Consent, ConsentService
from .credentials import SecretStore, Session
from .delegation import Delegation, DelegationService
from .export import ExportResult, ExportService
from .firmware import FirmwareRefused, FirmwareService, FirmwareUpdate
from .store import Patient, Store, observation_catalogue
from .users import DemoUserDirectory, SignedInUser

BUNDLED_POLICIES = Path(__file__).resolve().parents[2] / "policies"
RECORD_ACTIONS = ["view_history", "edit_clinical_notes", "export", "break_glass", "delegate_access"]
EMPTY_LIST_REASON = {
    "er_physician": "No patients to show yet: type the patient's MRN in the search and press Enter, then "
                    "use break-glass (emergency access), which is time-limited and reviewed.",
    "compliance_officer": "Compliance officers review reports and break-glass events, not patient charts.",
    "hospital_admin": "Hospital administrators see usage reports, not patient charts.",
    "manufacturer_engineer": "Manufacturer engineers see devices and de-identified data, not patient charts.",
}
FIRMWARE_ACTIONS = ("request_firmware_update", "approve_firmware_update", "reject_firmware_update",
                    "schedule_firmware_update", "apply_firmware_update")
NOTE_TYPE_FOR_ROLE = {"nurse": "basic", "physician": "full", "er_physician": "emergency"}


@dataclass(frozen=True)
class PatientRow:
    patient: Patient
    alerts: int
    last_transmission: str | None

    @property
    def alert_level(self) -> str:
        return "red" if self.alerts >= 3 else "yellow" if self.alerts > 0 else "none"


@dataclass(frozen=True)
class Series:
    code: str
    display: str
    unit: str
    low: float
    high: float
    points: list[tuple[str, float]]


@dataclass
class RecordView:
    patient: Patient
    device: dict[str, Any] | None
    series: list[Series]
    notes: list[dict[str, Any]]
    history: list[dict[str, Any]]
    decisions: dict[str, Decision] = field(default_factory=dict)
    firmware: FirmwareUpdate | None = None
    firmware_decisions: dict[str, Decision] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceRow:
    """A device as a manufacturer's engineer sees it: no patient identifiers, its firmware and update."""

    device_id: str
    patient_id: str  # internal key only, for the de-identified export; never shown
    model: str
    firmware_version: str
    update: FirmwareUpdate | None


@dataclass(frozen=True)
class Status:
    policy_version: str
    policy_age: str  # "3 h", "2 d"; "" for the bundled policies
    online: bool
    audit_backlog: int | None  # records not yet uploaded; None when no upload is configured
    message: str

    @property
    def text(self) -> str:
        age = f" ({self.policy_age} old)" if self.policy_age else ""
        backlog = ("audit upload not configured" if self.audit_backlog is None
                   else f"audit backlog: {self.audit_backlog}")
        online = "online" if self.online else "offline"
        return f"Policies: {self.policy_version}{age} · {online} · {backlog}" + (f" · {self.message}"
                                                                                 if self.message else "")


def _age(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{max(seconds // 60, 0)} min"
    return f"{seconds // 3600} h" if seconds < 86400 else f"{seconds // 86400} d"


class Workstation:
    """With ``sync`` the policies come from the policy server (last-known-good offline, deny-all
    with a reason when there is none); without it, from the bundled ``policies`` directory."""

    def __init__(self, data_dir: Path, policies: Path = BUNDLED_POLICIES, workstation_id: str | None = None,
                 sync: PolicySync | None = None, shipper_factory: Any = None,
                 secrets: SecretStore | None = None, idle_lock_seconds: int = 600) -> None:
        self.data_dir = data_dir
        self.store = Store(data_dir / "ccc.db")
        self.users = DemoUserDirectory(self.store)
        self.audit = AuditChain(data_dir / "audit.db", workstation_id=workstation_id or socket.gethostname())
        self.sync = sync
        self.shipper: AuditShipper | None = shipper_factory(self.audit) if shipper_factory else None
        self._bundled = None if sync else Engine.from_directory(policies, bundle_version="bundled")
        self.access = AccessService(self.engine, self.store, self.audit, self._no_policy_reason)
        self.secrets = secrets or SecretStore()
        self.idle_lock_seconds = idle_lock_seconds
        self.session: Session | None = None
        self.break_glass = BreakGlassService(self.store, self.users, self.audit, self._break_glass_decision)
        self.delegations = DelegationService(self.store, self.audit, self._delegation_decision)
        self.firmware = FirmwareService(self.store, self.audit, self._device_decision)
        self.consents = ConsentService(self.store, self.audit, self._may_view)
        self.exports = ExportService(self.store, self.audit, self._export_decision)
        self.compliance = ComplianceService(self.store, self.audit, self._decide_one, self.as_policies_see)

    def engine(self) -> Engine | None:
        return self.sync.engine if self.sync is not None else self._bundled

    def _no_policy_reason(self) -> str:
        reason = self.sync.state().reason if self.sync is not None else ""
        return reason or "No policy set is loaded, so everything is denied. Ask IT to check the policy server."

    def sign_in(self, user_id: str, password: str) -> SignedInUser | None:
        """Authenticates and opens a session whose secret lives in the keyring (or the demo store)."""
        user = self.users.authenticate(user_id, password)
        if user is not None:
            self.sign_out()
            self.session = self.secrets.open_session(user.id)
            user = self.as_policies_see(user)  # an emergency access resumes after a restart
        return user

    def as_policies_see(self, user: SignedInUser) -> SignedInUser:
        """The user as the policies must see them now: delegations as currently recorded, and
        ``break_glass`` while an emergency access is active."""
        current = self.users.refresh(user)
        session = self.break_glass.active(user.id)
        if session is None:
            return current
        return SignedInUser(current.id, current.name, current.roles,
                            {**current.attributes, "break_glass": session.attribute()})

    def emergency_session(self, user: SignedInUser) -> BreakGlassSession | None:
        return self.break_glass.active(user.id)

    def start_emergency_access(self, user: SignedInUser, patient_id: str, reason: str, justification: str,
                               password: str) -> SignedInUser:
        """Break-glass for one patient; returns the user with emergency access (raises BreakGlassRefused)."""
        self.break_glass.start(user, patient_id, reason, justification, password)
        return self.as_policies_see(user)

    def end_emergency_access(self, user: SignedInUser, why: str = "ended by the clinician") -> SignedInUser:
        session = self.break_glass.active(user.id)
        if session is not None:
            self.break_glass.end(session, why)
        return self.as_policies_see(user)

    def emergency_access_possible(self, user: SignedInUser, patient_id: str) -> Decision:
        """Whether break-glass could be granted here, given a valid reason and justification: what
        enables the "Emergency access" button (the real request is decided again on submit)."""
        user = self.as_policies_see(user)
        allowed, reason, rule = self._break_glass_decision(user, patient_id, "ETREAT", "x" * 40)
        return Decision("break_glass", allowed, reason, rule)

    def _break_glass_decision(self, user: SignedInUser, patient_id: str, reason: str,
                              justification: str) -> tuple[bool, str, str]:
        patient = self.store.patient(patient_id)
        if patient is None:
            return False, "There is no such patient.", ""
        resource = self.access.record(patient, break_glass_reason=reason, break_glass_justification=justification)
        decision = self.access.decide(user, resource, ["break_glass"])["break_glass"]
        return decision.allowed, decision.reason, decision.rule

    def grant_delegation(self, user: SignedInUser, patient_id: str, delegate_id: str, expires_at: datetime,
                         patient_permission: bool) -> Delegation:
        return self.delegations.grant(self.as_policies_see(user), patient_id, delegate_id, expires_at,
                                      patient_permission)

    def revoke_delegation(self, user: SignedInUser, delegation_id: str) -> None:
        self.delegations.revoke(self.as_policies_see(user), delegation_id)

    def _delegation_decision(self, user: SignedInUser, patient_id: str, permission: bool) -> tuple[bool, str, str]:
        patient = self.store.patient(patient_id)
        if patient is None:
            return False, "There is no such patient.", ""
        resource = self.access.record(patient, patient_permission=permission)
        decision = self.access.decide(user, resource, ["delegate_access"])["delegate_access"]
        return decision.allowed, decision.reason, decision.rule

    def device_rows(self, user: SignedInUser) -> list[DeviceRow]:
        """The devices whose data this user may view (each decided by the device policy)."""
        user = self.as_policies_see(user)
        rows = []
        for device in self.store.devices():
            if self._device_decision(user, device["id"], "view_device_data", None)[0]:
                rows.append(DeviceRow(device["id"], device["patient_id"], device["model"],
                                      device["firmware_version"], self.firmware.current(device["id"])))
        return rows

    def firmware_decisions(self, user: SignedInUser, device_id: str) -> dict[str, Decision]:
        """What the device panel may offer for the current update (one engine call)."""
        return self._firmware_decisions(self.as_policies_see(user), device_id)

    def _firmware_decisions(self, user: SignedInUser, device_id: str) -> dict[str, Decision]:
        resource = self._device_resource(device_id, self.firmware.current(device_id))
        if resource is None:
            return {a: Decision(a, False, "There is no such device.") for a in FIRMWARE_ACTIONS}
        return self.access.decide(user, resource, list(FIRMWARE_ACTIONS))

    def _device_resource(self, device_id: str, update: FirmwareUpdate | None) -> Resource | None:
        """The device as the device policy reads it, with its update; None when unknown."""
        device = self.store.device(device_id)
        patient = self.store.patient(device["patient_id"]) if device else None
        if device is None or patient is None:
            return None
        attrs: dict[str, Any] = {"patient_id": patient.id, "hospital_id": patient.hospital_id,
                                 "manufacturer_id": device["manufacturer_id"], "care_team": list(patient.care_team),
                                 "assigned_physicians": list(patient.assigned_physicians)}
        if update is not None:
            attrs["update"] = update.attribute()
        return Resource("device", device_id, attrs)

    # The decision adaptors below take the user as the policies see them: the public methods
    # above resolve it once (``as_policies_see``), so a screen costs one lookup, not one per rule.

    def _device_decision(self, user: SignedInUser, device_id: str, action: str,
                         update: FirmwareUpdate | None) -> tuple[bool, str, str]:
        resource = self._device_resource(device_id, update)
        if resource is None:
            return False, "There is no such device.", ""
        decision = self.access.decide(user, resource, [action])[action]
        return decision.allowed, decision.reason, decision.rule

    def _decide_one(self, user: SignedInUser, resource: Resource, action: str) -> Decision:
        return self.access.decide(user, resource, [action])[action]

    def _may_view(self, user: SignedInUser, patient_id: str) -> bool:
        patient = self.store.patient(patient_id)
        return patient is not None and self.access.decide(user, self.access.record(patient), ["view"])["view"].allowed

    def record_consent(self, user: SignedInUser, patient_id: str, given_by: str, expires_at: datetime,
                       scope: str = "export") -> Consent:
        return self.consents.record(self.as_policies_see(user), patient_id, scope, given_by, expires_at)

    def export(self, user: SignedInUser, patient_id: str, *, deidentified: bool, reason: str, fmt: str,
               directory: Path, progress: Any = None) -> ExportResult:
        return self.exports.export(self.as_policies_see(user), patient_id, deidentified=deidentified, reason=reason,
                                   fmt=fmt, directory=directory, progress=progress)

    def exports_deidentified(self, user: SignedInUser) -> bool:
        """Manufacturer engineers only ever receive de-identified data."""
        return "manufacturer_engineer" in user.roles

    def _export_preview(self, user: SignedInUser, patient: Patient) -> Decision:
        allowed, reason, rule, _ = self._export_decision(user, patient.id, "x" * 20, self.exports_deidentified(user))
        return Decision("export", allowed, reason, rule)

    def _export_decision(self, user: SignedInUser, patient_id: str, reason: str,
                         deidentified: bool) -> tuple[bool, str, str, list[dict[str, Any]]]:
        patient = self.store.patient(patient_id)
        if patient is None:
            return False, "There is no such patient.", "", []
        extra: dict[str, Any] = {"deidentified": deidentified}
        consent = self.consents.current(patient_id)
        if consent is not None:
            extra["consent"] = consent.attribute()
        if reason:
            extra["export_reason"] = reason
        device = self.store.device_for(patient_id)
        if device is not None:
            extra["manufacturer_id"] = device["manufacturer_id"]
        decision = self.access.decide(user, self.access.record(patient, **extra), ["export"])["export"]
        return decision.allowed, decision.reason, decision.rule, list(decision.outputs)

    def find_by_mrn(self, mrn: str) -> str | None:
        """The patient id for an exact MRN (what the ER types from a wristband), or None."""
        return self.store.patient_id_for_mrn(mrn.strip().upper())

    def sign_out(self) -> None:
        if self.session is not None:
            self.secrets.close_session(self.session)
            self.session = None

    def caregiver_choices(self) -> list[tuple[str, str]]:
        """Registered caregiver accounts a patient's access can be delegated to."""
        return [(r["id"], r["name"]) for r in self.store.staff_with_role("delegated_caregiver")]

    def staff_choices(self) -> list[tuple[str, str]]:
        return [(r["id"], f"{r['name']} — {r['role'].replace('_', ' ')}") for r in self.store.staff_members()]

    def patient_rows(self, user: SignedInUser, search: str = "") -> list[PatientRow]:
        """The patients this user may view (each decided by the engine), matching the search."""
        user = self.as_policies_see(user)
        needle = search.strip().lower()
        rows = []
        for p in self.access.visible_patients(user):
            if needle and needle not in p.name.lower() and needle not in p.mrn.lower():
                continue
            rows.append(PatientRow(p, self.store.alerts(p.id), self.store.latest_transmission(p.id)))
        return rows

    def empty_list_reason(self, user: SignedInUser) -> str:
        """Why a user's patient list is empty, in the words of their role."""
        role = user.roles[0] if user.roles else ""
        return EMPTY_LIST_REASON.get(role, "No patients to show: you are not assigned to any patient here.")

    def open_record(self, user: SignedInUser, patient_id: str) -> RecordView:
        """Everything the record screen shows, after the audited decision that allows it."""
        user = self.as_policies_see(user)
        patient = self.access.open_record(user, patient_id)
        resource = self.access.record(patient, note_type=self._note_type(user, patient_id))
        decisions = self.access.decide(user, resource, RECORD_ACTIONS)
        # the export button: would this user's kind of export be allowed with a reason given?
        decisions["export"] = self._export_preview(user, patient)
        # the button opens the dialog where the patient's permission is asked; granting decides again
        decisions["delegate_access"] = self.access.decide(
            user, self.access.record(patient, patient_permission=True), ["delegate_access"])["delegate_access"]
        raw = self.store.transmissions(patient_id)
        series = []
        for code, display, unit, low, high in observation_catalogue():
            points = [(t["time"], float(t["value"])) for t in raw if t["code"] == code]
            series.append(Series(code, display, unit, low, high, points))
        history = self._history(user, patient) if decisions["view_history"].allowed else []
        notes = self.store.notes_for(patient_id, newest_first=True)
        device = self.store.device_for(patient_id)
        firmware = self.firmware.current(device["id"]) if device else None
        firmware_decisions = self._firmware_decisions(user, device["id"]) if device else {}
        return RecordView(patient, device, series, notes, history, decisions, firmware, firmware_decisions)

    def firmware_step(self, user: SignedInUser, action: str, device_id: str, value: str = "") -> FirmwareUpdate:
        """One step of a firmware update from the device panel (raises FirmwareRefused)."""
        user = self.as_policies_see(user)
        if action == "request_firmware_update":
            return self.firmware.request(user, device_id, value)
        update = self.firmware.current(device_id)
        if update is None:
            raise FirmwareRefused("There is no firmware update for this device.")
        if action == "approve_firmware_update":
            return self.firmware.approve(user, update.id)
        if action == "reject_firmware_update":
            return self.firmware.reject(user, update.id, value)
        if action == "schedule_firmware_update":
            return self.firmware.schedule(user, update.id, datetime.now(UTC) + timedelta(days=1))
        if action == "apply_firmware_update":
            return self.firmware.mark_applied(user, update.id)
        raise FirmwareRefused(f"Unknown firmware step {action!r}.")

    def _history(self, user: SignedInUser, patient: Patient) -> list[dict[str, Any]]:
        """History entries one by one: a delegate's history is limited by policy."""
        entries = []
        for entry in self.store.history_for(patient.id, newest_first=True):
            resource = Resource("history_entry", entry["id"], {
                "patient_id": patient.id, "hospital_id": patient.hospital_id, "care_team": list(patient.care_team),
                "assigned_physicians": list(patient.assigned_physicians), "category": entry["category"]})
            if self.access.decide(user, resource, ["view"])["view"].allowed:
                entries.append(entry)
        return entries

    @staticmethod
    def _note_type(user: SignedInUser, patient_id: str) -> str:
        """The note this user writes here: an emergency note under break-glass for this patient,
        otherwise the note of their role."""
        if user.attributes.get("break_glass", {}).get("patient_id") == patient_id:
            return "emergency"
        return NOTE_TYPE_FOR_ROLE.get(user.roles[0], "basic")

    def save_note(self, user: SignedInUser, patient_id: str, text: str) -> dict[str, Any]:
        """Saves a note after a policy check; the audit record is committed with it."""
        user = self.as_policies_see(user)
        patient = self.store.patient(patient_id)
        if patient is None:
            raise PermissionError("There is no such patient.")
        if not text.strip():
            raise ValueError("The note is empty.")
        note_type = self._note_type(user, patient_id)
        resource = self.access.record(patient, note_type=note_type)
        decision = self.access.decide(user, resource, ["edit_clinical_notes"])["edit_clinical_notes"]
        if not decision.allowed:
            raise PermissionError(decision.reason)
        now = datetime.now(UTC).isoformat()
        note = {"id": f"n-{patient_id}-{now}", "patient_id": patient_id, "author_id": user.id,
                "note_type": note_type, "time": now, "text": text.strip()}
        self.audit.append(AuditRecord("event", user.id, "edit_clinical_notes", list(user.roles), "patient_record",
                                      patient_id, patient_id, "EFFECT_ALLOW", rule=decision.rule,
                                      event_type="note_saved", details={"note_id": note["id"],
                                                                        "note_type": note_type}))
        self.store.add_note(note)
        return note

    def status(self) -> Status:
        """What the status bar shows: the policy set and its age, online or not, the audit backlog."""
        backlog = self.shipper.state().pending if self.shipper is not None else None
        notice = self.secrets.notice and "demo-only session store (no OS keyring)"
        if self.sync is None:
            return Status("bundled", "", False, backlog, ", ".join(filter(None, ["embedded demo policies", notice])))
        state = self.sync.state()
        online = state.last_success is not None and not state.last_error
        if state.version is None:
            return Status("none", "", online, backlog, state.reason)
        message = ", ".join(filter(None, [
            "policies are older than allowed: ask IT to check the policy server" if state.stale else "",
            state.last_error and f"last sync failed: {state.last_error}", notice]))
        return Status(f"v{state.version}", _age(state.age), online, backlog, message)
