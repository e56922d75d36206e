"""Per-epoch charts as server-rendered SVG: no JavaScript chart library.

``model_charts`` reads a model's epoch history in one query and returns what the
``charts`` partial of ``templates/training/session_panel.html`` draws: axes, one
polyline per series, a legend, and a hover title on every point. The series follow
the model's task: mask or keypoint mAPs beside the box mAPs, a classifier's top-1 and
top-5 accuracy, and whichever losses the task's criterion reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.chart_scales import epoch_ticks, nice_ceiling
from training.models import Dataset, EpochRecord, YoloModel

WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28
MAX_POINT_MARKERS = 150  # beyond this many epochs, lines only (hover titles stay on the lines)

SeriesSpec = tuple[str, str, str]  # (stored metric name, label, colour)

BOX_SERIES: tuple[SeriesSpec, ...] = (
    ("precision", "Precision", "#1f6feb"),
    ("recall", "Recall", "#1a7f37"),
    ("map50", "mAP50", "#9a6700"),
    ("map50_95", "mAP50-95", "#8250df"),
)
# Each task's quality measures (names as training.task_metrics describes them): the
# mask or keypoint mAPs next to the box mAPs, or the classifier's accuracy.
METRIC_SERIES: dict[str, tuple[SeriesSpec, ...]] = {
    Dataset.Task.DETECT: BOX_SERIES,
    Dataset.Task.OBB: BOX_SERIES,
    Dataset.Task.SEGMENT: (
        ("map50", "Box mAP50", "#9a6700"),
        ("map50_95", "Box mAP50-95", "#8250df"),
        ("mask_map50", "Mask mAP50", "#cf222e"),
        ("mask_map50_95", "Mask mAP50-95", "#1f6feb"),
        ("mask_precision", "Mask precision", "#1a7f37"),
        ("mask_recall", "Mask recall", "#bf8700"),
    ),
    Dataset.Task.POSE: (
        ("map50", "Box mAP50", "#9a6700"),
        ("map50_95", "Box mAP50-95", "#8250df"),
        ("pose_map50", "Pose mAP50", "#cf222e"),
        ("pose_map50_95", "Pose mAP50-95", "#1f6feb"),
        ("pose_precision", "Pose precision", "#1a7f37"),
        ("pose_recall", "Pose recall", "#bf8700"),
    ),
    Dataset.Task.CLASSIFY: (
        ("top1", "Top-1 accuracy", "#1f6feb"),
        ("top5", "Top-5 accuracy", "#1a7f37"),
    ),
}
# Every loss ultralytics' criteria report (ultralytics.utils.loss), in the order drawn,
# with a dark colour for training and a light one for validation. The chart shows
# those a model recorded; one that stayed zero (a part the architecture lacks, like
# the semantic loss of a segmentation model without that head) is left out.
LOSS_PARTS: tuple[tuple[str, str, str, str], ...] = (
    ("box_loss", "Box loss", "#1f6feb", "#54aeff"),
    ("seg_loss", "Mask loss", "#bc4c00", "#fb8f44"),
    ("pose_loss", "Keypoint loss", "#bc4c00", "#fb8f44"),
    ("kobj_loss", "Keypoint visibility loss", "#8250df", "#c297ff"),
    ("rle_loss", "Keypoint RLE loss", "#6e7781", "#afb8c1"),
    ("angle_loss", "Angle loss", "#bc4c00", "#fb8f44"),
    ("cls_loss", "Class loss", "#cf222e", "#ff8182"),
    ("dfl_loss", "DFL loss", "#1a7f37", "#4ac26b"),
    ("l1_loss", "L1 box loss", "#1a7f37", "#4ac26b"),
    ("sem_loss", "Semantic loss", "#9a6700", "#d4a72c"),
    ("loss", "Loss", "#1f6feb", "#54aeff"),
)


def loss_series(history: list[tuple[int, dict[str, float]]]) -> tuple[SeriesSpec, ...]:
    """The losses this history holds that are not zero throughout, train then val."""
    nonzero = {key for _epoch, metrics in history for key, value in metrics.items() if value}
    series: list[SeriesSpec] = []
    for name, label, dark, light in LOSS_PARTS:
        for stage, colour in (("train", dark), ("val", light)):
            if f"{stage}_{name}" in nonzero:
                series.append((f"{stage}_{name}", f"{label} ({stage})", colour))
    return tuple(series)


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
    """The model's metrics and losses per epoch, the series its dataset's task records."""
    history = list(EpochRecord.objects.filter(model=model).order_by("epoch").values_list("epoch", "metrics"))
    if not history:
        return None
    return (
        build_chart("Metrics", history, METRIC_SERIES.get(model.dataset.task, BOX_SERIES), fixed_max=1.0),
        build_chart("Losses", history, loss_series(history), fixed_max=None),
    )


def build_chart(
    title: str,
    history: list[tuple[int, dict[str, float]]],
    wanted: tuple[SeriesSpec, ...],
    *,
    fixed_max: float | None,
) -> Chart:
    first, last = history[0][0], history[-1][0]
    values = [metrics[key] for _epoch, metrics in history for key, _label, _colour in wanted if key in metrics]
    top_value = fixed_max if fixed_max is not None else nice_ceiling(max(values, default=1.0))

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
        x_ticks=tuple(Tick(x_of(epoch), str(epoch)) for epoch in epoch_ticks(first, last)),
        y_ticks=tuple(Tick(y_of(top_value * step / 4), f"{top_value * step / 4:.2g}") for step in range(5)),
        markers=len(history) <= MAX_POINT_MARKERS,
    )
