"""``ccc-authz check`` as a whole process: JSON lines in, Cerbos-shaped responses out, and a
malformed line answered with an error while the stream goes on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CLINIC = Path(__file__).parent / "policysets" / "clinic"

GOOD = {"requestId": "r1", "principal": {"id": "alice", "roles": ["user"], "attr": {}},
        "resources": [{"actions": ["view", "delete"],
                       "resource": {"kind": "record", "id": "rec1", "attr": {"owner": "alice"}}}]}


def run_check(lines: list[str], *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "authz.cli", "check", "--policies", str(CLINIC), *flags],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60)


def test_one_response_per_line_and_errors_do_not_stop_the_stream() -> None:
    bad_shape = json.dumps({"principal": {"id": "x", "roles": []}, "resources": []})
    result = run_check([json.dumps(GOOD), "{not json", bad_shape, "", json.dumps(GOOD)])
    assert result.returncode == 0, result.stderr
    responses = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(responses) == 4
    first, broken, invalid, last = responses
    assert first["results"][0]["actions"] == {"delete": "EFFECT_DENY", "view": "EFFECT_ALLOW"}
    assert broken["message"].startswith("line 2: invalid JSON")
    assert invalid["message"] == "line 3: validation error: principal.roles: value is required"
    assert last["requestId"] == "r1"


def test_policy_errors_exit_3_with_positions(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  version: default\n"
                                       "  resource: x\n  rules:\n    - actions: [a]\n      effect: NOPE\n"
                                       "      roles: [r]\n")
    result = subprocess.run([sys.executable, "-m", "authz.cli", "check", "--policies", str(tmp_path)],
                            input="", capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "bad.yaml:7:" in result.stderr
