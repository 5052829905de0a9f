"""Starting and stopping the real servers tests use (rsyslog, nginx) on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import time


def wait_listening(process: subprocess.Popen[bytes], port: int, what: str, seconds: float = 15.0) -> None:
    """Returns once ``process`` accepts connections on 127.0.0.1:port; raises if it dies or stalls."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start listening on 127.0.0.1:{port}")


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str] | None, grace: float = 10) -> None:
    """SIGTERM, ``grace`` seconds to exit, then SIGKILL; a process already ended is left alone."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
