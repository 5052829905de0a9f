"""``ccc-authz check`` in instructions executed, this tree against an earlier revision's, in one run.

    .venv/bin/python bench/bench_check_instructions.py --baseline REV [--lines 2000] [--write]

Wall time on a shared two-core machine moves by a third from run to run (the Cerbos reference of
bench_engine.py does), so a change of a few per cent cannot be seen in it. The instructions a
process executes barely move between runs: valgrind's cachegrind counts them. Both trees run the
same `ccc-authz check --workers 1` on the same lines (the clinic workload of bench_engine.py, as it
writes them, and the same requests as compact JSON, as clients send them) with their engines
compiled and their bytecode cached (an installed package's case), plus once on no input at all:
start-up. Per line = (run - start-up) / lines. The baseline is checked out in a temporary git
worktree and compiled there; nothing of it is kept. Needs valgrind and a C compiler.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import orjson  # noqa: E402
from report import publish  # noqa: E402

from tests.authz.differential import random_requests  # noqa: E402

POLICIES = "tests/authz/policysets/clinic"
RUNNER = "import sys; from authz import cli; sys.exit(cli.main(sys.argv[1:]))"


def instructions(tree: Path, stdin: Path, cache: Path) -> int:
    """Instructions executed by `ccc-authz check --workers 1` of ``tree`` reading ``stdin``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(tree), PYTHONPYCACHEPREFIX=str(cache))
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    command += [sys.executable, "-c", RUNNER, "check", "--policies", POLICIES, "--workers", "1"]
    with stdin.open("rb") as f:
        done = subprocess.run(command, cwd=tree, env=env, stdin=f, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    found = re.search(rb"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"check failed in {tree}:\n{done.stderr.decode(errors='replace')[-2000:]}")
    return int(found.group(1).replace(b",", b""))


def measure(tree: Path, inputs: dict[str, Path], lines: int, cache: Path) -> dict[str, float]:
    """Start-up, and instructions per line for each input (each run once before, to warm the cache)."""
    for path in inputs.values():
        instructions(tree, path, cache)
    start = instructions(tree, Path(os.devnull), cache)
    figures = {"start-up": float(start)}
    for name, path in inputs.items():
        figures[name] = (instructions(tree, path, cache) - start) / lines
    return figures


def baseline_tree(rev: str, where: Path) -> Path:
    """``rev`` checked out under ``where`` with its engine compiled, or the reason it cannot be."""
    tree = where / "baseline"
    git = ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), rev]
    done = subprocess.run(git, text=True, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"cannot check out the baseline {rev!r}: {done.stderr.strip()}")
    build = [sys.executable, "-c", "from authz.native import build; build()"]
    env = {**os.environ, "CCC_AUTHZ_PURE": "1", "PYTHONPATH": str(tree)}
    done = subprocess.run(build, cwd=tree, env=env, text=True, capture_output=True)
    if done.returncode != 0:  # e.g. a revision older than authz/native.py, or no C compiler
        raise SystemExit(f"cannot compile the engine of {rev!r}:\n{(done.stdout + done.stderr)[-2000:]}")
    return tree


def short(rev: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], text=True, capture_output=True)
    return done.stdout.strip() or rev


ROWS = [  # label, figure, unit
    ("start-up (no input)", "start-up", "M"),
    ("per line, JSON as bench_engine.py writes it (spaces)", "spaced", "K"),
    ("per line, compact JSON (as clients send it)", "compact", "K"),
]


def table(old: dict[str, float], new: dict[str, float], old_rev: str, new_rev: str) -> list[str]:
    lines = [f"| instructions | {old_rev} | {new_rev} | ratio |", "|---|---|---|---|"]
    for label, key, unit in ROWS:
        scale = 1e6 if unit == "M" else 1e3
        a, b = old[key] / scale, new[key] / scale
        lines.append(f"| {label} | {a:,.1f} {unit} | {b:,.1f} {unit} | {new[key] / old[key]:.3f}x |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", required=True, help="the git revision to compare with")
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--write", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed")
    subprocess.run([str(ROOT / "scripts" / "build-native")], check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        bodies = random_requests("clinic", args.lines, seed=7)
        inputs = {"spaced": where / "spaced.jsonl", "compact": where / "compact.jsonl"}
        inputs["spaced"].write_text("".join(json.dumps(body) + "\n" for body in bodies))
        inputs["compact"].write_bytes(b"".join(orjson.dumps(body) + b"\n" for body in bodies))
        try:
            old = measure(baseline_tree(args.baseline, where), inputs, args.lines, where / "cache")
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where / "baseline")],
                check=False,
                capture_output=True,
            )
        new = measure(ROOT, inputs, args.lines, where / "cache")
    old_rev, new_rev = short(args.baseline), short("HEAD")
    command = f"bench/bench_check_instructions.py --baseline {args.baseline} --lines {args.lines}"
    publish(
        [
            f"## {date.today()} — instructions of `ccc-authz check --workers 1`: {new_rev} against {old_rev}",
            "",
            f"Clinic workload, {args.lines} lines; valgrind cachegrind; both engines compiled, bytecode cached.",
            "",
            *table(old, new, old_rev, new_rev),
            "",
            f"Command: `.venv/bin/python {command}`",
        ],
        args.write,
    )


if __name__ == "__main__":
    main()
