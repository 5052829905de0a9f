"""What went wrong with the store's file, in words that say what and where: a full disk, a
read-only file system, a file or directory this account may not write, a failing disk, a damaged
file. SQLite says only "database or disk is full" or "attempt to write a readonly database", and
never which file; the store raises ``StoreError`` with the cause kept (``__cause__``)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

OPENING = "opening the store"
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DENIED_ERRNOS = (errno.EACCES, errno.EPERM)


class StoreError(Exception):
    """The store cannot be opened, read or written; the message says what, where and what to do.
    Nothing was changed by the failed operation (SQLite rolled it back)."""


def store_error(path: Path, exc: BaseException, doing: str) -> StoreError:
    """``doing``: what the store was asked, in words ("saving a note")."""
    code = getattr(exc, "sqlite_errorname", "") or ""
    number = getattr(exc, "errno", None)
    where = f"{doing}: the store at {path}"
    unsaved = "" if doing == OPENING else "; nothing was saved"
    if code == "SQLITE_FULL" or number in _FULL_ERRNOS:
        return StoreError(
            f"{where} cannot be written: the disk is full (free space on the file system holding {path.parent})"
            + unsaved
        )
    if number == errno.EROFS or code.startswith("SQLITE_READONLY"):
        return StoreError(f"{where} cannot be written: {_why_read_only(path)}{unsaved}")
    if number in _DENIED_ERRNOS or code.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return StoreError(f"{where} cannot be used: {_why_denied(path, exc)}")
    if code.startswith("SQLITE_IOERR") or number == errno.EIO:
        return StoreError(
            f"{where} cannot be used: a disk I/O error ({code or exc}): "
            "the disk may be failing or full, or the file too large"
        )
    if code in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return StoreError(f"{where} is damaged or not a store ({exc}): restore it from a backup")
    if isinstance(exc, OSError):
        return StoreError(f"{where}: {exc.strerror or exc}")
    return StoreError(f"{where}: {exc}")


def _why_read_only(path: Path) -> str:
    directory = path.parent
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return f"the file system holding {directory} is mounted read-only"
    except OSError:
        pass
    return _why_denied(path, None) or "SQLite opened it read-only"


def _why_denied(path: Path, exc: BaseException | None) -> str:
    """Which file or directory this account may not use (the first one found)."""
    for target in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        if target.exists() and not os.access(target, os.R_OK | os.W_OK):
            return f"permission denied: {target} is not readable and writable by this account"
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"permission denied: the directory {directory} is not writable by this account"
    if exc is None:
        return ""
    filename = getattr(exc, "filename", None)
    strerror = getattr(exc, "strerror", None)
    return f"{strerror or exc}" + (f" ({filename})" if filename else "")
