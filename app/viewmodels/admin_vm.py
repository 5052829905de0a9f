"""The hospital administrator's tools (beside the review queue): staff, care teams, delegations in
force; care team changes, ending a delegation and suspending or reinstating a staff account, each
decided by the policies and audited by the service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from PySide6.QtCore import QObject, Signal

from app.services.access import Refused
from app.services.admin import Assignments
from app.services.storage import STORAGE_ERRORS
from app.services.store import Patient
from app.viewmodels.session_vm import SessionViewModel

__all__ = ["AdminViewModel", "Assignments", "Patient"]


class AdminViewModel(QObject):
    changed = Signal(object)  # Assignments | None (no tools for this user)

    def __init__(self, session: SessionViewModel) -> None:
        super().__init__()
        self.session = session
        self.service = session.workstation.admin
        self.assignments: Assignments | None = None
        session.signed_in.connect(lambda _user: self.refresh())

    def refresh(self) -> None:
        user = self.session.user
        if user is None or not self.service.tools(user).allowed:
            self.assignments = None
        else:
            self.assignments = self.service.assignments(user, datetime.now(UTC))
        self.changed.emit(self.assignments)

    def person(self, user_id: str) -> str:
        return self.session.workstation.session.person(user_id)

    def change(self, patient_id: str, member_id: str, action: str) -> str:
        """Adds or removes a care team member; why not, or ""."""
        return self._do(lambda user: self.service.change_care_team(user, patient_id, member_id, action))

    def revocation_refused(self, delegation_id: str) -> str:
        """Why this delegation may not be ended by this user, or "" (then the screen confirms)."""
        user = self.session.user
        if user is None:
            return "Sign in first."
        decision = self.service.revocation(user, delegation_id)
        return "" if decision.allowed else decision.reason

    def revoke(self, delegation_id: str) -> str:
        """Ends the delegation now; why not, or ""."""
        return self._do(lambda user: self.service.revoke_delegation(user, delegation_id))

    def account_change_refused(self, account_id: str, action: str) -> str:
        """Why this user may not suspend (or reinstate) the account, or "" (then the screen confirms)."""
        user = self.session.user
        if user is None:
            return "Sign in first."
        decision = self.service.account_change(user, account_id, action)
        return "" if decision.allowed else decision.reason

    def change_account(self, account_id: str, action: str) -> str:
        """Suspends or reinstates the staff account; why not, or ""."""
        return self._do(lambda user: self.service.change_account(user, account_id, action))

    def _do(self, change: Callable[..., object]) -> str:
        """A change by the signed-in user, then the screen shown again; why it was not made, or ""."""
        user = self.session.user
        if user is None:
            return "Sign in first."
        try:
            change(user)
        except Refused as refused:
            return str(refused)
        except STORAGE_ERRORS as exc:
            return f"Not recorded: {exc}"
        self.refresh()
        return ""
