"""Real storage faults for tests: a small tmpfs filled up (disk full), remounted read-only, and a
process that obeys permission bits even as root (permission denied).

CI runs as root on a fresh machine, so the faults are real mounts there; a developer's run as
another user gets what works without root (a file size limit for a full disk, a directory it may
not write), or a skip that says why. In CI (``CI`` set) a missing capability fails, never skips."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = os.geteuid() == 0
# Root without the capabilities that let it ignore permission bits (util-linux's setpriv).
AS_UNPRIVILEGED_ROOT = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all"]


def skip_unless(condition: bool, why: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI runs as root with mount and setpriv: this must not be skipped there)")
    pytest.skip(why)


@contextlib.contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` (root only), unmounted afterwards."""
    skip_unless(ROOT, "mounting a small file system needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True
    )
    skip_unless(mounted.returncode == 0, f"cannot mount a tmpfs here (no CAP_SYS_ADMIN?): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Fills ``disk`` to the last byte with one file; returns it (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = b"\0" * 65536
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    finally:
        os.close(fd)
    return filler


def remount_read_only(disk: Path, read_only: bool = True) -> None:
    option = "remount,ro" if read_only else "remount,rw"
    subprocess.run(["mount", "-o", option, str(disk)], check=True)


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Without root, the nearest thing to a full disk: no file may grow past ``limit`` bytes
    (EFBIG; SIGXFSZ ignored so the write fails instead of killing the process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def unprivileged(command: list[str]) -> list[str]:
    """``command`` as a process that permission bits apply to: as it is when not root; as root,
    without the capabilities that override them."""
    if not ROOT:
        return command
    skip_unless(shutil.which("setpriv") is not None, "setpriv (util-linux) is needed to drop root's override")
    return [*AS_UNPRIVILEGED_ROOT, *command]
