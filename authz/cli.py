"""``ccc-authz``: the policy tool for analysts and IT.

    ccc-authz compile DIR [--no-strict-evaluation] [--skip-tests]
    ccc-authz check --policies DIR [--no-strict-evaluation] < requests.jsonl

Exit statuses follow ``cerbos compile``: 0 all good, 3 the policies do not compile,
4 a test failed; 2 is a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from .compile import compile_policy_dir
from .engine import Engine
from .errors import PolicyErrors
from .evaluate import EvalParams
from .verify import FAILED, render_results, run_test_suites

EXIT_POLICY_ERRORS = 3
EXIT_TEST_FAILURES = 4


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
    for number, line in enumerate(inp, start=1):
        if not line.strip():
            continue
        try:
            body = json.loads(line)
        except json.JSONDecodeError as exc:
            response = {"code": 3, "message": f"line {number}: invalid JSON: {exc.msg} at column {exc.colno}"}
        else:
            response = engine.check_request(body)
            if "code" in response and "message" in response:
                response["message"] = f"line {number}: {response['message']}"
        out.write(json.dumps(response, separators=(",", ":")) + "\n")
        out.flush()
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "compile":
        return cmd_compile(args, sys.stdout)
    return cmd_check(args, sys.stdin, sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
