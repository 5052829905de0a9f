"""The patient list, its search and the ER's hospital-wide lookup, driven as a user drives them,
show exactly the patients a check of each one would allow, while the store selects them through
the engine's query plan: typing in the search asks the engine for no check per patient, and
opening the chosen record is decided (and audited) as ever (issue 20, part 3)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from app.services import resources
from app.services.access import principal
from app.views.main_window import MainWindow
from authz import Engine
from tests.app.helpers import click_cell, sign_in


class Counting:
    """The workstation's engine, counting the checks it makes."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.checks = engine, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def decide(self, *args: Any, **kwargs: Any) -> Any:
        self.checks += 1
        return self.engine.decide(*args, **kwargs)

    def check(self, *args: Any, **kwargs: Any) -> Any:
        self.checks += 1
        return self.engine.check(*args, **kwargs)


def counting(w: MainWindow) -> Counting:
    ws = w.vms.session.workstation
    engine = ws.engine()
    assert engine is not None
    counted = Counting(engine)
    ws.access.engine = lambda: counted  # type: ignore[assignment,return-value]
    return counted


def allowed(w: MainWindow, user_id: str, kind: str, action: str) -> list[Any]:
    """The reference: the store's patients a check of each one allows, by id."""
    ws = w.vms.session.workstation
    engine, user = ws.engine(), w.vms.session.user
    assert engine is not None and user is not None and user.id == user_id
    who, make = principal(ws.access.resolve(user)), getattr(resources, kind)
    return [p for p in ws.store.patients() if engine.decide(who, make(p), [action])[action].allowed]


def shown_mrns(w: MainWindow) -> list[str]:
    table = w.patients.table
    column = w.patients.COLUMNS.index("MRN")
    return [table.item(r, column).text() for r in range(table.rowCount())]


def test_the_list_and_its_search_show_what_checks_allow_with_no_check_per_patient(qtbot, window: MainWindow) -> None:
    sign_in(qtbot, window, "nurse_nia")
    expected = allowed(window, "nurse_nia", "patient_record", "view")
    assert expected and shown_mrns(window) == [p.mrn for p in expected]
    counted = counting(window)
    surname = expected[0].name.split()[-1]
    qtbot.keyClicks(window.patients.search, surname)
    matching = [p.mrn for p in expected if surname.lower() in p.name.lower()]
    assert shown_mrns(window) == matching and counted.checks == 0
    window.patients.search.clear()
    assert shown_mrns(window) == [p.mrn for p in expected] and counted.checks == 0
    # the chosen record is opened through its check, as ever
    click_cell(qtbot, window.patients.table, 0, 1, double=True)
    assert window.vms.record.record is not None and window.vms.record.record.patient_id == expected[0].id
    assert counted.checks > 0


def test_the_ers_lookup_shows_the_identities_checks_allow_audited_once(qtbot, window: MainWindow) -> None:
    ws = window.vms.session.workstation
    sign_in(qtbot, window, "er_eli")
    assert shown_mrns(window) == []  # the ER's own list: no chart is theirs
    counted = counting(window)
    before = len(list(ws.audit.records()))
    qtbot.keyClicks(window.patients.search, "MRN-H1-1001")
    qtbot.keyClick(window.patients.search, Qt.Key.Key_Return)
    may_identify = allowed(window, "er_eli", "patient_identity", "search_identity")
    expected = [p.mrn for p in may_identify if "MRNH11001" in p.mrn.replace("-", "")]
    found = window.patients.found
    column = window.patients.FOUND_COLUMNS.index("MRN")
    assert len(expected) > 1 and [found.item(r, column).text() for r in range(found.rowCount())] == expected
    assert counted.checks == 0
    records = list(ws.audit.records())[before:]
    assert [(r.event_type, r.details["shown"]) for r in records] == [
        ("listed", [p.id for p in may_identify if p.mrn in expected])
    ]
