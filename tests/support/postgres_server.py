"""A real PostgreSQL server for tests: Debian's binaries, a temporary data directory, listening on
127.0.0.1 on an ephemeral port, stopped (and its directory removed) by ``stop()``.

PostgreSQL refuses to run as root, as CI runs the tests: then the server runs as the ``postgres``
account Debian's package creates, through ``runuser``. The cluster uses the C locale, so text
compares by code point, as CEL compares strings.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.cerbos_pdp import free_port
from tests.support.process import stop

USER = "tester"


def server_binaries() -> Path:
    """The newest installed major version's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL's server is not installed: run scripts/system-deps (postgresql)")
    return Path(found[-1]).parent


class PostgresServer:
    def __init__(self) -> None:
        self.bin = server_binaries()
        self.tmp = Path(tempfile.mkdtemp(prefix="pg-test-"))
        self.data = self.tmp / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.as_root = os.geteuid() == 0

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self.as_root else list(args)

    def start(self) -> PostgresServer:
        if self.as_root:
            shutil.chown(self.tmp, "postgres", "postgres")
        subprocess.run(
            self._command(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                USER,
                "-A",
                "trust",
                "--locale=C",
                "-E",
                "UTF8",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.log = open(self.tmp / "server.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            self._command(
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.tmp),
                "-c",
                "fsync=off",
            ),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.tmp / 'server.log').read_text()[-2000:]}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
            )
            if ready.returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError("postgres did not become ready")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        stop(self.process, grace=30)  # SIGTERM is a smart shutdown; runuser passes the signal on
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
