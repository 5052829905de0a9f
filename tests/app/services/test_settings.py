"""Managed configuration without Qt: the one schema, the precedence managed > user > default (with
groups IT manages whole), every refusal naming the file, the key and what is expected, and the
templates in packaging/managed generated from the schema, byte for byte."""

from __future__ import annotations

import os
import plistlib
import re
import socket
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from app.services import settings as settings_module
from app.services.audit_upload import destination, shipper_factory
from app.services.credentials import SecretStore
from app.services.settings import (
    BY_KEY,
    DEFAULT,
    MANAGED,
    MANAGED_ENV,
    MANAGED_FILE,
    SCHEMA,
    USER,
    Settings,
    SettingsError,
    describe,
    load,
    load_for_app,
    managed_file,
    rendered,
)
from app.services.status import StatusService
from authz.audit import AuditChain
from authz.audit_ship import FhirHttpDestination, SyslogTlsDestination
from authz.bundle import generate_keys
from tests.support.keyrings import MemoryKeyring
from tests.support.tls import make_pki

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = ROOT / "packaging" / "managed"
ADMX_NS = {"p": "http://schemas.microsoft.com/GroupPolicy/2006/07/PolicyDefinitions"}


@pytest.fixture(scope="module")
def public_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_keys(tmp_path_factory.mktemp("keys"))[1]


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("pki")).ca_cert


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def toml(**values: object) -> str:
    def literal(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"""' + v + '"""' if "\n" in v else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return str(v)

    return "".join(f"{k} = {literal(v)}\n" for k, v in values.items())


def refusal(managed: Path | None = None, user: Path | None = None, **flags: object) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        load(managed, user, flags)
    return [str(p) for p in raised.value.problems]


# -- the schema and its sources ----------------------------------------------------------------------


def test_the_schema_holds_every_setting_the_issue_names() -> None:
    assert [s.key for s in SCHEMA] == [
        "policy_server_url",
        "policy_public_key",
        "policy_shadow_hours",
        "hospital_id",
        "workstation_id",
        "ward",
        "idle_lock_minutes",
        "audit_collector_url",
        "audit_collector_ca_file",
        "sign_in_provider",
        "oidc_issuer",
        "oidc_client_id",
        "oidc_scopes",
        "pin_resume_hours",
        "oidc_claim_user_id",
        "oidc_claim_name",
        "oidc_claim_roles",
        "oidc_claim_hospital_ids",
    ]
    for s in SCHEMA:
        assert s.title and s.help and s.expected and s.default_text, s.key


def test_without_any_file_or_flag_every_setting_is_its_default(tmp_path: Path) -> None:
    settings = load(tmp_path / "absent.toml", tmp_path / "settings.toml", {})
    assert settings.managed_file is None and not settings.managed and settings.notes == ()
    assert {k: v.source for k, v in settings.values.items()} == {s.key: DEFAULT for s in SCHEMA}
    assert settings["policy_server_url"] is None and settings["audit_collector_url"] is None
    assert settings["idle_lock_minutes"] == 10 and settings["sign_in_provider"] == "demo"
    assert settings["workstation_id"] == socket.gethostname()
    assert settings.values == Settings.defaults().values


def test_the_default_managed_file_and_the_variable_that_replaces_it(tmp_path: Path) -> None:
    assert managed_file({}) == (MANAGED_FILE, False) == (Path("/etc/ccc-workstation/managed.toml"), False)
    assert managed_file({MANAGED_ENV: str(tmp_path / "m.toml")}) == (tmp_path / "m.toml", True)
    # named explicitly, it must exist: a typo in the variable does not quietly give the demo
    with pytest.raises(SettingsError) as raised:
        load_for_app(tmp_path / "data", {}, {MANAGED_ENV: str(tmp_path / "typo.toml")})
    assert str(raised.value.problems[0]).startswith(f"{tmp_path / 'typo.toml'}: does not exist; expected")


def test_managed_overrides_flags_which_override_the_user_file(tmp_path: Path, public_key: Path) -> None:
    user = write(tmp_path / "data" / "settings.toml", toml(idle_lock_minutes=20, ward="Ward 4", hospital_id="h2"))
    managed = write(tmp_path / "managed.toml", toml(idle_lock_minutes=3, hospital_id="h1"))
    settings = load(managed, user, {"idle_lock_minutes": "30", "policy_server_url": None})
    assert settings["idle_lock_minutes"] == 3 and settings.source("idle_lock_minutes") == MANAGED
    assert settings.values["idle_lock_minutes"].origin == str(managed)
    assert settings["hospital_id"] == "h1" and settings.source("hospital_id") == MANAGED
    assert settings["ward"] == "Ward 4" and settings.values["ward"].origin == str(user)
    assert settings.source("ward") == USER and settings.source("sign_in_provider") == DEFAULT
    assert settings.managed and settings.managed_keys == ["hospital_id", "idle_lock_minutes"]
    assert settings.notes == (
        f"{user}: hospital_id is ignored: IT manages it in {managed}",
        f"--idle-lock-minutes: idle_lock_minutes is ignored: IT manages it in {managed}",
    )
    # without the managed file the flag wins over the user's file
    unmanaged = load(tmp_path / "none.toml", user, {"idle_lock_minutes": "30"})
    assert (
        unmanaged["idle_lock_minutes"] == 30 and unmanaged.values["idle_lock_minutes"].origin == "--idle-lock-minutes"
    )
    assert load(tmp_path / "none.toml", user, {})["idle_lock_minutes"] == 20


def test_it_manages_the_policy_server_and_its_key_together(tmp_path: Path, public_key: Path) -> None:
    """A user's key (or server) is never paired with IT's server (or key)."""
    server = "https://policy.hospital.example/current.bundle"
    both = write(tmp_path / "both.toml", toml(policy_server_url=server, policy_public_key=str(public_key)))
    other_key = generate_keys(tmp_path / "other")[1]
    settings = load(both, None, {"policy_public_key": other_key, "policy_server_url": "http://127.0.0.1:1/b"})
    assert settings["policy_server_url"] == server and settings["policy_public_key"].path == public_key
    assert len(settings.notes) == 2

    only_server = write(tmp_path / "server.toml", toml(policy_server_url=server))
    problems = refusal(only_server, None, policy_public_key=public_key)
    assert problems == [
        f"{only_server}: policy_server_url: is set but no policy public key is; expected policy_public_key in the "
        "same file (with --policy-server: --public-key): bundles are verified against the pinned key before they "
        "are used"
    ]
    collector = write(tmp_path / "audit.toml", toml(audit_collector_url="https://audit.hospital.example/fhir"))
    ca = make_pki(tmp_path / "pki").ca_cert
    settings = load(collector, write(tmp_path / "user.toml", toml(audit_collector_ca_file=str(ca))), {})
    assert settings["audit_collector_ca_file"] is None and settings.source("audit_collector_ca_file") == DEFAULT


def test_the_shadow_period_is_it_s_with_the_policy_server(tmp_path: Path, public_key: Path) -> None:
    """A canary ward: IT holds new bundles in shadow for 48 h. A user can neither lengthen it (and
    so delay IT's policies) nor set it apart from IT's server; a wrong value names what is expected."""
    server = "https://policy.hospital.example/current.bundle"
    canary = write(
        tmp_path / "canary.toml",
        toml(policy_server_url=server, policy_public_key=str(public_key), policy_shadow_hours=48),
    )
    user = write(tmp_path / "user.toml", toml(policy_shadow_hours=720))
    settings = load(canary, user, {})
    assert settings["policy_shadow_hours"] == 48 and settings.source("policy_shadow_hours") == MANAGED
    plain = write(tmp_path / "plain.toml", toml(policy_server_url=server, policy_public_key=str(public_key)))
    settings = load(plain, user, {})
    assert settings["policy_shadow_hours"] == 0 and settings.source("policy_shadow_hours") == DEFAULT
    assert any("policy_shadow_hours is ignored: IT manages it" in note for note in settings.notes)
    assert load(None, None, {})["policy_shadow_hours"] == 0
    for wrong, problem in ((-1, "-1 is out of range"), (721, "721 is out of range"), ("48", "'48' is a string")):
        bad = write(tmp_path / "bad.toml", toml(policy_shadow_hours=wrong))
        assert refusal(bad) == [
            f"{bad}: policy_shadow_hours: {problem}{'' if 'range' in problem else ', not a whole number'}; "
            "expected whole hours from 0 to 720"
        ]


def test_a_shadow_period_without_a_policy_server_is_refused(tmp_path: Path) -> None:
    """Without a policy server the workstation runs its bundled demo policies, so a canary ward's
    shadow period alone would do nothing, silently: it is refused, saying what it needs; 0 is fine."""
    alone = write(tmp_path / "canary.toml", toml(policy_shadow_hours=48, hospital_id="h1"))
    assert refusal(alone) == [
        f"{alone}: policy_shadow_hours: is set but no policy server is: the shadow period holds that server's new "
        "bundles; expected policy_server_url and policy_public_key in the same file, or policy_shadow_hours = 0"
    ]
    user = write(tmp_path / "user.toml", toml(policy_shadow_hours=12))
    assert refusal(None, user)[0].startswith(f"{user}: policy_shadow_hours: is set but no policy server is")
    assert load(write(tmp_path / "zero.toml", toml(policy_shadow_hours=0)), None, {})["policy_shadow_hours"] == 0


def test_the_flags_alone_need_each_other(tmp_path: Path, public_key: Path) -> None:
    assert refusal(None, None, policy_server_url="http://127.0.0.1:9/current.bundle") == [
        "command line: --policy-server: is set but no policy public key is; expected policy_public_key too "
        "(with --policy-server: --public-key): bundles are verified against the pinned key before they are used"
    ]
    assert refusal(None, None, policy_public_key=public_key)[0].startswith(
        "command line: --public-key: is set but no policy server is; expected policy_server_url too"
    )
    settings = load(None, None, {"policy_server_url": "http://127.0.0.1:9/b", "policy_public_key": public_key})
    assert (
        settings.source("policy_server_url") == USER and settings.values["policy_public_key"].origin == "--public-key"
    )


def test_the_pinned_key_is_a_file_its_pem_or_its_base64_line(tmp_path: Path, public_key: Path) -> None:
    pem = public_key.read_text()
    line = "".join(pem.strip().splitlines()[1:-1])
    url = "https://policy.hospital.example/current.bundle"
    keys = [
        load(write(tmp_path / f"{i}.toml", toml(policy_server_url=url, policy_public_key=value)), None, {})[
            "policy_public_key"
        ]
        for i, value in enumerate([str(public_key), pem, line])
    ]
    assert len({k.fingerprint for k in keys}) == 1
    assert keys[0].path == public_key and keys[1].path is None
    assert str(keys[0]).startswith(f"{public_key} (SHA-256 ") and str(keys[2]).startswith("the key itself (SHA-256 ")


# -- refusals: each names the file (or flag), the key and what is expected ----------------------------

EXPECT = {s.key: s.expected for s in SCHEMA}


def bad_values(tmp_path: Path, public_key: Path) -> list[tuple[str, object, str]]:
    not_a_key = write(tmp_path / "not-a-key.pem", "hello\n")
    rsa_like = write(tmp_path / "cert.pem", (make_pki(tmp_path / "pki").ca_cert).read_text())
    return [
        (
            "policy_server_url",
            "ftp://policy.hospital.example/b",
            "'ftp://policy.hospital.example/b' does not start with http:// or https://",
        ),
        (
            "policy_server_url",
            "policy.hospital.example",
            "'policy.hospital.example' does not start with http:// or https://",
        ),
        ("policy_server_url", "https://", "'https://' names no host"),
        ("policy_server_url", "https://it:hunter2@policy.example/b", "it carries a user name or password"),
        ("policy_server_url", "https://policy.example:99999/b", "is not a valid URL"),
        ("policy_server_url", "https://policy example/b", "contains spaces"),
        ("policy_server_url", "", "it is empty"),
        ("policy_server_url", 8088, "8088 is an integer, not a string"),
        ("policy_public_key", str(tmp_path / "missing.key"), f"{tmp_path / 'missing.key'} does not exist"),
        ("policy_public_key", "keys/public.key", "'keys/public.key' is not an absolute path"),
        ("policy_public_key", str(tmp_path), f"{tmp_path} is a directory"),
        ("policy_public_key", str(not_a_key), f"{not_a_key} is not an Ed25519 public key"),
        ("policy_public_key", str(rsa_like), f"{rsa_like} is not an Ed25519 public key"),
        ("hospital_id", "h 1", "'h 1' has characters other than letters"),
        ("hospital_id", ["h1"], "['h1'] is a list, not a string"),
        ("workstation_id", "-ws", "'-ws' has characters other than letters"),
        ("ward", "x" * 81, "is longer than one line of 80 characters"),
        ("ward", 9, "9 is an integer, not a string"),
        ("idle_lock_minutes", 0, "0 is out of range"),
        ("idle_lock_minutes", 61, "61 is out of range"),
        ("idle_lock_minutes", 2.5, "2.5 is a decimal number, not a whole number"),
        ("idle_lock_minutes", "5", "'5' is a string, not a whole number"),
        ("idle_lock_minutes", True, "True is true/false, not a whole number"),
        ("audit_collector_url", "http://audit.hospital.example/fhir", "does not start with https:// or syslog-tls://"),
        ("audit_collector_url", "syslog-tls://audit.hospital.example", "is not syslog-tls://HOST:PORT"),
        ("audit_collector_ca_file", str(tmp_path / "no-ca.pem"), f"{tmp_path / 'no-ca.pem'} does not exist"),
        ("audit_collector_ca_file", str(not_a_key), f"{not_a_key} holds no PEM certificate"),
        ("sign_in_provider", "ldap", "'ldap' is not a sign-in provider"),
        ("oidc_issuer", "http://login.hospital.example", "is not https:// (plain http is only for a provider on"),
        ("oidc_issuer", "https://login.hospital.example/?realm=x", "has a query or fragment"),
        ("oidc_client_id", "ccc workstation", "has spaces or characters outside printable ASCII"),
        ("oidc_scopes", 'openid "profile"', "has a character a scope cannot have"),
        ("oidc_claim_roles", "roles of user", "is not a claim name"),
        ("pin_resume_hours", 25, "25 is out of range"),
        ("pin_resume_hours", "12", "'12' is a string, not a whole number"),
    ]


def test_every_wrong_value_names_the_file_the_key_and_what_is_expected(tmp_path: Path, public_key: Path) -> None:
    for i, (key, value, problem) in enumerate(bad_values(tmp_path, public_key)):
        for source in ("managed", "user"):
            path = write(tmp_path / source / f"{i}.toml", toml(**{key: value}))
            args = (path, None) if source == "managed" else (None, path)
            problems = refusal(*args)
            assert len(problems) == 1, problems
            prefix = f"{path}: {key}: "
            assert problems[0].startswith(prefix) and problem in problems[0], (problems[0], problem)
            assert problems[0].endswith(f"; expected {EXPECT[key]}"), problems[0]


def test_oidc_needs_its_provider_and_client_and_they_mean_nothing_for_the_demo(tmp_path: Path) -> None:
    path = write(tmp_path / "m.toml", toml(sign_in_provider="oidc"))
    assert refusal(path) == [
        f'{path}: sign_in_provider: is "oidc" but no oidc_issuer is set; expected oidc_issuer in the same file',
        f'{path}: sign_in_provider: is "oidc" but no oidc_client_id is set; expected oidc_client_id in the same file',
    ]
    demo = write(tmp_path / "demo.toml", toml(oidc_issuer="https://login.hospital.example"))
    assert refusal(demo) == [
        f"{demo}: oidc_issuer: is set but the sign-in provider is demo; "
        'expected sign_in_provider = "oidc" in the same file'
    ]
    full = write(
        tmp_path / "oidc.toml",
        toml(
            sign_in_provider="oidc",
            oidc_issuer="https://login.hospital.example/realms/ccc",
            oidc_client_id="ccc-workstation",
            oidc_scopes="profile ccc",
            oidc_claim_roles="ccc_roles",
        ),
    )
    settings = load(full, None, {})
    assert settings["oidc_scopes"] == ("openid", "profile", "ccc") and settings.values["oidc_scopes"].shown == (
        "openid profile ccc"
    )
    assert settings["oidc_claim_roles"] == "ccc_roles" and settings["oidc_claim_user_id"] == "preferred_username"
    # a user cannot point a managed workstation at another provider
    user = write(tmp_path / "data" / "settings.toml", toml(oidc_issuer="https://evil.example"))
    assert load(full, user, {})["oidc_issuer"] == "https://login.hospital.example/realms/ccc"
    local = write(tmp_path / "local.toml", toml(sign_in_provider="oidc", oidc_issuer="http://127.0.0.1:8080"))
    assert refusal(local) == [
        f'{local}: sign_in_provider: is "oidc" but no oidc_client_id is set; expected oidc_client_id in the same file'
    ]


def test_an_unknown_key_a_table_and_every_problem_at_once(tmp_path: Path) -> None:
    path = write(tmp_path / "m.toml", toml(idle_lock_minute=5, ward=4) + "[policy]\nurl = 'x'\n")
    problems = refusal(path)
    known = ", ".join(BY_KEY)
    assert problems == [
        f"{path}: idle_lock_minute: is not a setting (did you mean idle_lock_minutes?); expected one of {known}",
        f"{path}: ward: 4 is an integer, not a string; expected {EXPECT['ward']}",
        f"{path}: policy: is not a setting; expected one of {known}",
    ]


def test_malformed_unreadable_and_unsafe_files_are_refused(tmp_path: Path) -> None:
    malformed = write(tmp_path / "malformed.toml", 'ward = "Ward 9"\nidle_lock_minutes = \n')
    assert refusal(malformed) == [
        f"{malformed}: is not valid TOML (Invalid value (at line 2, column 21)); "
        'expected TOML lines such as key = "value"'
    ]
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('ward = "Station Süd"\n'.encode("latin-1"))
    assert refusal(latin1) == [f"{latin1}: is not UTF-8 text; expected a TOML file in UTF-8"]
    directory = tmp_path / "dir.toml"
    directory.mkdir()
    assert refusal(directory) == [f"{directory}: is not a file; expected a TOML file of settings"]
    open_to_all = write(tmp_path / "open.toml", toml(ward="Ward 9"))
    open_to_all.chmod(0o666)
    assert refusal(open_to_all) == [
        f"{open_to_all}: can be changed by every user of this computer; expected a file only its owner can write"
    ]
    user_file = write(tmp_path / "data" / "settings.toml", toml(ward="Ward 9"))
    user_file.chmod(0o606)
    assert refusal(None, user_file)[0].startswith(f"{user_file}: can be changed by every user")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_managed_file_is_refused_not_skipped(tmp_path: Path) -> None:
    unreadable = write(tmp_path / "m.toml", toml(ward="Ward 9"))
    unreadable.chmod(0)
    assert refusal(unreadable) == [f"{unreadable}: cannot be read (Permission denied); expected a readable TOML file"]
    hidden = write(tmp_path / "closed" / "managed.toml", toml(ward="Ward 9"))
    hidden.parent.chmod(0)
    try:  # a directory that cannot be searched: the file may be there, so it is not taken as absent
        assert refusal(hidden) == [f"{hidden}: cannot be read (Permission denied); expected a readable TOML file"]
    finally:
        hidden.parent.chmod(0o700)


def test_wrong_flags_name_the_flag(tmp_path: Path) -> None:
    assert refusal(None, None, idle_lock_minutes="ten") == [
        "command line: --idle-lock-minutes: 'ten' is not a whole number; expected whole minutes from 1 to 60"
    ]
    assert refusal(None, None, idle_lock_minutes="90")[0].startswith("command line: --idle-lock-minutes: 90 is out")
    problems = refusal(None, None, policy_server_url="ftp://x", policy_public_key=tmp_path / "none.key")
    assert problems[0].startswith("command line: --policy-server: 'ftp://x' does not start with http://")
    assert problems[1].startswith(f"command line: --public-key: {tmp_path / 'none.key'} does not exist; expected")


def test_describe_lists_each_setting_with_its_value_and_source(tmp_path: Path) -> None:
    managed = write(tmp_path / "m.toml", toml(ward="Cardiology ward 9"))
    text = describe(load(managed, None, {"idle_lock_minutes": "7"}))
    assert f"ward                     Cardiology ward 9  [managed ({managed})]" in text
    assert "idle_lock_minutes        7  [user (--idle-lock-minutes)]" in text
    assert "policy_server_url        none (the bundled demo policies)  [default]" in text


# -- what the settings drive: the status bar and the audit upload -------------------------------------


def test_the_status_bar_says_managed_by_it_and_why_the_upload_fails(tmp_path: Path) -> None:
    secrets = SecretStore(MemoryKeyring())
    assert StatusService(None, None, secrets, managed=True).status().text.endswith(" · managed by IT")
    assert "managed by IT" not in StatusService(None, None, secrets).status().text
    factory = shipper_factory("syslog-tls://127.0.0.1:9", None)
    shipper = factory(AuditChain(tmp_path / "audit.db"))
    shipper.last_error = "syslog-tls://127.0.0.1:9: connection refused"
    status = StatusService(None, shipper, secrets, managed=True).status()
    assert status.audit_backlog == 0
    assert status.text == (
        "Policies: built-in demo set · audit backlog: 0 · audit upload failing: "
        "syslog-tls://127.0.0.1:9: connection refused · managed by IT"
    )


def test_the_collector_url_chooses_fhir_or_syslog_checked_against_the_ca(tmp_path: Path, ca_file: Path) -> None:
    fhir = destination("https://audit.hospital.example/fhir", ca_file)
    assert isinstance(fhir, FhirHttpDestination) and fhir.base == "https://audit.hospital.example/fhir"
    syslog = destination("syslog-tls://audit.hospital.example:6514", ca_file)
    assert isinstance(syslog, SyslogTlsDestination) and (syslog.host, syslog.port) == ("audit.hospital.example", 6514)
    with pytest.raises(ValueError):
        destination("http://audit.hospital.example/fhir", None)
    chain = AuditChain(tmp_path / "audit.db", workstation_id="ward9-ws01")
    shipper = shipper_factory("https://audit.hospital.example/fhir", ca_file)(chain)
    # its own connection to the same log: the app's writes stay in their own transactions
    assert shipper.chain is not chain and shipper.chain.conn is not chain.conn and shipper.chain.path == chain.path
    assert shipper.chain.workstation_id == "ward9-ws01"


# -- the templates, generated from the schema ---------------------------------------------------------


def test_the_checked_in_templates_are_what_the_schema_generates() -> None:
    for name, content in rendered().items():
        path = TEMPLATES / name
        assert path.is_file(), f"{path} is missing: run python -m app.services.settings --write packaging/managed"
        assert path.read_bytes() == content, f"{path} is stale: run python -m app.services.settings --write {TEMPLATES}"
    assert sorted(str(p.relative_to(TEMPLATES)) for p in TEMPLATES.rglob("*") if p.is_file()) == sorted(rendered())


def test_the_generator_writes_and_checks_from_the_command_line(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.services.settings", *args], capture_output=True, text=True, cwd=ROOT
        )

    assert run("--check", str(TEMPLATES)).returncode == 0
    out = tmp_path / "managed"
    assert run("--write", str(out)).returncode == 0
    assert {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()} == rendered()
    (out / "managed.toml").write_text("# edited by hand\n")
    checked = run("--check", str(out))
    assert checked.returncode == 1 and f"{out / 'managed.toml'}: differs from the schema" in checked.stderr


def test_the_linux_file_documents_every_key_and_is_a_valid_empty_managed_file(tmp_path: Path) -> None:
    text = (TEMPLATES / "managed.toml").read_text()
    assert tomllib.loads(text) == {}  # every key commented out: installed as is, it manages nothing
    settings = load(TEMPLATES / "managed.toml", None, {})
    assert settings.managed_file == TEMPLATES / "managed.toml" and not settings.managed
    examples = tomllib.loads("\n".join(m.group(1) for m in re.finditer(r"^# (\w+ = .+)$", text, re.M)))
    assert list(examples) == list(BY_KEY)
    assert examples == {s.key: s.example for s in SCHEMA}
    for s in SCHEMA:
        assert s.expected.split()[0] in text and f"# Default: {s.default_text}." in text


def test_every_example_value_is_valid_once_its_files_exist(tmp_path: Path, public_key: Path, ca_file: Path) -> None:
    examples = {s.key: s.example for s in SCHEMA}
    examples.update(policy_public_key=str(public_key), audit_collector_ca_file=str(ca_file))
    settings = load(write(tmp_path / "m.toml", toml(**examples)), None, {})
    assert settings.managed_keys == list(BY_KEY)


def test_the_admx_and_adml_describe_every_setting(tmp_path: Path) -> None:
    admx = ET.parse(TEMPLATES / "windows" / "ccc-workstation.admx").getroot()
    adml = ET.parse(TEMPLATES / "windows" / "en-US" / "ccc-workstation.adml").getroot()
    strings = {s.get("id"): s.text for s in adml.iterfind(".//p:stringTable/p:string", ADMX_NS)}
    presentations = {p.get("id"): p for p in adml.iterfind(".//p:presentationTable/p:presentation", ADMX_NS)}
    policies = admx.findall(".//p:policies/p:policy", ADMX_NS)
    value_names = []
    for policy in policies:
        assert policy.get("class") == "Machine"
        assert policy.get("key") == r"Software\Policies\ConnectedCardiacCare\Workstation"
        name = policy.get("name")
        element = next(iter(policy.find("p:elements", ADMX_NS)))
        setting = BY_KEY[element.get("valueName")]
        value_names.append(setting.key)
        assert strings[name] == setting.title and setting.expected in strings[f"{name}_Explain"]
        assert name in presentations and presentations[name][0].get("refId") == element.get("id")
        if setting.kind in ("minutes", "hours"):
            assert element.tag.endswith("decimal")
            assert (element.get("minValue"), element.get("maxValue")) == (str(setting.minimum), str(setting.maximum))
        elif setting.kind == "choice":
            assert element.tag.endswith("enum")
            assert [v.text for v in element.iterfind(".//p:string", ADMX_NS)] == list(setting.choices)
        else:
            assert element.tag.endswith("text")
        for ref in (policy.get("displayName"), policy.get("explainText")):
            assert ref[len("$(string.") : -1] in strings
    assert value_names == list(BY_KEY)


def test_the_macos_profile_sets_every_setting_but_the_computer_s_own(tmp_path: Path) -> None:
    profile = plistlib.loads((TEMPLATES / "macos" / "ccc-workstation.mobileconfig").read_bytes())
    assert profile["PayloadType"] == "Configuration" and profile["PayloadScope"] == "System"
    (payload,) = profile["PayloadContent"]
    assert payload["PayloadType"] == settings_module.MACOS_DOMAIN
    values = {k: v for k, v in payload.items() if not k.startswith("Payload")}
    assert values == {s.key: s.example for s in SCHEMA if not s.per_computer}
    assert [s.key for s in SCHEMA if s.per_computer] == ["workstation_id"]
    assert profile["PayloadUUID"] != payload["PayloadUUID"]
