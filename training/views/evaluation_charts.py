"""An evaluation's curves and confusion matrix, drawn on the server.

The curves are SVG drawn like the per-epoch charts (``training.views.charts``, same
frame and ticks): precision against recall, and F1, precision and recall against the
confidence threshold, all classes together and each class. The confusion matrix is a
heatmap of table cells. Both are formatted here in plain Python rather than in
template loops: with many classes they are thousands of numbers, and the tab must
render in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from training.datasets import class_colour
from training.evaluation import ConfusionRow
from training.views.charts import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, Tick

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
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - BOTTOM - TOP


@dataclass(frozen=True)
class Line:
    label: str
    colour: str
    points: str  # an SVG polyline's points
    emphasised: bool


@dataclass(frozen=True)
class CurveChart:
    title: str
    lines: tuple[Line, ...]  # all classes first
    x_ticks: tuple[Tick, ...]
    y_ticks: tuple[Tick, ...]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    bottom_y: int = HEIGHT - BOTTOM
    right_x: int = WIDTH - RIGHT

    @property
    def polylines(self) -> SafeString:
        """The lines as SVG, the all-classes line last so it is drawn on top."""
        return mark_safe(  # noqa: S308 - colours and points are ours, labels escaped
            "".join(
                f'<polyline fill="none" stroke="{line.colour}" stroke-width="{3 if line.emphasised else 1.25}" '
                f'points="{line.points}"><title>{escape(line.label)}</title></polyline>'
                for line in reversed(self.lines)
            )
        )

    @property
    def legend(self) -> SafeString:
        return mark_safe(  # noqa: S308 - colours are ours, labels escaped
            "".join(
                f'<li><span style="background: {line.colour}"></span>{escape(line.label)}</li>' for line in self.lines
            )
        )


def curve_charts(curves: dict[str, Any], class_names: list[str]) -> list[CurveChart]:
    """One chart per stored curve. ``class_names`` fixes each class's colour (by its
    index), as on the dataset's sample pictures."""
    colours = {name: "#{:02x}{:02x}{:02x}".format(*class_colour(index)) for index, name in enumerate(class_names)}
    ticks = (
        tuple(Tick(_x(value), f"{value:g}") for value in UNIT_TICKS),
        tuple(Tick(_y(value), f"{value:g}") for value in UNIT_TICKS),
    )
    charts = []
    for key, title, x_label, y_label in CURVE_CHARTS:
        curve = curves.get(key)
        if not curve:
            continue
        xs = [f"{_x(x):.1f}" for x in curve["x"]]
        lines = [Line("All classes", ALL_CLASSES_COLOUR, _points(xs, curve["all"]), emphasised=True)]
        classes: dict[str, list[float]] = curve.get("classes", {})
        if len(classes) <= MAX_CLASS_LINES:
            lines += [
                Line(name, colours.get(name, "#6e7781"), _points(xs, values), emphasised=False)
                for name, values in classes.items()
            ]
        charts.append(CurveChart(f"{title} ({y_label} against {x_label})", tuple(lines), *ticks))
    return charts


def _points(xs: list[str], ys: list[float]) -> str:
    # Curves hold shares between 0 and 1 (training.yolo.evaluation): no clamping here,
    # where thousands of points are formatted per render.
    bottom = HEIGHT - BOTTOM
    return " ".join([f"{x},{bottom - PLOT_HEIGHT * y:.1f}" for x, y in zip(xs, ys, strict=False)])


def _x(value: float) -> float:
    return LEFT + PLOT_WIDTH * min(max(value, 0.0), 1.0)


def _y(value: float) -> float:
    return (HEIGHT - BOTTOM) - PLOT_HEIGHT * min(max(value, 0.0), 1.0)


def confusion_cells(row: ConfusionRow) -> SafeString:
    """A row's cells: the count, its share of the true class below it, and the share as
    the cell's colour. Numbers only, so nothing here needs escaping."""
    return mark_safe(  # noqa: S308 - integers and formatted floats only
        "".join(
            f'<td class="num{" diagonal" if cell.diagonal else ""}" style="--share: {cell.share:.3f}">'
            f"{cell.count}<small>{cell.share:.2f}</small></td>"
            for cell in row.cells
        )
    )
