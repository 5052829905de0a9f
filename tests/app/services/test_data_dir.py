"""The data directory is its owner's alone (issue 16, part 2): after a real start of the app
(`python -m app.main`, with a policy server on 127.0.0.1 so the bundles are written too) the
directory and every directory in it are 0700 and every file 0600; a start on a directory another
account could read repairs it and says so, in the log and in the status bar. Before, the store and
the audit log were 0644 in a 0755 directory."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.main import start_workstation
from app.services.data_dir import own_data_directory
from app.services.settings import MANAGED_ENV, load_for_app
from app.services.workstation import BUNDLED_POLICIES
from authz.bundle import build_bundle, generate_keys, load_private_key
from authz.policy_server import serve_in_thread

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def policy_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    private, public = generate_keys(tmp_path / "keys")
    published = tmp_path / "published"
    published.mkdir()
    bundle = build_bundle(BUNDLED_POLICIES, load_private_key(private), 3, {}, created_at="2026-11-01T00:00:00+00:00")
    (published / "policies-v3.bundle").write_bytes(bundle)
    server, url = serve_in_thread(published)
    yield url, public
    server.shutdown()
    server.server_close()


def start_app(data: Path, server: tuple[str, Path], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A real start under the default umask (022): signs dr_aly in, renders, exits."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "CCC_DATA_DIR")}
    (tmp_path / "managed.toml").write_text("")  # IT manages nothing: never the machine's own file
    env.update(
        QT_QPA_PLATFORM="offscreen",
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
        **{MANAGED_ENV: str(tmp_path / "managed.toml")},
    )
    return subprocess.run(
        [sys.executable, "-m", "app.main", "--data-dir", str(data), "--policy-server", server[0]]
        + ["--public-key", str(server[1]), "--screenshot", str(tmp_path / "shot.png"), "--user", "dr_aly"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env=env,
        preexec_fn=lambda: os.umask(0o022),
    )


def modes(data: Path) -> dict[str, int]:
    """Every entry below ``data`` (and ``data`` itself as "."), with its permission bits."""
    found = {".": stat.S_IMODE(data.stat().st_mode)}
    for path in data.rglob("*"):
        found[str(path.relative_to(data))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def loosen(data: Path) -> None:
    for path in [data, *data.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def assert_owner_only(data: Path) -> None:
    found = modes(data)
    loose = {
        name: f"{mode:04o}" for name, mode in found.items() if mode != (0o700 if (data / name).is_dir() else 0o600)
    }
    assert not loose, f"readable by other accounts after a start: {loose}"
    for name in ("ccc.db", "audit.db", "bundles", "bundles/active.bundle"):
        assert name in found, f"{name} was not written: the start did not get as far as the test needs"


def test_a_real_start_leaves_the_data_directory_owner_only(tmp_path: Path, policy_server: tuple[str, Path]) -> None:
    data = tmp_path / "data"
    result = start_app(data, policy_server, tmp_path)
    assert result.returncode == 0, result.stderr
    assert_owner_only(data)
    assert "readable by other accounts" not in result.stderr  # a fresh start repairs nothing


def test_a_start_on_a_loosened_data_directory_repairs_it_and_says_so(
    tmp_path: Path, policy_server: tuple[str, Path]
) -> None:
    data = tmp_path / "data"
    assert start_app(data, policy_server, tmp_path).returncode == 0
    (data / "settings.toml").write_text('ward = "Ward 9"\n')
    (data / "exports").mkdir()
    (data / "exports" / "p01.json").write_text("{}")
    loosen(data)
    result = start_app(data, policy_server, tmp_path)
    assert result.returncode == 0, result.stderr
    assert_owner_only(data)
    for name in ("ccc.db", "audit.db", "settings.toml", "bundles/active.bundle", "exports/p01.json"):
        assert f"{data / name}: file was readable by other accounts (mode 0644); made 0600" in result.stderr
    assert f"{data}: directory was readable by other accounts (mode 0755); made 0700" in result.stderr


def test_the_status_bar_says_the_data_directory_was_repaired(tmp_path: Path, policy_server: tuple[str, Path]) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (tmp_path / "managed.toml").write_text("")
    flags = {"policy_server_url": policy_server[0], "policy_public_key": policy_server[1]}
    settings = load_for_app(data, flags, {MANAGED_ENV: str(tmp_path / "managed.toml")})
    workstation, _ = start_workstation(settings, data, BUNDLED_POLICIES, threading.Event(), background=False)
    text = workstation.status.status().text
    assert f"data directory repaired: {data}: directory was readable by other accounts (mode 0755)" in text
    assert_owner_only(data)
    again, _ = start_workstation(settings, data, BUNDLED_POLICIES, threading.Event(), background=False)
    assert "data directory repaired" not in again.status.status().text


def test_a_link_in_the_data_directory_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not the workstation's")
    outside.chmod(0o644)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "link").symlink_to(outside)
    assert own_data_directory(data) == []
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644
