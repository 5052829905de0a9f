"""Policy-change impact: every recorded decision a new policy set would flip, before it ships.

``ccc-authz impact OLD NEW --requests FILE`` replays requests (impact_sources.py) under two policy
sets, each a policy directory or a signed bundle (verified before anything in it is parsed), and
collects every action whose effect differs (newly allowed, newly denied) or whose outputs differ
with the same effect. impact_report.py renders the result.

How it scales: the requests are read as a stream of chunks; each chunk is replayed into a
``Partial`` (counts, groups with their first examples, the chunk's flips), and partials are merged
in input order, so memory holds a window of chunks and the groups, never the whole log. The flips
themselves go to a spool file as they arrive (the JSON report lists them all). Chunks are replayed
in forked worker processes that inherit both compiled policy sets (``--workers``), or on a Dask
distributed cluster (``--cluster``), whose workers receive the policy files and compile them
once. Examples are the lowest-indexed of each group and partials are merged in input order, so the
report does not depend on how the work was shared.

Only what the change can touch is decided twice (``ChangeScope``: the kinds a changed resource
policy names, and within a policy whose rules alone changed, the actions those rules name), and
a request identical to an earlier one but for its requestId reuses that one's outcome
(``Replayer``): both are exact, since a decision depends only on the request, the policies and
the instant. Both sides of one request are decided at the same instant (the run's start, or the
time an audit record was written), so conditions on ``now()`` never flip by themselves.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import multiprocessing
import os
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import IO, Any

import orjson
import yaml

from . import api, globs, requestjson
from .bundle import BundleError, policy_source_files, read_bundle_file
from .compile import RESOURCE, PolicySet, compile_policy_dir
from .engine import Engine
from .errors import RequestError
from .evaluate import CheckInput, CheckOutput, EvalParams
from .impact_sources import CHUNK_ITEMS, Item, RequestSource, SourceError
from .loader import POLICY_SUFFIXES, SCHEMAS_DIR, TESTDATA_DIR
from .plan import ActionEffect
from .policy import ALLOW

NEWLY_ALLOWED, NEWLY_DENIED, OUTPUT_CHANGED = "newly_allowed", "newly_denied", "output_changed"
DIRECTIONS = (NEWLY_ALLOWED, NEWLY_DENIED, OUTPUT_CHANGED)
EXAMPLES_PER_GROUP = 3
MAX_LISTED = 100  # malformed requests and unknown kinds listed (all are counted)
MAX_EXAMPLE_CHARS = 2000
CONNECT_SECONDS = 10  # to reach a --cluster scheduler

GroupKey = tuple[str, str, str, str]  # kind, action, roles ("+"-joined, sorted), direction


class ImpactError(Exception):
    """A run that cannot start: a side that cannot be read or verified."""


class SideDoesNotCompile(ImpactError):
    """One side's policies do not compile (every problem listed)."""


# ---- the two sides -----------------------------------------------------------------------------


@dataclass
class PolicySide:
    """One side of the comparison: its policy files, read once (the diff and the evaluation see
    the same bytes), and what they are."""

    path: str
    description: str
    files: dict[str, bytes]


def load_side(path: Path, public_key: Any | None) -> PolicySide:
    """A policy directory's files, or a bundle's once its signature and hashes are verified."""
    if path.is_dir():
        files = {str(PurePosixPath(*f.parts)): (path / f).read_bytes() for f in policy_source_files(path)}
        return PolicySide(str(path), "policy directory", files)
    if not path.exists():
        raise ImpactError(f"{path}: no such policy directory or bundle")
    if public_key is None:
        raise ImpactError(f"{path} is a bundle: --pubkey is needed to verify it before it is used")
    try:
        bundle = read_bundle_file(path, public_key)
    except BundleError as exc:
        raise ImpactError(f"{path}: bundle refused: {exc}") from None
    description = f"bundle version {bundle.manifest.version} (sha256 {bundle.sha256[:16]})"
    return PolicySide(str(path), description, dict(bundle.files))


def compile_files(files: dict[str, bytes], keep: list[tempfile.TemporaryDirectory[str]]) -> PolicySet:
    """Compiles policy files written to a private temporary directory (kept alive in ``keep``:
    a policy set may read its schemas later). Raises PolicyErrors."""
    directory = tempfile.TemporaryDirectory(prefix="ccc-impact-")
    keep.append(directory)
    root = Path(directory.name)
    os.chmod(root, 0o700)
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return compile_policy_dir(root)


def files_digest(files: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


class KnownKinds:
    """Whether any rule of a policy set names a resource kind (globs included)."""

    def __init__(self, policy_set: PolicySet) -> None:
        patterns = {row.resource for rows in policy_set.rows.values() for row in rows}
        patterns |= {
            rule.resource for by_role in policy_set.role_rules.values() for rs in by_role.values() for rule in rs
        }
        patterns |= {name for k, _v, _s, name in policy_set.empty_policies if k == RESOURCE}
        self.patterns = sorted(patterns)
        self.known = lru_cache(maxsize=4096)(self._known)

    def _known(self, kind: str) -> bool:
        return any(globs.matches(pattern, kind) for pattern in self.patterns)


class ChangeScope:
    """Which decisions a change can touch, so the others are counted without being decided twice.

    A resource kind that no changed resource policy names (by its glob) decides the same on both
    sides. Within a changed resource policy whose every part but its rules is unchanged, an action
    decides the same when the rules that name it (by their action globs), with their positions
    (an unnamed rule is named by its position), are the same on both sides. Any other changed
    policy file (derived roles, exported variables or constants, principal or role policies) may
    touch every decision: then everything is decided twice. Test suites, their fixtures and
    schemas (not enforced in a replay) decide nothing."""

    def __init__(
        self, old_files: dict[str, bytes], new_files: dict[str, bytes], old_set: PolicySet, new_set: PolicySet
    ) -> None:
        self.everything = False
        # Per changed resource policy: its resource globs, and its rules on each side (None: the
        # policy changed outside its rules, or exists on one side only: every action).
        self.changed: list[tuple[tuple[str, ...], list[Any] | None, list[Any] | None]] = []
        patterns = _resource_patterns(old_set, new_set)
        for key, globs_ in sorted(patterns.items()):
            old_file, new_file = old_set.sources.get(key), new_set.sources.get(key)
            old_data = old_files.get(old_file) if old_file else None
            new_data = new_files.get(new_file) if new_file else None
            if old_data is not None and old_data == new_data:
                continue
            old_rules, new_rules = _rules_if_only_they_differ(old_data, new_data)
            self.changed.append((tuple(sorted(globs_)), old_rules, new_rules))
        resource_files = {old_set.sources.get(k) for k in patterns} | {new_set.sources.get(k) for k in patterns}
        for name in set(old_files) | set(new_files):
            if name not in resource_files and _decisive(name) and old_files.get(name) != new_files.get(name):
                self.everything = True
        self.kind = lru_cache(maxsize=4096)(self._kind)
        self.action = lru_cache(maxsize=4096)(self._action)

    def _kind(self, kind: str) -> bool:
        return self.everything or any(_matches_any(globs_, kind) for globs_, _, _ in self.changed)

    def _action(self, kind: str, action: str) -> bool:
        if self.everything:
            return True
        for globs_, old_rules, new_rules in self.changed:
            if not _matches_any(globs_, kind):
                continue
            if old_rules is None or new_rules is None:
                return True
            if _rules_for(old_rules, action) != _rules_for(new_rules, action):
                return True
        return False


def _resource_patterns(old_set: PolicySet, new_set: PolicySet) -> dict[str, set[str]]:
    """Resource policy key -> the resource globs of its rows, on either side."""
    patterns: dict[str, set[str]] = {}
    for policy_set in (old_set, new_set):
        for rows in policy_set.rows.values():
            for row in rows:
                if row.kind == RESOURCE and not row.from_role_policy:
                    patterns.setdefault(row.policy_key, set()).add(row.resource)
        for k, version, scope, name in policy_set.empty_policies:
            if k == RESOURCE:
                patterns.setdefault(policy_set.resource_policy_key(name, version, scope), set()).add(name)
    return patterns


def _rules_if_only_they_differ(old: bytes | None, new: bytes | None) -> tuple[list[Any] | None, list[Any] | None]:
    """Both sides' rules when a resource policy differs in its rules alone, else (None, None)."""
    if old is None or new is None:
        return None, None
    try:
        old_doc, new_doc = yaml.safe_load(old), yaml.safe_load(new)
    except yaml.YAMLError:
        return None, None
    if not (isinstance(old_doc, dict) and isinstance(new_doc, dict)):
        return None, None
    old_policy, new_policy = old_doc.get("resourcePolicy"), new_doc.get("resourcePolicy")
    if not (isinstance(old_policy, dict) and isinstance(new_policy, dict)):
        return None, None
    rest = ({k: v for k, v in d.items() if k != "resourcePolicy"} for d in (old_doc, new_doc))
    if next(rest) != next(rest):
        return None, None
    if {k: v for k, v in old_policy.items() if k != "rules"} != {k: v for k, v in new_policy.items() if k != "rules"}:
        return None, None
    old_rules, new_rules = old_policy.get("rules") or [], new_policy.get("rules") or []
    if not (isinstance(old_rules, list) and isinstance(new_rules, list)):
        return None, None
    if _repeats_a_name(old_rules) or _repeats_a_name(new_rules):
        return None, None  # rules of one name may share a condition's outcome across actions
    return old_rules, new_rules


def _repeats_a_name(rules: list[Any]) -> bool:
    names = [r.get("name") for r in rules if isinstance(r, dict) and r.get("name")]
    return len(names) != len(set(map(str, names)))


def _rules_for(rules: list[Any], action: str) -> list[tuple[int, Any]]:
    """The rules (with their positions) whose actions name ``action``; a malformed one counts."""
    out = []
    for i, rule in enumerate(rules):
        actions = rule.get("actions") if isinstance(rule, dict) else None
        if not isinstance(actions, list) or any(not isinstance(a, str) or globs.matches(a, action) for a in actions):
            out.append((i, rule))
    return out


def _matches_any(patterns: tuple[str, ...], value: str) -> bool:
    return any(globs.matches(p, value) for p in patterns)


def _decisive(name: str) -> bool:
    """Whether a bundle file is a policy the engine loads (as loader.policy_files finds them)."""
    path = PurePosixPath(name)
    return (
        path.suffix in POLICY_SUFFIXES
        and not any(part.startswith(".") for part in path.parts)
        and path.parts[0] != SCHEMAS_DIR
        and TESTDATA_DIR not in path.parts[:-1]
        and not path.stem.endswith("_test")
    )


# ---- the result of a chunk, and merging ------------------------------------------------------------


@dataclass
class Group:
    """Flips of one kind, action, role set and direction."""

    count: int = 0
    rules: dict[tuple[str, str], int] = field(default_factory=dict)  # (before, after) responsible -> flips
    policies: set[str] = field(default_factory=set)  # policy keys responsible on either side
    examples: list[tuple[int, str]] = field(default_factory=list)  # (request index, request JSON)

    def merge(self, other: Group) -> None:
        self.count += other.count
        for pair, n in other.rules.items():
            self.rules[pair] = self.rules.get(pair, 0) + n
        self.policies |= other.policies
        self.examples = _lowest(self.examples, other.examples, EXAMPLES_PER_GROUP)


def _lowest(a: list[Any], b: list[Any], limit: int) -> list[Any]:
    """The ``limit`` lowest-indexed entries of two lists (entries start with their index); equal
    indices keep their order, so merging in any grouping gives the same list."""
    return sorted(a + b, key=lambda entry: entry[0])[:limit]


@dataclass
class Partial:
    """What replaying some requests found; partials merge in input order into the whole run's."""

    requests: int = 0
    resources: int = 0
    decisions: int = 0
    malformed: int = 0
    malformed_list: list[tuple[int, str]] = field(default_factory=list)
    unknown: int = 0
    unknown_list: list[tuple[int, str]] = field(default_factory=list)
    disagree: int = 0  # rebuilt requests whose recorded effect the old policies do not reproduce
    disagree_list: list[tuple[int, int, str, str]] = field(default_factory=list)
    groups: dict[GroupKey, Group] = field(default_factory=dict)
    flips: list[bytes] = field(default_factory=list)  # one JSON object each, in input order
    reused: int = 0  # requests answered from an identical earlier request's outcome

    def merge(self, other: Partial) -> None:
        """Adds ``other`` (which comes after this one in the input), flips excepted (spooled)."""
        self.requests += other.requests
        self.resources += other.resources
        self.decisions += other.decisions
        self.malformed += other.malformed
        self.malformed_list = _lowest(self.malformed_list, other.malformed_list, MAX_LISTED)
        self.unknown += other.unknown
        self.unknown_list = _lowest(self.unknown_list, other.unknown_list, MAX_LISTED)
        self.disagree += other.disagree
        self.disagree_list = _lowest(self.disagree_list, other.disagree_list, MAX_LISTED)
        self.reused += other.reused
        for key, group in other.groups.items():
            mine = self.groups.get(key)
            if mine is None:
                self.groups[key] = group
            else:
                mine.merge(group)

    @property
    def flip_count(self) -> int:
        return sum(g.count for g in self.groups.values())


# ---- replaying -----------------------------------------------------------------------------------


def responsible(effect: ActionEffect) -> str:
    """The rule that decided, or the policy that decided without a rule."""
    if effect.rule:
        return effect.rule
    if effect.policy and effect.policy != "NO_MATCH":
        return f"{effect.policy} (no rule matched)"
    return "no policy matched"


def _policy_key(effect: ActionEffect) -> str:
    return effect.rule.split("#", 1)[0] if effect.rule else effect.policy


def _outputs(out: CheckOutput, action: str) -> list[dict[str, Any]]:
    return [api._output_entry(o) for o in out.outputs if o.action == action]


@dataclass(frozen=True, slots=True)
class _Flip:
    """One flip of a request, without the request's index: reusable for an identical request."""

    key: GroupKey
    rules: tuple[str, str]
    policies: tuple[str, ...]
    json_tail: bytes  # the flip's JSON object after its opening brace, without "request" and "seq"


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one well-formed request gives, whatever its index."""

    resources: int
    decisions: int
    unknown_kinds: tuple[str, ...]
    flips: tuple[_Flip, ...]


# Outcomes remembered per process, then forgotten all at once: bounded memory (keys are 16-byte
# digests; the flips' JSON they hold is counted).
MEMO_ENTRIES = 100_000
MEMO_BYTES = 32 << 20


class Replayer:
    """Both compiled policy sets, and the replay of one chunk of requests.

    A request that repeats an earlier one but for its requestId (the same clinician opening the
    same chart again) has the same outcome: decisions depend only on the request, the policies and
    the instant, which is fixed for the whole run. Such outcomes are remembered (MEMO_ENTRIES) and
    reused. Rebuilt audit requests are decided at their own record's time, so never reused."""

    def __init__(self, old: PolicySet, new: PolicySet, strict: bool, now: datetime, affected: ChangeScope) -> None:
        params = EvalParams(strict_evaluation=strict)
        self.old, self.new = Engine(old, params), Engine(new, params)
        self.kinds_old, self.kinds_new = KnownKinds(old), KnownKinds(new)
        self.now = now
        self.affected = affected
        self.memo: dict[bytes, _Outcome] = {}
        self.memo_bytes = 0
        self.reused = 0

    def replay(self, items: Iterable[Item]) -> Partial:
        part = Partial()
        for index, payload, note in items:
            part.requests += 1
            if payload is None:
                _add_malformed(part, index, note)
                continue
            try:
                self._replay_one(part, index, payload)
            except RecursionError:
                _add_malformed(part, index, "the request is nested too deeply to decide")
        part.reused = self.reused
        self.reused = 0
        return part

    def _replay_one(self, part: Partial, index: int, payload: bytes | dict[str, Any]) -> None:
        recorded = None
        memo_key = None
        if isinstance(payload, dict):
            body = payload
            recorded = body.pop("_recorded", None)
        else:
            try:
                body = requestjson.loads(payload)
            except requestjson.RequestJsonError as exc:
                _add_malformed(part, index, exc.message)
                return
            memo_key = _memo_key(body)
            known = self.memo.get(memo_key) if memo_key is not None else None
            if known is not None:
                self.reused += 1
                _add_outcome(part, index, body, known, None)
                return
        try:
            _, inputs, _ = api.parse_check_request(body)
        except RequestError as exc:
            _add_malformed(part, index, str(exc))
            return
        now = datetime.fromisoformat(recorded[1]) if recorded and recorded[1] else self.now
        outcome = self._decide(inputs, now, part, index, recorded)
        if memo_key is not None:
            size = sum(len(flip.json_tail) for flip in outcome.flips) + 100
            if len(self.memo) >= MEMO_ENTRIES or self.memo_bytes + size > MEMO_BYTES:
                self.memo.clear()
                self.memo_bytes = 0
            self.memo[memo_key] = outcome
            self.memo_bytes += size
        _add_outcome(part, index, body, outcome, recorded)

    def _decide(self, inputs: list[Any], now: datetime, part: Partial, index: int, recorded: Any) -> _Outcome:
        shared_old: dict[Any, Any] = {}
        shared_new: dict[Any, Any] = {}
        decisions = 0
        unknown: list[str] = []
        flips: list[_Flip] = []
        for inp in inputs:
            kind = inp.resource.kind
            if not self.kinds_old.known(kind) and not self.kinds_new.known(kind):
                unknown.append(kind)
                continue
            decisions += len(inp.actions)
            actions = [a for a in inp.actions if self.affected.action(kind, a)] if self.affected.kind(kind) else []
            if not actions:
                if recorded is not None:  # the recorded effect is still compared with the old one's
                    self._check_recorded(part, index, recorded, self.old.check(inp, now, shared_old, False))
                continue
            if len(actions) < len(inp.actions):
                if recorded is not None:
                    self._check_recorded(part, index, recorded, self.old.check(inp, now, shared_old, False))
                    recorded = None
                inp = CheckInput(inp.principal, inp.resource, actions, inp.aux_data, inp.request_id)
            before = self.old.check(inp, now, shared_old, with_derived_roles=False)
            after = self.new.check(inp, now, shared_new, with_derived_roles=False)
            if before.outputs or after.outputs or before.actions != after.actions:
                flips.extend(_flips(inp, before, after))
            if recorded is not None:
                self._check_recorded(part, index, recorded, before)
        return _Outcome(len(inputs), decisions, tuple(unknown), tuple(flips))

    def _check_recorded(self, part: Partial, index: int, recorded: Any, before: CheckOutput) -> None:
        """A rebuilt request's old decision against the one the log recorded."""
        replayed = next(iter(before.actions.values())).effect
        if replayed != recorded[2]:
            part.disagree += 1
            if len(part.disagree_list) < MAX_LISTED:
                part.disagree_list.append((index, int(recorded[0]), str(recorded[2]), replayed))


def _memo_key(body: Any) -> bytes | None:
    """A request's identity but for its requestId: a 128-bit digest of its JSON (None when it
    cannot be written back)."""
    if type(body) is not dict or type(body.get("requestId", "")) is not str:
        return None  # (a requestId of the wrong type is refused, so it must be parsed each time)
    try:
        data = orjson.dumps({k: v for k, v in body.items() if k != "requestId"})
    except (TypeError, orjson.JSONEncodeError):
        return None
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Difference:
    """One action of one resource that the two sides decide otherwise: its effect changed, or
    its outputs with the same effect (``outputs``: before and after, for OUTPUT_CHANGED only).
    The comparison the replay and the workstation's shadow evaluation (shadow.py) share."""

    action: str
    direction: str
    before: ActionEffect
    after: ActionEffect
    outputs: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None


def differences(actions: Iterable[str], before: CheckOutput, after: CheckOutput) -> Iterator[Difference]:
    """The actions whose effect or outputs differ between two decisions of one resource."""
    for action in actions:
        b, a = before.actions[action], after.actions[action]
        if b.effect != a.effect:
            yield Difference(action, NEWLY_ALLOWED if a.effect == ALLOW else NEWLY_DENIED, b, a)
            continue
        out_b, out_a = _outputs(before, action), _outputs(after, action)
        if out_b != out_a:
            yield Difference(action, OUTPUT_CHANGED, b, a, (out_b, out_a))


def _flips(inp: Any, before: CheckOutput, after: CheckOutput) -> Iterator[_Flip]:
    """The actions of one resource whose effect or outputs differ between the two sides."""
    roles = sorted(set(inp.principal.roles))
    for diff in differences(inp.actions, before, after):
        b, a = diff.before, diff.after
        flip: dict[str, Any] = {
            "resource": {"kind": inp.resource.kind, "id": inp.resource.id},
            "action": diff.action,
            "principal": inp.principal.id,
            "roles": roles,
        }
        if diff.outputs is None:
            flip.update(before=b.effect, after=a.effect)
        else:
            flip.update(effect=b.effect, output={"before": diff.outputs[0], "after": diff.outputs[1]})
        rules = (responsible(b), responsible(a))
        flip.update(before_rule=rules[0], after_rule=rules[1], direction=diff.direction)
        policies = tuple(p for p in (_policy_key(b), _policy_key(a)) if p and p != "NO_MATCH")
        tail = _dumps(flip)[1:]
        yield _Flip((inp.resource.kind, diff.action, "+".join(roles), diff.direction), rules, policies, tail)


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # deeper than orjson writes, or an integer beyond 64 bits: json writes it
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _add_outcome(part: Partial, index: int, body: dict[str, Any], outcome: _Outcome, recorded: Any) -> None:
    """One request's outcome counted in a partial, under the request's own index."""
    part.resources += outcome.resources
    part.decisions += outcome.decisions
    for kind in outcome.unknown_kinds:
        part.unknown += 1
        if len(part.unknown_list) < MAX_LISTED:
            part.unknown_list.append((index, kind))
    if not outcome.flips:
        return
    head = b'{"request":%d,' % index
    if recorded is not None:
        head += b'"seq":%d,' % int(recorded[0])
    text: str | None = None
    for flip in outcome.flips:
        part.flips.append(head + flip.json_tail)
        group = part.groups.get(flip.key)
        if group is None:
            group = part.groups[flip.key] = Group()
        group.count += 1
        group.rules[flip.rules] = group.rules.get(flip.rules, 0) + 1
        group.policies.update(flip.policies)
        if len(group.examples) < EXAMPLES_PER_GROUP:
            text = text if text is not None else _example_text(body)
            group.examples.append((index, text))


def _add_malformed(part: Partial, index: int, message: str) -> None:
    part.malformed += 1
    if len(part.malformed_list) < MAX_LISTED:
        part.malformed_list.append((index, message[:500]))


def _example_text(body: dict[str, Any]) -> str:
    try:
        text = orjson.dumps(body).decode()
    except TypeError:
        text = repr(body)
    return text if len(text) <= MAX_EXAMPLE_CHARS else text[:MAX_EXAMPLE_CHARS] + "…"


# ---- running: here, in forked workers, or on a Dask cluster -------------------------------------------


@dataclass
class Run:
    """A whole run's outcome: the merged partial, and the spool holding every flip in order."""

    total: Partial
    spool: IO[bytes]
    old_set: PolicySet
    new_set: PolicySet
    strict: bool
    where: str  # "1 process", "2 processes", "Dask cluster at ..."


_REPLAYER: Replayer | None = None  # what a forked worker inherits


def _replay_here(items: list[Item]) -> Partial:
    assert _REPLAYER is not None
    return _REPLAYER.replay(items)


def replay(
    old: PolicySide,
    new: PolicySide,
    source: RequestSource,
    *,
    strict: bool = True,
    workers: int = 1,
    cluster: str | None = None,
    now: datetime | None = None,
    spool: IO[bytes] | None = None,
    chunk_size: int = CHUNK_ITEMS,
) -> Run:
    """Replays every request of ``source`` under both sides. Raises PolicyErrors (with the side
    named in ``ImpactError``) when either side does not compile."""
    global _REPLAYER
    keep: list[tempfile.TemporaryDirectory[str]] = []
    old_set, new_set = _compile_side(old, keep), _compile_side(new, keep)
    now = now or datetime.now(UTC)
    spool = spool if spool is not None else tempfile.TemporaryFile()  # noqa: SIM115 -- the caller closes it
    total = Partial()
    if cluster:
        partials = _on_cluster(cluster, old, new, strict, now, source.chunks(chunk_size))
        where = f"Dask cluster at {cluster}"
    else:
        _REPLAYER = Replayer(old_set, new_set, strict, now, ChangeScope(old.files, new.files, old_set, new_set))
        partials = _here(source.chunks(chunk_size), workers)
        where = f"{workers} process{'es' if workers > 1 else ''}"
    for part in partials:
        for flip in part.flips:
            spool.write(flip + b"\n")
        part.flips = []
        total.merge(part)
    spool.flush()
    spool.seek(0)
    for directory in keep:
        directory.cleanup()
    return Run(total, spool, old_set, new_set, strict, where)


def _compile_side(side: PolicySide, keep: list[tempfile.TemporaryDirectory[str]]) -> PolicySet:
    from .errors import PolicyErrors

    try:
        return compile_files(side.files, keep)
    except PolicyErrors as exc:
        root = keep[-1].name + "/" if keep else ""
        problems = "\n".join(f"  {str(p.position).replace(root, '')}: {p.message}" for p in exc.problems)
        raise SideDoesNotCompile(f"{side.path} ({side.description}) does not compile:\n{problems}") from None


def _here(chunks: Iterator[list[Item]], workers: int) -> Iterator[Partial]:
    """Chunks replayed in this process, or by forked workers, results in input order. Should a
    worker die, its chunk and every later one are replayed here: nothing is lost or hangs."""
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        for chunk in chunks:
            yield _replay_here(chunk)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    broken = False

    def result(chunk: list[Item], future: Any) -> Partial:
        nonlocal broken
        try:
            partial: Partial = future.result()
            return partial
        except BrokenProcessPool:
            if not broken:
                sys.stderr.write("ccc-authz impact: a worker process died; going on in this process\n")
                broken = True
            return _replay_here(chunk)

    def submit(chunk: list[Item]) -> Any:
        nonlocal broken
        if broken:
            return None
        try:
            return pool.submit(_replay_here, chunk)
        except BrokenProcessPool:  # the pool saw the death before any result did
            sys.stderr.write("ccc-authz impact: a worker process died; going on in this process\n")
            broken = True
            return None

    try:
        pending: deque[tuple[list[Item], Any]] = deque()
        for chunk in chunks:
            pending.append((chunk, submit(chunk)))
            if len(pending) >= 2 * workers:
                chunk, future = pending.popleft()
                yield result(chunk, future) if future is not None else _replay_here(chunk)
        while pending:
            chunk, future = pending.popleft()
            yield result(chunk, future) if future is not None else _replay_here(chunk)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _in_order(chunks: Iterator[list[Item]], submit: Callable[[list[Item]], Any], window: int) -> Iterator[Partial]:
    """Submits chunks keeping at most ``window`` in flight; yields their results in order."""
    pending: deque[Any] = deque()
    for chunk in chunks:
        pending.append(submit(chunk))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


# On a cluster worker: the replayer of the policy files last received, compiled once.
_REMOTE: dict[str, tuple[Replayer, list[tempfile.TemporaryDirectory[str]]]] = {}


def replay_remote(payload: tuple[dict[str, bytes], dict[str, bytes], bool, str, str], items: list[Item]) -> Partial:
    """A chunk replayed on a cluster worker (Dask calls this by name: authz must be installed there)."""
    old_files, new_files, strict, now, key = payload
    if key not in _REMOTE:
        for _, (_, dirs) in _REMOTE.items():
            for d in dirs:
                d.cleanup()
        _REMOTE.clear()
        keep: list[tempfile.TemporaryDirectory[str]] = []
        old_set, new_set = compile_files(old_files, keep), compile_files(new_files, keep)
        affected = ChangeScope(old_files, new_files, old_set, new_set)
        _REMOTE[key] = (Replayer(old_set, new_set, strict, datetime.fromisoformat(now), affected), keep)
    return _REMOTE[key][0].replay(items)


def _on_cluster(
    address: str, old: PolicySide, new: PolicySide, strict: bool, now: datetime, chunks: Iterator[list[Item]]
) -> Iterator[Partial]:
    """Chunks replayed by the workers of a Dask distributed scheduler, results in input order."""
    try:
        distributed: Any = importlib.import_module("distributed")
    except ImportError:
        raise ImpactError("--cluster needs Dask distributed (pip install distributed)") from None
    try:
        client = distributed.Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ImpactError(f"no Dask scheduler answers at {address}: {exc}") from None
    try:
        key = files_digest(old.files) + files_digest(new.files) + str(strict) + now.isoformat()
        payload = client.scatter((old.files, new.files, strict, now.isoformat(), key), broadcast=True, hash=False)
        workers = max(1, len(client.scheduler_info().get("workers", {})))

        def submit(chunk: list[Item]) -> Any:
            return client.submit(replay_remote, payload, chunk, pure=False)

        try:
            yield from _in_order(chunks, submit, 3 * workers)
        except (ImpactError, SourceError):
            raise
        except Exception as exc:  # noqa: BLE001 -- a worker's failure, raised here by Dask
            raise ImpactError(f"the Dask cluster at {address} failed: {type(exc).__name__}: {exc}") from None
    finally:
        client.close()
