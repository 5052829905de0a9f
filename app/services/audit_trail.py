"""The one place the app writes audit records: decisions as the engine made them (the same
records the CLI writes, from ``authz.audit``), events with the decision that allowed them, and
annotations that reference an event. Durable before the caller goes on: data a decision allowed
is shown only once its record is committed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from authz import Decision, Resource
from authz.audit import AuditChain, AuditRecord, decision_record, event_record, shadow_flip_record
from authz.shadow import ShadowFlip

from .users import SignedInUser


class AuditTrail:
    def __init__(self, chain: AuditChain, bundle_version: Callable[[], str] = lambda: "") -> None:
        self.chain = chain
        self.bundle_version = bundle_version

    def decisions(
        self, user: SignedInUser, resource: Resource, decisions: Iterable[Decision], purpose_of_use: str = "TREAT"
    ) -> None:
        """Every decision of one question, committed together (raises AuditWriteError)."""
        version = self.bundle_version()
        self.chain.append_many(
            [
                decision_record(user, resource, d, bundle_version=version, purpose_of_use=purpose_of_use)
                for d in decisions
            ]
        )

    def event(
        self,
        user: SignedInUser,
        resource: Resource,
        decision: Decision,
        event_type: str,
        *,
        details: dict[str, Any] | None = None,
        purpose_of_use: str = "",
        justification: str = "",
    ) -> AuditRecord:
        """Something the decision allowed, and what it was."""
        return self.chain.append(
            event_record(
                user,
                resource,
                decision,
                event_type,
                details=details,
                purpose_of_use=purpose_of_use,
                justification=justification,
                bundle_version=self.bundle_version(),
            )
        )

    def events(
        self, user: SignedInUser, done: Iterable[tuple[Resource, Decision, str, dict[str, Any]]]
    ) -> list[AuditRecord]:
        """Several things decisions allowed, each (resource, decision, event type, details),
        committed together: all are on the record or none is (raises AuditWriteError)."""
        version = self.bundle_version()
        return self.chain.append_many(
            [
                event_record(user, resource, decision, event_type, details=details, bundle_version=version)
                for resource, decision, event_type, details in done
            ]
        )

    def listed(self, user: SignedInUser, kind: str, action: str, method: str, shown: list[str]) -> AuditRecord:
        """One record for a list the store selected through a query plan (not one per row: no
        row was checked one by one): who asked which action on which resource kind, how the rows
        were selected (the plan's filter kind, or row by row), and the ids shown. Opening any of
        them is a decision recorded apart."""
        return self.chain.append(
            AuditRecord(
                "event",
                user.id,
                action,
                list(user.roles),
                resource_kind=kind,
                bundle_version=self.bundle_version(),
                event_type="listed",
                details={"filter": method, "shown": list(shown)},
            )
        )

    def shadow_flips(self, flips: list[ShadowFlip]) -> list[AuditRecord]:
        """Live decisions that the bundle held in shadow decides otherwise, committed together
        (written from the shadow evaluation's thread: the chain serializes appends)."""
        return self.chain.append_many([shadow_flip_record(flip) for flip in flips])

    def closed_by_the_system(
        self,
        user_id: str,
        resource: Resource,
        event_type: str,
        *,
        details: dict[str, Any] | None = None,
        purpose_of_use: str = "",
    ) -> AuditRecord:
        """What no one decided (an emergency access running out): recorded with no effect."""
        return self.chain.append(
            AuditRecord(
                "event",
                user_id,
                resource_kind=resource.kind,
                resource_id=resource.id,
                patient_id=str(resource.attr.get("patient_id", "")),
                bundle_version=self.bundle_version(),
                purpose_of_use=purpose_of_use,
                event_type=event_type,
                details=dict(details or {}),
            )
        )

    def annotate(self, user: SignedInUser, event_id: str, text: str, decision: Decision) -> AuditRecord:
        """A review step or a late justification (the decision's action), referencing its event."""
        return self.chain.annotate(
            event_id,
            user.id,
            text,
            event_type=decision.action,
            principal_roles=list(user.roles),
            action=decision.action,
            effect=decision.effect.value,
            policy=decision.policy,
            rule=decision.rule,
            bundle_version=self.bundle_version(),
        )

    def get(self, record_id: str) -> AuditRecord | None:
        return self.chain.get(record_id)

    def records(self) -> Iterable[AuditRecord]:
        return self.chain.records()
