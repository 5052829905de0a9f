"""Firmware updates for an implanted device: requested, approved by one, approved (a physician
and a manufacturer engineer, neither the requester), scheduled, applied; or rejected. Every step
is a decision of the device policy (policies/resources/device.yaml), which also says, for an
approval, which role approved and the state the update moves to. Persisted and audited."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from authz import Decision, Resource

from . import resources
from .access import refuse
from .clinical import ClinicalService
from .firmware_catalogue import versions_for
from .users import SignedInUser

SCHEDULE_AHEAD = timedelta(days=365)  # how far ahead an update may be scheduled
IN_PROGRESS = ("requested", "approved_by_one", "approved", "scheduled")
STEPS = (
    "request_firmware_update",
    "approve_firmware_update",
    "reject_firmware_update",
    "schedule_firmware_update",
    "apply_firmware_update",
)
# The state each step (other than an approval, whose outcome the policy gives) moves an update to,
# and the event it is recorded as.
MOVES = {
    "request_firmware_update": ("requested", "firmware_requested"),
    "approve_firmware_update": ("", "firmware_approved"),
    "reject_firmware_update": ("rejected", "firmware_rejected"),
    "schedule_firmware_update": ("scheduled", "firmware_scheduled"),
    "apply_firmware_update": ("applied", "firmware_applied"),
}


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
        return cls(
            row["id"],
            row["device_id"],
            row["target_version"],
            row["state"],
            row["requested_by"],
            tuple(approvals or ()),
            row["requested_at"],
        )

    def attribute(self) -> dict[str, Any]:
        """``R.attr.update`` as the device policy reads it."""
        return {
            "state": self.state,
            "requested_by": self.requested_by,
            "target_version": self.target_version,
            "approvals": [dict(a) for a in self.approvals],
        }


@dataclass(frozen=True)
class DeviceRow:
    """A device as a manufacturer's engineer sees it: no patient identifiers, its firmware and update."""

    device_id: str
    patient_id: str  # internal key only, for the de-identified export; never shown
    model: str
    firmware_version: str
    update: FirmwareUpdate | None


class FirmwareService(ClinicalService):
    def current(self, device_id: str) -> FirmwareUpdate | None:
        """The update in progress, else the latest one, else None."""
        rows = [FirmwareUpdate.from_row(r) for r in self.store.firmware_updates_for(device_id)]
        return next((u for u in rows if u.state in IN_PROGRESS), rows[0] if rows else None)

    def devices(self, user: SignedInUser) -> list[DeviceRow]:
        """The devices whose data this user may view (each decided by the device policy)."""
        known = {d["id"]: d for d in self.store.devices()}
        candidates = [r for r in (self._resource(d) for d in known.values()) if r is not None]
        return [
            DeviceRow(
                r.id,
                known[r.id]["patient_id"],
                known[r.id]["model"],
                known[r.id]["firmware_version"],
                self.current(r.id),
            )
            for r in self.access.permitted(user, candidates, "view_device_data")
        ]

    def decisions(self, user: SignedInUser, device_id: str) -> dict[str, Decision]:
        """Each step on the device's current update, as the device panel offers it."""
        device = self.store.device(device_id)
        resource = self._resource(device) if device else None
        if resource is None:
            return {a: Decision.refused(a, "There is no such device.") for a in STEPS}
        return self.access.decide(user, resource, STEPS)

    def versions(self, device_id: str) -> list[str]:
        """The versions this device may be updated to: its model's released ones but the installed one."""
        device = self.store.device(device_id)
        if device is None:
            return []
        return [v for v in versions_for(device["model"]) if v != device["firmware_version"]]

    def check_version(self, device_id: str, text: str) -> str:
        """Why ``text`` is not a version this device may be updated to, or "" (checked as it is typed)."""
        version = text.strip()
        if not version:
            return "Enter the firmware version to update to."
        device = self.store.device(device_id)
        if device is None:
            return "There is no such device."
        if version == device["firmware_version"]:
            return f"The device already runs firmware {version}."
        offered = self.versions(device_id)
        if version not in offered:
            listed = ", ".join(offered) or "none"
            return f"Firmware {version!r} is not a released version for the {device['model']} (released: {listed})."
        return ""

    def schedule_window(self) -> tuple[date, date]:
        """The first and last day an update may be scheduled for."""
        today = self.clock().date()
        return today, today + SCHEDULE_AHEAD

    def check_date(self, text: str) -> str:
        """Why ``text`` is not a date the update may be applied on (today or later, within a year), or ""."""
        try:
            day = date.fromisoformat(text.strip())
        except ValueError:
            return "Choose the date the update is to be applied (YYYY-MM-DD)."
        today, last = self.schedule_window()
        if day < today:
            return f"{day.isoformat()} is in the past: choose today or a later date."
        if day > last:
            return f"{day.isoformat()} is more than a year ahead: choose a date within a year."
        return ""

    def step(self, user: SignedInUser, action: str, device_id: str, value: str = "") -> FirmwareUpdate:
        """One step of the device's update (raises Refused saying why not). ``value``: the target
        version of a request (one of the model's released versions), the date of a schedule
        (YYYY-MM-DD), the comment of a rejection."""
        if action not in MOVES:
            raise refuse(action, f"Unknown firmware step {action!r}.")
        problem = (
            self.check_version(device_id, value)
            if action == "request_firmware_update"
            else self.check_date(value)
            if action == "schedule_firmware_update"
            else ""
        )
        if problem:
            raise refuse(action, problem)
        device = self.store.device(device_id)
        resource = self._resource(device) if device else None
        if resource is None:
            raise refuse(action, "There is no such device.")
        update = self.current(device_id)
        if action != "request_firmware_update" and update is None:
            raise refuse(action, "There is no firmware update for this device.")
        decision = self.access.require(user, resource, action)
        if action == "request_firmware_update":
            update = FirmwareUpdate(
                f"fw-{uuid.uuid4().hex[:12]}",
                device_id,
                value.strip(),
                "requested",
                user.id,
                (),
                self.clock().isoformat(),
            )
            self.audit.event(user, resource, decision, "firmware_requested", details=self._details(update))
            self.store.add_firmware_update({**update.__dict__, "approvals": []})
            return update
        assert update is not None
        return self._move(user, resource, decision, update, value)

    def _move(
        self, user: SignedInUser, resource: Resource, decision: Decision, update: FirmwareUpdate, comment: str
    ) -> FirmwareUpdate:
        state, event = MOVES[decision.action]
        approvals = update.approvals
        details = self._details(update)
        if decision.action == "approve_firmware_update":
            state, role = decision.output("firmware_state"), decision.output("approval_role")
            if not isinstance(state, str) or not isinstance(role, str):
                raise refuse(
                    decision.action,
                    f"The policy that allowed the approval ({decision.rule}) does not "
                    "say which role approved and what follows; ask the policy team.",
                )
            approvals = (*approvals, {"by": user.id, "role": role})
        if decision.action == "schedule_firmware_update":
            details["scheduled_for"] = date.fromisoformat(comment.strip()).isoformat()
        if decision.action == "reject_firmware_update":
            details["comment"] = comment.strip()
        moved = FirmwareUpdate(
            update.id,
            update.device_id,
            update.target_version,
            state,
            update.requested_by,
            approvals,
            update.requested_at,
        )
        self.audit.event(user, resource, decision, event, details={**details, "state": state})
        self.store.update_firmware_update(update.id, state, moved.approvals)
        if state == "applied":
            self.store.set_device_firmware(update.device_id, update.target_version)
        return moved

    @staticmethod
    def _details(update: FirmwareUpdate) -> dict[str, Any]:
        return {"update_id": update.id, "state": update.state, "target_version": update.target_version}

    def _resource(self, device: dict[str, Any]) -> Resource | None:
        """The device as the device policy reads it, with its update; None when its patient is unknown."""
        patient = self.store.patient(device["patient_id"])
        if patient is None:
            return None
        update = self.current(device["id"])
        return resources.device(
            device["id"], device["manufacturer_id"], patient, update.attribute() if update else None
        )
