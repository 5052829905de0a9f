"""What the status bar shows: the policy set and its age, online or not (the built-in demo set has
no server to be online with, and says only what it is), the audit backlog, and whether session
secrets are kept in a real keyring. A policy poll that failed or stalled (the sync
ends a stalled poll at its deadline) reads "offline" and "update failed: <the sync's reason>". On a
canary workstation it shows IT the bundle held in shadow: its flips, its decisions, when it activates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, timedelta

from authz.audit import AuditChain
from authz.audit_ship import AuditShipper
from authz.sync import PolicySync, ShadowState

from .credentials import SecretStore
from .oidc import OidcClient

SEP = " · "  # between the parts of the line, as between its fields: a part may hold commas itself
BUILT_IN = "built-in demo set"  # the policies shipped with the app, used when no policy server is set up


@dataclass(frozen=True)
class Status:
    policy_version: str
    policy_age: str  # "3 h", "2 d"; "" for the built-in policies
    online: bool | None  # whether the policy server answered; None when there is none (the built-in set)
    audit_backlog: int | None  # records not yet uploaded; None when no upload is configured
    message: str
    managed: bool = False  # some settings are IT's (the managed file)

    @property
    def text(self) -> str:
        age = f" ({self.policy_age} old)" if self.policy_age else ""
        backlog = (
            "audit upload not configured" if self.audit_backlog is None else f"audit backlog: {self.audit_backlog}"
        )
        online = "" if self.online is None else " · online" if self.online else " · offline"
        return (
            f"Policies: {self.policy_version}{age}{online} · {backlog}"
            + (f" · {self.message}" if self.message else "")
            + (" · managed by IT" if self.managed else "")
        )


def age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 3600:
        return f"{max(seconds // 60, 0)} min"
    return f"{seconds // 3600} h" if seconds < 86400 else f"{seconds // 86400} d"


class StatusService:
    def __init__(
        self,
        sync: PolicySync | None,
        shipper: AuditShipper | None,
        secrets: SecretStore,
        managed: bool = False,
        data_dir_warnings: Sequence[str] = (),
        sign_in: OidcClient | None = None,
        audit: AuditChain | None = None,
    ) -> None:
        """``data_dir_warnings``: what the start found wrong with the data directory's modes (and
        repaired), shown until the next start for the user to tell IT. ``sign_in``: the hospital's
        provider, whose last contact says whether only PIN resume is possible (the offline grace).
        ``audit``: the audit log, whose guard may be refusing or unreachable: IT must hear of it,
        since records after the last signed checkpoint are not yet protected."""
        self.sync, self.shipper, self.secrets, self.managed = sync, shipper, secrets, managed
        self.audit = audit
        self.data_dir_warnings = list(data_dir_warnings)
        self.sign_in = sign_in

    def no_policy_reason(self) -> str:
        """Why no policy set is loaded (the sync's words), or "" to use the default."""
        return self.sync.state().reason if self.sync is not None else ""

    def status(self) -> Status:
        status = self._status()
        failing = self.shipper.last_error if self.shipper is not None else ""
        message = SEP.join(
            filter(
                None,
                [
                    status.message,
                    failing and f"audit upload failing: {failing}",
                    self._checkpoint_notice(),
                    self._data_dir_notice(),
                    self._sign_in_notice(),
                ],
            )
        )
        return replace(status, message=message, managed=self.managed)

    def _checkpoint_notice(self) -> str:
        error = self.audit.checkpoint_error if self.audit is not None else ""
        return f"audit log not checkpointed: {error}" if error else ""

    def _sign_in_notice(self) -> str:
        if self.sign_in is None or not self.sign_in.unreachable:
            return ""
        return (
            "hospital sign-in unreachable (offline): only staff who signed in this shift can come back, with their PIN"
        )

    def _data_dir_notice(self) -> str:
        if not self.data_dir_warnings:
            return ""
        more = len(self.data_dir_warnings) - 1
        return f"data directory repaired: {self.data_dir_warnings[0]}" + (f" (and {more} more)" if more else "")

    def _status(self) -> Status:
        backlog = self.shipper.state().pending if self.shipper is not None else None
        notice = self.secrets.notice and "demo-only session store (no OS keyring)"
        if self.sync is None:
            return Status(BUILT_IN, "", None, backlog, notice)
        state = self.sync.state()
        online = state.last_success is not None and not state.last_error
        failed = f"update failed: {state.last_error}" if state.last_error else ""
        if state.version is None:
            said = state.last_error in state.reason  # the reason already quotes a failed start
            return Status("none", "", online, backlog, SEP.join(filter(None, [state.reason, "" if said else failed])))
        message = SEP.join(
            filter(
                None,
                [
                    "policies are older than allowed: ask IT to check the policy server" if state.stale else "",
                    failed,
                    notice,
                ],
            )
        )
        message = SEP.join(filter(None, [message, shadow_text(state.shadow), state.rollout]))
        return Status(f"v{state.version}", age(state.age) if state.age is not None else "", online, backlog, message)


def shadow_text(shadow: ShadowState | None) -> str:
    """What IT reads of a bundle held in shadow: "shadow bundle v2: 3 flips in 1,200 decisions,
    activates at 2026-12-03 08:00 UTC" (and what was not evaluated or not audited, if anything)."""
    if shadow is None:
        return ""
    counts = shadow.counts
    when = shadow.activates_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = f"shadow bundle v{shadow.version}: {counts.summary()}, activates at {when}"
    extra = [
        f"{counts.dropped:,} not evaluated (queue full)" if counts.dropped else "",
        f"{counts.unaudited:,} flips not audited ({counts.last_error})" if counts.unaudited else "",
    ]
    return "; ".join(filter(None, [text, *extra]))
