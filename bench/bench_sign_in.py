"""Hospital sign-in figures (issue 19), against a real OpenID provider (panva's oidc-provider on
127.0.0.1, as in the tests), each beside a reference measured in the same run:

- a full sign-in (the provider's pages played over HTTP as a browser does, the code exchanged, the
  ID token verified, the policies' workspace, the patient list rendered);
- a user switch at a shared computer: Ctrl+L's lock, then the next user's PIN resume up to their
  rendered patient list, alternating between two users who signed in this shift (target p95 <= 2 s);
- the reference: the same switch in the demo, by password (a scrypt check).

    .venv/bin/python bench/bench_sign_in.py [--write] [--switches 200]

Qt runs offscreen (QT_QPA_PLATFORM=offscreen).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import publish  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def wait(app, condition: Callable[[], bool], seconds: float = 30) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        app.processEvents()
        time.sleep(0.001)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--switches", type=int, default=200)
    parser.add_argument("--full", type=int, default=20)
    args = parser.parse_args()

    import keyring
    from PySide6.QtWidgets import QApplication

    from app.services.settings import load
    from app.services.users import DEMO_PASSWORD
    from app.services.workstation import Workstation
    from app.viewmodels.app_vm import ViewModels
    from app.views.main_window import MainWindow
    from tests.support.keyrings import MemoryKeyring
    from tests.support.oidc_provider import CLIENT_ID, NURSE, PHYSICIAN, OidcProvider, ProviderBrowser

    keyring.set_keyring(MemoryKeyring())  # never the machine's own keyring
    app = QApplication.instance() or QApplication([])
    pins = {NURSE.id: "2580", PHYSICIAN.id: "7391"}
    with tempfile.TemporaryDirectory() as tmp_dir, OidcProvider() as provider:
        tmp = Path(tmp_dir)
        managed = tmp / "managed.toml"
        managed.write_text(
            f'sign_in_provider = "oidc"\noidc_issuer = "{provider.issuer}"\noidc_client_id = "{CLIENT_ID}"\n'
            'oidc_scopes = "openid profile ccc"\noidc_claim_roles = "ccc_roles"\n'
        )
        browser = ProviderBrowser()
        ws = Workstation(tmp / "oidc", settings=load(managed, None, {}), open_browser=browser)
        vms = ViewModels.build(ws)
        window = MainWindow(vms)
        window.show()

        full = []
        for n in range(args.full):
            user = (NURSE, PHYSICIAN)[n % 2]
            browser.next_user = user
            t0 = time.perf_counter()
            vms.session.sign_in_with_provider(pins[user.id])
            wait(app, lambda user=user: vms.session.user is not None and vms.session.user.id == user.id)
            app.processEvents()
            full.append(time.perf_counter() - t0)
            assert window.patients.table.rowCount() > 0
            vms.session.sign_out()
            wait(app, lambda: browser.titles[-1] == "Signed out")

        switches = []
        for n in range(args.switches):
            user = (NURSE, PHYSICIAN)[n % 2]
            t0 = time.perf_counter()
            vms.session.lock()
            assert vms.session.resume_with_pin(user.id, pins[user.id])
            app.processEvents()
            switches.append(time.perf_counter() - t0)
            assert vms.session.user.id == user.id and window.patients.table.rowCount() > 0
        vms.session.sign_out()
        wait(app, lambda: not ws.secrets.tokens(PHYSICIAN.id))
        ws.close()

        demo = Workstation(tmp / "demo")
        demo_vms = ViewModels.build(demo)
        demo_window = MainWindow(demo_vms)
        demo_window.show()
        reference = []
        for n in range(max(20, args.switches // 5)):
            user_id = ("nurse_nia", "dr_aly")[n % 2]
            t0 = time.perf_counter()
            demo_vms.session.lock()
            assert demo_vms.session.sign_in(user_id, DEMO_PASSWORD)
            app.processEvents()
            reference.append(time.perf_counter() - t0)
            assert demo_window.patients.table.rowCount() > 0
        demo.close()
        browser.close()

    med = statistics.median
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    lines = [
        f"## {time.strftime('%Y-%m-%d')} — hospital sign-in and user switching (issue 19; Qt offscreen, "
        f"{os.cpu_count()} cores, oidc-provider on 127.0.0.1)",
        "",
        "| figure | p50 | p95 | reference in the same run (p50) | ratio (p50) | target |",
        "|---|---|---|---|---|---|",
        f"| full sign-in through the provider ({len(full)}; pages played over HTTP, token verified, list rendered) "
        f"| {ms(med(full))} | {ms(percentile(full, 95))} | demo password switch {ms(med(reference))} "
        f"| {med(full) / med(reference):.1f}x | |",
        f"| user switch: Ctrl+L, the other user's PIN, their list rendered ({len(switches)}, alternating) "
        f"| {ms(med(switches))} | {ms(percentile(switches, 95))} | demo password switch {ms(med(reference))} "
        f"| {med(switches) / med(reference):.2f}x | p95 ≤ 2 s |",
        "",
        "Command: `.venv/bin/python bench/bench_sign_in.py`",
    ]
    publish(lines, args.write)


if __name__ == "__main__":
    main()
