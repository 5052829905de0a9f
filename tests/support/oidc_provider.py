"""A real OpenID Connect provider for the sign-in tests (panva's ``oidc-provider`` under node, started
on 127.0.0.1 with an ephemeral port by tests/support/oidc_provider.mjs), and the browser leg: a
browser driven over HTTP with httpx that fills in the provider's sign-in and consent pages and
confirms its logout, keeping its cookies between sign-ins as a ward computer's browser does."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from tests.support.process import stop

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "ccc-workstation"
OTHER_CLIENT_ID = "another-app"  # a second client of the same provider: its tokens are not for us


def provider_modules() -> Path:
    """The directory whose node_modules holds oidc-provider (scripts/fetch-oidc-provider installs
    it on first use from the npm registry into .cache/)."""
    if shutil.which("node") is None:
        raise RuntimeError("node is needed for the OpenID provider of the tests (apt-get install nodejs npm)")
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "fetch-oidc-provider")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def native_client(client_id: str = CLIENT_ID) -> dict[str, Any]:
    """A public native client with a loopback redirect (any port, RFC 8252 §7.3)."""
    return {
        "client_id": client_id,
        "application_type": "native",
        "token_endpoint_auth_method": "none",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
    }


@dataclass
class ProviderUser:
    id: str
    password: str
    name: str
    roles: list[str]
    hospital_ids: list[str] = field(default_factory=list)

    def entry(self) -> dict[str, Any]:
        claims = {"name": self.name, "preferred_username": self.id, "ccc_roles": self.roles}
        if self.hospital_ids:
            claims["hospital_ids"] = self.hospital_ids
        return {"password": self.password, "claims": claims}


# The hospital's staff at the provider, with the ids the demo hospital's records know them by (h1).
NURSE = ProviderUser("nurse_nia", "Nia-pw-1", "Nia Okafor, RN", ["nurse"], ["h1"])
PHYSICIAN = ProviderUser("dr_aly", "Aly-pw-1", "Dr. Aly Rahman", ["physician"], ["h1"])
ER = ProviderUser("er_eli", "Eli-pw-1", "Dr. Eli Sato", ["er_physician"], ["h1"])
STRANGER = ProviderUser("j_doe", "Doe-pw-1", "Jo Doe", ["parking_attendant"], ["h1"])
MISMAPPED = ProviderUser("nurse_omar", "Omar-pw-1", "Omar Haddad, RN", ["nurse", "parking_attendant"], ["h1"])
USERS = (NURSE, PHYSICIAN, ER, STRANGER, MISMAPPED)


class OidcProvider:
    """``oidc-provider`` on 127.0.0.1:<ephemeral>; ``stop()`` (or the context manager) ends it."""

    def __init__(self, users: tuple[ProviderUser, ...] = USERS, id_token_ttl: int = 3600) -> None:
        self.workdir = tempfile.TemporaryDirectory(prefix="oidc-provider-")
        config = {
            "users": {u.id: u.entry() for u in users},
            "clients": [native_client(), native_client(OTHER_CLIENT_ID)],
            "id_token_ttl": id_token_ttl,
        }
        self.config_path = Path(self.workdir.name) / "config.json"
        self.config_path.write_text(json.dumps(config))
        self.process: subprocess.Popen[str] | None = None
        self.issuer = ""
        self.port = 0

    def start(self) -> OidcProvider:
        self.log = open(Path(self.workdir.name) / "provider.log", "w")  # noqa: SIM115
        script = ROOT / "tests" / "support" / "oidc_provider.mjs"
        self.process = subprocess.Popen(
            ["node", str(script), str(provider_modules()), str(self.config_path)],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(30)
        if not line or not line[0].strip():
            self.stop()
            raise RuntimeError(f"oidc-provider did not start: {self.logs()}")
        announced = json.loads(line[0])
        self.issuer, self.port = announced["issuer"], announced["port"]
        assert self.issuer.startswith("http://127.0.0.1:")
        httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10).raise_for_status()
        return self

    def logs(self) -> str:
        try:
            return (Path(self.workdir.name) / "provider.log").read_text()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop(self.process)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        if getattr(self, "log", None):
            self.log.close()
        self.workdir.cleanup()

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the browser leg ------------------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    fields: dict[str, str]
    id: str = ""


class _Forms(HTMLParser):
    """The forms of a page with their fields; a submit button outside its form (form="id") counts."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.title = ""
        self._in_title = False
        self._orphans: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), {}, a.get("id", "")))
        elif tag in ("input", "button") and a.get("name"):
            if tag == "button" and a.get("form"):
                self._orphans.append((a["form"], a["name"], a.get("value", "")))
            elif self.forms:
                self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def close(self) -> None:
        super().close()
        for form_id, name, value in self._orphans:
            for form in self.forms:
                if form.id == form_id:
                    form.fields.setdefault(name, value)


def parse(page: str) -> _Forms:
    parser = _Forms()
    parser.feed(page)
    parser.close()
    return parser


class ProviderBrowser:
    """The system browser, as a test plays it: ``browser(url)`` is what the workstation's
    ``open_browser`` calls. It signs in as ``next_user`` when the provider asks (and records that it
    asked), allows the consent, confirms a logout, and follows redirects, including the one to the
    workstation's loopback listener. Cookies persist between calls, as a real browser's do."""

    def __init__(self) -> None:
        self.http = httpx.Client(follow_redirects=True, timeout=15)
        self.next_user: ProviderUser | None = None
        self.wrong_password = False
        self.titles: list[str] = []  # every page shown, in order
        self.login_asked = 0
        self.opened: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, url: str) -> bool:
        with self.lock:
            self.opened.append(url)
            response = self.http.get(url)
            typed = 0
            for _step in range(10):
                page = parse(response.text) if "html" in response.headers.get("content-type", "") else None
                if page is None or not page.forms:
                    if page is not None:
                        self.titles.append(page.title)
                    return True
                self.titles.append(page.title)
                form = page.forms[0]
                fields = dict(form.fields)
                if "password" in fields:
                    self.login_asked += 1
                    if self.next_user is None or (typed and self.wrong_password):
                        return True  # nobody types (again): the window stays open
                    typed += 1
                    fields["login"] = self.next_user.id
                    fields["password"] = self.next_user.password + ("x" if self.wrong_password else "")
                response = self.http.post(urljoin(str(response.url), form.action), data=fields)
            raise AssertionError(f"the provider's pages went round in circles: {self.titles}")

    def close(self) -> None:
        self.http.close()
