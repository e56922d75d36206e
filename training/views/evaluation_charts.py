"""An evaluation's curves as server-rendered SVG, drawn like the per-epoch charts
(``training.views.charts``): precision against recall, and F1, precision and recall
against the confidence threshold, for all classes together and each class."""

from __future__ import annotations

from typing import Any

from training.datasets import class_colour
from training.views.charts import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, Chart, Point, Series, Tick

# (stored curve, title, x axis, y axis)
CURVE_CHARTS = (
    ("pr", "Precision-recall", "recall", "precision"),
    ("f1", "F1-confidence", "confidence", "F1"),
    ("precision", "Precision-confidence", "confidence", "precision"),
    ("recall", "Recall-confidence", "confidence", "recall"),
)
ALL_CLASSES_COLOUR = "#1c2430"
# Beyond this many classes only the all-classes line is drawn (as ultralytics' plots).
MAX_CLASS_LINES = 20
UNIT_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def curve_charts(curves: dict[str, Any], class_names: list[str]) -> list[Chart]:
    """One chart per stored curve; the all-classes line first. ``class_names`` fixes
    each class's colour (its index), as on the dataset's sample pictures."""
    colours = {name: "#{:02x}{:02x}{:02x}".format(*class_colour(index)) for index, name in enumerate(class_names)}
    charts = []
    for key, title, x_label, y_label in CURVE_CHARTS:
        curve = curves.get(key)
        if not curve:
            continue
        xs: list[float] = curve["x"]
        series = [_series("All classes", ALL_CLASSES_COLOUR, xs, curve["all"])]
        classes: dict[str, list[float]] = curve.get("classes", {})
        if len(classes) <= MAX_CLASS_LINES:
            series += [_series(name, colours.get(name, "#6e7781"), xs, values) for name, values in classes.items()]
        charts.append(
            Chart(
                title=f"{title} ({y_label} against {x_label})",
                series=tuple(series),
                x_ticks=tuple(Tick(_x(value), f"{value:g}") for value in UNIT_TICKS),
                y_ticks=tuple(Tick(_y(value), f"{value:g}") for value in UNIT_TICKS),
                markers=False,
            )
        )
    return charts


def _series(label: str, colour: str, xs: list[float], ys: list[float]) -> Series:
    return Series(label, colour, tuple(Point(_x(x), _y(y), "") for x, y in zip(xs, ys, strict=False)))


def _x(value: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * min(max(value, 0.0), 1.0)


def _y(value: float) -> float:
    return (HEIGHT - BOTTOM) - (HEIGHT - BOTTOM - TOP) * min(max(value, 0.0), 1.0)
