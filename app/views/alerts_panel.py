"""The record's alerts: each alert the rules found, in words (tier, what, value against its limit,
since when, and its state: new, acknowledged or triaged, each with a symbol as well as words, never
colour alone), with Acknowledge and Triage as the policies allow them; a refusal is written beside
the controls in the policies' words."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QResizeEvent
from PySide6.QtWidgets import (
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from app.viewmodels.record_vm import Alert, OpenRecord, RecordViewModel, offered
from app.views.dialog_parts import Said

TIER_TEXT = {"red": "⚠ Red: act today", "yellow": "▲ Yellow: review soon"}
TIER_COLOUR = {"red": QColor(250, 200, 200), "yellow": QColor(255, 240, 180)}


class AlertsPanel(QGroupBox):
    COLUMNS = ["Tier", "Alert", "Value and limit", "Since", "State"]

    def __init__(self, vm: RecordViewModel, record: OpenRecord) -> None:
        new = sum(1 for a in record.alerts if a.open)
        super().__init__(f"Alerts ({new} new)" if record.alerts else "Alerts")
        self.vm, self.alerts = vm, record.alerts
        self.setAccessibleName("Device alerts")
        column = QVBoxLayout(self)
        self.table = QTableWidget(len(self.alerts), len(self.COLUMNS))
        self.table.setAccessibleName("Alerts: tier, what, value and limit, since when, state")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        for row, alert in enumerate(self.alerts):
            self._fill_row(row, alert)
        self._fit()
        self.none = QLabel("✓ No alert from the alert rules in these transmissions.")
        self.none.setVisible(not self.alerts)
        self.table.setVisible(bool(self.alerts))
        column.addWidget(self.none)
        column.addWidget(self.table)
        column.addLayout(self._controls(record))
        self.reason = Said()  # a refusal, in the policies' words; no room taken when there is none
        self.done = QLabel(record.alert_done)
        self.done.setWordWrap(True)
        self.done.setVisible(bool(record.alert_done))
        column.addWidget(self.reason)
        column.addWidget(self.done)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        if self.alerts:
            first_open = next((i for i, a in enumerate(self.alerts) if a.open), 0)
            self.table.selectRow(first_open)
        self._selection_changed()
        for control in (self.acknowledge, self.outcome, self.comment, self.triage):
            control.setVisible(bool(self.alerts))  # nothing to act on: no row of greyed-out controls

    def _fit(self) -> None:
        """Every column in sight (the long ones wrap), every row whole, no scrolling inside the record."""
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setWordWrap(True)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.resizeRowsToContents()
        rows = sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
        self.table.setFixedHeight(header.sizeHint().height() + rows + 2 * self.table.frameWidth() + 4)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        """Wrapped rows grow or shrink with the width: the table keeps them whole."""
        super().resizeEvent(event)
        if self.alerts:
            self._fit()

    def _fill_row(self, row: int, alert: Alert) -> None:
        state = self.vm.alert_state(alert)
        cells = [TIER_TEXT.get(alert.tier, alert.tier), alert.rule.says, alert.finding, alert.span, state]
        for j, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(f"{alert.words}\n{state}")
            item.setData(Qt.ItemDataRole.UserRole, alert.id)
            if j == 0 and alert.open:
                item.setBackground(TIER_COLOUR.get(alert.tier, QColor()))
            self.table.setItem(row, j, item)

    def _controls(self, record: OpenRecord) -> QHBoxLayout:
        decisions = record.view.decisions
        self.acknowledge_decision = decisions.get("acknowledge_alert")
        self.triage_decision = decisions.get("triage_alert")
        row = QHBoxLayout()
        self.acknowledge = QPushButton("Ac&knowledge")
        self.acknowledge.setAccessibleName("Acknowledge the selected alert")
        self.acknowledge.clicked.connect(self._acknowledge)
        self.outcome = QComboBox()
        self.outcome.setAccessibleName("Triage outcome")
        self.outcome.addItem("Triage outcome…", "")
        for code, words in self.vm.dispositions().items():
            self.outcome.addItem(words, code)
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Triage comment (optional)")
        self.comment.setAccessibleName("Triage comment")
        self.triage = QPushButton("Record &triage")
        self.triage.setAccessibleName("Record the triage of the selected alert")
        self.triage.clicked.connect(self._triage)
        self.outcome.currentIndexChanged.connect(lambda _i: self._selection_changed())
        for widget in (self.acknowledge, self.outcome, self.comment, self.triage):
            row.addWidget(widget)
        row.addStretch(1)
        return row

    def selected(self) -> Alert | None:
        rows = self.table.selectionModel().selectedRows()
        return self.alerts[rows[0].row()] if rows else None

    def _selection_changed(self) -> None:
        """The controls as the policies and the selected alert allow them; a refusal says why."""
        alert = self.selected()
        may_acknowledge = self.acknowledge_decision is not None and offered(self.acknowledge_decision)
        may_triage = self.triage_decision is not None and offered(self.triage_decision)
        self.acknowledge.setEnabled(alert is not None and alert.open and may_acknowledge)
        for widget in (self.outcome, self.comment):
            widget.setEnabled(alert is not None and may_triage)
        self.triage.setEnabled(alert is not None and may_triage and bool(self.outcome.currentData()))
        refusal = next(
            (d.reason for d in (self.acknowledge_decision, self.triage_decision) if d is not None and not offered(d)),
            "",
        )
        self.reason.setText(refusal if self.alerts else "")
        self.acknowledge.setToolTip(refusal if not may_acknowledge else "")
        self.triage.setToolTip(refusal if not may_triage else "")

    def _acknowledge(self) -> None:
        alert = self.selected()
        if alert is not None:
            self._said(self.vm.acknowledge_alert(alert.id))

    def _triage(self) -> None:
        alert = self.selected()
        if alert is not None:
            self._said(self.vm.triage_alert(alert.id, self.outcome.currentData() or "", self.comment.text()))

    def _said(self, problem: str) -> None:
        """A refusal stays on screen beside the controls (on success the record is shown again)."""
        if problem:
            self.reason.setText(problem)
