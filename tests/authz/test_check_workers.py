"""``ccc-authz check --workers N`` as a caller runs it, then killed: its forked workers must die
with it and the caller's pipe must close (issue 16, part 6). Before, after ``kill -9`` or SIGTERM
of the parent, a worker blocked on the pool's queue lived on, holding the caller's stdout open
(the caller waited forever) and the audit database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tests.authz.differential import random_requests

CLINIC = Path(__file__).parent / "policysets" / "clinic"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes from /proc (Linux)")


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (state first), or None when gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def _children(parent: int) -> dict[int, str]:
    """The processes whose parent is ``parent``, with their start times (to tell a reused pid)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and int(fields[1]) == parent:
            found[int(entry.name)] = fields[19]
    return found


def _alive(pid: int, started: str) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[19] == started and fields[0] not in ("Z", "X")


def _lines(count: int, seed: int) -> bytes:
    return ("\n".join(json.dumps(body) for body in random_requests("clinic", count, seed=seed)) + "\n").encode()


def _read_lines(stream, count: int, timeout: float) -> list[bytes]:  # noqa: ANN001
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.extend(stream.readline() for _ in range(count)), daemon=True)
    reader.start()
    reader.join(timeout)
    assert not reader.is_alive(), f"only {len(got)} of {count} answers within {timeout} s"
    return got


def _read_to_end(stream, timeout: float) -> bool:  # noqa: ANN001
    """Whether reading ``stream`` reaches its end of file within ``timeout`` seconds."""
    done = threading.Event()

    def drain() -> None:
        while stream.read(65536):
            pass
        done.set()

    threading.Thread(target=drain, daemon=True).start()
    return done.wait(timeout)


def _feed(stream, data: bytes) -> None:  # noqa: ANN001
    try:
        stream.write(data)
        stream.flush()
    except (BrokenPipeError, ValueError):  # the parent was killed meanwhile
        pass


def _start_with_busy_workers(tmp_path: Path) -> tuple[subprocess.Popen[bytes], dict[int, str]]:
    """``check --workers 3 --audit`` fed through a pipe: a first large batch (answered, so the
    workers are there), then a larger one the workers are busy with when the test strikes."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "authz.cli", "check", "--policies", str(CLINIC), "--workers", "3"]
        + ["--audit", str(tmp_path / "audit.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    threading.Thread(target=_feed, args=(proc.stdin, _lines(400, seed=11)), daemon=True).start()
    answers = _read_lines(proc.stdout, 400, timeout=60)
    assert all(b'"results"' in a for a in answers)
    workers = _children(proc.pid)
    assert len(workers) == 2, f"expected two forked workers, found {workers}"
    # A larger batch, written from a thread (no one reads its answers: once the pipes are full, the
    # parent blocks writing them and the writer blocks too), for the workers to be busy with.
    threading.Thread(target=_feed, args=(proc.stdin, _lines(4000, seed=12)), daemon=True).start()
    time.sleep(0.3)
    return proc, workers


def _assert_gone(proc: subprocess.Popen[bytes], workers: dict[int, str]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid, t) for pid, t in workers.items()):
        time.sleep(0.05)
    left = [pid for pid, t in workers.items() if _alive(pid, t)]
    for pid in left:  # (clean up after a failure)
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their parent"
    assert proc.stdout is not None
    assert _read_to_end(proc.stdout, timeout=10), "the caller's pipe stayed open after the parent died"


def test_worker_dies_with_parent_sigkill(tmp_path: Path) -> None:
    proc, workers = _start_with_busy_workers(tmp_path)
    proc.kill()
    assert proc.wait(timeout=10) == -signal.SIGKILL
    _assert_gone(proc, workers)


def test_worker_ended_by_parent_on_sigterm(tmp_path: Path) -> None:
    proc, workers = _start_with_busy_workers(tmp_path)
    proc.terminate()
    assert proc.wait(timeout=10) == -signal.SIGTERM  # it dies of the signal, having ended its workers
    _assert_gone(proc, workers)


def test_worker_dies_with_parent_sigkill_by_the_watched_pipe_alone(tmp_path: Path) -> None:
    """The portable fallback: without Linux's death signal, a worker still exits when its parent
    is killed, because the pipe only the parent held reaches its end of file."""
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import multiprocessing, os, sys, time
            from concurrent.futures import ProcessPoolExecutor
            from authz.workers import ParentLink

            def busy(n):
                time.sleep(0.2)
                return os.getpid()

            if __name__ == "__main__":
                link = ParentLink(death_signal=False)
                ctx = multiprocessing.get_context("fork")
                pool = ProcessPoolExecutor(2, mp_context=ctx, initializer=link.in_worker)
                list(pool.map(busy, range(4)))
                sys.stdout.write("ready\\n")
                sys.stdout.flush()
                time.sleep(600)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert proc.stdout is not None
    assert _read_lines(proc.stdout, 1, timeout=60) == [b"ready\n"]
    workers = _children(proc.pid)
    assert len(workers) == 2
    proc.kill()
    proc.wait(timeout=10)
    _assert_gone(proc, workers)
