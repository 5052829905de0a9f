"""``ccc-authz impact``: request lines, audit logs and their exports, bundles, the accept file,
the reports (text, JSON, HTML) and every kind of bad input. The policy sets are small and made
here, so each expected flip is plain from the change."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from authz import Engine
from authz.audit import AuditChain
from authz.cli import main

OLD_CHART = """apiVersion: api.cerbos.dev/v1
resourcePolicy:
  resource: chart
  version: default
  rules:
    - name: nurses_view
      actions: ["view"]
      effect: EFFECT_ALLOW
      roles: ["nurse", "physician"]
    - name: physicians_history
      actions: ["view_history"]
      effect: EFFECT_ALLOW
      roles: ["physician"]
      output:
        when:
          ruleActivated: '{"audit_flag": "none"}'
    - name: own_ward_notes
      actions: ["edit"]
      effect: EFFECT_ALLOW
      roles: ["nurse"]
      condition:
        match:
          expr: R.attr.ward == P.attr.ward
"""
# The change: physicians lose the history, clerks gain the view, the history's output changes.
NEW_CHART = (
    OLD_CHART.replace('roles: ["nurse", "physician"]', 'roles: ["nurse", "physician", "clerk"]')
    .replace(
        '      roles: ["physician"]\n',
        '      roles: ["physician"]\n      condition:\n        match:\n          expr: R.attr.ward == P.attr.ward\n',
    )
    .replace('"audit_flag": "none"', '"audit_flag": "history"')
)


def _request(
    pid: str,
    roles: list[str],
    actions: list[str],
    ward: str = "w1",
    rward: str = "w1",
    kind: str = "chart",
    rid: str = "c1",
) -> dict[str, Any]:
    return {
        "principal": {"id": pid, "roles": roles, "attr": {"ward": ward}},
        "resources": [
            {"actions": actions, "resource": {"kind": kind, "id": rid, "attr": {"ward": rward, "patient_id": rid}}}
        ],
    }


REQUESTS = [
    _request("nina", ["nurse"], ["view", "edit"]),  # 0: nothing flips
    _request("phil", ["physician"], ["view", "view_history"], rward="w2"),  # 1: history newly denied
    _request("carl", ["clerk"], ["view"]),  # 2: newly allowed
    _request("phil", ["physician"], ["view_history"]),  # 3: same effect, output changed
]


@pytest.fixture
def sides(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old", tmp_path / "new"
    for root, text in ((old, OLD_CHART), (new, NEW_CHART)):
        root.mkdir()
        (root / "chart.yaml").write_text(text)
    return old, new


def _lines(tmp_path: Path, lines: list[str], name: str = "requests.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, dict[str, Any]]:
    code = main(["impact", *argv, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def _keys(report: dict[str, Any]) -> list[tuple[int, str, str]]:
    return [(f["request"], f["action"], f["direction"]) for f in report["flips"]]


def test_request_lines_every_direction(
    sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = sides
    requests = _lines(tmp_path, [json.dumps(r) for r in REQUESTS])
    code, report = _json(capsys, [str(old), str(new), "--requests", str(requests), "--workers", "1"])
    assert code == 5
    assert _keys(report) == [
        (1, "view_history", "newly_denied"),
        (2, "view", "newly_allowed"),
        (3, "view_history", "output_changed"),
    ]
    denied, allowed, changed = report["flips"]
    assert denied["before"] == "EFFECT_ALLOW" and denied["after"] == "EFFECT_DENY"
    assert denied["before_rule"] == "resource.chart.vdefault#physicians_history"
    assert denied["after_rule"] == "resource.chart.vdefault (no rule matched)"
    assert denied["resource"] == {"kind": "chart", "id": "c1"} and denied["roles"] == ["physician"]
    assert allowed["after_rule"] == "resource.chart.vdefault#nurses_view"
    assert changed["effect"] == "EFFECT_ALLOW"
    assert [o["val"] for o in changed["output"]["before"]] == [{"audit_flag": "none"}]
    assert [o["val"] for o in changed["output"]["after"]] == [{"audit_flag": "history"}]
    summary = report["summary"]
    assert (summary["newly_denied"], summary["newly_allowed"], summary["output_changed"]) == (1, 1, 1)
    assert summary["requests"] == 4 and summary["decisions"] == 6 and summary["unexpected"] == 3


def test_text_report_groups_with_rules_and_examples(
    sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = sides
    requests = _lines(tmp_path, [json.dumps(r) for r in REQUESTS])
    assert main(["impact", str(old), str(new), "--requests", str(requests)]) == 5
    text = capsys.readouterr().out
    assert "Flips: 3 (newly allowed 1, newly denied 1, output changed 1); unexpected: 3" in text
    block = text.split("NEWLY DENIED  kind chart  action view_history  roles physician: 1 [UNEXPECTED]\n")[1]
    assert block.startswith(
        "        1  before: resource.chart.vdefault#physicians_history\n"
        "           after:  resource.chart.vdefault (no rule matched)\n"
        "  e.g. request 1: "
    )
    assert "NEWLY ALLOWED  kind chart  action view  roles clerk: 1 [UNEXPECTED]" in text


def test_nothing_flips_exit_0(sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, _ = sides
    requests = _lines(tmp_path, [json.dumps(r) for r in REQUESTS])
    code, report = _json(capsys, [str(old), str(old), "--requests", str(requests)])
    assert code == 0 and report["flips"] == [] and report["summary"]["flips"] == 0


def test_accept_file(sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = sides
    requests = _lines(tmp_path, [json.dumps(r) for r in REQUESTS])
    accept = tmp_path / "accept.yaml"
    accept.write_text(
        "- {kind: chart, action: view, role: clerk, direction: newly_allowed}\n"
        "- {action: view_history, direction: output_changed}\n"
    )
    code, report = _json(capsys, [str(old), str(new), "--requests", str(requests), "--accept", str(accept)])
    assert code == 5 and report["summary"]["unexpected"] == 1
    assert [f["expected"] for f in report["flips"]] == [False, True, True]
    accept.write_text('{"expected": [{"kind": "chart"}]}')
    code, report = _json(capsys, [str(old), str(new), "--requests", str(requests), "--accept", str(accept)])
    assert code == 0 and report["summary"]["flips"] == 3 and report["summary"]["unexpected"] == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- {kind: chart, colour: red}\n", "entry 1: unknown field 'colour'"),
        ("- {direction: sideways}\n", "entry 1: direction 'sideways' is not one of"),
        ("- {kind: 3}\n", "entry 1: kind must be a non-empty string"),
        ("kind: chart\n", "expected a list of expected changes"),
        ("- [unclosed\n", "not YAML or JSON"),
    ],
)
def test_bad_accept_file(
    sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    old, new = sides
    requests = _lines(tmp_path, [json.dumps(r) for r in REQUESTS])
    accept = tmp_path / "accept.yaml"
    accept.write_text(content)
    assert main(["impact", str(old), str(new), "--requests", str(requests), "--accept", str(accept)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_malformed_and_unknown_kinds_are_counted_and_listed(
    sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = sides
    lines = [
        json.dumps(REQUESTS[2]),
        '{"principal": {"id": "x"',  # 1: cut short
        "",  # 2: blank, skipped
        json.dumps(_request("carl", ["clerk"], ["view"], kind="spaceship")),  # 3: unknown kind
        '{"principal": {"id": "x", "roles": ["nurse"]}, "resources": [], "colour": 1}',  # 4: unknown field
        '{"principal": ' + '{"a": ' * 3000 + "1" + "}" * 3001,  # 5: nested too deeply
        '{"x": "' + "a" * (5 * 1024 * 1024) + '"}',  # 6: oversized
        json.dumps(REQUESTS[2]),  # 7: still answered after all that
    ]
    requests = _lines(tmp_path, lines)
    code, report = _json(capsys, [str(old), str(new), "--requests", str(requests)])
    summary = report["summary"]
    assert code == 5
    assert [f["request"] for f in report["flips"]] == [0, 7]
    assert summary["unknown_kinds"] == 1 and summary["unknown_kinds_listed"] == [{"request": 3, "kind": "spaceship"}]
    assert summary["malformed"] == 4
    listed = {m["request"]: m["message"] for m in summary["malformed_listed"]}
    assert sorted(listed) == [1, 4, 5, 6]
    assert 'unknown field "colour"' in listed[4]
    assert "larger than max" in listed[6]
    assert summary["requests"] == 7  # blank lines are not requests


def _audit_log(tmp_path: Path, old: Path, requests: list[dict[str, Any]]) -> Path:
    """A real audit log: the requests decided by the old policies, every decision recorded."""
    engine = Engine.from_directory(old)
    chain = AuditChain(tmp_path / "audit.db", workstation_id="ward-7")
    for body in requests:
        records: list[Any] = []
        engine.check_request(body, audit=records)
        chain.append_many(records)
    chain.close()
    return tmp_path / "audit.db"


def test_audit_log_rebuilt(sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = sides
    db = _audit_log(tmp_path, old, REQUESTS)
    code, report = _json(capsys, [str(old), str(new), "--requests", str(db)])
    audit = report["summary"]["audit"]
    assert audit["chain"].startswith("verified (6 records")
    assert "principal attributes" in audit["rebuilt"][0]
    # One request per recorded decision: nina view (0), nina edit (1), phil view (2), phil view_history
    # (3), carl view (4), phil view_history (5). Without the ward attributes, nina's edit is denied
    # by the old policies although it was allowed: counted, and neither flip is invented.
    assert audit["recorded_effect_not_reproduced_by_old"] == 1
    assert audit["listed"] == [{"request": 1, "seq": 2, "recorded": "EFFECT_ALLOW", "replayed": "EFFECT_DENY"}]
    # Without the ward, the physician's history is denied under the new policies every time.
    assert _keys(report) == [
        (3, "view_history", "newly_denied"),
        (4, "view", "newly_allowed"),
        (5, "view_history", "newly_denied"),
    ]
    assert [f["seq"] for f in report["flips"]] == [4, 5, 6]
    assert report["flips"][1]["principal"] == "carl"
    assert code == 5


def test_audit_export_rebuilt_and_its_links_checked(
    sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = sides
    db = _audit_log(tmp_path, old, REQUESTS)
    assert main(["audit", "export", str(db)]) == 0
    export = _lines(tmp_path, capsys.readouterr().out.splitlines(), "export.jsonl")
    code, report = _json(capsys, [str(old), str(new), "--requests", str(export)])
    assert code == 5 and report["summary"]["requests_file"]["kind"] == "audit export"
    assert report["summary"]["audit"]["chain"].startswith("links verified (6 records")
    assert _keys(report) == [
        (3, "view_history", "newly_denied"),
        (4, "view", "newly_allowed"),
        (5, "view_history", "newly_denied"),
    ]
    lines = export.read_text().splitlines()
    del lines[2]
    _lines(tmp_path, lines, "export.jsonl")
    assert main(["impact", str(old), str(new), "--requests", str(export)]) == 2
    err = capsys.readouterr().err
    assert "line 3: record 3 is missing" in err and "--allow-broken-chain" in err


def test_broken_chain_refused_unless_allowed_and_then_said_first(
    sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = sides
    db = _audit_log(tmp_path, old, REQUESTS)
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET principal_roles = '[\"admin\"]' WHERE seq = 3")
    conn.commit()
    conn.close()
    assert main(["impact", str(old), str(new), "--requests", str(db)]) == 2
    captured = capsys.readouterr()
    assert "the audit chain does not verify (changed: record 3 was changed" in captured.err and captured.out == ""
    assert main(["impact", str(old), str(new), "--requests", str(db), "--allow-broken-chain"]) == 5
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f"WARNING: the audit chain of {db} does not verify (changed: record 3 was changed")
    code, report = _json(capsys, [str(old), str(new), "--requests", str(db), "--allow-broken-chain"])
    assert next(iter(report["summary"])) == "warning"


def test_a_sqlite_file_that_is_not_an_audit_log_is_refused_untouched(
    sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = sides
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    before = other.read_bytes()
    assert main(["impact", str(old), str(new), "--requests", str(other)]) == 2
    assert "without an audit table: not an audit log" in capsys.readouterr().err
    assert other.read_bytes() == before


def test_bundles_verified_before_use(
    sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = sides
    requests = _lines(tmp_path, [json.dumps(r) for r in REQUESTS])
    keys = tmp_path / "keys"
    assert main(["keygen", "--out", str(keys)]) == 0
    bundles = []
    for version, root in ((1, old), (2, new)):
        out = tmp_path / f"v{version}.bundle"
        assert (
            main(
                [
                    "bundle",
                    "build",
                    str(root),
                    "--key",
                    str(keys / "private.key"),
                    "--version",
                    str(version),
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        bundles.append(out)
    capsys.readouterr()
    code, report = _json(
        capsys, [str(bundles[0]), str(bundles[1]), "--requests", str(requests), "--pubkey", str(keys / "public.key")]
    )
    assert code == 5 and len(report["flips"]) == 3
    assert report["summary"]["old"]["what"].startswith("bundle version 1 (sha256 ")
    # Without the key, or altered, a bundle stops the run before anything is evaluated.
    assert main(["impact", str(bundles[0]), str(new), "--requests", str(requests)]) == 2
    assert "--pubkey is needed to verify it" in capsys.readouterr().err
    data = bytearray(bundles[1].read_bytes())
    data[100] ^= 0xFF
    bundles[1].write_bytes(bytes(data))
    assert (
        main(["impact", str(old), str(bundles[1]), "--requests", str(requests), "--pubkey", str(keys / "public.key")])
        == 2
    )
    captured = capsys.readouterr()
    assert "bundle refused: signature does not match" in captured.err and captured.out == ""


def test_a_side_that_does_not_compile(
    sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = sides
    (new / "chart.yaml").write_text(NEW_CHART.replace("R.attr.ward == P.attr.ward", "R.attr.ward =="))
    requests = _lines(tmp_path, [json.dumps(r) for r in REQUESTS])
    assert main(["impact", str(old), str(new), "--requests", str(requests)]) == 3
    err = capsys.readouterr().err
    assert f"{new} (policy directory) does not compile" in err and "chart.yaml" in err and "Traceback" not in err


def test_html_report_is_self_contained(
    sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = sides
    requests = _lines(tmp_path, [json.dumps(r) for r in REQUESTS])
    page = tmp_path / "report.html"
    assert main(["impact", str(old), str(new), "--requests", str(requests), "--html", str(page)]) == 5
    html = page.read_text()
    assert not re.search(r"\b(src|href)\s*=|@import|url\(|https?://", html), "no external asset"
    assert "<svg" in html and html.count("<rect") >= 3  # one bar per role and action, and a legend
    assert "physician / view_history" in html and "clerk / view" in html
    # The policy diff that caused each group, and its example requests.
    assert "<span class='del'>-      roles: [&quot;nurse&quot;, &quot;physician&quot;]</span>" in html
    assert (
        "<span class='add'>+      roles: [&quot;nurse&quot;, &quot;physician&quot;, &quot;clerk&quot;]</span>" in html
    )
    assert "request 2</p><pre>{&quot;principal&quot;:{&quot;id&quot;:&quot;carl&quot;" in html
    assert "Unexpected flips</th><td>3</td>" in html


def test_workers_give_the_same_report(
    sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = sides
    requests = _lines(tmp_path, [json.dumps(REQUESTS[i % 4]) for i in range(3000)])
    base = [str(old), str(new), "--requests", str(requests), "--chunk-requests", "100"]
    code_one, one = _json(capsys, [*base, "--workers", "1"])
    code_two, two = _json(capsys, [*base, "--workers", "2"])
    assert one == two and code_one == code_two == 5
    assert len(one["flips"]) == 3 * 750
    assert [len(g["examples"]) for g in one["summary"]["groups"]] == [3, 3, 3]
    assert one["summary"]["groups"][0]["examples"][0]["request"] in (1, 2, 3)
    assert [f["request"] for f in one["flips"]] == [i for i in range(3000) if i % 4]


def test_a_repeated_request_is_judged_on_its_own_fields(
    sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outcomes of identical requests are reused, but a requestId of the wrong type is still refused."""
    old, new = sides
    good = {**REQUESTS[2], "requestId": "a"}
    lines = [json.dumps(good), json.dumps({**good, "requestId": "b"}), json.dumps({**good, "requestId": 7})]
    code, report = _json(capsys, [str(old), str(new), "--requests", str(_lines(tmp_path, lines))])
    assert [f["request"] for f in report["flips"]] == [0, 1]
    assert [m["request"] for m in report["summary"]["malformed_listed"]] == [2]


def test_a_flip_of_a_deeply_nested_request_is_reported(
    sides: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deeper than orjson writes (254 levels) but within what a request may hold: still reported."""
    old, new = sides
    deep: Any = 1
    for _ in range(300):
        deep = {"d": deep}
    body = json.loads(json.dumps(REQUESTS[2]))
    body["resources"][0]["resource"]["attr"]["deep"] = deep
    requests = _lines(tmp_path, [json.dumps(body)])
    code, report = _json(capsys, [str(old), str(new), "--requests", str(requests)])
    assert code == 5 and _keys(report) == [(0, "view", "newly_allowed")]
    example = report["summary"]["groups"][0]["examples"][0]
    assert example["request"] == 0 and "carl" in str(example["body"])
    assert main(["impact", str(old), str(new), "--requests", str(requests)]) == 5
    assert "e.g. request 0: " in capsys.readouterr().out


def test_change_scope_leaves_out_only_what_cannot_change(sides: tuple[Path, Path], tmp_path: Path) -> None:
    from authz.impact import ChangeScope, compile_files, load_side

    def scope(old_text: str, new_text: str, extra: dict[str, str] | None = None) -> ChangeScope:
        roots = []
        for name, text in (("a", old_text), ("b", new_text)):
            root = tmp_path / f"{name}{len(list(tmp_path.iterdir()))}"
            root.mkdir()
            (root / "chart.yaml").write_text(text)
            for file, content in (extra or {}).items() if name == "b" else ():
                (root / file).write_text(content)
            roots.append(load_side(root, None))
        keep: list[Any] = []
        return ChangeScope(roots[0].files, roots[1].files, *(compile_files(r.files, keep) for r in roots))

    only_history = scope(OLD_CHART, OLD_CHART.replace('"audit_flag": "none"', '"audit_flag": "x"'))
    assert [only_history.action("chart", a) for a in ("view", "view_history", "edit")] == [False, True, False]
    assert not only_history.kind("other")
    # Rules of one name may share a condition's outcome: the whole policy then.
    same_names = OLD_CHART.replace("name: own_ward_notes", "name: nurses_view")
    shared = scope(same_names, same_names.replace('"audit_flag": "none"', '"audit_flag": "x"'))
    assert shared.action("chart", "view") and shared.action("chart", "edit")
    # A test suite changed decides nothing; a new derived-roles file may touch every kind.
    assert not scope(OLD_CHART, OLD_CHART, {"chart_test.yaml": "name: t\n"}).kind("chart")
    roles = (
        "apiVersion: api.cerbos.dev/v1\nderivedRoles:\n  name: r\n"
        "  definitions:\n    - name: x\n      parentRoles: [a]\n"
    )
    everything = scope(OLD_CHART, OLD_CHART, {"roles.yaml": roles})
    assert everything.everything and everything.action("other", "any")


def test_a_worker_killed_mid_run_loses_nothing(sides: tuple[Path, Path], tmp_path: Path) -> None:
    """SIGKILL to a forked worker: its chunk and the rest are replayed by the main process, and
    the report is the one a single process writes."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    old, new = sides
    lines = []
    for i in range(40_000):
        body = json.loads(json.dumps(REQUESTS[i % 4]))
        body["resources"][0]["resource"]["id"] = f"c{i}"  # every request distinct: nothing reused
        lines.append(json.dumps(body))
    requests = _lines(tmp_path, lines)
    base = [
        sys.executable,
        "-m",
        "authz.cli",
        "impact",
        str(old),
        str(new),
        "--requests",
        str(requests),
        "--format",
        "json",
        "--chunk-requests",
        "200",
    ]
    alone = subprocess.run([*base, "--workers", "1"], capture_output=True, timeout=300)
    process = subprocess.Popen([*base, "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and process.poll() is None and time.monotonic() < deadline:
        children = psutil.Process(process.pid).children()
        if children:
            killed = children[0].pid
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    out, err = process.communicate(timeout=300)
    assert killed is not None, "the run ended before a worker could be killed"
    assert process.returncode == alone.returncode == 5
    assert b"a worker process died; going on in this process" in err
    assert json.loads(out) == json.loads(alone.stdout)


class _Counting:
    """A replayer that counts the requests of each chunk (items stand for requests)."""

    def replay(self, items: list[Any]) -> Any:
        from authz.impact import Partial

        return Partial(requests=len(items))


def test_a_pool_broken_before_any_result_is_read_goes_on_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool can notice a dead worker before the run reads any result: the next submit then
    raises at once. Every chunk is still replayed, here, in order (CI saw exit 1 from this race)."""
    import multiprocessing
    import signal
    import time

    from authz import impact

    monkeypatch.setattr(impact, "_REPLAYER", _Counting())

    def chunks() -> Iterator[list[Any]]:
        for n in range(1, 9):
            if n == 3:  # two chunks submitted: workers exist; kill one and let the pool see it
                for child in multiprocessing.active_children():
                    os.kill(child.pid or 0, signal.SIGKILL)
                time.sleep(1.0)
            yield [None] * n

    assert [p.requests for p in impact._here(chunks(), 2)] == list(range(1, 9))
