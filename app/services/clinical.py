"""What the clinical services have in common: the store they read and write, the access service
that asks the engine, the audit trail that records what was done, and the clock the policies see.
All four are injected, so a test builds each service on real parts and sets the time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from .access import AccessService
from .audit_trail import AuditTrail
from .store import Store


class ClinicalService:
    def __init__(
        self,
        store: Store,
        access: AccessService,
        audit: AuditTrail,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.access, self.audit, self.clock = store, access, audit, clock
