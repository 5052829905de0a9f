"""The hospital administrator's tools (issue 18, part 7), driven as the admin does: the staff, the
care teams and the delegations in force of their hospital; adding and removing a care team
member, each decided by the policies (a refusal in their words) and audited."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.services.users import DEMO_PASSWORD
from app.views.main_window import MainWindow
from tests.app.helpers import choose, click, sign_in


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
