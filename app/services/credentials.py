"""Where a signed-in session's secret and the provider's tokens live: the OS keyring when there is
one, otherwise a clearly labelled demo-only store that keeps them in memory and never on disk.

Neither ever reaches SQLite, a log or a config file; the store keeps only the secret's SHA-256 so a
session can be recognised without being impersonated from a copy of the database."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

import keyring
import keyring.backend
import keyring.errors
from keyring.backends import fail

SERVICE = "ccc-workstation"
NO_KEYRING_NOTICE = (
    "No OS keyring is available on this computer (no Secret Service is running), so session secrets "
    "are kept in a demo-only store in memory and forgotten when the app closes. For production, "
    "run the workstation in a desktop session with a keyring (GNOME Keyring, KWallet)."
)


@dataclass(frozen=True)
class Session:
    user_id: str
    fingerprint: str  # SHA-256 of the secret: what may be stored and logged


class SecretStore:
    """A session-secret store backed by a keyring backend, or by memory when there is none."""

    def __init__(self, backend: keyring.backend.KeyringBackend | None = None) -> None:
        self.backend = backend if backend is not None else keyring.get_keyring()
        self._memory: dict[str, str] = {}
        self.notice = ""
        if isinstance(self.backend, fail.Keyring) or self.backend.priority <= 0:
            self.notice = NO_KEYRING_NOTICE

    @property
    def demo_only(self) -> bool:
        return bool(self.notice)

    @property
    def label(self) -> str:
        return "demo-only session store (memory)" if self.demo_only else f"OS keyring ({self.backend.name})"

    def open_session(self, user_id: str) -> Session:
        """A fresh random secret for this sign-in, replacing any earlier one of the user."""
        secret = secrets.token_urlsafe(32)
        self._put(user_id, secret)
        return Session(user_id, hashlib.sha256(secret.encode()).hexdigest())

    def is_current(self, session: Session) -> bool:
        secret = self._get(session.user_id)
        return secret is not None and secrets.compare_digest(
            hashlib.sha256(secret.encode()).hexdigest(), session.fingerprint
        )

    def close_session(self, session: Session) -> None:
        self._delete(session.user_id, "session")

    def keep_tokens(self, user_id: str, tokens: dict[str, str]) -> None:
        """The provider's tokens of a signed-in user (ID, access, refresh), replacing earlier ones."""
        self.keep_record("tokens", user_id, tokens)

    def tokens(self, user_id: str) -> dict[str, str]:
        return self.record("tokens", user_id)

    def forget_tokens(self, user_id: str) -> None:
        self.forget_record("tokens", user_id)

    def keep_record(self, kind: str, user_id: str, record: dict[str, Any]) -> None:
        """A secret record of one user (``kind``: "tokens", "shift"), as JSON, replacing earlier ones."""
        self._put(user_id, json.dumps(record), kind)

    def record(self, kind: str, user_id: str) -> dict[str, Any]:
        """The record, or {} when there is none (or it cannot be read)."""
        try:
            text = self._get(user_id, kind)
            value = json.loads(text) if text else {}
        except (ValueError, keyring.errors.KeyringError):
            return {}
        return value if isinstance(value, dict) else {}

    def forget_record(self, kind: str, user_id: str) -> None:
        self._delete(user_id, kind)

    def _put(self, user_id: str, secret: str, kind: str = "session") -> None:
        if not self.demo_only:
            try:
                self.backend.set_password(SERVICE, f"{kind}:{user_id}", secret)
                return
            except keyring.errors.KeyringError as exc:  # e.g. a locked keyring: say so, keep working
                self.notice = f"The OS keyring refused the session secret ({exc}); using the demo-only store."
        self._memory[f"{kind}:{user_id}"] = secret

    def _get(self, user_id: str, kind: str = "session") -> str | None:
        if self.demo_only:
            return self._memory.get(f"{kind}:{user_id}")
        return self.backend.get_password(SERVICE, f"{kind}:{user_id}")

    def _delete(self, user_id: str, kind: str) -> None:
        self._memory.pop(f"{kind}:{user_id}", None)
        if not self.demo_only:
            try:
                self.backend.delete_password(SERVICE, f"{kind}:{user_id}")
            except keyring.errors.PasswordDeleteError:
                pass
