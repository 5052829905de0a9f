"""The patient banner: who this screen, dialog or refusal is about (name, age and date of birth,
sex, MRN, location and bed) and the alert state in words as well as colour. It sits outside any
scrolling area, so it stays in sight however far the record is scrolled."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel

from app.viewmodels.record_vm import Identity

# The alert state in words and with a symbol, never colour alone.
ALERT_WORDS = {
    "red": "⚠ ALERT (red): act today",
    "yellow": "▲ Check (yellow): review soon",
    "none": "✓ No alerts waiting",
}
ALERT_STYLE = {
    "red": "background: #b3261e; color: white;",
    "yellow": "background: #ffe08a; color: black;",
    "none": "background: #e6f4ea; color: black;",
}


def identity_line(identity: Identity) -> str:
    """The identity as one line of rich text (two identifiers at least: name and date of birth, MRN)."""
    age = f"{identity.age} y, " if identity.age is not None else ""
    parts = [
        f"<b style='font-size: 15pt'>{escape(identity.name)}</b>",
        f"{age}born {escape(identity.birth_date)}",
        escape(identity.sex),
        f"<b>{escape(identity.mrn_text)}</b>",
    ]
    if identity.location:
        parts.append(escape(identity.location))
    return " &nbsp;·&nbsp; ".join(parts)


class PatientBanner(QFrame):
    """The banner of one patient (or, when the policies do not let this user know who it is, says so)."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("patient_banner")
        self.setStyleSheet("#patient_banner { background: #eef3fb; border: 1px solid #1a56b0; }")
        self.who = QLabel()
        self.who.setObjectName("banner")
        self.who.setAccessibleName("Patient")
        self.alert = QLabel()
        self.alert.setAccessibleName("Alert state")
        self.alert.setTextFormat(Qt.TextFormat.PlainText)  # the alerts' words, as written
        self.alert.setWordWrap(True)  # a long one wraps rather than widening the banner over the list
        self.alert.setMaximumWidth(480)
        layout = QHBoxLayout(self)
        layout.addWidget(self.who, 1)
        layout.addWidget(self.alert)
        self.hide()

    def show_identity(
        self,
        identity: Identity | None,
        alert_level: str | None = None,
        unknown: str = "",
        *,
        alerts: Sequence[str] = (),
    ) -> None:
        """``identity`` (None: not known to this user, ``unknown`` says why); ``alert_level`` red,
        yellow or none (None: not shown, as on a refusal, which shows nothing of the chart), and
        ``alerts``, what the alerts waiting are, in words (the first is shown, every one in the tooltip)."""
        if identity is None:
            self.who.setText(f"<b>Patient not identified to you</b>{': ' + escape(unknown) if unknown else ''}")
        else:
            self.who.setText(identity_line(identity))
        self.alert.setVisible(alert_level is not None)
        if alert_level is not None:
            words = ALERT_WORDS.get(alert_level, alert_level)
            more = f" (+{len(alerts) - 1} more)" if len(alerts) > 1 else ""
            self.alert.setText(f"{words}: {alerts[0]}{more}" if alerts else words)
            self.alert.setToolTip("\n".join(alerts))
            self.alert.setStyleSheet(f"QLabel {{ {ALERT_STYLE.get(alert_level, '')} padding: 4px 8px; }}")
        self.show()

    def clear(self) -> None:
        """Nobody's banner: hidden, and nothing of the last patient kept in it (a lock, a sign-out)."""
        self.who.clear()
        self.alert.clear()
        self.hide()

    def text(self) -> str:
        return f"{self.who.text()} {self.alert.text() if self.alert.isVisible() else ''}"
