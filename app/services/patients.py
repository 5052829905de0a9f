"""Patients and their records: the list a user may see, a record opened after its audited
decision, and notes. What a record screen offers (each note type, history, export, delegation,
consent) is asked of the policies on the real record; nothing here knows who may do what."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from authz import Decision

from . import resources
from .access import Refused, refuse
from .alerts import Alert, AlertService, AlertSummary
from .clinical import ClinicalService
from .listing import Listing, permitted_patients
from .store import Patient, observation_catalogue
from .telemetry_units import formatted, unit_display
from .users import SignedInUser

# The note types a record may take, most complete first (the editor offers the allowed ones in
# this order, so a physician starts on a full note and a nurse on a basic one).
NOTE_TYPES = ("emergency", "full", "basic")
WITHHELD = "(withheld)"  # an identifier the policies do not let this user see (view_phi refused)
# What the record screen asks about the record itself, besides the note types.
RECORD_ACTIONS = (
    "view_history",
    "delegate_access",
    "revoke_delegation",
    "record_consent",
    "acknowledge_alert",
    "triage_alert",
)
# A hospital-wide identity search: at most this many answers, and a partial MRN of at least this
# many letters and digits, so a search finds a patient rather than browsing the census.
IDENTITY_LIMIT = 20
MIN_MRN_PART = 4
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_DAY_FIRST_DATE = re.compile(r"\b(\d{1,2})[./](\d{1,2})[./](\d{4})\b")
HOW_TO_SEARCH = (
    "To find a patient at your hospital, type the name and date of birth (for example "
    "Sven Brenner 1971-03-14) or at least 4 characters of the MRN, then press Enter."
)


def age_on(birth_date: str, today: date) -> int | None:
    """Whole years of age on ``today``; None when the date of birth is not a date (withheld)."""
    try:
        born = date.fromisoformat(birth_date)
    except ValueError:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@dataclass(frozen=True)
class Identity:
    """Who a patient is, as a banner, a dialog or a search shows it: never anything of the chart."""

    patient_id: str
    name: str
    birth_date: str
    age: int | None
    sex: str
    mrn: str
    location: str  # "Room 903, bed B", or "" when not known

    @property
    def mrn_text(self) -> str:
        """The MRN said as one ("MRN 100111"; an MRN that names itself, "MRN-H1-100111", as it is)."""
        return self.mrn if self.mrn.upper().startswith("MRN") else f"MRN {self.mrn}"

    @property
    def label(self) -> str:
        """Name and MRN: how a queue, a banner or a question names the patient."""
        return f"{self.name} ({self.mrn_text})"


def identity_of(patient: Patient, today: date) -> Identity:
    location = f"Room {patient.room}, bed {patient.bed}" if patient.room else ""
    return Identity(
        patient.id,
        patient.name,
        patient.birth_date,
        age_on(patient.birth_date, today),
        patient.sex,
        patient.mrn,
        location,
    )


@dataclass(frozen=True)
class Draft:
    """A note being written and not yet saved: its type, its text, when it was last kept."""

    note_type: str
    text: str
    kept_at: str


@dataclass(frozen=True)
class IdentitySearch:
    """What a hospital-wide search found (identities only), or why it found nothing."""

    matches: list[Identity]
    problem: str = ""


def _birth_date_in(text: str) -> tuple[str, str]:
    """(ISO date of birth, the rest of the text) when the text holds a date, else ("", text)."""
    for pattern, order in ((_ISO_DATE, (0, 1, 2)), (_DAY_FIRST_DATE, (2, 1, 0))):
        found = pattern.search(text)
        if found:
            year, month, day = (int(found.group(i + 1)) for i in order)
            try:
                iso = date(year, month, day).isoformat()
            except ValueError:
                return "", text
            return iso, (text[: found.start()] + " " + text[found.end() :]).strip()
    return "", text


def _alnum(text: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", text.upper())


@dataclass(frozen=True)
class PatientRow:
    patient: Patient
    alerts: AlertSummary  # the alert rules' findings and what was done about them
    last_transmission: str | None

    @property
    def alert_level(self) -> str:
        """The most urgent tier of the alerts not yet acknowledged: red, yellow or none."""
        return self.alerts.level


@dataclass(frozen=True)
class Series:
    """One telemetry series: its IEEE 11073-10103 IDC code (MDC_IDC_...), its name, its UCUM unit,
    the normal range and the (time, value) points."""

    code: str
    display: str
    unit: str  # UCUM
    low: float
    high: float
    points: list[tuple[str, float]]

    @property
    def symbol(self) -> str:
        return unit_display(self.unit).symbol

    @property
    def counts(self) -> bool:
        return unit_display(self.unit).counts

    def shown(self, value: float) -> str:
        """A value as the chart and its readout show it: the unit's precision and symbol."""
        return formatted(value, self.unit)

    def out_of_range(self, value: float) -> bool:
        return not self.low <= value <= self.high


@dataclass
class RecordView:
    """Everything the record screen shows, and the decisions behind each control."""

    patient: Patient
    device: dict[str, Any] | None
    series: list[Series]
    notes: list[dict[str, Any]]
    history: list[dict[str, Any]]
    decisions: dict[str, Decision] = field(default_factory=dict)
    note_types: tuple[str, ...] = ()  # the note types this user may write here, most complete first
    notes_refusal: Decision | None = None  # why no note may be written, when none may
    alerts: list[Alert] = field(default_factory=list)  # most urgent first, each with its state

    @property
    def alert_level(self) -> str:
        return AlertSummary(tuple(self.alerts)).level


class PatientService(ClinicalService):
    def __init__(self, *args: Any, alerts: AlertService | None = None, **kwargs: Any) -> None:
        """``alerts``: the alert rules' service (by default one on the same store, over the rules file)."""
        super().__init__(*args, **kwargs)
        self.alerts = alerts or AlertService(self.store, self.access, self.audit, self.clock)

    def rows(self, user: SignedInUser, search: str = "") -> list[PatientRow]:
        """The patients this user may view, matching the search: the store selects them through
        the engine's query plan (no check per patient; opening one is checked and audited)."""
        needle = search.strip().lower()
        listing = permitted_patients(self.access, self.store, user, "patient_record", "view", resources.patient_record)
        shown = [p for p in listing.patients if not needle or needle in p.name.lower() or needle in p.mrn.lower()]
        summaries = self.store.transmission_summaries([p.id for p in shown])
        latest = {pid: last for pid, (_, last) in summaries.items()}
        return [PatientRow(p, self.alerts.summary(p.id, latest.get(p.id)), latest.get(p.id)) for p in shown]

    def find_by_mrn(self, mrn: str) -> str | None:
        """The patient id for an exact MRN (what the ER types from a wristband), or None."""
        return self.store.patient_id_for_mrn(mrn)

    def identity(self, user: SignedInUser, patient_id: str) -> Identity | None:
        """Who the patient is, when the policies let this user know (``search_identity``); else None."""
        patient = self.store.patient(patient_id)
        if patient is None:
            return None
        decision = self.access.decide_one(user, resources.patient_identity(patient), "search_identity")
        return identity_of(patient, self.clock().date()) if decision.allowed else None

    def identities(self, user: SignedInUser, patient_ids: list[str]) -> dict[str, Identity]:
        """Who each of these patients is, for those the policies let this user know
        (``search_identity``): what a queue names its rows by, selected by the store through the
        query plan rather than decided patient by patient."""
        listing = self._identities(user, among=list(dict.fromkeys(patient_ids)))
        today = self.clock().date()
        return {p.id: identity_of(p, today) for p in listing.patients}

    def find_identities(self, user: SignedInUser, text: str) -> IdentitySearch:
        """Patients matching a name and date of birth, or a partial MRN, that the policies let this
        user identify (across their hospital): identities only, selected by the store through the
        query plan, and the search audited once with the identities it showed. Nothing of the
        chart: opening the record is decided apart (and offers break-glass when that is the remedy)."""
        born, rest = _birth_date_in(" ".join(text.split()))
        words = [w for w in re.split(r"[\s,]+", rest.lower()) if w]
        if born and words:
            listing = self._identities(user, birth_date=born)
            candidates = [p for p in listing.patients if _name_matches(p.name, words)]
        elif born:
            return IdentitySearch([], "Add the patient's name to the date of birth.")
        elif any(c.isdigit() for c in rest) and len(_alnum(rest)) >= MIN_MRN_PART:
            # the store narrows by the digits typed, in order (what no letter's case can change),
            # and the MRN is then matched as typed, with or without its separators
            listing = self._identities(user, mrn_chars="".join(c for c in _alnum(rest) if c.isdigit()))
            candidates = [p for p in listing.patients if _alnum(rest) in _alnum(p.mrn)]
        else:
            return IdentitySearch([], HOW_TO_SEARCH)
        found = [identity_of(p, self.clock().date()) for p in candidates[:IDENTITY_LIMIT]]
        self.audit.listed(user, "patient_identity", "search_identity", listing.method, [i.patient_id for i in found])
        return IdentitySearch(found, "" if found else f"No patient you may look up matches {text.strip()!r}.")

    def _identities(self, user: SignedInUser, **narrowing: Any) -> Listing:
        """The patients the policies let this user identify (``search_identity``), as the store
        selects them through the query plan, narrowed by what was typed."""
        return permitted_patients(
            self.access,
            self.store,
            user,
            "patient_identity",
            "search_identity",
            resources.patient_identity,
            **narrowing,
        )

    def patient(self, patient_id: str) -> Patient:
        patient = self.store.patient(patient_id)
        if patient is None:
            raise refuse("view", "There is no such patient.")
        return patient

    def open_record(self, user: SignedInUser, patient_id: str, purpose_of_use: str = "TREAT") -> RecordView:
        """The record, once the decision that allows it is durably in the audit log; Refused
        (with the policies' reason) otherwise. AuditWriteError when the log cannot be written:
        then nothing is shown."""
        patient = self.patient(patient_id)
        record = resources.patient_record(patient)
        view = self.access.decide(user, record, ["view", "view_phi"])
        self.audit.decisions(user, record, view.values(), purpose_of_use)
        if not view["view"].allowed:
            raise Refused(view["view"])
        if not view["view_phi"].allowed:  # the record without what identifies the patient
            patient = replace(patient, name=WITHHELD, mrn=WITHHELD, birth_date=WITHHELD, room="", bed="")
        decisions = {**view, **self.access.decide(user, record, RECORD_ACTIONS)}
        note_types, notes_refusal = self.note_types(user, patient)
        raw = self.store.transmissions(patient_id)
        series = [
            Series(code, display, unit, low, high, [(t["time"], float(t["value"])) for t in raw if t["code"] == code])
            for code, display, unit, low, high in observation_catalogue()
        ]
        history = self._history(user, patient) if decisions["view_history"].allowed else []
        return RecordView(
            patient,
            self.store.device_for(patient_id),
            series,
            self.store.notes_for(patient_id, newest_first=True),
            history,
            decisions,
            note_types,
            notes_refusal,
            self.alerts.for_patient(patient_id),
        )

    def identity_in_record(self, view: RecordView) -> Identity:
        """The open record's banner identity (identifiers withheld as the record withholds them)."""
        return identity_of(view.patient, self.clock().date())

    def note_types(self, user: SignedInUser, patient: Patient) -> tuple[tuple[str, ...], Decision | None]:
        """The note types the policies let this user write on this record, and, when none, why not."""
        decided = [
            self.access.decide_one(user, resources.patient_record(patient, note_type=t), "edit_clinical_notes")
            for t in NOTE_TYPES
        ]
        allowed = tuple(t for t, d in zip(NOTE_TYPES, decided, strict=True) if d.allowed)
        refusal = None if allowed else next((d for d in decided if d.reason), decided[-1])
        return allowed, refusal

    def save_note(self, user: SignedInUser, patient_id: str, note_type: str, text: str) -> dict[str, Any]:
        """Saves a note after the policies allowed that note type here; audited with it."""
        patient = self.patient(patient_id)
        if not text.strip():
            raise refuse("edit_clinical_notes", "The note is empty.")
        record = resources.patient_record(patient, note_type=note_type)
        decision = self.access.require(user, record, "edit_clinical_notes")
        now = self.clock().isoformat()
        note = {
            "id": f"n-{patient_id}-{uuid.uuid4().hex[:12]}",
            "patient_id": patient_id,
            "author_id": user.id,
            "note_type": note_type,
            "time": now,
            "text": text.strip(),
        }
        self.audit.event(user, record, decision, "note_saved", details={"note_id": note["id"], "note_type": note_type})
        self.store.add_note(note)
        self.store.drop_draft(user.id, patient_id)
        return note

    def draft(self, user: SignedInUser, patient_id: str) -> Draft | None:
        """The note this user was writing on this patient and has not saved, if any."""
        row = self.store.draft(user.id, patient_id)
        return Draft(row["note_type"] or "", row["text"], row["kept_at"] or "") if row else None

    def keep_draft(self, user: SignedInUser, patient_id: str, note_type: str, text: str) -> None:
        """Keeps what the user has typed (in the store, which only its owner can read) until it is
        saved as a note or cleared; an empty text drops the draft. Only the same user sees it again,
        and only in a record the policies open to them."""
        if not text.strip():
            self.store.drop_draft(user.id, patient_id)
            return
        row = {
            "user_id": user.id,
            "patient_id": patient_id,
            "note_type": note_type,
            "text": text,
            "kept_at": self.clock().isoformat(),
        }
        self.store.keep_draft(row)

    def _history(self, user: SignedInUser, patient: Patient) -> list[dict[str, Any]]:
        """History entries one by one: a delegate's history is limited by policy."""
        entries = {e["id"]: e for e in self.store.history_for(patient.id, newest_first=True)}
        visible = self.access.permitted(
            user, (resources.history_entry(patient, e["id"], e["category"]) for e in entries.values()), "view"
        )
        return [entries[r.id] for r in visible]


def _name_matches(name: str, words: list[str]) -> bool:
    """Every typed word begins one of the name's words ("sven bren" finds Sven Brenner)."""
    parts = name.lower().split()
    return all(any(p.startswith(w) for p in parts) for w in words)
