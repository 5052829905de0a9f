"""What a person does at the sign-in screen, for the app's tests."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.services.users import DEMO_PASSWORD
from app.views.main_window import MainWindow


def sign_in(qtbot, w: MainWindow, user_id: str, password: str = DEMO_PASSWORD) -> None:  # noqa: ANN001
    combo = w.sign_in.user
    combo.setCurrentIndex(combo.findData(user_id))
    qtbot.keyClicks(w.sign_in.password, password)
    qtbot.keyClick(w.sign_in.password, Qt.Key.Key_Return)
