"""The personal workspace of a patient or a delegated caregiver: the patients the policies let them
see (their own record, or the one delegated to them), each patient's latest readings and alerts in
plain words, and the patient's own steps (consent, delegation) as the record offers them. No device
workflow, no clinicians' notes: this screen does not carry them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from PySide6.QtCore import QObject, Signal

from app.services.access import offered
from app.services.alerts import Alert
from app.services.patients import Series
from app.services.telemetry_units import amount
from app.viewmodels.record_vm import OpenRecord, RecordRefusal, RecordViewModel
from app.viewmodels.session_vm import SessionViewModel

# Each reading as a patient reads it (by IDC code); one not listed keeps its record name.
PLAIN_NAMES = {
    "MDC_IDC_STAT_HEART_RATE_MEAN": "Average heart rate",
    "MDC_IDC_STAT_BRADY_RV_PERCENT_PACED": "Share of heartbeats your device helped",
    "MDC_IDC_MSMT_BATTERY_VOLTAGE": "Battery strength",
    "MDC_IDC_MSMT_BATTERY_REMAINING_LONGEVITY": "Battery time left",
    "MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE": "The wire (lead) to your heart",
    "MDC_IDC_MSMT_LEADCHNL_RV_SENSING_INTR_AMPL": "How well the device hears your heart",
    "MDC_IDC_MSMT_LEADCHNL_RV_PACING_THRESHOLD_AMPLITUDE": "Energy needed to pace your heart",
    "MDC_IDC_STAT_AT_BURDEN_PERCENT": "Time in an irregular rhythm (AF)",
    "MDC_IDC_STAT_EPISODE_TOTAL_COUNT": "Fast or irregular heartbeat episodes",
}
# What an alert means for the patient, by tier (red: the clinic acts now; yellow: at the next review).
PLAIN_TIERS = {
    "red": "Your clinic has been alerted and will contact you. If you feel unwell, call your clinic "
    "or the emergency number.",
    "yellow": "Your clinic will look at this at your next review; nothing to do now unless you feel unwell.",
}

# Units whose symbol is a clinician's shorthand, in the words a patient reads.
PLAIN_UNITS = {"/min": "per minute"}

OWN_STEPS = ("record_consent", "delegate_access")  # shown here when the policies offer them
SEEN = "Your clinic has seen this and is following it up."


@dataclass(frozen=True)
class Reading:
    name: str  # in plain words
    value: str  # the latest value with its unit ("72 per minute", "1 episode")
    usual: str  # the usual range ("50 to 100 per minute", "up to 1 episode")
    in_range: bool
    when: str  # the date of the latest transmission


@dataclass(frozen=True)
class PlainAlert:
    what: str  # "Battery time left is outside the usual range since 2026-12-01"
    meaning: str  # what it means for the patient, in words
    urgent: bool


@dataclass(frozen=True)
class PersonalPage:
    patient_id: str
    name: str  # whose readings
    readings: list[Reading]
    alerts: list[PlainAlert]
    problem: str = ""  # why nothing is shown ("" when shown)


class PersonalViewModel(QObject):
    patients_changed = Signal(list)  # [(patient id, name)] the policies let this user see
    page_changed = Signal(object)  # PersonalPage | None

    def __init__(self, session: SessionViewModel, record: RecordViewModel) -> None:
        super().__init__()
        self.session, self.record = session, record
        self.patients = session.workstation.patients
        self.choices: list[tuple[str, str]] = []
        self.page: PersonalPage | None = None
        self.offers: dict[str, bool] = {}  # the patient's own steps the open record offers (consent, delegation)
        session.signed_in.connect(lambda _user: self.refresh())
        record.record_changed.connect(self._record)
        record.record_denied.connect(self._denied)

    def _here(self) -> bool:
        return self.session.user is not None and self.session.workspace.name == "personal"

    def refresh(self) -> None:
        """On sign-in: the patients this user may see (the policies' listing) and the first one's page."""
        user = self.session.user
        rows = self.patients.rows(user) if self._here() and user is not None else []
        self.choices = [(r.patient.id, r.patient.name) for r in rows]
        self.patients_changed.emit(self.choices)
        self.show(self.choices[0][0] if self.choices else "")

    def empty_text(self) -> str:
        return self.session.workspace.empty_list if self.session.user is not None else ""

    def show(self, patient_id: str) -> None:
        """One patient's page: the record opens as everywhere (decided and audited)."""
        if not self._here() or not patient_id:
            self.page, self.offers = None, {}
            self.page_changed.emit(None)
            return
        self.record.open(patient_id)

    def _record(self, record: OpenRecord | None) -> None:
        if not self._here():
            return
        if record is None:
            self.page, self.offers = None, {}
        else:
            view = record.view
            name = dict(self.choices).get(view.patient.id, view.patient.name)
            readings = [_reading(s) for s in view.series if s.points]
            self.page = PersonalPage(view.patient.id, name, readings, _alerts(view.alerts, view.series))
            self.offers = {step: offered(d) for step, d in view.decisions.items() if step in OWN_STEPS}
        self.page_changed.emit(self.page)

    def _denied(self, refusal: RecordRefusal) -> None:
        """A record not shown (a delegation ended meanwhile, say): the policies' reason."""
        if self._here():
            name = dict(self.choices).get(refusal.patient_id, "")
            self.page, self.offers = PersonalPage(refusal.patient_id, name, [], [], refusal.decision.reason), {}
            self.page_changed.emit(self.page)


def _reading(series: Series) -> Reading:
    when, value = series.points[-1]
    return Reading(
        PLAIN_NAMES.get(series.code, series.display),
        _plain(series, value),
        _usual(series),
        not series.out_of_range(value),
        _day(when),
    )


def _plain(series: Series, value: float) -> str:
    """A value as a patient reads it: the clinic's precision, the unit in words where its symbol
    is a clinician's shorthand ("61 per minute", not "61 /min")."""
    shown = series.shown(value)
    symbol = series.symbol
    return f"{amount(value, series.unit)} {PLAIN_UNITS[symbol]}" if symbol in PLAIN_UNITS else shown


def _usual(series: Series) -> str:
    """The usual range in words, the unit said once: "50 to 100 per minute"; from zero, "up to 1 episode"."""
    high = _plain(series, series.high)
    return f"up to {high}" if series.low == 0 else f"{amount(series.low, series.unit)} to {high}"


def _alerts(alerts: list[Alert], series: list[Series]) -> list[PlainAlert]:
    by_name = {s.display: PLAIN_NAMES.get(s.code, s.display) for s in series}
    shown = [a for a in alerts if a.open or a.ongoing]
    first = [a for i, a in enumerate(shown) if a.series not in {b.series for b in shown[:i]}]  # one a reading
    return [
        PlainAlert(
            f"{by_name.get(a.series, a.series)} needs a look since {_day(a.since)}",
            PLAIN_TIERS.get(a.tier, PLAIN_TIERS["yellow"]) if a.open else SEEN,
            a.tier == "red" and a.open,
        )
        for a in first
    ]


def _day(time: str) -> str:
    try:
        return datetime.fromisoformat(time).strftime("%d %B %Y").lstrip("0")
    except ValueError:
        return time[:10]
