"""`ccc-authz --help` as IT reads it: every subcommand, and every argument and option of each, says
what it is (a bare `--policies POLICIES` or `dir` leaves the reader guessing), and the commands whose
exit status scripts test name their codes."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

from authz.cli import build_parser


def commands(parser: argparse.ArgumentParser, path: str = "ccc-authz") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command's parser, with its name as typed."""
    yield path, parser
    for action in parser._actions:  # noqa: SLF001 - argparse offers no public walk of its subcommands
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                yield from commands(sub, f"{path} {name}")


def test_every_subcommand_argument_and_option_has_a_help_text() -> None:
    bare = []
    for path, parser in commands(build_parser()):
        for action in parser._actions:  # noqa: SLF001
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                bare += [f"{path} {c.dest}" for c in action._choices_actions if not c.help]  # noqa: SLF001
            elif not action.help:
                bare.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert bare == []


def test_the_help_names_the_exit_codes_of_compile_audit_verify_and_impact() -> None:
    def shown(*args: str) -> str:
        run = subprocess.run([sys.executable, "-m", "authz.cli", *args, "--help"], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return " ".join(run.stdout.split())

    assert "Exit 0 all good, 3 policy errors, 4 failed tests." in shown("compile")
    assert "Exit 0 intact, 5 tampered, 6 damaged file" in shown("audit", "verify")
    assert "Exit 0 nothing unexpected flips, 5 something does" in shown("impact")
    assert "--policies DIR the policy directory" in shown("check")
    assert "fhir: one FHIR R4 AuditEvent per line" in shown("audit", "export")
