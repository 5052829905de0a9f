"""Where ``ccc-authz impact`` finds the requests it replays: Cerbos CheckResources requests as JSON
lines, an audit log database, or an audit export (``ccc-authz audit export``, JSON lines).

Every source is read as a stream of numbered items, in chunks, so a month of a hospital's traffic
never sits in memory. An item is ``(index, payload, note)``: ``index`` is the 0-based position in
the file (the line for JSON lines, the decision's position among the log's decisions for an audit
log or export), ``payload`` the raw request line (bytes) or a rebuilt request body (a dict), or
None with ``note`` saying why the item cannot be replayed.

Rebuilding from the audit trail: a decision record holds the principal's id and roles, the
resource's kind and id, the patient's id, the action, and the effect and rule that decided, but
never attributes (the log holds identifiers only, never clinical content). A rebuilt request is
therefore ``{principal: {id, roles}, resource: {kind, id, attr: {patient_id}}, actions: [action]}``
decided at the record's time; principal attributes, other resource attributes, scopes, policy
versions and auxData cannot be rebuilt, so conditions that read them decide on their absence. The
report says so, and counts the records whose recorded effect the old policies do not reproduce.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from . import requestjson
from .audit import GENESIS
from .audit_verify import open_read_only, verify_log
from .errors import AuthzError

CHUNK_ITEMS = 2000
SQLITE_MAGIC = b"SQLite format 3\x00"
# What an audit record cannot give back (the report's note for rebuilt requests).
NOT_REBUILT = (
    "principal attributes, resource attributes other than patient_id, scopes, policy versions and auxData "
    "are not in the audit trail: conditions that read them decide on their absence"
)

Item = tuple[int, "bytes | dict[str, Any] | None", str]
# A rebuilt request's extras, kept beside it: the record's seq, its time, and the effect it recorded.
Recorded = tuple[int, str, str]


class SourceError(Exception):
    """A request file that cannot be replayed at all (unreadable, of no known kind, refused)."""


@dataclass
class SourceInfo:
    """What a source is, for the report's first lines."""

    path: str
    kind: str  # "request lines" | "audit log" | "audit export"
    chain: str = ""  # for audit sources: "verified", or what is wrong with it
    chain_ok: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def rebuilt(self) -> bool:
        return self.kind != "request lines"


def open_source(path: Path, allow_broken_chain: bool) -> RequestSource:
    """The source in ``path``, its kind told by its first bytes; an audit source's chain is
    checked first and a broken one refused unless ``allow_broken_chain``."""
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
            first = _first_line(f, head)
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})") from None
    if head == SQLITE_MAGIC:
        source: RequestSource = AuditLogSource(path)
    elif _is_export_line(first):
        source = AuditExportSource(path)
    else:
        source = RequestLinesSource(path)
    source.check_chain(allow_broken_chain)
    return source


def _first_line(f: BinaryIO, head: bytes) -> bytes:
    """The first non-blank line (up to 64 KiB of it)."""
    data = head + f.read(1 << 16)
    for line in data.split(b"\n"):
        if line.strip():
            return line
    return b""


def _is_export_line(line: bytes) -> bool:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return isinstance(value, dict) and ("log.kind" in value or value.get("resourceType") == "AuditEvent")


class RequestSource:
    """A stream of items in chunks; see the module docstring."""

    def __init__(self, path: Path, kind: str) -> None:
        self.info = SourceInfo(str(path), kind)
        self.path = path

    def check_chain(self, allow_broken_chain: bool) -> None:
        """Request lines have no chain."""

    def chunks(self, size: int = CHUNK_ITEMS) -> Iterator[list[Item]]:
        raise NotImplementedError

    def _refuse_or_note(self, problem: str, allow_broken_chain: bool) -> None:
        self.info.chain, self.info.chain_ok = problem, False
        if not allow_broken_chain:
            raise SourceError(
                f"{self.path}: the audit chain does not verify ({problem}); refused "
                "(--allow-broken-chain replays it anyway, and the report says so on its first line)"
            )


class RequestLinesSource(RequestSource):
    """CheckResources requests, one JSON object a line (as ``ccc-authz check`` reads them). A line
    longer than requestjson.MAX_LINE_BYTES is kept as its start and length only."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "request lines")

    def chunks(self, size: int = CHUNK_ITEMS) -> Iterator[list[Item]]:
        chunk: list[Item] = []
        with self.path.open("rb") as f:
            for index, line in enumerate(_bounded_lines(f)):
                if not line.strip():
                    continue
                chunk.append((index, line, ""))
                if len(chunk) >= size:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk


def _bounded_lines(f: BinaryIO) -> Iterator[bytes]:
    """Each line without its newline; an oversized one as its start (a bytes whose ``size`` is
    the whole length), the rest skipped without being held."""
    limit = requestjson.MAX_LINE_BYTES
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        if line.endswith(b"\n"):
            yield line[:-1]
            continue
        if len(line) <= limit:  # the last line, without a newline
            yield line
            return
        size = len(line)
        while True:
            rest = f.readline(1 << 20)
            size += len(rest)
            if not rest or rest.endswith(b"\n"):
                size -= 1 if rest.endswith(b"\n") else 0
                break
        yield _Oversized(line, size)


class _Oversized(bytes):
    """The start of a line too long to be a request, and its whole length."""

    size: int

    def __new__(cls, start: bytes, size: int) -> _Oversized:
        line = super().__new__(cls, start[: requestjson.MAX_LINE_BYTES + 1])
        line.size = size
        return line

    def __reduce__(self) -> tuple[Any, ...]:  # pickled to a worker with its length
        return (_Oversized, (bytes(self), self.size))


def rebuilt_request(
    principal_id: str, roles: list[str], kind: str, resource_id: str, patient_id: str, action: str
) -> dict[str, Any]:
    """A CheckResources request rebuilt from one recorded decision (see the module docstring)."""
    resource: dict[str, Any] = {"kind": kind, "id": resource_id}
    if patient_id:
        resource["attr"] = {"patient_id": patient_id}
    return {
        "principal": {"id": principal_id, "roles": roles},
        "resources": [{"actions": [action], "resource": resource}],
    }


def _timestamp(text: str) -> str:
    """An ISO timestamp as recorded, or "" when it does not parse (the run's time is used then)."""
    try:
        datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return ""
    return text


class AuditLogSource(RequestSource):
    """An audit log database (authz/audit.py), opened read-only as evidence is (audit_verify.py:
    nothing in it is created or changed): its chain verified, its decisions rebuilt."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "audit log")
        self.info.notes.append(NOT_REBUILT)

    def check_chain(self, allow_broken_chain: bool) -> None:
        try:
            report = verify_log(self.path)
        except AuthzError as exc:
            raise SourceError(f"{self.path}: {exc}") from None
        if report.ok:
            self.info.chain = f"verified ({report.count} records, head {report.head[:16]})"
            return
        if any(f.kind == "table-dropped" for f in report.findings):
            raise SourceError(f"{self.path}: a SQLite database without an audit table: not an audit log")
        problems = "; ".join(f"{f.kind}: {f.message}" for f in report.findings)
        self._refuse_or_note(problems, allow_broken_chain)

    def chunks(self, size: int = CHUNK_ITEMS) -> Iterator[list[Item]]:
        columns = "seq, time, principal_id, principal_roles, resource_kind, resource_id, patient_id, action, effect"
        with open_read_only(self.path) as (conn, _):
            chunk: list[Item] = []
            rows = conn.execute(f"SELECT {columns} FROM audit WHERE kind = 'decision' ORDER BY seq")
            for index, (seq, time, principal, roles, kind, resource_id, patient, action, effect) in enumerate(rows):
                try:
                    role_list = [str(r) for r in json.loads(roles or "[]")]
                except (ValueError, TypeError):
                    chunk.append((index, None, f"record {seq}: its roles are not a JSON list"))
                else:
                    body = rebuilt_request(
                        str(principal or ""),
                        role_list,
                        str(kind or ""),
                        str(resource_id or ""),
                        str(patient or ""),
                        str(action or ""),
                    )
                    body["_recorded"] = (int(seq), _timestamp(str(time or "")), str(effect or ""))
                    chunk.append((index, body, ""))
                if len(chunk) >= size:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk


class AuditExportSource(RequestSource):
    """``ccc-authz audit export`` JSON lines (Cerbos decision-log shape, with our chain fields).

    The export leaves out fields the record hashes cover (the patient's id among them), so its
    hashes cannot be recomputed: its links are checked instead (consecutive sequence numbers, each
    record's prevHash the previous record's hash, from the genesis). A FHIR export holds no links
    and is refused: replay the database or its JSON lines export."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "audit export")
        self.info.notes.append(NOT_REBUILT + "; a decision-log export holds no patient_id either")

    def _records(self) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
        with self.path.open("rb") as f:
            for number, line in enumerate(_bounded_lines(f), start=1):
                if not line.strip():
                    continue
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    yield number, None, f"line {number}: not JSON ({exc})"
                    continue
                if not isinstance(value, dict):
                    yield number, None, f"line {number}: not a JSON object"
                    continue
                if value.get("resourceType") == "AuditEvent":
                    raise SourceError(
                        f"{self.path}: a FHIR AuditEvent export holds no chain links to verify; "
                        "replay the audit log database or its --format jsonl export"
                    )
                yield number, value, ""

    def check_chain(self, allow_broken_chain: bool) -> None:
        prev, expected, problem = GENESIS, 1, ""
        for number, value, error in self._records():
            ccc = value.get("ccc") if value else None
            if error or not isinstance(ccc, dict):
                problem = error or f"line {number}: no chain fields (ccc.seq, ccc.hash, ccc.prevHash)"
                break
            if ccc.get("seq") != expected:
                problem = f"line {number}: record {expected} is missing (the export jumps to {ccc.get('seq')!r})"
                break
            if ccc.get("prevHash") != prev:
                problem = f"line {number}: record {expected} does not follow record {expected - 1}"
                break
            prev, expected = str(ccc.get("hash")), expected + 1
        if problem:
            self._refuse_or_note(problem, allow_broken_chain)
        else:
            self.info.chain = f"links verified ({expected - 1} records; an export's hashes cannot be recomputed)"

    def chunks(self, size: int = CHUNK_ITEMS) -> Iterator[list[Item]]:
        chunk: list[Item] = []
        index = 0
        for number, value, error in self._records():
            if value is not None and value.get("log.kind") not in ("decision", None):
                continue  # events and annotations decide nothing
            item: Item = (index, None, error) if error else _export_item(index, number, value)
            chunk.append(item)
            index += 1
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _export_item(index: int, number: int, value: dict[str, Any] | None) -> Item:
    """One decision-log line rebuilt as a request, or why it cannot be."""
    try:
        assert value is not None
        check = value["checkResources"]
        inp = check["inputs"][0]
        principal, resource, actions = inp["principal"], inp["resource"], inp["actions"]
        effects = check["outputs"][0]["actions"]
        action = str(actions[0])
        body = rebuilt_request(
            str(principal["id"]),
            [str(r) for r in principal.get("roles") or []],
            str(resource["kind"]),
            str(resource["id"]),
            "",
            action,
        )
        seq = int(value.get("ccc", {}).get("seq", 0))
        body["_recorded"] = (seq, _timestamp(str(value.get("timestamp", ""))), str(effects[action]["effect"]))
    except (KeyError, IndexError, TypeError, ValueError, AssertionError) as exc:
        return index, None, f"line {number}: not a decision record that can be rebuilt ({type(exc).__name__}: {exc})"
    return index, body, ""
