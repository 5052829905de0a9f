"""The visible decision with and without a bundle in shadow (issue 17, part 3), in the same run.

The app's decision path (``AccessService``, as the screens call it) on the active policies
(policies/), with and without a candidate held in shadow (the story's update: the attending
physician, assigned but not on the care team, loses their patients' history), the shadow's flips
written to a real audit log (fsync'd, as the app's). Rounds alternate between the two modes (A B A
B ...) so that the other jobs of a shared machine weigh on both alike. Three workloads:

- ward pace (faster than any person): a patient list (``permitted`` over 200 patients: 200
  decisions, one call, timed whole), then five record openings 100 ms apart, each timed, as the
  app opens a record (``PatientService.open_record``): ``view`` and ``view_phi`` decided, their
  audit records committed (fsync), then the seven actions of the record screen; the shadow
  decides in the pauses;
- into the drain: five openings and the list, then one record opened at a random moment of the
  shadow's work on them (from just after it began to after its batch of flips was written): one
  shadow evaluation may be under way, or the shadow may hold the audit log's lock for its batch;
- saturation: record openings back to back for a few seconds (alternating half seconds, timed
  per 100), never a pause: the worker gets no quiet moment, the queue fills and shadow
  evaluations are dropped (counted); the visible decisions go on at their own speed.

Wall times on a shared machine carry the other jobs' noise; the calling thread's CPU time
(``time.thread_time``) does not, but leaves out any wait for the GIL: both are given.

    .venv/bin/python bench/bench_shadow.py [--rounds 60] [--saturate 4] [--write]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import publish  # noqa: E402

from app.services.access import AccessService  # noqa: E402
from app.services.audit_trail import AuditTrail  # noqa: E402
from app.services.users import SignedInUser  # noqa: E402
from authz import Engine, Resource  # noqa: E402
from authz.audit import AuditChain  # noqa: E402
from authz.shadow import ShadowEvaluator  # noqa: E402

POLICIES = ROOT / "policies"
STORY_BEFORE = """      derivedRoles: ["own_patient", "active_delegate", "care_team_member", "assigned_physician","""
STORY_AFTER = """      derivedRoles: ["own_patient", "active_delegate", "care_team_member","""
RECORD_ACTIONS = ["view", "view_history", "delegate_access", "revoke_delegation", "record_consent"]
RECORD_ACTIONS += ["acknowledge_alert", "triage_alert"]
ATTENDING = SignedInUser("dr_att", "Dr. Att", ("physician",), {"hospital_ids": ["h1"]})
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def story_candidate(tmp: Path) -> Engine:
    policies = tmp / "candidate"
    shutil.copytree(POLICIES, policies)
    path = policies / "resources" / "patient_record.yaml"
    text = path.read_text()
    anchor = '    - name: view_patient_history\n      actions: ["view_history"]\n      effect: EFFECT_ALLOW\n'
    assert text.count(anchor + STORY_BEFORE) == 1
    path.write_text(text.replace(anchor + STORY_BEFORE, anchor + STORY_AFTER))
    return Engine.from_directory(policies, bundle_version="2")


def ward_records(n: int) -> list[Resource]:
    """n records of the ward: the attending is assigned, the nurse is on the care team."""
    return [
        Resource(
            "patient_record",
            f"p{i}",
            {"patient_id": f"p{i}", "hospital_id": "h1", "care_team": ["nurse_nia"], "assigned_physicians": ["dr_att"]},
        )
        for i in range(n)
    ]


Timings = dict[str, list[float]]  # "wall" and "cpu" (the calling thread's CPU time), per call


def timed(timings: Timings, call: Any) -> None:
    w0, c0 = time.perf_counter(), time.thread_time()
    call()
    timings["cpu"].append(time.thread_time() - c0)
    timings["wall"].append(time.perf_counter() - w0)


class Ward:
    """The app's decision path and audit trail, with or without a shadow observing it."""

    def __init__(self, access: AccessService, trail: AuditTrail) -> None:
        self.access, self.trail = access, trail

    def open_record(self, record: Resource) -> None:
        """As ``PatientService.open_record`` decides and audits before the record is shown."""
        view = self.access.decide(ATTENDING, record, ["view", "view_phi"])
        self.trail.decisions(ATTENDING, record, view.values())
        self.access.decide(ATTENDING, record, RECORD_ACTIONS)


def ward_pace(ward: Ward, patients: list[Resource], lists: Timings, opens: Timings) -> None:
    """A clinician, faster than any: the list, then five records 100 ms apart."""
    timed(lists, lambda: ward.access.permitted(ATTENDING, patients, "view"))
    for i in range(5):
        time.sleep(0.100)
        timed(opens, lambda i=i: ward.open_record(patients[i]))
    time.sleep(0.100)


def into_the_drain(ward: Ward, patients: list[Resource], shadow: ShadowEvaluator, opens: Timings, delay: float) -> None:
    """Five openings (whose history flips in shadow) and the list, then one record opened
    ``delay`` seconds after the shadow could begin on them."""
    for i in range(5):
        ward.open_record(patients[i])
    ward.access.permitted(ATTENDING, patients, "view")
    time.sleep(shadow.quiet + delay)
    timed(opens, lambda: ward.open_record(patients[0]))
    shadow.drain(60)


def saturate(ward: Ward, patients: list[Resource], seconds: float, timings: Timings) -> int:
    """Record openings back to back for ``seconds``, timed in blocks of 100."""
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:

        def block(start: int = done) -> None:
            for i in range(start, start + 100):
                ward.open_record(patients[i % len(patients)])

        timed(timings, block)
        done += 100
    return done


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--saturate", type=float, default=4.0, help="seconds of back-to-back decisions per mode")
    parser.add_argument("--write", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-shadow-"))
    try:
        active = Engine.from_directory(POLICIES, bundle_version="1")
        candidate = story_candidate(tmp)
        audit = AuditChain(tmp / "audit.db", workstation_id="bench")
        trail = AuditTrail(audit, lambda: "1")
        shadow = ShadowEvaluator(active, candidate, 2, "0" * 64, trail.shadow_flips)
        shadow.start()
        plain = Ward(AccessService(lambda: active, clock=lambda: NOW), trail)
        shadowed = Ward(AccessService(lambda: active, clock=lambda: NOW, observe=shadow.offer), trail)
        patients = ward_records(200)
        delays = random.Random(17)
        modes = {"off": plain, "on": shadowed}
        lists: dict[str, Timings] = {m: {"wall": [], "cpu": []} for m in modes}
        opens: dict[str, Timings] = {m: {"wall": [], "cpu": []} for m in modes}
        sat: dict[str, Timings] = {m: {"wall": [], "cpu": []} for m in modes}
        drain: dict[str, Timings] = {m: {"wall": [], "cpu": []} for m in modes}
        for warm in (plain, shadowed):  # warm-up
            ward_pace(warm, patients, {"wall": [], "cpu": []}, {"wall": [], "cpu": []})
        shadow.drain()
        shadow.counts = type(shadow.counts)()
        for n in range(args.rounds):
            for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
                ward_pace(modes[mode], patients, lists[mode], opens[mode])
        assert shadow.drain(60)
        counts = dict(vars(shadow.counts))
        offered = args.rounds * (len(patients) + 10)
        for n in range(args.rounds):
            for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
                into_the_drain(modes[mode], patients, shadow, drain[mode], delays.uniform(0.001, 0.150))
        for n in range(int(args.saturate / 0.5)):  # alternating half seconds
            for mode in ("off", "on") if n % 2 == 0 else ("on", "off"):
                saturate(modes[mode], patients, 0.5, sat[mode])
                shadow.drain(60)  # between blocks, so each "on" block starts with an empty queue
        dropped = shadow.counts.dropped - counts["dropped"]
        shadow.stop()
        flips_audited = sum(1 for r in audit.records() if r.event_type == "policy_shadow_flip")
        audit.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for what, timings, per in (
        ("patient list (200 decisions, one call)", lists, 1),
        ("record opening (9 actions, 2 audit records)", opens, 1),
        ("record opening at a random moment of the shadow's work", drain, 1),
        ("saturation: record openings back to back, per opening", sat, 100),
    ):
        for label, clock, stat in (
            ("median wall", "wall", statistics.median),
            ("p90 wall", "wall", lambda v: pct(v, 90)),
            ("p99 wall", "wall", lambda v: pct(v, 99)),
            ("median CPU of the calling thread", "cpu", statistics.median),
        ):
            off, on = stat(timings["off"][clock]) / per, stat(timings["on"][clock]) / per
            rows.append(f"| {what} | {label} | {us(off)} | {us(on)} | {on / off:.2f} |")
    load = os.getloadavg()
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d} — shadow evaluation beside the visible decision (issue 17, part 3)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; load average "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end (other sessions share the machine). "
        f"{args.rounds} rounds per mode, alternating; the shadow's flips written to a real audit log.",
        "",
        "| visible decision | statistic | without shadow | with shadow | ratio |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Shadow work in the rounds: {counts['decisions']:,} actions decided in shadow (all {offered:,} offered "
        f"checks), {counts['flips']:,} flips, {counts['dropped']:,} dropped, {counts['errors']} errors; "
        f"{flips_audited:,} flip records in the audit log in all. Saturation: {dropped:,} actions not decided in "
        "shadow (queue full: dropped, counted), none waited for.",
        "",
        f"Command: `.venv/bin/python bench/bench_shadow.py --rounds {args.rounds}`",
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
