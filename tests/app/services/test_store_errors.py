"""The store on a full disk, a read-only file system and a directory it may not write (issue 16,
part 8): each says what was being done, where, and why, with SQLite's own error kept as the
cause; the store is left as it was, and works again once the fault is gone. Before, SQLite's
"database or disk is full" reached the user without a word of where, and the app's start ended in
a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.services.demo_data import generate
from app.services.store import Store, StoreError
from tests.support.disks import ROOT, file_size_limit, fill, remount_read_only, small_disk, unprivileged

REPO = Path(__file__).resolve().parents[3]
DEMO = generate(patients_per_hospital=2)


def note(n: int) -> dict[str, object]:
    return {
        "id": f"n-disk-{n}",
        "patient_id": DEMO.patients[0]["id"],
        "author_id": "dr_aly",
        "note_type": "progress",
        "time": f"2026-11-02T10:{n % 60:02d}:00+00:00",
        "text": "x" * 4000,
    }


def notes_of(store: Store) -> int:
    return len(store.notes_for(DEMO.patients[0]["id"]))


def test_disk_full_saving_a_note_says_the_disk_is_full_and_where(tmp_path: Path) -> None:
    if ROOT:
        with small_disk(tmp_path / "disk") as disk:
            store = Store(disk / "data" / "ccc.db", DEMO)
            before = notes_of(store)
            filler = fill(disk)
            with pytest.raises(StoreError) as failed:
                for n in range(1000):  # (the first may still fit in a free page)
                    store.add_note(note(n))
            message = str(failed.value)
            assert message.startswith(f"saving a note: the store at {disk / 'data' / 'ccc.db'} cannot be written")
            assert f"the disk is full (free space on the file system holding {disk / 'data'})" in message
            assert isinstance(failed.value.__cause__, sqlite3.OperationalError)
            assert failed.value.__cause__.sqlite_errorname == "SQLITE_FULL"
            saved = notes_of(store) - before
            filler.unlink()  # space again: the store goes on, nothing half-written
            store.add_note(note(5000))
            assert notes_of(store) == before + saved + 1
            store.close()
        return
    store = Store(tmp_path / "data" / "ccc.db", DEMO)  # without root: no file may grow (EFBIG)
    with file_size_limit(0), pytest.raises(StoreError) as failed:
        store.add_note(note(1))
    assert f"saving a note: the store at {tmp_path / 'data' / 'ccc.db'}" in str(failed.value)
    store.add_note(note(2))
    store.close()


def test_read_only_store_is_refused_at_start_saying_the_file_system_is_read_only(tmp_path: Path) -> None:
    """The data directory's file system mounted read-only (a failing disk remounted by the kernel,
    a snapshot): the store cannot keep anything, and says so and where."""
    with small_disk(tmp_path / "disk") as disk:
        path = disk / "data" / "ccc.db"
        Store(path, DEMO).close()
        remount_read_only(disk)
        try:
            with pytest.raises(StoreError) as refused:
                Store(path, DEMO)
        finally:
            remount_read_only(disk, False)
    assert str(refused.value) == (
        f"opening the store: the store at {path} cannot be written: "
        f"the file system holding {path.parent} is mounted read-only"
    )
    assert isinstance(refused.value.__cause__, OSError)


OPEN_STORE = """
import sys
from pathlib import Path
from app.services.store import Store, StoreError
try:
    Store(Path(sys.argv[1]))
except StoreError as exc:
    print(exc)
    sys.exit(3)
"""


def test_permission_denied_opening_the_store_names_the_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)
    result = subprocess.run(
        unprivileged([sys.executable, "-c", OPEN_STORE, str(locked / "data" / "ccc.db")]),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout.strip() == (
        f"opening the store: the store at {locked / 'data' / 'ccc.db'} cannot be used: "
        f"permission denied: the directory {locked} is not writable by this account"
    )


def test_disk_full_at_start_the_app_says_so_and_where(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        data = disk / "data"
        data.mkdir(mode=0o700)
        fill(disk)
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        (tmp_path / "managed.toml").write_text("")
        env.update(QT_QPA_PLATFORM="offscreen", CCC_MANAGED_CONFIG=str(tmp_path / "managed.toml"))
        result = subprocess.run(
            [sys.executable, "-m", "app.main", "--data-dir", str(data), "--screenshot", str(tmp_path / "s.png")],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
            env=env,
        )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"CCC Workstation cannot start: opening the store: the store at {data / 'ccc.db'} cannot be written: " in (
        result.stderr
    )
    assert "the disk is full" in result.stderr
