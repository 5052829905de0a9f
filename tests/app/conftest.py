"""Qt tests run offscreen; each test gets its own data directory (a real SQLite file) and an
explicitly selected keyring backend, never the developer's real keyring."""

from __future__ import annotations

import os

import keyring
import pytest

from tests.support.keyrings import MemoryKeyring

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def memory_keyring() -> MemoryKeyring:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def window(qtbot, tmp_path):  # noqa: ANN001, ANN201 - pytest-qt's fixture
    """The main window on a fresh demo hospital (its own SQLite file and audit log), shown."""
    from app.services.workstation import Workstation
    from app.viewmodels.workstation_vm import WorkstationViewModel
    from app.views.main_window import MainWindow

    w = MainWindow(WorkstationViewModel(Workstation(tmp_path / "data")))
    qtbot.addWidget(w)
    w.show()
    return w
