"""Telemetry as remote-monitoring clinicians read it (issue 18, part 2), on the real record of the
demo hospital and on the real chart widgets: IDC code and UCUM unit with the right symbol and
precision, a dated time axis, round y ticks, the normal band only, out-of-range points marked,
episode counts as bars, and a readout by mouse or keyboard; and the redraw time of 30 and 365 days."""

from __future__ import annotations

import re
import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest
from PySide6.QtCharts import QAreaSeries, QCategoryAxis, QChartView, QScatterSeries, QValueAxis
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from app.services.patients import Series
from app.services.telemetry_units import formatted
from app.views.main_window import MainWindow
from app.views.telemetry_chart import DAY, TelemetryChart, date_ticks, nice_ticks, y_range
from tests.app.helpers import search_and_open, sign_in


def charts(qtbot, window: MainWindow, patient_id: str = "p02") -> dict[str, TelemetryChart]:  # noqa: ANN001
    sign_in(qtbot, window, "dr_aly")
    search_and_open(qtbot, window, window.vms.session.workstation.store.patient(patient_id).mrn)
    return {c.series.code: c for c in window.record.body().findChildren(TelemetryChart)}


def test_each_series_shows_its_code_and_unit_symbol_at_a_sensible_precision(qtbot, window: MainWindow) -> None:
    shown = charts(qtbot, window)
    assert len(shown) == 9 and all(code.startswith("MDC_IDC_") for code in shown)
    impedance = shown["MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE"]
    assert "Ω" in impedance.title.text() and "Ohm" not in impedance.title.text()
    assert re.search(r"latest \d+ Ω", impedance.title.text())  # whole ohms, not 2192.09
    assert "MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE" in impedance.title.toolTip()
    assert "UCUM unit Ohm" in impedance.title.toolTip()
    assert re.search(r"latest \d\.\d\d V", shown["MDC_IDC_MSMT_BATTERY_VOLTAGE"].title.text())
    episodes = shown["MDC_IDC_STAT_EPISODE_TOTAL_COUNT"]
    assert "{" not in episodes.title.text() and "episodes" in episodes.title.text()
    assert episodes.series.counts and not impedance.series.counts  # counts are drawn as bars
    assert formatted(2192.09, "Ohm") == "2192 Ω" and formatted(3.014, "V") == "3.01 V"


def test_the_band_is_the_normal_range_only_and_out_of_range_points_are_marked(qtbot, window: MainWindow) -> None:
    for chart in charts(qtbot, window).values():
        s = chart.series
        assert chart.y_hi > s.high and (chart.y_lo < s.low or chart.y_lo == 0)  # room beyond the band
        assert [chart.ys[i] for i in chart.marked] == [v for _, v in s.points if not s.low <= v <= s.high]
        assert len(chart.y_ticks) >= 3 and all(chart.y_lo <= t <= chart.y_hi for t in chart.y_ticks)
        assert chart.x_ticks and all(re.fullmatch(r"\d\d [A-Z][a-z]{2}", label) for _, label in chart.x_ticks)
    impedance = charts(qtbot, window)["MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE"]
    assert impedance.marked  # the demo's lead problem on p02


def test_the_charts_are_drawn_by_qt_charts(qtbot, window: MainWindow) -> None:
    """A plotting library draws them (Qt Charts): the band, the data (a line, or bars for counts),
    the ✕ marks and the marker are its series, on a dated axis and a value axis with round ticks."""
    shown = charts(qtbot, window)
    impedance = shown["MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE"]
    view = impedance.plot.view
    assert isinstance(view, QChartView) and view.chart() is impedance.plot.qchart
    kinds = [type(s).__name__ for s in view.chart().series()]
    assert kinds.count("QAreaSeries") == 1 and "QScatterSeries" in kinds  # the band; the ✕ marks
    marks = next(s for s in view.chart().series() if isinstance(s, QScatterSeries))
    assert [(p.x(), p.y()) for p in marks.points()] == [(impedance.xs[i], impedance.ys[i]) for i in impedance.marked]
    x_axis, y_axis = impedance.plot.x_axis, impedance.plot.y_axis
    assert isinstance(x_axis, QCategoryAxis) and x_axis.categoriesLabels() == [t for _, t in impedance.x_ticks]
    assert isinstance(y_axis, QValueAxis) and y_axis.tickInterval() == impedance.y_ticks[1] - impedance.y_ticks[0]
    episodes = shown["MDC_IDC_STAT_EPISODE_TOTAL_COUNT"]
    assert isinstance(episodes.plot.data, QAreaSeries)  # counts as bars
    assert all(t == int(t) for t in episodes.y_ticks) and episodes.plot.y_axis.labelFormat() == "%.0f"


def test_scales_round_ticks_and_dated_axes() -> None:
    assert nice_ticks(0, 100) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(2.45, 3.35) == [2.6, 2.8, 3.0, 3.2]
    assert y_range(200, 2000, [500, 2200]) == (0.0, 2200 + 0.2 * 2000)
    assert y_range(50, 100, [60, 90]) == (40.0, 110.0)
    start = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
    weekly = date_ticks(start, start + 29 * DAY)
    assert [label for _, label in weekly] == ["02 Nov", "09 Nov", "16 Nov", "23 Nov", "30 Nov"]
    monthly = date_ticks(start, start + 364 * DAY)
    assert monthly[0][1] == "Dec 2026" and monthly[-1][1] == "Nov 2027" and len(monthly) == 12


def test_a_point_is_read_with_the_keyboard_and_the_mouse(qtbot, window: MainWindow) -> None:
    window.resize(1400, 900)
    chart = charts(qtbot, window)["MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE"]
    s = chart.series
    window.record.scroll.ensureWidgetVisible(chart)
    qtbot.mouseClick(chart.plot, Qt.MouseButton.LeftButton, pos=QPoint(2, 2))
    assert chart.hasFocus()
    last_day, last = s.points[-1][0][:10], s.points[-1][1]
    assert chart.readout.text().startswith(f"✕ {last_day}: {s.shown(last)}, above the normal range")
    qtbot.keyClick(chart, Qt.Key.Key_Home)
    first_day, first = s.points[0][0][:10], s.points[0][1]
    assert chart.readout.text() == f"{first_day}: {s.shown(first)}, in the normal range"
    qtbot.keyClick(chart, Qt.Key.Key_Right)
    assert chart.readout.text().startswith(s.points[1][0][:10])
    qtbot.keyClick(chart, Qt.Key.Key_End)
    assert chart.readout.text().startswith(f"✕ {last_day}")
    target = 10
    where = QPointF(chart.plot.x_of(chart.xs[target]), chart.plot.y_of(chart.ys[target]))
    # the pointer over that point (a move event to the plot: QTest's mouseMove goes through the
    # offscreen platform's cursor, which lands off by the window's frame)
    move = QMouseEvent(
        QEvent.Type.MouseMove,
        where,
        chart.plot.mapToGlobal(where),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(chart.plot, move)
    assert chart.readout.text().startswith(s.points[target][0][:10])


@pytest.mark.parametrize("days", [30, 365])
def test_a_chart_of_a_year_redraws_fast_enough(qtbot, days: int) -> None:
    """Build and first paint, then repaints: the figures the record's nine charts multiply."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    points = [
        ((start + timedelta(days=i)).isoformat(), 500 + (i % 7) * 40.0 + 1800 * (i % 50 == 0)) for i in range(days)
    ]
    series = Series("MDC_IDC_MSMT_LEADCHNL_RV_IMPEDANCE_VALUE", "RV lead impedance", "Ohm", 200, 2000, points)
    began = time.perf_counter()
    chart = TelemetryChart(series)
    qtbot.addWidget(chart)
    chart.resize(600, 230)
    chart.grab()
    built = time.perf_counter() - began
    redraws = []
    for _ in range(10):
        began = time.perf_counter()
        chart.plot.grab()
        redraws.append(time.perf_counter() - began)
    redraw = statistics.median(redraws)
    print(f"{days} days: built and painted in {built * 1000:.1f} ms, redrawn in {redraw * 1000:.2f} ms (median of 10)")
    assert redraw < 0.1 and built < 1.0
