"""`ccc-workstation --screenshot FILE --user ID` as the README prints it: a user it cannot sign in
fails (exit 2, saying why, no PNG) rather than writing a picture of the sign-in screen saying
"Sign-in failed: check the user and the password" with exit 0, which passes for the user's view."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.services.settings import MANAGED_ENV

ROOT = Path(__file__).resolve().parents[2]


def screenshot(tmp_path: Path, user: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.main", "--data-dir", str(tmp_path / "data")]
        + ["--screenshot", str(tmp_path / "shot.png"), "--user", user],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen", MANAGED_ENV: str(tmp_path / "none.toml"), **env},
    )


def test_an_unknown_demo_user_fails_the_screenshot(tmp_path: Path) -> None:
    (tmp_path / "none.toml").write_text("")
    result = screenshot(tmp_path, "dr_alx")
    assert result.returncode == 2, result.stderr
    assert "ccc-workstation: --user dr_alx: no such demo user" in result.stderr
    assert not (tmp_path / "shot.png").exists()


def test_with_the_hospital_s_provider_user_says_it_signs_in_demo_users_only(tmp_path: Path) -> None:
    (tmp_path / "none.toml").write_text(
        'sign_in_provider = "oidc"\noidc_issuer = "http://127.0.0.1:9/realms/ccc"\noidc_client_id = "ccc-workstation"\n'
    )
    result = screenshot(tmp_path, "dr_aly")
    assert result.returncode == 2, result.stderr
    assert "--screenshot --user signs in demo users only" in result.stderr and "leave --user out" in result.stderr
    assert not (tmp_path / "shot.png").exists()
