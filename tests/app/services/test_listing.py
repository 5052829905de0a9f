"""The patient list, the hospital-wide identity search and the review queue select only permitted
rows from the store through the engine's query plan (issue 20, part 3): the same rows a check of
each one allows, for every demo user and over a generated store with NULLs, odd lists and
wildcard characters, without a check per row; a plan the store cannot query falls back to checking
row by row (and says so); one audit record per search, not one per row shown."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.services import resources
from app.services.access import AccessService, Refused
from app.services.compliance import REVIEWED_EVENTS
from app.services.listing import ROW_BY_ROW, permitted_patients
from app.services.store import Patient, Store
from app.services.users import SignedInUser
from app.services.workstation import Workstation
from authz import Engine
from authz.query_plan import CONDITIONAL, PlanError
from tests.app.services.support import POLICIES, Clocks, run_every_workflow, user

DEMO_USERS = (
    "dr_aly",
    "dr_ben",
    "dr_visiting",
    "nurse_nia",
    "nurse_omar",
    "er_eli",
    "eng_max",
    "eng_vic",
    "co_cora",
    "admin_hal",
    "gina",
    "pt_p02",
)
KINDS = (
    ("patient_record", "view", resources.patient_record),
    ("patient_identity", "search_identity", resources.patient_identity),
)


def checked_one_by_one(
    engine: Engine, who: SignedInUser, patients: list[Patient], kind: str, action: str, now: datetime
) -> list[str]:
    """The reference: the patients a check of each one allows, by id."""
    from app.services.access import principal

    make = dict((k, m) for k, _, m in KINDS)[kind]
    return [p.id for p in patients if engine.decide(principal(who), make(p), [action], now)[action].allowed]


class CountingEngine:
    """The workstation's engine, counting the checks and plans it is asked for."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.checks, self.plans = engine, 0, 0
        self.asked: list[tuple[str, str]] = []  # (resource kind, action) of each check

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def decide(self, who: Any, resource: Any, actions: Any, *args: Any) -> Any:
        self.checks += 1
        self.asked.extend((resource.kind, a) for a in actions)
        return self.engine.decide(who, resource, actions, *args)

    def check(self, inp: Any, *args: Any, **kwargs: Any) -> Any:
        self.checks += 1
        self.asked.extend((inp.resource.kind, a) for a in inp.actions)
        return self.engine.check(inp, *args, **kwargs)

    def plan(self, *args: Any, **kwargs: Any) -> Any:
        self.plans += 1
        return self.engine.plan(*args, **kwargs)


@pytest.fixture
def counting(ws: Workstation) -> CountingEngine:
    engine = ws.engine()
    assert engine is not None
    counted = CountingEngine(engine)
    ws.access.engine = lambda: counted  # type: ignore[assignment,return-value]
    return counted


# -- the demo hospital ----------------------------------------------------------------------------


@pytest.mark.parametrize("user_id", DEMO_USERS)
def test_each_demo_users_lists_are_what_checks_allow(ws: Workstation, clocks: Clocks, user_id: str) -> None:
    engine, who, everyone = ws.engine(), user(ws, user_id), ws.store.patients()
    assert engine is not None
    resolved = ws.access.resolve(who)
    listed = [r.patient.id for r in ws.patients.rows(who)]
    assert listed == checked_one_by_one(engine, resolved, everyone, "patient_record", "view", clocks.now())
    identities = permitted_patients(
        ws.access, ws.store, who, "patient_identity", "search_identity", resources.patient_identity
    )
    assert identities.method != ROW_BY_ROW
    expected = checked_one_by_one(engine, resolved, everyone, "patient_identity", "search_identity", clocks.now())
    assert [p.id for p in identities.patients] == expected


def test_the_physicians_list_and_search_read_no_row_one_by_one(ws: Workstation, counting: CountingEngine) -> None:
    aly = user(ws, "dr_aly")
    everyone = ws.store.patients()
    rows = ws.patients.rows(aly)
    assert rows and len(rows) < len(everyone)
    assert counting.checks == 0 and counting.plans == 1
    mrn = rows[0].patient.mrn
    assert [r.patient.mrn for r in ws.patients.rows(aly, mrn[-6:])] == [mrn]
    found = ws.patients.find_identities(aly, mrn[-6:])
    assert [i.mrn for i in found.matches] == [mrn]
    assert counting.checks == 0 and counting.plans == 3


def test_the_ers_hospital_wide_lookup_is_planned_and_audited_once(ws: Workstation, counting: CountingEngine) -> None:
    eli = user(ws, "er_eli")
    before = len(list(ws.audit.records()))
    found = ws.patients.find_identities(eli, "MRN-H1-1001")
    h1 = {p.id for p in ws.store.patients(["h1"])}
    assert len(found.matches) > 1 and {i.patient_id for i in found.matches} <= h1
    assert counting.checks == 0 and counting.plans == 1
    written = list(ws.audit.records())[before:]
    assert len(written) == 1, "one record for the search, not one per identity shown"
    record = written[0]
    assert (record.kind, record.event_type, record.principal_id) == ("event", "listed", "er_eli")
    assert (record.resource_kind, record.action) == ("patient_identity", "search_identity")
    assert record.details == {"filter": CONDITIONAL, "shown": [i.patient_id for i in found.matches]}
    # the record the ER then opens is decided and audited as ever: refused, with break-glass offered
    with pytest.raises(Refused):
        ws.patients.open_record(eli, found.matches[0].patient_id)
    assert counting.checks >= 1
    assert [r.action for r in list(ws.audit.records())[before + 1 :]] == ["view", "view_phi"]


def test_a_list_the_policies_deny_whole_makes_no_query(ws: Workstation, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Any] = []
    monkeypatch.setattr(ws.store, "patients_permitted", lambda *a, **k: asked.append(a) or [])
    assert ws.patients.rows(user(ws, "er_eli")) == [] and ws.patients.rows(user(ws, "eng_max")) == []
    assert asked == []


def test_no_policy_set_lists_nothing(ws: Workstation) -> None:
    ws.access.engine = lambda: None  # type: ignore[assignment,return-value]
    assert ws.patients.rows(user(ws, "dr_aly")) == []
    assert ws.patients.find_identities(user(ws, "er_eli"), "MRN-H1-1001").matches == []


def test_a_plan_that_cannot_be_a_query_is_checked_row_by_row_and_logged(
    ws: Workstation, counting: CountingEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    aly = user(ws, "dr_aly")
    planned = [r.patient.id for r in ws.patients.rows(aly)]

    def unplannable(*_args: Any, **_kwargs: Any) -> Any:
        raise PlanError("a condition no filter expresses")

    monkeypatch.setattr(counting, "plan", unplannable)
    with caplog.at_level(logging.WARNING, logger="app.services.listing"):
        assert [r.patient.id for r in ws.patients.rows(aly)] == planned
    assert counting.checks == len(ws.store.patients())
    assert "checking row by row" in caplog.text and "a condition no filter expresses" in caplog.text


def test_a_filter_reading_what_the_store_has_no_column_for_is_checked_row_by_row(
    ws: Workstation, caplog: pytest.LogCaptureFixture
) -> None:
    """Which records a physician may write a note on depends on the note type, an attribute of the
    note, not of the patient: the store cannot query it, so each patient is checked."""
    aly = user(ws, "dr_aly")
    with caplog.at_level(logging.WARNING, logger="app.services.listing"):
        listing = permitted_patients(
            ws.access, ws.store, aly, "patient_record", "edit_clinical_notes", resources.patient_record
        )
    assert listing.method == ROW_BY_ROW and "note_type" in listing.why_row_by_row
    assert "SqlFilterError" in caplog.text
    engine = ws.engine()
    assert engine is not None
    expected = checked_one_by_one(
        engine, ws.access.resolve(aly), ws.store.patients(), "patient_record", "edit_clinical_notes", ws.access.clock()
    )
    assert [p.id for p in listing.patients] == expected


def test_the_review_queue_is_what_checks_allow_without_a_check_per_event(
    ws: Workstation, clocks: Clocks, tmp_path: Path
) -> None:
    run_every_workflow(ws, clocks, tmp_path / "exports")
    engine = ws.engine()
    assert engine is not None
    events = [r for r in ws.audit.records() if r.kind == "event" and r.event_type in REVIEWED_EVENTS]
    assert len(events) >= 2
    counted = CountingEngine(engine)
    ws.access.engine = lambda: counted  # type: ignore[assignment,return-value]
    for user_id in DEMO_USERS:
        who = user(ws, user_id)
        reference = ws.access.permitted(who, (ws.compliance._resource(e) for e in events), "review")
        counted.asked = []
        queue = ws.compliance.queue(who)
        assert ("audit_event", "review") not in counted.asked, user_id  # (other questions of an item aside)
        assert sorted(i.event.record_id for i in queue) == sorted(r.id for r in reference), user_id
    assert ws.compliance.queue(user(ws, "co_cora"))


# -- a generated store: NULLs, empty and long lists, odd values --------------------------------------

ODD_TEXT = ("50%_off", "a_b", "back\\slash", "Zoë", "")


def generated_patients(rng: random.Random, staff: list[str], count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        team = rng.sample(staff, rng.choice([0, 1, 2, 5, 40]))
        yield {
            "id": f"g{n:04d}",
            "mrn": rng.choice([f"MRN-G-{100000 + n}", f"{n}{rng.choice(ODD_TEXT)}"]),
            "name": rng.choice(["Ada Lovelace", "Zoë Quist", "%_\\ Name", "Ö Ü"]),
            "birth_date": rng.choice(["1950-01-01", "1960-06-30", None]),
            "sex": rng.choice(["female", "male", None]),
            "hospital_id": rng.choice(["h1", "h2", "h3", None, "", "H1", "h1%"]),
            "room": "",
            "bed": "",
            "care_team": json.dumps(rng.choice([team, [], [*team, None], [*team, 7]])),
            "assigned_physicians": json.dumps(rng.choice([team[:1], [], staff[:3], [1, "x"]])),
            "sealed": rng.choice([0, 1, None, 2]),
            "emergency": rng.choice([0, 1, None]),
            "consent_export": 0,
        }


def generated_users(rng: random.Random, staff: list[str], patient_ids: list[str], now: datetime) -> list[SignedInUser]:
    later, earlier = (now + timedelta(days=2)).isoformat(), (now - timedelta(days=2)).isoformat()
    users = []
    for n in range(24):
        role = rng.choice(
            ["physician", "nurse", "er_physician", "patient", "delegated_caregiver", "compliance_officer"]
        )
        attrs: dict[str, Any] = {"hospital_ids": rng.choice([["h1"], ["h1", "h2"], [], ["h3", "H1", ""]])}
        if role == "patient":
            attrs = {"patient_id": rng.choice(patient_ids)}
        if role == "delegated_caregiver":
            attrs = {
                "delegations": [
                    {"patient_id": rng.choice(patient_ids), "expires_at": rng.choice([later, earlier])}
                    for _ in range(rng.choice([0, 1, 3]))
                ]
            }
        if role == "physician" and rng.random() < 0.3:
            attrs["consultations"] = [{"patient_id": rng.choice(patient_ids), "expires_at": later}]
        users.append(SignedInUser(rng.choice(staff) if n % 3 else f"u{n}", f"User {n}", (role,), attrs))
    return users


def test_a_generated_store_lists_exactly_what_checks_allow(tmp_path: Path) -> None:
    rng = random.Random(20)
    staff = [f"s{i}" for i in range(60)]
    store = Store(tmp_path / "data" / "ccc.db")
    rows = list(generated_patients(rng, staff, 300))
    with store.db.conn:
        store.db["patients"].insert_all(rows)
    # a change of a care team reaches the store's list tables, as does a replaced or deleted patient
    store.db.execute("UPDATE patients SET care_team = ? WHERE id = 'g0001'", [json.dumps(staff[:4])])
    store.db.execute(
        "INSERT OR REPLACE INTO patients (id, hospital_id, care_team, assigned_physicians, mrn, name, "
        "birth_date, sex, room, bed, sealed, emergency, consent_export) SELECT id, 'h1', '[\"s1\"]', "
        "'[]', mrn, name, birth_date, sex, room, bed, 0, 0, 0 FROM patients WHERE id = 'g0002'"
    )
    store.db.execute("DELETE FROM patients WHERE id = 'g0003'")
    store.db.conn.commit()
    team = {r[0] for r in store.db.execute("SELECT member FROM patient_care_team WHERE patient_id = 'g0001'")}
    assert team == set(staff[:4])
    assert [r[0] for r in store.db.execute("SELECT member FROM patient_care_team WHERE patient_id = 'g0002'")] == ["s1"]
    assert not list(store.db.execute("SELECT 1 FROM patient_care_team WHERE patient_id = 'g0003'"))

    engine = Engine.from_directory(POLICIES)
    now = datetime.now(UTC)
    access = AccessService(lambda: engine, clock=lambda: now)
    everyone = store.patients()
    patient_ids = [p.id for p in everyone]
    compared = 0
    for who in generated_users(rng, staff, patient_ids, now):
        for kind, action, make in KINDS:
            listing = permitted_patients(access, store, who, kind, action, make)
            assert listing.method != ROW_BY_ROW, listing.why_row_by_row
            expected = checked_one_by_one(engine, who, everyone, kind, action, now)
            assert [p.id for p in listing.patients] == expected, (who, kind)
            compared += len(expected)
    assert compared > 100  # the principals were not all refused everything


def test_the_list_tables_follow_the_json_in_a_migrated_store(make_ws: Callable[..., Workstation]) -> None:
    ws = make_ws()
    conn = ws.store.db.conn
    for table, column in (("patient_care_team", "care_team"), ("patient_assigned_physicians", "assigned_physicians")):
        copied = sorted(conn.execute(f'SELECT patient_id, member FROM "{table}"').fetchall())
        expected = sorted((p.id, m) for p in ws.store.patients() for m in getattr(p, column))
        assert copied == expected and copied


def test_the_store_makes_its_statistics_again_when_the_patients_grow(tmp_path: Path) -> None:
    """Without statistics SQLite reads every patient of the hospital for a nurse's list; the store
    makes them when it is created and again at an opening that finds twice as many patients."""
    path = tmp_path / "data" / "ccc.db"
    store = Store(path)

    def recorded() -> int:
        row = store.db.execute("SELECT stat FROM sqlite_stat1 WHERE idx = 'idx_patients_hospital_id_mrn'").fetchone()
        return int(row[0].split()[0])

    assert recorded() == 40
    rows = list(generated_patients(random.Random(1), [f"s{i}" for i in range(60)], 60))
    with store.db.conn:
        store.db["patients"].insert_all(rows)
    assert recorded() == 40
    store.close()
    store = Store(path)
    assert recorded() == 100
    plan = " ".join(
        str(r)
        for r in store.db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM patients WHERE hospital_id = 'h1' "
            "AND id IN (SELECT patient_id FROM patient_care_team WHERE member = 's1')"
        )
    )
    assert "idx_patient_care_team_member" in plan


@pytest.mark.parametrize("user_id", ["co_cora", "admin_hal", "dr_aly", "gina", "eng_max"])
def test_the_identities_a_queue_names_are_those_checks_allow(ws: Workstation, user_id: str) -> None:
    who = user(ws, user_id)
    ids = [p.id for p in ws.store.patients()][::3] + ["no-such-patient"]
    expected = {i: ws.patients.identity(who, i) for i in ids}
    engine = ws.engine()
    assert engine is not None
    counted = CountingEngine(engine)
    ws.access.engine = lambda: counted  # type: ignore[assignment,return-value]
    assert ws.patients.identities(who, ids) == {i: v for i, v in expected.items() if v is not None}
    assert counted.checks == 0 and counted.plans == 1


def test_the_lists_follow_time_and_emergency_access_as_checks_do(ws: Workstation, clocks: Clocks) -> None:
    """The plan is made for the user as the policies see them now, at the policies' now(): an
    emergency access adds its patient to the ER's list, and a delegation that has run out takes its
    patient from the delegate's."""
    from app.services.users import DEMO_PASSWORD
    from tests.app.services.support import EMERGENCY_PATIENT, WHY

    engine = ws.engine()
    assert engine is not None

    def lists_agree(user_id: str) -> list[str]:
        who = user(ws, user_id)
        listed = [r.patient.id for r in ws.patients.rows(who)]
        resolved = ws.access.resolve(who)
        assert listed == checked_one_by_one(
            engine, resolved, ws.store.patients(), "patient_record", "view", clocks.now()
        ), user_id
        return listed

    eli = user(ws, "er_eli")
    assert lists_agree("er_eli") == []
    ws.break_glass.start(eli, EMERGENCY_PATIENT, "ETREAT", WHY, DEMO_PASSWORD)
    assert lists_agree("er_eli") == [EMERGENCY_PATIENT]
    assert lists_agree("gina") == ["p02"]
    clocks.advance(days=400)
    assert lists_agree("er_eli") == [] and lists_agree("gina") == []


def test_an_always_allowed_plan_lists_every_candidate_unfiltered(
    ws: Workstation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ws.access, "plan_filter", lambda *_: {"kind": "KIND_ALWAYS_ALLOWED"})
    eli = user(ws, "er_eli")
    listing = permitted_patients(
        ws.access, ws.store, eli, "patient_identity", "search_identity", resources.patient_identity
    )
    assert listing.method == "KIND_ALWAYS_ALLOWED" and listing.patients == ws.store.patients()
    born = ws.store.patient("p03")
    assert born is not None
    narrowed = permitted_patients(
        ws.access,
        ws.store,
        eli,
        "patient_identity",
        "search_identity",
        resources.patient_identity,
        birth_date=born.birth_date,
    )
    assert narrowed.patients == [p for p in ws.store.patients() if p.birth_date == born.birth_date]
