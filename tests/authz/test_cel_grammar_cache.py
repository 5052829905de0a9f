"""lark's cache of the CEL parser tables is never read from a place another account can write:
lark unpickles a cache file before checking it, so a planted file would run its code."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import lark
import pytest

from authz.cel import parser


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "ccc-authz"


def test_the_cache_is_in_the_users_own_closed_directory(cache_home: Path) -> None:
    path = parser.grammar_cache()
    assert path == str(cache_home / f"cel-grammar-{lark.__version__}.lark")
    assert not path.startswith(tempfile.gettempdir() + os.sep + "ccc-cel-grammar")
    assert cache_home.stat().st_mode & 0o777 == 0o700


def test_a_directory_others_can_enter_or_write_is_not_used(cache_home: Path) -> None:
    cache_home.mkdir(parents=True)
    cache_home.chmod(0o777)
    assert parser.grammar_cache() is None
    cache_home.chmod(0o755)
    assert parser.grammar_cache() is None
    cache_home.chmod(0o700)
    assert parser.grammar_cache() is not None


def test_a_cache_file_of_another_user_or_writable_by_others_is_not_read(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(parser.grammar_cache() or "")
    path.write_bytes(b"x")
    path.chmod(0o666)
    assert parser.grammar_cache() is None
    path.chmod(0o644)
    assert parser.grammar_cache() == str(path)
    real = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real + 1)  # now the directory and file are another user's
    assert parser.grammar_cache() is None


def test_a_symlink_in_place_of_the_cache_is_not_followed(cache_home: Path, tmp_path: Path) -> None:
    path = Path(parser.grammar_cache() or "")
    (tmp_path / "elsewhere").write_bytes(b"x")
    path.symlink_to(tmp_path / "elsewhere")
    assert parser.grammar_cache() is None


def test_without_a_usable_home_there_is_no_cache_and_parsing_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache directory would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert parser.grammar_cache() is None
    monkeypatch.setattr(parser, "_PARSER", None)
    assert parser.parse("1 + 2") is not None


def test_a_payload_planted_at_the_old_shared_path_is_never_unpickled(
    cache_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = Path(tempfile.gettempdir()) / f"ccc-cel-grammar-{lark.__version__}.lark"
    if planted.exists() and planted.stat().st_uid != os.getuid():
        pytest.fail(f"{planted} belongs to another account: a shared cache there is what this test guards against")
    calls: list[object] = []
    real_load = pickle.load

    def spy(file: object, *args: object, **kwargs: object) -> object:
        calls.append(getattr(file, "name", file))
        return real_load(file, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pickle, "load", spy)
    monkeypatch.setattr(parser, "_PARSER", None)
    parser.parse("request.resource.attr.x == 1")
    assert all(str(name) != str(planted) for name in calls)
