"""The workstation's settings: each setting, the value in force and where it comes from (managed by
IT, the user's, or the default), read only. Opened from the sign-in screen."""

from __future__ import annotations

from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from app.viewmodels.settings_vm import SettingsViewModel

COLUMNS = ("Setting", "Value", "Source")


class SettingsDialog(QDialog):
    def __init__(self, vm: SettingsViewModel, parent: object = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.setWindowTitle("Workstation settings")
        self.summary = QLabel(vm.summary)
        self.summary.setWordWrap(True)
        rows = vm.rows()
        self.table = QTableWidget(len(rows), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        bold = QFont()
        bold.setBold(True)
        for i, row in enumerate(rows):
            for j, text in enumerate((row.title, row.value, row.source_text)):
                item = QTableWidgetItem(text)
                item.setToolTip(row.help)
                if row.managed:
                    item.setFont(bold)  # and said in words in the Source column
                self.table.setItem(i, j, item)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.resizeColumnsToContents()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.close_button = buttons.button(QDialogButtonBox.StandardButton.Close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.resize(900, 420)
