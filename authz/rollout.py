"""Signed rollout notices: the policy team's word on a bundle held in shadow.

A canary workstation holds a newly verified bundle in shadow for the period IT manages
(``policy_shadow_hours``), then activates it. The policy team can end that period early or stop
the bundle for good with a notice, signed with the bundle key, that names one bundle exactly (its
version and the SHA-256 of its file):

    b"CCCNOTE1"            8 bytes, format marker
    signature             64 bytes, Ed25519 over NOTICE_DOMAIN + the JSON that follows
    JSON                  {"format": 1, "decision": "promote" | "withdraw",
                           "bundle_version": N, "bundle_sha256": "...", "issued_at": "..."}

The signature is checked before the JSON is parsed. It covers a fixed domain prefix, so no other
signed object of the same key (a bundle's payload, a release list) can pass for a notice. The
policy server only hands the file out (``/rollout.notice`` beside ``/current.bundle``): a hostile
server can withhold a notice, as it can withhold a bundle, but cannot make or alter one, so it can
neither promote a bundle early nor withdraw it. A notice naming another bundle is ignored: an old
notice replayed cannot act on a new bundle.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .bundle import MAX_VERSION, BundleError, VerifiedBundle, split_signed

NOTICE_MAGIC = b"CCCNOTE1"
NOTICE_DOMAIN = b"CCC rollout notice v1\n"
NOTICE_FORMAT = 1
MAX_NOTICE_BYTES = 64 * 1024
NOTICE_FILE = "rollout.notice"
PROMOTE, WITHDRAW = "promote", "withdraw"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class NoticeError(BundleError):
    """A rollout notice that must not be used: says exactly what is wrong with it."""


@dataclass(frozen=True)
class RolloutNotice:
    """A verified notice: ``decision`` applies to the bundle with exactly this version and hash."""

    decision: str  # PROMOTE or WITHDRAW
    bundle_version: int
    bundle_sha256: str
    issued_at: str

    def names(self, bundle: VerifiedBundle) -> bool:
        return self.bundle_sha256 == bundle.sha256 and self.bundle_version == bundle.manifest.version

    @property
    def issued(self) -> str:
        """When it was signed, as the status bar writes times ("2026-12-03 07:36 UTC"); a time
        without a zone (not one ``sign_notice`` writes) as it is."""
        when = datetime.fromisoformat(self.issued_at)
        if when.tzinfo is None:
            return when.strftime("%Y-%m-%d %H:%M")
        return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

    def describe(self) -> str:
        verb = "promoted" if self.decision == PROMOTE else "withdrawn"
        return f"bundle v{self.bundle_version} {verb} by a signed notice of {self.issued}"


def sign_notice(bundle: VerifiedBundle, decision: str, key: Ed25519PrivateKey, issued_at: str | None = None) -> bytes:
    """The notice file that promotes or withdraws ``bundle`` (verified, so its hash is known)."""
    if decision not in (PROMOTE, WITHDRAW):
        raise NoticeError(f"a rollout decision is {PROMOTE!r} or {WITHDRAW!r}, not {decision!r}")
    body = {
        "format": NOTICE_FORMAT,
        "decision": decision,
        "bundle_version": bundle.manifest.version,
        "bundle_sha256": bundle.sha256,
        "issued_at": issued_at or datetime.now(UTC).isoformat(timespec="seconds"),
    }
    payload = json.dumps(body, sort_keys=True).encode()
    return NOTICE_MAGIC + key.sign(NOTICE_DOMAIN + payload) + payload


def verify_notice(data: bytes, public_key: Ed25519PublicKey) -> RolloutNotice:
    """Checks the signature before parsing anything, then every field."""
    signature, payload = split_signed(
        data, NOTICE_MAGIC, MAX_NOTICE_BYTES, "rollout notice", "rollout notice", NoticeError
    )
    try:
        public_key.verify(signature, NOTICE_DOMAIN + payload)
    except InvalidSignature:
        raise NoticeError(
            "rollout notice signature does not match the pinned public key: it was altered, or not "
            "signed by the policy team"
        ) from None
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise NoticeError(f"rollout notice is not JSON: {exc!s:.200}") from None
    return _notice(body)


def _notice(body: object) -> RolloutNotice:
    if not isinstance(body, dict):
        raise NoticeError(f"rollout notice is a JSON {type(body).__name__}, not an object")
    if body.get("format") != NOTICE_FORMAT or type(body.get("format")) is not int:
        raise NoticeError(f"rollout notice format {body.get('format')!r:.40} is not supported")
    decision, version, sha256, issued = (
        body.get("decision"),
        body.get("bundle_version"),
        body.get("bundle_sha256"),
        body.get("issued_at"),
    )
    if decision not in (PROMOTE, WITHDRAW):
        raise NoticeError(f"rollout notice decision {decision!r:.40} is not {PROMOTE!r} or {WITHDRAW!r}")
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise NoticeError(f"rollout notice bundle_version {version!r:.40} is not an integer from 1 to {MAX_VERSION}")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise NoticeError("rollout notice bundle_sha256 is not a SHA-256 hex digest")
    if not isinstance(issued, str) or len(issued) > 64:
        raise NoticeError("rollout notice issued_at is not a date and time")
    try:
        datetime.fromisoformat(issued)
    except ValueError:
        raise NoticeError(f"rollout notice issued_at {issued!r} is not an ISO date and time") from None
    return RolloutNotice(decision, version, sha256, issued)
