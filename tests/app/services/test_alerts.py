"""Alert rules over the telemetry (app/resources/alert_rules.yaml, app/services/alerts.py): each
rule of the thresholds file on readings made for it, the patient's own baseline, the limits read as
data (a changed file changes the alerts, a wrong one is refused naming file, rule and key), and the
care team's acknowledgement and triage, decided by the policies and recorded in the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.services.access import Refused
from app.services.alerts import RULES_FILE, AlertRules, AlertRulesError, AlertSummary, evaluate
from app.services.workstation import Workstation
from tests.app.services.support import SEED_PATIENT, user

IMPEDANCE = "MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE"
LONGEVITY = "MDC_IDC_MSMT_BATTERY_REMAINING_LONGEVITY"
THRESHOLD = "MDC_IDC_MSMT_LEADCHNL_RV_PACING_THRESHOLD_AMPLITUDE"
AF_BURDEN = "MDC_IDC_STAT_AT_BURDEN_PERCENT"
SENSING = "MDC_IDC_MSMT_LEADCHNL_RV_SENSING_INTR_AMPL"
START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def day(n: int) -> str:
    return (START + timedelta(days=n)).isoformat()


def readings(code: str, values: list[float]) -> list[dict[str, Any]]:
    """One transmission a day from START, of one series."""
    return [{"time": day(i), "code": code, "value": v} for i, v in enumerate(values)]


@pytest.fixture(scope="module")
def rules() -> AlertRules:
    return AlertRules.load()


def found(rules: AlertRules, rows: list[dict[str, Any]]) -> list[tuple[str, str, str, int, bool]]:
    """(rule, tier, since, readings, ongoing) of each alert."""
    return [(a.rule.id, a.tier, a.since, a.readings, a.ongoing) for a in evaluate(rules, "p1", rows)]


def test_the_rules_file_has_every_kind_of_alert_the_clinic_asked_for(rules: AlertRules) -> None:
    kinds = {r.id: (r.code, r.tier) for r in rules.rules}
    assert kinds["lead_impedance_out_of_range"] == (IMPEDANCE, "red")
    assert kinds["lead_impedance_jump"][0] == IMPEDANCE
    assert kinds["battery_elective_replacement"] == (LONGEVITY, "red")
    assert kinds["capture_threshold_rise"][0] == THRESHOLD
    assert kinds["af_burden"][0] == AF_BURDEN
    assert kinds["sensing_drop"][0] == SENSING
    assert {t for _, t in kinds.values()} == {"red", "yellow"}


def test_lead_impedance_out_of_range_is_red_from_the_first_reading_out_and_says_value_limit_since(
    rules: AlertRules,
) -> None:
    values = [520.0] * 10 + [2230.0, 2250.0]
    alerts = evaluate(rules, "p1", readings(IMPEDANCE, values))
    red = next(a for a in alerts if a.rule.id == "lead_impedance_out_of_range")
    assert (red.tier, red.since, red.last, red.readings, red.ongoing) == ("red", day(10), day(11), 2, True)
    assert red.finding == "2250 Ω, above the normal range 200–2000 Ω"
    assert red.words == (
        "⚠ Red alert: RV lead impedance out of range: 2250 Ω, above the normal range 200–2000 Ω; "
        "since 2026-03-11 02:00 UTC, still at the latest transmission (2 transmissions)."
    )
    assert alerts[0] is red  # red first


def test_an_impedance_jump_is_judged_against_the_patients_own_baseline(rules: AlertRules) -> None:
    # 900 Ω is inside the normal range, but 80 % above this patient's 500 Ω
    rows = readings(IMPEDANCE, [500.0] * 8 + [900.0, 910.0, 505.0])
    assert found(rules, rows) == [("lead_impedance_jump", "yellow", day(8), 2, False)]
    jump = evaluate(rules, "p1", rows)[0]
    assert jump.finding == "910 Ω, +82 % against the patient's baseline of 500 Ω (limit ±30 %)"
    assert jump.span == "since 2026-03-09 02:00 UTC, last on 2026-03-10 02:00 UTC (2 transmissions)"
    # the same readings for a patient whose baseline is 850 Ω: no jump
    assert found(rules, readings(IMPEDANCE, [850.0] * 8 + [900.0, 910.0])) == []


def test_a_baseline_rule_says_nothing_before_the_patient_has_a_baseline(rules: AlertRules) -> None:
    assert rules.min_readings == 5
    assert found(rules, readings(IMPEDANCE, [500.0] * 4 + [900.0])) == []  # 4 readings before: no baseline
    assert found(rules, readings(IMPEDANCE, [500.0] * 5 + [900.0]))[0][0] == "lead_impedance_jump"
    # only the last baseline.days count: readings older than 14 days are not the baseline
    old = [{"time": (START - timedelta(days=30 - i)).isoformat(), "code": IMPEDANCE, "value": 500.0} for i in range(5)]
    assert found(rules, [*old, *readings(IMPEDANCE, [900.0])]) == []


def test_a_lasting_change_does_not_become_its_own_baseline(rules: AlertRules) -> None:
    """Twelve days at 900 Ω after 500 Ω: one alert for all twelve, judged against 500 Ω."""
    rows = readings(IMPEDANCE, [500.0] * 6 + [900.0] * 12)
    assert found(rules, rows) == [("lead_impedance_jump", "yellow", day(6), 12, True)]


def test_battery_at_elective_replacement_is_red_and_low_longevity_yellow_before_it(rules: AlertRules) -> None:
    rows = readings(LONGEVITY, [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.9])
    assert found(rules, rows) == [
        ("battery_elective_replacement", "red", day(5), 2, True),
        ("battery_plan_replacement", "yellow", day(2), 5, True),
    ]
    eri = evaluate(rules, "p1", rows)[0]
    assert eri.finding == "3 months, at or below the limit of 3 months"


def test_capture_threshold_rise_against_baseline_and_a_high_threshold(rules: AlertRules) -> None:
    rows = readings(THRESHOLD, [0.75] * 6 + [1.9, 2.6])
    assert found(rules, rows) == [
        ("capture_threshold_high", "red", day(7), 1, True),
        ("capture_threshold_rise", "yellow", day(6), 2, True),
    ]
    rise = next(a for a in evaluate(rules, "p1", rows) if a.rule.id == "capture_threshold_rise")
    assert rise.finding == "2.60 V, 1.85 V above the patient's baseline of 0.75 V (limit +1.00 V)"
    assert found(rules, readings(THRESHOLD, [0.75] * 6 + [1.7])) == []  # +0.95 V: under the limit


def test_af_burden_each_episode_is_its_own_alert(rules: AlertRules) -> None:
    rows = readings(AF_BURDEN, [1.0, 1.2, 9.5, 0.8, 0.9, 12.0, 4.9])
    assert found(rules, rows) == [("af_burden", "yellow", day(5), 1, False), ("af_burden", "yellow", day(2), 1, False)]
    assert evaluate(rules, "p1", rows)[0].span == "on 2026-03-06 02:00 UTC (one transmission)"


def test_a_sensing_drop_against_baseline(rules: AlertRules) -> None:
    rows = readings(SENSING, [11.0] * 6 + [6.0, 5.5])
    assert found(rules, rows) == [("sensing_drop", "yellow", day(6), 2, True)]
    assert evaluate(rules, "p1", rows)[0].finding.startswith("5.5 mV, −50 % against the patient's baseline of 11.0 mV")
    assert found(rules, readings(SENSING, [11.0] * 6 + [7.0])) == []  # −36 %: under the limit


def test_the_limits_are_data_a_changed_file_changes_the_alerts(tmp_path: Path) -> None:
    data = yaml.safe_load(RULES_FILE.read_text())
    af = next(r for r in data["rules"] if r["id"] == "af_burden")
    af["limit"], af["tier"] = 15, "red"
    changed = tmp_path / "alert_rules.yaml"
    changed.write_text(yaml.safe_dump(data))
    rows = readings(AF_BURDEN, [1.0, 9.5, 16.0])
    assert found(AlertRules.load(changed), rows) == [("af_burden", "red", day(2), 1, True)]
    assert [a.since for a in evaluate(AlertRules.load(), "p1", rows)] == [day(1)]  # one run: days 1 and 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["rules"][2].update(tier="orange"), "rule 3 (battery_elective_replacement): 'tier' must be one of"),
        (lambda d: d["rules"][0].pop("high"), "rule 1 (lead_impedance_out_of_range): 'high': expected a number"),
        (lambda d: d["rules"][0].update(low=3000), "rule 1 (lead_impedance_out_of_range): 'low' must be below 'high'"),
        (lambda d: d["rules"][7].update(when="sometimes"), "rule 8 (sensing_drop): 'when' must be one of"),
        (lambda d: d["rules"][1].update(code="MDC_IDC_NO_SUCH"), "is not a telemetry series"),
        (lambda d: d["rules"][4].update(id="battery_elective_replacement"), "rule ids must be unique"),
        (lambda d: d["baseline"].update(days="two weeks"), "baseline.days: expected a whole number"),
        (lambda d: d.pop("dispositions"), "'dispositions' must map"),
    ],
)
def test_a_wrong_rules_file_is_refused_naming_the_file_the_rule_and_the_key(
    tmp_path: Path, change: Any, message: str
) -> None:
    data = yaml.safe_load(RULES_FILE.read_text())
    change(data)
    wrong = tmp_path / "alert_rules.yaml"
    wrong.write_text(yaml.safe_dump(data))
    with pytest.raises(AlertRulesError) as refused:
        AlertRules.load(wrong)
    assert str(refused.value).startswith(str(wrong)) and message in str(refused.value)


def test_the_demo_hospital_shows_each_kind_of_alert(ws: Workstation) -> None:
    found_rules = {a.rule.id for p in ws.store.patients() for a in ws.patients.alerts.for_patient(p.id)}
    assert {
        "lead_impedance_out_of_range",
        "lead_impedance_jump",
        "battery_elective_replacement",
        "capture_threshold_rise",
        "af_burden",
        "sensing_drop",
    } <= found_rules


def test_acknowledge_and_triage_are_decided_by_the_policies_and_audited(ws: Workstation) -> None:
    aly, nia, gina = user(ws, "dr_aly"), user(ws, "nurse_nia"), user(ws, "gina")
    service = ws.patients.alerts
    red = service.for_patient(SEED_PATIENT)[0]
    assert red.tier == "red" and red.open
    done = service.acknowledge(aly, SEED_PATIENT, red.id)
    assert (done.state.state, done.state.by) == ("acknowledged", "dr_aly")
    event = [r for r in ws.audit.records() if r.event_type == "alert_acknowledged"][-1]
    assert (event.principal_id, event.action, event.effect, event.patient_id) == (
        "dr_aly",
        "acknowledge_alert",
        "EFFECT_ALLOW",
        SEED_PATIENT,
    )
    assert event.details == {"alert_id": red.id, "rule": red.rule.id, "tier": "red", "since": red.since}
    summary = AlertSummary(tuple(service.for_patient(SEED_PATIENT)))
    assert red.id not in [a.id for a in summary.open]  # off the list's count, kept in the record

    # a delegate reads the record but does not act on alerts: refused in the policies' words, and recorded
    with pytest.raises(Refused) as refused:
        service.acknowledge(gina, SEED_PATIENT, summary.open[0].id)
    assert "care team" in str(refused.value)
    denied = list(ws.audit.records())[-1]
    assert (denied.kind, denied.action, denied.principal_id, denied.effect) == (
        "decision",
        "acknowledge_alert",
        "gina",
        "EFFECT_DENY",
    )

    # a nurse triages, but closing with no action is the physician's: she escalates instead
    p01 = service.for_patient("p01")[0]
    with pytest.raises(Refused) as refused:
        service.triage(nia, "p01", p01.id, "no_action")
    assert "physician's decision" in str(refused.value)
    escalated = service.triage(nia, "p01", p01.id, "escalate_to_physician", "  AF again, on anticoagulation  ")
    assert (escalated.state.state, escalated.state.disposition) == ("triaged", "escalate_to_physician")
    assert [(a.state.state, a.state.comment) for a in service.for_patient("p01") if a.id == p01.id] == [
        ("triaged", "AF again, on anticoagulation")
    ]
    triaged = [r for r in ws.audit.records() if r.event_type == "alert_triaged"][-1]
    assert triaged.details["disposition"] == "escalate_to_physician" and "comment" not in triaged.details
    with pytest.raises(Refused, match="Choose what the triage concluded"):
        service.triage(aly, "p01", p01.id, "")
    with pytest.raises(Refused, match="no longer in the record"):
        service.acknowledge(aly, "p01", "af_burden@1999-01-01T00:00:00+00:00")
