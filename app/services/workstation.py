"""The composition root of the service layer: it builds the store, the users, the active policy
engine and the audit log once, and gives each feature's service exactly what it needs. It holds
no logic of its own (Qt-free, so everything is tested without a display)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from authz import Engine
from authz.audit import AuditChain
from authz.audit_ship import AuditShipper
from authz.guard import GuardClient, LocalFloor, default_guard
from authz.sync import PolicySync, VersionFloor

from .access import AccessService
from .admin import AdminService
from .audit_trail import AuditTrail
from .break_glass import BreakGlassService, BreakGlassSessions, Principals
from .compliance import ComplianceService
from .consent import ConsentService
from .credentials import SecretStore
from .data_dir import own_data_directory
from .delegation import DelegationService
from .export import ExportService
from .firmware import FirmwareService
from .oidc import OidcClient, config_from
from .patients import PatientService
from .session import SessionService
from .settings import Settings
from .shift import ShiftPins
from .status import StatusService
from .store import Store
from .users import DemoUserDirectory, HospitalUsers, UserDirectory

BUNDLED_POLICIES = Path(__file__).resolve().parents[2] / "policies"
FLOOR_FILE = "policy-floor"  # the fallback rollback floor, apart from bundles/active.bundle


def rollback_floor(data_dir: Path, guard: GuardClient | None) -> VersionFloor:
    """The highest policy version ever activated: kept by the guard when there is one (the
    signed-in user cannot lower it), else in a file of the data directory beside, not in, the
    bundle it protects (stops a swapped or deleted active.bundle, not a user who edits both)."""
    return guard if guard is not None else LocalFloor(data_dir / FLOOR_FILE)


class Workstation:
    """With ``sync`` the policies come from the policy server (last-known-good offline, deny-all
    with a reason when there is none); without it, from the bundled ``policies`` directory."""

    def __init__(
        self,
        data_dir: Path,
        policies: Path = BUNDLED_POLICIES,
        workstation_id: str | None = None,
        sync: PolicySync | None = None,
        shipper_factory: Callable[[AuditChain], AuditShipper] | None = None,
        secrets: SecretStore | None = None,
        idle_lock_seconds: int = 600,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
        settings: Settings | None = None,
        guard: GuardClient | None = None,
        data_dir_warnings: Sequence[str] = (),
        open_browser: Callable[[str], object] | None = None,
    ) -> None:
        """``clock`` (wall, UTC) and ``monotonic`` time break-glass sessions; a test moves them.
        ``settings`` are what the settings screen lists (the caller applies them: app/main.py).
        ``guard``: the audit guard (authz/guard.py); by default the installed one, if any: it
        signs the audit log's checkpoints and keeps the rollback floor.
        ``data_dir_warnings``: what the caller's own check of the data directory repaired (app/main.py
        checks it before the policy sync writes its bundles), shown with this one's.
        ``open_browser``: how the hospital's sign-in is shown (the system browser by default; a test
        drives the provider's pages itself), when the settings name an OpenID provider."""
        self.data_dir = data_dir
        self.data_dir_warnings = [*data_dir_warnings, *own_data_directory(data_dir)]
        self.settings = settings or Settings.defaults()
        self.idle_lock_seconds = idle_lock_seconds
        self.store = Store(data_dir / "ccc.db")
        self.provider = self._provider(open_browser, clock)
        self.users: UserDirectory = HospitalUsers(self.store) if self.provider else DemoUserDirectory(self.store)
        self.guard = guard if guard is not None else default_guard()
        self.chain = AuditChain(
            data_dir / "audit.db", workstation_id=workstation_id or socket.gethostname(), guard=self.guard
        )
        self.floor = rollback_floor(data_dir, self.guard)
        if sync is not None and sync.floor is None:
            sync.floor = self.floor  # app/main.py gives it before the offline start; a test may not
        self.secrets = secrets or SecretStore()
        self.status = StatusService(
            sync,
            shipper_factory(self.chain) if shipper_factory else None,
            self.secrets,
            self.settings.managed,
            self.data_dir_warnings,
            sign_in=self.provider,
            audit=self.chain,
        )
        bundled = None if sync else Engine.from_directory(policies, bundle_version="bundled")
        self.engine: Callable[[], Engine | None] = (lambda: sync.engine) if sync is not None else (lambda: bundled)
        self.sessions = BreakGlassSessions(self.store, clock, monotonic)
        self.sync = sync
        self.access = AccessService(
            self.engine,
            Principals(self.users, self.sessions),
            self.status.no_policy_reason,
            clock,
            observe=sync.observe if sync is not None else None,
        )
        access = self.access
        self.audit = AuditTrail(self.chain, lambda: access.bundle_version)
        if sync is not None:
            sync.flip_recorder = self.audit.shadow_flips  # one audit record per shadow flip
        services = (self.store, self.access, self.audit)
        self.session = SessionService(
            self.store, self.users, self.secrets, self.access, *self._sign_in(clock), audit=self.audit
        )
        self.patients = PatientService(*services, clock=clock)
        self.break_glass = BreakGlassService(
            self.store, self.sessions, self.users, self.access, self.audit, self._offline_pins
        )
        self.delegations = DelegationService(*services, clock=clock)
        self.consents = ConsentService(*services, clock=clock)
        self.exports = ExportService(*services, self.consents, clock=clock)
        self.firmware = FirmwareService(*services, clock=clock)
        self.compliance = ComplianceService(*services)
        self.admin = AdminService(*services, self.delegations, clock=clock)

    def _offline_pins(self) -> ShiftPins | None:
        """The shift's PINs while the hospital's provider cannot be reached, else None."""
        provider = self.session.provider
        return self.session.shift if provider is not None and provider.unreachable else None

    def _sign_in(self, clock: Callable[[], datetime]) -> tuple[OidcClient | None, ShiftPins | None]:
        """The provider and the shift's PINs (when IT allows PIN resume), or neither (the demo)."""
        hours = self.settings["pin_resume_hours"]
        if self.provider is None:
            return None, None
        return self.provider, ShiftPins(self.secrets, hours, clock) if hours else None

    def _provider(
        self, open_browser: Callable[[str], object] | None, clock: Callable[[], datetime]
    ) -> OidcClient | None:
        """The hospital's OpenID provider when the settings name one (nothing is asked of it yet).
        Its tokens are checked on the workstation's clock, as everything else here is."""
        if self.settings["sign_in_provider"] != "oidc":
            return None
        browser = {"open_browser": open_browser} if open_browser is not None else {}
        return OidcClient(config_from(self.settings), clock=lambda: clock().timestamp(), **browser)

    def close(self) -> None:
        """At exit: the audit log closed, with a last checkpoint of its head when there is a guard
        (the records since the previous one are then covered too); a bundle in shadow keeps its
        period and counts for the next start."""
        if self.sync is not None:
            self.sync.close()
        if self.provider is not None:
            self.provider.close()
        self.chain.close()
