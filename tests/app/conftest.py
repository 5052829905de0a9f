"""Qt tests run offscreen; each test gets its own data directory (a real SQLite file), an
explicitly selected keyring backend (never the developer's real keyring) and, for the app, a
clock of its own that the real timers read."""

from __future__ import annotations

import os
from collections.abc import Iterator

import keyring
import pytest

from tests.app.helpers import Clock
from tests.support.keyrings import MemoryKeyring
from tests.support.oidc_provider import OidcProvider, ProviderBrowser

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def memory_keyring() -> MemoryKeyring:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def process_umask() -> Iterator[None]:
    """A workstation makes its process create files owner-only (umask 077, app/services/data_dir.py);
    the tests after it in the same run get back the umask they started with."""
    previous = os.umask(0o077)
    os.umask(previous)
    yield
    os.umask(previous)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def window(qtbot, tmp_path, clock):  # noqa: ANN001, ANN201 - pytest-qt's fixture
    """The main window on a fresh demo hospital (its own SQLite file and audit log), shown; its
    timers tick every 20 ms on the test's clock."""
    from app.services.workstation import Workstation
    from app.viewmodels.app_vm import ViewModels
    from app.views.main_window import MainWindow

    ws = Workstation(tmp_path / "data", clock=clock.now, monotonic=clock.monotonic)
    w = MainWindow(ViewModels.build(ws, clock=clock.monotonic, tick_ms=20))
    qtbot.addWidget(w)
    w.show()
    return w


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    """A real OpenID provider (panva's oidc-provider under node) on 127.0.0.1, for a module's tests."""
    with OidcProvider() as running:
        yield running


@pytest.fixture
def browser() -> Iterator[ProviderBrowser]:
    """The system browser's part, played over HTTP, with its cookies (a provider session)."""
    b = ProviderBrowser()
    yield b
    b.close()
