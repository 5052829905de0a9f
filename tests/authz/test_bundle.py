"""Signed bundles: deterministic builds, keys that are never overwritten, and every way a bundle
can be wrong refused with a message that says what is wrong."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import stat
from pathlib import Path

import pytest

from authz.bundle import BundleError, build_bundle, generate_keys, load_private_key, load_public_key, verify_bundle
from authz.cli import build_parser, cmd_bundle

POLICIES = Path(__file__).resolve().parents[2] / "policies"
TESTS = {"executed": 1, "passed": 1, "suites": ["S"]}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def bundle_bytes(keys: tuple[Path, Path]) -> bytes:
    return build_bundle(POLICIES, load_private_key(keys[0]), 3, TESTS, created_at="2026-03-01T00:00:00+00:00")


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path: Path) -> None:
    private, public = generate_keys(tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    before = private.read_bytes()
    with pytest.raises(BundleError, match="never overwritten"):
        generate_keys(tmp_path)
    assert private.read_bytes() == before


def test_build_is_deterministic(keys: tuple[Path, Path], bundle_bytes: bytes) -> None:
    again = build_bundle(POLICIES, load_private_key(keys[0]), 3, TESTS, created_at="2026-03-01T00:00:00+00:00")
    assert again == bundle_bytes


def test_verify_returns_the_manifest_and_files(keys: tuple[Path, Path], bundle_bytes: bytes) -> None:
    bundle = verify_bundle(bundle_bytes, load_public_key(keys[1]))
    assert bundle.manifest.version == 3
    assert "resources/patient_record.yaml" in bundle.files
    assert bundle.files["resources/patient_record.yaml"] == (POLICIES / "resources/patient_record.yaml").read_bytes()


@pytest.mark.parametrize("where", [0, 20, 100, -1], ids=["marker", "signature", "payload", "last byte"])
def test_any_changed_byte_is_refused(keys: tuple[Path, Path], bundle_bytes: bytes, where: int) -> None:
    data = bytearray(bundle_bytes)
    data[where] ^= 0x01
    with pytest.raises(BundleError):
        verify_bundle(bytes(data), load_public_key(keys[1]))


def test_truncated_and_foreign_files_are_refused(keys: tuple[Path, Path], bundle_bytes: bytes) -> None:
    public = load_public_key(keys[1])
    with pytest.raises(BundleError, match="signature"):
        verify_bundle(bundle_bytes[: len(bundle_bytes) // 2], public)
    with pytest.raises(BundleError, match="not a CCC policy bundle"):
        verify_bundle(b"CCCBN", public)
    with pytest.raises(BundleError, match="not a CCC policy bundle"):
        verify_bundle(b"<html>502 Bad Gateway</html>" * 10, public)


def test_another_key_is_refused(tmp_path: Path, bundle_bytes: bytes) -> None:
    _, other_public = generate_keys(tmp_path)
    with pytest.raises(BundleError, match="pinned public key"):
        verify_bundle(bundle_bytes, load_public_key(other_public))


def test_cli_refuses_to_build_when_a_test_fails(keys: tuple[Path, Path], tmp_path: Path) -> None:
    broken = tmp_path / "policies"
    shutil.copytree(POLICIES, broken)
    suite = broken / "tests" / "compliance_test.yaml"
    text = suite.read_text().replace("actions: {generate: EFFECT_ALLOW}", "actions: {generate: EFFECT_DENY}", 1)
    suite.write_text(text)
    out_file = tmp_path / "b.bundle"
    args = build_parser().parse_args(
        ["bundle", "build", str(broken), "--key", str(keys[0]), "--version", "1", "--out", str(out_file)]
    )
    assert cmd_bundle(args, io.StringIO()) == 4
    assert not out_file.exists()


def test_cli_verify_says_what_is_wrong(keys: tuple[Path, Path], bundle_bytes: bytes, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.bundle", tmp_path / "bad.bundle"
    good.write_bytes(bundle_bytes)
    bad.write_bytes(bundle_bytes[:-10])
    for path, code, text in ((good, 0, "OK: bundle version 3"), (bad, 1, "INVALID: signature")):
        out = io.StringIO()
        args = build_parser().parse_args(["bundle", "verify", str(path), "--pubkey", str(keys[1])])
        assert cmd_bundle(args, out) == code
        assert text in out.getvalue()


# ---- bundle build never signs what a link points at (issue 16, part 5) -------------------------


def _policy_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "policies"
    shutil.copytree(POLICIES, copy)
    return copy


def _cli_build(policy_dir: Path, key: Path, out_file: Path) -> tuple[int, str]:
    args = build_parser().parse_args(
        ["bundle", "build", str(policy_dir), "--key", str(key), "--version", "1", "--out", str(out_file)]
    )
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = cmd_bundle(args, io.StringIO())
    return code, stderr.getvalue()


def test_symlink_to_private_key_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    policies = _policy_copy(tmp_path)
    (policies / "leak.txt").symlink_to(keys[0])
    out_file = tmp_path / "b.bundle"
    code, said = _cli_build(policies, keys[0], out_file)
    assert code == 2 and not out_file.exists()
    assert f"{policies / 'leak.txt'} (a symbolic link)" in said
    with pytest.raises(BundleError, match="leak.txt"):
        build_bundle(policies, load_private_key(keys[0]), 1, {})


def test_symlink_to_etc_shadow_and_passwd_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    policies = _policy_copy(tmp_path)
    (policies / "resources" / "shadow").symlink_to("/etc/shadow")  # unreadable here: no traceback either
    (policies / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(BundleError) as refused:
        build_bundle(policies, load_private_key(keys[0]), 1, {})
    said = str(refused.value)
    assert f"{policies / 'resources' / 'shadow'} (a symbolic link)" in said
    assert f"{policies / 'passwd'} (a symbolic link)" in said
    assert "root:" not in said


def test_symlinked_directory_out_of_the_policy_dir_refused_not_entered(keys: tuple[Path, Path], tmp_path: Path) -> None:
    policies = _policy_copy(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for the wards")
    (policies / "extra").symlink_to(outside, target_is_directory=True)
    with pytest.raises(BundleError) as refused:
        build_bundle(policies, load_private_key(keys[0]), 1, {})
    assert f"{policies / 'extra'} (a symbolic link)" in str(refused.value)
    assert "secret.txt" not in str(refused.value)


def test_hard_link_to_private_key_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    policies = _policy_copy(tmp_path)
    private = tmp_path / "signing" / "private.key"
    private.parent.mkdir()
    shutil.copy(keys[0], private)
    os.link(private, policies / "_schemas" / "innocent.json")
    out_file = tmp_path / "b.bundle"
    code, said = _cli_build(policies, private, out_file)
    assert code == 2 and not out_file.exists()
    assert f"{policies / '_schemas' / 'innocent.json'} (a hard link: the file has 2 names)" in said


def test_fifo_and_socket_in_the_policy_dir_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    policies = _policy_copy(tmp_path)
    os.mkfifo(policies / "pipe")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(policies / "sock"))
        with pytest.raises(BundleError) as refused:  # a fifo must not block the build either
            build_bundle(policies, load_private_key(keys[0]), 1, {})
    finally:
        listener.close()
    assert f"{policies / 'pipe'} (a fifo)" in str(refused.value)
    assert f"{policies / 'sock'} (a socket)" in str(refused.value)


def test_plain_copy_still_builds_the_same_bundle(keys: tuple[Path, Path], tmp_path: Path, bundle_bytes: bytes) -> None:
    policies = _policy_copy(tmp_path)
    (policies / ".git").mkdir()
    (policies / ".git" / "HEAD").symlink_to("/etc/passwd")  # hidden: neither carried nor entered
    again = build_bundle(policies, load_private_key(keys[0]), 3, TESTS, created_at="2026-03-01T00:00:00+00:00")
    assert again == bundle_bytes


def test_symlink_to_private_key_named_as_a_policy_refused_before_compiling(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    policies = _policy_copy(tmp_path)
    (policies / "resources" / "key.yaml").symlink_to(keys[0])  # the compiler would quote its first line
    out_file = tmp_path / "b.bundle"
    args = build_parser().parse_args(
        ["bundle", "build", str(policies), "--key", str(keys[0]), "--version", "1", "--out", str(out_file)]
    )
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        assert cmd_bundle(args, stdout) == 2
    assert f"{policies / 'resources' / 'key.yaml'} (a symbolic link)" in stderr.getvalue()
    assert "PRIVATE KEY" not in stdout.getvalue() + stderr.getvalue() and not out_file.exists()
