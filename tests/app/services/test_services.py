"""The Qt-free service layer on a real SQLite file, the real policies/ and a real audit log."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.services.access import AccessService
from app.services.demo_data import STAFF, generate
from app.services.store import Store
from app.services.users import DEMO_PASSWORD, DemoUserDirectory, check_password, hash_password
from authz import Engine
from authz.audit import AuditChain, AuditWriteError

POLICIES = Path(__file__).resolve().parents[3] / "policies"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_directory(POLICIES)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "ccc.db")


@pytest.fixture
def users(store: Store) -> DemoUserDirectory:
    return DemoUserDirectory(store)


def test_demo_data_is_deterministic_and_complete() -> None:
    a, b = generate(), generate()
    assert a == b
    assert len(a.patients) == 40 and len({p["hospital_id"] for p in a.patients}) == 2
    assert {s["role"] for s in a.staff} == {"physician", "nurse", "er_physician", "manufacturer_engineer",
                                              "compliance_officer", "hospital_admin", "delegated_caregiver", "patient"}
    assert len(a.transmissions) == 40 * 30 * 9
    assert all(t["unit"] for t in a.transmissions)
    assert a.firmware_updates[0]["state"] == "requested" and a.delegations[0]["patient_id"] == "p02"


def test_store_is_seeded_once(tmp_path: Path) -> None:
    first = Store(tmp_path / "ccc.db")
    count = first.db["transmissions"].count
    again = Store(tmp_path / "ccc.db")
    assert again.db["transmissions"].count == count == 40 * 30 * 9
    assert again.patient("p01").hospital_id == "h1"


def test_passwords_are_salted_hashes_only(store: Store, users: DemoUserDirectory) -> None:
    stored = [store.password_hash(sid) for sid in store.staff_ids()]
    assert all(DEMO_PASSWORD not in s for s in stored) and len(set(stored)) == len(stored)
    assert check_password("x", hash_password("x")) and not check_password("y", hash_password("x"))
    assert users.authenticate("dr_aly", "wrong") is None
    aly = users.authenticate("dr_aly", DEMO_PASSWORD)
    assert aly is not None and aly.roles == ("physician",) and aly.attributes["hospital_ids"] == ["h1"]
    gina = users.authenticate("gina", DEMO_PASSWORD)
    assert gina.attributes["delegations"][0]["patient_id"] == "p02"


def test_each_role_sees_the_patients_policy_allows(engine: Engine, store: Store, users: DemoUserDirectory) -> None:
    access = AccessService(lambda: engine, store)
    seen = {sid: {p.id for p in access.visible_patients(users.authenticate(sid, DEMO_PASSWORD))}
            for sid, *_ in STAFF}
    patients = {p.id: p for p in store.patients()}
    assert seen["nurse_nia"] == {pid for pid, p in patients.items()
                                 if "nurse_nia" in p.care_team and not p.sealed}
    assert seen["dr_aly"] == {pid for pid, p in patients.items() if "dr_aly" in p.care_team}
    assert seen["er_eli"] == set()  # nobody until break-glass
    assert seen["co_cora"] == set() and seen["eng_max"] == set()
    assert seen["gina"] == {"p02"}
    assert seen["dr_visiting"] >= {pid for pid, p in patients.items() if "dr_visiting" in p.care_team}


def test_denials_explain_themselves(engine: Engine, store: Store, users: DemoUserDirectory) -> None:
    access = AccessService(lambda: engine, store)
    outsider = next(p for p in store.patients(["h1"]) if "dr_ben" not in p.care_team)
    ben = users.authenticate("dr_ben", DEMO_PASSWORD)
    decision = access.decide(ben, access.record(outsider), ["view"])["view"]
    assert not decision.allowed
    assert decision.reason == "You are not on this patient's care team. In an emergency, use break-glass."
    er = access.decide(users.authenticate("er_eli", DEMO_PASSWORD), access.record(outsider), ["view"])["view"]
    assert "break-glass" in er.reason
    co = access.decide(users.authenticate("co_cora", DEMO_PASSWORD), access.record(outsider), ["view"])["view"]
    assert co.reason.startswith("Your role reviews reports")


def test_no_policies_means_everything_denied_with_the_reason(store: Store, users: DemoUserDirectory) -> None:
    access = AccessService(lambda: None, store, no_policy_reason=lambda: "No valid policy bundle is installed.")
    aly = users.authenticate("dr_aly", DEMO_PASSWORD)
    assert access.visible_patients(aly) == []
    assert access.decide(aly, access.record(store.patient("p01")), ["view"])["view"].reason == \
        "No valid policy bundle is installed."


def test_record_is_shown_only_after_its_decision_is_audited(engine: Engine, store: Store,
                                                            users: DemoUserDirectory, tmp_path: Path) -> None:
    chain = AuditChain(tmp_path / "audit.db")
    access = AccessService(lambda: engine, store, chain)
    aly = users.authenticate("dr_aly", DEMO_PASSWORD)
    mine = next(p for p in store.patients() if "dr_aly" in p.care_team)
    assert access.open_record(aly, mine.id).id == mine.id
    records = list(chain.records())
    assert [(r.principal_id, r.patient_id, r.action, r.effect) for r in records] == \
        [("dr_aly", mine.id, "view", "EFFECT_ALLOW")]
    other = next(p for p in store.patients() if "dr_aly" not in p.care_team)
    with pytest.raises(PermissionError, match="care team"):
        access.open_record(aly, other.id)
    assert len(list(chain.records())) == 2  # the denial is recorded too
    chain.conn.close()
    (tmp_path / "audit.db").write_bytes(b"garbage" * 100)
    broken = AccessService(lambda: engine, store, _ReopenedChain(tmp_path / "audit.db"))
    with pytest.raises(AuditWriteError):
        broken.open_record(aly, mine.id)


class _ReopenedChain:
    """An audit log whose file was destroyed under the running app."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append_many(self, records):  # noqa: ANN001
        return AuditChain(self.path).append_many(records)
