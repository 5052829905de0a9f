"""The workstation's settings: one schema, three sources, validated at start.

``SCHEMA`` is the single description of every setting IT can manage. From it come the validation
at start (``load``), what the settings screen lists, and the templates IT deploys, generated into
``packaging/managed/``: the Linux managed file (``managed.toml``), a Windows ADMX/ADML pair and a
macOS configuration profile (``python -m app.services.settings --write packaging/managed``; a test
keeps the checked-in copies byte for byte in sync).

Precedence, as enterprise browsers do it: a value in the managed file (``/etc/ccc-workstation/
managed.toml``, or ``$CCC_MANAGED_CONFIG``) overrides the user's (their ``settings.toml`` in the data
directory, then the command-line flags over it), which overrides the default. Settings that belong
together (the policy server and its pinned key; the audit collector and its CA) are taken from the
managed file as a whole once IT manages one of them: a user's key cannot be paired with IT's server.

A wrong value anywhere stops the start with every problem, each naming the file (or flag), the key
and what is expected; nothing falls back to the demo. Without any file the app runs its embedded
demo, as before. Qt-free.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import difflib
import hashlib
import os
import plistlib
import re
import socket
import ssl
import stat
import sys
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape, quoteattr

from authz.bundle import load_public_key
from authz.errors import AuthzError

MANAGED_FILE = Path("/etc/ccc-workstation/managed.toml")
MANAGED_ENV = "CCC_MANAGED_CONFIG"  # another managed file (tests, staging)
USER_FILE = "settings.toml"  # in the data directory

MANAGED, USER, DEFAULT = "managed", "user", "default"
NUMBERS = ("minutes", "hours")  # kinds of setting that are whole numbers in a range
MAX_SHADOW_HOURS = 720  # 30 days

# Where the templates say the settings live on each platform.
WINDOWS_KEY = r"Software\Policies\ConnectedCardiacCare\Workstation"
MACOS_DOMAIN = "org.connectedcardiaccare.workstation"
TEMPLATE_REVISION = "1.0"


class Invalid(Exception):
    """A value that does not fit its setting: ``problem`` says what is wrong with it."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class Setting:
    key: str
    title: str  # the settings screen's and the Group Policy editor's name for it
    help: str  # what it does, in a sentence or two
    expected: str  # what a valid value is, in words: every error about it ends with this
    parse: Callable[[object, Path], Any]  # the value as written -> the value used, or Invalid
    kind: str  # "text", "minutes", "hours" or "choice": how a template asks for it
    default: Any = None
    default_text: str = ""  # the default in words, for templates and the settings screen
    example: Any = None
    flag: str = ""  # the command-line flag that gives the user's value
    group: str = ""  # settings managed together
    choices: tuple[str, ...] = ()
    minimum: int = 0
    maximum: int = 0
    per_computer: bool = False  # differs on each computer: not in the macOS profile's example values


# -- parsers: each takes the value as written (a TOML value or a flag's string) and the directory
# relative paths are taken from (flags only: a file must name absolute paths) -----------------------


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{value!r} is {_type_name(value)}, not a string")
    if not value.strip():
        raise Invalid("it is empty")
    if any(ord(ch) < 32 for ch in value if ch not in "\n"):
        raise Invalid("it contains control characters")
    return value.strip()


def _url(schemes: tuple[str, ...]) -> Callable[[object, Path], str]:
    def parse(value: object, base: Path) -> str:
        text = _string(value)
        if any(ch.isspace() for ch in text):
            raise Invalid(f"{text!r} contains spaces")
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError as exc:
            raise Invalid(f"{text!r} is not a valid URL ({exc})") from None
        if parts.scheme not in schemes:
            raise Invalid(f"{text!r} does not start with {' or '.join(s + '://' for s in schemes)}")
        if not parts.hostname:
            raise Invalid(f"{text!r} names no host")
        if parts.username is not None or parts.password is not None:
            raise Invalid("it carries a user name or password (credentials never go in a settings file)")
        if parts.scheme == "syslog-tls" and (port is None or parts.path not in ("", "/")):
            raise Invalid(f"{text!r} is not syslog-tls://HOST:PORT")
        return text

    return parse


def _identifier(value: object, base: Path) -> str:
    text = _string(value)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", text):
        raise Invalid(f"{text!r} has characters other than letters, digits, '.', '_' and '-', or is too long")
    return text


def _name(value: object, base: Path) -> str:
    text = _string(value)
    if "\n" in text or len(text) > 80:
        raise Invalid(f"{text[:40]!r}... is longer than one line of 80 characters")
    return text


def _minutes(value: object, base: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{value!r} is {_type_name(value)}, not a whole number")
    if not 1 <= value <= 60:
        raise Invalid(f"{value} is out of range")
    return value


def _shadow_hours(value: object, base: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{value!r} is {_type_name(value)}, not a whole number")
    if not 0 <= value <= MAX_SHADOW_HOURS:
        raise Invalid(f"{value} is out of range")
    return value


def _pin_hours(value: object, base: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{value!r} is {_type_name(value)}, not a whole number")
    if not 0 <= value <= 24:
        raise Invalid(f"{value} is out of range")
    return value


def _path(value: object, base: Path) -> Path:
    if isinstance(value, Path):  # a flag, parsed by argparse
        return (base / value).resolve()
    text = _string(value)
    path = Path(text)
    if not path.is_absolute():
        raise Invalid(f"{text!r} is not an absolute path")
    return path


def _readable(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise Invalid(f"{path} does not exist") from None
    except IsADirectoryError:
        raise Invalid(f"{path} is a directory") from None
    except OSError as exc:
        raise Invalid(f"{path} cannot be read ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class PublicKey:
    """The pinned policy key as read at start: its PEM, and where it came from (for the screen)."""

    pem: bytes
    path: Path | None

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.pem).hexdigest()[:16]

    def __str__(self) -> str:
        where = str(self.path) if self.path else "the key itself"
        return f"{where} (SHA-256 {self.fingerprint}…)"


_BASE64_LINE = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")


def _public_key(value: object, base: Path) -> PublicKey:
    path: Path | None = None
    if isinstance(value, str) and value.strip().startswith("-----BEGIN"):
        pem = value.strip().encode() + b"\n"
    elif isinstance(value, str) and _BASE64_LINE.fullmatch(value.strip()):
        try:
            base64.b64decode(value.strip(), validate=True)
        except binascii.Error:
            raise Invalid("the key is not valid base64") from None
        pem = b"-----BEGIN PUBLIC KEY-----\n" + value.strip().encode() + b"\n-----END PUBLIC KEY-----\n"
    else:
        path = _path(value, base)
        pem = _readable(path)
    try:
        load_public_key(pem)
    except AuthzError as exc:
        where = str(path) if path else "the key"
        raise Invalid(f"{where} is not an Ed25519 public key ({str(exc).rpartition('(')[2].rstrip(')')})") from None
    return PublicKey(pem, path)


def _ca_file(value: object, base: Path) -> Path:
    path = _path(value, base)
    _readable(path)
    try:
        ssl.create_default_context(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError):
        raise Invalid(f"{path} holds no PEM certificate") from None
    return path


def _sign_in_provider(value: object, base: Path) -> str:
    text = _string(value)
    if text not in SIGN_IN_PROVIDERS:
        raise Invalid(f"{text!r} is not a sign-in provider")
    return text


SIGN_IN_PROVIDERS = ("demo", "oidc")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _issuer(value: object, base: Path) -> str:
    """An OpenID provider's issuer: https, or http on this computer's loopback only (a provider
    under test); the ID tokens must name it exactly, so it is kept as written."""
    text = _url(("https", "http"))(value, base)
    parts = urlsplit(text)
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise Invalid(f"{text!r} is not https:// (plain http is only for a provider on this computer)")
    if parts.query or parts.fragment:
        raise Invalid(f"{text!r} has a query or fragment, which an issuer never has")
    return text


def _client_id(value: object, base: Path) -> str:
    text = _string(value)
    if len(text) > 200 or any(ch.isspace() or ord(ch) > 126 for ch in text):
        raise Invalid(f"{text[:40]!r} has spaces or characters outside printable ASCII, or is too long")
    return text


def _scopes(value: object, base: Path) -> tuple[str, ...]:
    text = _string(value)
    scopes = tuple(text.split())
    if not all(re.fullmatch(r"[!#-\[\]-~]+", s) for s in scopes):
        raise Invalid(f"{text!r} has a character a scope cannot have")
    return tuple(dict.fromkeys(("openid", *scopes)))


def _claim(value: object, base: Path) -> str:
    text = _string(value)
    if not re.fullmatch(r"[A-Za-z0-9_:./-]{1,100}", text):
        raise Invalid(f"{text!r} is not a claim name")
    return text


SCHEMA: tuple[Setting, ...] = (
    Setting(
        "policy_server_url",
        "Policy server URL",
        "Where the workstation fetches its signed policy bundles. The last bundle that verified keeps "
        "working offline. Unset, the workstation uses the policies bundled with the app (the demo).",
        "an http:// or https:// URL of the policy server's bundle, with no user name or password in it",
        _url(("http", "https")),
        "text",
        default_text="none (the bundled demo policies)",
        example="https://policy.hospital.example/current.bundle",
        flag="--policy-server",
        group="policy",
    ),
    Setting(
        "policy_public_key",
        "Pinned policy public key",
        "The Ed25519 public key policy bundles must be signed with (ccc-authz keygen writes it): the path "
        "of its file, or the key itself. Required with a policy server, and managed with it.",
        "the absolute path of an Ed25519 public key file (PEM), or the key itself (its PEM text, or the "
        "base64 line between its BEGIN and END lines)",
        _public_key,
        "text",
        default_text="none",
        example="/etc/ccc-workstation/policy-public.key",
        flag="--public-key",
        group="policy",
    ),
    Setting(
        "policy_shadow_hours",
        "Policy shadow period (hours)",
        "Makes this workstation a canary: a new policy bundle is held in shadow for this many hours, "
        "evaluated beside the active one on every live decision without being enforced, each decision it "
        "would change written to the audit log and counted in the status bar; then it is activated. A "
        "notice signed by the policy team (ccc-authz rollout) activates it earlier or withdraws it. 0: a "
        "new bundle is activated as soon as it verifies. Managed with the policy server.",
        f"whole hours from 0 to {MAX_SHADOW_HOURS}",
        _shadow_hours,
        "hours",
        default=0,
        default_text="0 (no shadow period)",
        example=48,
        group="policy",
        minimum=0,
        maximum=MAX_SHADOW_HOURS,
    ),
    Setting(
        "hospital_id",
        "Hospital id",
        "The hospital this workstation belongs to, as the policies and the audit repository know it.",
        "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        _identifier,
        "text",
        default="",
        default_text="none",
        example="h1",
    ),
    Setting(
        "workstation_id",
        "Workstation id",
        "This computer's name in every audit record it writes.",
        "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        _identifier,
        "text",
        default_text="the computer's host name",
        example="ward9-ws01",
        per_computer=True,
    ),
    Setting(
        "ward",
        "Ward",
        "The ward the workstation stands on, as staff call it.",
        "the ward's name: one line of at most 80 characters",
        _name,
        "text",
        default="",
        default_text="none",
        example="Cardiology ward 9",
    ),
    Setting(
        "idle_lock_minutes",
        "Idle lock (minutes)",
        "Minutes without input before the workstation warns, then locks and hides the patient.",
        "whole minutes from 1 to 60",
        _minutes,
        "minutes",
        default=10,
        default_text="10",
        example=5,
        flag="--idle-lock-minutes",
        minimum=1,
        maximum=60,
    ),
    Setting(
        "audit_collector_url",
        "Audit collector URL",
        "Where the workstation ships its audit log (IHE ATNA): an https:// FHIR base URL (each record is "
        "PUT to URL/AuditEvent/<record id>) or syslog-tls://HOST:PORT (RFC 5425). Records queue on the "
        "workstation while the collector cannot be reached; the status bar shows the backlog.",
        "an https:// URL of a FHIR server's base, or syslog-tls://HOST:PORT",
        _url(("https", "syslog-tls")),
        "text",
        default_text="none (the audit log stays on this computer)",
        example="https://audit.hospital.example/fhir",
        group="audit",
    ),
    Setting(
        "audit_collector_ca_file",
        "Audit collector CA file",
        "The CA certificate(s) the collector's TLS certificate is checked against. Unset, the system's "
        "trusted CAs. Managed with the collector URL.",
        "the absolute path of a PEM file holding CA certificates",
        _ca_file,
        "text",
        default_text="none (the system's trusted CAs)",
        example="/etc/ccc-workstation/audit-ca.pem",
        group="audit",
    ),
    Setting(
        "sign_in_provider",
        "Sign-in provider",
        'Who signs users in. "demo" is the demo user directory (demo users, marked as such); "oidc" is the '
        "hospital's OpenID Connect provider (oidc_issuer, oidc_client_id), through the system browser.",
        '"demo" or "oidc"',
        _sign_in_provider,
        "choice",
        default="demo",
        default_text="demo",
        example="oidc",
        choices=SIGN_IN_PROVIDERS,
        group="sign_in",
    ),
    Setting(
        "oidc_issuer",
        "OpenID provider (issuer)",
        "The hospital's OpenID Connect provider, exactly as its ID tokens name it (its issuer): the "
        "workstation reads its configuration from ISSUER/.well-known/openid-configuration.",
        "an https:// URL (http:// only for a provider on this computer, 127.0.0.1), as the provider's "
        "discovery document names its issuer",
        _issuer,
        "text",
        default_text="none",
        example="https://login.hospital.example/realms/ccc",
        group="sign_in",
    ),
    Setting(
        "oidc_client_id",
        "OpenID client id",
        "The workstation's client id at the provider: a public native client (no secret) whose redirect "
        "URI is http://127.0.0.1/callback on any port (RFC 8252), with PKCE.",
        "the client id registered at the provider: printable characters, no spaces",
        _client_id,
        "text",
        default_text="none",
        example="ccc-workstation",
        group="sign_in",
    ),
    Setting(
        "oidc_scopes",
        "OpenID scopes",
        "The scopes asked for, separated by spaces (openid is always asked): those that release the "
        "claims below into the ID token.",
        "scope names separated by spaces",
        _scopes,
        "text",
        default=("openid", "profile"),
        default_text="openid profile",
        example="openid profile ccc",
        group="sign_in",
    ),
    Setting(
        "pin_resume_hours",
        "PIN resume (hours)",
        "After a full sign-in with the hospital's provider, a user may come back to this computer with a "
        "short PIN they chose then, for this many hours (fast user switching, and the offline grace while "
        "the provider cannot be reached). 0: every sign-in is a full one.",
        "whole hours from 0 to 24",
        _pin_hours,
        "hours",
        default=12,
        default_text="12",
        example=12,
        group="sign_in",
        minimum=0,
        maximum=24,
    ),
    Setting(
        "oidc_claim_user_id",
        "Claim: user id",
        "The ID-token claim holding the user's id as the policies and the audit log know it.",
        "a claim name (letters, digits, '_', ':', '.', '/', '-')",
        _claim,
        "text",
        default="preferred_username",
        default_text="preferred_username",
        example="preferred_username",
        group="sign_in",
    ),
    Setting(
        "oidc_claim_name",
        "Claim: display name",
        "The ID-token claim holding the name shown on screen and in queues.",
        "a claim name (letters, digits, '_', ':', '.', '/', '-')",
        _claim,
        "text",
        default="name",
        default_text="name",
        example="name",
        group="sign_in",
    ),
    Setting(
        "oidc_claim_roles",
        "Claim: roles",
        "The ID-token claim holding the user's roles as the policies name them (a list, or names separated "
        "by spaces). A user whose roles open no workspace is refused with the policies' reason.",
        "a claim name (letters, digits, '_', ':', '.', '/', '-')",
        _claim,
        "text",
        default="roles",
        default_text="roles",
        example="ccc_roles",
        group="sign_in",
    ),
    Setting(
        "oidc_claim_hospital_ids",
        "Claim: hospital ids",
        "The ID-token claim holding the hospitals the user works for (a list of hospital ids).",
        "a claim name (letters, digits, '_', ':', '.', '/', '-')",
        _claim,
        "text",
        default="hospital_ids",
        default_text="hospital_ids",
        example="hospital_ids",
        group="sign_in",
    ),
)
BY_KEY = {s.key: s for s in SCHEMA}


# -- loading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    where: str  # a file, or "command line"
    key: str  # "" for the file as a whole
    problem: str
    expected: str

    def __str__(self) -> str:
        key = f"{self.key}: " if self.key else ""
        return f"{self.where}: {key}{self.problem}; expected {self.expected}"


class SettingsError(Exception):
    """The settings are wrong: the app does not start. Every problem names where, which key and
    what is expected."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    def __str__(self) -> str:
        lines = "\n".join(f"  {p}" for p in self.problems)
        return (
            "CCC Workstation cannot start: its settings are wrong (nothing was started, and the demo "
            f"is not used instead).\n{lines}"
        )


@dataclass(frozen=True)
class Value:
    setting: Setting
    value: Any  # as the app uses it; None when unset
    source: str  # MANAGED, USER or DEFAULT
    origin: str = ""  # the file or the flag it came from

    @property
    def shown(self) -> str:
        if self.value is None or self.value == "":
            return self.setting.default_text
        if isinstance(self.value, tuple):  # the scopes
            return " ".join(self.value)
        return str(self.value)


@dataclass(frozen=True)
class Settings:
    values: dict[str, Value]
    managed_file: Path | None = None  # the managed file read, if there was one
    notes: tuple[str, ...] = field(default=())  # user values that IT's override (said at start)

    def __getitem__(self, key: str) -> Any:
        return self.values[key].value

    def source(self, key: str) -> str:
        return self.values[key].source

    @property
    def managed_keys(self) -> list[str]:
        return [k for k, v in self.values.items() if v.source == MANAGED]

    @property
    def managed(self) -> bool:
        return bool(self.managed_keys)

    def rows(self) -> list[Value]:
        """Every setting, in the schema's order."""
        return [self.values[s.key] for s in SCHEMA]

    @classmethod
    def defaults(cls) -> Settings:
        return cls({s.key: Value(s, _default(s), DEFAULT) for s in SCHEMA})


def _default(setting: Setting) -> Any:
    if setting.key == "workstation_id":
        return socket.gethostname()
    return setting.default


def managed_file(environ: Mapping[str, str] = os.environ) -> tuple[Path, bool]:
    """The managed file to read, and whether it was named explicitly (then it must exist)."""
    named = environ.get(MANAGED_ENV)
    return (Path(named), True) if named else (MANAGED_FILE, False)


def _present(path: Path) -> bool:
    """Whether the file is there. A file that may be there but cannot be looked at (a directory
    without search permission) counts as present, so reading it fails loudly instead of the app
    starting as if there were none."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


def _read_file(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    where = str(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            problems.append(Problem(where, "", "is not a file", "a TOML file of settings"))
            return None
        if info.st_mode & stat.S_IWOTH:
            problems.append(
                Problem(where, "", "can be changed by every user of this computer", "a file only its owner can write")
            )
            return None
        data = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(where, "", f"cannot be read ({exc.strerror or exc})", "a readable TOML file"))
        return None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        problems.append(Problem(where, "", "is not UTF-8 text", "a TOML file in UTF-8"))
    except tomllib.TOMLDecodeError as exc:
        problems.append(Problem(where, "", f"is not valid TOML ({exc})", 'TOML lines such as key = "value"'))
    return None


def _parse_file(path: Path, source: str, problems: list[Problem]) -> dict[str, Value]:
    document = _read_file(path, problems)
    values: dict[str, Value] = {}
    for key, raw in (document or {}).items():
        setting = BY_KEY.get(key)
        if setting is None:
            close = difflib.get_close_matches(key, BY_KEY, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            known = ", ".join(BY_KEY)
            problems.append(Problem(str(path), key, f"is not a setting{hint}", f"one of {known}"))
            continue
        try:
            values[key] = Value(setting, setting.parse(raw, path.parent), source, str(path))
        except Invalid as exc:
            problems.append(Problem(str(path), key, exc.problem, setting.expected))
    return values


def _from_flag(setting: Setting, raw: object) -> object:
    """A flag's text as the value a file would write (a number for the minutes)."""
    if setting.kind in NUMBERS and isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            raise Invalid(f"{raw!r} is not a whole number") from None
    return raw


def load(
    managed: Path | None = None,
    user_file: Path | None = None,
    flags: Mapping[str, object] | None = None,
    managed_required: bool = False,
    cwd: Path | None = None,
) -> Settings:
    """The settings from the managed file (when it exists, or must), the user's file (when it
    exists) and flags (key -> the flag's value, None when not given). Raises SettingsError."""
    problems: list[Problem] = []
    managed_values: dict[str, Value] = {}
    managed_read: Path | None = None
    if managed is not None and (_present(managed) or managed_required):
        managed_read = managed
        if not _present(managed):
            problems.append(
                Problem(str(managed), "", "does not exist", f"the managed settings file {MANAGED_ENV} names")
            )
        else:
            managed_values = _parse_file(managed, MANAGED, problems)
    user_values: dict[str, Value] = {}
    if user_file is not None and _present(user_file):
        user_values = _parse_file(user_file, USER, problems)
    for key, raw in (flags or {}).items():
        if raw is None:
            continue
        setting = BY_KEY[key]
        try:
            raw = _from_flag(setting, raw)
            user_values[key] = Value(setting, setting.parse(raw, cwd or Path.cwd()), USER, setting.flag)
        except Invalid as exc:
            problems.append(Problem("command line", setting.flag, exc.problem, setting.expected))
    if problems:
        raise SettingsError(problems)

    managed_groups = {v.setting.group for v in managed_values.values() if v.setting.group}
    values: dict[str, Value] = {}
    notes: list[str] = []
    for setting in SCHEMA:
        user = user_values.get(setting.key)
        if setting.key in managed_values:
            values[setting.key] = managed_values[setting.key]
        elif user is not None and setting.group not in managed_groups:
            values[setting.key] = user
        else:
            values[setting.key] = Value(setting, _default(setting), DEFAULT)
        if user is not None and values[setting.key] is not user:
            notes.append(f"{user.origin}: {setting.key} is ignored: IT manages it in {managed_read}")
    settings = Settings(values, managed_read, tuple(notes))
    _check_pairs(settings, problems)
    if problems:
        raise SettingsError(problems)
    return settings


def _where(value: Value) -> tuple[str, str]:
    """(where, key) for a problem about a value: its file and key, or the command line and its flag."""
    if value.origin.startswith("--"):
        return "command line", value.origin
    return value.origin, value.setting.key


def _check_pairs(settings: Settings, problems: list[Problem]) -> None:
    """Settings that make sense only together."""
    server, key = settings.values["policy_server_url"], settings.values["policy_public_key"]
    in_file = "in the same file" if server.source == MANAGED or key.source == MANAGED else "too"
    if server.value and key.value is None:
        problems.append(
            Problem(
                *_where(server),
                "is set but no policy public key is",
                f"policy_public_key {in_file} (with --policy-server: --public-key): bundles are verified against "
                "the pinned key before they are used",
            )
        )
    if key.value is not None and not server.value:
        problems.append(
            Problem(
                *_where(key),
                "is set but no policy server is",
                f"policy_server_url {in_file} (with --public-key: --policy-server), or neither",
            )
        )
    shadow = settings.values["policy_shadow_hours"]
    if shadow.value and not server.value:  # a canary without bundles would silently run the demo policies
        in_file = "in the same file" if shadow.source == MANAGED else "too"
        problems.append(
            Problem(
                *_where(shadow),
                "is set but no policy server is: the shadow period holds that server's new bundles",
                f"policy_server_url and policy_public_key {in_file}, or policy_shadow_hours = 0",
            )
        )
    collector, ca = settings.values["audit_collector_url"], settings.values["audit_collector_ca_file"]
    if ca.value is not None and not collector.value:
        in_file = "in the same file" if ca.source == MANAGED else "too"
        problems.append(Problem(*_where(ca), "is set but no audit collector is", f"audit_collector_url {in_file}"))
    _check_sign_in(settings, problems)


def _check_sign_in(settings: Settings, problems: list[Problem]) -> None:
    """OpenID Connect needs its provider and client id; they mean nothing for the demo."""
    provider = settings.values["sign_in_provider"]
    oidc = [settings.values[k] for k in ("oidc_issuer", "oidc_client_id")]
    managed = provider.source == MANAGED or any(v.source == MANAGED for v in oidc)
    in_file = "in the same file" if managed else "too"
    if provider.value == "oidc":
        for value in oidc:
            if not value.value:
                problems.append(
                    Problem(
                        *_where(provider),
                        f'is "oidc" but no {value.setting.key} is set',
                        f"{value.setting.key} {in_file}",
                    )
                )
    else:
        for value in oidc:
            if value.value:
                problems.append(
                    Problem(
                        *_where(value),
                        "is set but the sign-in provider is demo",
                        f'sign_in_provider = "oidc" {in_file}',
                    )
                )


def load_for_app(data_dir: Path, flags: Mapping[str, object], environ: Mapping[str, str] = os.environ) -> Settings:
    """What the app reads at start: the managed file, the user's file in the data directory, the flags."""
    managed, required = managed_file(environ)
    return load(managed, data_dir / USER_FILE, flags, managed_required=required)


# -- the templates IT deploys, generated from SCHEMA --------------------------------------------------

HEADER = "generated from app/services/settings.py by `python -m app.services.settings --write packaging/managed`"
XML_HEADER = (
    "generated from the schema in app/services/settings.py, which writes it again: do not edit it here"  # no "--"
)


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def _wrap(text: str, width: int = 96) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def render_toml() -> str:
    out = [
        "# CCC Workstation: managed settings for Linux.",
        *("# " + line for line in _wrap(f"({HEADER}; do not edit it here.)")),
        "#",
        *(
            "# " + line
            for line in _wrap(
                f"Install as {MANAGED_FILE}, owned by root and writable by root only, then remove the '#' "
                "before the keys you manage. A key set here overrides the user's settings.toml and the "
                "command-line flags, and the workstation shows it as managed by IT. Keys left out keep the "
                "user's value or the default. A wrong value (or an unknown key) stops the workstation at start "
                "with a message naming this file, the key and what is expected. Check a file before rolling it "
                "out with: CCC_MANAGED_CONFIG=FILE ccc-workstation --check-settings"
            )
        ),
    ]
    for s in SCHEMA:
        out += ["", f"# {s.title}"]
        out += ["# " + line for line in _wrap(s.help)]
        out += ["# " + line for line in _wrap(f"Expected: {s.expected}.")]
        out.append(f"# Default: {s.default_text}.")
        out.append(f"# {s.key} = {_toml_value(s.example)}")
    return "\n".join(out) + "\n"


def _policy_name(s: Setting) -> str:
    return "".join(part.capitalize() for part in s.key.split("_"))


def render_admx() -> str:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f"<!-- CCC Workstation: Group Policy template ({XML_HEADER}) -->",
        '<policyDefinitions xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'revision="{TEMPLATE_REVISION}" schemaVersion="1.0" '
        'xmlns="http://schemas.microsoft.com/GroupPolicy/2006/07/PolicyDefinitions">',
        "  <policyNamespaces>",
        '    <target prefix="ccc" namespace="ConnectedCardiacCare.Policies.Workstation" />',
        '    <using prefix="windows" namespace="Microsoft.Policies.Windows" />',
        "  </policyNamespaces>",
        f'  <resources minRequiredRevision="{TEMPLATE_REVISION}" />',
        "  <supportedOn>",
        "    <definitions>",
        '      <definition name="SUPPORTED_CCC_0_1" displayName="$(string.SUPPORTED_CCC_0_1)" />',
        "    </definitions>",
        "  </supportedOn>",
        "  <categories>",
        '    <category name="CCCWorkstation" displayName="$(string.CCCWorkstation)" />',
        "  </categories>",
        "  <policies>",
    ]
    for s in SCHEMA:
        name = _policy_name(s)
        out += [
            f'    <policy name="{name}" class="Machine" displayName="$(string.{name})" '
            f'explainText="$(string.{name}_Explain)" presentation="$(presentation.{name})" '
            f"key={quoteattr(WINDOWS_KEY)}>",
            '      <parentCategory ref="CCCWorkstation" />',
            '      <supportedOn ref="SUPPORTED_CCC_0_1" />',
            "      <elements>",
        ]
        if s.kind in NUMBERS:
            out.append(
                f'        <decimal id="{name}" valueName="{s.key}" required="true" '
                f'minValue="{s.minimum}" maxValue="{s.maximum}" />'
            )
        elif s.kind == "choice":
            out.append(f'        <enum id="{name}" valueName="{s.key}" required="true">')
            for choice in s.choices:
                out += [
                    f'          <item displayName="$(string.{name}_{choice})">',
                    f"            <value><string>{escape(choice)}</string></value>",
                    "          </item>",
                ]
            out.append("        </enum>")
        else:
            out.append(f'        <text id="{name}" valueName="{s.key}" required="true" maxLength="1024" />')
        out += ["      </elements>", "    </policy>"]
    out += ["  </policies>", "</policyDefinitions>"]
    return "\n".join(out) + "\n"


def render_adml() -> str:
    strings = [
        ("CCCWorkstation", "CCC Workstation"),
        ("SUPPORTED_CCC_0_1", "CCC Workstation 0.1 and later"),
    ]
    presentations = []
    for s in SCHEMA:
        name = _policy_name(s)
        explain = (
            f"{s.help}\n\nExpected: {s.expected}.\nNot configured: {s.default_text}.\n\n"
            f"Registry value: HKLM\\{WINDOWS_KEY}\\{s.key}. A wrong value stops CCC Workstation at start "
            "with a message naming the setting and what is expected."
        )
        strings += [(name, s.title), (f"{name}_Explain", explain)]
        strings += [(f"{name}_{c}", c) for c in s.choices]
        if s.kind in NUMBERS:
            control = f'<decimalTextBox refId="{name}" defaultValue="{s.default}">{escape(s.title)}</decimalTextBox>'
        elif s.kind == "choice":
            control = f'<dropdownList refId="{name}" noSort="true" defaultItem="0">{escape(s.title)}</dropdownList>'
        else:
            control = f'<textBox refId="{name}"><label>{escape(s.title)}</label></textBox>'
        presentations += [f'      <presentation id="{name}">', f"        {control}", "      </presentation>"]
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f"<!-- CCC Workstation: Group Policy strings, en-US ({XML_HEADER}) -->",
        '<policyDefinitionResources xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'revision="{TEMPLATE_REVISION}" schemaVersion="1.0" '
        'xmlns="http://schemas.microsoft.com/GroupPolicy/2006/07/PolicyDefinitions">',
        "  <displayName>CCC Workstation</displayName>",
        "  <description>Managed settings of CCC Workstation</description>",
        "  <resources>",
        "    <stringTable>",
        *(f'      <string id="{i}">{escape(text)}</string>' for i, text in strings),
        "    </stringTable>",
        "    <presentationTable>",
        *presentations,
        "    </presentationTable>",
        "  </resources>",
        "</policyDefinitionResources>",
    ]
    return "\n".join(out) + "\n"


def _uuid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.{MACOS_DOMAIN}")).upper()


def render_mobileconfig() -> bytes:
    """A configuration profile with one custom-settings payload for the app's preference domain,
    holding the schema's example values (edit them before deploying). Its UUIDs are derived from
    names, so the file is the same on every generation."""
    settings = {s.key: s.example for s in SCHEMA if not s.per_computer}
    left_out = ", ".join(s.key for s in SCHEMA if s.per_computer)
    payload = {
        "PayloadType": MACOS_DOMAIN,
        "PayloadIdentifier": f"{MACOS_DOMAIN}.managed",
        "PayloadUUID": _uuid("payload"),
        "PayloadVersion": 1,
        "PayloadDisplayName": "CCC Workstation managed settings",
        "PayloadEnabled": True,
        **settings,
    }
    profile = {
        "PayloadContent": [payload],
        "PayloadDisplayName": "CCC Workstation",
        "PayloadDescription": (
            f"Managed settings of CCC Workstation ({HEADER}). The values are examples: edit them, and delete "
            f"the keys you do not manage. {left_out} is left out: each Mac uses its host name unless you add it."
        ),
        "PayloadIdentifier": f"{MACOS_DOMAIN}.profile",
        "PayloadOrganization": "Connected Cardiac Care",
        "PayloadScope": "System",
        "PayloadType": "Configuration",
        "PayloadUUID": _uuid("profile"),
        "PayloadVersion": 1,
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


TEMPLATES: dict[str, Callable[[], str | bytes]] = {
    "managed.toml": render_toml,
    "windows/ccc-workstation.admx": render_admx,
    "windows/en-US/ccc-workstation.adml": render_adml,
    "macos/ccc-workstation.mobileconfig": render_mobileconfig,
}


def rendered() -> dict[str, bytes]:
    out = {}
    for name, render in TEMPLATES.items():
        content = render()
        out[name] = content.encode() if isinstance(content, str) else content
    return out


def write_templates(directory: Path) -> list[Path]:
    written = []
    for name, content in rendered().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    return written


def stale_templates(directory: Path) -> list[str]:
    """The templates under ``directory`` that differ from what the schema generates now."""
    return [
        name
        for name, content in rendered().items()
        if not (directory / name).is_file() or (directory / name).read_bytes() != content
    ]


def describe(settings: Settings) -> str:
    """Every setting, its value and where it came from: what --check-settings prints."""
    rows = [(v.setting.key, v.shown, v.source + (f" ({v.origin})" if v.origin else "")) for v in settings.rows()]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{k:<{width}}  {value}  [{source}]" for k, value, source in rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app.services.settings", description="The managed-settings templates, from the schema."
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path, metavar="DIR", help="write the templates into DIR (packaging/managed)")
    group.add_argument("--check", type=Path, metavar="DIR", help="exit 1 if DIR's templates differ from the schema's")
    args = parser.parse_args(argv)
    if args.write:
        for path in write_templates(args.write):
            print(path)
        return 0
    stale = stale_templates(args.check)
    for name in stale:
        sys.stderr.write(f"{args.check / name}: differs from the schema (run --write {args.check})\n")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
