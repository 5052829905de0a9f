"""One telemetry series over time, with its normal range as a band and out-of-range points marked
by shape as well as colour (colour is never the only signal)."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.viewmodels.record_vm import Series


class TelemetryChart(QWidget):
    def __init__(self, series: Series) -> None:
        super().__init__()
        self.series = series
        self.setMinimumSize(260, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        latest = series.points[-1][1] if series.points else None
        self.setAccessibleName(f"{series.display} chart, latest {latest} {series.unit}")

    def paintEvent(self, event: object) -> None:  # noqa: N802 - Qt's naming
        s = self.series
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setFont(QFont(self.font().family(), 9))
        title = f"{s.display} ({s.unit})"
        if s.points:
            title += f" — latest {s.points[-1][1]:g}"
        p.drawText(QRectF(6, 2, self.width() - 12, 16), Qt.AlignmentFlag.AlignLeft, title)
        plot = QRectF(40, 22, self.width() - 50, self.height() - 34)
        values = [v for _, v in s.points] or [s.low, s.high]
        lo, hi = min(min(values), s.low), max(max(values), s.high)
        span = (hi - lo) or 1.0

        def y(v: float) -> float:
            return plot.bottom() - (v - lo) / span * plot.height()

        p.fillRect(QRectF(plot.left(), y(s.high), plot.width(), y(s.low) - y(s.high)), QColor(200, 235, 210))
        p.setPen(QPen(QColor(90, 90, 90)))
        p.drawText(QRectF(0, y(s.high) - 7, 38, 14), Qt.AlignmentFlag.AlignRight, f"{s.high:g}")
        p.drawText(QRectF(0, y(s.low) - 7, 38, 14), Qt.AlignmentFlag.AlignRight, f"{s.low:g}")
        if len(s.points) < 2:
            p.end()
            return
        step = plot.width() / (len(s.points) - 1)
        pts = [QPointF(plot.left() + i * step, y(v)) for i, (_, v) in enumerate(s.points)]
        p.setPen(QPen(QColor(30, 80, 160), 2))
        for a, b in zip(pts, pts[1:], strict=False):
            p.drawLine(a, b)
        for pt, (_, v) in zip(pts, s.points, strict=True):
            if not (s.low <= v <= s.high):
                p.setPen(QPen(QColor(190, 30, 30), 2))
                p.drawLine(QPointF(pt.x() - 4, pt.y() - 4), QPointF(pt.x() + 4, pt.y() + 4))
                p.drawLine(QPointF(pt.x() - 4, pt.y() + 4), QPointF(pt.x() + 4, pt.y() - 4))
        p.end()
