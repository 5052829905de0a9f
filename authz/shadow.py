"""Shadow evaluation: a candidate bundle decides beside the active one, without being enforced.

On a canary workstation the sync (sync.py) holds a newly verified bundle in shadow for the period
IT manages. Every live decision the active bundle makes is offered here (the requests of one
call together: a patient list's checks are one offer); a worker thread decides
the same request at the same instant under both bundles and compares the two answers with the
comparison of ``ccc-authz impact`` (``impact.differences``). Each action decided otherwise (newly
allowed, newly denied, outputs changed) is a ``ShadowFlip``, handed to ``record`` (the app's audit
trail writes them as audit records, several in one transaction) and counted.

The visible decision must not wait for any of this, and in CPython a busy thread slows the
others through the GIL. So ``offer`` only appends the request to a bounded queue (when it is full
the shadow evaluation is dropped and counted, never waited for); it keeps neither the answers nor
anything else the visible path would otherwise free at once (the worker decides the requests again
under the active bundle: the same request at the same instant gets the same answer). The worker
keeps off the interpreter while decisions are being made: it starts only once no decision has
been offered for ``quiet`` seconds, and after each shadow evaluation it sleeps ``pause`` seconds,
so a visible decision that starts meanwhile waits at most for one shadow evaluation, not for the
interpreter's switch interval. Flips are written in batches (one commit, one fsync, for up to
``FLIP_BATCH``) when the queue is empty or a batch is full, so the audit log's lock is seldom
held by the shadow when a visible decision writes its own record, and never for long.
bench/bench_shadow.py measures the visible decision with and without it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .engine import Engine
from .evaluate import CheckInput
from .impact import differences, responsible

QUEUE_SIZE = 512  # requests waiting for their shadow evaluation; more are dropped (counted)
QUIET = 0.05  # seconds without a live decision before the worker evaluates (a person pauses longer)
PAUSE = 0.0002  # seconds the worker sleeps after each shadow evaluation (hands the GIL back)
IDLE_POLL = 0.02  # seconds between looks at an empty queue (offer never wakes the worker)
FLIP_BATCH = 16  # flips in one audit transaction at most (~1 ms here: a visible write waits no longer)


@dataclass(frozen=True)
class ShadowFlip:
    """One action of a live decision that the candidate decides otherwise. Identifiers, effects
    and rules only (and the rules' outputs when only those changed): no clinical content."""

    principal_id: str
    roles: tuple[str, ...]
    resource_kind: str
    resource_id: str
    patient_id: str
    action: str
    direction: str  # impact.NEWLY_ALLOWED, NEWLY_DENIED or OUTPUT_CHANGED
    before_effect: str  # the active bundle's, which was enforced
    after_effect: str  # the candidate's
    before_rule: str
    after_rule: str
    active_version: str
    shadow_version: int
    shadow_sha256: str
    decided_at: str  # the instant both sides decided
    outputs: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None


@dataclass
class ShadowCounts:
    """What IT is shown: live decisions (actions) decided in shadow, flips among them, decisions
    not evaluated because the queue was full, flips whose audit record could not be written."""

    decisions: int = 0
    flips: int = 0
    dropped: int = 0
    unaudited: int = 0
    errors: int = 0
    last_error: str = field(default="", compare=False)

    def summary(self) -> str:
        """ "3 flips in 1,200 decisions", as IT reads it."""
        return f"{_count(self.flips, 'flip')} in {_count(self.decisions, 'decision')}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


class ShadowEvaluator:
    """The candidate ``Engine`` deciding beside ``active`` on a worker thread (see the module)."""

    def __init__(
        self,
        active: Engine,
        candidate: Engine,
        version: int,
        sha256: str,
        record: Callable[[list[ShadowFlip]], object],
        counts: ShadowCounts | None = None,
        queue_size: int = QUEUE_SIZE,
        quiet: float = QUIET,
        pause: float = PAUSE,
    ) -> None:
        self.active, self.candidate = active, candidate
        self.version, self.sha256 = version, sha256
        self.record = record
        self.counts = counts or ShadowCounts()
        self.queue_size, self.quiet, self.pause = queue_size, quiet, pause
        self._queue: deque[tuple[Sequence[CheckInput], datetime]] = deque()  # offers, oldest first
        self._next = 0  # the oldest offer's next request (the worker's)
        self._offered = self._evaluated = 0  # requests queued and taken (one writer each)
        self._flips: list[ShadowFlip] = []  # found, not yet recorded
        self._last_offer = 0.0
        self._busy = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"policy-shadow-v{version}", daemon=True)

    def start(self) -> ShadowEvaluator:
        self._thread.start()
        return self

    def offer(self, engine: Engine, requests: Sequence[CheckInput], now: datetime) -> None:
        """Live decisions ``engine`` made at ``now``, to be decided again in shadow. Never blocks:
        requests that do not fit in the queue are dropped (counted). Decisions by another engine
        than the one shadowed (one that was active before a swap) are ignored."""
        if engine is not self.active or not requests:
            return
        self._last_offer = time.monotonic()
        if self._offered - self._evaluated + len(requests) > self.queue_size:
            self.counts.dropped += sum(len(inp.actions) for inp in requests)
            return
        self._offered += len(requests)
        self._queue.append((requests, now))

    def stop(self, timeout: float = 5.0) -> None:
        """Ends the worker: what is still queued is not evaluated, the flips already found are
        recorded."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def drain(self, timeout: float = 10.0) -> bool:
        """Waits until every offered decision has been evaluated (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while self._queue or self._busy or self._flips:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._queue:
                self._record_flips()
                self._stop.wait(IDLE_POLL)
                continue
            wait = self.quiet - (time.monotonic() - self._last_offer)
            if wait > 0:  # live decisions are being made: keep off the interpreter
                self._stop.wait(wait)
                continue
            self._busy = True
            try:
                self._evaluate(*self._take())
                if len(self._flips) >= FLIP_BATCH:
                    self._record_flips()
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any one request
                self.counts.errors += 1
                self.counts.last_error = f"{exc.__class__.__name__}: {exc!s:.200}"
            finally:
                self._busy = False
            time.sleep(self.pause)
        self._record_flips()

    def _take(self) -> tuple[CheckInput, datetime]:
        """The oldest request not yet evaluated (the worker's)."""
        requests, now = self._queue[0]
        inp = requests[self._next]
        self._next += 1
        if self._next == len(requests):
            self._queue.popleft()
            self._next = 0
        self._evaluated += 1
        return inp, now

    def _record_flips(self) -> None:
        """Writes the flips found so far, together (their count is already shown)."""
        if not self._flips:
            return
        try:  # kept in the list until written, so that drain() waits for them
            self.record(list(self._flips))
        except Exception as exc:  # noqa: BLE001 - counted and shown; the flips are still counted
            self.counts.unaudited += len(self._flips)
            self.counts.last_error = f"audit record not written: {exc!s:.200}"
        finally:
            self._flips.clear()

    def _evaluate(self, inp: CheckInput, now: datetime) -> None:
        before, after = self.active.check(inp, now), self.candidate.check(inp, now)
        self.counts.decisions += len(inp.actions)
        if not (before.outputs or after.outputs or before.actions != after.actions):
            return
        for diff in differences(inp.actions, before, after):
            self.counts.flips += 1
            flip = ShadowFlip(
                principal_id=inp.principal.id,
                roles=tuple(sorted(set(inp.principal.roles))),
                resource_kind=inp.resource.kind,
                resource_id=inp.resource.id,
                patient_id=str(inp.resource.attr.get("patient_id", "")),
                action=diff.action,
                direction=diff.direction,
                before_effect=diff.before.effect,
                after_effect=diff.after.effect,
                before_rule=responsible(diff.before),
                after_rule=responsible(diff.after),
                active_version=self.active.bundle_version,
                shadow_version=self.version,
                shadow_sha256=self.sha256,
                decided_at=now.isoformat(timespec="microseconds"),
                outputs=diff.outputs,
            )
            self._flips.append(flip)
