"""Firmware updates for an implanted device: requested, approved by one, approved (a physician
and a manufacturer engineer, neither the requester), scheduled, applied; or rejected. Every step
is a decision of the device policy (policies/resources/device.yaml), persisted and audited."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authz.audit import AuditChain, AuditRecord

from .store import Store
from .users import SignedInUser

IN_PROGRESS = ("requested", "approved_by_one", "approved", "scheduled")
ACTION_OF_EVENT = {"firmware_requested": "request_firmware_update", "firmware_approved": "approve_firmware_update",
                   "firmware_rejected": "reject_firmware_update", "firmware_scheduled": "schedule_firmware_update",
                   "firmware_applied": "apply_firmware_update"}
APPROVER_ROLES = ("physician", "manufacturer_engineer")


class FirmwareRefused(Exception):
    """The step was not allowed; the message says why."""


@dataclass(frozen=True)
class FirmwareUpdate:
    id: str
    device_id: str
    target_version: str
    state: str
    requested_by: str
    approvals: tuple[dict[str, str], ...]
    requested_at: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> FirmwareUpdate:
        approvals = row["approvals"]
        if isinstance(approvals, str):
            approvals = json.loads(approvals)
        return cls(row["id"], row["device_id"], row["target_version"], row["state"], row["requested_by"],
                   tuple(approvals or ()), row["requested_at"])

    def attribute(self) -> dict[str, Any]:
        """``R.attr.update`` as the device policy reads it."""
        return {"state": self.state, "requested_by": self.requested_by, "target_version": self.target_version,
                "approvals": [dict(a) for a in self.approvals]}


# (user, device id, action, update or None) -> (allowed, reason, rule)
DeviceDecision = Callable[[SignedInUser, str, str, "FirmwareUpdate | None"], tuple[bool, str, str]]


class FirmwareService:
    def __init__(self, store: Store, audit: AuditChain, decide: DeviceDecision,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store, self.audit, self.decide, self.clock = store, audit, decide, clock

    def current(self, device_id: str) -> FirmwareUpdate | None:
        """The update in progress, else the latest one, else None."""
        rows = [FirmwareUpdate.from_row(r) for r in self.store.firmware_updates_for(device_id)]
        return next((u for u in rows if u.state in IN_PROGRESS), rows[0] if rows else None)

    def request(self, user: SignedInUser, device_id: str, target_version: str) -> FirmwareUpdate:
        if not target_version.strip():
            raise FirmwareRefused("Enter the firmware version to update to.")
        self._check(user, device_id, "request_firmware_update", self.current(device_id))
        update = FirmwareUpdate(f"fw-{uuid.uuid4().hex[:12]}", device_id, target_version.strip(), "requested",
                                user.id, (), self.clock().isoformat())
        self.store.add_firmware_update({**update.__dict__, "approvals": []})
        self._audit(user, update, "firmware_requested")
        return update

    def approve(self, user: SignedInUser, update_id: str) -> FirmwareUpdate:
        update = self._get(update_id)
        self._check(user, update.device_id, "approve_firmware_update", update)
        role = next(r for r in user.roles if r in APPROVER_ROLES)
        approvals = (*update.approvals, {"by": user.id, "role": role})
        both = {a["role"] for a in approvals} == set(APPROVER_ROLES)
        return self._move(user, update, "approved" if both else "approved_by_one", "firmware_approved",
                          approvals=approvals)

    def reject(self, user: SignedInUser, update_id: str, comment: str) -> FirmwareUpdate:
        update = self._get(update_id)
        self._check(user, update.device_id, "reject_firmware_update", update)
        return self._move(user, update, "rejected", "firmware_rejected", comment=comment.strip())

    def schedule(self, user: SignedInUser, update_id: str, when: datetime) -> FirmwareUpdate:
        update = self._get(update_id)
        self._check(user, update.device_id, "schedule_firmware_update", update)
        return self._move(user, update, "scheduled", "firmware_scheduled", scheduled_for=when.isoformat())

    def mark_applied(self, user: SignedInUser, update_id: str) -> FirmwareUpdate:
        update = self._get(update_id)
        self._check(user, update.device_id, "apply_firmware_update", update)
        moved = self._move(user, update, "applied", "firmware_applied")
        self.store.set_device_firmware(update.device_id, update.target_version)
        return moved

    def _get(self, update_id: str) -> FirmwareUpdate:
        row = self.store.firmware_update(update_id)
        if row is None:
            raise FirmwareRefused("There is no such firmware update.")
        return FirmwareUpdate.from_row(row)

    def _check(self, user: SignedInUser, device_id: str, action: str, update: FirmwareUpdate | None) -> None:
        allowed, why, _rule = self.decide(user, device_id, action, update)
        if not allowed:
            raise FirmwareRefused(why)

    def _move(self, user: SignedInUser, update: FirmwareUpdate, state: str, event: str,
              approvals: tuple[dict[str, str], ...] | None = None, **details: str) -> FirmwareUpdate:
        moved = FirmwareUpdate(update.id, update.device_id, update.target_version, state, update.requested_by,
                               approvals if approvals is not None else update.approvals, update.requested_at)
        self._audit(user, moved, event, **details)
        self.store.update_firmware_update(update.id, state, moved.approvals)
        return moved

    def _audit(self, user: SignedInUser, update: FirmwareUpdate, event: str, **details: str) -> None:
        device = self.store.device(update.device_id)
        self.audit.append(AuditRecord(
            "event", user.id, ACTION_OF_EVENT[event], list(user.roles), "device",
            update.device_id, device["patient_id"], "EFFECT_ALLOW", event_type=event,
            details={"update_id": update.id, "state": update.state, "target_version": update.target_version,
                     **details}))
