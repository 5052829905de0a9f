"""The impact report (authz/impact.py's run) as text, JSON or one self-contained HTML page, and
the ``--accept`` file that names the changes a policy author meant to make.

Accept file (YAML or JSON): a list, or a mapping with ``expected:``, of entries

    - {kind: history_entry, action: view, role: physician, direction: newly_denied}

each field optional (or ``"*"``), ``role`` matching any one of the principal's roles, direction one
of newly_allowed, newly_denied, output_changed. A flip that some entry matches is expected; every
other flip is unexpected, and unexpected flips make ``impact`` exit 5 and ``bundle build`` refuse.
"""

from __future__ import annotations

import difflib
import html
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO

import orjson
import yaml

from .impact import (
    DIRECTIONS,
    NEWLY_ALLOWED,
    NEWLY_DENIED,
    OUTPUT_CHANGED,
    Group,
    GroupKey,
    ImpactError,
    PolicySide,
    Run,
)
from .impact_sources import SourceInfo

MAX_ACCEPT_BYTES = 1 << 20
MAX_DIFF_LINES = 400
_TITLES = {NEWLY_ALLOWED: "NEWLY ALLOWED", NEWLY_DENIED: "NEWLY DENIED", OUTPUT_CHANGED: "OUTPUT CHANGED"}
_COLOURS = {NEWLY_ALLOWED: "#d9822b", NEWLY_DENIED: "#c23030", OUTPUT_CHANGED: "#5c7080"}


# ---- expected changes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    kind: str = "*"
    action: str = "*"
    role: str = "*"
    direction: str = "*"

    def matches(self, key: GroupKey) -> bool:
        kind, action, roles, direction = key
        return (
            self.kind in ("*", kind)
            and self.action in ("*", action)
            and (self.role in ("*", roles) or self.role in roles.split("+"))
            and self.direction in ("*", direction)
        )


def load_accept(path: Path) -> list[Expected]:
    """The expected changes in ``path``; ImpactError naming the entry and field that is wrong."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_ACCEPT_BYTES + 1)
    except OSError as exc:
        raise ImpactError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_ACCEPT_BYTES:
        raise ImpactError(f"{path}: larger than {MAX_ACCEPT_BYTES} bytes: not an accept file")
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ImpactError(f"{path}: not YAML or JSON ({str(exc).splitlines()[0]})") from None
    if isinstance(data, dict) and set(data) == {"expected"}:
        data = data["expected"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise ImpactError(f"{path}: expected a list of expected changes (or a mapping with 'expected:')")
    entries = []
    for i, entry in enumerate(data):
        where = f"{path}: entry {i + 1}"
        if not isinstance(entry, dict):
            raise ImpactError(f"{where}: must be a mapping of kind, action, role, direction")
        unknown = sorted(set(map(str, entry)) - {"kind", "action", "role", "direction"})
        if unknown:
            raise ImpactError(f"{where}: unknown field {unknown[0]!r} (kind, action, role, direction)")
        for name, value in entry.items():
            if not isinstance(value, str) or not value:
                raise ImpactError(f"{where}: {name} must be a non-empty string")
        if entry.get("direction", "*") not in (*DIRECTIONS, "*"):
            raise ImpactError(f"{where}: direction {entry['direction']!r} is not one of {', '.join(DIRECTIONS)}")
        entries.append(Expected(**entry))
    return entries


# ---- the report ---------------------------------------------------------------------------------


@dataclass
class Report:
    run: Run
    old: PolicySide
    new: PolicySide
    source: SourceInfo
    expected: list[Expected]

    def is_expected(self, key: GroupKey) -> bool:
        return any(e.matches(key) for e in self.expected)

    @property
    def unexpected(self) -> int:
        return sum(g.count for k, g in self.run.total.groups.items() if not self.is_expected(k))

    @property
    def exit_code(self) -> int:
        return 5 if self.unexpected else 0

    def ordered_groups(self) -> list[tuple[GroupKey, Group]]:
        """Unexpected groups first, then the largest, then by name (a stable order)."""
        return sorted(self.run.total.groups.items(), key=lambda kv: (self.is_expected(kv[0]), -kv[1].count, kv[0]))

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(DIRECTIONS, 0)
        for (_, _, _, direction), group in self.run.total.groups.items():
            out[direction] += group.count
        return out

    def warning(self) -> str:
        """The first line of every rendering when the audit chain did not verify."""
        if self.source.chain_ok:
            return ""
        return f"WARNING: the audit chain of {self.source.path} does not verify ({self.source.chain}); replayed anyway"

    def summary(self) -> dict[str, Any]:
        total = self.run.total
        counts = self.counts()
        summary: dict[str, Any] = {
            "old": {"path": self.old.path, "what": self.old.description},
            "new": {"path": self.new.path, "what": self.new.description},
            "requests_file": {"path": self.source.path, "kind": self.source.kind},
            "evaluation": "strict" if self.run.strict else "cerbos default (not strict)",
            "requests": total.requests,
            "resources": total.resources,
            "decisions": total.decisions,
            "flips": sum(counts.values()),
            **counts,
            "unexpected": self.unexpected,
            "malformed": total.malformed,
            "malformed_listed": [{"request": i, "message": m} for i, m in total.malformed_list],
            "unknown_kinds": total.unknown,
            "unknown_kinds_listed": [{"request": i, "kind": k} for i, k in total.unknown_list],
            "groups": [self._group_json(k, g) for k, g in self.ordered_groups()],
        }
        if self.warning():
            summary = {"warning": self.warning(), **summary}
        if self.source.rebuilt:
            summary["audit"] = {
                "chain": self.source.chain,
                "rebuilt": self.source.notes,
                "recorded_effect_not_reproduced_by_old": total.disagree,
                "listed": [
                    {"request": i, "seq": s, "recorded": r, "replayed": p} for i, s, r, p in total.disagree_list
                ],
            }
        return summary

    def _group_json(self, key: GroupKey, group: Group) -> dict[str, Any]:
        kind, action, roles, direction = key
        return {
            "kind": kind,
            "action": action,
            "roles": roles.split("+") if roles else [],
            "direction": direction,
            "count": group.count,
            "expected": self.is_expected(key),
            "rules": [{"before": b, "after": a, "count": n} for (b, a), n in sorted(group.rules.items())],
            "examples": [{"request": i, "body": _example(t)} for i, t in group.examples],
        }

    def flips(self) -> Iterator[bytes]:
        """Every flip, in input order, from the run's spool, marked expected or not."""
        self.run.spool.seek(0)
        for line in self.run.spool:
            flip = orjson.loads(line)
            key = (flip["resource"]["kind"], flip["action"], "+".join(flip["roles"]), flip["direction"])
            flip["expected"] = self.is_expected(key)
            yield orjson.dumps(flip)


# ---- text ---------------------------------------------------------------------------------------


def write_text(report: Report, out: TextIO) -> None:
    total, counts = report.run.total, report.counts()
    if report.warning():
        out.write(report.warning() + "\n")
    out.write(f"Policy change impact: {report.old.path} ({report.old.description}) -> ")
    out.write(f"{report.new.path} ({report.new.description})\n")
    mode = "strict evaluation" if report.run.strict else "Cerbos default evaluation (not strict)"
    out.write(
        f"Replayed {total.requests} requests ({total.resources} resources, {total.decisions} decisions) "
        f"from {report.source.path} ({report.source.kind}), {mode}, on {report.run.where}\n"
    )
    flips = sum(counts.values())
    out.write(
        f"Flips: {flips} (newly allowed {counts[NEWLY_ALLOWED]}, newly denied {counts[NEWLY_DENIED]}, "
        f"output changed {counts[OUTPUT_CHANGED]}); unexpected: {report.unexpected}\n"
    )
    out.write(f"Malformed requests: {total.malformed}; resources of a kind neither policy set knows: {total.unknown}\n")
    if report.source.rebuilt:
        out.write(f"Audit chain: {report.source.chain}\n")
        for note in report.source.notes:
            out.write(f"Rebuilt from the audit trail: {note}\n")
        out.write(f"Recorded effects the old policies do not reproduce on the rebuilt requests: {total.disagree}\n")
    for key, group in report.ordered_groups():
        out.write("\n" + _group_title(report, key, group) + "\n")
        for (before, after), n in sorted(group.rules.items(), key=lambda kv: (-kv[1], kv[0])):
            out.write(f"  {n:>7}  before: {before}\n           after:  {after}\n")
        for index, text in group.examples:
            out.write(f"  e.g. request {index}: {text}\n")
    _write_listed(out, "Malformed requests", total.malformed, [f"request {i}: {m}" for i, m in total.malformed_list])
    _write_listed(
        out,
        "Resources of a kind neither policy set knows",
        total.unknown,
        [f"request {i}: kind {k!r}" for i, k in total.unknown_list],
    )
    if report.source.rebuilt:
        _write_listed(
            out,
            "Recorded effects not reproduced by the old policies",
            total.disagree,
            [f"request {i} (seq {s}): recorded {r}, replayed {p}" for i, s, r, p in total.disagree_list],
        )


def _example(text: str) -> Any:
    """An example request as JSON when it is whole JSON, else as the text it was kept as."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _group_title(report: Report, key: GroupKey, group: Group) -> str:
    kind, action, roles, direction = key
    flag = "expected" if report.is_expected(key) else "UNEXPECTED"
    return f"{_TITLES[direction]}  kind {kind}  action {action}  roles {roles or '(none)'}: {group.count} [{flag}]"


def _write_listed(out: TextIO, title: str, count: int, lines: list[str]) -> None:
    if not count:
        return
    out.write(f"\n{title}: {count}" + (f" (the first {len(lines)} listed)" if len(lines) < count else "") + "\n")
    for line in lines:
        out.write(f"  {line}\n")


# ---- JSON ---------------------------------------------------------------------------------------


def write_json(report: Report, out: IO[bytes]) -> None:
    """One object, ``{"summary": ..., "flips": [...]}``, the flips streamed from the spool."""
    out.write(b'{"summary":' + orjson.dumps(report.summary()) + b',"flips":[')
    for i, flip in enumerate(report.flips()):
        out.write((b",\n" if i else b"\n") + flip)
    out.write(b"\n]}\n")


# ---- HTML ---------------------------------------------------------------------------------------


def write_html(report: Report, out: TextIO) -> None:
    """One page, no external asset: summary, an inline SVG chart of flips per role and action, each
    group with its rules, examples and the policy diff behind it."""
    e = html.escape
    total, counts = report.run.total, report.counts()
    out.write(
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>Policy change impact</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:70em;color:#182026}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccd;padding:.3em .6em;text-align:left}"
        "pre{background:#f5f8fa;padding:.6em;overflow-x:auto;font-size:85%}"
        ".warn{background:#c23030;color:#fff;padding:.6em;font-weight:bold}"
        ".add{color:#0d8050}.del{color:#c23030}.unexpected{color:#c23030;font-weight:bold}"
        "</style></head><body>\n"
    )
    if report.warning():
        out.write(f"<p class='warn'>{e(report.warning())}</p>\n")
    out.write("<h1>Policy change impact</h1>\n<table>\n")
    rows = [
        ("Old policies", f"{report.old.path} ({report.old.description})"),
        ("New policies", f"{report.new.path} ({report.new.description})"),
        ("Requests", f"{total.requests} from {report.source.path} ({report.source.kind})"),
        ("Evaluation", "strict" if report.run.strict else "Cerbos default (not strict)"),
        ("Decisions compared", str(total.decisions)),
        ("Newly allowed", str(counts[NEWLY_ALLOWED])),
        ("Newly denied", str(counts[NEWLY_DENIED])),
        ("Output changed", str(counts[OUTPUT_CHANGED])),
        ("Unexpected flips", str(report.unexpected)),
        ("Malformed requests", str(total.malformed)),
        ("Resources of an unknown kind", str(total.unknown)),
    ]
    if report.source.rebuilt:
        rows.append(("Audit chain", report.source.chain))
        rows += [("Rebuilt from the audit trail", note) for note in report.source.notes]
        rows.append(("Recorded effects not reproduced by the old policies", str(total.disagree)))
    for name, value in rows:
        out.write(f"<tr><th>{e(name)}</th><td>{e(value)}</td></tr>\n")
    out.write("</table>\n")
    if total.groups:
        out.write("<h2>Flips per role and action</h2>\n" + chart_svg(report) + "\n")
    for n, (key, group) in enumerate(report.ordered_groups(), start=1):
        _html_group(report, n, key, group, out)
    _html_listed(out, "Malformed requests", total.malformed, [f"request {i}: {m}" for i, m in total.malformed_list])
    _html_listed(
        out, "Resources of an unknown kind", total.unknown, [f"request {i}: {k}" for i, k in total.unknown_list]
    )
    out.write("</body></html>\n")


def _html_group(report: Report, n: int, key: GroupKey, group: Group, out: TextIO) -> None:
    e = html.escape
    flag = "expected" if report.is_expected(key) else "<span class='unexpected'>unexpected</span>"
    kind, action, roles, direction = key
    out.write(
        f"<h2 id='g{n}'>{n}. {e(_TITLES[direction].capitalize())}: {e(kind)} / {e(action)} / "
        f"{e(roles or '(no role)')} &mdash; {group.count} ({flag})</h2>\n"
        "<table><tr><th>flips</th><th>rule before</th><th>rule after</th></tr>\n"
    )
    for (before, after), count in sorted(group.rules.items(), key=lambda kv: (-kv[1], kv[0])):
        out.write(f"<tr><td>{count}</td><td>{e(before)}</td><td>{e(after)}</td></tr>\n")
    out.write("</table>\n<h3>Example requests</h3>\n")
    for index, text in group.examples:
        out.write(f"<p>request {index}</p><pre>{e(text)}</pre>\n")
    out.write("<h3>Policy diff</h3>\n")
    for name, lines in policy_diffs(report, group):
        out.write(f"<p>{e(name)}</p><pre>")
        for line in lines:
            css = "add" if line.startswith("+") else "del" if line.startswith("-") else ""
            out.write(f"<span class='{css}'>{e(line)}</span>\n" if css else f"{e(line)}\n")
        out.write("</pre>\n")


def _html_listed(out: TextIO, title: str, count: int, lines: list[str]) -> None:
    if count:
        out.write(f"<h2>{html.escape(title)}: {count}</h2>\n<pre>")
        out.write("\n".join(html.escape(line) for line in lines) + "</pre>\n")


def policy_diffs(report: Report, group: Group) -> list[tuple[str, list[str]]]:
    """The unified diffs of the files holding the policies responsible for a group's flips; when
    none of them changed (a derived role, a constant or a schema did), every changed file."""
    old_files, new_files = report.old.files, report.new.files
    names = {
        name
        for key in group.policies
        for name in (report.run.old_set.sources.get(key), report.run.new_set.sources.get(key))
        if name
    }
    changed = sorted(n for n in set(old_files) | set(new_files) if old_files.get(n) != new_files.get(n))
    chosen = [n for n in changed if n in names] or changed
    return [(name, _diff(name, old_files.get(name), new_files.get(name))) for name in chosen]


def _diff(name: str, old: bytes | None, new: bytes | None) -> list[str]:
    a = (old or b"").decode("utf-8", "replace").splitlines()
    b = (new or b"").decode("utf-8", "replace").splitlines()
    lines = list(difflib.unified_diff(a, b, f"old/{name}", f"new/{name}", lineterm=""))
    if len(lines) > MAX_DIFF_LINES:
        lines = [*lines[:MAX_DIFF_LINES], f"... {len(lines) - MAX_DIFF_LINES} more lines"]
    return lines


def chart_svg(report: Report) -> str:
    """A horizontal bar per (role set, action), split by direction, drawn as inline SVG."""
    bars: dict[tuple[str, str], dict[str, int]] = {}
    for (_, action, roles, direction), group in report.run.total.groups.items():
        bar = bars.setdefault((roles or "(no role)", action), dict.fromkeys(DIRECTIONS, 0))
        bar[direction] += group.count
    ordered = sorted(bars.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:40]
    widest = max(sum(b.values()) for _, b in ordered)
    label_w, bar_w, row_h = 260, 440, 22
    height = row_h * len(ordered) + 40
    parts = [
        f"<svg width='{label_w + bar_w + 80}' height='{height}' "
        "role='img' aria-label='flips per role and action' font-family='sans-serif' font-size='12'>"
    ]
    for i, ((roles, action), bar) in enumerate(ordered):
        y = 10 + i * row_h
        name = f"{html.escape(roles)} / {html.escape(action)}"
        parts.append(f"<text x='{label_w - 6}' y='{y + 14}' text-anchor='end'>{name}</text>")
        x = float(label_w)
        for direction in DIRECTIONS:
            if bar[direction]:
                w = max(1.0, bar_w * bar[direction] / widest)
                parts.append(
                    f"<rect x='{x:.1f}' y='{y}' width='{w:.1f}' height='{row_h - 6}' fill='{_COLOURS[direction]}'>"
                    f"<title>{_TITLES[direction].lower()}: {bar[direction]}</title></rect>"
                )
                x += w
        parts.append(f"<text x='{x + 4:.1f}' y='{y + 14}'>{sum(bar.values())}</text>")
    y = height - 14
    for j, direction in enumerate(DIRECTIONS):
        x = label_w + j * 150
        parts.append(f"<rect x='{x}' y='{y - 10}' width='12' height='12' fill='{_COLOURS[direction]}'/>")
        parts.append(f"<text x='{x + 16}' y='{y}'>{_TITLES[direction].lower()}</text>")
    parts.append("</svg>")
    return "".join(parts)
