"""The hospital administrator's changes beyond care teams (issue 18, part 7), on the real policies,
store and audit log: ending a delegation in force, and suspending and reinstating a staff account
(which then cannot sign in, in the policies' words), each refused where the policies refuse it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from app.services.access import AccessService, Refused
from app.services.resources import workstation
from app.services.store import MIGRATIONS, SCHEMA_VERSION, Store
from app.services.users import DEMO_PASSWORD, HospitalUsers, SignedInUser
from app.services.workstation import Workstation
from authz.audit import AuditWriteError
from tests.app.services.support import SEED_PATIENT, Clocks, reason, rule_id, store_dump, user
from tests.packaging.test_package import _back_to_schema

SUSPENDED = reason("workstation", "suspended_accounts_do_not_sign_in")[0]


def events(ws: Workstation, prefix: str) -> list[tuple[str, str, str, str]]:
    return [
        (r.event_type, r.principal_id, r.resource_kind, r.rule.partition("#")[2])
        for r in ws.audit.records()
        if r.kind == "event" and r.event_type.startswith(prefix)
    ]


def test_the_admin_ends_a_delegation_in_force_of_their_hospital(ws: Workstation, clocks: Clocks) -> None:
    hal = user(ws, "admin_hal")
    in_force = ws.admin.assignments(hal, clocks.now()).delegations
    seed = next(d for d in in_force if d["patient_id"] == SEED_PATIENT)
    assert ws.access.resolve(user(ws, "gina")).attributes["delegations"]
    assert ws.admin.revocation(hal, str(seed["id"])).allowed
    ws.admin.revoke_delegation(hal, str(seed["id"]))
    assert ws.store.delegation(str(seed["id"]))["revoked"]
    assert "delegations" not in ws.access.resolve(user(ws, "gina")).attributes  # her access ended now
    assert ws.patients.rows(user(ws, "gina")) == []
    assert seed["id"] not in [d["id"] for d in ws.admin.assignments(hal, clocks.now()).delegations]
    assert events(ws, "delegation_") == [
        ("delegation_revoked", "admin_hal", "patient_record", "admin_revokes_delegation")
    ]
    again = ws.admin.revocation(hal, str(seed["id"]))
    assert not again.allowed and again.reason == "This delegation has already been revoked."


def test_the_admin_ends_no_delegation_of_another_hospital_and_opens_no_chart(ws: Workstation, clocks: Clocks) -> None:
    other = ws.store.patients(["h2"])[0]
    delegation = {"id": "del-h2", "patient_id": other.id, "delegate_id": "gina", "granted_by": "dr_visiting"}
    ws.store.add_delegation(
        {**delegation, "patient_permission": True, "expires_at": clocks.in_days(3).isoformat(), "revoked": False}
    )
    hal = user(ws, "admin_hal")
    before = store_dump(ws)
    refused = ws.admin.revocation(hal, "del-h2")
    assert not refused.allowed and refused.reason == "This patient is at a hospital you do not administer."
    with pytest.raises(Refused, match="do not administer"):
        ws.admin.revoke_delegation(hal, "del-h2")
    assert store_dump(ws) == before and events(ws, "delegation_revoked") == []
    with pytest.raises(Refused, match="not patient charts"):  # revoking is all the admin does on a record
        ws.patients.open_record(hal, SEED_PATIENT)


def test_a_suspended_account_cannot_sign_in_until_reinstated(ws: Workstation, clocks: Clocks) -> None:
    hal = user(ws, "admin_hal")
    assert ws.admin.account_change(hal, "nurse_nia", "suspend_account").allowed
    assert not ws.admin.account_change(hal, "nurse_nia", "reinstate_account").allowed  # nothing to reinstate
    ws.admin.change_account(hal, "nurse_nia", "suspend_account")
    assert ws.store.suspended("nurse_nia")
    row = ws.store.db.conn.execute("SELECT suspended_by, suspended_at FROM suspensions").fetchone()
    assert row == ("admin_hal", clocks.now().isoformat())
    staff = {s["id"]: s for s in ws.admin.assignments(hal, clocks.now()).staff}
    assert staff["nurse_nia"]["suspended"] and not staff["dr_ben"]["suspended"]
    nia = ws.session.sign_in("nurse_nia", DEMO_PASSWORD)  # the password is right ...
    assert nia is not None and ws.session.sign_in_refusal(nia) == SUSPENDED  # ... the policies refuse her
    decision = ws.access.decide_one(nia, workstation(), "sign_in")
    assert decision.rule == rule_id("workstation", "suspended_accounts_do_not_sign_in")
    with pytest.raises(Refused, match="already suspended"):
        ws.admin.change_account(hal, "nurse_nia", "suspend_account")

    listed = [i for i, _ in ws.session.staff_choices()]  # the sign-in list still offers her, to say why
    assert "nurse_nia" in listed and "rm_gateway" not in listed

    ws.admin.change_account(hal, "nurse_nia", "reinstate_account")
    assert not ws.store.suspended("nurse_nia") and ws.session.sign_in_refusal(nia) == ""
    assert events(ws, "account_") == [
        ("account_suspended", "admin_hal", "account", "admin_suspends_and_reinstates_staff"),
        ("account_reinstated", "admin_hal", "account", "admin_suspends_and_reinstates_staff"),
    ]
    assert [r.details["account"] for r in ws.audit.records() if r.event_type.startswith("account_")] == [
        "nurse_nia",
        "nurse_nia",
    ]


def test_a_hospital_account_suspended_is_refused_before_it_is_admitted(ws: Workstation) -> None:
    """With the hospital's provider, the user is not admitted yet when the policies are asked: the
    suspension recorded in the store is what they see."""
    users = HospitalUsers(ws.store)
    access = AccessService(ws.engine, users.refresh)
    nia = SignedInUser("nurse_nia", "Nia Castell", ("nurse",), {"hospital_ids": ["h1"]})
    assert access.decide_one(nia, workstation(), "sign_in").allowed
    ws.store.suspend("nurse_nia", "admin_hal", "2026-12-03T10:00:00+00:00")
    assert users.refresh(nia).attributes == {"suspended": True}
    refused = access.decide_one(nia, workstation(), "sign_in")
    assert not refused.allowed and refused.reason == SUSPENDED


def test_the_admin_suspends_only_other_accounts_of_their_own_hospital(ws: Workstation) -> None:
    hal = user(ws, "admin_hal")
    before = store_dump(ws)
    cases = {
        "admin_hal": "your own account",
        "dr_visiting": "also works at a hospital you do not administer",  # h1 and h2
        "nurse_omar": "not on the staff of a hospital you administer",  # h2
        "gina": "not on the staff of a hospital you administer",
    }
    for account, words in cases.items():
        decision = ws.admin.account_change(hal, account, "suspend_account")
        assert not decision.allowed and words in decision.reason, account
        with pytest.raises(Refused, match=words):
            ws.admin.change_account(hal, account, "suspend_account")
    refused = ws.admin.account_change(user(ws, "co_cora"), "nurse_nia", "suspend_account")
    assert refused.reason == reason("account", "why_not_suspend", after='"hospital_admin" in P.roles')[0]
    assert ws.admin.account_change(hal, "nobody", "suspend_account").reason == "There is no staff account 'nobody'."
    assert store_dump(ws) == before and events(ws, "account_") == []


def test_the_suspensions_table_comes_with_schema_8_and_goes_with_the_packaging_tests_undoing(
    ws: Workstation, tmp_path: Path
) -> None:
    """The packaging upgrade test takes a store back to schema 3 by undoing each later migration
    (dropping what it created): that still works, and the store brings it back to 8 with the table."""
    assert SCHEMA_VERSION == 8 and MIGRATIONS[7].statements[0].startswith('CREATE TABLE "suspensions"')
    ws.store.suspend("nurse_nia", "admin_hal", "2026-12-03T10:00:00+00:00")
    path = ws.store.path
    ws.store.close()
    with sqlite3.connect(path) as conn:
        _back_to_schema(conn, 3)
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'suspensions'").fetchone() is None
    store = Store(path)
    assert (store.migrated_from, store.schema_version) == (3, SCHEMA_VERSION)
    assert store.suspensions() == {}  # an older release's store had no suspensions
    store.close()


def test_a_withdrawn_sign_in_is_refused_even_when_its_record_cannot_be_written(
    ws: Workstation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Access fails closed: a full audit disk does not keep a suspended user signed in."""
    nia = user(ws, "nurse_nia")
    assert ws.session.admission_withdrawn(nia) is None
    ws.admin.change_account(user(ws, "admin_hal"), "nurse_nia", "suspend_account")

    def full_disk(*_args: object) -> None:
        raise AuditWriteError("the audit log cannot be written: the disk is full")

    monkeypatch.setattr(ws.audit, "decisions", full_disk)
    refused = ws.session.admission_withdrawn(nia)
    assert refused is not None and not refused.allowed and refused.action == "sign_in"
