"""``ccc-workstation``: the app on its embedded default (a demo hospital in a local SQLite file,
the bundled policies), or with ``--screenshot FILE --user ID`` to render the main window to a PNG
and exit."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

from app.services.users import DEMO_PASSWORD
from app.services.workstation import BUNDLED_POLICIES, Workstation


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(os.environ.get("CCC_DATA_DIR", Path(base) / "ccc-workstation"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ccc-workstation")
    parser.add_argument("--data-dir", type=Path, default=None, help="where the demo data and audit log live")
    parser.add_argument("--policies", type=Path, default=BUNDLED_POLICIES)
    parser.add_argument("--screenshot", type=Path, help="render the main window to this PNG and exit")
    parser.add_argument("--user", help="with --screenshot: sign this demo user in first")
    parser.add_argument("--patient", help="with --screenshot: open this patient's record")
    parser.add_argument(
        "--policy-server",
        metavar="URL",
        help="sync signed policy bundles from this URL "
        "(e.g. http://policy.hospital.local:8088/current.bundle) instead of the bundled policies",
    )
    parser.add_argument("--public-key", type=Path, help="with --policy-server: the Ed25519 key bundles are signed with")
    parser.add_argument("--idle-lock-minutes", type=float, default=10.0, help="lock after this long without input")
    args = parser.parse_args(argv)
    if args.policy_server and not args.public_key:
        parser.error("--policy-server needs --public-key: bundles are verified before they are used")
    headless = not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    if args.screenshot and headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif headless and not os.environ.get("QT_QPA_PLATFORM"):
        sys.stderr.write(
            "ccc-workstation needs a display (none is set: DISPLAY is empty).\n"
            "On a headless machine run it under Xvfb (Debian package xvfb: `xvfb-run ccc-workstation`),\n"
            "render the main window with `ccc-workstation --screenshot out.png --user dr_aly`,\n"
            "or render every main view into docs/ with `bash scripts/screenshots`.\n"
        )
        return 2

    from PySide6.QtWidgets import QApplication

    from app.viewmodels.app_vm import ViewModels
    from app.views.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    data_dir = args.data_dir or default_data_dir()
    stop = threading.Event()
    sync = _policy_sync(args.policy_server, args.public_key, data_dir, stop) if args.policy_server else None
    workstation = Workstation(data_dir, args.policies, sync=sync, idle_lock_seconds=int(args.idle_lock_minutes * 60))
    vms = ViewModels.build(workstation)
    window = MainWindow(vms)
    window.resize(1400, 900)
    window.show()
    if args.screenshot:
        if args.user:
            vms.session.sign_in(args.user, DEMO_PASSWORD)
            rows = vms.patients.rows
            target = args.patient or (rows[0].patient.id if rows else None)
            if target:
                vms.record.open(target)
        app.processEvents()
        window.grab().save(str(args.screenshot))
        stop.set()
        return 0
    try:
        return app.exec()
    finally:
        stop.set()


def _policy_sync(url: str, public_key: Path, data_dir: Path, stop: threading.Event):  # noqa: ANN202
    """Last-known-good bundle first (works offline), then polling on a background thread."""
    from authz.bundle import load_public_key
    from authz.sync import BundleStore, PolicySync

    sync = PolicySync(url, load_public_key(public_key), BundleStore(data_dir / "bundles"))
    sync.start_offline()
    threading.Thread(target=sync.run, args=(stop,), name="policy-sync", daemon=True).start()
    return sync


if __name__ == "__main__":
    raise SystemExit(main())
