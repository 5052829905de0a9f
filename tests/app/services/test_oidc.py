"""The OpenID Connect client against a real provider (panva's oidc-provider on 127.0.0.1), the
browser leg driven over HTTP: a full sign-in with PKCE and the loopback redirect, claims mapped
into the policy principal, a fresh authentication for step-up, RP-initiated logout that ends the
provider session, and every bad token refused with words a clinician understands."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from app.services.oidc import (
    EXPIRED,
    NOT_VALID,
    UNREACHABLE,
    ClaimMapping,
    OidcClient,
    OidcConfig,
    ProviderUnreachable,
    SignInFailed,
    map_claims,
)
from tests.support.oidc_provider import (
    CLIENT_ID,
    NURSE,
    OTHER_CLIENT_ID,
    PHYSICIAN,
    OidcProvider,
    ProviderBrowser,
)

MAPPING = ClaimMapping(user_id="preferred_username", name="name", roles="ccc_roles", hospital_ids="hospital_ids")


def config(provider: OidcProvider, client_id: str = CLIENT_ID, **kwargs: object) -> OidcConfig:
    return OidcConfig(provider.issuer, client_id, ("openid", "profile", "ccc"), MAPPING, **kwargs)  # type: ignore[arg-type]


def client(provider: OidcProvider, browser: ProviderBrowser, **kwargs: object) -> OidcClient:
    return OidcClient(config(provider), open_browser=browser, **kwargs)  # type: ignore[arg-type]


def test_a_full_sign_in_maps_the_claims_into_the_policy_principal(
    provider: OidcProvider, browser: ProviderBrowser
) -> None:
    browser.next_user = NURSE
    started = time.time()
    signed_in = client(provider, browser).sign_in()
    user = signed_in.user
    assert (user.id, user.name, user.roles, user.attributes) == (
        "nurse_nia",
        "Nia Okafor, RN",
        ("nurse",),
        {"hospital_ids": ["h1"]},
    )
    assert signed_in.claims["iss"] == provider.issuer and signed_in.claims["aud"] == CLIENT_ID
    assert abs(signed_in.auth_time.timestamp() - started) < 30
    assert browser.login_asked == 1 and browser.titles[-1] == "CCC Workstation"  # the loopback listener's page
    url = browser.opened[0]
    assert "code_challenge_method=S256" in url and "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in url


def test_the_provider_session_survives_unless_ended_so_every_full_sign_in_asks_again(
    provider: OidcProvider, browser: ProviderBrowser
) -> None:
    """The shared-computer failure: without a fresh authentication, the browser's provider session
    signs the next person in as the previous one. ``fresh`` and RP-initiated logout both stop it."""
    oidc = client(provider, browser)
    browser.next_user = NURSE
    first = oidc.sign_in()
    browser.next_user = PHYSICIAN
    inherited = oidc.sign_in()  # no prompt: the provider's session of the nurse is reused
    assert inherited.user.id == "nurse_nia" and browser.login_asked == 1
    fresh = oidc.sign_in(fresh=True)
    assert fresh.user.id == "dr_aly" and browser.login_asked == 2
    assert oidc.end_session(fresh.id_token)  # "Switch user": the provider's session ends
    assert browser.titles[-1] == "Signed out"
    browser.next_user = NURSE
    again = oidc.sign_in()  # no prompt, and yet the provider asks: its session is gone
    assert again.user.id == "nurse_nia" and browser.login_asked == 3
    assert first.id_token != again.id_token


def test_step_up_asks_for_a_new_authentication_and_records_its_time(
    provider: OidcProvider, browser: ProviderBrowser
) -> None:
    oidc = client(provider, browser)
    browser.next_user = PHYSICIAN
    first = oidc.sign_in(fresh=True)
    time.sleep(1.1)  # auth_time is in whole seconds
    step_up = oidc.sign_in(fresh=True)
    assert browser.login_asked == 2  # asked again although the provider session was live
    assert step_up.auth_time > first.auth_time
    assert "prompt=login" in browser.opened[-1] and "max_age=0" in browser.opened[-1]


def test_a_token_for_another_client_is_refused(provider: OidcProvider, browser: ProviderBrowser) -> None:
    """The wrong audience: a token the provider issued to another app of the hospital."""
    other = OidcClient(config(provider, OTHER_CLIENT_ID), open_browser=browser)
    browser.next_user = NURSE
    theirs = other.sign_in()
    ours = client(provider, browser)
    with pytest.raises(SignInFailed) as refused:
        ours.verify(theirs.id_token, theirs.claims["nonce"])
    assert refused.value.message == NOT_VALID and "aud" in refused.value.detail


def test_tampered_expired_and_replayed_tokens_are_refused_in_words(
    provider: OidcProvider, browser: ProviderBrowser
) -> None:
    now = [time.time()]
    oidc = client(provider, browser, clock=lambda: now[0])
    browser.next_user = NURSE
    signed_in = oidc.sign_in()
    nonce = signed_in.claims["nonce"]
    header, payload, signature = signed_in.id_token.split(".")

    replayed = pytest.raises(SignInFailed)
    with replayed as refused:  # the same token again: its nonce was used
        oidc.verify(signed_in.id_token, nonce)
    assert refused.value.message == NOT_VALID and "replayed" in refused.value.detail

    forged_payload = jwt.decode(signed_in.id_token, oidc.keys()).claims | {"ccc_roles": ["physician"]}
    changed = jwt.encode(header_of(signed_in.id_token), forged_payload, RSAKey.generate_key(2048)).split(".")[1]
    with pytest.raises(SignInFailed) as refused:  # a claim changed: the signature no longer holds
        oidc.verify(f"{header}.{changed}.{signature}", "another-nonce")
    assert refused.value.message == NOT_VALID and "signature" in refused.value.detail.lower()

    own_key = RSAKey.generate_key(2048, parameters={"kid": header_of(signed_in.id_token)["kid"]})
    with pytest.raises(SignInFailed) as refused:  # signed, but not by the provider
        oidc.verify(jwt.encode(header_of(signed_in.id_token), forged_payload, own_key), nonce)
    assert refused.value.message == NOT_VALID

    with pytest.raises(SignInFailed) as refused:  # a nonce of another sign-in
        fresh_nonce_client = client(provider, browser)
        fresh_nonce_client.verify(signed_in.id_token, "not-the-nonce-sent")
    assert refused.value.message == NOT_VALID and "nonce" in refused.value.detail

    later = client(provider, browser, clock=lambda: now[0] + 2 * 3600)
    with pytest.raises(SignInFailed) as refused:
        later.verify(signed_in.id_token, nonce)
    assert refused.value.message == EXPIRED and "expired" in refused.value.detail.lower()

    for message in (NOT_VALID, EXPIRED):  # what a clinician reads: no jargon
        assert not any(word in message for word in ("token", "JWT", "nonce", "audience", "signature"))


def header_of(token: str) -> dict[str, str]:
    import base64
    import json

    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_a_wrong_password_at_the_provider_leaves_no_sign_in(provider: OidcProvider, browser: ProviderBrowser) -> None:
    browser.next_user, browser.wrong_password = NURSE, True
    oidc = OidcClient(config(provider, browser_seconds=1.0), open_browser=browser)
    with pytest.raises(SignInFailed) as refused:
        oidc.sign_in(fresh=True)
    assert "not finished" in refused.value.message
    assert browser.titles[-1] == "Sign in" and browser.login_asked == 2  # the provider said so and asked again


def test_a_cancelled_sign_in_stops_waiting_for_the_browser(provider: OidcProvider, browser: ProviderBrowser) -> None:
    oidc = client(provider, browser)
    browser.next_user = None  # the browser shows the provider's page; nobody types
    threading.Timer(0.3, oidc.cancel).start()
    started = time.monotonic()
    with pytest.raises(SignInFailed, match="cancelled"):
        oidc.sign_in(fresh=True)
    assert time.monotonic() - started < 5


def test_claims_of_the_wrong_shape_refuse_the_sign_in_naming_the_claim() -> None:
    good = {"preferred_username": "a", "name": "A", "ccc_roles": ["nurse"], "hospital_ids": ["h1"]}
    assert map_claims(good, MAPPING).roles == ("nurse",)
    assert map_claims({**good, "ccc_roles": "nurse physician"}, MAPPING).roles == ("nurse", "physician")
    assert map_claims({**good, "name": ""}, MAPPING).name == "a"
    for bad, claim in (
        ({**good, "preferred_username": ""}, "preferred_username"),
        ({k: v for k, v in good.items() if k != "ccc_roles"}, "ccc_roles"),
        ({**good, "ccc_roles": [1]}, "ccc_roles"),
        ({**good, "hospital_ids": {"h": 1}}, "hospital_ids"),
    ):
        with pytest.raises(SignInFailed) as refused:
            map_claims(bad, MAPPING)
        assert claim in refused.value.message and "ask IT" in refused.value.message


# -- a provider that is down, slow, or answers garbage: ProviderUnreachable, within the deadline ---------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Garbage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b"<html>502 from a proxy</html>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_provider_down_slow_or_answering_garbage_is_unreachable_within_its_deadline() -> None:
    down = OidcClient(OidcConfig(f"http://127.0.0.1:{free_port()}", CLIENT_ID), open_browser=lambda url: None)
    with pytest.raises(ProviderUnreachable) as refused:
        down.sign_in()
    assert refused.value.message == UNREACHABLE and not down.reachable()

    garbage = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    threading.Thread(target=garbage.serve_forever, daemon=True).start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    try:
        answers = OidcClient(OidcConfig(f"http://127.0.0.1:{garbage.server_address[1]}", CLIENT_ID))
        with pytest.raises(ProviderUnreachable, match="reached"):
            answers.metadata()
        slow = OidcClient(OidcConfig(f"http://127.0.0.1:{silent.getsockname()[1]}", CLIENT_ID, request_seconds=1.0))
        started = time.monotonic()
        with pytest.raises(ProviderUnreachable) as refused:
            slow.metadata()
        assert time.monotonic() - started < 3 and "1 s" in refused.value.detail
    finally:
        garbage.shutdown()
        garbage.server_close()
        silent.close()


def test_the_provider_stopping_mid_shift_makes_it_unreachable(browser: ProviderBrowser) -> None:
    with OidcProvider() as short_lived:
        oidc = client(short_lived, browser)
        browser.next_user = NURSE
        assert oidc.sign_in().user.id == "nurse_nia"
    assert not oidc.reachable()
    with pytest.raises(ProviderUnreachable):
        oidc.sign_in(fresh=True)
