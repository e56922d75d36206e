"""Per-epoch charts as server-rendered SVG: no JavaScript chart library.

``model_charts`` reads a model's epoch history in one query and returns what the
``charts`` partial of ``templates/training/session_panel.html`` draws: axes, one
polyline per series, a legend, and a hover title on every point.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.models import EpochRecord, YoloModel

WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28
MAX_POINT_MARKERS = 150  # beyond this many epochs, lines only (hover titles stay on the lines)

METRIC_SERIES = (
    ("precision", "Precision", "#1f6feb"),
    ("recall", "Recall", "#1a7f37"),
    ("map50", "mAP50", "#9a6700"),
    ("map50_95", "mAP50-95", "#8250df"),
)
LOSS_SERIES = (
    ("train_box_loss", "Box loss (train)", "#1f6feb"),
    ("val_box_loss", "Box loss (val)", "#54aeff"),
    ("train_cls_loss", "Class loss (train)", "#cf222e"),
    ("val_cls_loss", "Class loss (val)", "#ff8182"),
    ("train_dfl_loss", "DFL loss (train)", "#1a7f37"),
    ("val_dfl_loss", "DFL loss (val)", "#4ac26b"),
)


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    points: tuple[Point, ...]

    @property
    def polyline(self) -> str:
        return " ".join(f"{point.x:.1f},{point.y:.1f}" for point in self.points)


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    series: tuple[Series, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    markers: bool
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom_y: int = HEIGHT - BOTTOM
    right_x: int = WIDTH - RIGHT
    top: int = TOP


def model_charts(model: YoloModel) -> tuple[Chart, Chart] | None:
    history = list(EpochRecord.objects.filter(model=model).order_by("epoch").values_list("epoch", "metrics"))
    if not history:
        return None
    return (
        build_chart("Metrics", history, METRIC_SERIES, fixed_max=1.0),
        build_chart("Losses", history, LOSS_SERIES, fixed_max=None),
    )


def build_chart(
    title: str,
    history: list[tuple[int, dict[str, float]]],
    wanted: tuple[tuple[str, str, str], ...],
    *,
    fixed_max: float | None,
) -> Chart:
    first, last = history[0][0], history[-1][0]
    values = [metrics[key] for _epoch, metrics in history for key, _label, _colour in wanted if key in metrics]
    top_value = fixed_max if fixed_max is not None else _nice_ceiling(max(values, default=1.0))

    def x_of(epoch: int) -> float:
        span = max(1, last - first)
        return LEFT + (WIDTH - LEFT - RIGHT) * (epoch - first) / span

    def y_of(value: float) -> float:
        clamped = min(max(value, 0.0), top_value)
        return (HEIGHT - BOTTOM) - (HEIGHT - BOTTOM - TOP) * clamped / top_value

    series = []
    for key, label, colour in wanted:
        points = tuple(
            Point(x_of(epoch), y_of(metrics[key]), f"{label}, epoch {epoch}: {metrics[key]:.4f}")
            for epoch, metrics in history
            if key in metrics
        )
        if points:
            series.append(Series(label, colour, points))
    return Chart(
        title=title,
        series=tuple(series),
        x_ticks=tuple(Tick(x_of(epoch), str(epoch)) for epoch in _epoch_ticks(first, last)),
        y_ticks=tuple(Tick(y_of(top_value * step / 4), f"{top_value * step / 4:.2g}") for step in range(5)),
        markers=len(history) <= MAX_POINT_MARKERS,
    )


def _epoch_ticks(first: int, last: int, count: int = 6) -> list[int]:
    if last - first < count:
        return list(range(first, last + 1))
    step = max(1, round((last - first) / (count - 1)))
    ticks = list(range(first, last, step))
    if last - ticks[-1] < step / 2:
        ticks.pop()
    return [*ticks, last]


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    for ceiling in (0.5, 1, 2, 2.5, 5, 10, 20, 25, 50, 100):
        if value <= ceiling:
            return float(ceiling)
    return float(int(value) + 1)
