"""Signed release directories (authz/package.py, `ccc-authz package sign|verify`): a release that
verifies, and every way one can be wrong refused with a message naming what failed."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from authz import package
from authz.bundle import BundleError, generate_keys, load_private_key, load_public_key
from authz.cli import main
from authz.package import PackageError, sign_release, verify_release

DEB = "ccc-workstation_1.2.3_amd64.deb"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keys(tmp_path_factory.mktemp("release-key"))


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keys(tmp_path_factory.mktemp("other-key"))


@pytest.fixture
def release(tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    directory = tmp_path / "dist"
    directory.mkdir()
    (directory / DEB).write_bytes(b"!<arch>\n" + bytes(range(256)) * 40)
    (directory / "notes.txt").write_text("release notes\n")
    sign_release(directory, load_private_key(keys[0]), [DEB, "notes.txt"])
    shutil.copyfile(keys[1], directory / "release-public.key")
    return directory


def problems(directory: Path, public: Path) -> list[str]:
    return verify_release(directory, load_public_key(public)).problems


def cli(*args: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


def test_a_signed_release_verifies(release: Path, keys: tuple[Path, Path]) -> None:
    result = verify_release(release, load_public_key(keys[1]))
    assert result.ok, result.problems
    assert sorted(result.files) == [DEB, "notes.txt"]
    assert result.files[DEB] == hashlib.sha256((release / DEB).read_bytes()).hexdigest()


def test_sha256sums_is_the_sha256sum_format_and_the_signature_raw_ed25519(
    release: Path, keys: tuple[Path, Path]
) -> None:
    lines = (release / "SHA256SUMS").read_text().splitlines()
    assert lines == [
        f"{hashlib.sha256((release / name).read_bytes()).hexdigest()}  {name}" for name in sorted([DEB, "notes.txt"])
    ]
    signature = (release / "SHA256SUMS.sig").read_bytes()
    assert len(signature) == 64
    load_public_key(keys[1]).verify(signature, (release / "SHA256SUMS").read_bytes())  # raises if not
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=release, check=True)


def test_signing_is_deterministic_and_lists_every_deb_by_default(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    for name in ("b_2_amd64.deb", "a_1_amd64.deb", "README"):
        (tmp_path / name).write_text(name)
    key = load_private_key(keys[0])
    assert sign_release(tmp_path, key) == ["a_1_amd64.deb", "b_2_amd64.deb"]
    first = (tmp_path / "SHA256SUMS").read_bytes(), (tmp_path / "SHA256SUMS.sig").read_bytes()
    sign_release(tmp_path, key)
    assert ((tmp_path / "SHA256SUMS").read_bytes(), (tmp_path / "SHA256SUMS.sig").read_bytes()) == first


@pytest.mark.parametrize("where", [0, 1000, -1], ids=["first byte", "middle", "last byte"])
def test_a_flipped_byte_in_the_package_names_the_package(release: Path, keys: tuple[Path, Path], where: int) -> None:
    data = bytearray((release / DEB).read_bytes())
    data[where] ^= 0x01
    (release / DEB).write_bytes(bytes(data))
    found = problems(release, keys[1])
    assert len(found) == 1 and found[0].startswith(f"{DEB}: SHA-256") and "altered" in found[0]


def test_a_truncated_or_extended_package_is_refused(release: Path, keys: tuple[Path, Path]) -> None:
    with (release / DEB).open("ab") as f:
        f.write(b"\0")
    assert problems(release, keys[1])[0].startswith(DEB)


def test_a_tampered_sha256sums_is_refused_before_it_is_read(release: Path, keys: tuple[Path, Path]) -> None:
    # The attacker's edit makes SHA256SUMS match an altered package: only the signature catches it.
    data = bytearray((release / DEB).read_bytes())
    data[10] ^= 0xFF
    (release / DEB).write_bytes(bytes(data))
    sums = (release / "SHA256SUMS").read_text().splitlines()
    sums = [f"{hashlib.sha256(bytes(data)).hexdigest()}  {DEB}" if line.endswith(DEB) else line for line in sums]
    (release / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    found = problems(release, keys[1])
    assert len(found) == 1
    assert found[0].startswith("SHA256SUMS.sig does not verify SHA256SUMS under the pinned key")
    assert "altered" in found[0]


def test_a_damaged_signature_is_refused(release: Path, keys: tuple[Path, Path]) -> None:
    signature = bytearray((release / "SHA256SUMS.sig").read_bytes())
    signature[5] ^= 0x80
    (release / "SHA256SUMS.sig").write_bytes(bytes(signature))
    assert problems(release, keys[1])[0].startswith("SHA256SUMS.sig does not verify")


@pytest.mark.parametrize("size", [0, 63, 65, 200])
def test_a_signature_of_the_wrong_size_is_refused(release: Path, keys: tuple[Path, Path], size: int) -> None:
    (release / "SHA256SUMS.sig").write_bytes(b"\1" * size)
    assert problems(release, keys[1]) == [
        f"SHA256SUMS.sig: {size} bytes, not a 64-byte Ed25519 signature (altered or truncated)"
    ]


def test_a_release_signed_by_another_key_says_so(
    release: Path, keys: tuple[Path, Path], other_keys: tuple[Path, Path]
) -> None:
    # The release verifies under its own (published) key, but the pinned key is another one.
    found = problems(release, other_keys[1])
    assert len(found) == 1
    assert found[0].startswith("SHA256SUMS was signed by another key")
    assert package.fingerprint(load_public_key(keys[1])) in found[0]
    assert package.fingerprint(load_public_key(other_keys[1])) in found[0]


def test_without_a_published_key_another_signer_is_still_refused(
    release: Path, keys: tuple[Path, Path], other_keys: tuple[Path, Path]
) -> None:
    (release / "release-public.key").unlink()
    sign_release(release, load_private_key(other_keys[0]), [DEB, "notes.txt"])  # a valid release, wrong signer
    found = problems(release, keys[1])
    assert len(found) == 1 and "does not verify SHA256SUMS under the pinned key" in found[0]


def test_a_published_key_never_makes_a_release_valid(
    release: Path, keys: tuple[Path, Path], other_keys: tuple[Path, Path]
) -> None:
    # An attacker re-signs with their own key and publishes it beside the release: still refused.
    sign_release(release, load_private_key(other_keys[0]), [DEB, "notes.txt"])
    shutil.copyfile(other_keys[1], release / "release-public.key")
    assert not verify_release(release, load_public_key(keys[1])).ok


def test_a_missing_file_is_named(release: Path, keys: tuple[Path, Path]) -> None:
    (release / DEB).unlink()
    assert problems(release, keys[1]) == [f"{DEB}: listed in SHA256SUMS but missing from {release}"]


@pytest.mark.parametrize("name", ["SHA256SUMS", "SHA256SUMS.sig"])
def test_missing_sums_or_signature_is_named(release: Path, keys: tuple[Path, Path], name: str) -> None:
    (release / name).unlink()
    assert problems(release, keys[1]) == [f"{name}: missing from {release}"]


def test_every_problem_is_reported_not_only_the_first(release: Path, keys: tuple[Path, Path]) -> None:
    (release / "notes.txt").unlink()
    (release / DEB).write_bytes(b"something else")
    (release / "extra_9_amd64.deb").write_bytes(b"unsigned")
    found = problems(release, keys[1])
    assert [p.split(":")[0] for p in found] == [DEB, "notes.txt", "extra_9_amd64.deb"]
    assert "not listed in SHA256SUMS" in found[2]


def test_an_unlisted_package_beside_a_good_release_fails_it(release: Path, keys: tuple[Path, Path]) -> None:
    (release / "ccc-workstation_9.9.9_amd64.deb").write_bytes(b"who put this here")
    assert problems(release, keys[1]) == [
        f"ccc-workstation_9.9.9_amd64.deb: in {release} but not listed in SHA256SUMS, so not covered by the signature"
    ]


@pytest.mark.parametrize(
    "line, why",
    [
        (f"{'0' * 64}  ../etc/passwd", "not a plain file name"),
        (f"{'0' * 64}  /etc/passwd", "not a plain file name"),
        (f"{'0' * 64}  sub/dir.deb", "not a plain file name"),
        (f"{'0' * 64}  SHA256SUMS", "cannot list itself"),
        ("not a checksum line", "not '<sha256>  <file name>'"),
        (f"{'0' * 63}  short.deb", "not '<sha256>  <file name>'"),
    ],
)
def test_a_signed_but_malformed_list_is_refused_line_by_line(
    tmp_path: Path, keys: tuple[Path, Path], line: str, why: str
) -> None:
    # Even a list signed by the right key names no path outside the directory.
    (tmp_path / "SHA256SUMS").write_text(line + "\n")
    key: Ed25519PrivateKey = load_private_key(keys[0])
    (tmp_path / "SHA256SUMS.sig").write_bytes(key.sign((tmp_path / "SHA256SUMS").read_bytes()))
    found = problems(tmp_path, keys[1])
    assert found and found[0].startswith("SHA256SUMS line 1:") and why in found[0]


def test_a_huge_sha256sums_is_not_read(release: Path, keys: tuple[Path, Path]) -> None:
    (release / "SHA256SUMS").write_bytes(b"0" * (package.MAX_SUMS_BYTES + 1))
    assert problems(release, keys[1]) == [
        f"SHA256SUMS: larger than {package.MAX_SUMS_BYTES} bytes, not read (altered?)"
    ]


def test_signing_refuses_names_outside_the_directory_and_missing_files(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    key = load_private_key(keys[0])
    with pytest.raises(PackageError, match="not a plain file name"):
        sign_release(tmp_path, key, ["../x.deb"])
    with pytest.raises(PackageError, match="not a file"):
        sign_release(tmp_path, key, ["absent.deb"])
    with pytest.raises(PackageError, match="nothing to sign"):
        sign_release(tmp_path, key)


# ---- the command line --------------------------------------------------------------------------


def test_cli_sign_then_verify(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    (tmp_path / DEB).write_bytes(b"package bytes")
    code, out = cli("package", "sign", tmp_path, "--key", keys[0])
    assert code == 0 and "1 files: " + DEB in out
    code, out = cli("package", "verify", tmp_path, "--pubkey", keys[1])
    assert code == 0 and out.startswith("OK: SHA256SUMS signed by release key ") and DEB in out


def test_cli_sign_lists_the_files_named(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    for name in (DEB, "other_1_amd64.deb"):
        (tmp_path / name).write_bytes(name.encode())
    assert cli("package", "sign", tmp_path, "--key", keys[0], "--file", DEB)[0] == 0
    assert (tmp_path / "SHA256SUMS").read_text().count("\n") == 1


def test_cli_verify_exits_1_naming_each_problem(release: Path, keys: tuple[Path, Path]) -> None:
    (release / "notes.txt").write_text("changed")
    code, out = cli("package", "verify", release, "--pubkey", keys[1])
    assert code == 1
    assert len(out.splitlines()) == 1 and out.startswith("INVALID: notes.txt: SHA-256")


def test_cli_verify_with_an_unreadable_key(release: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.key").write_text("not a key")
    code, out = cli("package", "verify", release, "--pubkey", tmp_path / "bad.key")
    assert code == 1 and out.startswith("INVALID: ") and "not a readable Ed25519 public key" in out


def test_cli_sign_with_a_missing_key_and_verify_of_a_missing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / DEB).write_bytes(b"x")
    assert cli("package", "sign", tmp_path, "--key", tmp_path / "absent.key")[0] == 2
    assert "absent.key: not a readable Ed25519 private key (No such file or directory)" in capsys.readouterr().err
    assert cli("package", "verify", tmp_path / "absent", "--pubkey", tmp_path / "k")[0] == 2
    assert "not a directory" in capsys.readouterr().err


def test_a_key_file_given_for_the_other_half_says_so(keys: tuple[Path, Path]) -> None:
    """The commonest slip with a key pair: public.key where the private one is wanted, or the other
    way round. The message says which half it is, never the key itself."""
    private, public = keys
    with pytest.raises(BundleError, match=r"not a readable Ed25519 private key \(it is a public key; give the private"):
        load_private_key(public)
    with pytest.raises(BundleError, match=r"not a readable Ed25519 public key \(it is a private key; give the public"):
        load_public_key(private)
    with pytest.raises(BundleError, match=r"not a readable Ed25519 public key \(not a PEM key file\)"):
        load_public_key(b"not a key")
