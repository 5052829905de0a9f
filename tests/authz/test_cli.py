"""``ccc-authz check`` as a whole process: JSON lines in, Cerbos-shaped responses out, and a
malformed line answered with an error while the stream goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from authz import cli
from authz.audit import AuditChain
from tests.authz.differential import random_requests

CLINIC = Path(__file__).parent / "policysets" / "clinic"

GOOD = {
    "requestId": "r1",
    "principal": {"id": "alice", "roles": ["user"], "attr": {}},
    "resources": [
        {"actions": ["view", "delete"], "resource": {"kind": "record", "id": "rec1", "attr": {"owner": "alice"}}}
    ],
}


def run_check(lines: list[str], *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authz.cli", "check", "--policies", str(CLINIC), *flags],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_one_response_per_line_and_errors_do_not_stop_the_stream() -> None:
    bad_shape = json.dumps({"principal": {"id": "x", "roles": []}, "resources": []})
    result = run_check([json.dumps(GOOD), "{not json", bad_shape, "", json.dumps(GOOD)])
    assert result.returncode == 0, result.stderr
    responses = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(responses) == 4
    first, broken, invalid, last = responses
    assert first["results"][0]["actions"] == {"delete": "EFFECT_DENY", "view": "EFFECT_ALLOW"}
    assert broken["message"] == "line 2: invalid character 'n' looking for beginning of object key string"  # Go's words
    assert invalid["message"] == "line 3: validation error: principal.roles: value is required"
    assert last["requestId"] == "r1"


def test_policy_errors_exit_3_with_positions(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  version: default\n"
        "  resource: x\n  rules:\n    - actions: [a]\n      effect: NOPE\n"
        "      roles: [r]\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "authz.cli", "check", "--policies", str(tmp_path)],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "bad.yaml:7:" in result.stderr


def test_a_policy_directory_that_is_missing_or_a_file_is_said_as_such(tmp_path: Path) -> None:
    """A file given for the directory (the bundle, the managed file) is not called missing."""
    (tmp_path / "policies.yaml").write_text("apiVersion: api.cerbos.dev/v1\n")
    for given, said in [("absent", "policy directory does not exist"), ("policies.yaml", "is not a directory")]:
        result = subprocess.run(
            [sys.executable, "-m", "authz.cli", "compile", str(tmp_path / given)], capture_output=True, text=True
        )
        assert result.returncode == 3 and f"{tmp_path / given}:1:1 {said}" in result.stdout + result.stderr


def test_a_caller_waiting_for_each_answer_gets_it_before_sending_the_next() -> None:
    """Answers are flushed whenever the input pauses, so ccc-authz check works as a co-process."""
    import select

    proc = subprocess.Popen(
        [sys.executable, "-m", "authz.cli", "check", "--policies", str(CLINIC)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for request_id in ("first", "second", "third"):
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps({**GOOD, "requestId": request_id}) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            assert ready, f"no answer to {request_id} while the caller waits"
            assert json.loads(proc.stdout.readline())["requestId"] == request_id
    finally:
        proc.kill()
        proc.wait()


def test_a_long_line_split_across_reads_and_a_last_line_without_newline(tmp_path: Path) -> None:
    big = {**GOOD, "requestId": "x" * 200_000}
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(big) + "\n\n" + json.dumps(GOOD))  # a blank line, no final newline
    with path.open() as stdin:
        result = subprocess.run(
            [sys.executable, "-m", "authz.cli", "check", "--policies", str(CLINIC)],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["requestId"] for a in answers] == ["x" * 200_000, "r1"]


def test_a_line_that_is_not_utf8_is_answered_with_an_error_and_the_stream_goes_on() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "authz.cli", "check", "--policies", str(CLINIC)],
        input=b'{"requestId": "\xff"}\n' + json.dumps(GOOD).encode() + b"\n",
        capture_output=True,
        timeout=60,
    )
    bad, good = (json.loads(line) for line in result.stdout.splitlines())
    assert bad == {"code": 3, "message": "line 1: proto:\u00a0syntax error (line 1:15): invalid UTF-8 in string"}
    assert good["requestId"] == "r1"


def _bulk_input(tmp_path: Path, count: int) -> tuple[Path, list[int]]:
    """``count`` clinic requests as a file, with a blank line and two malformed lines among them;
    returns the file and the line numbers of the malformed ones."""
    lines = [json.dumps(body) for body in random_requests("clinic", count, seed=5)]
    lines[10:10] = [""]
    lines.insert(200, "{not json")
    lines.insert(450, json.dumps({"principal": {"id": "x", "roles": []}, "resources": []}))
    path = tmp_path / "bulk.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, [201, 451]


def _without_call_ids(text: str) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "cerbosCallId"} for line in text.splitlines()]


def test_a_large_batch_shared_between_processes_is_answered_as_one_process_answers_it(tmp_path: Path) -> None:
    path, malformed = _bulk_input(tmp_path, 600)
    outputs = []
    for workers in ("1", "3"):
        with path.open() as stdin:
            result = subprocess.run(
                [sys.executable, "-m", "authz.cli", "check", "--policies", str(CLINIC), "--workers", workers],
                stdin=stdin,
                capture_output=True,
                text=True,
                timeout=120,
            )
        assert result.returncode == 0, result.stderr
        outputs.append(_without_call_ids(result.stdout))
    alone, shared = outputs
    assert len(shared) == 602  # one answer per non-blank line
    assert shared == alone
    assert [a["message"].split(":")[0] for a in shared if "message" in a] == [f"line {n}" for n in malformed]


def test_batch_answers_go_to_workers_and_come_back_in_input_order(monkeypatch) -> None:
    """The workers really answer (each answer here names the process that made it), and every
    answer is where its line was."""
    monkeypatch.setattr(cli, "_answer", lambda item, audited: (f"{item[0]}:{os.getpid()}".encode(), None))
    answers = cli.BatchAnswers(processes=3, audited=False)
    try:
        small = answers([(n, b"{}") for n in range(1, cli.PARALLEL_MIN_LINES)])
        large = answers([(n, b"{}") for n in range(1, 301)])
    finally:
        answers.close()
    assert {text.split(b":")[1] for text, _ in small} == {str(os.getpid()).encode()}  # no hand-off
    assert [int(text.split(b":")[0]) for text, _ in large] == list(range(1, 301))
    # the pool starts workers on demand and may give both shares to one of them when the first is
    # quick: at least one worker answered beside this process
    makers = {text.split(b":")[1] for text, _ in large}
    assert str(os.getpid()).encode() in makers and len(makers) >= 2


def test_audited_answers_from_several_processes_keep_one_intact_chain_in_input_order(tmp_path: Path) -> None:
    path, _ = _bulk_input(tmp_path, 300)
    db = tmp_path / "audit.db"
    with path.open() as stdin:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "authz.cli",
                "check",
                "--policies",
                str(CLINIC),
                "--workers",
                "2",
                "--audit",
                str(db),
            ],
            stdin=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    chain = AuditChain(db)
    assert chain.verify().ok
    decided = [a for a in answers if "results" in a]
    calls = [r.call_id for r in chain.records()]
    assert len(calls) == sum(len(res["actions"]) for a in decided for res in a["results"])
    assert list(dict.fromkeys(calls)) == [a["cerbosCallId"] for a in decided]  # records in answer order


def test_a_worker_that_dies_loses_no_answer(monkeypatch) -> None:
    """A worker killed mid-batch (here it exits on its first line): its share is answered by the
    main process, in order, and later batches stay in the main process."""
    parent = os.getpid()

    def answer(item: tuple[int, bytes], audited: bool) -> tuple[bytes, None]:
        if os.getpid() != parent:
            os._exit(1)
        return f"{item[0]}:{os.getpid()}".encode(), None

    monkeypatch.setattr(cli, "_answer", answer)
    answers = cli.BatchAnswers(processes=3, audited=False)
    try:
        first = answers([(n, b"{}") for n in range(1, 301)])
        later = answers([(n, b"{}") for n in range(301, 401)])
    finally:
        answers.close()
    assert [text for text, _ in first + later] == [f"{n}:{parent}".encode() for n in range(1, 401)]


def test_hostile_lines_are_each_answered_with_an_error_and_no_other_answer_is_lost(tmp_path: Path) -> None:
    """A batch large enough to be shared between processes, with a hostile line every few lines
    (a repeated key, NaN, a lone surrogate, a number past a double, nesting past the limit, a line
    past the size limit, a non-boolean includeMeta, an unknown auxData field): every line gets its
    answer, in order, with one process or several."""
    from authz import requestjson

    good = json.dumps(GOOD)
    hostile = [
        '{"principal":{"id":"a","roles":["u"]},"principal":{"id":"a","roles":["u"]},"resources":[]}',
        '{"principal":{"id":"a","roles":["u"],"attr":{"x":NaN}},"resources":[]}',
        '{"principal":{"id":"\\ud800","roles":["u"]},"resources":[]}',
        '{"principal":{"id":"a","roles":["u"],"attr":{"x":1e999}},"resources":[]}',
        '{"principal":{"id":"a","roles":["u"],"attr":{"x":' + "[" * 5000 + "]" * 5000 + "}}}",
        '{"requestId":"' + "x" * (requestjson.MAX_LINE_BYTES + 10) + '"}',
        good[:-1] + ',"includeMeta":"yes"}',
        good[:-1] + ',"auxData":{"foo":1}}',
    ]
    lines = []
    for i in range(300):
        lines.append(hostile[i % len(hostile)] if i % 3 == 1 else good)
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n")
    outputs = []
    for workers in ("1", "2"):
        with path.open() as stdin:
            result = subprocess.run(
                [sys.executable, "-m", "authz.cli", "check", "--policies", str(CLINIC), "--workers", workers],
                stdin=stdin,
                capture_output=True,
                text=True,
                timeout=300,
            )
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        outputs.append(_without_call_ids(result.stdout))
    alone, shared = outputs
    assert shared == alone
    assert len(alone) == len(lines)
    for number, (line, answer) in enumerate(zip(lines, alone, strict=True), start=1):
        if line == good:
            assert answer["requestId"] == "r1", (number, answer)
        else:
            assert answer["code"] in (3, 8) and answer["message"].startswith(f"line {number}: "), (number, answer)
    oversized = next(a for line, a in zip(lines, alone, strict=True) if len(line) > requestjson.MAX_LINE_BYTES)
    assert oversized["code"] == 8 and "received message larger than max" in oversized["message"]
