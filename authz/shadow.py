"""Shadow evaluation: a candidate bundle decides beside the active one, without being enforced.

On a canary workstation the sync (sync.py) holds a newly verified bundle in shadow for the period
IT manages. Every live decision the active bundle makes is offered here; a worker thread decides
the same request at the same instant under the candidate and compares the two answers with the
comparison of ``ccc-authz impact`` (``impact.differences``). Each action decided otherwise (newly
allowed, newly denied, outputs changed) is a ``ShadowFlip``, handed to ``record`` (the app's audit
trail writes one audit record per flip) and counted.

The visible decision must not wait for any of this, and in CPython a busy thread slows the
others through the GIL. So ``offer`` only appends to a bounded queue (when it is full the shadow
evaluation is dropped and counted, never waited for), and the worker keeps off the interpreter
while decisions are being made: it starts only once no decision has been offered for ``quiet``
seconds, and after each shadow evaluation it sleeps ``pause`` seconds, so a visible decision that
starts meanwhile waits at most for one shadow evaluation, not for the interpreter's switch
interval. bench/bench_shadow.py measures the visible decision with and without it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .engine import Engine
from .evaluate import CheckInput, CheckOutput
from .impact import differences, responsible

QUEUE_SIZE = 512  # decisions waiting for their shadow evaluation; more are dropped (counted)
QUIET = 0.05  # seconds without a live decision before the worker evaluates (a person pauses longer)
PAUSE = 0.0002  # seconds the worker sleeps after each shadow evaluation (hands the GIL back)
IDLE_POLL = 0.02  # seconds between looks at an empty queue (offer never wakes the worker)


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
        record: Callable[[ShadowFlip], None],
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
        self._queue: deque[tuple[CheckInput, datetime, CheckOutput]] = deque()
        self._last_offer = 0.0
        self._busy = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"policy-shadow-v{version}", daemon=True)

    def start(self) -> ShadowEvaluator:
        self._thread.start()
        return self

    def offer(self, engine: Engine, inp: CheckInput, now: datetime, output: CheckOutput) -> None:
        """A live decision ``engine`` made, to be decided again in shadow. Never blocks: a full
        queue drops it (counted). A decision by another engine than the one shadowed (one that
        was active before a swap) is ignored."""
        if engine is not self.active:
            return
        self._last_offer = time.monotonic()
        if len(self._queue) >= self.queue_size:
            self.counts.dropped += len(inp.actions)
            return
        self._queue.append((inp, now, output))

    def stop(self, timeout: float = 5.0) -> None:
        """Ends the worker (what is still queued is not evaluated)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def drain(self, timeout: float = 10.0) -> bool:
        """Waits until every offered decision has been evaluated (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while self._queue or self._busy:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._queue:
                self._stop.wait(IDLE_POLL)
                continue
            wait = self.quiet - (time.monotonic() - self._last_offer)
            if wait > 0:  # live decisions are being made: keep off the interpreter
                self._stop.wait(wait)
                continue
            self._busy = True
            try:
                self._evaluate(*self._queue.popleft())
            except Exception as exc:  # noqa: BLE001 - the worker must outlive any one request
                self.counts.errors += 1
                self.counts.last_error = f"{exc.__class__.__name__}: {exc!s:.200}"
            finally:
                self._busy = False
            time.sleep(self.pause)

    def _evaluate(self, inp: CheckInput, now: datetime, before: CheckOutput) -> None:
        after = self.candidate.check(inp, now)
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
            try:
                self.record(flip)
            except Exception as exc:  # noqa: BLE001 - counted and shown; the flip is still counted
                self.counts.unaudited += 1
                self.counts.last_error = f"audit record not written: {exc!s:.200}"
