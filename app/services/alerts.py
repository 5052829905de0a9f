"""Remote-monitoring alerts: vendor-neutral rules (app/resources/alert_rules.yaml: lead impedance
out of range and a jump against the patient's own baseline, battery at elective replacement,
capture threshold rise, AF burden, sensing drop; red and yellow tiers) evaluated over a patient's
transmissions, each alert said in words (value, limit, since when), and the care team's
acknowledgement and triage of it. The limits are data: this module knows the kinds of rule, never
a number. Who may acknowledge or triage is the policies' (``acknowledge_alert``, ``triage_alert``
on the patient record); each is recorded in the audit log, then in the store."""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from . import resources
from .access import Refused, refuse
from .clinical import ClinicalService
from .store import Patient, observation_catalogue
from .telemetry_units import formatted
from .users import SignedInUser

RULES_FILE = Path(__file__).resolve().parents[1] / "resources" / "alert_rules.yaml"
TIERS = ("red", "yellow")  # most urgent first
KINDS = {  # what each kind of rule needs, besides id, code, tier and says
    "outside": ("low", "high"),
    "at_or_above": ("limit",),
    "at_or_below": ("limit",),
    "rise": ("amount",),
    "change_percent": ("percent",),
    "drop_percent": ("percent",),
}
BASELINE_KINDS = {"rise", "change_percent", "drop_percent"}
TIER_WORDS = {"red": "⚠ Red", "yellow": "▲ Yellow"}  # a symbol and a word, never colour alone
STATE_WORDS = {"new": "● New", "acknowledged": "✓ Acknowledged", "triaged": "✔ Triaged"}


class AlertRulesError(Exception):
    """The alert rules file cannot be used; the message names the file, the rule and the key."""


@dataclass(frozen=True)
class AlertRule:
    id: str
    code: str
    tier: str
    says: str
    when: str
    limits: Mapping[str, float]

    @property
    def needs_baseline(self) -> bool:
        return self.when in BASELINE_KINDS

    def met(self, value: float, baseline: float | None) -> bool:
        """Whether a reading meets the rule (a baseline rule with no baseline yet never does)."""
        lim = self.limits
        if self.when == "outside":
            return value < lim["low"] or value > lim["high"]
        if self.when == "at_or_above":
            return value >= lim["limit"]
        if self.when == "at_or_below":
            return value <= lim["limit"]
        if baseline is None:
            return False
        if self.when == "rise":
            return value - baseline >= lim["amount"]
        change = (value - baseline) / baseline * 100 if baseline else 0.0
        return abs(change) >= lim["percent"] if self.when == "change_percent" else -change >= lim["percent"]

    def finding(self, value: float, baseline: float | None, unit: str) -> str:
        """The reading against the limit, in words ("2231 Ω, above the limit of 2000 Ω")."""
        lim, shown = self.limits, formatted(value, unit)
        if self.when == "outside":
            side = "below" if value < lim["low"] else "above"
            return f"{shown}, {side} the normal range {_plain(lim['low'], unit)}–{formatted(lim['high'], unit)}"
        if self.when == "at_or_above":
            return f"{shown}, at or above the limit of {formatted(lim['limit'], unit)}"
        if self.when == "at_or_below":
            return f"{shown}, at or below the limit of {formatted(lim['limit'], unit)}"
        base = formatted(baseline or 0.0, unit)
        if self.when == "rise":
            return (
                f"{shown}, {formatted(value - (baseline or 0.0), unit)} above the patient's baseline of {base} "
                f"(limit +{formatted(lim['amount'], unit)})"
            )
        change = (value - baseline) / baseline * 100 if baseline else 0.0
        limit = f"±{lim['percent']:g} %" if self.when == "change_percent" else f"−{lim['percent']:g} %"
        signed = f"{change:+.0f}".replace("-", "−")
        return f"{shown}, {signed} % against the patient's baseline of {base} (limit {limit})"


@dataclass(frozen=True)
class AlertRules:
    """The rules, the baseline they compare with, and what a triage may conclude."""

    rules: tuple[AlertRule, ...]
    baseline_days: int
    min_readings: int
    dispositions: Mapping[str, str]  # code -> words

    @classmethod
    def load(cls, path: Path | None = None) -> AlertRules:
        """The rules of ``path`` (by default RULES_FILE); AlertRulesError naming the file, the rule
        and the key when wrong (the app then does not start, and says so)."""
        path = path or RULES_FILE
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise AlertRulesError(f"{path}: cannot be read as YAML: {exc}") from exc
        return cls.from_data(data, str(path))

    @classmethod
    def from_data(cls, data: Any, where: str = "the alert rules") -> AlertRules:
        if not isinstance(data, dict):
            raise AlertRulesError(f"{where}: expected a mapping with 'rules', 'baseline' and 'dispositions'")
        baseline = data.get("baseline") or {}
        days = _number(baseline.get("days"), f"{where}: baseline.days", whole=True)
        least = _number(baseline.get("min_readings"), f"{where}: baseline.min_readings", whole=True)
        rules = data.get("rules")
        if not isinstance(rules, list) or not rules:
            raise AlertRulesError(f"{where}: 'rules' must be a non-empty list")
        parsed = tuple(_rule(r, i, where) for i, r in enumerate(rules, 1))
        ids = [r.id for r in parsed]
        if len(set(ids)) != len(ids):
            raise AlertRulesError(
                f"{where}: rule ids must be unique; repeated: {sorted({i for i in ids if ids.count(i) > 1})}"
            )
        dispositions = data.get("dispositions")
        if not isinstance(dispositions, dict) or not dispositions:
            raise AlertRulesError(f"{where}: 'dispositions' must map each triage outcome to its words")
        return cls(parsed, int(days), int(least), {str(k): str(v) for k, v in dispositions.items()})


def _number(value: Any, where: str, whole: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or (whole and not isinstance(value, int)):
        raise AlertRulesError(f"{where}: expected {'a whole number' if whole else 'a number'}, got {value!r}")
    if value < 0:
        raise AlertRulesError(f"{where}: must not be negative, got {value!r}")
    return float(value)


def _rule(raw: Any, number: int, where: str) -> AlertRule:
    if not isinstance(raw, dict):
        raise AlertRulesError(f"{where}: rule {number} must be a mapping")
    name = f"{where}: rule {number} ({raw.get('id', 'no id')})"
    for key in ("id", "code", "tier", "says", "when"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise AlertRulesError(f"{name}: '{key}' is missing or not text")
    if raw["tier"] not in TIERS:
        raise AlertRulesError(f"{name}: 'tier' must be one of {', '.join(TIERS)}, got {raw['tier']!r}")
    if raw["when"] not in KINDS:
        raise AlertRulesError(f"{name}: 'when' must be one of {', '.join(KINDS)}, got {raw['when']!r}")
    known = {c for c, *_ in observation_catalogue()}
    if raw["code"] not in known:
        raise AlertRulesError(f"{name}: 'code' {raw['code']!r} is not a telemetry series of the store")
    limits = {key: _number(raw.get(key), f"{name}: '{key}'") for key in KINDS[raw["when"]]}
    if raw["when"] == "outside" and limits["low"] >= limits["high"]:
        raise AlertRulesError(f"{name}: 'low' must be below 'high'")
    return AlertRule(raw["id"], raw["code"], raw["tier"], raw["says"].strip(), raw["when"], limits)


@dataclass(frozen=True)
class AlertState:
    """What the care team did about an alert: nothing yet ("new"), acknowledged or triaged."""

    state: str = "new"
    by: str = ""  # user id
    at: str = ""  # ISO time
    disposition: str = ""  # for a triage: the outcome's code
    comment: str = ""


@dataclass(frozen=True)
class Alert:
    """One alert: a rule met by a run of consecutive transmissions, from ``since`` to ``last``."""

    patient_id: str
    rule: AlertRule
    series: str  # the series' display name
    unit: str  # UCUM
    value: float  # the latest reading of the run
    baseline: float | None
    since: str  # ISO time of the first transmission that met the rule
    last: str  # ISO time of the last one
    readings: int
    ongoing: bool  # the latest transmission still meets it
    state: AlertState = field(default_factory=AlertState)

    @property
    def id(self) -> str:
        """Stable while the rule and its start are: what an acknowledgement is recorded against."""
        return f"{self.rule.id}@{self.since}"

    @property
    def tier(self) -> str:
        return self.rule.tier

    @property
    def open(self) -> bool:
        """Still waiting for the care team: neither acknowledged nor triaged."""
        return self.state.state == "new"

    @property
    def finding(self) -> str:
        return self.rule.finding(self.value, self.baseline, self.unit)

    @property
    def since_text(self) -> str:
        return _when(self.since)

    @property
    def span(self) -> str:
        """Since when, and whether it still holds ("since 2026-11-28 02:00 UTC, still at the latest
        transmission (5 transmissions)"; one reading: "on 2026-11-22 02:00 UTC (one transmission)")."""
        if self.readings == 1:
            return f"on {self.since_text} ({'the latest transmission' if self.ongoing else 'one transmission'})"
        until = "still at the latest transmission" if self.ongoing else f"last on {_when(self.last)}"
        return f"since {self.since_text}, {until} ({self.readings} transmissions)"

    @property
    def words(self) -> str:
        """The whole alert in one sentence, as a tooltip or a screen reader says it."""
        return f"{TIER_WORDS[self.tier]} alert: {self.rule.says}: {self.finding}; {self.span}."


def _when(iso: str) -> str:
    return f"{iso[:16].replace('T', ' ')} UTC" if iso else ""


def _plain(value: float, unit: str) -> str:
    """A limit without its unit (the first of a range: "200–2000 Ω")."""
    return formatted(value, unit).split(" ")[0]


def evaluate(rules: AlertRules, patient_id: str, transmissions: Iterable[Mapping[str, Any]]) -> list[Alert]:
    """Every alert the rules find in a patient's transmissions, most urgent tier first, then the
    latest first. Pure: the same readings and rules always give the same alerts."""
    readings: dict[str, list[tuple[str, float]]] = {}
    for t in transmissions:
        readings.setdefault(t["code"], []).append((t["time"], float(t["value"])))
    names = {code: (display, unit) for code, display, unit, _, _ in observation_catalogue()}
    found: list[Alert] = []
    for rule in rules.rules:
        points = sorted(readings.get(rule.code, []))
        display, unit = names[rule.code]
        found.extend(_runs(rules, rule, patient_id, points, display, unit))
    return sorted(found, key=lambda a: (TIERS.index(a.tier), _descending(a.since)))


def _descending(iso: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in iso)


def _runs(
    rules: AlertRules, rule: AlertRule, patient_id: str, points: list[tuple[str, float]], display: str, unit: str
) -> list[Alert]:
    """The runs of consecutive readings that meet the rule. A baseline rule compares each reading of
    a run with the baseline the run started from, so a lasting change does not become its own baseline."""
    times = [datetime.fromisoformat(t) for t, _ in points]
    alerts: list[Alert] = []
    run: Alert | None = None
    for i, (time, value) in enumerate(points):
        baseline = (
            run.baseline if run is not None else _baseline(rules, points, times, i) if rule.needs_baseline else None
        )
        if rule.met(value, baseline):
            if run is None:
                run = Alert(patient_id, rule, display, unit, value, baseline, time, time, 1, False)
            else:
                run = replace(run, value=value, last=time, readings=run.readings + 1)
        elif run is not None:
            alerts.append(run)
            run = None
    if run is not None:
        alerts.append(replace(run, ongoing=True))
    return alerts


def _baseline(rules: AlertRules, points: list[tuple[str, float]], times: list[datetime], i: int) -> float | None:
    """The median of the readings in the ``baseline_days`` before reading ``i``, once there are enough."""
    start = times[i] - timedelta(days=rules.baseline_days)
    window = [v for (_, v), t in zip(points[:i], times[:i], strict=True) if start <= t < times[i]]
    return statistics.median(window) if len(window) >= max(rules.min_readings, 1) else None


@dataclass(frozen=True)
class AlertSummary:
    """A patient's alerts for the list: the open ones (most urgent first) and the rest."""

    alerts: tuple[Alert, ...] = ()

    @property
    def open(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if a.open)

    @property
    def level(self) -> str:
        """The most urgent tier among the open alerts: red, yellow, or none."""
        return self.open[0].tier if self.open else "none"

    @property
    def label(self) -> str:
        """The list's alert column: tier and state in words and symbols ("⚠ Red · 2 new")."""
        if self.open:
            return f"{TIER_WORDS[self.level]} · {len(self.open)} new"
        return f"✓ {len(self.alerts)} reviewed" if self.alerts else ""

    @property
    def reasons(self) -> str:
        """What the open alerts are, in words ("RV lead impedance out of range; ...")."""
        return "; ".join(dict.fromkeys(a.rule.says for a in self.open))

    @property
    def details(self) -> str:
        """Every alert in a sentence, with its state: the list's tooltip."""
        return "\n".join(f"{a.words} {state_words(a)}" for a in self.alerts)


def state_words(alert: Alert, dispositions: Mapping[str, str] | None = None, name: Callable[[str], str] = str) -> str:
    """The alert's state in words and a symbol ("✔ Triaged: Contact the patient, by Dr. Aly Rahman
    (dr_aly) at ..."); ``name`` names a user, ``dispositions`` words a triage's outcome."""
    s = alert.state
    if s.state == "new":
        return f"{STATE_WORDS['new']}: not yet acknowledged."
    outcome = f": {(dispositions or {}).get(s.disposition, s.disposition)}," if s.disposition else ""
    comment = f" “{s.comment}”" if s.comment else ""
    return f"{STATE_WORDS.get(s.state, s.state)}{outcome} by {name(s.by)} at {_when(s.at)}.{comment}"


class AlertService(ClinicalService):
    """The alerts of a patient, and what the care team records about them."""

    rules: AlertRules

    def __init__(self, *args: Any, rules: AlertRules | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rules = rules or AlertRules.load()
        self._found: dict[str, tuple[str | None, list[Alert]]] = {}  # patient -> (latest transmission, alerts)

    def for_patient(self, patient_id: str, latest: str | None | bool = False) -> list[Alert]:
        """The patient's alerts with what was done about each (the caller has decided the patient may
        be seen). ``latest``: the time of the patient's latest transmission when the caller has it
        (a list reads them all in one query); the rules run again only when it has changed."""
        if latest is False:
            latest = self.store.latest_transmission(patient_id)
        cached = self._found.get(patient_id)
        if cached is None or cached[0] != latest:
            cached = (latest, evaluate(self.rules, patient_id, self.store.transmissions(patient_id)))
            self._found[patient_id] = cached
        states = {}
        for row in self.store.alert_actions(patient_id):  # oldest first: the latest action wins
            states[row["alert_id"]] = AlertState(
                row["action"], row["user_id"], row["time"], row["disposition"] or "", row["comment"] or ""
            )
        return [replace(a, state=states.get(a.id, AlertState())) for a in cached[1]]

    def summary(self, patient_id: str, latest: str | None | bool = False) -> AlertSummary:
        return AlertSummary(tuple(self.for_patient(patient_id, latest)))

    def acknowledge(self, user: SignedInUser, patient_id: str, alert_id: str) -> Alert:
        """Records that the user has seen the alert, as the policies allow (Refused saying why)."""
        return self._record(user, patient_id, alert_id, "acknowledge_alert", "acknowledged")

    def triage(self, user: SignedInUser, patient_id: str, alert_id: str, disposition: str, comment: str = "") -> Alert:
        """Records what the alert was triaged to (one of the rules file's dispositions)."""
        if disposition not in self.rules.dispositions:
            raise refuse("triage_alert", "Choose what the triage concluded.")
        return self._record(user, patient_id, alert_id, "triage_alert", "triaged", disposition, comment.strip())

    def _record(
        self,
        user: SignedInUser,
        patient_id: str,
        alert_id: str,
        action: str,
        state: str,
        disposition: str = "",
        comment: str = "",
    ) -> Alert:
        patient = self._patient(action, patient_id)
        alert = next((a for a in self.for_patient(patient_id) if a.id == alert_id), None)
        if alert is None:
            raise refuse(action, "This alert is no longer in the record: open the record again.")
        record = _alert_resource(patient, alert, disposition)
        decision = self.access.decide_one(user, record, action)
        if not decision.allowed:
            self.audit.decisions(user, record, [decision])  # a refused attempt is on the record too
            raise Refused(decision)
        # identifiers and codes only (an audit record carries no clinical values or free text)
        details = {"alert_id": alert.id, "rule": alert.rule.id, "tier": alert.tier, "since": alert.since}
        if disposition:
            details["disposition"] = disposition
        event = self.audit.event(user, record, decision, f"alert_{state}", details=details)
        now = self.clock().isoformat()
        self.store.add_alert_action(
            {
                "id": f"aa-{uuid.uuid4().hex[:12]}",
                "patient_id": patient_id,
                "alert_id": alert.id,
                "action": state,
                "user_id": user.id,
                "time": now,
                "disposition": disposition,
                "comment": comment,
                "audit_id": event.record_id,
            }
        )
        return replace(alert, state=AlertState(state, user.id, now, disposition, comment))

    def _patient(self, action: str, patient_id: str) -> Patient:
        patient = self.store.patient(patient_id)
        if patient is None:
            raise refuse(action, "There is no such patient.")
        return patient


def _alert_resource(patient: Patient, alert: Alert, disposition: str) -> Any:
    extra: dict[str, Any] = {"alert_id": alert.id, "alert_tier": alert.tier}
    if disposition:
        extra["triage_disposition"] = disposition
    return resources.patient_record(patient, **extra)
