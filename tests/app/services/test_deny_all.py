"""With a policy set that denies everything, or with none loaded at all, every workflow of the app
is refused with a reason, and nothing is written: no row of the store, no file, no audit event or
annotation; only the decisions of the refusals the record screen audits.

Each workflow below is one the real policies allow on the same data (the first test holds them
to that), so every refusal comes from the policy set and not from the request."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from app.services.access import NO_POLICIES, Refused
from app.services.compliance import REPORT_TYPES, REVIEW_STEPS
from app.services.patients import NOTE_TYPES
from app.services.users import DEMO_PASSWORD
from app.services.workstation import Workstation
from authz import Effect
from tests.app.services.support import (
    EMERGENCY_PATIENT,
    SEED_PATIENT,
    WHY,
    Clocks,
    acme_device_of_aly,
    store_dump,
    tomorrow,
    user,
)

# Every resource kind the app asks the policies about.
KINDS = ("patient_record", "history_entry", "device", "audit_event", "compliance_report", "workstation", "account")
DENY_RULE = "deny_everything"
DENY_REASON = "This policy set denies everything (a test)."

Workflow = tuple[str, str, Callable[[Workstation, Clocks, Path], object]]


def event_of(ws: Workstation, event_type: str) -> str:
    return next(r.record_id for r in ws.audit.records() if r.event_type == event_type)


def device_in(ws: Workstation, state: str) -> str:
    return next(d["id"] for d in ws.store.devices() if (u := ws.firmware.current(d["id"])) and u.state == state)


def note_author(note_type: str) -> tuple[str, str]:
    """Who writes a note of this type, on which patient, under the real policies (and the prepared data)."""
    return {
        "emergency": ("er_eli", EMERGENCY_PATIENT),
        "full": ("dr_aly", SEED_PATIENT),
        "basic": ("nurse_nia", "p01"),
    }[note_type]


def _note(note_type: str) -> Callable[[Workstation, Clocks, Path], object]:
    author, patient = note_author(note_type)
    return lambda ws, clocks, out: ws.patients.save_note(user(ws, author), patient, note_type, "Seen and examined.")


def _review(step: str) -> Callable[[Workstation, Clocks, Path], object]:
    return lambda ws, clocks, out: ws.compliance.annotate(
        user(ws, "co_cora"), event_of(ws, "break_glass_started"), step, "Reviewed with the ER notes."
    )


def _report(report_type: str) -> Callable[[Workstation, Clocks, Path], object]:
    return lambda ws, clocks, out: ws.compliance.report(user(ws, "co_cora"), report_type, "h1")


# (what, the resource kind asked, the call): in an order in which the real policies allow every one
WORKFLOWS: list[Workflow] = [
    (
        "open a record",
        "patient_record",
        lambda ws, clocks, out: ws.patients.open_record(user(ws, "dr_aly"), SEED_PATIENT),
    ),
    *((f"save a {t} note", "patient_record", _note(t)) for t in NOTE_TYPES),
    ("end break-glass", "patient_record", lambda ws, clocks, out: ws.break_glass.end(user(ws, "er_eli"))),
    (
        "start break-glass",
        "patient_record",
        lambda ws, clocks, out: ws.break_glass.start(
            user(ws, "dr_aly"), EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD
        ),
    ),
    (
        "record consent",
        "patient_record",
        lambda ws, clocks, out: ws.consents.record(
            user(ws, "dr_aly"), SEED_PATIENT, "export", "Patient p02", clocks.in_days(30), patients_word=True
        ),
    ),
    (
        "grant a delegation",
        "account",
        lambda ws, clocks, out: ws.delegations.grant(
            user(ws, "dr_aly"), SEED_PATIENT, "gina", clocks.in_days(30), patient_permission=True
        ),
    ),
    (
        "revoke a delegation",
        "patient_record",
        lambda ws, clocks, out: ws.delegations.revoke(user(ws, "dr_aly"), "del-1"),
    ),
    (
        "export identified",
        "patient_record",
        lambda ws, clocks, out: ws.exports.export(
            user(ws, "dr_aly"),
            SEED_PATIENT,
            deidentified=False,
            reason="Referral to the electrophysiology clinic",
            fmt="fhir",
            directory=out,
        ),
    ),
    (
        "export de-identified",
        "patient_record",
        lambda ws, clocks, out: ws.exports.export(
            user(ws, "eng_max"),
            SEED_PATIENT,
            deidentified=True,
            reason="Root-cause analysis of sensing drift",
            fmt="json",
            directory=out,
        ),
    ),
    (
        "request a firmware update",
        "device",
        lambda ws, clocks, out: ws.firmware.step(
            user(ws, "dr_aly"), "request_firmware_update", acme_device_of_aly(ws), "4.3.0"
        ),
    ),
    (
        "approve a firmware update",
        "device",
        lambda ws, clocks, out: ws.firmware.step(user(ws, "dr_aly"), "approve_firmware_update", "d-p02"),
    ),
    (
        "reject a firmware update",
        "device",
        lambda ws, clocks, out: ws.firmware.step(user(ws, "dr_aly"), "reject_firmware_update", "d-p02", "Not now."),
    ),
    (
        "schedule a firmware update",
        "device",
        lambda ws, clocks, out: ws.firmware.step(
            user(ws, "eng_max"), "schedule_firmware_update", device_in(ws, "approved"), tomorrow(ws)
        ),
    ),
    (
        "mark a firmware update applied",
        "device",
        lambda ws, clocks, out: ws.firmware.step(
            user(ws, "eng_max"), "apply_firmware_update", device_in(ws, "scheduled")
        ),
    ),
    *((f"review: {step}", "audit_event", _review(step)) for step in REVIEW_STEPS),
    (
        "late justification of a break-glass",
        "audit_event",
        lambda ws, clocks, out: ws.compliance.annotate(
            user(ws, "er_eli"),
            event_of(ws, "break_glass_started"),
            "add_late_justification",
            "Pauses of 6 s on the strip.",
        ),
    ),
    (
        "late justification of an export",
        "audit_event",
        lambda ws, clocks, out: ws.compliance.annotate(
            user(ws, "eng_max"), event_of(ws, "export"), "add_late_justification", "Root-cause analysis of drift."
        ),
    ),
    *((f"report: {t}", "compliance_report", _report(t)) for t in REPORT_TYPES),
    (
        "usage report by the admin",
        "compliance_report",
        lambda ws, clocks, out: ws.compliance.report(user(ws, "admin_hal"), "usage", "h1"),
    ),
]


@pytest.fixture
def prepared(make_ws: Callable[..., Workstation], clocks: Clocks, tmp_path: Path) -> Path:
    """A data directory where every workflow has something to act on: consent for p02, eng_max's
    flagged export, er_eli's emergency access to p03 (running), an update approved by both and one
    scheduled. Closed, to be copied."""
    ws = make_ws("prepared")
    aly, max_, vic = user(ws, "dr_aly"), user(ws, "eng_max"), user(ws, "eng_vic")
    ws.consents.record(aly, SEED_PATIENT, "export", "Patient p02", clocks.in_days(90), patients_word=True)
    ws.exports.export(max_, SEED_PATIENT, deidentified=True, reason="", fmt="json", directory=tmp_path / "setup")
    ws.break_glass.start(user(ws, "er_eli"), EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    approved = acme_device_of_aly(ws)
    scheduled = acme_device_of_aly(ws, skip=(approved,))
    for device in (approved, scheduled):
        ws.firmware.step(vic, "request_firmware_update", device, "4.3.0")
        ws.firmware.step(aly, "approve_firmware_update", device)
        ws.firmware.step(max_, "approve_firmware_update", device)
    ws.firmware.step(max_, "schedule_firmware_update", scheduled, tomorrow(ws))
    ws.store.close()
    ws.chain.close()
    return ws.data_dir


def copy_of(prepared: Path, name: str) -> Path:
    return Path(shutil.copytree(prepared, prepared.parent / name))


def deny_all_policies(directory: Path, with_reason: bool) -> Path:
    """One policy per resource kind the app uses, each denying every action to every role."""
    directory.mkdir()
    output = (
        f'\n      output:\n        when:\n          ruleActivated: \'{{"reason": "{DENY_REASON}"}}\''
        if with_reason
        else ""
    )
    for kind in KINDS:
        (directory / f"{kind}.yaml").write_text(f"""apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: {kind}
  version: default
  rules:
    - name: {DENY_RULE}
      actions: ["*"]
      effect: EFFECT_DENY
      roles: ["*"]{output}
""")
    return directory


def test_every_workflow_here_is_one_the_real_policies_allow(
    prepared: Path, make_ws: Callable[..., Workstation], clocks: Clocks, tmp_path: Path
) -> None:
    ws = make_ws(data_dir=copy_of(prepared, "allowed"))
    for what, _kind, run in WORKFLOWS:
        try:
            run(ws, clocks, tmp_path / "exports")
        except Refused as refused:
            raise AssertionError(f"{what}: {refused.decision.reason}") from None
    assert len(list((tmp_path / "exports").iterdir())) == 2


@pytest.mark.parametrize("policy_set", ["deny-all", "deny-all-without-reasons", "none-loaded"])
def test_every_workflow_is_refused_and_writes_nothing(
    prepared: Path, make_ws: Callable[..., Workstation], clocks: Clocks, tmp_path: Path, policy_set: str
) -> None:
    data = copy_of(prepared, policy_set)
    if policy_set == "none-loaded":
        ws = make_ws(data_dir=data)
        ws.access.engine = lambda: None  # as with a policy server and no bundle yet
    else:
        policies = deny_all_policies(tmp_path / "policies", with_reason=policy_set == "deny-all")
        ws = make_ws(data_dir=data, policies=policies)
    out = tmp_path / "exports"
    rows_before, audit_before = store_dump(ws), [r.record_id for r in ws.audit.records()]

    for what, kind, run in WORKFLOWS:
        with pytest.raises(Refused) as refused:
            run(ws, clocks, out)
        decision = refused.value.decision
        assert not decision.allowed and decision.reason.strip(), what
        if policy_set == "none-loaded":
            assert (decision.reason, decision.policy, decision.rule) == (NO_POLICIES, "", ""), what
        else:
            assert decision.policy == f"resource.{kind}.vdefault", what
            assert decision.rule == f"resource.{kind}.vdefault#{DENY_RULE}", what
            if policy_set == "deny-all":
                assert decision.reason == DENY_REASON, what
            else:  # the engine says plainly that the rule gave no reason
                assert decision.reason == f"Refused by rule {decision.rule}, which gives no reason.", what

    assert store_dump(ws) == rows_before
    assert not out.exists() or list(out.iterdir()) == []
    added = [r for r in ws.audit.records() if r.record_id not in audit_before]
    assert [(r.kind, r.action, r.effect, r.patient_id) for r in added] == [
        ("decision", "view", Effect.DENY.value, SEED_PATIENT),  # the refused record, as opening one is audited
        ("decision", "view_phi", Effect.DENY.value, SEED_PATIENT),
    ]
    assert ws.chain.verify().ok


@pytest.mark.parametrize("policy_set", ["deny-all", "none-loaded"])
def test_nothing_is_shown_or_offered(
    prepared: Path, make_ws: Callable[..., Workstation], tmp_path: Path, policy_set: str
) -> None:
    data = copy_of(prepared, policy_set)
    if policy_set == "none-loaded":
        ws = make_ws(data_dir=data)
        ws.access.engine = lambda: None
    else:
        ws = make_ws(data_dir=data, policies=deny_all_policies(tmp_path / "policies", with_reason=True))
    expected = DENY_REASON if policy_set == "deny-all" else NO_POLICIES
    for uid in ("dr_aly", "nurse_nia", "er_eli", "eng_max", "co_cora", "admin_hal", "gina", "pt_p02"):
        who = user(ws, uid)
        workspace = ws.session.workspace(who)
        assert workspace.name == "" and workspace.decision.reason == expected
        assert ws.patients.rows(who) == [] and ws.firmware.devices(who) == [] and ws.compliance.queue(who) == []
        assert ws.delegations.caregivers(who) == [] and ws.compliance.open_questions(who) == []
        offers = [
            ws.break_glass.offer(who, EMERGENCY_PATIENT, "ETREAT", WHY),
            ws.delegations.offer(who, SEED_PATIENT),
            ws.consents.offer(who, SEED_PATIENT),
            *ws.exports.offers(who, SEED_PATIENT).values(),
            *ws.firmware.decisions(who, "d-p02").values(),
            *ws.compliance.steps(who, event_of(ws, "break_glass_started")).values(),
            *ws.compliance.report_types(who, "h1").values(),
        ]
        assert all(not d.allowed and d.reason == expected and d.remedy == "" for d in offers), uid
