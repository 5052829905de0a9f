"""A canary workstation as the physician and IT see it: a policy server on 127.0.0.1 publishes a
candidate that would stop physicians seeing their patients' history. Held in shadow, it changes
nothing on screen (the history is still shown); the status bar tells IT how many decisions it
would flip and when it activates, and each flip is in the audit log. When the period has run the
candidate is enforced and the same record shows the refusal."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import httpx

from app.services.workstation import BUNDLED_POLICIES, Workstation
from app.viewmodels.app_vm import ViewModels
from app.views.main_window import MainWindow
from authz.audit import SHADOW_FLIP
from authz.bundle import build_bundle, generate_keys, load_private_key, load_public_key
from authz.policy_server import serve_in_thread
from authz.sync import BundleStore, PolicySync
from tests.app.helpers import Clock, click_cell, sign_in

HISTORY_BEFORE = """    - name: view_patient_history
      actions: ["view_history"]
      effect: EFFECT_ALLOW
      derivedRoles: ["own_patient", "active_delegate", "care_team_member", "assigned_physician","""
HISTORY_AFTER = """    - name: view_patient_history
      actions: ["view_history"]
      effect: EFFECT_ALLOW
      derivedRoles: ["own_patient", "active_delegate","""


def publish(directory: Path, keys: tuple[Path, Path], version: int, policies: Path) -> None:
    data = build_bundle(policies, load_private_key(keys[0]), version, {}, created_at="2026-11-01T00:00:00+00:00")
    (directory / f"v{version}.bundle").write_bytes(data)


def candidate_policies(tmp_path: Path) -> Path:
    """The physician no longer sees the history of the patients whose care team she is on."""
    policies = tmp_path / "candidate"
    shutil.copytree(BUNDLED_POLICIES, policies)
    path = policies / "resources" / "patient_record.yaml"
    text = path.read_text()
    assert text.count(HISTORY_BEFORE) == 1
    path.write_text(text.replace(HISTORY_BEFORE, HISTORY_AFTER))
    return policies


def open_first_patient(qtbot, w: MainWindow) -> None:  # noqa: ANN001
    click_cell(qtbot, w.patients.table, 0, 1, double=True)
    qtbot.waitUntil(lambda: w.vms.record.record is not None, timeout=5000)


def test_shadow_bundle_flips_are_counted_for_it_and_enforced_only_after_the_period(
    qtbot,
    tmp_path: Path,
    clock: Clock,  # noqa: ANN001
) -> None:
    keys = generate_keys(tmp_path / "keys")
    published = tmp_path / "published"
    published.mkdir()
    publish(published, keys, 1, BUNDLED_POLICIES)
    server, url = serve_in_thread(published)
    try:
        sync = PolicySync(
            url,
            load_public_key(keys[1]),
            BundleStore(tmp_path / "data" / "bundles"),
            client=httpx.Client(timeout=httpx.Timeout(5.0)),
            clock=clock.now,
            shadow_period=timedelta(hours=48),
        )
        sync.start_offline()
        assert sync.poll() and sync.state().version == 1
        publish(published, keys, 2, candidate_policies(tmp_path))
        assert not sync.poll()  # held in shadow
        activates = (clock.now() + timedelta(hours=48)).strftime("%Y-%m-%d %H:%M UTC")

        ws = Workstation(tmp_path / "data", sync=sync, clock=clock.now, monotonic=clock.monotonic)
        w = MainWindow(ViewModels.build(ws, clock=clock.monotonic, tick_ms=20))
        w.vms.session.status_timer.setInterval(100)
        qtbot.addWidget(w)
        w.show()
        qtbot.waitUntil(lambda: "shadow bundle v2: 0 flips in " in w.status_label.text(), timeout=5000)
        assert w.status_label.text().startswith("Policies: v1 (")
        assert f"activates at {activates}" in w.status_label.text()

        sign_in(qtbot, w, "dr_aly")
        open_first_patient(qtbot, w)
        record = w.vms.record.record
        assert record.view.decisions["view_history"].allowed and record.view.history  # v1 is enforced
        qtbot.waitUntil(lambda: "shadow bundle v2: 1 flip in " in w.status_label.text(), timeout=10000)
        # counted when found, written with the others found in the same quiet moment
        qtbot.waitUntil(lambda: any(r.event_type == SHADOW_FLIP for r in ws.chain.records()), timeout=5000)
        flips = [r for r in ws.chain.records() if r.event_type == SHADOW_FLIP]
        assert [(f.principal_id, f.action, f.effect, f.details["after_effect"]) for f in flips] == [
            ("dr_aly", "view_history", "EFFECT_ALLOW", "EFFECT_DENY")
        ]
        assert flips[0].patient_id == record.patient_id and flips[0].bundle_version == "1"

        clock.advance(hours=48)
        assert sync.poll()  # the period has run: v2 is activated
        qtbot.waitUntil(lambda: w.status_label.text().startswith("Policies: v2 ("), timeout=5000)
        assert "bundle v2 activated after 48 h in shadow: 1 flip in " in w.status_label.text()
        assert "shadow bundle" not in w.status_label.text()
        qtbot.waitUntil(lambda: w.stack.currentIndex() == 0, timeout=5000)  # 48 h later: locked
        sign_in(qtbot, w, "dr_aly")  # back to her record, decided again: now by v2
        qtbot.waitUntil(lambda: w.vms.record.record is not None, timeout=5000)
        assert w.vms.record.record.patient_id == record.patient_id
        history = w.vms.record.record.view.decisions["view_history"]
        assert not history.allowed and w.vms.record.record.view.history == []
        ws.close()
    finally:
        server.shutdown()
        server.server_close()
