"""Shift PINs (fast user switching): what a PIN resume needs is kept in the keyring only, the PIN
as a salted hash; the window runs from the full sign-in; a clock set back does not reopen it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.services.credentials import SecretStore
from app.services.shift import MAX_TRIES, ShiftPins, pin_problem
from app.services.users import SignedInUser
from tests.support.keyrings import MemoryKeyring

NURSE = SignedInUser("nurse_nia", "Nia Okafor, RN", ("nurse",), {"hospital_ids": ["h1"]})


def test_the_pin_lives_hashed_in_the_keyring_and_resumes_the_user_as_the_provider_described_them() -> None:
    backend = MemoryKeyring()
    now = [datetime(2026, 12, 3, 7, 0, tzinfo=UTC)]
    pins = ShiftPins(SecretStore(backend), 12, lambda: now[0])
    pins.enrol(NURSE, "2580", now[0])
    ((key, stored),) = backend.secrets.items()
    assert key == ("ccc-workstation", "shift:nurse_nia") and "2580" not in stored and "scrypt$" in stored
    now[0] += timedelta(hours=3)
    resumed = pins.resume("nurse_nia", "2580")
    assert (
        resumed is not None and resumed.user == NURSE and resumed.signed_in_at == datetime(2026, 12, 3, 7, tzinfo=UTC)
    )
    now[0] = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)  # the clock set back before the sign-in
    assert pins.resume("nurse_nia", "2580") is None and backend.secrets == {}  # the shift is over here


def test_wrong_pins_count_and_the_last_allowed_one_ends_the_shift() -> None:
    backend = MemoryKeyring()
    now = datetime.now(UTC)
    pins = ShiftPins(SecretStore(backend), 12, lambda: now)
    pins.enrol(NURSE, "2580", now)
    for _ in range(MAX_TRIES - 1):
        assert pins.resume("nurse_nia", "0000") is None
    assert pins.resume("nurse_nia", "2580") is not None  # the right one resets the count
    for _ in range(MAX_TRIES):
        assert pins.resume("nurse_nia", "0000") is None
    assert pins.resume("nurse_nia", "2580") is None and backend.secrets == {}


def test_what_a_pin_may_be() -> None:
    assert pin_problem("2580") == "" and pin_problem("90210417") == ""
    for bad in ("", "123", "123456789", "12a4", "0000", "1234", "9876"):
        assert pin_problem(bad), bad
