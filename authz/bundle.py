"""Signed policy bundles: how policies travel from the policy analysts to ward computers.

A bundle is one file:

    b"CCCBNDL1"            8 bytes, format marker
    signature             64 bytes, Ed25519 over everything that follows
    payload               a deterministic tar archive: manifest.json, then every policy file

The signature is checked against the pinned public key before a single byte of the payload is
parsed. The manifest names the bundle's monotonic version, its creation time, the SHA-256 of
every file, the test results that passed and the minimum app version; every file is checked
against it before the policies are compiled. A version is an integer from 1 to ``MAX_VERSION``
(2**53 - 1, so that it survives any JSON reader exactly); anything else in a signed manifest (a
boolean, a float, a string, 10**400, a list where an object belongs) and any archive entry that
is not a plain regular file (a sparse member, a link, a device) refuses the bundle with a reason.

Building reads only regular files that live inside the policy directory: a symbolic link, a hard
link (a regular file with more than one name, which may be the signing key's other name) or a
fifo, socket or device in the directory refuses the build, naming every such path, so that a link
to the private key or to ``/etc/shadow`` is never signed into a bundle sent to every workstation.
Building is deterministic: the same policy files, version and creation time give the same bytes
(the creation time defaults to ``SOURCE_DATE_EPOCH``, else to the newest policy file's
modification time).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
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
MAX_VERSION = 2**53 - 1
_APP_VERSION = re.compile(r"[0-9A-Za-z.+-]{1,32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for name, data in self.files.items():
                target = directory / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        except OSError as exc:
            raise BundleError(f"cannot extract the bundle into {directory}: {exc.strerror or exc}") from None
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


def _unreadable_key(exc: Exception, data: bytes | None, wanted: str) -> str:
    """Why a key file could not be used, in words: the file system's reason, or the other half of
    the pair given in its place (the commonest slip), or not a PEM key at all."""
    if isinstance(exc, OSError):
        return exc.strerror or exc.__class__.__name__
    half = "public" if wanted == "private" else "private"
    if data is not None and _loads_as(data, half):
        return f"it is a {half} key; give the {wanted} one, {wanted}.key of ccc-authz keygen"
    return "not a PEM key file"


def _loads_as(data: bytes, half: str) -> bool:
    """Whether ``data`` is a PEM key of that half of a pair (the other half was given instead)."""
    try:
        if half == "public":
            serialization.load_pem_public_key(data)
        else:
            serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return False
    return True


def load_private_key(path: Path) -> Ed25519PrivateKey:
    data = None
    try:
        data = path.read_bytes()
        key = serialization.load_pem_private_key(data, password=None)
    except (OSError, ValueError, TypeError) as exc:
        why = _unreadable_key(exc, data, "private")
        raise BundleError(f"{path}: not a readable Ed25519 private key ({why})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path | bytes) -> Ed25519PublicKey:
    data: bytes | None = None
    try:
        data = path if isinstance(path, bytes) else path.read_bytes()
        key = serialization.load_pem_public_key(data)
    except (OSError, ValueError) as exc:
        why = _unreadable_key(exc, data, "public")
        raise BundleError(f"{path!s:.80}: not a readable Ed25519 public key ({why})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError("the pinned key is not an Ed25519 public key")
    return key


# ---- building --------------------------------------------------------------------------------


def policy_source_files(policy_dir: Path) -> list[Path]:
    """Everything under the policy directory a bundle carries (policies, schemas, test suites),
    relative to it. Hidden entries (``.git``) are skipped without being entered. Refuses, naming
    each, every symbolic link, hard-linked file and special file: a bundle carries only regular
    files that live inside the directory, never what a link points at."""
    files: list[Path] = []
    refused: list[str] = []
    _walk(policy_dir, Path(), files, refused)
    if refused:
        raise BundleError(
            f"{policy_dir}: the policy directory may hold only regular files and directories; "
            f"refusing to build with {'; '.join(refused)}"
        )
    return sorted(files)


def _walk(root: Path, relative: Path, files: list[Path], refused: list[str]) -> None:
    """Collects regular files under ``root / relative`` from ``lstat`` alone (no link followed)."""
    try:
        entries = sorted(os.scandir(root / relative), key=lambda e: e.name)
    except OSError as exc:
        refused.append(f"{root / relative}: cannot be listed ({exc.strerror})")
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = relative / entry.name
        info = entry.stat(follow_symlinks=False)
        problem = _unsafe(info)
        if problem:
            refused.append(f"{root / path} ({problem})")
        elif stat.S_ISDIR(info.st_mode):
            _walk(root, path, files, refused)
        else:
            files.append(path)


def _unsafe(info: os.stat_result) -> str:
    """Why an entry must not go into a bundle, or "" for a directory or a single-named file."""
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return ""
    if not stat.S_ISREG(mode):
        kind = "a fifo" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device or special file"
        return kind
    if info.st_nlink > 1:
        return f"a hard link: the file has {info.st_nlink} names"
    return ""


def _read_policy_file(path: Path) -> bytes:
    """The bytes of one regular file, opened without following a link; checked again on the open
    file so that swapping in a link after the directory walk gains nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise BundleError(f"{path}: cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        problem = _unsafe(info) or ("a directory" if stat.S_ISDIR(info.st_mode) else "")
        if problem:
            raise BundleError(f"{path}: changed while building, now {problem}")
        return f.read()


def _creation_time(policy_dir: Path, files: list[Path]) -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        stamp = int(epoch)
    else:
        stamp = int(max(((policy_dir / f).lstat().st_mtime for f in files), default=0))
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
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise BundleError(f"a bundle version is an integer from 1 to {MAX_VERSION}")
    files = policy_source_files(policy_dir)
    contents = {str(PurePosixPath(*f.parts)): _read_policy_file(policy_dir / f) for f in files}
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


def split_signed(
    data: bytes, magic: bytes, limit: int, what: str, name: str, error: type[BundleError] = BundleError
) -> tuple[bytes, bytes]:
    """The signature and the payload of a signed file (``magic``, a 64-byte Ed25519 signature, the
    payload: bundles and rollout notices), or ``error`` naming ``what`` when it is too big or no
    such file. Nothing of the payload is read here: it is verified before it is parsed."""
    if len(data) > limit:
        raise error(f"{what} is {len(data)} bytes, more than the {limit} allowed")
    if len(data) < len(magic) + SIGNATURE_SIZE or not data.startswith(magic):
        raise error(f"not a CCC {name} (missing the {magic.decode()} marker or truncated)")
    return data[len(magic) : len(magic) + SIGNATURE_SIZE], data[len(magic) + SIGNATURE_SIZE :]


def verify_bundle(data: bytes, public_key: Ed25519PublicKey) -> VerifiedBundle:
    """Checks the signature before parsing anything, then the manifest and every file hash."""
    signature, payload = split_signed(data, MAGIC, MAX_BUNDLE_BYTES, "bundle", "policy bundle")
    try:
        public_key.verify(signature, payload)
    except InvalidSignature:
        raise BundleError(
            "signature does not match the pinned public key: the bundle was altered, "
            "truncated, or signed with another key"
        ) from None
    try:
        files, manifest = _parse(payload)
    except BundleError:
        raise
    except Exception as exc:  # noqa: BLE001 - signed but crafted: any failure is a refusal, not a crash
        raise BundleError(f"bundle payload cannot be read ({exc.__class__.__name__}: {exc!s:.200})") from None
    return VerifiedBundle(manifest, files, hashlib.sha256(data).hexdigest())


def _parse(payload: bytes) -> tuple[dict[str, bytes], Manifest]:
    """The files and the manifest of a payload whose signature was checked, every hash checked."""
    files = _read_tar(payload)
    manifest = _manifest(files.pop(MANIFEST, None))
    if set(files) != set(manifest.files):
        missing = sorted(set(manifest.files) - set(files))[:10]
        extra = sorted(set(files) - set(manifest.files))[:10]
        raise BundleError(f"bundle files do not match its manifest (missing {missing}, unexpected {extra})")
    for name, data_ in files.items():
        if hashlib.sha256(data_).hexdigest() != manifest.files[name]:
            raise BundleError(f"{name}: content does not match the hash in the manifest")
    return files, manifest


def _read_tar(payload: bytes) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:") as tar:
            for member in tar:
                name = _entry_name(member)
                if name in files:
                    raise BundleError(f"bundle entry {name!r} appears twice")
                extracted = tar.extractfile(member)
                files[name] = extracted.read() if extracted else b""
    except tarfile.TarError as exc:
        raise BundleError(f"bundle payload is not a valid archive: {exc}") from None
    return files


def _entry_name(member: tarfile.TarInfo) -> str:
    """The member's relative path, for a plain regular file (never sparse: a sparse member's size
    is whatever its header claims, a terabyte of zeros from a few bytes)."""
    path = PurePosixPath(member.name)
    plain = member.isreg() and not member.issparse() and member.type in (tarfile.REGTYPE, tarfile.AREGTYPE)
    if not plain or not member.name or path.is_absolute() or ".." in path.parts or not path.parts:
        raise BundleError(f"bundle entry {member.name[:200]!r} is not a plain relative file")
    if member.size > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle entry {member.name[:200]!r} claims {member.size} bytes")
    return str(path)


def _manifest(raw: bytes | None) -> Manifest:
    if raw is None:
        raise BundleError("bundle has no manifest.json")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"manifest.json is not JSON: {exc!s:.200}") from None
    if not isinstance(data, dict):
        raise BundleError(f"manifest.json is a JSON {type(data).__name__}, not an object")
    if data.get("format") != FORMAT or type(data.get("format")) is not int:
        raise BundleError(f"bundle format {data.get('format')!r:.40} is not supported (expected {FORMAT})")
    version = data.get("version")
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        shown = repr(version) if not isinstance(version, int) or version.bit_length() < 64 else "a huge number"
        raise BundleError(f"manifest version {shown:.40} is not an integer from 1 to {MAX_VERSION}")
    return Manifest(
        version,
        _created_at(data.get("created_at")),
        _min_app_version(data.get("min_app_version")),
        _file_hashes(data.get("files")),
        _tests(data.get("tests", {})),
    )


def _created_at(value: object) -> str:
    if isinstance(value, str) and len(value) <= 64:
        try:
            if datetime.fromisoformat(value).tzinfo is not None:
                return value
        except ValueError:
            pass
    raise BundleError(f"manifest created_at {value!r:.80} is not an ISO date and time with a UTC offset")


def _min_app_version(value: object) -> str:
    if isinstance(value, str) and _APP_VERSION.fullmatch(value):
        return value
    raise BundleError(f"manifest min_app_version {value!r:.80} is not a version such as 0.1.0")


def _file_hashes(value: object) -> dict[str, str]:
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) and _SHA256.fullmatch(v) for k, v in value.items()
    ):
        return dict(value)
    raise BundleError("manifest files must be an object of file name to SHA-256 hex digest")


def _tests(value: object) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    raise BundleError(f"manifest tests is a JSON {type(value).__name__}, not an object")


def read_bundle_file(path: Path, public_key: Ed25519PublicKey) -> VerifiedBundle:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: cannot be read ({exc.strerror})") from None
    return verify_bundle(data, public_key)
