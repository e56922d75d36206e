"""The comparison's charts as server-rendered SVG: every model one line on a shared
chart, in its own colour and dash pattern (so the lines stay apart without colour),
named in the legend.

Three charts: the headline metric per epoch, the main training loss per epoch, and
the overall precision-recall curve of the models that have an evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from training import task_metrics
from training.chart_scales import epoch_ticks, nice_ceiling
from training.comparison.runs import Run
from training.comparison.tables import shared_measures

WIDTH, HEIGHT = 560, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 30
MAX_MARKERS = 60  # points per line beyond which only the line is drawn (its title stays)
# Okabe-Ito colours, told apart by most colour-blind readers, then the dash patterns.
COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#8c564b")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "", "6 3", "2 3", "8 3 2 3")

Scale = Callable[[float], float]  # a value to its position on an axis


@dataclass(frozen=True)
class Point:
    x: str  # SVG coordinates, formatted here: the template would localise floats, slowly
    y: str
    title: str


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    dash: str
    polyline: str  # the SVG points: "x,y x,y ..."
    markers: tuple[Point, ...] = ()  # a dot with a hover title per point, on short lines only


def _polyline(coordinates: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)


def _coordinate(value: float) -> str:
    return f"{value:.1f}"


@dataclass(frozen=True)
class Tick:
    position: str  # an SVG coordinate, formatted
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    x_label: str
    lines: tuple[Line, ...]
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    note: str = ""
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right_x: int = WIDTH - RIGHT
    bottom_y: int = HEIGHT - BOTTOM


@dataclass(frozen=True)
class Style:
    colour: str
    dash: str


def styles(count: int) -> list[Style]:
    return [Style(COLOURS[i % len(COLOURS)], DASHES[i % len(DASHES)]) for i in range(count)]


def comparison_charts(runs: Sequence[Run]) -> tuple[Chart, ...]:
    charts = []
    metric = _headline_metric(runs)
    if metric is not None:
        key, label = metric
        charts.append(_epoch_chart(f"{label} per epoch", runs, key, top=1.0))
    loss = _main_loss(runs)
    if loss is not None:
        key, label = loss
        charts.append(_epoch_chart(f"{label} per epoch", runs, key, top=None))
    if any(run.pr_curve for run in runs):
        charts.append(_pr_chart(runs))
    return tuple(charts)


def _headline_metric(runs: Sequence[Run]) -> tuple[str, str] | None:
    """The first run's task's headline metric if every task has it, else the first
    accuracy measure they share."""
    shared = shared_measures(runs)
    headline = task_metrics.headline(runs[0].task)[0].key
    chosen = next((m for m in shared if m.key == headline), shared[0] if shared else None)
    return (chosen.key, chosen.label) if chosen else None


def _main_loss(runs: Sequence[Run]) -> tuple[str, str] | None:
    """The loss the first run's task is about, if every run recorded it."""
    loss = task_metrics.main_loss(runs[0].task)
    if all(run.recorded(loss.key) for run in runs if run.history) and any(run.history for run in runs):
        return loss.key, f"Training {loss.label}"
    return None


def _epoch_chart(title: str, runs: Sequence[Run], key: str, *, top: float | None) -> Chart:
    series = [[(epoch, metrics[key]) for epoch, metrics in run.history if key in metrics] for run in runs]
    epochs = [epoch for points in series for epoch, _value in points]
    first, last = (min(epochs), max(epochs)) if epochs else (1, 1)
    top_value = top if top is not None else nice_ceiling(max((v for p in series for _e, v in p), default=1.0))
    x_of = _scale(first, last, LEFT, WIDTH - RIGHT)
    y_of = _scale(0.0, top_value, HEIGHT - BOTTOM, TOP)
    lines = []
    for run, style, points in zip(runs, styles(len(runs)), series, strict=True):
        name = run.model.name
        drawn = [(x_of(epoch), y_of(min(max(value, 0.0), top_value))) for epoch, value in points]
        markers = (
            tuple(
                Point(_coordinate(x), _coordinate(y), f"{name}, epoch {epoch}: {value:.4f}")
                for (x, y), (epoch, value) in zip(drawn, points, strict=True)
            )
            if len(points) <= MAX_MARKERS
            else ()
        )
        lines.append(Line(name, style.colour, style.dash, _polyline(drawn), markers))
    missing = [run.model.name for run, points in zip(runs, series, strict=True) if not points]
    return Chart(
        title=title,
        x_label="Epoch",
        lines=tuple(lines),
        x_ticks=tuple(Tick(_coordinate(x_of(epoch)), str(epoch)) for epoch in epoch_ticks(first, last)),
        y_ticks=_y_ticks(y_of, top_value),
        note=f"No epochs yet: {', '.join(missing)}." if missing else "",
    )


def _pr_chart(runs: Sequence[Run]) -> Chart:
    x_of = _scale(0.0, 1.0, LEFT, WIDTH - RIGHT)
    y_of = _scale(0.0, 1.0, HEIGHT - BOTTOM, TOP)
    lines = []
    for run, style in zip(runs, styles(len(runs)), strict=True):
        curve = run.pr_curve
        if curve is None:
            continue
        drawn = [(x_of(r), y_of(min(max(p, 0.0), 1.0))) for r, p in zip(curve.recall, curve.precision, strict=True)]
        lines.append(Line(run.model.name, style.colour, style.dash, _polyline(drawn)))
    missing = [run.model.name for run in runs if run.pr_curve is None]
    return Chart(
        title="Precision-recall (evaluation, all classes)",
        x_label="Recall",
        lines=tuple(lines),
        x_ticks=tuple(Tick(_coordinate(x_of(step / 4)), f"{step / 4:.2g}") for step in range(5)),
        y_ticks=_y_ticks(y_of, 1.0),
        note=f"Not evaluated, or no curve for its task: {', '.join(missing)}." if missing else "",
    )


def _scale(low: float, high: float, start: float, end: float) -> Scale:
    span = (high - low) or 1.0

    def position(value: float) -> float:
        return start + (end - start) * (value - low) / span

    return position


def _y_ticks(y_of: Scale, top_value: float) -> tuple[Tick, ...]:
    return tuple(Tick(_coordinate(y_of(top_value * step / 4)), f"{top_value * step / 4:.2g}") for step in range(5))
