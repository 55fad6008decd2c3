"""Charts as inline SVG computed here and drawn by ``templates/_charts.html``: no chart
library, no JavaScript. Geometry only; the template escapes every label."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str  # the series' class: its colour in console.css
    title: str  # the tooltip


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Series:
    name: str
    css: str


@dataclass
class ColumnChart:
    """Grouped columns per category (e.g. per day), one column per series."""

    title: str
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    x_labels: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    plot_left: float = 0
    plot_bottom: float = 0
    plot_right: float = 0
    empty: bool = True


def nice_max(value: float) -> int:
    """The smallest of 1, 2, 5 times 10^k at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return int(step * power)
    return int(10 * power)


def column_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[Series, Sequence[int]]],
    *,
    width: int = 640,
    height: int = 220,
    label_every: int = 1,
) -> ColumnChart:
    left, right, top, bottom = 36.0, 8.0, 10.0, 24.0
    plot_w, plot_h = width - left - right, height - top - bottom
    chart = ColumnChart(title, width, height, series=[s for s, _ in series])
    chart.plot_left, chart.plot_bottom, chart.plot_right = left, top + plot_h, width - right
    peak = max((v for _, values in series for v in values), default=0)
    chart.empty = peak == 0
    top_value = nice_max(peak)
    # Counts: whole-number ticks (1, 2, 5 x 10^k always divide into at most 5 steps).
    steps = top_value if top_value <= 5 else 5
    for i in range(steps + 1):
        y = top + plot_h - plot_h * i / steps
        chart.y_ticks.append(Tick(left - 4, y, f"{top_value * i // steps:,}"))
    slot = plot_w / max(len(categories), 1)
    group = slot * 0.8
    column = group / max(len(series), 1)
    for index, category in enumerate(categories):
        x0 = left + slot * index + (slot - group) / 2
        for n, (s, values) in enumerate(series):
            value = values[index]
            h = plot_h * value / top_value
            chart.bars.append(
                Bar(
                    x=round(x0 + column * n, 2),
                    y=round(top + plot_h - h, 2),
                    width=round(max(column - 1, 1), 2),
                    height=round(h, 2),
                    css=s.css,
                    title=f"{category}: {value} {s.name}",
                )
            )
        if index % label_every == 0:
            chart.x_labels.append(Tick(x0 + group / 2, height - 8, category))
    return chart


@dataclass(frozen=True)
class Row:
    label: str
    value: int
    display: str  # the value as shown (an amount with its currency, a count)
    css: str
    bar_width: float  # pixels


@dataclass
class BarList:
    """Horizontal bars, one per row, each scaled to the largest value."""

    title: str
    rows: list[Row]
    empty: bool


BAR_LIST_SCALE = 180  # pixels of the longest bar


def bar_list(title: str, rows: Sequence[tuple[str, int, str, str]]) -> BarList:
    """``rows`` of (label, value, display, css class)."""
    peak = max((value for _, value, _, _ in rows), default=0)
    return BarList(
        title,
        [
            Row(
                label,
                value,
                display,
                css,
                round(max(BAR_LIST_SCALE * value / peak, 2 if value else 0), 1) if peak else 0,
            )
            for label, value, display, css in rows
        ],
        empty=peak == 0,
    )
