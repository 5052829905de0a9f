"""Hospital sign-in with OpenID Connect, as a native app does it (RFC 8252): the authorization code
flow with PKCE (S256), the system browser, and a one-shot loopback redirect on 127.0.0.1 with an
ephemeral port. The ID token is verified by joserfc (signature against the provider's published
keys, issuer, audience, expiry, nonce, and the authentication time when a fresh sign-in was asked
for), never by hand, and its claims are mapped into the user the policies see.

Every network step is bounded (``authz.bounded_http``: one deadline for connecting, headers and
body, a size limit), so a provider that is down, slow or answers garbage raises
``ProviderUnreachable`` within seconds, and the caller applies the offline rules. Anything else
wrong raises ``SignInFailed`` with a message a clinician understands and the details for the log.
Blocking: the caller runs it off the GUI thread. Qt-free."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import secrets
import threading
import time
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import KeySet

from authz.bounded_http import AnswerRefused, bounded_request

from .users import SignedInUser

log = logging.getLogger(__name__)

PEER = "hospital sign-in service"
MAX_ANSWER = 1024 * 1024  # discovery, keys and tokens are a few KiB
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]  # asymmetric only: a public client holds no shared secret
LEEWAY = 60  # seconds of clock difference tolerated between the provider and this computer

# What a clinician reads; the details go to the log.
NOT_VALID = (
    "The hospital sign-in could not be confirmed: its answer was not valid for this workstation. "
    "Please sign in again; if it happens again, call IT."
)
EXPIRED = (
    "The hospital sign-in had expired before it reached this workstation. Please sign in again; "
    "if it keeps happening, ask IT to check this computer's clock."
)
UNREACHABLE = "The hospital sign-in service cannot be reached right now."
NOT_FINISHED = "Sign-in was not finished in the browser in time. Please try again."
CANCELLED = "Sign-in was cancelled."
ACCOUNT = "Your hospital account does not say who you are on this workstation ({what}). Please ask IT to check it."
NOT_FRESH = "The hospital sign-in did not ask for your password again, as emergency access needs. Please try again."


class SignInFailed(Exception):
    """Sign-in refused: ``message`` is for the clinician, ``detail`` for the log."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message, self.detail = message, detail or message


class ProviderUnreachable(SignInFailed):
    """The provider is down, too slow or answers garbage: the offline rules apply."""


@dataclass(frozen=True)
class ClaimMapping:
    """Which ID-token claims carry who the user is for the policies (managed settings)."""

    user_id: str = "preferred_username"
    name: str = "name"
    roles: str = "roles"
    hospital_ids: str = "hospital_ids"


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    scopes: tuple[str, ...] = ("openid", "profile")
    claims: ClaimMapping = field(default_factory=ClaimMapping)
    request_seconds: float = 10.0  # each request to the provider, everything included
    browser_seconds: float = 300.0  # how long the browser leg may take

    @property
    def scope(self) -> str:
        return " ".join(dict.fromkeys(("openid", *self.scopes)))


def config_from(settings: Any) -> OidcConfig:
    """The client's configuration from the managed settings (app/services/settings.py)."""
    claims = ClaimMapping(
        settings["oidc_claim_user_id"],
        settings["oidc_claim_name"],
        settings["oidc_claim_roles"],
        settings["oidc_claim_hospital_ids"],
    )
    return OidcConfig(settings["oidc_issuer"], settings["oidc_client_id"], tuple(settings["oidc_scopes"]), claims)


@dataclass(frozen=True)
class ProviderSignIn:
    """A verified sign-in: the user as the policies see them, the tokens (kept only in the keyring
    or in memory, never on disk) and when the provider authenticated them."""

    user: SignedInUser
    claims: dict[str, Any]
    id_token: str
    tokens: dict[str, Any]
    auth_time: datetime


def map_claims(claims: Mapping[str, Any], mapping: ClaimMapping) -> SignedInUser:
    """The policy principal from the ID token's claims: id, display name, roles, hospital ids.
    A claim missing or of the wrong shape refuses the sign-in, naming the claim (which roles are
    known is for the policies to say, afterwards)."""
    user_id = claims.get(mapping.user_id)
    if not isinstance(user_id, str) or not user_id.strip():
        raise SignInFailed(ACCOUNT.format(what=f"no user id in '{mapping.user_id}'"), f"claims: {sorted(claims)}")
    name = claims.get(mapping.name)
    roles = _strings(claims.get(mapping.roles), mapping.roles)
    if not roles:
        raise SignInFailed(ACCOUNT.format(what=f"no role in '{mapping.roles}'"), f"claims of {user_id}: {claims}")
    attributes: dict[str, Any] = {}
    hospitals = _strings(claims.get(mapping.hospital_ids), mapping.hospital_ids)
    if hospitals:
        attributes["hospital_ids"] = hospitals
    shown = name.strip() if isinstance(name, str) and name.strip() else user_id
    return SignedInUser(user_id.strip(), shown, tuple(roles), attributes)


def _strings(value: object, claim: str) -> list[str]:
    """A claim holding a list of strings (or one string of space-separated values, as some
    providers send groups)."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v for v in value if v.strip()]
    raise SignInFailed(ACCOUNT.format(what=f"'{claim}' is not a list of names"), f"{claim}: {value!r}")


# -- the loopback redirect (RFC 8252 §7.3) ------------------------------------------------------------

SIGNED_IN_PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>CCC Workstation</title></head><body>"
    "<h1>{title}</h1><p>{text}</p></body></html>"
)


class LoopbackRedirect:
    """A one-shot HTTP listener on 127.0.0.1 (never another address) and an ephemeral port, which
    receives the browser's redirect with the code. It answers the browser with a page saying to go
    back to the workstation, and stops at ``close``."""

    PATH = "/callback"

    def __init__(self) -> None:
        self.params: dict[str, str] | None = None
        self.done = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                parts = urlsplit(self.path)
                if parts.path != LoopbackRedirect.PATH or receiver.done.is_set():
                    self.send_error(404)
                    return
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                ok = "code" in query
                title = "Signed in" if ok else "Sign-in not completed"
                text = "You can close this window and go back to CCC Workstation."
                body = SIGNED_IN_PAGE.format(title=title, text=html.escape(text)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)
                receiver.params = query
                receiver.done.set()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the code stays out of logs
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="oidc-loopback", daemon=True)
        self.thread.start()

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.PATH}"

    def wait(self, seconds: float, cancelled: threading.Event) -> dict[str, str]:
        deadline = time.monotonic() + seconds
        while not self.done.wait(0.05):
            if cancelled.is_set():
                raise SignInFailed(CANCELLED)
            if time.monotonic() >= deadline:
                raise SignInFailed(NOT_FINISHED, f"no redirect within {seconds:g} s")
        assert self.params is not None
        return self.params

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the client ---------------------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge), RFC 7636."""
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class OidcClient:
    """Signs a user in at the provider and verifies what comes back. ``open_browser`` shows a URL in
    the system browser (``webbrowser.open`` by default; Qt's ``QDesktopServices.openUrl`` from the
    app; a test drives the provider's pages itself). ``clock`` is the time tokens are checked at."""

    def __init__(
        self,
        config: OidcConfig,
        open_browser: Callable[[str], object] = webbrowser.open,
        clock: Callable[[], float] = time.time,
        http: httpx.Client | None = None,
    ) -> None:
        self.config, self.open_browser, self.clock = config, open_browser, clock
        self.http = http or httpx.Client(timeout=config.request_seconds, follow_redirects=False)
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._used_nonces: set[str] = set()
        self.cancelled = threading.Event()
        self.unreachable = ""  # why the provider could not be used at the last contact; "" when it could

    # the provider's metadata and keys, fetched once and again when a token names an unknown key

    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = self._get_json(url, "its configuration")
            if document.get("issuer") != self.config.issuer:
                raise self._down(f"discovery names issuer {document.get('issuer')!r}, not {self.config.issuer!r}")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(key), str):
                    raise self._down(f"discovery document has no {key}")
            self._metadata = document
        return self._metadata

    def keys(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            document = self._get_json(self.metadata()["jwks_uri"], "its signing keys")
            try:
                self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise self._down(f"the provider's keys cannot be read: {exc}") from None
        return self._keys

    def reachable(self, seconds: float | None = None) -> bool:
        """Whether the provider answers its discovery now, within ``seconds`` (for the offline rules)."""
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            self._get_json(url, "its configuration", seconds)
        except ProviderUnreachable:
            return False
        return True

    # signing in

    def sign_in(self, *, fresh: bool = False, login_hint: str = "") -> ProviderSignIn:
        """The whole flow: the browser to the provider, the code back on the loopback, the code
        exchanged for tokens, the ID token verified and mapped. ``fresh`` asks for a new
        authentication (``prompt=login``, ``max_age=0``: step-up, and every first sign-in at a
        shared computer so that nobody inherits the previous user's provider session)."""
        self.cancelled.clear()
        self._metadata = None  # asked afresh: a provider that is down is found before the browser opens
        metadata = self.metadata()
        self.keys()
        verifier, challenge = pkce_pair()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        receiver = LoopbackRedirect()
        started = self.clock()
        try:
            params = {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": receiver.redirect_uri,
                "scope": self.config.scope,
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
            if fresh:
                params.update(prompt="login", max_age="0")
            if login_hint:
                params["login_hint"] = login_hint
            self.open_browser(metadata["authorization_endpoint"] + "?" + urlencode(params))
            answer = receiver.wait(self.config.browser_seconds, self.cancelled)
        finally:
            receiver.close()
        if answer.get("state") != state:
            raise SignInFailed(NOT_VALID, "the redirect's state is not the one sent (a forged or stale redirect)")
        if "error" in answer:
            raise SignInFailed(
                CANCELLED if answer["error"] == "access_denied" else NOT_VALID,
                f"provider error {answer.get('error')}: {answer.get('error_description', '')}",
            )
        if not answer.get("code"):
            raise SignInFailed(NOT_VALID, "the redirect carries no code")
        tokens = self._exchange(answer["code"], verifier, receiver.redirect_uri)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed(NOT_VALID, "the token answer has no ID token")
        claims = self.verify(id_token, nonce, authenticated_after=started if fresh else None)
        user = map_claims(claims, self.config.claims)
        auth_time = datetime.fromtimestamp(int(claims.get("auth_time", claims["iat"])), UTC)
        return ProviderSignIn(user, claims, id_token, tokens, auth_time)

    def close(self) -> None:
        """At exit: the connection pool to the provider closed."""
        self.http.close()

    def cancel(self) -> None:
        """Stops waiting for the browser (the user pressed Cancel, or switched)."""
        self.cancelled.set()

    def verify(self, id_token: str, nonce: str, authenticated_after: float | None = None) -> dict[str, Any]:
        """The ID token's claims once joserfc has checked its signature against the provider's keys,
        and its issuer, audience (and authorized party), expiry, issue time and nonce; a nonce is
        accepted once only. ``authenticated_after``: the authentication must be at least that
        recent (step-up). Raises SignInFailed with the reason in ``detail``."""
        try:
            token = self._decode(id_token)
            now = int(self.clock())
            registry = jwt.JWTClaimsRegistry(
                now=now,
                leeway=LEEWAY,
                iss={"essential": True, "value": self.config.issuer},
                aud={"essential": True, "value": self.config.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            )
            registry.validate(token.claims)
        except ExpiredTokenError as exc:
            raise SignInFailed(EXPIRED, f"ID token refused: {exc}") from None
        except JoseError as exc:
            raise SignInFailed(NOT_VALID, f"ID token refused: {exc.__class__.__name__}: {exc}") from None
        claims = dict(token.claims)
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.config.client_id:
            raise SignInFailed(NOT_VALID, f"ID token refused: azp {claims.get('azp')!r} is not this client")
        if int(claims["iat"]) > now + LEEWAY:
            raise SignInFailed(NOT_VALID, "ID token refused: issued in the future")
        if nonce in self._used_nonces:
            raise SignInFailed(NOT_VALID, "ID token refused: its nonce was used before (a replayed token)")
        if authenticated_after is not None:
            auth_time = claims.get("auth_time")
            if not isinstance(auth_time, int) or auth_time < int(authenticated_after) - LEEWAY:
                raise SignInFailed(NOT_FRESH, f"ID token refused: auth_time {auth_time!r} before the step-up began")
        self._used_nonces.add(nonce)
        return claims

    def _decode(self, id_token: str) -> jwt.Token:
        try:
            return jwt.decode(id_token, self.keys(), algorithms=ALGORITHMS)
        except JoseError as exc:
            if "kid" not in str(exc).lower() and exc.__class__.__name__ != "InvalidKeyIdError":
                raise
        return jwt.decode(id_token, self.keys(refresh=True), algorithms=ALGORITHMS)  # the provider rotated its keys

    def end_session_url(self, id_token: str) -> str:
        """RP-initiated logout: where the browser ends the user's provider session ("" if the
        provider offers none; then only ``prompt=login`` keeps the next user from inheriting it)."""
        try:
            endpoint = self.metadata().get("end_session_endpoint")
        except ProviderUnreachable:
            return ""
        if not isinstance(endpoint, str):
            return ""
        return endpoint + "?" + urlencode({"id_token_hint": id_token, "client_id": self.config.client_id})

    def end_session(self, id_token: str) -> bool:
        """Opens the provider's logout in the browser; whether there was one to open."""
        url = self.end_session_url(id_token)
        if url:
            self.open_browser(url)
        return bool(url)

    # HTTP, bounded

    def _exchange(self, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.config.client_id,
            "code_verifier": verifier,
        }
        answer = self._request(
            "POST",
            self.metadata()["token_endpoint"],
            "its tokens",
            content=urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        document = _json_object(answer.body)
        if answer.status != 200:
            error = document.get("error") if document else None
            if answer.status >= 500 or document is None:
                raise self._down(f"token endpoint answered {answer.status}")
            described = document.get("error_description")
            raise SignInFailed(NOT_VALID, f"token endpoint refused the code: {error}: {described}")
        if document is None:
            raise self._down("token endpoint answered something that is not a JSON object")
        return document

    def _get_json(self, url: str, what: str, seconds: float | None = None) -> dict[str, Any]:
        answer = self._request("GET", url, what, seconds, headers={"Accept": "application/json"})
        document = _json_object(answer.body)
        if answer.status != 200 or document is None:
            raise self._down(f"{url} answered {answer.status}, not a JSON object, for {what}")
        return document

    def _request(self, method: str, url: str, what: str, seconds: float | None = None, **kwargs: Any) -> Any:
        limit = seconds if seconds is not None else self.config.request_seconds
        try:
            answer = bounded_request(self.http, method, url, peer=PEER, seconds=limit, max_bytes=MAX_ANSWER, **kwargs)
        except AnswerRefused as exc:
            raise self._down(f"asking for {what}: {exc}") from None
        self.unreachable = ""
        return answer

    def _down(self, detail: str) -> ProviderUnreachable:
        """The provider cannot be used: remembered for the status bar and the offline rules."""
        self.unreachable = detail
        return ProviderUnreachable(UNREACHABLE, detail)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return document if isinstance(document, dict) else None
