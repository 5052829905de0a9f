"""Signing in and out at a shared ward computer, and which workspace the signed-in user gets:
the session secret lives in the OS keyring (or the demo-only store), and the workspace is
whichever the policies open to the user (``workstation`` resource, policies/resources/workstation.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from authz import Decision

from . import resources
from .access import AccessService
from .credentials import SecretStore, Session
from .store import Store
from .users import SignedInUser, UserDirectory

# The workspaces in the order a user holding several gets them.
WORKSPACES = ("clinical", "compliance", "engineering")


@dataclass(frozen=True)
class Workspace:
    """The workspace the policies open to a user ("" when none), and the decision behind it
    (its outputs say what an empty patient list tells the user; its reason, why none opened)."""

    name: str
    decision: Decision

    @classmethod
    def closed(cls) -> Workspace:
        """No workspace: nobody is signed in."""
        return cls("", Decision.refused("open_clinical_workspace", "Sign in first."))

    @property
    def empty_list(self) -> str:
        text = self.decision.output("empty_list")
        return text if isinstance(text, str) else ""


class SessionService:
    def __init__(self, store: Store, users: UserDirectory, secrets: SecretStore, access: AccessService) -> None:
        self.store, self.users, self.secrets, self.access = store, users, secrets, access
        self.session: Session | None = None

    def sign_in(self, user_id: str, password: str) -> SignedInUser | None:
        """Authenticates and opens a session whose secret lives in the keyring (or the demo store)."""
        user = self.users.authenticate(user_id, password)
        if user is not None:
            self.sign_out()
            self.session = self.secrets.open_session(user.id)
        return user

    def sign_out(self) -> None:
        if self.session is not None:
            self.secrets.close_session(self.session)
            self.session = None

    def workspace(self, user: SignedInUser) -> Workspace:
        actions = [f"open_{name}_workspace" for name in WORKSPACES]
        decisions = self.access.decide(user, resources.workstation(), actions)
        for name, action in zip(WORKSPACES, actions, strict=True):
            if decisions[action].allowed:
                return Workspace(name, decisions[action])
        return Workspace("", decisions[actions[0]])

    def person(self, user_id: str) -> str:
        """How a queue names a user: their name with their identifier ("Dr. Eli Sato (er_eli)")."""
        staff = self.store.staff(user_id) if user_id else None
        return f"{staff['name']} ({user_id})" if staff else user_id

    def staff_choices(self) -> list[tuple[str, str]]:
        """(id, "name — role") of every account, for the sign-in list."""
        return [(r["id"], f"{r['name']} — {r['role'].replace('_', ' ')}") for r in self.store.staff_members()]
