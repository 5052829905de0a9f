"""One telemetry series over time: a dated time axis, y ticks at round values in the series' own
precision, the normal range as a band (the plot reaches beyond it, so it never fills the plot),
out-of-range points marked by shape (✕) as well as colour, counts of events as bars, and a readout
that names the point under the mouse or the one chosen with the arrow keys (Home and End too).

Drawn by Qt Charts (PySide6.QtCharts, from PySide6-Addons at the pinned PySide6's version): a
plotting library made for this, whose axes, series, areas and markers are C++ items painted by Qt
itself, so nothing in Python runs per repaint. pyqtgraph was tried first and dropped: its items
are Python overrides of QGraphicsItem virtuals (paint, itemChange), and under the PySide6 the app
pins (6.12.0, Python 3.11) each such call loses a reference to None; a session of a few hundred
repaints aborted ("none_dealloc"). The scale arithmetic (round ticks, the room around the band,
dated ticks) is a few pure functions below, tested on their own; the chart is given their values."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from PySide6.QtCharts import (
    QAbstractSeries,
    QAreaSeries,
    QCategoryAxis,
    QChart,
    QChartView,
    QLineSeries,
    QScatterSeries,
    QValueAxis,
)
from PySide6.QtCore import QMargins, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QKeyEvent, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout, QWidget

from app.viewmodels.record_vm import Series

DAY = 86400.0
LINE = QColor(30, 80, 160)
OUT = QColor(190, 30, 30)
BAND = QColor(46, 160, 67, 55)
BAND_EDGE = QColor(46, 140, 67)
AXIS = QColor(90, 90, 90)


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


def cross_marker(size: int = 12) -> QImage:
    """The ✕ drawn at an out-of-range point: a shape as well as a colour."""
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QPen(OUT, 2.2))
    p.drawLine(QPointF(2, 2), QPointF(size - 2, size - 2))
    p.drawLine(QPointF(2, size - 2), QPointF(size - 2, 2))
    p.end()
    return image


def line(points: list[tuple[float, float]], pen: QPen | None = None) -> QLineSeries:
    series = QLineSeries()
    series.replace([QPointF(x, y) for x, y in points])
    if pen is not None:
        series.setPen(pen)
    return series


class View(QChartView):
    """The chart's view: it never takes focus itself (a click focuses the chart, which reads the
    arrow keys), and a pointer moving over it chooses the nearest point."""

    def __init__(self, plot: Plot, chart: QChart) -> None:
        super().__init__(chart)
        self.plot = plot
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.viewport().setFocusPolicy(Qt.FocusPolicy.NoFocus)
        name = f"{plot.chart.series.display} chart"
        self.setAccessibleName(name)
        self.viewport().setAccessibleName(name)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMouseTracking(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's naming
        self.plot.point_at(event.position())


class Plot(QWidget):
    """The plot, drawn by Qt Charts: the normal band (an area between the limits), the data (a
    line, or bars for counts, as an area of steps), ✕ on the points out of range, a dotted marker
    at the point the readout names, a dated axis and round y ticks at the series' precision."""

    def __init__(self, chart: TelemetryChart) -> None:
        super().__init__()
        self.chart = chart
        self.setFixedHeight(170)
        self.setMouseTracking(True)
        self.setFocusProxy(chart)  # a click on the plot gives the chart the arrow keys
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.qchart = QChart()
        self.qchart.legend().hide()
        self.qchart.setBackgroundRoundness(0)
        self.qchart.setMargins(QMargins(0, 4, 6, 0))
        self.qchart.layout().setContentsMargins(0, 0, 0, 0)
        self.keep: list[object] = []  # series an area reads but the chart does not own
        self.x_axis, self.y_axis = self._axes()
        self._band()
        self.data = self._data()
        self._marks()
        self.marker = line([], QPen(AXIS, 1, Qt.PenStyle.DotLine))
        self._add(self.marker)
        self.view = View(self, self.qchart)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)

    def _axes(self) -> tuple[QCategoryAxis, QValueAxis]:
        c = self.chart
        font = QFont(self.font().family(), 8)
        x_axis = QCategoryAxis()
        x_axis.setRange(c.x_lo, c.x_hi)
        x_axis.setStartValue(c.x_lo)
        x_axis.setLabelsPosition(QCategoryAxis.AxisLabelsPosition.AxisLabelsPositionOnValue)
        for t, text in c.x_ticks:
            x_axis.append(text, t)
        x_axis.setGridLineVisible(False)
        y_axis = QValueAxis()
        y_axis.setRange(c.y_lo, c.y_hi)
        if len(c.y_ticks) > 1:
            y_axis.setTickType(QValueAxis.TickType.TicksDynamic)
            y_axis.setTickAnchor(c.y_ticks[0])
            y_axis.setTickInterval(c.y_ticks[1] - c.y_ticks[0])
        y_axis.setLabelFormat(f"%.{c.decimals()}f")
        y_axis.setGridLinePen(QPen(QColor(230, 230, 230), 1))
        for axis in (x_axis, y_axis):
            axis.setLabelsFont(font)
            axis.setLinePen(QPen(AXIS, 1))
        self.qchart.addAxis(x_axis, Qt.AlignmentFlag.AlignBottom)
        self.qchart.addAxis(y_axis, Qt.AlignmentFlag.AlignLeft)
        return x_axis, y_axis

    def _add(self, series: QAbstractSeries) -> None:
        self.qchart.addSeries(series)
        series.attachAxis(self.x_axis)
        series.attachAxis(self.y_axis)

    def _area(self, upper: QLineSeries, lower: QLineSeries, brush: QColor, pen: QPen) -> QAreaSeries:
        area = QAreaSeries(upper, lower)
        area.setBrush(brush)
        area.setPen(pen)
        self.keep += [upper, lower]
        self._add(area)
        return area

    def _band(self) -> None:
        """The normal range: a light area, and its two limits as lines (no edges at the sides)."""
        c, s = self.chart, self.chart.series
        limits = [[(c.x_lo, v), (c.x_hi, v)] for v in (s.high, s.low)]
        self._area(line(limits[0]), line(limits[1]), BAND, QPen(Qt.PenStyle.NoPen))
        for limit in limits:
            self._add(line(limit, QPen(BAND_EDGE, 1)))

    def _data(self) -> QAbstractSeries:
        c = self.chart
        if not c.series.counts:
            data = line(list(zip(c.xs, c.ys, strict=True)), QPen(LINE, 2))
            self._add(data)
            return data
        base, half = max(c.y_lo, 0.0), DAY * 0.3  # a bar 0.6 of a day wide
        steps: list[tuple[float, float]] = [(c.x_lo, base)]
        for x, y in zip(c.xs, c.ys, strict=True):
            steps += [(x - half, base), (x - half, y), (x + half, y), (x + half, base)]
        steps.append((c.x_hi, base))
        return self._area(line(steps), line([(c.x_lo, base), (c.x_hi, base)]), LINE, QPen(LINE, 1))

    def _marks(self) -> None:
        c = self.chart
        marks = QScatterSeries()
        marks.replace([QPointF(c.xs[i], c.ys[i]) for i in c.marked])
        marks.setLightMarker(cross_marker())
        marks.setMarkerSize(12)
        self._add(marks)

    def show_marker(self, index: int) -> None:
        c = self.chart
        self.marker.replace([QPointF(c.xs[index], c.y_lo), QPointF(c.xs[index], c.y_hi)])

    def _position(self, t: float, v: float) -> QPointF:
        scene = self.qchart.mapToPosition(QPointF(t, v), self.data)
        return QPointF(self.view.mapFromScene(scene)) + QPointF(self.view.pos())

    def area(self) -> QRectF:
        """The plot area (inside the axes), in this widget's coordinates."""
        return self.qchart.plotArea().translated(QPointF(self.view.pos()))

    def x_of(self, t: float) -> float:
        return self._position(t, self.chart.y_lo).x()

    def y_of(self, v: float) -> float:
        return self._position(self.chart.x_lo, v).y()

    def point_at(self, where: QPointF) -> None:
        """The point nearest the pointer, along time, when the pointer is over the plot area."""
        c = self.chart
        if c.xs and self.area().contains(where):
            c.choose(min(range(len(c.xs)), key=lambda i: abs(self.x_of(c.xs[i]) - where.x())))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt's naming
        self.point_at(event.position())


class TelemetryChart(QWidget):
    def __init__(self, series: Series) -> None:
        super().__init__()
        self.series = series
        self.xs = [seconds(t) for t, _ in series.points]
        self.ys = [v for _, v in series.points]
        self.marked = [i for i, v in enumerate(self.ys) if series.out_of_range(v)]
        self.x_lo, self.x_hi = (self.xs[0] - DAY / 2, self.xs[-1] + DAY / 2) if self.xs else (0.0, DAY)
        self.y_lo, self.y_hi = y_range(series.low, series.high, self.ys)
        if series.counts:  # whole numbers of events: whole ticks, at least 0, 1 and 2
            self.y_hi = max(math.ceil(self.y_hi), 2.0)
            self.y_ticks = [t for t in nice_ticks(self.y_lo, self.y_hi) if t == int(t)]
        else:
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

    def decimals(self) -> int:
        """The y ticks' decimals: as many as their step needs (500 Ω: none; 0.2 V, 2.5 %: one)."""
        step = self.y_ticks[1] - self.y_ticks[0] if len(self.y_ticks) > 1 else 1.0
        return next((d for d in range(6) if abs(round(step, d) - step) < 1e-9), 2)

    def tick_label(self, value: float) -> str:
        """A y tick as the axis writes it."""
        return f"{value:.{self.decimals()}f}"

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
        self.plot.show_marker(self.index)

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
