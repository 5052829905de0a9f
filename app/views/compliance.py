"""The compliance workspace: the review queue (break-glass sessions and exports) with context
and review steps, and reports with a bar chart, exportable as PDF."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QMarginsF, QRectF, Qt
from PySide6.QtGui import QColor, QPageLayout, QPageSize, QPainter, QPdfWriter
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.viewmodels.compliance_vm import ComplianceViewModel, ReviewItem, summary
from app.viewmodels.reports_vm import Report, ReportsViewModel

STEPS = {
    "accept_review": "&Accept",
    "reject_review": "&Reject",
    "remind": "Re&mind clinician",
    "resolve_review": "Mark re&solved",
}


class ReportChart(QWidget):
    """Horizontal bars with their counts written beside them (never colour alone)."""

    def __init__(self) -> None:
        super().__init__()
        self.report: Report | None = None
        self.setMinimumHeight(220)

    def show_report(self, report: Report | None) -> None:
        self.report = report
        self.update()

    def paintEvent(self, _event: object) -> None:  # noqa: N802 - Qt's naming
        painter = QPainter(self)
        paint_report(painter, QRectF(self.rect()), self.report)
        painter.end()


def paint_report(painter: QPainter, area: QRectF, report: Report | None) -> None:
    if report is None or not report.rows:
        painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "No data for this report yet.")
        return
    top = area.top() + 24
    painter.drawText(
        QRectF(area.left(), area.top(), area.width(), 22),
        Qt.AlignmentFlag.AlignLeft,
        f"{report.report_type.replace('_', ' ').title()} report, hospital {report.hospital_id}: {report.total} records",
    )
    row_h = max(14.0, min(26.0, (area.bottom() - top) / len(report.rows)))
    label_w = area.width() * 0.35
    peak = max(c for _, c in report.rows)
    for i, (label, count) in enumerate(report.rows):
        y = top + i * row_h
        painter.drawText(QRectF(area.left(), y, label_w - 6, row_h), Qt.AlignmentFlag.AlignRight, label)
        width = (area.width() - label_w - 60) * count / peak
        painter.fillRect(QRectF(area.left() + label_w, y + 2, width, row_h - 4), QColor(40, 90, 170))
        painter.drawText(
            QRectF(area.left() + label_w + width + 4, y, 56, row_h), Qt.AlignmentFlag.AlignLeft, str(count)
        )


def write_report_pdf(report: Report, path: str) -> None:
    """The report as a one-page A4 PDF (Qt's PDF writer: no extra dependency). Qt's writer says
    nothing when the disk is full: the PDF is made in memory and written here, whole or not at all,
    so a failure raises OSError instead of leaving a truncated file reported as saved."""
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    _paint_pdf(report, QPdfWriter(buffer))
    buffer.close()
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_bytes(bytes(buffer.data().data()))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _paint_pdf(report: Report, writer: QPdfWriter) -> None:
    writer.setPageLayout(
        QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait, QMarginsF(15, 15, 15, 15))
    )
    writer.setTitle(f"CCC {report.report_type} report {report.hospital_id}")
    painter = QPainter(writer)
    scale = writer.resolution() / 96
    painter.scale(scale, scale)
    area = QRectF(0, 0, writer.width() / scale, min(writer.height() / scale, 40 + 26 * len(report.rows)))
    paint_report(painter, area, report)
    painter.end()


class ComplianceView(QTabWidget):
    def __init__(self, vm: ComplianceViewModel, reports: ReportsViewModel) -> None:
        super().__init__()
        self.setAccessibleName("Compliance: review queue and reports")
        self.vm, self.reports = vm, reports
        self.items: list[ReviewItem] = []
        self.addTab(self._queue_tab(), "Review &queue")
        self.addTab(self._reports_tab(), "Re&ports")
        vm.queue_changed.connect(self.show_queue)
        reports.types_changed.connect(self.show_report_types)
        reports.ready.connect(self._report_ready)

    def _queue_tab(self) -> QWidget:
        tab = QWidget()
        self.table = QTableWidget(0, 6)
        self.table.setAccessibleName("Events to review")
        self.table.setHorizontalHeaderLabels(["State", "When", "Who", "What", "Patient", "Reason"])
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.currentCellChanged.connect(lambda row, *_: self._show_detail(row))
        self.detail = QLabel("Select an event to see its context.")
        self.detail.setWordWrap(True)
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Comment for the record and the clinician")
        self.comment.setAccessibleName("Review comment")
        self.step_buttons: dict[str, QPushButton] = {}
        buttons = QHBoxLayout()
        for step, label in STEPS.items():
            button = QPushButton(label)
            button.setEnabled(False)
            button.clicked.connect(lambda _=False, s=step: self._step(s))
            self.step_buttons[step] = button
            buttons.addWidget(button)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout = QVBoxLayout(tab)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.detail, 1)
        layout.addWidget(self.comment)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        return tab

    def _reports_tab(self) -> QWidget:
        tab = QWidget()
        self.report_type = QComboBox()
        self.generate = QPushButton("&Generate")
        self.generate.clicked.connect(self._generate)
        self.pdf = QPushButton("Export &PDF")
        self.pdf.setEnabled(False)
        self.pdf.clicked.connect(lambda: self.export_pdf())
        self.busy = QProgressBar()
        self.busy.setRange(0, 1)
        self.chart = ReportChart()
        self.report_message = QLabel()
        self.report_message.setWordWrap(True)
        self.report: Report | None = None
        row = QHBoxLayout()
        for w in (QLabel("Report"), self.report_type, self.generate, self.pdf, self.busy):
            row.addWidget(w)
        layout = QVBoxLayout(tab)
        layout.addLayout(row)
        layout.addWidget(self.chart, 1)
        layout.addWidget(self.report_message)
        return tab

    def show_report_types(self, types: list[tuple[str, str]]) -> None:
        """The report types the policies let this user generate; nothing else is offered."""
        self.report_type.clear()
        for report_type, label in types:
            self.report_type.addItem(label, report_type)
        self.generate.setEnabled(bool(types))
        self.chart.show_report(None)
        self.report = None
        self.pdf.setEnabled(False)

    def show_queue(self, items: list[ReviewItem]) -> None:
        row = self.table.currentRow()
        self.items = items
        self.table.setRowCount(len(items))
        for i, item in enumerate(items):
            info = self._named(item)
            state = info["state"] + (" ⚑ needs review" if item.needs_attention else "")
            for j, text in enumerate(
                [state, info["when"], info["who"], info["what"].replace("_", " "), info["patient"], info["reason"]]
            ):
                self.table.setItem(i, j, QTableWidgetItem(str(text)))
        self.table.resizeColumnsToContents()
        if not items:
            self.detail.setText("Select an event to see its context.")
        self._show_detail(row)

    def _show_detail(self, row: int) -> None:
        """The selected event in full, and the review steps the policies allow on it."""
        item = self.items[row] if 0 <= row < len(self.items) else None
        decisions = self.vm.steps(item.event.record_id) if item else {}
        for step, button in self.step_buttons.items():
            decision = decisions.get(step)
            button.setEnabled(decision is not None and decision.allowed)
            button.setToolTip(decision.reason if decision is not None else "")
        refused = next((d for d in decisions.values() if not d.allowed), None)
        self.message.setText(refused.reason if refused is not None else "")
        if item is None:
            return
        info = self._named(item)
        notes = "".join(
            f"<li>{a.event_type.replace('_', ' ')} by {a.principal_id}: {a.justification}</li>"
            for a in item.annotations
        )
        self.detail.setText(
            f"<b>{info['what'].replace('_', ' ')}</b> by {info['who']} ({', '.join(info['roles'])}) on patient "
            f"{info['patient']} at {info['when']} UTC · reason {info['reason'] or '—'}<br>"
            f"Justification: {info['justification'] or '<i>none given</i>'} · accesses under it: {info['accesses']}"
            f"<ul>{notes}</ul>"
        )

    def _named(self, item: ReviewItem) -> dict[str, object]:
        """The event's summary with the user and the patient named (name and identifier)."""
        who, patient = self.vm.names.get(item.event.record_id, (item.event.principal_id, item.event.patient_id))
        return {**summary(item), "who": who, "patient": patient}

    def _step(self, step: str) -> None:
        row = self.table.currentRow()
        if not 0 <= row < len(self.items):
            self.message.setText("Select an event first.")
            return
        event_id = self.items[row].event.record_id
        problem = self.vm.review_step(event_id, step, self.comment.text())
        if not problem:
            self.comment.clear()
            ids = [i.event.record_id for i in self.items]
            self.table.setCurrentCell(ids.index(event_id) if event_id in ids else -1, 0)
        self.message.setText(problem or "Recorded in the audit log.")

    def _generate(self) -> None:
        self.busy.setRange(0, 0)  # busy while the worker runs
        self.generate.setEnabled(False)
        self.reports.start(self.report_type.currentData())

    def _report_ready(self, outcome: object) -> None:
        self.busy.setRange(0, 1)
        self.busy.setValue(1)
        self.generate.setEnabled(True)
        if isinstance(outcome, str):
            self.report_message.setText(outcome)
            self.pdf.setEnabled(False)
            return
        self.report = outcome
        self.report_message.setText("")
        self.chart.show_report(outcome)
        self.pdf.setEnabled(True)

    def export_pdf(self, path: str | None = None) -> str:
        if self.report is None:
            return ""
        folder = self.reports.default_directory()
        target = path or str(folder / f"{self.report.report_type}-report.pdf")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_report_pdf(self.report, target)
        except OSError as exc:  # a full disk, a read-only folder: said, and the report stays on screen
            self.report_message.setText(f"The report could not be saved to {target}: {exc.strerror or exc}")
            return ""
        self.report_message.setText(f"Saved {target}")
        return target
