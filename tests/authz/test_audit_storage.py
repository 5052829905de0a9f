"""The audit log's own files and storage (issue 16, parts 2 and 8): created for their owner only,
and a full disk, a read-only store or a permission problem each named with the place, never
"cannot rollback - no transaction is active".

The disk is filled for real: a small tmpfs when root (as on CI), else a file-size limit
(RLIMIT_FSIZE) on a child process. The read-only store is a tmpfs remounted read-only when
root; permission denied is an immutable file (chattr +i stops root too) or, for a user, mode 0444."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from authz.audit import AuditChain, AuditRecord, AuditWriteError

ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0


def _record(i: int) -> AuditRecord:
    return AuditRecord("decision", "dr_aly", "view", ["physician"], "patient_record", f"p{i}", justification="x" * 500)


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)], check=False)
    return done.returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 192 KiB file system, mounted for this test and unmounted after."""
    where = tmp_path / "disk"
    if not IS_ROOT or not _mount_tmpfs(where, "192k"):
        if os.environ.get("CI"):
            pytest.fail("CI runs as root and must be able to mount a tmpfs for the full-disk test")
        pytest.skip("not root: the full disk is tested with RLIMIT_FSIZE instead")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_audit_files_are_created_for_their_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        chain = AuditChain(tmp_path / "data" / "audit.db")
        chain.append(_record(1))
        for name in ("audit.db", "audit.db-wal", "audit.db-shm"):
            mode = stat.S_IMODE((tmp_path / "data" / name).stat().st_mode)
            assert mode == 0o600, f"{name} is {oct(mode)}"
        chain.close()
    finally:
        os.umask(old)


def test_an_existing_log_readable_by_others_is_narrowed(tmp_path: Path) -> None:
    AuditChain(tmp_path / "audit.db").close()
    (tmp_path / "audit.db").chmod(0o644)
    AuditChain(tmp_path / "audit.db").close()
    assert stat.S_IMODE((tmp_path / "audit.db").stat().st_mode) == 0o600


def test_disk_full_says_so_and_where(small_disk: Path) -> None:
    chain = AuditChain(small_disk / "audit.db")
    with pytest.raises(AuditWriteError) as caught:
        for i in range(10_000):
            chain.append(_record(i))
    message = str(caught.value)
    assert "disk is full" in message and str(small_disk) in message, message
    assert "no transaction is active" not in message
    assert chain.verify().ok  # what was committed before stays a valid chain
    chain.close()


CHILD = """
import resource, signal, sys
from authz.audit import AuditChain, AuditRecord, AuditWriteError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
chain = AuditChain(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
try:
    for i in range(10_000):
        chain.append(AuditRecord("decision", "dr", "view", justification="x" * 500))
except AuditWriteError as exc:
    print(exc)
"""


def test_file_size_limit_says_what_and_where(tmp_path: Path) -> None:
    """The same without a mount: the write fails as on a full disk (EFBIG), in a child process."""
    db = tmp_path / "audit.db"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(db)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert f"the audit log at {db} cannot be written" in done.stdout, done.stdout + done.stderr
    assert "no transaction is active" not in done.stdout
    assert "Traceback" not in done.stderr


def test_read_only_store_says_so_and_where(tmp_path: Path) -> None:
    where = tmp_path / "ro"
    mounted = IS_ROOT and _mount_tmpfs(where, "1m")
    if not mounted and os.environ.get("CI"):
        pytest.fail("CI runs as root and must be able to mount a tmpfs for the read-only store test")
    where.mkdir(exist_ok=True)
    try:
        chain = AuditChain(where / "audit.db")
        chain.append(_record(1))
        chain.close()
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        else:
            (where / "audit.db").chmod(0o444)
            where.chmod(0o555)
        with pytest.raises(AuditWriteError) as caught:
            AuditChain(where / "audit.db").append(_record(2))
        message = str(caught.value)
        assert str(where / "audit.db") in message, message
        assert ("mounted read-only" if mounted else "not writable") in message, message
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], check=False)
        else:
            where.chmod(0o755)


def test_permission_denied_says_so_and_where(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    chain = AuditChain(db)
    chain.append(_record(1))
    chain.close()
    immutable = IS_ROOT and shutil.which("chattr") is not None
    if immutable:
        subprocess.run(["chattr", "+i", str(db)], check=True)
    else:
        db.chmod(0o444)
    try:
        with pytest.raises(AuditWriteError) as caught:
            AuditChain(db).append(_record(2))
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(db)], check=True)
    message = str(caught.value)
    assert f"permission denied: {db} is not writable by this user" in message, message
