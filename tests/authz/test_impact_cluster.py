"""``ccc-authz impact --cluster``: a real Dask distributed scheduler and two worker processes on
127.0.0.1 (ephemeral ports), the log partitioned across them, and the report identical to the one
replayed on this machine alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from authz.cli import main
from tests.authz.differential import random_requests
from tests.authz.test_impact_cerbos import _changed_clinic
from tests.support.process import stop

ROOT = Path(__file__).resolve().parents[2]
DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]


def _wait_for(path: Path, process: subprocess.Popen[bytes], seconds: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Dask scheduler exited with status {process.returncode}")
        if path.exists():
            try:
                return dict(json.loads(path.read_text()))
            except ValueError:
                pass  # being written
        time.sleep(0.1)
    raise RuntimeError("the Dask scheduler did not start")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """A scheduler and two single-threaded worker processes, stopped after the test."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    scheduler_file = tmp_path / "scheduler.json"
    logs = (tmp_path / "dask.log").open("wb")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(
            subprocess.Popen(
                [
                    *DASK,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--no-dashboard",
                    "--scheduler-file",
                    str(scheduler_file),
                ],
                stdout=logs,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp_path,
            )
        )
        address = str(_wait_for(scheduler_file, processes[0])["address"])
        assert address.startswith("tcp://127.0.0.1:")
        for n in range(2):
            processes.append(
                subprocess.Popen(
                    [
                        *WORKER,
                        address,
                        "--host",
                        "127.0.0.1",
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--no-nanny",
                        "--name",
                        f"w{n}",
                        "--local-directory",
                        str(tmp_path / f"w{n}"),
                    ],
                    stdout=logs,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=tmp_path,
                )
            )
        _wait_for_workers(address, 2)
        yield address
    finally:
        for process in reversed(processes):
            stop(process)
        logs.close()


def _wait_for_workers(address: str, count: int) -> None:
    from distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(count, timeout=60)


def _remote_replayers() -> int:
    """On a worker: how many policy pairs it has compiled (1 once it has replayed a chunk)."""
    from authz import impact

    return len(impact._REMOTE)


def test_cluster_report_identical_to_one_machine(
    cluster: str, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    old, new = _changed_clinic(tmp_path)
    requests = tmp_path / "requests.jsonl"
    lines = [json.dumps(body) for body in random_requests("clinic", 3000, seed=5)]
    lines.insert(100, '{"principal": "cut')  # a malformed line is listed the same way by both
    requests.write_text("\n".join(lines) + "\n")
    base = ["impact", str(old), str(new), "--requests", str(requests), "--chunk-requests", "150"]
    reports = {}
    for name, extra in {"here": ["--workers", "1"], "cluster": ["--cluster", cluster]}.items():
        for fmt in ("json", "text"):
            code = main([*base, *extra, "--format", fmt])
            assert code == 5
            reports[name, fmt] = capsysbinary.readouterr().out
    assert reports["here", "json"] == reports["cluster", "json"]
    report = json.loads(reports["here", "json"])
    assert report["summary"]["malformed"] == 1 and len(report["flips"]) > 100
    # The text differs only where it says where it ran.
    here, there = (reports[n, "text"].decode().splitlines() for n in ("here", "cluster"))
    assert [a for a, b in zip(here, there, strict=True) if a != b] == [here[1]]
    assert here[1].endswith("on 1 process") and there[1].endswith(f"on Dask cluster at {cluster}")
    # Both workers took a share of the log.
    from distributed import Client

    with Client(cluster, timeout=30) as client:
        assert sorted(client.run(_remote_replayers).values()) == [1, 1]


def test_no_scheduler_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.cerbos_pdp import free_port

    old, new = _changed_clinic(tmp_path)
    requests = tmp_path / "requests.jsonl"
    requests.write_text(json.dumps(random_requests("clinic", 1)[0]) + "\n")
    address = f"tcp://127.0.0.1:{free_port()}"
    assert main(["impact", str(old), str(new), "--requests", str(requests), "--cluster", address]) == 2
    err = capsys.readouterr().err
    assert f"no Dask scheduler answers at {address}" in err and "Traceback" not in err
