"""Service-layer fixtures: a real Workstation on its own data directory with the real policies,
and the clocks it reads, which the test moves instead of sleeping.

The demo store (seeded, its demo passwords hashed) is made once per session and copied into each
test's directory: the same file a first start makes, without its second and a half of scrypt."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.services.store import Store
from app.services.users import DemoUserDirectory
from app.services.workstation import Workstation
from tests.app.services.support import Clocks


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding a freshly seeded store whose demo users can sign in."""
    data = tmp_path_factory.mktemp("template") / "data"
    store = Store(data / "ccc.db")
    DemoUserDirectory(store)
    store.close()
    return data


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def make_ws(demo_store: Path, tmp_path: Path, clocks: Clocks) -> Callable[..., Workstation]:
    """A Workstation on the clocks: on a copy of the demo store in ``tmp_path/name``, or, with
    ``data_dir``, on that directory (a restart)."""

    def make(name: str = "data", data_dir: Path | None = None, **kwargs: Any) -> Workstation:
        if data_dir is None:
            data_dir = tmp_path / name
            shutil.copytree(demo_store, data_dir)
        return Workstation(data_dir, clock=clocks.now, monotonic=clocks.monotonic, **kwargs)

    return make


@pytest.fixture
def ws(make_ws: Callable[..., Workstation]) -> Workstation:
    return make_ws()
