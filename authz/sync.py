"""Keeping a workstation's policies current, offline first.

``PolicySync`` owns the active ``Engine``. At start it loads the last-known-good bundle from its
``BundleStore`` (verifying it again), so the workstation works with the network down. Each poll
asks the policy server for the bundle with ``If-None-Match`` (an unchanged bundle costs one 304),
verifies the signature against the pinned key before parsing anything, refuses a version lower
than or equal to the active one (rollback), compiles the new set in a side slot, saves it as
last-known-good with an atomic write, and only then swaps it in. Any failure leaves the active
engine as it was and is reported in ``state()``. With no valid bundle at all there is no engine:
callers deny everything and show ``state().reason``.

A hostile or hijacked policy server cannot stall or exhaust the workstation: the download is
streamed and stops at ``MAX_BUNDLE_BYTES`` (a gigabyte answer is never held in memory), every
poll has an overall deadline (``poll_deadline``, not only a per-read timeout: a server dripping a
byte every few seconds is cut off at the deadline), and whatever a validly signed but crafted
bundle does is a refused bundle with a reason, never an exception that ends the sync thread.
The deadline covers connecting, the headers and the body; it does not cover the name lookup,
which the operating system's resolver bounds.

Rollback protection does not live in the file it protects: an optional ``VersionFloor`` (a store
the signed-in user cannot rewrite) holds the highest version ever activated, so replacing
``active.bundle`` by an older signed bundle, or deleting it and letting the server (or anyone in
the middle) offer an old one, is refused offline and online with both versions named.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .bounded_http import Answer, AnswerRefused, bounded_request
from .bundle import MAX_BUNDLE_BYTES, BundleError, VerifiedBundle, verify_bundle
from .engine import Engine
from .errors import PolicyErrors
from .evaluate import EvalParams

ACTIVE = "active.bundle"
APP_VERSION = "0.1.0"
POLL_DEADLINE = 120.0  # seconds for a whole poll: a 64 MiB bundle at 1 MB/s fits, a drip does not


class VersionFloor(Protocol):
    """The highest bundle version ever activated on this workstation, kept where replacing or
    deleting ``active.bundle`` does not reset it (a store the signed-in user cannot rewrite).

    ``PolicySync`` refuses, offline and online, any bundle older than ``highest()`` and calls
    ``raise_to`` after each activation. ``highest()`` is 0 when nothing was ever activated.
    ``raise_to`` never lowers the floor; it raises ``BundleError`` (or any ``AuthzError``) when the
    floor cannot be recorded, and the bundle is then not activated.
    """

    def highest(self) -> int: ...

    def raise_to(self, version: int) -> None: ...


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


class BundleStore:
    """The last-known-good bundle on disk, and the extracted policy files of the active one."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def active_path(self) -> Path:
        return self.directory / ACTIVE

    def load(self, public_key: Ed25519PublicKey) -> tuple[bytes, VerifiedBundle] | None:
        """The saved bundle, verified again; None when there is none. Read as a regular file of at
        most ``MAX_BUNDLE_BYTES`` without following a link (one to /dev/zero would never end)."""
        try:
            fd = os.open(self.active_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BundleError(f"{self.active_path}: cannot be read ({exc.strerror})") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise BundleError(f"{self.active_path} is not a regular file")
            if info.st_size > MAX_BUNDLE_BYTES:
                raise BundleError(
                    f"{self.active_path} is {info.st_size} bytes, more than the {MAX_BUNDLE_BYTES} allowed"
                )
            data = f.read(MAX_BUNDLE_BYTES + 1)
        return data, verify_bundle(data, public_key)

    def save(self, data: bytes) -> None:
        """Atomically replaces the last-known-good bundle: a crash or a full disk mid-way leaves
        the previous file intact."""
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".incoming-", suffix=".bundle")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.active_path)
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise BundleError(f"cannot save the bundle in {self.directory}: {exc.strerror or exc}") from None

    def slot(self, bundle: VerifiedBundle) -> Path:
        """A fresh directory holding the bundle's policy files (the side slot)."""
        slots = self.directory / "slots"
        slots.mkdir(exist_ok=True)
        return bundle.extract(Path(tempfile.mkdtemp(dir=slots, prefix=f"v{bundle.manifest.version}-")))

    def prune(self, keep: Path) -> None:
        for path in (self.directory / "slots").glob("*"):
            if path != keep:
                shutil.rmtree(path, ignore_errors=True)


@dataclass
class SyncState:
    """What the status bar shows."""

    version: int | None
    created_at: str | None
    age: timedelta | None
    last_success: datetime | None
    last_error: str
    stale: bool
    reason: str  # in plain words, when there is no usable policy set


class PolicySync:
    def __init__(
        self,
        url: str,
        public_key: Ed25519PublicKey,
        store: BundleStore,
        client: httpx.Client | None = None,
        token_provider: Callable[[], str] | None = None,
        params: EvalParams | None = None,
        max_age: timedelta = timedelta(days=7),
        on_swap: Callable[[Engine], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        app_version: str = APP_VERSION,
        floor: VersionFloor | None = None,
        poll_deadline: float = POLL_DEADLINE,
        max_bytes: int = MAX_BUNDLE_BYTES,
    ) -> None:
        self.url = url
        self.public_key = public_key
        self.store = store
        self.client = client or httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
        self.token_provider = token_provider
        self.params = params
        self.max_age = max_age
        self.on_swap = on_swap
        self.clock = clock
        self.app_version = app_version
        self.floor = floor
        self.poll_deadline = poll_deadline
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._bundle: VerifiedBundle | None = None
        self._slot: Path | None = None
        self._etag: str | None = None
        self.last_success: datetime | None = None
        self.last_error = ""
        self.reason = "No policy bundle has been loaded yet."

    # -- the active engine ---------------------------------------------------------------------

    @property
    def engine(self) -> Engine | None:
        """The active engine, or None: then every decision is a deny (see ``state().reason``)."""
        return self._engine

    def start_offline(self) -> None:
        """Activates the last-known-good bundle, with no network needed, unless it is older than
        the version floor (a rollback by replacing the file)."""
        try:
            loaded = self.store.load(self.public_key)
        except BundleError as exc:
            self.reason = (
                f"The saved policy bundle cannot be trusted ({exc}); everything is denied until a "
                "valid bundle arrives from the policy server."
            )
            self.last_error = str(exc)
            return
        if loaded is None:
            self.reason = (
                "No policy bundle is installed on this workstation and the policy server has not "
                "been reached yet, so everything is denied."
            )
            return
        _, bundle = loaded
        try:
            self._check_floor(bundle)
            self._activate(bundle)
        except (PolicyErrors, BundleError) as exc:
            self.reason = f"The saved policy bundle is not used ({exc}); everything is denied."
            self.last_error = str(exc)
            return
        self.last_error = self._raise_floor(bundle.manifest.version)

    def _check_floor(self, bundle: VerifiedBundle) -> None:
        """Refuses a bundle older than the highest version ever activated here."""
        try:
            floor = self.floor.highest() if self.floor is not None else 0
        except Exception as exc:  # noqa: BLE001 - the floor is another party's store: fail closed
            raise BundleError(
                f"the version floor cannot be read ({exc.__class__.__name__}: {exc!s:.200}), so bundle version "
                f"{bundle.manifest.version} cannot be checked against rollback"
            ) from None
        if bundle.manifest.version < floor:
            raise BundleError(
                f"bundle version {bundle.manifest.version} is older than version {floor}, the highest "
                "ever activated on this workstation: refusing a rollback"
            )

    def _activate(self, bundle: VerifiedBundle) -> None:
        self._swap(bundle, *self._prepare(bundle))

    def _prepare(self, bundle: VerifiedBundle) -> tuple[Engine, Path]:
        """Compiles the bundle in a side slot; the active engine is untouched."""
        if _version_tuple(bundle.manifest.min_app_version) > _version_tuple(self.app_version):
            raise BundleError(
                f"bundle version {bundle.manifest.version} needs CCC Workstation "
                f"{bundle.manifest.min_app_version} or newer; this is {self.app_version}"
            )
        try:
            slot = self.store.slot(bundle)
        except OSError as exc:
            raise BundleError(f"cannot unpack bundle version {bundle.manifest.version}: {exc}") from None
        try:
            return Engine.from_directory(slot, self.params, bundle_version=str(bundle.manifest.version)), slot
        except PolicyErrors:
            shutil.rmtree(slot, ignore_errors=True)
            raise

    def _swap(self, bundle: VerifiedBundle, engine: Engine, slot: Path) -> None:
        with self._lock:  # one reference assignment, after everything else succeeded
            self._engine, self._bundle, self._slot = engine, bundle, slot
            self.reason = ""
        self.store.prune(keep=slot)
        if self.on_swap is not None:
            self.on_swap(engine)

    def _raise_floor(self, version: int) -> str:
        """Records ``version`` as the floor, after its activation (so never above what runs);
        returns what went wrong, or "" (the bundle stays active either way)."""
        if self.floor is None:
            return ""
        try:
            self.floor.raise_to(version)
        except Exception as exc:  # noqa: BLE001 - the floor is another party's store: report, go on
            return f"bundle version {version} is active but the version floor could not be raised: {exc}"
        return ""

    # -- polling -------------------------------------------------------------------------------

    def poll(self) -> bool:
        """One poll of the policy server, within ``poll_deadline``. True when a new bundle became
        active. Never raises: whatever goes wrong is in ``state().last_error``."""
        try:
            return self._poll()
        except Exception as exc:  # noqa: BLE001 - a poll that fails must not end the sync thread
            return self._failed(f"unexpected {exc.__class__.__name__}: {exc!s:.200}")

    def _poll(self) -> bool:
        try:
            answer = self._fetch()
        except BundleError as exc:
            return self._failed(str(exc))
        if answer.status == 304:
            self.last_success, self.last_error = self.clock(), ""
            return False
        if answer.status != 200:
            return self._failed(f"policy server answered HTTP {answer.status}")
        try:
            bundle = verify_bundle(answer.body, self.public_key)  # signature first, before any parsing
            self._check_floor(bundle)
            active = self._bundle.manifest.version if self._bundle else 0
            if bundle.manifest.version <= active:
                if self._bundle is not None and bundle.sha256 == self._bundle.sha256:
                    self._etag = answer.headers.get("ETag")
                    self.last_success, self.last_error = self.clock(), ""
                    return False
                raise BundleError(
                    f"bundle version {bundle.manifest.version} is not newer than the active "
                    f"version {active}: refusing a rollback"
                )
            engine, slot = self._prepare(bundle)
            try:
                self.store.save(answer.body)  # last-known-good only once it compiled
            except BundleError:
                shutil.rmtree(slot, ignore_errors=True)
                raise
            self._swap(bundle, engine, slot)
        except (BundleError, PolicyErrors) as exc:
            return self._failed(str(exc))
        self._etag = answer.headers.get("ETag")
        self.last_success, self.last_error = self.clock(), self._raise_floor(bundle.manifest.version)
        return True

    def _fetch(self) -> Answer:
        """The server's answer, streamed: stops at ``max_bytes`` and at the poll deadline."""
        headers = {"If-None-Match": self._etag} if self._etag else {}
        if self.token_provider is not None:
            headers["Authorization"] = f"Bearer {self.token_provider()}"
        try:
            return bounded_request(
                self.client,
                "GET",
                self.url,
                peer="policy server",
                seconds=self.poll_deadline,
                max_bytes=self.max_bytes,
                deadline_name="poll deadline",
                headers=headers,
                read_body=lambda status: status == 200,
            )
        except AnswerRefused as exc:
            raise BundleError(str(exc)) from None

    def _failed(self, message: str) -> bool:
        self.last_error = message
        return False

    def run(
        self,
        stop: threading.Event,
        interval: float = 60.0,
        max_backoff: float = 900.0,
        rng: random.Random | None = None,
    ) -> None:
        """Polls until ``stop`` is set, with jitter, backing off exponentially while it fails."""
        rng = rng or random.Random()
        delay = interval
        while not stop.is_set():
            self.poll()  # never raises
            delay = interval if not self.last_error else min(max_backoff, delay * 2)
            stop.wait(delay * rng.uniform(0.8, 1.2))

    def state(self) -> SyncState:
        manifest = self._bundle.manifest if self._bundle else None
        age = None
        if manifest is not None:
            age = self.clock() - datetime.fromisoformat(manifest.created_at)
        return SyncState(
            version=manifest.version if manifest else None,
            created_at=manifest.created_at if manifest else None,
            age=age,
            last_success=self.last_success,
            last_error=self.last_error,
            stale=age is not None and age > self.max_age,
            reason=self.reason,
        )
