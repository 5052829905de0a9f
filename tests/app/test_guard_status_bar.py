"""The status bar tells the person at the workstation (and IT, who reads it off the screen) when
the audit guard is not signing checkpoints: records after the last signed checkpoint can be
deleted unseen, so this must not pass in silence. Driven through the real window, with a real
guard process on a Unix socket."""

from __future__ import annotations

from pathlib import Path

from app.services.workstation import Workstation
from app.viewmodels.app_vm import ViewModels
from app.views.main_window import MainWindow
from authz.guard import GuardClient
from tests.app.helpers import Clock, click_cell, sign_in
from tests.support.guard import running_guard

NOTICE = "audit log not checkpointed"


def test_a_guard_that_cannot_be_reached_is_shown_until_it_signs_again(qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    clock = Clock()
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir()
    ws = Workstation(
        tmp_path / "data", clock=clock.now, monotonic=clock.monotonic, guard=GuardClient(guard_dir / "guard.sock")
    )
    window = MainWindow(ViewModels.build(ws, clock=clock.monotonic, tick_ms=20))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: NOTICE in window.status_label.text(), timeout=5000)
    assert "cannot be reached" in window.status_label.text()
    ws.chain.checkpoint_seconds = 0.0  # instead of a minute's wait for the next try
    with running_guard(guard_dir):
        sign_in(qtbot, window, "dr_aly")
        click_cell(qtbot, window.patients.table, 0, 1, double=True)  # a record opened: audited, and the guard asked
        qtbot.waitUntil(lambda: NOTICE not in window.status_label.text(), timeout=5000)
        assert ws.chain.latest_checkpoint() is not None
        ws.close()
