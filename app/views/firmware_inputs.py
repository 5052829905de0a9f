"""What a firmware step takes, checked where it is typed: the target version (one of the device
model's released versions, offered as the user types; anything else is named as wrong at once and
the request stays disabled) and the date an update is scheduled for (a calendar limited to today
up to a year ahead)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from PySide6.QtCore import QDate
from PySide6.QtWidgets import QCompleter, QDateEdit, QLineEdit, QPushButton

from app.views.dialog_parts import Said


class VersionInput(QLineEdit):
    """The target version; ``problem`` says why the text is not one to request ("" when it is)."""

    def __init__(self) -> None:
        super().__init__()
        self.setPlaceholderText("Target version")
        self.setAccessibleName("Target firmware version")
        self.problem = Said(error=True)  # why the version typed is not one to request; no room when none
        self._check: Callable[[str], str] = lambda _text: ""
        self._request: QPushButton | None = None
        self._allowed = False
        self.textChanged.connect(self._checked)

    def offer(self, versions: list[str], check: Callable[[str], str], request: QPushButton, allowed: bool) -> None:
        """The versions to complete from, the check, and the request button it enables (when the
        policies allow the request at all)."""
        self._check, self._request, self._allowed = check, request, allowed
        self.setCompleter(QCompleter(versions, self))
        self.setPlaceholderText(f"Target version ({', '.join(versions[-3:])}…)" if versions else "Target version")
        self.setEnabled(allowed)
        self._checked(self.text())

    def _checked(self, text: str) -> None:
        problem = self._check(text) if text.strip() else ""
        self.problem.setText(problem)
        if self._request is not None:
            self._request.setEnabled(self._allowed and bool(text.strip()) and not problem)


def schedule_date(window: tuple[date, date]) -> QDateEdit:
    """A calendar from the first to the last day an update may be scheduled for, tomorrow chosen."""
    first, last = window
    edit = QDateEdit()
    edit.setCalendarPopup(True)
    edit.setDisplayFormat("yyyy-MM-dd")
    edit.setAccessibleName("Date to apply the update")
    edit.setDateRange(QDate(first.year, first.month, first.day), QDate(last.year, last.month, last.day))
    chosen = min(first + timedelta(days=1), last)
    edit.setDate(QDate(chosen.year, chosen.month, chosen.day))
    return edit


def iso(edit: QDateEdit) -> str:
    return edit.date().toString("yyyy-MM-dd")
