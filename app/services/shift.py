"""Fast user switching at a shared ward computer: after a user's first full sign-in of a shift
(through the hospital's provider), they come back with a short PIN for a managed number of hours,
without the browser or the provider, and so also while the provider cannot be reached (the
offline grace: nobody who did not sign in fully within the window gets in).

What a PIN resume needs lives in the OS keyring (or the demo-only memory store), never in the app's
memory between two sign-ins nor on disk: the user as the provider described them at the full
sign-in, the PIN's salted scrypt hash, the end of the window, the failed tries. Five wrong PINs
end the user's shift at this computer: they sign in fully again. Qt-free."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .credentials import SecretStore
from .users import SignedInUser, check_password, hash_password

KIND = "shift"
MAX_TRIES = 5
PIN_WORDS = "a PIN of 4 to 8 digits"
REFUSED = "PIN sign-in is not possible: check your id and PIN, or sign in with your hospital account."


def pin_problem(pin: str) -> str:
    """Why ``pin`` cannot be a shift PIN, or ""."""
    if not re.fullmatch(r"\d{4,8}", pin):
        return f"Choose {PIN_WORDS} to come back quickly this shift."
    if len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210":
        return "Choose a PIN that is not one repeated digit or a run of digits."
    return ""


@dataclass(frozen=True)
class Resumed:
    user: SignedInUser
    signed_in_at: datetime  # the full sign-in this PIN belongs to
    until: datetime


class ShiftPins:
    def __init__(
        self, secrets: SecretStore, hours: float, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.secrets, self.window, self.clock = secrets, timedelta(hours=hours), clock

    def enrol(self, user: SignedInUser, pin: str, signed_in_at: datetime) -> None:
        """After a full sign-in: ``pin`` lets the user resume until the window after it ends."""
        assert not pin_problem(pin), pin_problem(pin)
        record = {
            "user": {"id": user.id, "name": user.name, "roles": list(user.roles), "attributes": user.attributes},
            "pin": hash_password(pin),
            "signed_in_at": signed_in_at.isoformat(),
            "until": (signed_in_at + self.window).isoformat(),
            "tries": 0,
        }
        self.secrets.keep_record(KIND, user.id, record)

    def resume(self, user_id: str, pin: str) -> Resumed | None:
        """The user back, if the PIN is theirs and their window is still open; None otherwise
        (a wrong PIN counts; the fifth ends their shift here)."""
        record = self.secrets.record(KIND, user_id.strip())
        if not record:
            return None
        try:
            until = datetime.fromisoformat(record["until"])
            signed_in_at = datetime.fromisoformat(record["signed_in_at"])
            user = _user(record["user"])
        except (KeyError, TypeError, ValueError):
            self.end(user_id)
            return None
        now = self.clock()
        if not signed_in_at - timedelta(minutes=5) <= now < until:  # over, or a clock set back before it
            self.end(user_id)
            return None
        if not check_password(pin, str(record.get("pin", ""))):
            tries = int(record.get("tries", 0)) + 1
            if tries >= MAX_TRIES:
                self.end(user_id)
            else:
                self.secrets.keep_record(KIND, user_id, {**record, "tries": tries})
            return None
        if record.get("tries"):
            self.secrets.keep_record(KIND, user_id, {**record, "tries": 0})
        return Resumed(user, signed_in_at, until)

    def end(self, user_id: str) -> None:
        """The user's shift at this computer is over: only a full sign-in lets them in again."""
        self.secrets.forget_record(KIND, user_id.strip())


def _user(data: dict[str, Any]) -> SignedInUser:
    return SignedInUser(str(data["id"]), str(data["name"]), tuple(data["roles"]), dict(data["attributes"]))
