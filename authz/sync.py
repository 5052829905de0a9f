"""Keeping a workstation's policies current, offline first.

``PolicySync`` owns the active ``Engine``. At start it loads the last-known-good bundle from its
``BundleStore`` (verifying it again), so the workstation works with the network down. Each poll
asks the policy server for the bundle with ``If-None-Match`` (an unchanged bundle costs one 304),
verifies the signature against the pinned key before parsing anything, refuses a version lower
than or equal to the active one (rollback), compiles the new set in a side slot, saves it as
last-known-good with an atomic write, and only then swaps it in. Any failure leaves the active
engine as it was and is reported in ``state()``. With no valid bundle at all there is no engine:
callers deny everything and show ``state().reason``.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .bundle import BundleError, VerifiedBundle, verify_bundle
from .engine import Engine
from .errors import PolicyErrors
from .evaluate import EvalParams

ACTIVE = "active.bundle"
APP_VERSION = "0.1.0"


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
        if not self.active_path.exists():
            return None
        data = self.active_path.read_bytes()
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
        """Activates the last-known-good bundle, with no network needed."""
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
            self._activate(bundle)
        except (PolicyErrors, BundleError) as exc:
            self.reason = f"The saved policy bundle does not compile ({exc}); everything is denied."
            self.last_error = str(exc)

    def _activate(self, bundle: VerifiedBundle) -> None:
        self._swap(bundle, *self._prepare(bundle))

    def _prepare(self, bundle: VerifiedBundle) -> tuple[Engine, Path]:
        """Compiles the bundle in a side slot; the active engine is untouched."""
        if _version_tuple(bundle.manifest.min_app_version) > _version_tuple(self.app_version):
            raise BundleError(
                f"bundle version {bundle.manifest.version} needs CCC Workstation "
                f"{bundle.manifest.min_app_version} or newer; this is {self.app_version}"
            )
        slot = self.store.slot(bundle)
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

    # -- polling -------------------------------------------------------------------------------

    def poll(self) -> bool:
        """One poll of the policy server. True when a new bundle became active."""
        headers = {}
        if self._etag:
            headers["If-None-Match"] = self._etag
        if self.token_provider is not None:
            headers["Authorization"] = f"Bearer {self.token_provider()}"
        try:
            response = self.client.get(self.url, headers=headers)
        except httpx.HTTPError as exc:
            return self._failed(f"policy server unreachable: {exc.__class__.__name__}: {exc}")
        if response.status_code == 304:
            self.last_success, self.last_error = self.clock(), ""
            return False
        if response.status_code != 200:
            return self._failed(f"policy server answered HTTP {response.status_code}")
        data = response.content
        try:
            bundle = verify_bundle(data, self.public_key)  # signature first, before any parsing
            active = self._bundle.manifest.version if self._bundle else 0
            if bundle.manifest.version <= active:
                if self._bundle is not None and bundle.sha256 == self._bundle.sha256:
                    self._etag = response.headers.get("ETag")
                    self.last_success, self.last_error = self.clock(), ""
                    return False
                raise BundleError(
                    f"bundle version {bundle.manifest.version} is not newer than the active "
                    f"version {active}: refusing a rollback"
                )
            engine, slot = self._prepare(bundle)
            try:
                self.store.save(data)  # last-known-good only once it compiled
            except BundleError:
                shutil.rmtree(slot, ignore_errors=True)
                raise
            self._swap(bundle, engine, slot)
        except (BundleError, PolicyErrors) as exc:
            return self._failed(str(exc))
        self._etag = response.headers.get("ETag")
        self.last_success, self.last_error = self.clock(), ""
        return True

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
            self.poll()
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
