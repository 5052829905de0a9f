"""The real Cerbos PDP, our test oracle: finds (or fetches) the binary and runs ``cerbos server``
on 127.0.0.1 with ephemeral ports, and ``cerbos compile``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.process import stop

ROOT = Path(__file__).resolve().parents[2]
VERSION = os.environ.get("CERBOS_VERSION", "0.55.0")


def cerbos_binary() -> Path:
    """The Cerbos binary in the git-ignored cache, fetched from the npm registry on first use."""
    path = ROOT / ".cache" / "cerbos" / VERSION / "cerbos"
    if not path.exists():
        subprocess.run(["bash", str(ROOT / "scripts" / "fetch-cerbos")], check=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compile_dir(policy_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cerbos_binary()), "compile", *extra, str(policy_dir)], capture_output=True, text=True, timeout=120
    )


class CerbosPDP:
    """A real ``cerbos server`` on loopback, stopped by ``stop()`` (or as a context manager)."""

    def __init__(
        self,
        policy_dir: Path,
        strict: bool = True,
        globals_: dict[str, Any] | None = None,
        lenient_scope_search: bool = False,
        schema_enforcement: str = "none",
    ) -> None:
        self.policy_dir = policy_dir
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.workdir = tempfile.TemporaryDirectory(prefix="cerbos-")
        self.settings = (strict, globals_ or {}, lenient_scope_search, schema_enforcement)
        self.config_path = Path(self.workdir.name) / "config.yaml"
        self._write_config()
        self.process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        strict, globals_, lenient_scope_search, schema_enforcement = self.settings
        config = {
            "server": {
                "httpListenAddr": f"127.0.0.1:{self.http_port}",
                "grpcListenAddr": f"127.0.0.1:{self.grpc_port}",
            },
            "storage": {"driver": "disk", "disk": {"directory": str(self.policy_dir), "watchForChanges": False}},
            "engine": {"strictEvaluation": strict, "globals": globals_, "lenientScopeSearch": lenient_scope_search},
            "schema": {"enforcement": schema_enforcement},
            "audit": {"enabled": False},
            "telemetry": {"disabled": True},
        }
        self.config_path.write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def start(self, attempts: int = 3) -> CerbosPDP:
        """Starts the server; a port taken in the meantime by another process means a retry."""
        for attempt in range(attempts):
            try:
                return self._start()
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                self._stop_process()
                self.http_port, self.grpc_port = free_port(), free_port()
                self._write_config()
        raise AssertionError("unreachable")

    def _start(self) -> CerbosPDP:
        self.log = open(Path(self.workdir.name) / "cerbos.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(cerbos_binary()), "server", f"--config={self.config_path}", "--log-level=error"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CERBOS_NO_TELEMETRY": "1"},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cerbos server exited: {self.logs()}")
            try:
                if self.client.get("/_cerbos/health").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"cerbos server did not become healthy: {self.logs()}")

    def logs(self) -> str:
        try:
            return (Path(self.workdir.name) / "cerbos.log").read_text()[-4000:]
        except OSError:
            return ""

    def check(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post("/api/check/resources", content=json.dumps(body))
        return response.json()

    def stop(self) -> None:
        self.client.close()
        self._stop_process()
        self.workdir.cleanup()

    def _stop_process(self) -> None:
        stop(self.process)
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self) -> CerbosPDP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
