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

Shadow rollout (canary workstations): with a ``shadow_period`` (IT's managed
``policy_shadow_hours``), a newly verified bundle is not activated but held in shadow: compiled,
saved as ``shadow.bundle`` with the time it was first verified (``shadow.json``), and evaluated
beside the active bundle on every live decision the app offers through ``observe``
(``shadow.ShadowEvaluator``: off the visible path, each flip audited and counted). It is activated
when the period has run (``tick``, at each poll and when the period ends, offline too), or earlier
when the policy team's signed notice (``rollout.py``, fetched beside the bundle) promotes it, and
never when a signed notice withdraws it. The rollback floor is checked again at activation. A
restart keeps the shadow state: the saved candidate is verified again and the period runs on from
the time it was first verified (an ended period activates it at start); a candidate that no longer
verifies is discarded. The workstation's clock decides when a period ends.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .bounded_http import Answer, AnswerRefused, bounded_request
from .bundle import MAX_BUNDLE_BYTES, BundleError, VerifiedBundle, verify_bundle
from .engine import Engine
from .errors import PolicyErrors
from .evaluate import CheckInput, EvalParams
from .rollout import MAX_NOTICE_BYTES, NOTICE_FILE, PROMOTE, WITHDRAW, NoticeError, RolloutNotice, verify_notice
from .shadow import ShadowCounts, ShadowEvaluator, ShadowFlip

ACTIVE = "active.bundle"
SHADOW = "shadow.bundle"
SHADOW_STATE = "shadow.json"
NOTICE_DEADLINE = 30.0  # seconds for fetching a rollout notice (a few hundred bytes)
APP_VERSION = "0.1.0"
POLL_DEADLINE = 120.0  # seconds for a whole poll: a 64 MiB bundle at 1 MB/s fits, a drip does not


class RollbackRefused(BundleError):
    """A bundle older than the highest version ever activated here: it never will be."""


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

    def load(self, public_key: Ed25519PublicKey, name: str = ACTIVE) -> tuple[bytes, VerifiedBundle] | None:
        """The saved bundle (``name``: the active one, or SHADOW), verified again; None when there
        is none. Read as a regular file of at most ``MAX_BUNDLE_BYTES`` without following a link
        (one to /dev/zero would never end)."""
        path = self.directory / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BundleError(f"{path}: cannot be read ({exc.strerror})") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise BundleError(f"{path} is not a regular file")
            if info.st_size > MAX_BUNDLE_BYTES:
                raise BundleError(f"{path} is {info.st_size} bytes, more than the {MAX_BUNDLE_BYTES} allowed")
            data = f.read(MAX_BUNDLE_BYTES + 1)
        return data, verify_bundle(data, public_key)

    def save(self, data: bytes, name: str = ACTIVE) -> None:
        """Atomically replaces the last-known-good bundle (or, ``name``, the one in shadow): a crash
        or a full disk mid-way leaves the previous file intact."""
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".incoming-", suffix=".bundle")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.directory / name)
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

    def prune(self, *keep: Path) -> None:
        for path in (self.directory / "slots").glob("*"):
            if path not in keep:
                shutil.rmtree(path, ignore_errors=True)

    def load_shadow_state(self) -> dict[str, Any]:
        """What was saved about the bundle in shadow ({} when nothing usable is)."""
        try:
            data = json.loads((self.directory / SHADOW_STATE).read_bytes()[:65536])
        except (OSError, ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_shadow_state(self, state: dict[str, Any]) -> None:
        """Atomically; a failure only loses counts (the period restarts if the time is lost)."""
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".incoming-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(state, f)
            os.replace(tmp, self.directory / SHADOW_STATE)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def discard_shadow(self) -> None:
        for name in (SHADOW, SHADOW_STATE):
            try:
                os.unlink(self.directory / name)
            except OSError:
                pass


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
    shadow: ShadowState | None = None  # the bundle held in shadow, if any
    rollout: str = ""  # the last rollout event in words (activated, promoted, withdrawn, refused notice)


@dataclass(frozen=True)
class ShadowState:
    """The bundle held in shadow, for IT: "shadow bundle vN: K flips in M decisions, activates at T"."""

    version: int
    sha256: str
    received_at: datetime  # first verified on this workstation
    activates_at: datetime
    counts: ShadowCounts


@dataclass
class _Candidate:
    """A verified, compiled bundle held in shadow, and its evaluator."""

    bundle: VerifiedBundle
    data: bytes
    engine: Engine
    slot: Path
    received_at: datetime
    evaluator: ShadowEvaluator


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
        shadow_period: timedelta = timedelta(0),
        notice_url: str | None = None,
        shadow_options: dict[str, Any] | None = None,
    ) -> None:
        """``shadow_period``: how long a new bundle is held in shadow before it is activated
        (0: activated at once, a workstation that is no canary). ``notice_url``: where the signed
        rollout notice is (default: ``rollout.notice`` beside the bundle's URL).
        ``shadow_options``: ``ShadowEvaluator`` keyword arguments (queue size, pacing)."""
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
        self.shadow_period = shadow_period
        self.notice_url = notice_url or urljoin(url, NOTICE_FILE)
        self.shadow_options = dict(shadow_options or {})
        # Writes one audit record per shadow flip (the app's audit trail sets it); without it a
        # flip is counted as not audited.
        self.flip_recorder: Callable[[list[ShadowFlip]], object] | None = None
        self._candidate: _Candidate | None = None
        self._notice: RolloutNotice | None = None
        self._notice_etag: str | None = None
        self._withdrawn: set[str] = set()  # sha256 of bundles withdrawn while this process ran
        self.rollout = ""

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
        self._resume_shadow()
        self.tick()

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
            raise RollbackRefused(
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
        candidate = self._candidate
        self.store.prune(slot, *([candidate.slot] if candidate is not None else []))
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
        changed = self.tick()  # a shadow period that has run activates its bundle first
        try:
            answer = self._fetch()
            if answer.status == 200:
                changed = self._offered(answer.body) or changed
                self._etag = answer.headers.get("ETag")
            elif answer.status != 304:
                raise BundleError(f"policy server answered HTTP {answer.status}")
        except (BundleError, PolicyErrors) as exc:
            self._failed(str(exc))
            return changed
        self.last_success, self.last_error = self.clock(), ""
        if changed:
            self.last_error = self._raise_floor(self._bundle.manifest.version if self._bundle else 0)
        return self._follow_notice() or changed

    def _offered(self, body: bytes) -> bool:
        """A bundle the server sent: activated (True), held in shadow, or refused (BundleError)."""
        bundle = verify_bundle(body, self.public_key)  # signature first, before any parsing
        self._check_floor(bundle)
        active = self._bundle.manifest.version if self._bundle else 0
        if bundle.manifest.version <= active:
            if self._bundle is not None and bundle.sha256 == self._bundle.sha256:
                return False
            raise BundleError(
                f"bundle version {bundle.manifest.version} is not newer than the active "
                f"version {active}: refusing a rollback"
            )
        if self._candidate is not None and bundle.sha256 == self._candidate.bundle.sha256:
            return False  # already in shadow
        shadowing = self.shadow_period > timedelta(0) and self._engine is not None
        notice = self._notice_for(bundle) if shadowing or self._candidate is not None else None
        if bundle.sha256 in self._withdrawn or (notice is not None and notice.decision == WITHDRAW):
            self._withdrawn.add(bundle.sha256)
            self.rollout = notice.describe() if notice else f"bundle v{bundle.manifest.version} was withdrawn"
            return False
        engine, slot = self._prepare(bundle)
        try:
            if shadowing and not (notice is not None and notice.decision == PROMOTE):
                self._hold(bundle, body, engine, slot)
                return False
            self.store.save(body)  # last-known-good only once it compiled
        except BundleError:
            shutil.rmtree(slot, ignore_errors=True)
            raise
        self._end_shadow()
        self._swap(bundle, engine, slot)
        if notice is not None:
            self.rollout = f"{notice.describe()}: activated without a shadow period"
        return True

    # -- shadow rollout ------------------------------------------------------------------------

    def observe(self, engine: Engine, requests: Sequence[CheckInput], now: datetime) -> None:
        """Live decisions ``engine`` made at ``now`` (on the visible path): offered to the bundle
        in shadow, if any, without waiting for it."""
        candidate = self._candidate
        if candidate is not None:
            candidate.evaluator.offer(engine, requests, now)

    def tick(self) -> bool:
        """Activates the bundle in shadow once its period has run. True when it did. Never
        raises: a failure (the floor, a full disk) is in ``state().rollout`` and retried."""
        candidate = self._candidate
        if candidate is None or self.clock() < candidate.received_at + self.shadow_period:
            return False
        return self._promote(candidate, f"after {_hours(self.shadow_period)} in shadow")

    def seconds_to_activation(self) -> float | None:
        candidate = self._candidate
        if candidate is None:
            return None
        return max(0.0, (candidate.received_at + self.shadow_period - self.clock()).total_seconds())

    def close(self) -> None:
        """At exit: the shadow worker stopped and its counts saved (the period runs on at the next start)."""
        candidate = self._candidate
        if candidate is not None:
            candidate.evaluator.stop()
            self._save_shadow_state(candidate)

    def _hold(self, bundle: VerifiedBundle, data: bytes, engine: Engine, slot: Path) -> None:
        """Holds a compiled bundle in shadow, replacing any earlier candidate (its period ends)."""
        self.store.save(data, SHADOW)
        self._end_shadow(keep_files=True)
        self._start_shadow(bundle, data, engine, slot, self.clock(), ShadowCounts())
        self.rollout = ""  # the status shows the bundle in shadow itself

    def _start_shadow(
        self,
        bundle: VerifiedBundle,
        data: bytes,
        engine: Engine,
        slot: Path,
        received_at: datetime,
        counts: ShadowCounts,
    ) -> None:
        assert self._engine is not None
        evaluator = ShadowEvaluator(
            self._engine,
            engine,
            bundle.manifest.version,
            bundle.sha256,
            self._record_flips,
            counts,
            **self.shadow_options,
        )
        candidate = _Candidate(bundle, data, engine, slot, received_at, evaluator)
        self._save_shadow_state(candidate)
        self._candidate = candidate
        evaluator.start()

    def _record_flips(self, flips: list[ShadowFlip]) -> None:
        if self.flip_recorder is None:
            raise BundleError("no audit trail is connected to record shadow flips")
        self.flip_recorder(flips)

    def _promote(self, candidate: _Candidate, why: str) -> bool:
        """Activates the bundle in shadow (its period ran, or a signed notice promoted it)."""
        try:
            self._check_floor(candidate.bundle)
            self.store.save(candidate.data)
        except RollbackRefused as exc:  # a newer bundle was activated here meanwhile: never this one
            self._end_shadow()
            self.rollout = f"bundle v{candidate.bundle.manifest.version} was discarded from shadow: {exc}"
            return False
        except BundleError as exc:  # the floor cannot be read, a full disk: retried at each poll
            self.rollout = f"bundle v{candidate.bundle.manifest.version} could not be activated: {exc}"
            return False
        candidate.evaluator.stop()
        self._candidate = None
        self.store.discard_shadow()
        self._swap(candidate.bundle, candidate.engine, candidate.slot)
        counts = candidate.evaluator.counts
        self.rollout = f"bundle v{candidate.bundle.manifest.version} activated {why}: {counts.summary()}"
        self.last_error = self._raise_floor(candidate.bundle.manifest.version)
        return True

    def _end_shadow(self, keep_files: bool = False) -> None:
        """Discards the bundle in shadow (withdrawn, or replaced by a newer or promoted bundle)."""
        candidate, self._candidate = self._candidate, None
        if candidate is not None:
            candidate.evaluator.stop()
            shutil.rmtree(candidate.slot, ignore_errors=True)
        if not keep_files:
            self.store.discard_shadow()

    def _resume_shadow(self) -> None:
        """After a restart: the saved candidate, verified and checked again, its period running on
        from the time it was first verified. One that fails any check is discarded."""
        try:
            loaded = self.store.load(self.public_key, SHADOW)
        except BundleError as exc:
            self.store.discard_shadow()
            self.rollout = f"the bundle held in shadow was discarded: {exc}"
            return
        if loaded is None or self._bundle is None:
            return
        data, bundle = loaded
        try:
            if bundle.manifest.version <= self._bundle.manifest.version:
                raise BundleError(f"bundle v{bundle.manifest.version} is not newer than the active one")
            self._check_floor(bundle)
            engine, slot = self._prepare(bundle)
        except (BundleError, PolicyErrors) as exc:
            self.store.discard_shadow()
            self.rollout = f"the bundle held in shadow was discarded: {exc}"
            return
        state = self.store.load_shadow_state()
        received_at = (
            _saved_time(state.get("received_at"), self.clock()) if state.get("sha256") == bundle.sha256 else None
        )
        counts = _saved_counts(state) if received_at is not None else ShadowCounts()
        self._start_shadow(bundle, data, engine, slot, received_at or self.clock(), counts)

    def _save_shadow_state(self, candidate: _Candidate) -> None:
        counts = candidate.evaluator.counts
        self.store.save_shadow_state(
            {
                "version": candidate.bundle.manifest.version,
                "sha256": candidate.bundle.sha256,
                "received_at": candidate.received_at.isoformat(),
                "decisions": counts.decisions,
                "flips": counts.flips,
                "dropped": counts.dropped,
                "unaudited": counts.unaudited,
            }
        )

    def _follow_notice(self) -> bool:
        """While a bundle is in shadow: the policy team's signed notice promotes or withdraws it."""
        candidate = self._candidate
        if candidate is None:
            return False
        self._save_shadow_state(candidate)
        notice = self._notice_for(candidate.bundle)
        if notice is None:
            return False
        if notice.decision == WITHDRAW:
            self._withdrawn.add(candidate.bundle.sha256)
            self._end_shadow()
            counts = candidate.evaluator.counts
            self.rollout = f"{notice.describe()}: never activated ({counts.summary()})"
            return False
        return self._promote(candidate, f"early by a signed notice of {notice.issued}")

    def _notice_for(self, bundle: VerifiedBundle) -> RolloutNotice | None:
        """The current signed notice when it names ``bundle``. One that is not there is no
        notice; one that does not verify is refused and shown (``state().rollout``)."""
        notice = self._fetch_notice()
        return notice if notice is not None and notice.names(bundle) else None

    def _fetch_notice(self) -> RolloutNotice | None:
        headers = {"If-None-Match": self._notice_etag} if self._notice_etag else {}
        if self.token_provider is not None:
            headers["Authorization"] = f"Bearer {self.token_provider()}"
        try:
            answer = bounded_request(
                self.client,
                "GET",
                self.notice_url,
                peer="policy server (rollout notice)",
                seconds=min(self.poll_deadline, NOTICE_DEADLINE),
                max_bytes=MAX_NOTICE_BYTES,
                deadline_name="notice deadline",
                headers=headers,
                read_body=lambda status: status == 200,
            )
        except AnswerRefused as exc:
            self.rollout = f"rollout notice not read: {exc}"
            return self._notice
        if answer.status == 304:
            return self._notice
        if answer.status != 200:
            self._notice = self._notice_etag = None
            return None
        try:
            notice = verify_notice(answer.body, self.public_key)
        except NoticeError as exc:
            self.rollout = f"rollout notice refused: {exc}"
            return None
        self._notice, self._notice_etag = notice, answer.headers.get("ETag")
        return notice

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
            until_activation = self.seconds_to_activation()
            wait = delay * rng.uniform(0.8, 1.2)
            stop.wait(wait if until_activation is None else min(wait, until_activation + 0.01))

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
            shadow=self._shadow_state(),
            rollout=self.rollout,
        )

    def _shadow_state(self) -> ShadowState | None:
        candidate = self._candidate
        if candidate is None:
            return None
        return ShadowState(
            candidate.bundle.manifest.version,
            candidate.bundle.sha256,
            candidate.received_at,
            candidate.received_at + self.shadow_period,
            candidate.evaluator.counts,
        )


def _hours(period: timedelta) -> str:
    hours = period.total_seconds() / 3600
    return f"{hours:g} h"


def _saved_time(value: object, now: datetime) -> datetime | None:
    """The saved time a candidate was first verified, never later than now; None (the period
    starts again) when it is missing or unreadable. Restarting errs on the long side."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return min(when, now)


def _saved_counts(state: dict[str, Any]) -> ShadowCounts:
    def count(key: str) -> int:
        value = state.get(key)
        return value if type(value) is int and value >= 0 else 0

    return ShadowCounts(count("decisions"), count("flips"), count("dropped"), count("unaudited"))
