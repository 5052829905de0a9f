"""Session secrets: in the keyring when there is one, in a labelled memory-only store when there is
none or it refuses; never in the database or the audit log."""

from __future__ import annotations

from pathlib import Path

from keyring.backends import fail

from app.services.credentials import NO_KEYRING_NOTICE, SERVICE, SecretStore
from app.services.users import DEMO_PASSWORD
from app.services.workstation import Workstation
from tests.support.keyrings import LockedKeyring, MemoryKeyring


def test_session_secret_lives_in_the_keyring_and_nowhere_on_disk(tmp_path: Path) -> None:
    backend = MemoryKeyring()
    ws = Workstation(tmp_path / "data", secrets=SecretStore(backend))
    assert ws.session.sign_in("dr_aly", "not the password") is None and ws.session.session is None
    user = ws.session.sign_in("dr_aly", DEMO_PASSWORD)
    assert user is not None and ws.session.session is not None
    secret = backend.secrets[(SERVICE, "session:dr_aly")]
    assert len(secret) >= 40 and ws.secrets.is_current(ws.session.session) and not ws.secrets.demo_only
    ws.patients.open_record(user, ws.patients.rows(user)[0].patient.id)
    for path in (tmp_path / "data").rglob("*"):
        assert secret.encode() not in path.read_bytes(), path
    session = ws.session.session
    ws.session.sign_out()
    assert (SERVICE, "session:dr_aly") not in backend.secrets and not ws.secrets.is_current(session)
    assert ws.session.session is None


def test_signing_in_as_someone_else_ends_the_previous_session(tmp_path: Path) -> None:
    backend = MemoryKeyring()
    ws = Workstation(tmp_path / "data", secrets=SecretStore(backend))
    ws.session.sign_in("dr_aly", DEMO_PASSWORD)
    first = ws.session.session
    ws.session.sign_in("nurse_nia", DEMO_PASSWORD)
    assert not ws.secrets.is_current(first) and (SERVICE, "session:dr_aly") not in backend.secrets
    assert ws.secrets.is_current(ws.session.session) and ws.session.session.user_id == "nurse_nia"


def test_a_new_sign_in_replaces_the_previous_session() -> None:
    store = SecretStore(MemoryKeyring())
    first = store.open_session("dr_aly")
    second = store.open_session("dr_aly")
    assert store.is_current(second) and not store.is_current(first)


def test_without_a_keyring_the_demo_only_store_is_used_and_said(tmp_path: Path) -> None:
    store = SecretStore(fail.Keyring())
    assert store.demo_only and store.notice == NO_KEYRING_NOTICE and "demo-only" in store.label
    session = store.open_session("nurse_nia")
    assert store.is_current(session)
    store.close_session(session)
    assert not store.is_current(session)
    ws = Workstation(tmp_path / "data", secrets=store)
    assert "demo-only session store" in ws.status.status().text


def test_a_locked_keyring_falls_back_and_explains() -> None:
    store = SecretStore(LockedKeyring())
    session = store.open_session("dr_aly")
    assert store.demo_only and "locked" in store.notice and store.is_current(session)
