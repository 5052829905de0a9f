"""Shadow rollout on a canary workstation, against a real policy server on 127.0.0.1.

The candidate is the story's update (the attending physician, assigned but not on the care team,
no longer sees their patients' history). Held in shadow it decides beside the active bundle on
every live decision: the active bundle is still enforced, each flip is audited and counted. It is
activated when the period has run, or earlier by a signed promotion; never when withdrawn; a
forged or unsigned notice changes nothing; a restart keeps the shadow state."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from authz import CheckInput, Principal, Resource
from authz.audit import SHADOW_FLIP, AuditChain, shadow_flip_record
from authz.bundle import build_bundle, generate_keys, load_private_key, load_public_key, read_bundle_file
from authz.cli import main
from authz.engine import Engine
from authz.evaluate import CheckOutput
from authz.impact import NEWLY_DENIED
from authz.policy_server import BundleServer, serve_in_thread
from authz.rollout import MAX_NOTICE_BYTES, NOTICE_FILE, PROMOTE, WITHDRAW, RolloutNotice, sign_notice
from authz.shadow import FLIP_BATCH, ShadowEvaluator, ShadowFlip
from authz.sync import SHADOW, SHADOW_STATE, BundleStore, PolicySync
from tests.authz.test_impact_bundle import STORY_AFTER, STORY_BEFORE

POLICIES = Path(__file__).resolve().parents[2] / "policies"
PERIOD = timedelta(hours=48)
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
RECORD = {"patient_id": "p1", "hospital_id": "h1", "care_team": ["nurse_nia"], "assigned_physicians": ["dr_att"]}
ATTENDING = Principal("dr_att", ["physician"], {"hospital_ids": ["h1"]})
NURSE = Principal("nurse_nia", ["nurse"], {"hospital_ids": ["h1"]})


def chart(principal: Principal, n: int = 1) -> CheckInput:
    attr = dict(RECORD, patient_id=f"p{n}")
    return CheckInput(principal, Resource("patient_record", f"p{n}", attr), ["view", "view_history"])


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def story_policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    candidate = tmp_path_factory.mktemp("story") / "policies"
    shutil.copytree(POLICIES, candidate)
    policy = candidate / "resources" / "patient_record.yaml"
    text = policy.read_text()
    assert text.count(STORY_BEFORE) == 1
    policy.write_text(text.replace(STORY_BEFORE, STORY_AFTER))
    return candidate


def publish(directory: Path, keys: tuple[Path, Path], version: int, policies: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"policies-v{version}.bundle"
    data = build_bundle(
        policies, load_private_key(keys[0]), version, {"executed": 0}, created_at="2026-11-01T00:00:00+00:00"
    )
    path.write_bytes(data)
    return path


class Ward:
    """A policy server on 127.0.0.1 publishing v1, a canary workstation on it, and its audit log."""

    def __init__(self, tmp: Path, keys: tuple[Path, Path], story: Path) -> None:
        self.tmp, self.keys, self.story = tmp, keys, story
        self.published = tmp / "published"
        publish(self.published, keys, 1, POLICIES)
        self.server: BundleServer
        self.server, self.url = serve_in_thread(self.published)
        self.clock = Clock()
        self.audit = AuditChain(tmp / "audit.db", workstation_id="ward9-ws01")
        self.sync = self.workstation()
        assert self.sync.poll() and self.sync.state().version == 1

    def workstation(self, **kw: object) -> PolicySync:
        sync = PolicySync(
            self.url,
            load_public_key(self.keys[1]),
            BundleStore(self.tmp / "store"),
            client=httpx.Client(timeout=httpx.Timeout(2.0)),
            clock=self.clock,
            shadow_period=PERIOD,
            **kw,  # type: ignore[arg-type]
        )
        sync.flip_recorder = lambda flips: self.audit.append_many([shadow_flip_record(f) for f in flips])
        sync.start_offline()
        return sync

    def candidate(self) -> Path:
        return publish(self.published, self.keys, 2, self.story)

    def notice(self, decision: str, bundle: Path, key: Path | None = None) -> None:
        assert (
            main(["rollout", decision, str(bundle), "--key", str(key or self.keys[0]), "--out", str(self.tmp / "n")])
            == 0
        )
        shutil.copy(self.tmp / "n", self.published / NOTICE_FILE)

    def decide(self, inp: CheckInput, sync: PolicySync | None = None) -> CheckOutput:
        """A live decision, as the app makes it: enforced by the active engine, offered to the shadow."""
        sync = sync or self.sync
        engine = sync.engine
        assert engine is not None
        out = engine.check(inp, START)
        sync.observe(engine, [inp], START)
        return out

    def morning(self, sync: PolicySync | None = None) -> None:
        """The attending physician and the nurse open ten charts with their history."""
        for n in range(1, 11):
            for who in (ATTENDING, NURSE):
                out = self.decide(chart(who, n), sync)
                assert out.actions["view_history"].effect == "EFFECT_ALLOW"  # v1 is enforced

    def drain(self, sync: PolicySync | None = None) -> None:
        candidate = (sync or self.sync)._candidate
        assert candidate is not None and candidate.evaluator.drain()

    def flips(self) -> list[object]:
        return [r for r in self.audit.records() if r.event_type == SHADOW_FLIP]

    def close(self) -> None:
        self.sync.close()
        self.server.shutdown()
        self.server.server_close()
        self.audit.close()


@pytest.fixture
def ward(tmp_path: Path, keys: tuple[Path, Path], story_policies: Path) -> Iterator[Ward]:
    ward = Ward(tmp_path, keys, story_policies)
    yield ward
    ward.close()


def test_candidate_in_shadow_flips_audited_and_counted_then_activated_at_the_end(ward: Ward) -> None:
    ward.candidate()
    assert not ward.sync.poll()  # held in shadow, not activated
    state = ward.sync.state()
    assert state.version == 1 and state.last_error == ""
    assert state.shadow is not None and state.shadow.version == 2
    assert state.shadow.activates_at == START + PERIOD
    assert (ward.tmp / "store" / SHADOW).exists()

    ward.morning()
    ward.drain()
    counts = ward.sync.state().shadow.counts  # type: ignore[union-attr]
    assert (counts.decisions, counts.flips, counts.dropped, counts.unaudited) == (40, 10, 0, 0)
    flips = ward.flips()
    assert len(flips) == 10
    first = flips[0]
    assert (first.principal_id, first.principal_roles, first.resource_kind, first.action) == (
        "dr_att",
        ["physician"],
        "patient_record",
        "view_history",
    )
    assert first.patient_id == "p1" and first.effect == "EFFECT_ALLOW" and first.bundle_version == "1"
    assert first.rule == "resource.patient_record.vdefault#view_patient_history"
    assert first.details["direction"] == NEWLY_DENIED
    assert first.details["after_effect"] == "EFFECT_DENY" and first.details["shadow_bundle_version"] == 2
    assert ward.audit.verify().ok

    ward.clock.now = START + PERIOD - timedelta(seconds=1)
    assert not ward.sync.poll() and ward.sync.state().version == 1
    ward.clock.now = START + PERIOD
    assert ward.sync.tick()  # no server needed: the period has run
    state = ward.sync.state()
    assert state.version == 2 and state.shadow is None
    assert state.rollout == "bundle v2 activated after 48 h in shadow: 10 flips in 40 decisions"
    assert ward.decide(chart(ATTENDING)).actions["view_history"].effect == "EFFECT_DENY"
    assert not (ward.tmp / "store" / SHADOW).exists()
    assert BundleStore(ward.tmp / "store").load(load_public_key(ward.keys[1]))[1].manifest.version == 2  # type: ignore[index]


def test_signed_promotion_activates_early(ward: Ward) -> None:
    v2 = ward.candidate()
    ward.sync.poll()
    ward.morning()
    ward.drain()
    ward.clock.now = START + timedelta(hours=5)
    ward.notice(PROMOTE, v2)
    assert ward.sync.poll()
    state = ward.sync.state()
    assert state.version == 2 and state.shadow is None
    assert "activated early by a signed notice" in state.rollout and "10 flips in 40 decisions" in state.rollout


def test_promotion_published_with_the_bundle_skips_the_shadow(ward: Ward) -> None:
    v2 = ward.candidate()
    ward.notice(PROMOTE, v2)
    assert ward.sync.poll() and ward.sync.state().version == 2
    assert "activated without a shadow period" in ward.sync.state().rollout


def test_forged_and_foreign_notices_change_nothing(ward: Ward, tmp_path: Path) -> None:
    v2 = ward.candidate()
    ward.sync.poll()
    other = generate_keys(tmp_path / "other")
    ward.notice(PROMOTE, v2)
    notice = (ward.published / NOTICE_FILE).read_bytes()
    tampered = notice.replace(b'"promote"', b'"withdraw"')
    (ward.published / NOTICE_FILE).write_bytes(tampered)
    assert not ward.sync.poll()
    assert ward.sync.state().version == 1 and ward.sync.state().shadow is not None
    assert "rollout notice refused" in ward.sync.state().rollout and "signature" in ward.sync.state().rollout

    # signed by a key that is not the pinned one (a hostile server's own key)
    bundle = read_bundle_file(v2, load_public_key(ward.keys[1]))
    (ward.published / NOTICE_FILE).write_bytes(sign_notice(bundle, PROMOTE, load_private_key(other[0])))
    assert not ward.sync.poll() and ward.sync.state().version == 1
    assert "pinned public key" in ward.sync.state().rollout

    # no signature at all: a promotion in plain JSON
    (ward.published / NOTICE_FILE).write_bytes(b'{"format": 1, "decision": "promote"}')
    assert not ward.sync.poll() and ward.sync.state().version == 1
    assert "not a CCC rollout notice" in ward.sync.state().rollout

    # a genuine notice for another bundle (v1, replayed) does nothing to v2
    ward.notice("withdraw", ward.published / "policies-v1.bundle")
    assert not ward.sync.poll()
    assert ward.sync.state().version == 1 and ward.sync.state().shadow is not None


def test_withdrawn_bundle_is_never_activated(ward: Ward) -> None:
    v2 = ward.candidate()
    ward.sync.poll()
    ward.morning()
    ward.drain()
    ward.notice("withdraw", v2)
    assert not ward.sync.poll()
    state = ward.sync.state()
    assert state.shadow is None and state.version == 1
    assert "withdrawn by a signed notice" in state.rollout and "never activated (10 flips" in state.rollout
    assert not (ward.tmp / "store" / SHADOW).exists()
    ward.clock.now = START + 3 * PERIOD
    for _ in range(2):  # the server still offers it: not held again, not activated
        assert not ward.sync.poll()
    assert ward.sync.state().version == 1 and ward.sync.state().shadow is None
    assert ward.decide(chart(ATTENDING)).actions["view_history"].effect == "EFFECT_ALLOW"

    restarted = ward.workstation()  # a restart forgets nothing that matters: the notice is still served
    assert not restarted.poll() and restarted.state().version == 1 and restarted.state().shadow is None


def test_restart_keeps_the_shadow_and_its_period(ward: Ward) -> None:
    ward.candidate()
    ward.sync.poll()
    ward.morning()
    ward.drain()
    ward.sync.close()
    state = BundleStore(ward.tmp / "store").load_shadow_state()
    assert state["flips"] == 10 and state["received_at"] == START.isoformat()

    ward.server.shutdown()  # offline from now on
    ward.clock.now = START + timedelta(hours=30)
    restarted = ward.workstation()
    shadow = restarted.state().shadow
    assert restarted.state().version == 1 and shadow is not None
    assert shadow.version == 2 and shadow.activates_at == START + PERIOD  # the period runs on
    assert (shadow.counts.flips, shadow.counts.decisions) == (10, 40)
    ward.morning(restarted)
    ward.drain(restarted)
    assert restarted.state().shadow.counts.flips == 20  # type: ignore[union-attr]
    assert len(ward.flips()) == 20
    restarted.close()

    ward.clock.now = START + PERIOD + timedelta(hours=1)  # the period ended while it was off
    again = ward.workstation()
    assert again.state().version == 2 and again.state().shadow is None
    assert "20 flips in 80 decisions" in again.state().rollout
    again.close()


def test_a_saved_candidate_that_no_longer_verifies_is_discarded(ward: Ward) -> None:
    ward.candidate()
    ward.sync.poll()
    ward.sync.close()
    saved = ward.tmp / "store" / SHADOW
    data = bytearray(saved.read_bytes())
    data[-1] ^= 0xFF
    saved.write_bytes(bytes(data))
    restarted = ward.workstation()
    assert restarted.state().version == 1 and restarted.state().shadow is None
    assert "discarded" in restarted.state().rollout and "signature" in restarted.state().rollout
    assert not saved.exists() and not (ward.tmp / "store" / SHADOW_STATE).exists()


def test_the_floor_is_checked_again_at_activation(ward: Ward) -> None:
    class Floor:
        value = 0

        def highest(self) -> int:
            return self.value

        def raise_to(self, version: int) -> None:
            self.value = max(self.value, version)

    floor = Floor()
    ward.sync.floor = floor
    ward.candidate()
    ward.sync.poll()
    floor.value = 3  # v3 was activated elsewhere on this workstation meanwhile
    ward.clock.now = START + PERIOD
    assert not ward.sync.tick()  # never activated: discarded
    state = ward.sync.state()
    assert state.version == 1 and state.shadow is None and not (ward.tmp / "store" / SHADOW).exists()
    assert "bundle v2 was discarded from shadow: bundle version 2 is older than version 3" in state.rollout


def test_a_floor_that_cannot_be_read_delays_the_activation(ward: Ward) -> None:
    class Down:
        def highest(self) -> int:
            raise OSError("the guard is not running")

        def raise_to(self, version: int) -> None:
            raise OSError("the guard is not running")

    ward.candidate()
    ward.sync.poll()
    ward.sync.floor = Down()
    ward.clock.now = START + PERIOD
    assert not ward.sync.poll()  # retried at each poll, and still said after a successful one
    state = ward.sync.state()
    assert state.version == 1 and state.shadow is not None
    assert "bundle v2 could not be activated: the version floor cannot be read" in state.rollout
    ward.sync.floor = None
    assert ward.sync.poll() and ward.sync.state().version == 2


def test_a_full_queue_drops_shadow_evaluations_and_counts_them() -> None:
    engine = Engine.from_directory(POLICIES, bundle_version="1")
    evaluator = ShadowEvaluator(engine, engine, 2, "0" * 64, lambda flip: None, queue_size=5)  # not started
    for n in range(20):
        inp = chart(NURSE, n)
        evaluator.offer(engine, [inp], START)
    assert evaluator.counts.dropped == 30  # 15 decisions of two actions each: never waited for
    evaluator.offer(engine, [chart(NURSE, n) for n in range(3)], START)
    assert evaluator.counts.dropped == 36  # a call's requests that do not all fit are all dropped
    evaluator.offer(Engine.from_directory(POLICIES), [chart(NURSE)], START)
    assert evaluator.counts.dropped == 36  # another engine's decision (before a swap) is not shadowed
    evaluator.start()
    assert evaluator.drain()
    evaluator.stop()
    assert (evaluator.counts.decisions, evaluator.counts.flips) == (10, 0)


def story_evaluator(story_policies: Path, record: Callable[[list[ShadowFlip]], object]) -> ShadowEvaluator:
    active = Engine.from_directory(POLICIES, bundle_version="1")
    return ShadowEvaluator(active, Engine.from_directory(story_policies), 2, "0" * 64, record, quiet=0.0, pause=0.0)


def offer_charts(evaluator: ShadowEvaluator, charts: int) -> None:
    """A list of ``charts`` charts checked in one call, as the patient list offers it."""
    evaluator.offer(evaluator.active, [chart(ATTENDING, n) for n in range(charts)], START)


def test_flips_are_written_in_batches_and_drain_waits_for_them(story_policies: Path) -> None:
    """One audit transaction for many flips, not one fsync each while the ward works."""
    batches: list[list[ShadowFlip]] = []
    evaluator = story_evaluator(story_policies, lambda flips: (time.sleep(0.05), batches.append(flips)))
    offer_charts(evaluator, FLIP_BATCH + 10)  # queued before the worker starts: one drain
    evaluator.start()
    assert evaluator.drain()
    assert [len(b) for b in batches] == [FLIP_BATCH, 10]  # drain returned only once both were written
    assert {f.resource_id for b in batches for f in b} == {f"p{n}" for n in range(FLIP_BATCH + 10)}
    offer_charts(evaluator, 1)
    evaluator.stop()  # the flips found before the stop are still recorded
    assert sum(len(b) for b in batches) == evaluator.counts.flips  # each flip counted is on the record
    assert evaluator.counts.unaudited == 0


def test_a_batch_that_cannot_be_written_counts_each_of_its_flips(story_policies: Path) -> None:
    def full_disk(flips: list[ShadowFlip]) -> None:
        raise OSError(28, "No space left on device")

    evaluator = story_evaluator(story_policies, full_disk).start()
    offer_charts(evaluator, 3)
    assert evaluator.drain()
    evaluator.stop()
    counts = evaluator.counts
    assert (counts.flips, counts.unaudited, counts.errors) == (3, 3, 0)
    assert counts.last_error == "audit record not written: [Errno 28] No space left on device"


def test_the_sync_thread_wakes_for_the_end_of_the_period(ward: Ward) -> None:
    """run() polls every 60 s, but a period ending sooner activates the bundle then."""
    ward.candidate()
    ward.sync.poll()
    ward.clock.now = START + PERIOD - timedelta(seconds=0.3)
    stop = threading.Event()
    thread = threading.Thread(target=ward.sync.run, args=(stop,), kwargs={"interval": 60.0}, daemon=True)
    thread.start()
    try:
        time.sleep(0.1)  # the first poll is done: still in shadow
        assert ward.sync.state().version == 1
        ward.clock.now = START + PERIOD  # the run loop sleeps 0.3 s at most, not 60
        deadline = time.monotonic() + 5
        while ward.sync.state().version != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ward.sync.state().version == 2
    finally:
        stop.set()
        thread.join(5)


def test_a_huge_or_garbled_notice_is_refused_and_the_shadow_goes_on(ward: Ward) -> None:
    ward.candidate()
    ward.sync.poll()
    (ward.published / NOTICE_FILE).write_bytes(b"CCCNOTE1" + b"\0" * (MAX_NOTICE_BYTES + 10))
    assert not ward.sync.poll()
    assert "rollout notice not read" in ward.sync.state().rollout and ward.sync.state().shadow is not None
    (ward.published / NOTICE_FILE).write_bytes(b"CCCNOTE1" + b"\0" * 70)
    assert not ward.sync.poll()
    assert "rollout notice refused" in ward.sync.state().rollout and ward.sync.state().version == 1


def test_rollout_refuses_to_sign_for_a_bundle_its_key_did_not_sign(
    ward: Ward, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v2 = ward.candidate()
    other = generate_keys(tmp_path / "other")
    out = tmp_path / "notice"
    assert main(["rollout", "promote", str(v2), "--key", str(other[0]), "--out", str(out)]) == 2
    assert "ccc-authz rollout: signature does not match" in capsys.readouterr().err and not out.exists()
    assert main(["rollout", "withdraw", str(v2), "--key", str(ward.keys[0]), "--out", str(out)]) == 0
    assert "withdraw bundle version 2 (sha256 " in capsys.readouterr().out and out.exists()


def test_a_notice_s_time_reads_as_the_status_bar_writes_times() -> None:
    """The rollout line sits beside "activates at 2026-12-05 08:00 UTC": the notice's time is
    written the same way, not as the raw ISO text signed into it."""
    promote = RolloutNotice(PROMOTE, 2, "0" * 64, "2026-12-03T08:36:28+01:00")
    assert promote.describe() == "bundle v2 promoted by a signed notice of 2026-12-03 07:36 UTC"
    assert RolloutNotice(WITHDRAW, 3, "0" * 64, "2026-12-03T07:36:28").issued == "2026-12-03 07:36"
