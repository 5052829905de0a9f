"""The workstation's settings screen: every setting, the value in force and where it comes from
(managed by IT, the user's, or the default), read from the settings the app started with."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject

from app.services.settings import DEFAULT, MANAGED, USER, Settings

SOURCE_WORDS = {MANAGED: "managed by IT", USER: "user", DEFAULT: "default"}


@dataclass(frozen=True)
class SettingRow:
    key: str
    title: str
    value: str
    source: str  # "managed", "user" or "default"
    origin: str  # the file or the flag it came from; "" for a default
    help: str

    @property
    def managed(self) -> bool:
        return self.source == MANAGED

    @property
    def source_text(self) -> str:
        return SOURCE_WORDS[self.source] + (f" ({self.origin})" if self.origin else "")


class SettingsViewModel(QObject):
    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def rows(self) -> list[SettingRow]:
        return [
            SettingRow(v.setting.key, v.setting.title, v.shown, v.source, v.origin, v.setting.help)
            for v in self.settings.rows()
        ]

    @property
    def managed(self) -> bool:
        return self.settings.managed

    @property
    def summary(self) -> str:
        """One line for the sign-in screen: which settings IT manages, and from where."""
        keys = self.settings.managed_keys
        if not keys:
            return "No setting is managed by IT on this workstation."
        titles = ", ".join(self.settings.values[k].setting.title for k in keys)
        return f"Managed by IT ({self.settings.managed_file}): {titles}."
