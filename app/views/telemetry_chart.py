"""One telemetry series over time: a dated time axis, y ticks at round values in the series' own
precision, the normal range as a band (the plot reaches beyond it, so it never fills the plot),
out-of-range points marked by shape (✕) as well as colour, counts of events as bars, and a readout
that names the point under the mouse or the one chosen with the arrow keys (Home and End too).

Drawn with QPainter on purpose. pyqtgraph was tried (ticks, bands and markers for free) and
dropped: under the PySide6 the app pins (6.12.0, Python 3.11) every Python override of a
QGraphicsItem virtual (paint, itemChange), which pyqtgraph is made of, loses a reference to None,
and a session of a few hundred repaints aborts the process ("none_dealloc"). QtCharts would need
PySide6-Addons (a package several times the size of Essentials). The scale arithmetic is a few
pure functions below, tested on their own."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QKeyEvent, QMouseEvent, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.viewmodels.record_vm import Series

DAY = 86400.0
LINE = QColor(30, 80, 160)
OUT = QColor(190, 30, 30)
BAND = QColor(46, 160, 67, 55)
BAND_EDGE = QColor(46, 140, 67)
AXIS = QColor(90, 90, 90)
LEFT, RIGHT, TOP, BOTTOM = 46.0, 8.0, 6.0, 20.0  # the plot's margins: y labels, x labels


def seconds(time: str) -> float:
    """An ISO 8601 time as seconds since the epoch (a time without zone read as UTC)."""
    when = datetime.fromisoformat(time.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def y_range(low: float, high: float, values: list[float]) -> tuple[float, float]:
    """The values and the normal band, with a fifth of their span as room on either side (never
    below zero for a series that cannot be negative): the band never fills the plot."""
    lo, hi = min([low, *values]), max([high, *values])
    pad = (hi - lo) * 0.2 or 1.0
    return (max(lo - pad, 0.0) if lo >= 0 else lo - pad), hi + pad


def nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round values (1, 2, 2.5 or 5 times a power of ten) between lo and hi: the finest such step
    that gives at most ``most`` ticks."""
    span = hi - lo
    if span <= 0:
        return [lo]
    power = 10 ** math.floor(math.log10(span / most))
    for step in (m * power for m in (1, 2, 2.5, 5, 10, 20)):
        first = math.ceil(lo / step - 1e-9) * step
        ticks = [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]
        if len(ticks) <= most:
            return ticks
    return [lo, hi]


def date_ticks(first: float, last: float) -> list[tuple[float, str]]:
    """Dated ticks in UTC between two times: weekly ("29 Nov") up to about two months, then the
    first of each month ("Nov 2026")."""
    start = datetime.fromtimestamp(first, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if last - first <= 62 * DAY:
        ticks = [start.timestamp() + i * 7 * DAY for i in range(int((last - first) / (7 * DAY)) + 2)]
        return [(t, datetime.fromtimestamp(t, UTC).strftime("%d %b")) for t in ticks if first <= t <= last]
    out = []
    year, month = start.year, start.month
    while True:
        month, year = (1, year + 1) if month == 12 else (month + 1, year)
        t = datetime(year, month, 1, tzinfo=UTC).timestamp()
        if t > last:
            return out
        out.append((t, datetime(year, month, 1, tzinfo=UTC).strftime("%b %Y")))


class Plot(QWidget):
    """The painted area: band, ticks, the data (a line, or bars for counts), ✕ marks, the marker."""

    def __init__(self, chart: TelemetryChart) -> None:
        super().__init__()
        self.chart = chart
        self.setFixedHeight(170)
        self.setMouseTracking(True)
        self.setFocusProxy(chart)  # a click on the plot gives the chart the arrow keys
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)

    def area(self) -> QRectF:
        return QRectF(LEFT, TOP, max(self.width() - LEFT - RIGHT, 1.0), max(self.height() - TOP - BOTTOM, 1.0))

    def x_of(self, t: float) -> float:
        c, a = self.chart, self.area()
        return a.left() + (t - c.x_lo) / (c.x_hi - c.x_lo) * a.width()

    def y_of(self, v: float) -> float:
        c, a = self.chart, self.area()
        return a.bottom() - (v - c.y_lo) / (c.y_hi - c.y_lo) * a.height()

    def paintEvent(self, _event: object) -> None:  # noqa: N802 - Qt's naming
        c, s, a = self.chart, self.chart.series, self.area()
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setFont(QFont(self.font().family(), 8))
        p.fillRect(QRectF(self.rect()), QColor("white"))
        band = QRectF(a.left(), self.y_of(s.high), a.width(), self.y_of(s.low) - self.y_of(s.high))
        p.fillRect(band, BAND)
        p.setPen(QPen(BAND_EDGE, 1))
        for edge in (band.top(), band.bottom()):
            p.drawLine(QPointF(a.left(), edge), QPointF(a.right(), edge))
        p.setPen(QPen(AXIS, 1))
        p.drawLine(a.bottomLeft(), a.bottomRight())
        p.drawLine(a.bottomLeft(), a.topLeft())
        for v in c.y_ticks:
            y = self.y_of(v)
            p.drawLine(QPointF(a.left() - 3, y), QPointF(a.left(), y))
            p.drawText(QRectF(0, y - 7, LEFT - 5, 14), Qt.AlignmentFlag.AlignRight, c.tick_label(v))
        for t, text in c.x_ticks:
            x = self.x_of(t)
            p.drawLine(QPointF(x, a.bottom()), QPointF(x, a.bottom() + 3))
            p.drawText(QRectF(x - 40, a.bottom() + 3, 80, 14), Qt.AlignmentFlag.AlignHCenter, text)
        points = [QPointF(self.x_of(t), self.y_of(v)) for t, v in zip(c.xs, c.ys, strict=True)]
        if s.counts:
            width = max(2.0, min(12.0, a.width() / max(len(points), 1) * 0.6))
            for pt in points:
                p.fillRect(QRectF(pt.x() - width / 2, pt.y(), width, self.y_of(max(c.y_lo, 0)) - pt.y()), LINE)
        elif points:
            path = QPainterPath(points[0])
            for pt in points[1:]:
                path.lineTo(pt)
            p.setPen(QPen(LINE, 2))
            p.drawPath(path)
        p.setPen(QPen(OUT, 2))
        for i in c.marked:
            pt = points[i]
            p.drawLine(QPointF(pt.x() - 4, pt.y() - 4), QPointF(pt.x() + 4, pt.y() + 4))
            p.drawLine(QPointF(pt.x() - 4, pt.y() + 4), QPointF(pt.x() + 4, pt.y() - 4))
        if 0 <= c.index < len(points):
            p.setPen(QPen(AXIS, 1, Qt.PenStyle.DotLine))
            x = points[c.index].x()
            p.drawLine(QPointF(x, a.top()), QPointF(x, a.bottom()))
        p.end()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's naming
        c = self.chart
        if c.xs and self.area().contains(event.position()):
            x = event.position().x()
            c.choose(min(range(len(c.xs)), key=lambda i: abs(self.x_of(c.xs[i]) - x)))


class TelemetryChart(QWidget):
    def __init__(self, series: Series) -> None:
        super().__init__()
        self.series = series
        self.xs = [seconds(t) for t, _ in series.points]
        self.ys = [v for _, v in series.points]
        self.marked = [i for i, v in enumerate(self.ys) if series.out_of_range(v)]
        self.x_lo, self.x_hi = (self.xs[0] - DAY / 2, self.xs[-1] + DAY / 2) if self.xs else (0.0, DAY)
        self.y_lo, self.y_hi = y_range(series.low, series.high, self.ys)
        self.y_ticks = nice_ticks(self.y_lo, self.y_hi)
        self.x_ticks = date_ticks(self.x_lo, self.x_hi)
        self.index = len(self.ys) - 1  # the point the readout names (the latest at first)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        latest = f"latest {series.shown(self.ys[-1])}" if self.ys else "no data"
        self.title = QLabel(f"<b>{series.display}</b> ({series.symbol}) — {latest}")
        self.title.setToolTip(f"{series.code}, UCUM unit {series.unit}")
        self.setAccessibleName(f"{series.display} chart, {latest}")
        self.plot = Plot(self)
        self.readout = QLabel()
        self.readout.setAccessibleName(f"{series.display} reading")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.title)
        layout.addWidget(self.plot)
        layout.addWidget(self.readout)
        self.choose(self.index)

    def tick_label(self, value: float) -> str:
        """A y tick at the series' precision (one more decimal where the ticks are finer)."""
        step = self.y_ticks[1] - self.y_ticks[0] if len(self.y_ticks) > 1 else 1.0
        decimals = max(0, -math.floor(math.log10(step)) if step < 1 else 0)
        return f"{value:.{decimals}f}"

    def choose(self, index: int) -> None:
        """The readout of a point: its date, its value, and whether it is in range."""
        s = self.series
        if not self.ys:
            self.readout.setText("No transmissions.")
            return
        self.index = max(0, min(len(self.ys) - 1, index))
        y = self.ys[self.index]
        where = (
            f"above the normal range ({s.shown(s.high)})"
            if y > s.high
            else f"below the normal range ({s.shown(s.low)})"
            if y < s.low
            else "in the normal range"
        )
        mark = "✕ " if s.out_of_range(y) else ""
        self.readout.setText(f"{mark}{s.points[self.index][0][:10]}: {s.shown(y)}, {where}")
        self.plot.update()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's naming
        moves = {
            Qt.Key.Key_Left: self.index - 1,
            Qt.Key.Key_Right: self.index + 1,
            Qt.Key.Key_Home: 0,
            Qt.Key.Key_End: len(self.ys) - 1,
        }
        if event.key() in moves:
            self.choose(moves[Qt.Key(event.key())])
            return
        super().keyPressEvent(event)
