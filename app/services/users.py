"""Who may sign in: the demo user directory (passwords kept only as salted scrypt hashes), or the
hospital's staff as its OpenID Connect provider vouched for them (app/services/oidc.py), behind
one small interface."""

from __future__ import annotations

import hashlib
import hmac
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from .store import Store

DEMO_PASSWORD = "ccc-demo"  # documented in the README: demo data only, never a real credential
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


@dataclass(frozen=True)
class SignedInUser:
    id: str
    name: str
    roles: tuple[str, ...]
    attributes: dict[str, Any] = field(default_factory=dict)  # P.attr, as policies/README.md defines


class UserDirectory(Protocol):
    def authenticate(self, user_id: str, password: str) -> SignedInUser | None: ...

    def refresh(self, user: SignedInUser) -> SignedInUser:
        """The user with attributes as they are now (a delegation granted or revoked meanwhile)."""
        ...


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_SCRYPT)
    return hmac.compare_digest(candidate.hex(), digest)


class DemoUserDirectory:
    """The demo users of the store's staff table, all with the documented demo password."""

    demo = True

    def __init__(self, store: Store) -> None:
        self.store = store
        if not store.has_credentials():
            staff = store.staff_ids()
            with ThreadPoolExecutor() as pool:  # scrypt releases the GIL: first start on all cores
                hashes = list(pool.map(lambda _: hash_password(DEMO_PASSWORD), staff))
            store.set_password_hashes(dict(zip(staff, hashes, strict=True)))

    def authenticate(self, user_id: str, password: str) -> SignedInUser | None:
        stored = self.store.password_hash(user_id)
        if stored is None or not check_password(password, stored):
            return None
        staff = self.store.staff(user_id)
        if staff is None:
            return None
        return SignedInUser(staff["id"], staff["name"], (staff["role"],), self._attributes(staff))

    def refresh(self, user: SignedInUser) -> SignedInUser:
        staff = self.store.staff(user.id)
        if staff is None:  # the account is gone: no attributes, so the policies deny
            return SignedInUser(user.id, user.name, user.roles, {})
        return SignedInUser(staff["id"], staff["name"], (staff["role"],), self._attributes(staff))

    def _attributes(self, staff: dict[str, Any]) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if staff.get("hospital_ids"):
            attrs["hospital_ids"] = list(staff["hospital_ids"])
        if staff.get("patient_id"):
            attrs["patient_id"] = staff["patient_id"]
        if staff.get("manufacturer_id"):
            attrs["manufacturer_id"] = staff["manufacturer_id"]
        return as_recorded(self.store, staff["id"], attrs)


def as_recorded(store: Store, user_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes with what the store records of the user now: their delegations (granted or
    revoked since) and whether the hospital's administrator suspended the account."""
    delegations = store.delegations_for(user_id)
    if delegations:
        attrs["delegations"] = [
            {"patient_id": d["patient_id"], "expires_at": d["expires_at"], "granted_by": d["granted_by"]}
            for d in delegations
        ]
    return with_suspension(store, user_id, attrs)


def with_suspension(store: Store, user_id: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes marked ``suspended`` when the account is (the policies then refuse its sign-in)."""
    if store.suspended(user_id):
        attrs["suspended"] = True
    return attrs


class HospitalUsers:
    """The hospital's staff as its OpenID provider described them at sign-in (id, name, roles,
    hospitals: the mapped claims), held in memory while they are signed in and forgotten at sign-out;
    delegations come from the store. Passwords are the provider's business: ``authenticate`` never
    accepts one."""

    demo = False

    def __init__(self, store: Store) -> None:
        self.store = store
        self._admitted: dict[str, SignedInUser] = {}

    def admit(self, user: SignedInUser) -> None:
        """After a verified sign-in: the user as the provider says they are now."""
        self._admitted[user.id] = user

    def forget(self, user_id: str) -> None:
        self._admitted.pop(user_id, None)

    def admitted(self) -> list[str]:
        return list(self._admitted)

    def authenticate(self, user_id: str, password: str) -> SignedInUser | None:
        return None

    def refresh(self, user: SignedInUser) -> SignedInUser:
        admitted = self._admitted.get(user.id)
        if admitted is None:  # not (or no longer) signed in: no attributes, so the policies deny, and
            # a suspension, so a sign-in is refused for it
            return SignedInUser(user.id, user.name, user.roles, with_suspension(self.store, user.id, {}))
        attrs = as_recorded(self.store, admitted.id, dict(admitted.attributes))
        return SignedInUser(admitted.id, admitted.name, admitted.roles, attrs)
