"""policies/: the CCC permission matrix. Both the real Cerbos compiler and ours must accept it
and run every test suite with the same tests and the same verdicts, in both evaluation modes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from authz.cli import build_parser, cmd_compile
from tests.authz.test_verify import _cerbos_results, _our_results

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lax"])
def test_suites_pass_identically_in_cerbos_and_ours(strict: bool) -> None:
    theirs = _cerbos_results(POLICIES, strict)
    ours = _our_results(POLICIES, strict)
    assert ours == theirs
    assert len(ours) >= 1000
    failed = sorted(k for k, v in ours.items() if v != "OK")
    assert not failed, failed[:10]


def test_every_matrix_action_is_covered() -> None:
    """Each of the matrix's eleven actions appears in some suite, allowed and denied."""
    ours = _our_results(POLICIES, True)
    actions = {key[4] for key in ours}
    for action in [
        "view",
        "edit_clinical_notes",
        "view_history",
        "export",
        "break_glass",
        "delegate_access",
        "request_firmware_update",
        "approve_firmware_update",
        "view_firmware_version",
        "generate",
        "review",
    ]:
        assert action in actions, action


def test_main_job_compiles_and_tests_the_bundled_policies() -> None:
    out = io.StringIO()
    assert cmd_compile(build_parser().parse_args(["compile", str(POLICIES)]), out) == 0
    assert "[FAILED]" not in out.getvalue()
