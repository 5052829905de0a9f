"""``ccc-workstation``: the app on its embedded default (a demo hospital in a local SQLite file,
the bundled policies), or with ``--screenshot FILE --user ID`` to render the main window to a PNG
and exit; ``ccc-workstation import FILE...`` imports device transmissions (IHE PCD IDCO HL7 v2
messages, CardX-CIED FHIR bundles) into the store without a display.

The settings (app/services/settings.py) are read and checked before anything starts: the managed
file IT deploys, then the user's settings.toml and flags. A wrong one stops the start (exit 2) with
a message naming the file, the key and what is expected. A managed policy server and audit collector
are used from the first second: the policy sync and the audit upload run on background threads
that stop with the app."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from app.services.alerts import AlertRulesError
from app.services.audit_upload import SHIP_INTERVAL, ship_in_background, shipper_factory
from app.services.data_dir import DataDirectoryError, own_data_directory
from app.services.settings import PublicKey, Settings, SettingsError, describe, load_for_app
from app.services.storage import STORAGE_ERRORS
from app.services.store import SchemaError, StoreLocationError
from app.services.users import DEMO_PASSWORD
from app.services.workstation import BUNDLED_POLICIES, Workstation, rollback_floor

if TYPE_CHECKING:
    from app.viewmodels.app_vm import ViewModels

# What a start can meet in the data directory: each says what and where (never a traceback).
START_ERRORS = (DataDirectoryError, StoreLocationError, SchemaError, AlertRulesError, *STORAGE_ERRORS)


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(os.environ.get("CCC_DATA_DIR", Path(base) / "ccc-workstation"))


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["import"]:
        return import_command(arguments[1:])
    parser = argparse.ArgumentParser(
        prog="ccc-workstation", epilog="ccc-workstation import --help: importing transmissions"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="where the demo data and audit log live")
    parser.add_argument(
        "--policies", type=Path, default=BUNDLED_POLICIES, help="the policy directory (default: the bundled policies)"
    )
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
    parser.add_argument(
        "--idle-lock-minutes", metavar="MINUTES", help="lock after this many minutes without input (1-60, default 10)"
    )
    parser.add_argument(
        "--check-settings",
        action="store_true",
        help="check the settings (managed file, the user's settings.toml, flags), print each with its source, exit",
    )
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    flags = {
        "policy_server_url": args.policy_server,
        "policy_public_key": args.public_key,
        "idle_lock_minutes": args.idle_lock_minutes,
    }
    headless = not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
    try:
        settings = load_for_app(data_dir, flags)
    except SettingsError as exc:
        sys.stderr.write(f"{exc}\n")
        if not headless and not args.screenshot and not args.check_settings:
            _refuse_on_screen(str(exc))
        return 2
    for note in settings.notes:
        sys.stderr.write(f"ccc-workstation: {note}\n")
    if args.check_settings:
        sys.stdout.write(describe(settings))
        return 0
    if args.screenshot and headless:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif headless and not os.environ.get("QT_QPA_PLATFORM"):
        sys.stderr.write(no_display_message())
        return 2

    from PySide6.QtWidgets import QApplication

    from app.viewmodels.app_vm import ViewModels
    from app.views.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    stop = threading.Event()
    # A screenshot is one moment: the policy server is asked once, first, and nothing runs behind it.
    try:
        workstation, threads = start_workstation(
            settings, data_dir, args.policies, stop, background=not args.screenshot
        )
    except START_ERRORS as exc:  # a full disk, a read-only or forbidden data directory: say which
        text = f"CCC Workstation cannot start: {exc}"
        sys.stderr.write(f"{text}\n")
        _refuse_on_screen(text)
        return 2
    vms = ViewModels.build(workstation)
    window = MainWindow(vms)
    window.resize(1400, 900)
    window.show()
    if args.screenshot:
        if args.user:
            problem = _screenshot_sign_in(workstation, vms, args.user)
            if problem:  # a PNG of the sign-in screen would pass for the user's view
                sys.stderr.write(f"ccc-workstation: --user {args.user}: {problem}\n")
                stop.set()
                workstation.close()
                return 2
            rows = vms.patients.rows
            target = args.patient or (rows[0].patient.id if rows else None)
            if target:
                vms.record.open(target)
        app.processEvents()
        window.grab().save(str(args.screenshot))
        stop.set()
        _ship_what_is_left(workstation)
        workstation.close()
        return 0
    try:
        return app.exec()
    finally:
        stop.set()
        deadline = time.monotonic() + 10  # the audit upload ships what is left, if the collector is there
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        workstation.close()


def import_command(argv: list[str]) -> int:
    """``ccc-workstation import FILE...``: each file imported whole or not at all, as the service
    account (``--as``) the policies allow; what each file did on stdout, what failed on stderr,
    naming the file, the message and the segment. Exit 0 when every file was imported, 1 when one
    was not, 2 when the import could not start."""
    from app.services.access import AccessService
    from app.services.idco import MessageError
    from app.services.transmission_import import DEFAULT_ACCOUNT, ImportRefused, TransmissionImport, service_account

    parser = argparse.ArgumentParser(
        prog="ccc-workstation import",
        description="Import remote-monitoring transmissions: IHE PCD IDCO (HL7 v2 ORU^R01) message files and "
        "CardX-CIED FHIR Observation bundles (JSON). Each file is imported whole or not at all.",
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--data-dir", type=Path, default=None, help="the workstation's data directory")
    parser.add_argument("--policies", type=Path, default=BUNDLED_POLICIES)
    parser.add_argument(
        "--as",
        dest="account",
        default=DEFAULT_ACCOUNT,
        help=f"the service account the import runs as (default {DEFAULT_ACCOUNT}); the policies decide what it imports",
    )
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    try:
        settings = load_for_app(data_dir, {})
        workstation, _threads = start_workstation(
            settings, data_dir, args.policies, threading.Event(), background=False
        )
    except (SettingsError, *START_ERRORS) as exc:
        sys.stderr.write(f"ccc-workstation import: {exc}\n")
        return 2
    failed = 0
    try:
        store = workstation.store
        user = service_account(store, args.account)
        if user is None:
            sys.stderr.write(
                f"ccc-workstation import: there is no account {args.account!r} in this workstation's directory\n"
            )
            return 2
        access = AccessService(
            workstation.engine,
            lambda u: service_account(store, u.id) or u,  # the account as recorded now
            workstation.status.no_policy_reason,
        )
        importer = TransmissionImport(store, access, workstation.audit)
        for path in args.files:
            try:
                sys.stdout.write(importer.import_file(user, path).summary() + "\n")
            except (MessageError, ImportRefused, *STORAGE_ERRORS) as exc:
                failed += 1
                sys.stderr.write(f"ccc-workstation import: not imported: {exc}\n")
    finally:
        _ship_what_is_left(workstation)
        workstation.close()
    return 1 if failed else 0


def this_command() -> str:
    """This program as a shell command that runs from any directory: its bare name when the PATH
    finds this very file under it (the package's /usr/bin link), else its absolute path (a venv's
    bin, which is not on the PATH); run as ``python -m app.main``, that again."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if not argv0 or argv0.endswith(".py") or argv0 == "-m":
        return f"{shlex.quote(sys.executable)} -m app.main"
    name = os.path.basename(argv0)
    on_path = shutil.which(name)
    if os.sep not in argv0:
        return name if on_path else f"{shlex.quote(sys.executable)} -m app.main"
    if on_path and os.path.realpath(on_path) == os.path.realpath(argv0):
        return name
    return shlex.quote(os.path.abspath(argv0))


def no_display_message() -> str:
    """What a start without a display says: commands that run as printed on this machine (each on
    its own indented line), and how to open the window where there is a display."""
    checkout = Path(__file__).resolve().parents[1]
    screenshots = checkout / "scripts" / "screenshots"
    run = checkout / "scripts" / "run"
    lines = [
        "ccc-workstation needs a display, and there is none here (DISPLAY and WAYLAND_DISPLAY are not set).",
        "On this machine you can:",
        "  render the main window, a demo physician signed in, to a PNG file in this directory:",
        f"    {this_command()} --screenshot ccc-workstation.png --user dr_aly",
    ]
    if screenshots.is_file():  # a checkout (the package has no scripts)
        lines += [
            "  render every role's main view into docs/ (installs Xvfb when it is missing):",
            f"    bash {shlex.quote(str(screenshots))}",
        ]
    where = f"bash {shlex.quote(str(run))}" if run.is_file() else this_command()
    lines.append(f"On a computer with a display, `{where}` opens the window.")
    return "\n".join(lines) + "\n"


def start_workstation(
    settings: Settings,
    data_dir: Path,
    policies: Path,
    stop: threading.Event,
    background: bool = True,
    ship_interval: float = SHIP_INTERVAL,
    **workstation_args: object,
) -> tuple[Workstation, list[threading.Thread]]:
    """The services as the settings say, with the policy sync and the audit upload on background
    threads until ``stop`` is set (``background=False``: one poll of the policy server now, no threads)."""
    data_dir_warnings = own_data_directory(data_dir)  # before the policy sync writes its bundles there
    sync = _policy_sync(
        settings["policy_server_url"], settings["policy_public_key"], data_dir, settings["policy_shadow_hours"]
    )
    collector = settings["audit_collector_url"]
    workstation = Workstation(
        data_dir,
        policies,
        workstation_id=settings["workstation_id"],
        sync=sync,
        shipper_factory=shipper_factory(collector, settings["audit_collector_ca_file"]) if collector else None,
        idle_lock_seconds=settings["idle_lock_minutes"] * 60,
        settings=settings,
        data_dir_warnings=data_dir_warnings,
        **workstation_args,  # type: ignore[arg-type]
    )
    threads = []
    if background:
        if sync is not None:
            threads.append(threading.Thread(target=sync.run, args=(stop,), name="policy-sync", daemon=True))
            threads[-1].start()
        if workstation.status.shipper is not None:
            threads.append(ship_in_background(workstation.status.shipper, stop, ship_interval))
    elif sync is not None:
        sync.poll()
    return workstation, threads


def _policy_sync(url: str | None, public_key: PublicKey | None, data_dir: Path, shadow_hours: int = 0):  # noqa: ANN202
    """Last-known-good bundle first (works offline), and a bundle held in shadow (a canary: IT's
    ``policy_shadow_hours``); the caller polls."""
    if not url or public_key is None:
        return None
    from authz.bundle import load_public_key
    from authz.guard import default_guard
    from authz.sync import BundleStore, PolicySync

    floor = rollback_floor(data_dir, default_guard())  # the same one the Workstation then uses
    sync = PolicySync(
        url,
        load_public_key(public_key.pem),
        BundleStore(data_dir / "bundles"),
        floor=floor,
        shadow_period=timedelta(hours=shadow_hours),
    )
    sync.start_offline()
    return sync


def _screenshot_sign_in(workstation: Workstation, vms: ViewModels, user_id: str) -> str:
    """Signs a demo user in for ``--screenshot --user``; what went wrong, or "" when they are in."""
    if not workstation.session.demo:
        return (
            "--screenshot --user signs in demo users only, and this workstation signs in with the "
            'hospital\'s provider (sign_in_provider = "oidc"); leave --user out to render the sign-in screen'
        )
    if not vms.session.sign_in(user_id, DEMO_PASSWORD):
        return "no such demo user (the demo users are listed in the README: dr_aly, nurse_nia, er_eli, ...)"
    return ""


def _ship_what_is_left(workstation: Workstation) -> None:
    """After a screenshot: one upload of the audit records it wrote (they stay queued if it fails)."""
    from authz.audit_ship import ShippingError

    shipper = workstation.status.shipper
    if shipper is None:
        return
    try:
        shipper.ship()
    except ShippingError as exc:
        sys.stderr.write(
            f"ccc-workstation: audit upload failed, {shipper.state().pending} records stay queued: {exc}\n"
        )


def _refuse_on_screen(text: str) -> None:
    """The settings' problems in a window too: a ward computer's user never sees stderr."""
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return
    from PySide6.QtWidgets import QApplication, QMessageBox

    _app = QApplication.instance() or QApplication(sys.argv[:1])
    QMessageBox.critical(None, "CCC Workstation cannot start", text)


if __name__ == "__main__":
    raise SystemExit(main())
