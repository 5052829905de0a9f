"""The compliance workspace: the review queue (break-glass sessions and exports) with context
and review steps, and reports over a period with a bar chart, saved as a PDF where the user says."""

from __future__ import annotations

import html
import os
from datetime import UTC, date, datetime
from pathlib import Path

from PySide6.QtCore import QBuffer, QDate, QIODevice, QMarginsF, QRectF, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QFont,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QFileDialog,
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

from app.viewmodels.compliance_vm import ComplianceViewModel, ReviewItem, in_words, reason_in_words, summary
from app.viewmodels.reports_vm import Report, ReportsViewModel
from app.views.empty_note import EmptyNote

NOTHING_TO_REVIEW = "Nothing waits for review: no emergency access (break-glass) sessions and no exports in the queue."
SELECT_ONE = "Select an event to see its context."
NO_REPORT = "Choose a report and a period, then Generate."
NO_DATA = "No data for this report in this period."
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
        painter.drawText(area, Qt.AlignmentFlag.AlignCenter, NO_REPORT if report is None else NO_DATA)
        return
    top = area.top() + 24
    painter.drawText(
        QRectF(area.left(), area.top(), area.width(), 22),
        Qt.AlignmentFlag.AlignLeft,
        f"{report.title}, {report.hospital_name or report.hospital_id}, {report.period}: {report.total} records",
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


def chart_image(report: Report, width: int = 720) -> QImage:
    """The report's chart as a picture for the PDF, drawn at twice its size so it prints sharp."""
    height = 40 + 26 * max(1, len(report.rows))
    image = QImage(width * 2, height * 2, QImage.Format.Format_RGB32)
    image.setDevicePixelRatio(2)
    image.fill(QColor("white"))
    painter = QPainter(image)
    font = QFont()
    font.setPixelSize(13)
    painter.setFont(font)
    paint_report(painter, QRectF(0, 0, width, height), report)
    painter.end()
    return image


def report_html(report: Report, made_by: str) -> str:
    """The report as a committee reads it: what, where, which period, who made it and when, the
    chart, the counts in a table, and for break-glass each session's timeline, people named."""
    e = html.escape
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = "".join(f"<tr><td>{e(label)}</td><td align='right'>{count}</td></tr>" for label, count in report.rows)
    parts = [
        f"<h1>{e(report.title)}</h1>",
        f"<p>Hospital: {e(report.hospital_name or report.hospital_id)} ({e(report.hospital_id)})<br>",
        f"Period: {e(report.period)} (both days included)<br>Made by {e(made_by)} on {made}<br>",
        f"Records counted: {report.total}</p>",
        "<p><img src='chart' width='640'></p>" if report.rows else "<p>No records in this period.</p>",
        "<table border='1' cellpadding='4' cellspacing='0'><tr><th align='left'>What</th><th>Count</th></tr>",
        f"{rows}</table>",
    ]
    for item in report.sessions:
        event = item.event
        timeline = "".join(f"<tr><td>{e(_when(t))}</td><td>{e(what)}</td></tr>" for t, what in item.timeline)
        parts += [
            f"<h2>Emergency access by {e(report.named(event.principal_id))} "
            f"to {e(report.named(event.patient_id))}</h2>",
            f"<p>Justification: {e(event.justification or 'none given')}<br>",
            f"Ended: {e(item.ended or 'still open')} · Duration: {e(item.duration)} · "
            f"Records opened: {item.accesses}</p>",
            "<table border='1' cellpadding='3' cellspacing='0'><tr><th align='left'>When (UTC)</th>"
            f"<th align='left'>What</th></tr>{timeline}</table>",
        ]
    return "".join(parts)


def _when(time: str) -> str:
    return time[:19].replace("T", " ")


def _label_for(text: str, field: QWidget) -> QLabel:
    label = QLabel(text)
    label.setBuddy(field)
    return label


def write_report_pdf(report: Report, path: str, made_by: str = "") -> None:
    """The report as an A4 PDF (Qt's PDF writer: no extra dependency), laid out as a text document
    so its text is real, selectable text at 10 pt on any renderer, over as many pages as it needs.
    Qt's writer says nothing when the disk is full: the PDF is made in memory and written here,
    whole or not at all, so a failure raises OSError instead of leaving a truncated file reported
    as saved."""
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    _paint_pdf(report, QPdfWriter(buffer), made_by)
    buffer.close()
    target = Path(path)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_bytes(bytes(buffer.data().data()))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _paint_pdf(report: Report, writer: QPdfWriter, made_by: str) -> None:
    writer.setPageLayout(
        QPageLayout(QPageSize(QPageSize.PageSizeId.A4), QPageLayout.Orientation.Portrait, QMarginsF(15, 15, 15, 15))
    )
    writer.setTitle(f"{report.title}, {report.hospital_name or report.hospital_id}, {report.period}")
    writer.setCreator("CCC Workstation")
    document = QTextDocument()
    font = QFont()
    font.setPointSizeF(10)
    document.setDefaultFont(font)
    document.addResource(QTextDocument.ResourceType.ImageResource.value, QUrl("chart"), chart_image(report))
    document.setHtml(report_html(report, made_by))
    document.print_(writer)  # paginated on a copy at the writer's page size and resolution


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
        self.empty = EmptyNote(self.table, NOTHING_TO_REVIEW)
        self.detail = QLabel("")
        self.detail.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
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
        self.pdf = QPushButton("Save as &PDF…")
        self.pdf.setEnabled(False)
        self.pdf.clicked.connect(self.choose_pdf_path)
        self.save_dialog: QFileDialog | None = None
        today = QDate.currentDate()
        self.start_date, self.end_date = QDateEdit(today.addDays(-30)), QDateEdit(today)
        for edit, name in ((self.start_date, "Report from (first day)"), (self.end_date, "Report to (last day)")):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setAccessibleName(name)
        self.busy = QProgressBar()
        self.busy.setRange(0, 1)
        self.busy.setTextVisible(False)  # a moving bar while a report is made, not "100%" when idle
        self.busy.setAccessibleName("Report being made")
        self.busy.hide()
        self.chart = ReportChart()
        self.report_message = QLabel()
        self.report_message.setWordWrap(True)
        self.report: Report | None = None
        row = QHBoxLayout()
        for w in (
            QLabel("Report"),
            self.report_type,
            _label_for("&from", self.start_date),
            self.start_date,
            _label_for("&to", self.end_date),
            self.end_date,
            self.generate,
            self.pdf,
            self.busy,
        ):
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
            state += " ⚑ weak justification" if item.weak_justification else ""
            for j, text in enumerate([state, info["when"], info["who"], info["what"], info["patient"], info["reason"]]):
                self.table.setItem(i, j, QTableWidgetItem(str(text)))
        self.table.resizeColumnsToContents()
        self.detail.setText(SELECT_ONE if items else "")
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
        info = {k: html.escape(str(v)) if isinstance(v, str) else v for k, v in self._named(item).items()}
        person = self.vm.session.workstation.session.person
        notes = "".join(
            f"<li>{html.escape(in_words(a.event_type))} by {html.escape(person(a.principal_id))}: "
            f"{html.escape(a.justification)}</li>"
            for a in item.annotations
        )
        weak = f"<br><b>⚑ {html.escape(item.weak_justification)}</b>" if item.weak_justification else ""
        story = ""
        if item.timeline:
            steps = "".join(f"<li>{_when(t)} — {html.escape(what)}</li>" for t, what in item.timeline)
            lasted = html.escape(item.duration)  # "12 min 5 s", or "... so far (still open)"
            story = (
                f"<br>Ended: {html.escape(item.ended)} · lasted {lasted}" if item.ended else f"<br>Open for {lasted}"
            )
            story += f"<ol>{steps}</ol>"
        roles = ", ".join(r.replace("_", " ") for r in info["roles"])  # "er physician", not its code
        self.detail.setText(
            f"<b>{info['what']}</b> by {info['who']} ({roles}) on patient "
            f"{info['patient']} at {info['when']} UTC · reason {info['reason'] or '—'}<br>"
            f"Justification: {info['justification'] or '<i>none given</i>'} · accesses under it: {info['accesses']}"
            f"{weak}{story}<ul>{notes}</ul>"
        )

    def _named(self, item: ReviewItem) -> dict[str, object]:
        """The event's summary with the user and the patient named (name and identifier) and the
        purpose of use in words."""
        who, patient = self.vm.names.get(item.event.record_id, (item.event.principal_id, item.event.patient_id))
        reason = reason_in_words(item.event.purpose_of_use) if item.event.purpose_of_use else ""
        return {**summary(item), "who": who, "patient": patient, "reason": reason}

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
        self.busy.show()
        self.generate.setEnabled(False)
        start, end = (date.fromisoformat(d.date().toString("yyyy-MM-dd")) for d in (self.start_date, self.end_date))
        self.reports.start(self.report_type.currentData(), start, end)

    def _report_ready(self, outcome: object) -> None:
        self.busy.setRange(0, 1)
        self.busy.setValue(1)
        self.busy.hide()
        self.generate.setEnabled(True)
        if isinstance(outcome, str):
            self.report_message.setText(outcome)
            self.pdf.setEnabled(False)
            return
        self.report = outcome
        self.report_message.setText("")
        self.chart.show_report(outcome)
        self.pdf.setEnabled(True)

    def choose_pdf_path(self) -> None:
        """Asks where to save the report (Qt's own dialog, the same on every desktop), starting in
        the exports folder with a name saying what and which period."""
        if self.report is None:
            return
        folder = self.reports.default_directory()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.report_message.setText(f"The exports folder {folder} cannot be made: {exc.strerror or exc}")
            return
        name = f"{self.report.report_type.replace('_', '-')}-report-{self.report.period.replace(' to ', '-to-')}.pdf"
        dialog = QFileDialog(self, "Save the report as PDF", str(folder / name), "PDF documents (*.pdf)")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog)
        dialog.setDefaultSuffix("pdf")
        dialog.selectFile(name)
        dialog.fileSelected.connect(self.export_pdf)
        self.save_dialog = dialog
        dialog.open()

    def export_pdf(self, path: str) -> str:
        """Saves the report where chosen; says where, or why not (the report stays on screen)."""
        if self.report is None or not path:
            return ""
        try:
            write_report_pdf(self.report, path, self._made_by())
        except OSError as exc:  # a full disk, a read-only folder: said, and the report stays on screen
            self.report_message.setText(f"The report could not be saved to {path}: {exc.strerror or exc}")
            return ""
        self.report_message.setText(f"Saved {path}")
        return path

    def _made_by(self) -> str:
        user = self.vm.session.user
        return self.vm.session.workstation.session.person(user.id) if user else ""
