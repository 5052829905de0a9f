"""``ccc-authz``: the policy tool for analysts and IT.

    ccc-authz compile DIR [--no-strict-evaluation] [--skip-tests]
    ccc-authz check --policies DIR [--no-strict-evaluation] [--audit DB] < requests.jsonl
    ccc-authz audit verify DB
    ccc-authz audit export DB --format jsonl|fhir

Exit statuses follow ``cerbos compile``: 0 all good, 3 the policies do not compile,
4 a test failed; 2 is a usage error.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from pathlib import Path
from typing import TextIO

from .audit import AuditChain, AuditRecord, AuditWriteError
from .audit_export import to_decision_log, to_fhir
from .compile import compile_policy_dir
from .engine import Engine
from .errors import PolicyErrors
from .evaluate import EvalParams
from .verify import FAILED, render_results, run_test_suites

EXIT_POLICY_ERRORS = 3
EXIT_TEST_FAILURES = 4
EXIT_AUDIT_FAILURE = 5


def _params(args: argparse.Namespace) -> EvalParams:
    return EvalParams(strict_evaluation=not args.no_strict_evaluation)


def cmd_compile(args: argparse.Namespace, out: TextIO) -> int:
    root = Path(args.dir)
    try:
        policy_set = compile_policy_dir(root)
    except PolicyErrors as exc:
        out.write("Compilation errors\n")
        for problem in exc.problems:
            out.write(problem.render(root) + "\n\n")
        out.write(f"{len(exc.problems)} error(s) in {root}\n")
        return EXIT_POLICY_ERRORS
    if args.skip_tests:
        out.write(f"{policy_set.policy_count} policies compiled\n")
        return 0
    results, problems = run_test_suites(root, policy_set, _params(args))
    if problems:
        out.write("Test suite errors\n")
        for problem in problems:
            out.write(problem.render(root) + "\n\n")
        return EXIT_TEST_FAILURES
    if results:
        out.write(render_results(results) + "\n")
    else:
        out.write(f"{policy_set.policy_count} policies compiled, no test suites found\n")
    failed = any(s.error or any(c.result == FAILED for c in s.cases) for s in results)
    return EXIT_TEST_FAILURES if failed else 0


def cmd_check(args: argparse.Namespace, inp: TextIO, out: TextIO) -> int:
    root = Path(args.policies)
    try:
        engine = Engine.from_directory(root, _params(args))
    except PolicyErrors as exc:
        sys.stderr.write("\n".join(p.render(root) for p in exc.problems) + "\n")
        return EXIT_POLICY_ERRORS
    try:
        chain = AuditChain(args.audit, workstation_id=socket.gethostname()) if args.audit else None
    except AuditWriteError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_AUDIT_FAILURE
    for number, line in enumerate(inp, start=1):
        if not line.strip():
            continue
        try:
            body = json.loads(line)
        except json.JSONDecodeError as exc:
            response = {"code": 3, "message": f"line {number}: invalid JSON: {exc.msg} at column {exc.colno}"}
        else:
            records: list[AuditRecord] = [] if chain is not None else None  # type: ignore[assignment]
            response = engine.check_request(body, audit=records)
            if "code" in response and "message" in response:
                response["message"] = f"line {number}: {response['message']}"
            elif chain is not None:
                try:
                    chain.append_many(records)  # committed before the answer is written
                except AuditWriteError as exc:
                    sys.stderr.write(f"{exc}\n")
                    return EXIT_AUDIT_FAILURE
        out.write(json.dumps(response, separators=(",", ":")) + "\n")
        out.flush()
    return 0


def cmd_audit(args: argparse.Namespace, out: TextIO) -> int:
    path = Path(args.db)
    if not path.is_file():
        sys.stderr.write(f"no audit log at {path}\n")
        return 2
    chain = AuditChain(path)
    if args.audit_command == "verify":
        result = chain.verify()
        if result.ok:
            out.write(f"OK: {result.count} records, chain intact, head {result.head} "
                      f"(verified in {result.seconds:.2f} s)\n")
            return 0
        out.write(f"TAMPERED: {result.problem} (record id {result.first_bad_record}); "
                  f"{result.count} records before it verify\n")
        return EXIT_AUDIT_FAILURE
    convert = to_fhir if args.format == "fhir" else to_decision_log
    for record in chain.records():
        out.write(json.dumps(convert(record), separators=(",", ":"), ensure_ascii=False) + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccc-authz", description="CCC Workstation policy tool")
    sub = parser.add_subparsers(dest="command", required=True)
    p_compile = sub.add_parser("compile", help="compile policies and run their test suites")
    p_compile.add_argument("dir")
    p_compile.add_argument("--skip-tests", action="store_true")
    p_compile.add_argument("--no-strict-evaluation", action="store_true",
                           help="Cerbos's default: an erroring condition is just not satisfied")
    p_check = sub.add_parser("check", help="decide Cerbos CheckResources requests read from stdin")
    p_check.add_argument("--policies", required=True)
    p_check.add_argument("--no-strict-evaluation", action="store_true")
    p_check.add_argument("--audit", metavar="DB", help="record every decision in this audit log")
    p_audit = sub.add_parser("audit", help="verify or export an audit log")
    audit_sub = p_audit.add_subparsers(dest="audit_command", required=True)
    p_verify = audit_sub.add_parser("verify", help="check the whole hash chain")
    p_verify.add_argument("db")
    p_export = audit_sub.add_parser("export", help="write the records as JSON lines")
    p_export.add_argument("db")
    p_export.add_argument("--format", choices=["jsonl", "fhir"], default="jsonl")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        return _run(build_parser().parse_args(argv))
    except BrokenPipeError:  # the reader went away (e.g. `| head`): not an error of ours
        sys.stderr.close()
        return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "compile":
        return cmd_compile(args, sys.stdout)
    if args.command == "audit":
        return cmd_audit(args, sys.stdout)
    return cmd_check(args, sys.stdin, sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
