"""Signed policy bundles: how policies travel from the policy analysts to ward computers.

A bundle is one file:

    b"CCCBNDL1"            8 bytes, format marker
    signature             64 bytes, Ed25519 over everything that follows
    payload               a deterministic tar archive: manifest.json, then every policy file

The signature is checked against the pinned public key before a single byte of the payload is
parsed. The manifest names the bundle's monotonic version, its creation time, the SHA-256 of
every file, the test results that passed and the minimum app version; every file is checked
against it before the policies are compiled. Building is deterministic: the same policy files,
version and creation time give the same bytes (the creation time defaults to
``SOURCE_DATE_EPOCH``, else to the newest policy file's modification time).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import AuthzError

MAGIC = b"CCCBNDL1"
SIGNATURE_SIZE = 64
FORMAT = 1
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
MANIFEST = "manifest.json"


class BundleError(AuthzError):
    """A bundle that must not be used: says exactly what is wrong with it."""


@dataclass(frozen=True)
class Manifest:
    version: int
    created_at: str
    min_app_version: str
    files: dict[str, str]  # path -> sha256
    tests: dict[str, Any]

    def to_json(self) -> bytes:
        data = {
            "format": FORMAT,
            "version": self.version,
            "created_at": self.created_at,
            "min_app_version": self.min_app_version,
            "files": self.files,
            "tests": self.tests,
        }
        return json.dumps(data, sort_keys=True, indent=1).encode()


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose signature and every file hash have been checked."""

    manifest: Manifest
    files: dict[str, bytes]
    sha256: str  # of the whole bundle file

    def extract(self, directory: Path) -> Path:
        """Writes the policy files under ``directory`` (which must be empty or absent)."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return directory


# ---- keys ------------------------------------------------------------------------------------


def generate_keys(directory: Path) -> tuple[Path, Path]:
    """Writes ``private.key`` (mode 0600) and ``public.key``; refuses to overwrite existing keys."""
    private_path, public_path = directory / "private.key", directory / "public.key"
    for p in (private_path, public_path):
        if p.exists():
            raise BundleError(f"{p} already exists: keys are never overwritten (move it away first)")
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BundleError(f"{path}: not a readable Ed25519 private key ({exc.__class__.__name__})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path | bytes) -> Ed25519PublicKey:
    try:
        data = path if isinstance(path, bytes) else path.read_bytes()
        key = serialization.load_pem_public_key(data)
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path!s:.80}: not a readable Ed25519 public key ({exc.__class__.__name__})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError("the pinned key is not an Ed25519 public key")
    return key


# ---- building --------------------------------------------------------------------------------


def policy_source_files(policy_dir: Path) -> list[Path]:
    """Everything under the policy directory a bundle carries: policies, schemas, test suites."""
    return sorted(
        p.relative_to(policy_dir)
        for p in policy_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(policy_dir).parts)
    )


def _creation_time(policy_dir: Path, files: list[Path]) -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        stamp = int(epoch)
    else:
        stamp = int(max(((policy_dir / f).stat().st_mtime for f in files), default=0))
    return datetime.fromtimestamp(stamp, UTC).isoformat()


def _tar(entries: list[tuple[str, bytes]]) -> bytes:
    """A tar archive whose bytes depend only on the names and contents given."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def build_bundle(
    policy_dir: Path,
    key: Ed25519PrivateKey,
    version: int,
    tests: dict[str, Any],
    min_app_version: str = "0.1.0",
    created_at: str | None = None,
) -> bytes:
    """The signed bundle bytes for the policies under ``policy_dir`` (already compiled and tested)."""
    if version < 1:
        raise BundleError("a bundle version is a positive integer")
    files = policy_source_files(policy_dir)
    contents = {str(PurePosixPath(*f.parts)): (policy_dir / f).read_bytes() for f in files}
    manifest = Manifest(
        version,
        created_at or _creation_time(policy_dir, files),
        min_app_version,
        {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()},
        tests,
    )
    payload = _tar([(MANIFEST, manifest.to_json()), *contents.items()])
    return MAGIC + key.sign(payload) + payload


# ---- verifying -------------------------------------------------------------------------------


def verify_bundle(data: bytes, public_key: Ed25519PublicKey) -> VerifiedBundle:
    """Checks the signature before parsing anything, then the manifest and every file hash."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle is {len(data)} bytes, more than the {MAX_BUNDLE_BYTES} allowed")
    if len(data) < len(MAGIC) + SIGNATURE_SIZE or not data.startswith(MAGIC):
        raise BundleError("not a CCC policy bundle (missing the CCCBNDL1 marker or truncated)")
    signature = data[len(MAGIC) : len(MAGIC) + SIGNATURE_SIZE]
    payload = data[len(MAGIC) + SIGNATURE_SIZE :]
    try:
        public_key.verify(signature, payload)
    except InvalidSignature:
        raise BundleError(
            "signature does not match the pinned public key: the bundle was altered, "
            "truncated, or signed with another key"
        ) from None
    files = _read_tar(payload)
    manifest = _manifest(files.pop(MANIFEST, None))
    if set(files) != set(manifest.files):
        missing = sorted(set(manifest.files) - set(files))
        extra = sorted(set(files) - set(manifest.files))
        raise BundleError(f"bundle files do not match its manifest (missing {missing}, unexpected {extra})")
    for name, data_ in files.items():
        if hashlib.sha256(data_).hexdigest() != manifest.files[name]:
            raise BundleError(f"{name}: content does not match the hash in the manifest")
    return VerifiedBundle(manifest, files, hashlib.sha256(data).hexdigest())


def _read_tar(payload: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if not member.isfile() or path.is_absolute() or ".." in path.parts or not member.name:
                    raise BundleError(f"bundle entry {member.name!r} is not a plain relative file")
                extracted = tar.extractfile(member)
                files[str(path)] = extracted.read() if extracted else b""
    except tarfile.TarError as exc:
        raise BundleError(f"bundle payload is not a valid archive: {exc}") from None
    return files


def _manifest(raw: bytes | None) -> Manifest:
    if raw is None:
        raise BundleError("bundle has no manifest.json")
    try:
        data = json.loads(raw)
        if data.get("format") != FORMAT:
            raise BundleError(f"bundle format {data.get('format')!r} is not supported (expected {FORMAT})")
        version = data["version"]
        if not isinstance(version, int) or version < 1:
            raise BundleError("manifest version must be a positive integer")
        return Manifest(
            version,
            str(data["created_at"]),
            str(data["min_app_version"]),
            dict(data["files"]),
            dict(data.get("tests", {})),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"manifest.json is malformed: {exc}") from None


def read_bundle_file(path: Path, public_key: Ed25519PublicKey) -> VerifiedBundle:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: cannot be read ({exc.strerror})") from None
    return verify_bundle(data, public_key)
