"""Hospital sign-in at the real sign-in screen (issue 19), driven by clicks on its buttons: the
hospital's OpenID provider (panva's oidc-provider on 127.0.0.1) signs the user in through the
browser, played over HTTP; the workstation's claims mapping gives the policies the user, and
"Switch user" leaves nothing of the previous one, at the workstation or at the provider. The
demo, without a provider, keeps working with its users marked as demo."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.services.settings import load
from app.services.workstation import Workstation
from app.viewmodels.app_vm import ViewModels
from app.views.main_window import MainWindow
from tests.app.helpers import Clock, click, open_dialog, sign_in
from tests.support.oidc_provider import (
    CLIENT_ID,
    ER,
    MISMAPPED,
    NURSE,
    PHYSICIAN,
    STRANGER,
    OidcProvider,
    ProviderBrowser,
    ProviderUser,
)


def managed_settings(tmp_path: Path, issuer: str) -> object:
    managed = tmp_path / "managed.toml"
    managed.write_text(
        f'sign_in_provider = "oidc"\noidc_issuer = "{issuer}"\noidc_client_id = "{CLIENT_ID}"\n'
        'oidc_scopes = "openid profile ccc"\noidc_claim_roles = "ccc_roles"\n'
    )
    return load(managed, None, {})


@pytest.fixture
def hospital(qtbot, tmp_path: Path, clock: Clock, provider: OidcProvider, browser: ProviderBrowser) -> MainWindow:  # noqa: ANN001
    """The main window of a workstation IT pointed at the hospital's provider."""
    return hospital_window(qtbot, tmp_path, clock, browser, provider.issuer)


def hospital_window(qtbot, tmp_path: Path, clock: Clock, browser: ProviderBrowser, issuer: str) -> MainWindow:  # noqa: ANN001
    """A workstation whose managed settings name the provider at ``issuer``, its window shown."""
    ws = Workstation(
        tmp_path / "data",
        clock=clock.now,
        monotonic=clock.monotonic,
        settings=managed_settings(tmp_path, issuer),
        open_browser=browser,
    )
    w = MainWindow(ViewModels.build(ws, clock=clock.monotonic, tick_ms=20))
    qtbot.addWidget(w)
    w.show()
    return w


def hospital_sign_in(qtbot, w: MainWindow, browser: ProviderBrowser, user: ProviderUser | None) -> None:  # noqa: ANN001
    """Clicks "Sign in with your hospital account"; the browser signs in as ``user``."""
    browser.next_user = user
    click(qtbot, w.sign_in.hospital_button)


def signed_in_as(w: MainWindow, user_id: str) -> bool:
    return w.stack.currentIndex() == 1 and w.vm.user is not None and w.vm.user.id == user_id


def test_a_nurse_signs_in_with_the_hospital_account_and_the_policies_see_her_claims(
    qtbot, hospital: MainWindow, browser: ProviderBrowser
) -> None:
    w = hospital
    assert not w.sign_in.user.isVisible() and not w.sign_in.password.isVisible()  # no demo users here
    assert not w.sign_in.demo_notice.isVisible() and w.sign_in.hospital_button.isVisible()
    hospital_sign_in(qtbot, w, browser, NURSE)
    qtbot.waitUntil(lambda: signed_in_as(w, "nurse_nia"), timeout=15000)
    assert browser.login_asked == 1 and "prompt=login" in browser.opened[0]
    assert "Nia Okafor, RN" in w.who.text() and "nurse" in w.who.text() and "demo" not in w.who.text()
    assert w.windowTitle() == "CCC Workstation — Nia Okafor, RN"
    assert w.vm.workspace.name == "clinical" and w.vms.patients.rows  # her assigned patients, by the policies
    ws = w.vm.workstation
    tokens = ws.secrets.tokens("nurse_nia")
    assert tokens["id_token"].count(".") == 2  # in the keyring (the test's memory backend), nowhere else
    assert tokens["id_token"].encode() not in (ws.data_dir / "ccc.db").read_bytes()


def test_switch_user_ends_the_provider_session_and_keeps_nothing_of_the_previous_user(
    qtbot, hospital: MainWindow, browser: ProviderBrowser
) -> None:
    w = hospital
    ws = w.vm.workstation
    hospital_sign_in(qtbot, w, browser, NURSE)
    qtbot.waitUntil(lambda: signed_in_as(w, "nurse_nia"), timeout=15000)
    nurse_rows = {r.patient.id for r in w.vms.patients.rows}
    click(qtbot, w.switch_user)
    assert w.stack.currentIndex() == 0 and w.vm.user is None and not w.who.text()
    qtbot.waitUntil(lambda: browser.titles[-1] == "Signed out", timeout=15000)  # RP-initiated logout
    assert ws.secrets.tokens("nurse_nia") == {} and ws.users.admitted() == []
    hospital_sign_in(qtbot, w, browser, PHYSICIAN)
    qtbot.waitUntil(lambda: signed_in_as(w, "dr_aly"), timeout=15000)
    assert browser.login_asked == 2  # the provider asked the physician, not the nurse's session
    assert "Nia" not in w.who.text() and "Dr. Aly Rahman" in w.who.text()
    assert {r.patient.id for r in w.vms.patients.rows} != nurse_rows


def test_ctrl_l_locks_at_once(qtbot, hospital: MainWindow, browser: ProviderBrowser) -> None:
    w = hospital
    hospital_sign_in(qtbot, w, browser, PHYSICIAN)
    qtbot.waitUntil(lambda: signed_in_as(w, "dr_aly"), timeout=15000)
    qtbot.keyClick(w, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert w.stack.currentIndex() == 0 and w.vm.user is None
    assert w.vm.workstation.secrets.tokens("dr_aly") == {}


@pytest.mark.parametrize("account", [STRANGER, MISMAPPED], ids=["unknown role only", "one role unknown"])
def test_an_account_with_a_role_the_policies_do_not_know_is_refused_in_their_words(
    qtbot, hospital: MainWindow, browser: ProviderBrowser, account: ProviderUser
) -> None:
    w = hospital
    hospital_sign_in(qtbot, w, browser, account)
    qtbot.waitUntil(lambda: "Sign-in refused" in w.sign_in.error.text(), timeout=15000)
    assert "a role this workstation does not know" in w.sign_in.error.text()
    assert "ask IT to check your roles" in w.sign_in.error.text()
    assert w.stack.currentIndex() == 0 and w.vm.user is None and w.vm.workstation.users.admitted() == []
    qtbot.waitUntil(lambda: browser.titles[-1] == "Signed out", timeout=15000)  # nor at the provider


def test_alternating_users_never_see_each_other(qtbot, hospital: MainWindow, browser: ProviderBrowser) -> None:
    """Full sign-ins through the provider, alternating: each sees only themselves, and each time
    the provider asked who it was (no session inherited)."""
    w = hospital
    users = [NURSE, PHYSICIAN] * 5
    for n, user in enumerate(users, start=1):
        hospital_sign_in(qtbot, w, browser, user)
        qtbot.waitUntil(lambda user=user: signed_in_as(w, user.id), timeout=15000)
        other = PHYSICIAN if user is NURSE else NURSE
        assert user.name in w.who.text() and other.name not in w.who.text()
        assert w.vm.workstation.users.admitted() == [user.id]
        assert w.vm.workstation.secrets.tokens(other.id) == {}
        assert browser.login_asked == n
        click(qtbot, w.switch_user)
        qtbot.waitUntil(lambda: browser.titles[-1] == "Signed out", timeout=15000)


def test_a_provider_that_is_down_is_said_and_the_screen_never_waits(
    qtbot, tmp_path: Path, clock: Clock, browser: ProviderBrowser
) -> None:
    with OidcProvider() as short_lived:
        issuer = short_lived.issuer
    w = hospital_window(qtbot, tmp_path, clock, browser, issuer)
    started = time.monotonic()
    hospital_sign_in(qtbot, w, browser, NURSE)
    assert time.monotonic() - started < 0.5  # the click returned: the network is on a worker thread
    qtbot.waitUntil(lambda: "cannot be reached" in w.sign_in.error.text(), timeout=15000)
    assert w.stack.currentIndex() == 0 and w.sign_in.hospital_button.isEnabled()


def test_a_sign_in_left_in_the_browser_can_be_cancelled(qtbot, hospital: MainWindow, browser: ProviderBrowser) -> None:
    w = hospital
    hospital_sign_in(qtbot, w, browser, None)  # the browser shows the provider's page; nobody types
    qtbot.waitUntil(w.sign_in.cancel_button.isVisible, timeout=5000)
    assert not w.sign_in.hospital_button.isEnabled() and "browser" in w.sign_in.waiting.text()
    click(qtbot, w.sign_in.cancel_button)
    qtbot.waitUntil(lambda: "cancelled" in w.sign_in.error.text(), timeout=5000)
    assert not w.sign_in.cancel_button.isVisible() and w.sign_in.hospital_button.isEnabled()


def test_the_demo_keeps_working_without_a_provider_and_says_its_users_are_demo(qtbot, window: MainWindow) -> None:
    w = window
    assert w.sign_in.demo_notice.isVisible() and "not for patient care" in w.sign_in.demo_notice.text()
    assert not w.sign_in.hospital_button.isVisible()
    labels = [w.sign_in.user.itemText(i) for i in range(w.sign_in.user.count())]
    assert labels and all(label.endswith("(demo)") for label in labels)
    sign_in(qtbot, w, "nurse_nia")
    assert w.stack.currentIndex() == 1 and "demo user" in w.who.text()


# -- fast user switching: a PIN after the shift's first full sign-in ------------------------------------


def sign_ins(w: MainWindow) -> list[tuple[str, str, bool]]:
    """(user, method, offline) of each sign-in the audit log records."""
    return [
        (r.principal_id, r.details["method"], r.details["offline"])
        for r in w.vm.workstation.chain.records()
        if r.event_type == "signed_in"
    ]


def full_sign_in_with_pin(qtbot, w: MainWindow, browser: ProviderBrowser, user: ProviderUser, pin: str) -> None:  # noqa: ANN001
    qtbot.keyClicks(w.sign_in.new_pin, pin)
    hospital_sign_in(qtbot, w, browser, user)
    qtbot.waitUntil(lambda: signed_in_as(w, user.id), timeout=15000)


def resume(qtbot, w: MainWindow, user_id: str, pin: str) -> None:  # noqa: ANN001
    """Types the id (a badge reader types it the same way) and the PIN, then Enter."""
    w.sign_in.resume_id.setFocus()
    qtbot.keyClicks(w.sign_in.resume_id, user_id)
    qtbot.keyClick(w.sign_in.resume_id, Qt.Key.Key_Return)  # a badge reader ends the id with Enter
    assert w.vm.user is None  # nothing happens before the PIN
    qtbot.keyClicks(w.sign_in.resume_pin, pin)
    qtbot.keyClick(w.sign_in.resume_pin, Qt.Key.Key_Return)


def lock(qtbot, w: MainWindow) -> None:  # noqa: ANN001
    qtbot.keyClick(w, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert w.stack.currentIndex() == 0 and w.vm.user is None


def test_a_pin_chosen_at_the_full_sign_in_resumes_without_the_provider(
    qtbot, hospital: MainWindow, browser: ProviderBrowser
) -> None:
    w = hospital
    assert w.sign_in.pin_form.isVisible()
    full_sign_in_with_pin(qtbot, w, browser, NURSE, "2580")
    lock(qtbot, w)
    qtbot.waitUntil(lambda: browser.titles[-1] == "Signed out", timeout=15000)  # the provider forgot her
    assert w.vm.workstation.secrets.tokens("nurse_nia") == {} and w.vm.workstation.users.admitted() == []
    resume(qtbot, w, "nurse_nia", "2580")
    assert signed_in_as(w, "nurse_nia") and browser.login_asked == 1  # at once: no browser, no provider
    assert w.vms.patients.rows and "Nia Okafor, RN" in w.who.text()
    qtbot.waitUntil(lambda: len(sign_ins(w)) == 2, timeout=5000)
    assert sign_ins(w) == [("nurse_nia", "provider", False), ("nurse_nia", "pin", False)]


def test_a_wrong_pin_is_refused_and_the_fifth_ends_the_shift_here(
    qtbot, hospital: MainWindow, browser: ProviderBrowser
) -> None:
    w = hospital
    full_sign_in_with_pin(qtbot, w, browser, NURSE, "2580")
    lock(qtbot, w)
    resume(qtbot, w, "dr_aly", "2580")  # someone who did not sign in this shift
    assert w.vm.user is None and "sign in with your hospital account" in w.sign_in.error.text()
    for _ in range(5):
        resume(qtbot, w, "nurse_nia", "9999")
        assert w.vm.user is None and "PIN sign-in is not possible" in w.sign_in.error.text()
        assert w.sign_in.resume_pin.text() == ""
    resume(qtbot, w, "nurse_nia", "2580")  # the right PIN, too late: a full sign-in is needed now
    assert w.vm.user is None


def test_a_pin_that_is_too_simple_is_refused_before_the_browser_opens(
    qtbot, hospital: MainWindow, browser: ProviderBrowser
) -> None:
    w = hospital
    qtbot.keyClicks(w.sign_in.new_pin, "1111")
    hospital_sign_in(qtbot, w, browser, NURSE)
    assert "not one repeated digit" in w.sign_in.error.text() and browser.opened == []


def test_the_pin_lasts_the_managed_hours_after_the_full_sign_in(
    qtbot, hospital: MainWindow, browser: ProviderBrowser, clock: Clock
) -> None:
    w = hospital
    full_sign_in_with_pin(qtbot, w, browser, NURSE, "2580")
    lock(qtbot, w)
    clock.advance(hours=11, minutes=59)
    resume(qtbot, w, "nurse_nia", "2580")
    assert signed_in_as(w, "nurse_nia")
    lock(qtbot, w)
    clock.advance(minutes=2)  # 12 h (the default) after the full sign-in
    resume(qtbot, w, "nurse_nia", "2580")
    assert w.vm.user is None


def test_100_alternating_switches_never_show_or_use_one_user_for_the_other(
    qtbot, hospital: MainWindow, browser: ProviderBrowser
) -> None:
    w = hospital
    ws = w.vm.workstation
    full_sign_in_with_pin(qtbot, w, browser, NURSE, "2580")
    nurse_rows = {r.patient.id for r in w.vms.patients.rows}
    lock(qtbot, w)
    full_sign_in_with_pin(qtbot, w, browser, PHYSICIAN, "7391")
    physician_rows = {r.patient.id for r in w.vms.patients.rows}
    lock(qtbot, w)
    assert nurse_rows != physician_rows
    pins = {NURSE.id: "2580", PHYSICIAN.id: "7391"}
    times = []
    for n in range(100):
        user, other = (NURSE, PHYSICIAN) if n % 2 == 0 else (PHYSICIAN, NURSE)
        started = time.perf_counter()
        resume(qtbot, w, user.id, pins[user.id])
        assert signed_in_as(w, user.id)
        times.append(time.perf_counter() - started)
        shown = f"{w.who.text()} {w.windowTitle()}"
        assert user.name in shown and other.name not in shown
        assert {r.patient.id for r in w.vms.patients.rows} == (nurse_rows if user is NURSE else physician_rows)
        assert ws.users.admitted() == [user.id] and ws.session.session.user_id == user.id
        assert ws.secrets.tokens(other.id) == {} and ws.access.resolve(w.vm.user).id == user.id
        lock(qtbot, w)
        assert not w.who.text() and not w.sign_in.resume_id.text() and not w.vms.patients.rows
    assert browser.login_asked == 2  # two full sign-ins, then PINs only
    times.sort()
    assert times[94] < 2.0, f"p95 switch {times[94]:.3f} s"
    qtbot.waitUntil(lambda: len(sign_ins(w)) == 102, timeout=10000)
    records = sign_ins(w)[2:]
    assert [r[0] for r in records] == [NURSE.id, PHYSICIAN.id] * 50 and {r[1] for r in records} == {"pin"}


def test_provider_down_mid_shift_lets_only_this_shift_s_staff_back_with_their_pin(
    qtbot, tmp_path: Path, clock: Clock, browser: ProviderBrowser
) -> None:
    running = OidcProvider().start()
    try:
        w = hospital_window(qtbot, tmp_path, clock, browser, running.issuer)
        full_sign_in_with_pin(qtbot, w, browser, NURSE, "2580")
        lock(qtbot, w)
        qtbot.waitUntil(lambda: browser.titles[-1] == "Signed out", timeout=15000)
    finally:
        running.stop()  # the provider goes down mid-shift
    resume(qtbot, w, "nurse_nia", "2580")
    assert signed_in_as(w, "nurse_nia")
    qtbot.waitUntil(lambda: len(sign_ins(w)) == 2, timeout=10000)
    assert sign_ins(w)[-1] == ("nurse_nia", "pin", True)  # recorded as an offline sign-in
    qtbot.waitUntil(lambda: "hospital sign-in unreachable (offline)" in w.status_label.text(), timeout=10000)
    lock(qtbot, w)
    hospital_sign_in(qtbot, w, browser, PHYSICIAN)  # nobody else gets in
    qtbot.waitUntil(lambda: "cannot be reached" in w.sign_in.error.text(), timeout=15000)
    assert w.vm.user is None


# -- step-up for break-glass ----------------------------------------------------------------------------

WHY = "Collapsed in the ER; need device settings and rhythm history now."


def emergency_dialog(qtbot, w: MainWindow):  # noqa: ANN001, ANN201
    """The ER physician finds p03 by name and date of birth; the refused record offers emergency access."""
    p03 = w.vm.workstation.store.patient("p03")
    w.patients.search.clear()
    qtbot.keyClicks(w.patients.search, f"{p03.name.split()[0].lower()} {p03.name.split()[1][:4]} {p03.birth_date}")
    qtbot.keyClick(w.patients.search, Qt.Key.Key_Return)
    assert w.vms.record.record is None and "break-glass" in w.record.denial.text()
    dialog = open_dialog(qtbot, w.record.emergency_button, w.record, "dialog")
    assert not dialog.password.isVisible()  # the provider asks for it, in the browser
    qtbot.keyClicks(dialog.justification, WHY)
    click(qtbot, dialog.confirm)
    return dialog


def test_break_glass_asks_the_provider_for_a_fresh_sign_in_and_records_its_time(
    qtbot, hospital: MainWindow, browser: ProviderBrowser
) -> None:
    w = hospital
    hospital_sign_in(qtbot, w, browser, ER)
    qtbot.waitUntil(lambda: signed_in_as(w, "er_eli"), timeout=15000)
    dialog = emergency_dialog(qtbot, w)
    browser.next_user = ER
    click(qtbot, dialog.grant)
    qtbot.waitUntil(lambda: not dialog.isVisible() or "browser" not in dialog.error.text(), timeout=15000)
    assert w.vms.break_glass.emergency is not None, dialog.error.text()
    assert browser.login_asked == 2 and "prompt=login" in browser.opened[-1] and "max_age=0" in browser.opened[-1]
    assert "login_hint=er_eli" in browser.opened[-1]
    assert w.vms.record.record.patient_id == "p03" and w.emergency_banner.isVisible()
    started = [r for r in w.vm.workstation.chain.records() if r.event_type == "break_glass_started"]
    assert len(started) == 1 and started[0].details["authentication"] == "provider step-up"
    signed_in = next(r for r in w.vm.workstation.chain.records() if r.event_type == "signed_in")
    assert started[0].details["auth_time"] >= signed_in.details["auth_time"]  # the new authentication's time


def test_a_step_up_by_someone_else_opens_nothing(qtbot, hospital: MainWindow, browser: ProviderBrowser) -> None:
    w = hospital
    hospital_sign_in(qtbot, w, browser, ER)
    qtbot.waitUntil(lambda: signed_in_as(w, "er_eli"), timeout=15000)
    dialog = emergency_dialog(qtbot, w)
    browser.next_user = NURSE  # a colleague types their own account at the provider
    click(qtbot, dialog.grant)
    qtbot.waitUntil(lambda: "another account (nurse_nia)" in dialog.error.text(), timeout=15000)
    assert w.vms.break_glass.emergency is None and dialog.isVisible() and dialog.grant.isEnabled()
    assert not [r for r in w.vm.workstation.chain.records() if r.event_type == "break_glass_started"]


def test_a_token_that_expired_on_this_computer_s_clock_is_refused_in_plain_words(
    qtbot, hospital: MainWindow, browser: ProviderBrowser, clock: Clock
) -> None:
    """The workstation's clock is two hours ahead of the provider's: every ID token it receives
    has expired. The clinician reads what to do; the details go to the log."""
    w = hospital
    clock.advance(hours=2)
    hospital_sign_in(qtbot, w, browser, NURSE)
    qtbot.waitUntil(lambda: "expired" in w.sign_in.error.text(), timeout=15000)
    text = w.sign_in.error.text()
    assert "sign in again" in text and "clock" in text and "token" not in text.lower()
    assert (
        w.vm.user is None
        and w.vm.workstation.users.admitted() == []
        and not w.vm.workstation.secrets.tokens("nurse_nia")
    )


def test_with_the_provider_down_break_glass_is_confirmed_with_the_shift_pin_and_recorded_as_offline(
    qtbot, tmp_path: Path, clock: Clock, browser: ProviderBrowser
) -> None:
    running = OidcProvider().start()
    try:
        w = hospital_window(qtbot, tmp_path, clock, browser, running.issuer)
        ws = w.vms.session.workstation
        full_sign_in_with_pin(qtbot, w, browser, ER, "4826")
    finally:
        running.stop()  # the provider goes down while the ER physician works
    dialog = emergency_dialog(qtbot, w)
    click(qtbot, dialog.grant)  # asks the provider for a fresh sign-in: it cannot be reached
    qtbot.waitUntil(dialog.pin.isVisible, timeout=15000)
    assert "cannot be reached" in dialog.error.text() and "PIN" in dialog.error.text()
    qtbot.keyClicks(dialog.pin, "1111")
    click(qtbot, dialog.grant)
    assert "PIN is not correct" in dialog.error.text() and w.vms.break_glass.emergency is None
    qtbot.keyClicks(dialog.pin, "4826")
    click(qtbot, dialog.grant)
    assert w.vms.break_glass.emergency is not None and w.vms.record.record.patient_id == "p03"
    started = [r for r in ws.chain.records() if r.event_type == "break_glass_started"]
    assert started[0].details["authentication"] == "shift PIN, hospital sign-in unreachable"
