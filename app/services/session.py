"""Signing in and out at a shared ward computer, and which workspace the signed-in user gets:
the session secret (and, with the hospital's provider, its tokens) lives in the OS keyring (or the
demo-only store), and the workspace is whichever the policies open to the user (``workstation``
resource, policies/resources/workstation.yaml).

Two ways in: the demo directory's users and password, or the hospital's OpenID Connect provider
(``provider``, app/services/oidc.py), whose verified sign-in the caller hands to
``sign_in_verified`` once the browser leg is done off the GUI thread."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authz import Decision
from authz.audit import AuditWriteError

from . import resources
from .access import AccessService
from .audit_trail import AuditTrail
from .credentials import SecretStore, Session
from .oidc import OidcClient, ProviderSignIn
from .shift import Resumed, ShiftPins
from .store import Store
from .users import HospitalUsers, SignedInUser, UserDirectory

# The workspaces in the order a user holding several gets them.
WORKSPACES = ("clinical", "personal", "compliance", "engineering")

log = logging.getLogger(__name__)


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
    def __init__(
        self,
        store: Store,
        users: UserDirectory,
        secrets: SecretStore,
        access: AccessService,
        provider: OidcClient | None = None,
        shift: ShiftPins | None = None,
        audit: AuditTrail | None = None,
    ) -> None:
        """``provider``: the hospital's OpenID Connect provider, with ``users`` the ``HospitalUsers``
        it admits, ``shift`` the PINs that resume a sign-in within the shift and ``audit`` where
        sign-ins are recorded; all None for the demo directory."""
        self.store, self.users, self.secrets, self.access = store, users, secrets, access
        self.provider, self.shift, self.audit = provider, shift, audit
        self.session: Session | None = None

    @property
    def demo(self) -> bool:
        """Whether users sign in from the demo directory (marked as demo on screen)."""
        return self.provider is None

    def sign_in(self, user_id: str, password: str) -> SignedInUser | None:
        """Authenticates and opens a session whose secret lives in the keyring (or the demo store)."""
        user = self.users.authenticate(user_id, password)
        if user is not None:
            self.sign_out()
            self.session = self.secrets.open_session(user.id)
        return user

    def sign_in_verified(self, signed_in: ProviderSignIn, pin: str = "") -> SignedInUser:
        """A sign-in the provider vouched for (its ID token verified): the user admitted as the
        claims describe them, a session opened, the tokens kept in the keyring only; with ``pin``,
        the user may resume with it for the rest of the shift."""
        user = self._admit(signed_in.user)
        tokens = {k: v for k, v in signed_in.tokens.items() if k in ("id_token", "access_token", "refresh_token")}
        self.secrets.keep_tokens(user.id, {k: str(v) for k, v in tokens.items()})
        if pin and self.shift is not None:
            self.shift.enrol(user, pin, signed_in.auth_time)
        return user

    def stepped_up(self, signed_in: ProviderSignIn) -> bool:
        """A fresh authentication at the provider (step-up): whether it is the signed-in user's; their
        tokens are then the new ones (the provider session a sign-out ends)."""
        if self.session is None or signed_in.user.id != self.session.user_id:
            return False
        tokens = {k: v for k, v in signed_in.tokens.items() if k in ("id_token", "access_token", "refresh_token")}
        self.secrets.keep_tokens(signed_in.user.id, {k: str(v) for k, v in tokens.items()})
        return True

    def resume(self, user_id: str, pin: str) -> Resumed | None:
        """A user who fully signed in this shift, back with their PIN (no provider needed); None
        when the PIN, the user or the window does not allow it."""
        resumed = self.shift.resume(user_id, pin) if self.shift is not None else None
        if resumed is not None:
            self._admit(resumed.user)
        return resumed

    def _admit(self, user: SignedInUser) -> SignedInUser:
        assert isinstance(self.users, HospitalUsers), "a provider sign-in needs the hospital's users"
        self.sign_out()
        self.users.admit(user)
        self.session = self.secrets.open_session(user.id)
        return user

    def record_sign_in(
        self, user: SignedInUser, workspace: Workspace, how: str, offline: bool, auth_time: datetime | None = None
    ) -> None:
        """The audit record of a hospital sign-in: how (``provider``, ``pin``), whether the provider
        could be reached, and when the provider last authenticated the user."""
        if self.audit is None:
            return
        details: dict[str, Any] = {"method": how, "offline": offline}
        if auth_time is not None:
            details["auth_time"] = auth_time.isoformat()
        self.audit.event(user, resources.workstation(), workspace.decision, "signed_in", details=details)

    def sign_out(self) -> str:
        """Ends the session: its secret, the user's tokens and what the provider said of them are
        forgotten. Returns the ID token the provider's session is ended with ("" when none)."""
        if self.session is None:
            return ""
        user_id = self.session.user_id
        id_token = self.secrets.tokens(user_id).get("id_token", "") if self.provider is not None else ""
        self.secrets.close_session(self.session)
        self.session = None
        if isinstance(self.users, HospitalUsers):
            self.secrets.forget_tokens(user_id)
            self.users.forget(user_id)
        return id_token

    def sign_in_refusal(self, user: SignedInUser) -> str:
        """Why the policies refuse this hospital account here (a role they do not know), or ""."""
        decision = self.access.decide_one(user, resources.workstation(), "sign_in")
        return "" if decision.allowed else decision.reason or "Your account may not sign in here: ask IT."

    def policy_refusal(self, user: SignedInUser) -> str:
        """Why the loaded policy set refuses this account's sign-in (a suspended account), or "".
        With no policy set loaded nothing decided it: the user signs in and the screen says why
        nothing opens."""
        refused = self._refused_by_policy(user)
        return "" if refused is None else refused.reason or "Your account may not sign in here: ask IT."

    def admission_withdrawn(self, user: SignedInUser) -> Decision | None:
        """The loaded policies' refusal of this signed-in user's ``sign_in`` now (their account was
        suspended since they signed in), recorded in the audit log; None while they are admitted."""
        refused = self._refused_by_policy(user)
        if refused is not None and self.audit is not None:
            try:
                self.audit.decisions(user, resources.workstation(), [refused])
            except AuditWriteError as exc:  # the user is signed out all the same: access fails closed
                log.warning("the withdrawn sign-in of %s was not recorded: %s", user.id, exc)
        return refused

    def _refused_by_policy(self, user: SignedInUser) -> Decision | None:
        decision = self.access.decide_one(user, resources.workstation(), "sign_in")
        return None if decision.allowed or not decision.policy else decision

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
        """(id, "name — role") of the demo accounts a person may sign in to the screens with, for
        the sign-in list; none when the hospital's provider signs users in. Which ones is the
        policies' ``sign_in`` on the workstation (a service account, such as the remote-monitoring
        gateway's, is refused there), and those it refuses but marks ``listed`` (a suspended
        account: the person is told why when they try). While no policy set is loaded there is
        nothing to ask: every account is listed, and signing in then says why nothing opens."""
        if not self.demo:
            return []
        members = self.store.staff_members()
        accounts = [SignedInUser(r["id"], r["name"], (r["role"],)) for r in members]
        if self.access.engine() is not None:
            workstation = resources.workstation()
            decisions = {a.id: self.access.decide_one(a, workstation, "sign_in") for a in accounts}
            allowed = {i for i, d in decisions.items() if d.allowed or d.output("listed") is True}
            members = [r for r in members if r["id"] in allowed]
        return [(r["id"], f"{r['name']} — {r['role'].replace('_', ' ')}") for r in members]
