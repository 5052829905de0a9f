"""The architecture's boundaries, checked: the engine and the service layer never import Qt."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_authz_and_services_know_nothing_of_qt() -> None:
    for package in ("authz", "app/services"):
        for path in (ROOT / package).rglob("*.py"):
            qt = _imports(path) & {"PySide6", "PyQt6", "PyQt5", "qtpy"}
            assert not qt, f"{path.relative_to(ROOT)} imports {qt}"


def test_authz_does_not_depend_on_the_app() -> None:
    for path in (ROOT / "authz").rglob("*.py"):
        assert "app" not in _imports(path), path


def test_views_and_view_models_never_touch_the_engine_the_database_or_the_keyring() -> None:
    forbidden = {"authz", "sqlite3", "sqlite_utils", "keyring", "celpy", "cryptography", "httpx"}
    for package in ("app/views", "app/viewmodels"):
        for path in (ROOT / package).rglob("*.py"):
            touched = _imports(path) & forbidden
            assert not touched, f"{path.relative_to(ROOT)} imports {touched}: ask the service layer instead"
