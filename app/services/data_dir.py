"""The workstation's data directory is its owner's alone: patient data, password hashes, the
audit log, the settings and the policy bundles live there.

At start, ``own_data_directory`` makes the process create every file owner-only from the start
(umask 077: SQLite's database and its -wal and -shm, the bundles, the settings, exports), creates
the directory 0700, and checks everything already in it: a directory looser than 0700 or a file
looser than 0600 (left by an earlier release, a copy, a restore or a hand) is repaired and named in
a warning, for the log and the status bar, so the user and IT see it happened. What cannot be
repaired (a file of another account) is a warning too; a symbolic link is never followed."""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

OWNER_ONLY_UMASK = 0o077
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600

log = logging.getLogger(__name__)


class DataDirectoryError(Exception):
    """The data directory cannot be created or used; the message says which and why."""


def own_data_directory(path: Path) -> list[str]:
    """Creates ``path`` (0700) or checks and repairs it and all it holds; returns the warnings,
    each naming the path and what was found. DataDirectoryError when it cannot be created."""
    os.umask(OWNER_ONLY_UMASK)  # the whole process: nothing it writes is meant for other accounts
    try:
        path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirectoryError(_cannot_create(path, exc)) from exc
    if not path.is_dir():
        raise DataDirectoryError(f"{path}: the data directory is not a directory: choose another (CCC_DATA_DIR)")
    warnings = [w for w in (_own(path, DIRECTORY_MODE),) if w]
    for root, directories, files in os.walk(path):  # (os.walk does not follow links to directories)
        for name in directories:
            warnings.append(_own(Path(root) / name, DIRECTORY_MODE))
        for name in files:
            warnings.append(_own(Path(root) / name, FILE_MODE))
    warnings = [w for w in warnings if w]
    for warning in warnings:
        log.warning("%s", warning)
    return warnings


def _own(path: Path, mode: int) -> str:
    """Repairs one entry's mode; a warning when it was looser than ``mode`` or cannot be made so."""
    try:
        info = path.lstat()
    except FileNotFoundError:  # gone meanwhile (SQLite's -journal, a rotated file)
        return ""
    if stat.S_ISLNK(info.st_mode):
        return ""  # never followed: a link's own mode means nothing, its target is not ours to change
    found = stat.S_IMODE(info.st_mode)
    if found & ~mode == 0:
        return ""
    kind = "directory" if stat.S_ISDIR(info.st_mode) else "file"
    if info.st_uid != os.geteuid():
        return f"{path}: a {kind} of another account (uid {info.st_uid}) with mode {found:04o}: ask IT to remove it"
    try:
        os.chmod(path, found & mode)
    except OSError as exc:
        return f"{path}: {kind} mode {found:04o} could not be made {mode:04o}: {exc.strerror or exc}"
    return f"{path}: {kind} was readable by other accounts (mode {found:04o}); made {found & mode:04o}"


def _cannot_create(path: Path, exc: OSError) -> str:
    where = f"{path}: the data directory cannot be created"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{where}: the disk is full"
    if exc.errno == errno.EROFS:
        return f"{where}: the file system is mounted read-only ({exc.filename or path})"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{where}: permission denied on {exc.filename or path}: choose another (CCC_DATA_DIR)"
    if isinstance(exc, FileExistsError):
        return f"{where}: {exc.filename or path} is a file, not a directory"
    return f"{where}: {exc.strerror or exc}"
