"""The hospital administrator's tools (issue 18, part 7), driven as the admin does: the staff, the
care teams and the delegations in force of their hospital; adding and removing a care team
member, ending a delegation and suspending or reinstating a staff account, each decided by the
policies (a refusal in their words), confirmed where it stops someone's access, and audited; and
the tables fitting a 1400x900 window."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QTableWidget

from app.services.users import DEMO_PASSWORD
from app.views.main_window import MainWindow
from tests.app.helpers import choose, click, click_cell, click_confirmed, sign_in
from tests.app.services.support import reason, user

SUSPENDED = reason("workstation", "suspended_accounts_do_not_sign_in")[0]


def admin_tab(qtbot, window: MainWindow) -> int:  # noqa: ANN001
    """The Administration tab, chosen with its shortcut (Alt+A) as the admin does."""
    tabs = window.compliance
    index = tabs.indexOf(window.admin)
    assert index >= 0
    qtbot.keyClick(tabs, Qt.Key.Key_A, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: tabs.currentWidget() is window.admin)
    return index


def test_the_admin_assigns_and_removes_care_team_members_each_decided_and_audited(qtbot, window: MainWindow) -> None:
    ws = window.vms.session.workstation
    sign_in(qtbot, window, "admin_hal")
    admin_tab(qtbot, window)
    view = window.admin
    staff = [view.staff.item(i, 1).text() for i in range(view.staff.rowCount())]
    assert "dr_ben" in staff and "nurse_nia" in staff and "nurse_omar" not in staff  # h1 only
    p04 = ws.store.patient("p04")
    choose(view.patient, "p04")
    team = [view.team.item(i).text() for i in range(view.team.count())]
    assert team == [ws.session.person(m) for m in p04.care_team] and "nurse_nia" not in p04.care_team
    nia = ws.session.sign_in("nurse_nia", DEMO_PASSWORD)
    assert "p04" not in [r.patient.id for r in ws.patients.rows(nia)]

    choose(view.member, "co_cora")  # a compliance officer is no care team member
    click(qtbot, view.add)
    assert view.message.text() == "Care teams are nurses and physicians: this account has neither role."
    choose(view.member, "nurse_nia")
    click(qtbot, view.add)
    assert view.message.text() == "Done, and recorded in the audit log."
    assert "nurse_nia" in ws.store.patient("p04").care_team
    assert ws.session.person("nurse_nia") in [view.team.item(i).text() for i in range(view.team.count())]
    assert "p04" in [r.patient.id for r in ws.patients.rows(nia)]  # the policies read the team as stored
    click(qtbot, view.add)
    assert "Already on the care team" in view.message.text()
    click(qtbot, view.remove)
    assert "nurse_nia" not in ws.store.patient("p04").care_team
    changes = [
        (r.event_type, r.details["member"], r.principal_id, r.resource_kind)
        for r in ws.audit.records()
        if r.event_type.startswith("care_team_")
    ]
    assert changes == [
        ("care_team_assigned", "nurse_nia", "admin_hal", "care_team"),
        ("care_team_removed", "nurse_nia", "admin_hal", "care_team"),
    ]
    assert "p04" not in [r.patient.id for r in ws.patients.rows(nia)]


def test_the_delegations_in_force_are_listed_by_name(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "admin_hal")
    admin_tab(qtbot, window)
    view = window.admin
    rows = [[view.delegations.item(i, j).text() for j in range(4)] for i in range(view.delegations.rowCount())]
    p02 = window.vms.session.workstation.store.patient("p02")
    assert any(r[0] == f"{p02.name} ({p02.mrn})" and "(gina)" in r[1] for r in rows), rows


def test_only_the_admin_gets_the_administration_tab(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "co_cora")
    assert window.compliance.indexOf(window.admin) == -1
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "admin_hal")
    assert window.compliance.indexOf(window.admin) == 2
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "co_cora")  # gone again with the next user
    assert window.compliance.indexOf(window.admin) == -1


def row_of(table: QTableWidget, column: int, text: str) -> int:
    rows = [i for i in range(table.rowCount()) if text in table.item(i, column).text()]
    assert len(rows) == 1, (text, [table.item(i, column).text() for i in range(table.rowCount())])
    return rows[0]


def test_the_admin_ends_a_delegation_in_force_once_confirmed(qtbot, window: MainWindow) -> None:
    ws = window.vms.session.workstation
    sign_in(qtbot, window, "admin_hal")
    admin_tab(qtbot, window)
    view = window.admin
    assert not view.revoke.isEnabled()  # nothing chosen yet
    p02 = ws.store.patient("p02")
    click_cell(qtbot, view.delegations, row_of(view.delegations, 0, p02.mrn))
    click(qtbot, view.revoke)
    asked = view.confirmation
    qtbot.waitUntil(asked.isVisible)
    gina = ws.session.person("gina")
    assert f"{p02.name} ({p02.mrn})" in asked.text() and gina in asked.text() and "(gina)" in gina
    click(qtbot, asked.cancel_button)  # Cancel: nothing happens
    assert ws.store.delegations_for("gina") and view.delegations.rowCount() == 1

    click_confirmed(qtbot, view.revoke, view)
    assert view.message.text() == "Done, and recorded in the audit log."
    assert ws.store.delegations_for("gina") == [] and view.delegations.rowCount() == 0
    revoked = [r for r in ws.audit.records() if r.event_type == "delegation_revoked"]
    assert [(r.principal_id, r.patient_id, r.details["delegate_id"]) for r in revoked] == [("admin_hal", "p02", "gina")]
    assert revoked[0].rule.endswith("#admin_revokes_delegation")
    click(qtbot, window.switch_user)
    gina = ws.session.sign_in("gina", DEMO_PASSWORD)
    assert gina is not None and ws.patients.rows(gina) == []  # her access ended at once


def test_the_admin_suspends_an_account_which_then_cannot_sign_in_until_reinstated(qtbot, window: MainWindow) -> None:
    ws = window.vms.session.workstation
    sign_in(qtbot, window, "admin_hal")
    admin_tab(qtbot, window)
    view = window.admin
    nia = row_of(view.staff, 1, "nurse_nia")
    assert view.staff.item(nia, 3).text() == "Active"
    click_cell(qtbot, view.staff, nia)
    assert view.suspend.isEnabled() and not view.reinstate.isEnabled()
    click_confirmed(qtbot, view.suspend, view)
    assert "Nia Castell (nurse_nia)" in view.confirmation.text()
    assert view.message.text() == "Done, and recorded in the audit log."
    assert ws.store.suspended("nurse_nia") and view.staff.item(nia, 3).text() == "Suspended"
    assert view.staff.item(nia, 3).toolTip().startswith("Suspended by Hal Kerr (admin_hal) on ")
    assert view.reinstate.isEnabled() and not view.suspend.isEnabled()  # the same row stays chosen

    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "nurse_nia")  # the right password: the policies refuse her, in their words
    assert window.vms.session.user is None and ws.session.session is None
    assert window.sign_in.error.text() == f"Sign-in refused: {SUSPENDED}"

    sign_in(qtbot, window, "admin_hal")
    admin_tab(qtbot, window)
    click_cell(qtbot, view.staff, row_of(view.staff, 1, "nurse_nia"))
    click_confirmed(qtbot, view.reinstate, view)
    assert not ws.store.suspended("nurse_nia") and view.staff.item(nia, 3).text() == "Active"
    changes = [(r.event_type, r.details["account"], r.principal_id) for r in ws.audit.records() if r.kind == "event"]
    assert [c for c in changes if c[0].startswith("account_")] == [
        ("account_suspended", "nurse_nia", "admin_hal"),
        ("account_reinstated", "nurse_nia", "admin_hal"),
    ]
    click(qtbot, window.switch_user)
    sign_in(qtbot, window, "nurse_nia")
    assert window.vms.session.user is not None and window.vms.session.user.id == "nurse_nia"


def test_a_signed_in_user_whose_account_is_suspended_is_signed_out_saying_why(qtbot, window: MainWindow) -> None:
    """Suspended by the administrator at another workstation (the same hospital store) while
    signed in here: signed out within seconds, in the policies' words, the refusal audited."""
    ws = window.vms.session.workstation
    sign_in(qtbot, window, "nurse_nia")
    assert window.vms.session.user is not None
    ws.admin.change_account(user(ws, "admin_hal"), "nurse_nia", "suspend_account")
    qtbot.waitUntil(lambda: window.vms.session.user is None, timeout=5000)
    assert ws.session.session is None and window.stack.currentIndex() == 0  # the sign-in screen
    assert window.sign_in.error.text() == f"Signed out: {SUSPENDED}"
    refusals = [r for r in ws.audit.records() if r.principal_id == "nurse_nia" and r.action == "sign_in"]
    assert [(r.effect, r.resource_kind) for r in refusals] == [("EFFECT_DENY", "workstation")]


def test_the_admin_is_told_why_not_before_anything_is_confirmed(qtbot, window: MainWindow) -> None:
    ws = window.vms.session.workstation
    sign_in(qtbot, window, "admin_hal")
    admin_tab(qtbot, window)
    view = window.admin
    for account, words in (
        ("admin_hal", "You cannot suspend or reinstate your own account"),
        ("dr_visiting", "also works at a hospital you do not administer"),
    ):
        click_cell(qtbot, view.staff, row_of(view.staff, 1, account))
        click(qtbot, view.suspend)
        assert words in view.message.text(), account
        assert view.confirmation is None  # nothing to confirm
    assert ws.store.suspensions() == {}


def test_the_admin_tables_fit_a_1400_by_900_window(qtbot, window: MainWindow) -> None:
    window.resize(1400, 900)
    sign_in(qtbot, window, "admin_hal")
    admin_tab(qtbot, window)
    view = window.admin
    qtbot.waitUntil(lambda: view.staff.isVisible() and view.delegations.rowCount() > 0)
    assert window.width() <= 1400 and window.height() <= 900
    for table in (view.staff, view.delegations):
        header = table.horizontalHeader()
        assert table.horizontalScrollBar().maximum() == 0, table.accessibleName()  # no column out of sight
        assert sum(header.sectionSize(c) for c in range(table.columnCount())) <= table.viewport().width()
        for c in range(table.columnCount()):  # every header readable, every fitted column whole
            label = table.horizontalHeaderItem(c).text()
            assert header.sectionSize(c) >= header.fontMetrics().horizontalAdvance(label), label
            if header.sectionResizeMode(c) == QHeaderView.ResizeMode.ResizeToContents:
                assert header.sectionSize(c) >= table.sizeHintForColumn(c), label
        for r in range(table.rowCount()):  # what an elided cell hides, its tooltip says
            for c in range(table.columnCount()):
                item = table.item(r, c)
                assert item.toolTip() == item.text()
    controls = (view.suspend, view.reinstate, view.add, view.remove, view.revoke, view.patient, view.member)
    for control in (*controls, view.staff, view.team, view.delegations, view.message):
        assert control.accessibleName().strip(), control
