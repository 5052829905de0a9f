"""``ccc-authz``: the policy tool for analysts and IT.

    ccc-authz compile DIR [--no-strict-evaluation] [--skip-tests] [--ignore-schemas]
    ccc-authz check --policies DIR [--no-strict-evaluation] [--audit DB [--guard SOCKET]] < requests.jsonl
    ccc-authz plan --policies DIR [--no-strict-evaluation] < plan_requests.jsonl
    ccc-authz audit verify DB [--guard SOCKET] [--checkpoint-key PUB] [--against COLLECTOR_EXPORT]
    ccc-authz audit export DB --format jsonl|fhir
    ccc-authz keygen --out DIR
    ccc-authz bundle build POLICY_DIR --key PRIVATE_KEY --version N --out FILE
                           [--baseline OLD --requests FILE [--accept FILE]]
    ccc-authz impact OLD NEW --requests FILE [--format text|json] [--html FILE] [--accept FILE] [--cluster ADDRESS]
    ccc-authz bundle verify FILE --pubkey PUBLIC_KEY
    ccc-authz serve DIR --port P [--token-file FILE]
    ccc-authz package sign DIR --key RELEASE_PRIVATE_KEY [--file NAME ...]
    ccc-authz package verify DIR --pubkey RELEASE_PUBLIC_KEY

Exit statuses follow ``cerbos compile``: 0 all good, 3 the policies do not compile,
4 a test failed; 2 is a usage error. ``audit verify`` has its own (authz/audit_command.py):
0 intact, 5 tampered, 6 damaged, 7 a reference cannot be used.
"""

from __future__ import annotations

import argparse
import errno
import gc
import json
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

import orjson

from . import impact_command, requestjson
from .audit import AuditChain, AuditRecord, AuditWriteError
from .audit_command import add_parser as add_audit_parser
from .audit_command import cmd_audit
from .compile import compile_policy_dir
from .engine import Engine
from .errors import PolicyErrors
from .evaluate import EvalParams
from .workers import ParentLink, end_workers

if TYPE_CHECKING:
    from .guard import GuardClient

# A subcommand's own modules (test suites, the guard, bundles and cryptography) are imported when it
# runs: `check` starts for every co-process and batch, and its start-up should not pay for them.

EXIT_POLICY_ERRORS = 3
EXIT_TEST_FAILURES = 4
EXIT_AUDIT_FAILURE = 5
EXIT_IO_ERROR = 74  # sysexits EX_IOERR: a file could not be read or written


def _params(args: argparse.Namespace) -> EvalParams:
    return EvalParams(strict_evaluation=not args.no_strict_evaluation)


def _test_params(args: argparse.Namespace) -> EvalParams:
    """Test suites run as ``cerbos compile`` runs them: schemas enforced (a request that breaks
    its schema is denied) unless ``--ignore-schemas``."""
    ignore = getattr(args, "ignore_schemas", False)
    enforcement = "none" if ignore else "reject"
    return EvalParams(strict_evaluation=not args.no_strict_evaluation, schema_enforcement=enforcement)


def cmd_compile(args: argparse.Namespace, out: TextIO) -> int:
    from .verify import ERRORED, FAILED, render_results, run_test_suites

    root = Path(args.dir)
    try:
        policy_set = compile_policy_dir(root, check_schemas=not getattr(args, "ignore_schemas", False))
    except PolicyErrors as exc:
        out.write("Compilation errors\n")
        for problem in exc.problems:
            out.write(problem.render(root) + "\n\n")
        out.write(f"{len(exc.problems)} error(s) in {root}\n")
        return EXIT_POLICY_ERRORS
    if args.skip_tests:
        out.write(f"{policy_set.policy_count} policies compiled\n")
        return 0
    results, problems = run_test_suites(root, policy_set, _test_params(args))
    if problems:
        out.write("Test suite errors\n")
        for problem in problems:
            out.write(problem.render(root) + "\n\n")
        return EXIT_TEST_FAILURES
    if results:
        out.write(render_results(results) + "\n")
    else:
        out.write(f"{policy_set.policy_count} policies compiled, no test suites found\n")
    failed = any(s.verdict in (FAILED, ERRORED) for s in results)
    return EXIT_TEST_FAILURES if failed else 0


_ENGINE: Engine | None = None  # the engine a --workers child process inherits (fork)


def _answer(item: tuple[int, bytes | str], audited: bool) -> tuple[bytes, list[AuditRecord] | None]:
    """One input line's response (JSON) and, when auditing, its audit records."""
    number, line = item
    assert _ENGINE is not None
    try:
        body = requestjson.loads(line)
    except requestjson.RequestJsonError as exc:
        return _error(f"line {number}: {exc.message}", exc.code), None
    records: list[AuditRecord] | None = [] if audited else None
    try:
        response = _ENGINE.check_request(body, audit=records)
    except RecursionError:
        return _error(f"line {number}: the request is nested too deeply to decide"), None
    except Exception as exc:  # noqa: BLE001 -- one line's failure must not cost the others their answers
        return _error(f"line {number}: the request could not be decided: {type(exc).__name__}: {exc}", 13), None
    if "code" in response and "message" in response:
        # Cerbos decodes before it validates: a field of the wrong name or type is what it reports.
        decoded = requestjson.decode_error(line) if response["code"] == 3 else None
        response["message"] = f"line {number}: {decoded or response['message']}"
        records = None
    try:
        return orjson.dumps(response), records
    except TypeError:  # orjson writes at most 254 levels; a deep output value is written by json
        try:
            return json.dumps(response, separators=(",", ":"), ensure_ascii=False).encode(), records
        except RecursionError:
            return _error(f"line {number}: the answer is nested too deeply to write"), None


def _error(message: str, code: int = 3) -> bytes:
    return json.dumps({"code": code, "message": message}, separators=(",", ":")).encode()


def _answer_many(items: list[tuple[int, bytes | str]], audited: bool) -> list[tuple[bytes, list[AuditRecord] | None]]:
    """Answers to numbered lines (in a worker process, the engine is the one it inherited by fork)."""
    return [_answer(item, audited) for item in items]


PARALLEL_MIN_LINES = 64  # a smaller batch is answered in the main process: no hand-off latency
MAX_BATCH_LINES = 2048
SWITCH_INTERVAL = 0.0002  # seconds, while workers run (see BatchAnswers)


class BatchAnswers:
    """Answers batches of input lines, in order. A small batch is answered in this process (a
    co-process waiting for each answer pays no hand-off); a large one is cut into contiguous
    shares, one answered here while forked workers answer the others. Workers, which inherit the
    compiled engine, start at the first large batch. Should a worker die, its share is answered
    here and the rest of the input is answered by this process alone: nothing is lost or hangs.
    Workers never outlive this process (authz/workers.py): they die with it, however it dies."""

    def __init__(self, processes: int, audited: bool) -> None:
        self.processes = processes if "fork" in multiprocessing.get_all_start_methods() else 1
        self.audited = audited
        self.pool: ProcessPoolExecutor | None = None
        self.link: ParentLink | None = None

    def __call__(self, batch: list[tuple[int, bytes | str]]) -> list[tuple[bytes, list[AuditRecord] | None]]:
        if self.processes < 2 or len(batch) < PARALLEL_MIN_LINES:
            return _answer_many(batch, self.audited)
        if self.pool is None:
            self.link = ParentLink()
            self.pool = ProcessPoolExecutor(
                self.processes - 1, mp_context=multiprocessing.get_context("fork"), initializer=self.link.in_worker
            )
            # The pool's threads here move shares and answers through pipes a chunk at a time, each
            # chunk needing the GIL that this process's own share holds: at the default 5 ms switch
            # interval a worker waited as long as it worked (measured: 1.4 s -> 0.95 s per 20,000).
            sys.setswitchinterval(SWITCH_INTERVAL)
        share = -(-len(batch) // self.processes)
        shares = [batch[i : i + share] for i in range(share, len(batch), share)]
        pending = [self.pool.submit(_answer_many, part, self.audited) for part in shares]
        answers = _answer_many(batch[:share], self.audited)
        for part, future in zip(shares, pending, strict=True):
            try:
                answers += future.result()
            except BrokenProcessPool:
                sys.stderr.write("ccc-authz check: a worker process died; going on in one process\n")
                self.processes = 1
                answers += _answer_many(part, self.audited)
        return answers

    def close(self) -> None:
        """Stops the workers (every answer handed out has been collected by then)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        if self.link is not None:
            self.link.close()


def default_processes() -> int:
    """The machine's cores, up to four (a batch is cut into one share per process, so more
    processes mean smaller shares for the same hand-off cost; measured here on two cores)."""
    return max(1, min(4, os.cpu_count() or 1))


def cmd_check(args: argparse.Namespace, inp: TextIO, out: TextIO) -> int:
    global _ENGINE
    root = Path(args.policies)
    try:
        _ENGINE = Engine.from_directory(root, _params(args))
    except PolicyErrors as exc:
        sys.stderr.write("\n".join(p.render(root) for p in exc.problems) + "\n")
        return EXIT_POLICY_ERRORS
    # The compiled policies live as long as the process: keep the garbage collector's full
    # passes from walking them again and again (a quarter of a cold run's time otherwise).
    gc.freeze()
    try:
        chain = AuditChain(args.audit, workstation_id=socket.gethostname(), guard=_guard(args)) if args.audit else None
    except AuditWriteError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_AUDIT_FAILURE
    write = _byte_writer(out)
    answers = BatchAnswers(args.workers or default_processes(), audited=chain is not None)
    restore = _end_workers_on_termination()
    try:
        for batch in _batches(_input_lines(inp)):
            for text, records in answers(batch):
                if not _write_answer(text, records, chain, write):
                    return EXIT_AUDIT_FAILURE
            out.flush()
    finally:
        answers.close()
        restore()
        if chain is not None:
            chain.close()  # with a guard: a last checkpoint of the head
    return 0


def _guard(args: argparse.Namespace) -> GuardClient | None:
    """The audit guard that checkpoints the log: ``--guard SOCKET``, else the installed one, if any."""
    from .guard import GuardClient, default_guard

    if args.guard:
        return GuardClient(Path(args.guard))
    return default_guard()


def _end_workers_on_termination() -> Callable[[], None]:
    """SIGTERM or SIGHUP: end the workers, then die of that signal as if it had not been caught
    (the answers already written stand; an audited answer not yet written was recorded first, so
    nothing answered is unaudited). Returns what puts the previous handlers back."""

    def terminate(signum: int, _frame: object) -> None:
        end_workers()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # (a caller running check on another thread keeps its own handlers)
    signals = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {signum: signal.signal(signum, terminate) for signum in signals}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def _batches(lines: Iterator[tuple[bytes | str, bool]]) -> Iterator[list[tuple[int, bytes | str]]]:
    """Numbered non-blank lines, in batches that end where the input pauses (so a caller waiting
    for an answer gets it) or at MAX_BATCH_LINES."""
    batch: list[tuple[int, bytes | str]] = []
    for number, (line, pause) in enumerate(lines, start=1):
        if line and not line.isspace():  # (not strip(): that copies every line)
            batch.append((number, line))
        if batch and (pause or len(batch) >= MAX_BATCH_LINES):
            yield batch
            batch = []
    if batch:
        yield batch


def _write_answer(
    text: bytes, records: list[AuditRecord] | None, chain: AuditChain | None, write: Callable[[bytes], Any]
) -> bool:
    """Writes one answer, its audit records committed first; False when they cannot be."""
    if chain is not None and records:
        try:
            chain.append_many(records)
        except AuditWriteError as exc:
            sys.stderr.write(f"{exc}\n")
            return False
    write(text + b"\n")
    return True


def _byte_writer(out: TextIO) -> Callable[[bytes], Any]:
    """Writes UTF-8 JSON to ``out``: straight to its byte buffer when it has one (no round trip
    through str), else decoded."""
    buffer: BinaryIO | None = getattr(out, "buffer", None)
    if buffer is not None:
        return buffer.write
    return lambda data: out.write(data.decode())


def _input_lines(inp: TextIO) -> Iterator[tuple[bytes | str, bool]]:
    """Each input line, and whether it ends what one read returned (the input may pause there):
    answers are flushed then, so a caller waiting for one gets it, and a batch costs one write
    per read rather than a system call per line. A read takes up to 1 MiB: a file arrives in
    batches large enough to share between processes, a co-process's pipe gives what it has."""
    try:
        fd = inp.fileno()
    except (OSError, AttributeError, ValueError):
        for text_line in inp:
            yield text_line, True
        return
    buffer = bytearray()
    skipped = 0  # bytes of an oversized line dropped so far (only its start is kept)
    while chunk := os.read(fd, 1 << 20):
        buffer += chunk
        end = buffer.rfind(b"\n")
        if end < 0:
            if len(buffer) > requestjson.MAX_LINE_BYTES:  # keep its start, count the rest
                skipped += len(buffer) - requestjson.MAX_LINE_BYTES - 1
                del buffer[requestjson.MAX_LINE_BYTES + 1 :]
            continue  # a line longer than a chunk: read on
        lines = bytes(buffer[:end]).split(b"\n")
        del buffer[: end + 1]
        if skipped:
            lines[0] = _Oversized(lines[0], len(lines[0]) + skipped)
            skipped = 0
        for i, line in enumerate(lines):
            yield line, i == len(lines) - 1
    if buffer or skipped:
        yield (_Oversized(buffer, len(buffer) + skipped) if skipped else bytes(buffer)), True


class _Oversized(bytes):
    """The start of a line too long to be a request, and its whole length (answered as an error
    without holding the rest in memory)."""

    size: int

    def __new__(cls, start: bytes | bytearray, size: int) -> _Oversized:
        line = super().__new__(cls, start[: requestjson.MAX_LINE_BYTES + 1])
        line.size = size
        return line


def cmd_plan(args: argparse.Namespace, inp: TextIO, out: TextIO) -> int:
    """Cerbos ``/api/plan/resources`` request bodies in, one per line; one response body per line
    out (a line that is not JSON, or a request the planner cannot plan, gets Cerbos's error shape)."""
    root = Path(args.policies)
    try:
        engine = Engine.from_directory(root, _params(args))
    except PolicyErrors as exc:
        sys.stderr.write("\n".join(p.render(root) for p in exc.problems) + "\n")
        return EXIT_POLICY_ERRORS
    for number, line in enumerate(inp, start=1):
        if line.strip():
            out.write(_plan_answer(engine, number, line) + "\n")
            out.flush()
    return 0


def _plan_answer(engine: Engine, number: int, line: str) -> str:
    """One line's plan, or an error naming the line: read with the same limits as ``check``'s
    lines (size, depth, Cerbos's JSON rules), and one line's failure costs no other line its answer."""
    try:
        answer = engine.plan_request(requestjson.loads(line))
    except requestjson.RequestJsonError as exc:
        answer = {"code": exc.code, "message": exc.message}
    except RecursionError:
        answer = {"code": 3, "message": "the request is nested too deeply to plan"}
    except Exception as exc:  # noqa: BLE001 -- one line's failure must not cost the others their answers
        answer = {"code": 13, "message": f"the request could not be planned: {type(exc).__name__}: {exc}"}
    if "code" in answer and "message" in answer:
        answer["message"] = f"line {number}: {answer['message']}"
    try:
        return json.dumps(answer, ensure_ascii=False)
    except (RecursionError, ValueError):
        return json.dumps({"code": 13, "message": f"line {number}: the answer could not be written"})


def cmd_keygen(args: argparse.Namespace, out: TextIO) -> int:
    from .bundle import BundleError, generate_keys

    try:
        private, public = generate_keys(Path(args.out))
    except BundleError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    out.write(f"wrote {private} (mode 0600: keep it off ward computers) and {public} (pin it on them)\n")
    return 0


def cmd_bundle(args: argparse.Namespace, out: TextIO) -> int:
    from .bundle import (
        BundleError,
        build_bundle,
        load_private_key,
        load_public_key,
        policy_source_files,
        read_bundle_file,
    )

    if args.bundle_command == "verify":
        try:
            bundle = read_bundle_file(Path(args.file), load_public_key(Path(args.pubkey)))
        except BundleError as exc:
            out.write(f"INVALID: {exc}\n")
            return 1
        m = bundle.manifest
        out.write(
            f"OK: bundle version {m.version}, created {m.created_at}, {len(m.files)} files, "
            f"tests {m.tests.get('passed', 0)}/{m.tests.get('executed', 0)} passed, "
            f"needs app >= {m.min_app_version}, sha256 {bundle.sha256}\n"
        )
        return 0
    root = Path(args.dir)
    try:
        policy_source_files(root)  # links and special files refused before the compiler reads (and quotes) them
    except BundleError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    code = cmd_compile(argparse.Namespace(dir=str(root), skip_tests=False, no_strict_evaluation=False), out)
    if code != 0:
        sys.stderr.write("bundle not built: the policies must compile and every test must pass\n")
        return code
    from .verify import run_test_suites

    policy_set = compile_policy_dir(root)
    results, _ = run_test_suites(root, policy_set)
    cases = [c for s in results for c in s.cases]
    tests = {
        "executed": len(cases),
        "passed": sum(c.result == "OK" for c in cases),
        "suites": sorted(s.name for s in results),
    }
    gate = cmd_impact_gate(args, root, out)
    if gate != 0:
        return gate
    try:
        data = build_bundle(root, load_private_key(Path(args.key)), args.version, tests, args.min_app_version)
    except BundleError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    _write_file(Path(args.out), data)
    out.write(f"wrote {args.out}: version {args.version}, {len(data)} bytes\n")
    return 0


def cmd_rollout(args: argparse.Namespace, out: TextIO) -> int:
    """Signs a rollout notice that promotes or withdraws a bundle held in shadow on canary
    workstations (rollout.py); the bundle is verified with the signing key's public half first."""
    from .bundle import BundleError, load_private_key, read_bundle_file
    from .rollout import sign_notice

    try:
        key = load_private_key(Path(args.key))
        bundle = read_bundle_file(Path(args.bundle), key.public_key())
    except BundleError as exc:
        sys.stderr.write(f"ccc-authz rollout: {exc}\n")
        return 2
    _write_file(Path(args.out), sign_notice(bundle, args.rollout_command, key))
    out.write(
        f"wrote {args.out}: {args.rollout_command} bundle version {bundle.manifest.version} "
        f"(sha256 {bundle.sha256}); publish it as rollout.notice beside current.bundle\n"
    )
    return 0


def cmd_impact(args: argparse.Namespace, out: TextIO) -> int:
    """Replays requests under two policy sets and reports every decision that flips (impact_command.py)."""
    from .impact_command import run_impact

    return run_impact(args, out)


def cmd_impact_gate(args: argparse.Namespace, root: Path, out: TextIO) -> int:
    """bundle build's --baseline/--requests/--accept: 0, or why the bundle is not built."""
    from .impact_command import bundle_gate

    return bundle_gate(args, root, out)


def cmd_package(args: argparse.Namespace, out: TextIO) -> int:
    """Signs a release directory (SHA256SUMS and SHA256SUMS.sig) or verifies one: exit 1 naming
    every problem found."""
    from .bundle import BundleError, load_private_key, load_public_key
    from .package import SIGNATURE, SUMS, fingerprint, sign_release, verify_release

    directory = Path(args.dir)
    if not directory.is_dir():
        sys.stderr.write(f"{directory}: not a directory\n")
        return 2
    if args.package_command == "sign":
        try:
            key = load_private_key(Path(args.key))
            listed = sign_release(directory, key, args.files or None)
        except BundleError as exc:
            sys.stderr.write(f"{exc}\n")
            return 2
        out.write(
            f"wrote {directory / SUMS} ({len(listed)} files: {', '.join(listed)}) and {directory / SIGNATURE}, "
            f"release key {fingerprint(key.public_key())}\n"
        )
        return 0
    try:
        public_key = load_public_key(Path(args.pubkey))
    except BundleError as exc:
        out.write(f"INVALID: {exc}\n")
        return 1
    result = verify_release(directory, public_key)
    if not result.ok:
        for problem in result.problems:
            out.write(f"INVALID: {problem}\n")
        return 1
    out.write(
        f"OK: {SUMS} signed by release key {fingerprint(public_key)}; "
        f"{len(result.files)} files match: {', '.join(sorted(result.files))}\n"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serves until interrupted; an unusable token file (unreadable, empty, whitespace) stops it
    at start (exit 2), before anything is served."""
    from .policy_server import TokenFileError, make_server, read_token_file

    if not Path(args.dir).is_dir():
        sys.stderr.write(f"ccc-authz serve: {args.dir}: not a directory of bundles\n")
        return 2
    try:
        token = read_token_file(Path(args.token_file)) if args.token_file is not None else None
        server = make_server(Path(args.dir), args.port, args.host, token)
    except TokenFileError as exc:
        sys.stderr.write(f"ccc-authz serve: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"ccc-authz serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}\n")
        return 2
    sys.stderr.write(
        f"serving the newest bundle in {args.dir} at http://{args.host}:{server.server_port}/current.bundle\n"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


POLICIES_HELP = "the policy directory"
LENIENT_HELP = "Cerbos's default: an erroring condition is just not satisfied (strict by default: it denies)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccc-authz", description="CCC Workstation policy tool")
    sub = parser.add_subparsers(dest="command", required=True)
    p_compile = sub.add_parser(
        "compile",
        help="compile policies and run their test suites",
        description="Exit 0 all good, 3 policy errors, 4 failed tests.",
    )
    p_compile.add_argument("dir", help="the policy directory (every policy below it, tests in *_test.yaml)")
    p_compile.add_argument("--skip-tests", action="store_true", help="compile only; do not run the test suites")
    p_compile.add_argument(
        "--ignore-schemas",
        action="store_true",
        help="as cerbos compile: do not check the schemas policies name, nor enforce them in tests",
    )
    p_compile.add_argument(
        "--no-strict-evaluation",
        action="store_true",
        help="Cerbos's default: an erroring condition is just not satisfied",
    )
    p_check = sub.add_parser("check", help="decide Cerbos CheckResources requests read from stdin")
    p_check.add_argument("--policies", metavar="DIR", required=True, help=POLICIES_HELP)
    p_check.add_argument("--no-strict-evaluation", action="store_true", help=LENIENT_HELP)
    p_check.add_argument("--audit", metavar="DB", help="record every decision in this audit log")
    p_check.add_argument(
        "--guard", metavar="SOCKET", help="the audit guard that checkpoints the log (default: the installed one)"
    )
    p_check.add_argument(
        "--workers",
        type=int,
        default=0,
        help="share large batches between this many processes (default: the machine's "
        "cores, up to 4); answers keep the input order",
    )
    add_audit_parser(sub)
    p_plan = sub.add_parser("plan", help="plan Cerbos PlanResources requests read from stdin (query filters)")
    p_plan.add_argument("--policies", metavar="DIR", required=True, help=POLICIES_HELP)
    p_plan.add_argument("--no-strict-evaluation", action="store_true", help=LENIENT_HELP)
    p_keygen = sub.add_parser("keygen", help="make an Ed25519 key pair for signing bundles")
    p_keygen.add_argument(
        "--out",
        metavar="DIR",
        required=True,
        help="writes private.key (0600) and public.key here; never overwrites",
    )
    p_bundle = sub.add_parser("bundle", help="build or verify a signed policy bundle")
    bundle_sub = p_bundle.add_subparsers(dest="bundle_command", required=True)
    p_build = bundle_sub.add_parser(
        "build", help="sign a bundle of a policy directory, only when every policy compiles and every test passes"
    )
    p_build.add_argument("dir", help="the policy directory")
    p_build.add_argument("--key", required=True, help="the bundle signing key (ccc-authz keygen's private.key)")
    p_build.add_argument(
        "--version", type=int, required=True, help="the bundle's version, 1 to 2**53 - 1, above every earlier one"
    )
    p_build.add_argument("--out", metavar="FILE", required=True, help="the bundle file to write")
    p_build.add_argument(
        "--min-app-version",
        metavar="VERSION",
        default="0.1.0",
        help="workstations older than this refuse the bundle (default 0.1.0)",
    )
    impact_command.add_gate_arguments(p_build)
    p_bverify = bundle_sub.add_parser("verify", help="check a bundle's signature and contents, saying what is wrong")
    p_bverify.add_argument("file", help="the bundle")
    p_bverify.add_argument("--pubkey", required=True, help="the pinned public key (ccc-authz keygen's public.key)")
    impact_command.add_arguments(
        sub.add_parser(
            "impact",
            help="report every decision a policy change flips",
            description="Exit 0 nothing unexpected flips, 5 something does, 3 a side does not compile, "
            "2 the run cannot start.",
        )
    )
    p_package = sub.add_parser("package", help="sign or verify a release directory (SHA256SUMS, SHA256SUMS.sig)")
    package_sub = p_package.add_subparsers(dest="package_command", required=True)
    p_psign = package_sub.add_parser("sign", help="write SHA256SUMS and its Ed25519 signature")
    p_psign.add_argument("dir", help="the release directory (dist/)")
    p_psign.add_argument("--key", required=True, help="the release private key (not the policy key)")
    p_psign.add_argument(
        "--file", action="append", dest="files", metavar="NAME", help="a file in DIR to list (default: every .deb)"
    )
    p_pverify = package_sub.add_parser("verify", help="check the signature, then every listed file")
    p_pverify.add_argument("dir", help="the release directory (dist/)")
    p_pverify.add_argument("--pubkey", required=True, help="the pinned release public key")
    p_rollout = sub.add_parser(
        "rollout", help="sign a notice that promotes or withdraws a bundle held in shadow on canary workstations"
    )
    rollout_sub = p_rollout.add_subparsers(dest="rollout_command", required=True)
    for decision, what in (("promote", "activate it now"), ("withdraw", "never activate it")):
        p_notice = rollout_sub.add_parser(decision, help=f"{what}, ending its shadow period")
        p_notice.add_argument("bundle", help="the bundle the notice names (verified first)")
        p_notice.add_argument("--key", required=True, help="the bundle signing key (private.key)")
        p_notice.add_argument("--out", required=True, help="the notice file (publish it as rollout.notice)")
    p_serve = sub.add_parser("serve", help="serve the newest bundle of a directory over HTTP")
    p_serve.add_argument("dir", help="the directory of bundles (and rollout.notice, if published)")
    p_serve.add_argument("--port", type=int, default=8088, help="default 8088; 0 picks a free port")
    p_serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    p_serve.add_argument("--token-file", help="require this bearer token (read from a file, never argv)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = _run(args)
        sys.stdout.flush()  # here, where a full disk can still be reported, not at exit
        return code
    except BrokenPipeError:  # the reader went away (e.g. `| head`): not an error of ours
        sys.stderr.close()
        return 0
    except OSError as exc:  # a full disk, a read-only file system, a permission: say which file
        sys.stderr.write(f"ccc-authz {args.command}: {file_problem(exc)}\n")
        _drop_unwritten_output()
        return EXIT_IO_ERROR


def _write_file(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path``; an error of the write itself (a full disk) names the file too."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


def file_problem(exc: OSError) -> str:
    """What could not be read or written, and why, in words (never a traceback)."""
    what = f"{exc.filename}" if exc.filename else "writing its output"
    reasons = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EFBIG: "the file is larger than this process may write",
        errno.EROFS: "the file system is mounted read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied (operation not permitted)",
        errno.EIO: "a disk I/O error: the disk may be failing",
    }
    reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    return f"{what}: {reason}"


def _drop_unwritten_output() -> None:
    """Points stdout at /dev/null so the exit does not try the failed write again (a second,
    unreportable error)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass


def _run(args: argparse.Namespace) -> int:
    if args.command == "compile":
        return cmd_compile(args, sys.stdout)
    if args.command == "audit":
        return cmd_audit(args, sys.stdout)
    if args.command == "keygen":
        return cmd_keygen(args, sys.stdout)
    if args.command == "bundle":
        return cmd_bundle(args, sys.stdout)
    if args.command == "impact":
        return cmd_impact(args, sys.stdout)
    if args.command == "package":
        return cmd_package(args, sys.stdout)
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "rollout":
        return cmd_rollout(args, sys.stdout)
    if args.command == "plan":
        return cmd_plan(args, sys.stdin, sys.stdout)
    return cmd_check(args, sys.stdin, sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
