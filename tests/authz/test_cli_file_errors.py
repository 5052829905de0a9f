"""``ccc-authz`` on a full disk, a read-only file system and a directory it may not write (issue
16, part 8): one line naming the file (or its output) and the reason, exit 74, never a
traceback. Before, each was an OSError traceback."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from authz.bundle import generate_keys
from tests.support.disks import ROOT, fill, remount_read_only, small_disk, unprivileged

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_keys(tmp_path_factory.mktemp("keys"))[0]


def build(key: Path, out: Path, command: list[str] | None = None, **kw: object) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "authz.cli", "bundle", "build", str(POLICIES), "--key", str(key)]
    args += ["--version", "1", "--out", str(out)]
    return subprocess.run(
        (command or []) + args,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        **kw,  # type: ignore[arg-type]
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 74, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in result.stderr.splitlines()


def test_disk_full_bundle_build_names_the_bundle_file(key: Path, tmp_path: Path) -> None:
    if not ROOT:  # the nearest thing without root: no file may grow past 1 KiB
        out = tmp_path / "v1.bundle"

        def limit() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))

        result = build(key, out, preexec_fn=limit)
        assert_one_clear_line(result, f"ccc-authz bundle: {out}: the file is larger than this process may write")
        return
    with small_disk(tmp_path / "disk") as disk:
        fill(disk)
        result = build(key, disk / "v1.bundle")
    assert_one_clear_line(result, f"ccc-authz bundle: {disk / 'v1.bundle'}: the disk is full")


def test_disk_full_output_of_compile_says_its_output_cannot_be_written(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        fill(disk)
        with (disk / "report.txt").open("w") as report:
            result = subprocess.run(
                [sys.executable, "-m", "authz.cli", "compile", str(POLICIES)],
                stdout=report,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
                timeout=120,
            )
    assert_one_clear_line(result, "ccc-authz compile: writing its output: the disk is full")


def test_read_only_file_system_bundle_build_says_read_only(key: Path, tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        remount_read_only(disk)
        try:
            result = build(key, disk / "v1.bundle")
        finally:
            remount_read_only(disk, False)
    assert_one_clear_line(result, f"ccc-authz bundle: {disk / 'v1.bundle'}: the file system is mounted read-only")


def test_permission_denied_bundle_build_names_the_file(key: Path, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    result = build(key, locked / "v1.bundle", command=unprivileged([]))
    assert_one_clear_line(result, f"ccc-authz bundle: {locked / 'v1.bundle'}: permission denied")
