"""What the service-layer tests share: users as the directory knows them, clocks a test moves, a
dump of the whole store, the policies' own text (rules, actions, reasons), and one run of every
workflow as the real policies allow it."""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from app.services.compliance import REPORT_TYPES
from app.services.transmission_import import DEFAULT_ACCOUNT, TransmissionImport, service_account
from app.services.users import DEMO_PASSWORD, SignedInUser
from app.services.workstation import Workstation
from authz import Effect

POLICIES = Path(__file__).resolve().parents[3] / "policies"
SAMPLE_TRANSMISSIONS = Path(__file__).parent / "data" / "idco" / "idco_p04.hl7"  # an IHE PCD IDCO file
WHY = "Unconscious in the ER, pacemaker interrogation needed now"
EMERGENCY_PATIENT = "p03"  # flagged as an ER emergency in the demo data, hospital h1, Dr. Ben's
SEED_PATIENT = "p02"  # room 902: Dr. Aly attending, an Acme pacemaker, Gina her delegate


class Clocks:
    """The wall clock (UTC) and the monotonic clock a Workstation is given, moved by the test."""

    def __init__(self) -> None:
        self.wall = datetime.now(UTC)
        self.mono = 5000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, minutes: float = 0, *, days: float = 0) -> None:
        """Time passes: both clocks move."""
        step = timedelta(days=days, minutes=minutes)
        self.wall += step
        self.mono += step.total_seconds()

    def in_days(self, days: float) -> datetime:
        return self.wall + timedelta(days=days)


def tomorrow(ws: Workstation) -> str:
    """A date a firmware update may be scheduled for (YYYY-MM-DD), on the workstation's clock."""
    return (ws.firmware.clock().date() + timedelta(days=1)).isoformat()


def user(ws: Workstation, user_id: str) -> SignedInUser:
    """The user as the directory knows them (what sign-in returns, without the password's cost)."""
    staff = ws.store.staff(user_id)
    assert staff is not None, f"no demo user {user_id}"
    return ws.users.refresh(SignedInUser(user_id, staff["name"], (staff["role"],), {}))


def store_dump(ws: Workstation) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store, in a stable order."""
    conn: sqlite3.Connection = ws.store.db.conn
    tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}


def acme_device_of_aly(ws: Workstation, skip: tuple[str, ...] = ()) -> str:
    """A device of one of Dr. Aly's patients, made by Acme (eng_max's manufacturer), with no update yet."""
    for p in ws.store.patients(["h1"]):
        device = ws.store.device_for(p.id)
        if (
            "dr_aly" in p.assigned_physicians
            and device is not None
            and device["manufacturer_id"] == "m_acme"
            and not ws.store.firmware_updates_for(device["id"])
            and device["id"] not in skip
        ):
            return device["id"]
    raise AssertionError("the demo data has no such device")


def not_on_care_team(ws: Workstation, user_id: str, hospital_id: str = "h1") -> str:
    """A patient of that hospital whose care team does not include the user, not sealed."""
    return next(p.id for p in ws.store.patients([hospital_id]) if user_id not in p.care_team and not p.sealed)


# The policies' own text


@functools.cache
def resource_policies() -> dict[str, dict[str, Any]]:
    """Each resource kind's policy (policies/resources/*.yaml), parsed."""
    policies = {}
    for path in sorted((POLICIES / "resources").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and "resourcePolicy" in doc:
                policy = doc["resourcePolicy"]
                policies[policy["resource"]] = policy
    return policies


def rules(kind: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in resource_policies()[kind]["rules"]}


def policy_actions(kind: str) -> set[str]:
    """The actions some rule of the kind's policy names (a wildcard names none)."""
    return {a for r in resource_policies()[kind]["rules"] for a in r["actions"] if a != "*"}


def allowing_rules(kind: str, action: str) -> list[str]:
    """The ALLOW rules of the kind's policy that name the action and can allow it (explanation
    rules, whose condition is the literal false, never do)."""
    return [
        name
        for name, r in rules(kind).items()
        if r["effect"] == Effect.ALLOW.value
        and (action in r["actions"] or "*" in r["actions"])
        and r.get("condition", {}).get("match", {}).get("expr") != "false"
    ]


def policy_id(kind: str) -> str:
    return f"resource.{kind}.v{resource_policies()[kind]['version']}"


def rule_id(kind: str, name: str) -> str:
    """A rule as a decision names it."""
    assert name in rules(kind), f"{kind} has no rule {name}"
    return f"{policy_id(kind)}#{name}"


# {"reason": "...", "remedy": "..."}, and other keys of simple values after them ("listed": true)
_REASON = re.compile(
    r'\{\s*"reason"\s*:\s*("(?:[^"\\]|\\.)*")\s*(?:,\s*"remedy"\s*:\s*"(\w*)"\s*)?(?:,\s*"\w+"\s*:\s*[\w"]+\s*)*\}'
)


def _output_text(kind: str, rule: str) -> str:
    output = rules(kind)[rule]["output"]["when"]
    return " ".join(output.get(k, "") for k in ("ruleActivated", "conditionNotMet"))


def reasons(kind: str, rule: str) -> list[tuple[str, str]]:
    """Every (reason, remedy) a rule's output expressions can give, in the order written."""
    return [(json.loads(m.group(1)), m.group(2) or "") for m in _REASON.finditer(_output_text(kind, rule))]


def reason(kind: str, rule: str, after: str = "") -> tuple[str, str]:
    """The (reason, remedy) a rule's output gives: the first ``{"reason": ...}`` map of its
    output expressions, or the first one after ``after`` (the branch of a CEL conditional)."""
    text = _output_text(kind, rule)
    start = 0
    if after:
        assert after in text, f"{kind}#{rule} has no branch {after!r}"
        start = text.index(after) + len(after)
    found = _REASON.search(text, start)
    assert found, f"{kind}#{rule} gives no reason after {after!r}"
    return json.loads(found.group(1)), found.group(2) or ""


# Every workflow, as the real policies allow it


def run_every_workflow(ws: Workstation, clocks: Clocks, out: Path) -> None:
    """Each workflow of the app, through the services, by the users the policies allow it to, and
    every reader that asks the policies something. Raises if any step is refused."""
    u = {
        uid: user(ws, uid)
        for uid in ("dr_aly", "nurse_nia", "er_eli", "eng_max", "eng_vic", "co_cora", "admin_hal", "gina", "pt_p02")
    }
    aly, nia, eli, max_, vic, cora, hal, gina, pt = u.values()
    for who in u.values():
        assert ws.session.workspace(who).name

    # patients, records and notes
    assert ws.patients.rows(aly) and ws.patients.rows(gina)
    record = ws.patients.open_record(aly, SEED_PATIENT)
    assert record.note_types == ("full", "basic") and record.history
    ws.patients.save_note(aly, SEED_PATIENT, "full", "Lead impedance trend reviewed; no change needed.")
    ws.patients.save_note(aly, SEED_PATIENT, "basic", "Patient called, feeling well.")
    ws.patients.save_note(nia, "p01", "basic", "Wound check done, dry and clean.")
    ws.patients.open_record(gina, SEED_PATIENT)

    # remote-monitoring alerts: the physician acknowledges one, the nurse triages another
    ws.patients.alerts.acknowledge(aly, SEED_PATIENT, record.alerts[0].id)
    ws.patients.alerts.triage(nia, "p01", ws.patients.alerts.for_patient("p01")[0].id, "escalate_to_physician")

    # transmissions from a file, imported by the remote-monitoring gateway's service account
    gateway = service_account(ws.store, DEFAULT_ACCOUNT)
    assert gateway is not None
    TransmissionImport(ws.store, ws.access, ws.audit).import_file(gateway, SAMPLE_TRANSMISSIONS)

    # consent and exports
    ws.consents.record(
        aly, SEED_PATIENT, "export", "Patient p02 (signed on the tablet)", clocks.in_days(90), patients_word=True
    )
    ws.consents.record(pt, SEED_PATIENT, "export", "Patient p02", clocks.in_days(30))
    assert all(d.allowed or d.remedy == "complete_form" for d in ws.exports.offers(aly, SEED_PATIENT).values())
    ws.exports.export(
        aly,
        SEED_PATIENT,
        deidentified=False,
        reason="Referral to the electrophysiology clinic",
        fmt="fhir",
        directory=out,
    )
    flagged = ws.exports.export(max_, SEED_PATIENT, deidentified=True, reason="", fmt="json", directory=out)
    ws.exports.export(pt, SEED_PATIENT, deidentified=False, reason="", fmt="json", directory=out)

    # delegation, by the physician on the patient's word and by the patient
    assert ws.delegations.offer(aly, "p01").remedy == "complete_form"
    assert [c for c, _ in ws.delegations.caregivers(aly)] == ["gina"]
    granted = ws.delegations.grant(aly, "p01", "gina", clocks.in_days(30), patient_permission=True)
    ws.delegations.revoke(aly, granted.id)
    granted = ws.delegations.grant(pt, SEED_PATIENT, "gina", clocks.in_days(7), patient_permission=False)
    ws.delegations.revoke(pt, granted.id)

    # break-glass: the ER finds the patient (identity only), ended by the clinician, replaced by a
    # new one, and run out
    emergency = ws.store.patient(EMERGENCY_PATIENT)
    assert [i.patient_id for i in ws.patients.find_identities(eli, emergency.mrn[-5:]).matches] == [EMERGENCY_PATIENT]
    assert ws.patients.identity(max_, EMERGENCY_PATIENT) is None
    assert ws.break_glass.offer(eli, EMERGENCY_PATIENT).remedy == "complete_form"
    ws.break_glass.start(eli, EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    ws.patients.open_record(eli, EMERGENCY_PATIENT)
    ws.patients.save_note(eli, EMERGENCY_PATIENT, "emergency", "Device interrogated, pacing normal.")
    ws.break_glass.end(eli)
    ws.break_glass.start(eli, EMERGENCY_PATIENT, "BTG", WHY, DEMO_PASSWORD)
    ws.break_glass.start(eli, EMERGENCY_PATIENT, "ERTREAT", WHY + " (second look)", DEMO_PASSWORD)
    clocks.advance(61)
    assert ws.break_glass.active(eli) is None  # closed by the system: it ran out

    # firmware: the whole lifecycle on one device, a rejection on the seed's pending update
    assert ws.firmware.devices(max_) and ws.firmware.devices(aly)
    device = acme_device_of_aly(ws)
    ws.firmware.step(vic, "request_firmware_update", device, "4.3.0")
    ws.firmware.step(aly, "approve_firmware_update", device)
    ws.firmware.step(max_, "approve_firmware_update", device)
    ws.firmware.step(max_, "schedule_firmware_update", device, tomorrow(ws))
    assert ws.firmware.step(max_, "apply_firmware_update", device).state == "applied"
    ws.firmware.step(aly, "approve_firmware_update", "d-p02")
    ws.firmware.step(aly, "reject_firmware_update", "d-p02", "Patient prefers to wait for the clinic visit.")
    ws.firmware.step(aly, "request_firmware_update", "d-p02", "4.2.2")
    assert ws.firmware.decisions(aly, "d-p02")

    # compliance review, late justifications and reports
    queue = ws.compliance.queue(cora)
    assert ws.compliance.queue(hal)
    sessions = [i.event.record_id for i in queue if i.event.event_type == "break_glass_started"]
    assert len(sessions) == 3
    first, second, third = sessions
    assert ws.compliance.steps(cora, first)["remind"].allowed
    ws.compliance.annotate(cora, first, "remind", "Please add why the consulting route was not used.")
    assert ws.compliance.open_questions(eli)
    ws.compliance.annotate(eli, first, "add_late_justification", "Rhythm strip showed pauses of 6 s; no time.")
    ws.compliance.annotate(cora, first, "resolve_review", "Late justification accepted.")
    ws.compliance.annotate(cora, second, "accept_review", "Justified by the ER notes.")
    ws.compliance.annotate(cora, third, "reject_review", "Patient was stable by then.")
    ws.compliance.annotate(
        max_, flagged.audit_record_id, "add_late_justification", "Root-cause analysis of sensing drift"
    )
    ws.compliance.annotate(cora, flagged.audit_record_id, "accept_review", "Reason added, accepted.")
    for report_type in REPORT_TYPES:
        assert ws.compliance.report_types(cora, "h1")[report_type].allowed
        ws.compliance.report(cora, report_type, "h1")
    ws.compliance.report(hal, "usage", "h1")

    # the hospital admin's tools: staff, care teams and delegations in force; a nurse joins a care team and leaves it
    assert ws.admin.tools(hal).allowed and not ws.admin.tools(cora).allowed
    assert ws.admin.assignments(hal, ws.sessions.clock()).staff
    ws.admin.change_care_team(hal, "p04", "nurse_nia", "assign_care_team")
    ws.admin.change_care_team(hal, "p04", "nurse_nia", "remove_from_care_team")
    # ... ends a caregiver's delegation in force, and suspends a nurse's account and reinstates it
    granted = ws.delegations.grant(pt, SEED_PATIENT, "gina", clocks.in_days(7), patient_permission=False)
    assert ws.admin.revocation(hal, granted.id).allowed
    ws.admin.revoke_delegation(hal, granted.id)
    assert ws.admin.account_change(hal, "nurse_nia", "suspend_account").allowed
    ws.admin.change_account(hal, "nurse_nia", "suspend_account")
    ws.admin.change_account(hal, "nurse_nia", "reinstate_account")
