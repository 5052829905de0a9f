"""Signed release directories: proof that a ``.deb`` (or any released file) is the one the vendor built.

A release directory holds the released files, ``SHA256SUMS`` (the ``sha256sum`` format, one
``<hex>  <name>`` line per file, so ``sha256sum -c`` reads it too) and ``SHA256SUMS.sig``, the
64-byte Ed25519 signature over the exact bytes of ``SHA256SUMS`` (so ``openssl pkeyutl -verify
-rawin`` checks it as well). The release key is an Ed25519 key pair like the policy key
(``ccc-authz keygen``) but a different one: whoever can sign policies must not thereby be able to
sign software, and the other way round.

Verifying checks the signature over ``SHA256SUMS`` before a byte of it is parsed, then every listed
file's SHA-256, and reports every problem it finds, each naming the file: a changed or missing
file, a changed ``SHA256SUMS`` or signature, a key that did not sign it, a package in the directory
that ``SHA256SUMS`` does not cover.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .bundle import BundleError, load_public_key

SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.sig"
PUBLISHED_KEY = "release-public.key"  # the signer's public half, published beside a release: for diagnosis only
SIGNATURE_SIZE = 64
MAX_SUMS_BYTES = 1024 * 1024  # a release lists a handful of files; refuse to read a huge file before checking it
RELEASED_SUFFIXES = (".deb",)  # files a release directory must not hold without SHA256SUMS naming them
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
_CHUNK = 1024 * 1024


class PackageError(BundleError):
    """A release directory that cannot be signed or verified as asked: says what is wrong."""


@dataclass
class Verification:
    """What verifying a release directory found: ``problems`` is empty when everything checks out."""

    files: dict[str, str] = field(default_factory=dict)  # name -> sha256 listed (and checked)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: SHA-256 of its raw 32 bytes, first 16 hex digits."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sums_text(directory: Path, names: Iterable[str]) -> bytes:
    """The ``SHA256SUMS`` bytes for ``names`` (plain file names in ``directory``), sorted by name."""
    lines = []
    for name in sorted(set(names)):
        _check_name(name)
        path = directory / name
        if not path.is_file():
            raise PackageError(f"{name}: not a file in {directory}")
        lines.append(f"{file_sha256(path)}  {name}\n")
    if not lines:
        raise PackageError(f"nothing to sign in {directory}")
    return "".join(lines).encode()


def sign_release(directory: Path, key: Ed25519PrivateKey, names: Iterable[str] | None = None) -> list[str]:
    """Writes ``SHA256SUMS`` over ``names`` (by default every released file in ``directory``) and
    ``SHA256SUMS.sig``; returns the names listed."""
    if names is None:
        names = [p.name for p in directory.iterdir() if p.is_file() and p.name.endswith(RELEASED_SUFFIXES)]
    listed = sorted(set(names))
    sums = sums_text(directory, listed)
    (directory / SUMS).write_bytes(sums)
    (directory / SIGNATURE).write_bytes(key.sign(sums))
    return listed


def verify_release(directory: Path, public_key: Ed25519PublicKey) -> Verification:
    """Checks ``SHA256SUMS.sig`` over ``SHA256SUMS`` under ``public_key`` (before parsing it), then
    every listed file. Never raises for a bad release: the problems are in the result."""
    result = Verification()
    sums = _read_limited(directory / SUMS, MAX_SUMS_BYTES, result)
    signature = _read_limited(directory / SIGNATURE, 4096, result)
    if sums is None or signature is None:
        return result
    if len(signature) != SIGNATURE_SIZE:
        result.problems.append(
            f"{SIGNATURE}: {len(signature)} bytes, not a {SIGNATURE_SIZE}-byte Ed25519 signature (altered or truncated)"
        )
        return result
    try:
        public_key.verify(signature, sums)
    except InvalidSignature:
        result.problems.append(_signature_problem(directory, public_key, signature, sums))
        return result
    # Only now, signed by the pinned key, is SHA256SUMS read.
    listed = _parse_sums(sums, result)
    for name, expected in listed.items():
        path = directory / name
        if not path.is_file():
            result.problems.append(f"{name}: listed in {SUMS} but missing from {directory}")
            continue
        actual = file_sha256(path)
        if actual != expected:
            result.problems.append(
                f"{name}: SHA-256 {actual[:16]}... does not match {SUMS} ({expected[:16]}...): "
                "the file was altered or damaged"
            )
            continue
        result.files[name] = expected
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.name.endswith(RELEASED_SUFFIXES) and path.name not in listed:
            result.problems.append(
                f"{path.name}: in {directory} but not listed in {SUMS}, so not covered by the signature"
            )
    return result


def _read_limited(path: Path, limit: int, result: Verification) -> bytes | None:
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        result.problems.append(f"{path.name}: missing from {path.parent}")
        return None
    except OSError as exc:
        result.problems.append(f"{path.name}: cannot be read ({exc.strerror})")
        return None
    if len(data) > limit:
        result.problems.append(f"{path.name}: larger than {limit} bytes, not read (altered?)")
        return None
    return data


def _signature_problem(directory: Path, pinned: Ed25519PublicKey, signature: bytes, sums: bytes) -> str:
    """Why the signature failed, as precisely as can be said without trusting anything unsigned: the
    key published beside the release is tried only to tell "another key signed this" from "altered"."""
    message = (
        f"{SIGNATURE} does not verify {SUMS} under the pinned key {fingerprint(pinned)}: "
        f"{SUMS} or its signature was altered, or another key signed them"
    )
    published = directory / PUBLISHED_KEY
    if not published.is_file():
        return message
    try:
        other = load_public_key(published)
        other.verify(signature, sums)
    except (BundleError, InvalidSignature):
        return message
    if fingerprint(other) == fingerprint(pinned):
        return message
    return (
        f"{SUMS} was signed by another key ({fingerprint(other)}, the {PUBLISHED_KEY} beside it), "
        f"not by the pinned release key {fingerprint(pinned)}: wrong key, or not the vendor's release"
    )


def _parse_sums(sums: bytes, result: Verification) -> dict[str, str]:
    listed: dict[str, str] = {}
    try:
        text = sums.decode("utf-8")
    except UnicodeDecodeError:
        result.problems.append(f"{SUMS}: not UTF-8 text")
        return listed
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            result.problems.append(f"{SUMS} line {number}: not '<sha256>  <file name>'")
            continue
        digest, name = match.groups()
        try:
            _check_name(name)
        except PackageError as exc:
            result.problems.append(f"{SUMS} line {number}: {exc}")
            continue
        if name in listed:
            result.problems.append(f"{SUMS} line {number}: {name} listed twice")
            continue
        listed[name] = digest
    if not listed and not result.problems:
        result.problems.append(f"{SUMS} lists no file")
    return listed


def _check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("-") or "\0" in name:
        raise PackageError(f"{name!r} is not a plain file name in the release directory")
    if name in (SUMS, SIGNATURE):
        raise PackageError(f"{name} cannot list itself")
