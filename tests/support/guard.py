"""The audit guard (authz/guard.py) as a separate process on a Unix socket in a temporary
directory, as the Debian package runs it (there as its own OS user); stopped by the test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from authz.guard import GuardClient
from tests.support.process import stop

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running_guard(directory: Path) -> Iterator[GuardClient]:
    """A guard with its state in ``directory/state``; yields a client pinned to its public key."""
    from authz.bundle import load_public_key

    state, sock = directory / "state", directory / "guard.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "authz.guard", "--state", str(state), "--socket", str(sock)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_socket(process, sock)
        yield GuardClient(sock, load_public_key(state / "guard.pub"))
    finally:
        stop(process)  # type: ignore[arg-type]


def _wait_for_socket(process: subprocess.Popen[bytes], sock: Path, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the guard exited with status {process.returncode}: {process.stderr.read()!r}")  # type: ignore[union-attr]
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(sock))
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the guard did not start listening on {sock}")
