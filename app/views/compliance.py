"""The compliance workspace: the review queue (break-glass sessions and exports) with context
and review steps, and reports with a bar chart, exportable as PDF."""

from __future__ import annotations

from PySide6.QtCore import QMarginsF, QRectF, Qt
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

from app.services.compliance import REPORT_TYPES, Report, ReviewItem, summary
from app.viewmodels.workstation_vm import WorkstationViewModel

STEPS = {"review_accepted": "&Accept", "review_rejected": "&Reject", "reminder": "Re&mind clinician",
         "review_resolved": "Mark re&solved"}


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
    painter.drawText(QRectF(area.left(), area.top(), area.width(), 22), Qt.AlignmentFlag.AlignLeft,
                     f"{report.report_type.replace('_', ' ').title()} report, hospital {report.hospital_id}: "
                     f"{report.total} records")
    row_h = max(14.0, min(26.0, (area.bottom() - top) / len(report.rows)))
    label_w = area.width() * 0.35
    peak = max(c for _, c in report.rows)
    for i, (label, count) in enumerate(report.rows):
        y = top + i * row_h
        painter.drawText(QRectF(area.left(), y, label_w - 6, row_h), Qt.AlignmentFlag.AlignRight, label)
        width = (area.width() - label_w - 60) * count / peak
        painter.fillRect(QRectF(area.left() + label_w, y + 2, width, row_h - 4), QColor(40, 90, 170))
        painter.drawText(QRectF(area.left() + label_w + width + 4, y, 56, row_h), Qt.AlignmentFlag.AlignLeft,
                         str(count))


def write_report_pdf(report: Report, path: str) -> None:
    """The report as a one-page A4 PDF (Qt's PDF writer: no extra dependency)."""
    writer = QPdfWriter(path)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait,
                                     QMarginsF(15, 15, 15, 15)))
    writer.setTitle(f"CCC {report.report_type} report {report.hospital_id}")
    painter = QPainter(writer)
    scale = writer.resolution() / 96
    painter.scale(scale, scale)
    area = QRectF(0, 0, writer.width() / scale, min(writer.height() / scale, 40 + 26 * len(report.rows)))
    paint_report(painter, area, report)
    painter.end()


class ComplianceView(QTabWidget):
    def __init__(self, vm: WorkstationViewModel) -> None:
        super().__init__()
        self.vm = vm
        self.items: list[ReviewItem] = []
        self.addTab(self._queue_tab(), "Review &queue")
        self.addTab(self._reports_tab(), "Re&ports")
        vm.signed_in.connect(self._on_signed_in)
        vm.report_ready.connect(self._report_ready)

    def _queue_tab(self) -> QWidget:
        tab = QWidget()
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["State", "When", "Who", "What", "Patient", "Reason"])
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.currentCellChanged.connect(lambda row, *_: self._show_detail(row))
        self.detail = QLabel("Select an event to see its context.")
        self.detail.setWordWrap(True)
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("Comment for the record and the clinician")
        self.step_buttons: dict[str, QPushButton] = {}
        buttons = QHBoxLayout()
        for step, label in STEPS.items():
            button = QPushButton(label)
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
        for report_type in REPORT_TYPES:
            self.report_type.addItem(report_type.replace("_", " "), report_type)
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

    def _on_signed_in(self, user: object) -> None:
        """Only reviewers load the queue: a clinician's sign-in does not read the whole audit log."""
        if user is not None and self.vm.workspace() == "compliance":
            self.refresh()
        else:
            self.clear_all()

    def refresh(self) -> None:
        self.items = self.vm.review_queue()
        self.table.setRowCount(len(self.items))
        for i, item in enumerate(self.items):
            info = summary(item)
            state = info["state"] + (" ⚑ needs review" if item.needs_attention else "")
            for j, text in enumerate([state, info["when"], info["who"], info["what"].replace("_", " "),
                                      info["patient"], info["reason"]]):
                self.table.setItem(i, j, QTableWidgetItem(str(text)))
        self.table.resizeColumnsToContents()
        can_annotate = "compliance_officer" in (self.vm.user.roles if self.vm.user else ())
        for button in self.step_buttons.values():
            button.setEnabled(can_annotate)
            button.setToolTip("" if can_annotate else "Hospital administrators review; compliance officers decide.")

    def clear_all(self) -> None:
        self.items = []
        self.table.setRowCount(0)
        self.detail.setText("Select an event to see its context.")
        self.chart.show_report(None)
        self.report = None

    def _show_detail(self, row: int) -> None:
        if not 0 <= row < len(self.items):
            return
        info = summary(self.items[row])
        notes = "".join(f"<li>{a.event_type.replace('_', ' ')} by {a.principal_id}: {a.justification}</li>"
                        for a in self.items[row].annotations)
        self.detail.setText(
            f"<b>{info['what'].replace('_', ' ')}</b> by {info['who']} ({', '.join(info['roles'])}) on patient "
            f"{info['patient']} at {info['when']} UTC · reason {info['reason'] or '—'}<br>"
            f"Justification: {info['justification'] or '<i>none given</i>'} · accesses under it: {info['accesses']}"
            f"<ul>{notes}</ul>")

    def _step(self, step: str) -> None:
        row = self.table.currentRow()
        if not 0 <= row < len(self.items):
            self.message.setText("Select an event first.")
            return
        problem = self.vm.review_step(self.items[row].event.record_id, step, self.comment.text())
        self.message.setText(problem or "Recorded in the audit log.")
        if not problem:
            self.comment.clear()
            self.refresh()
            self.table.setCurrentCell(row, 0)

    def _generate(self) -> None:
        self.busy.setRange(0, 0)  # busy while the worker runs
        self.generate.setEnabled(False)
        self.vm.start_report(self.report_type.currentData())

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
        target = path or str(self.vm.default_export_directory() / f"{self.report.report_type}-report.pdf")
        self.vm.default_export_directory().mkdir(parents=True, exist_ok=True)
        write_report_pdf(self.report, target)
        self.report_message.setText(f"Saved {target}")
        return target
