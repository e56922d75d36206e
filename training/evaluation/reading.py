"""What the Evaluation tab and the summaries read from a ``ModelEvaluation``: labelled
figures, the per-class rows worst first, the confusion matrix with each cell's share of
its true class, and the pairs of validation pictures. Plain data, no queries."""

from __future__ import annotations

from dataclasses import dataclass

from training.models import Dataset, ModelEvaluation
from training.task_metrics import Metric

Task = Dataset.Task

BOX_FIGURES = (
    Metric("precision", "Precision"),
    Metric("recall", "Recall"),
    Metric("map50", "mAP50"),
    Metric("map50_95", "mAP50-95"),
)


def _prefixed(prefix: str, label: str) -> tuple[Metric, ...]:
    return tuple(Metric(f"{prefix}{metric.key}", f"{label} {metric.label}") for metric in BOX_FIGURES)


# Each task's figures, overall and per class, in the order shown. Box figures are of
# rotated boxes for obb; segment and pose add their masks' and keypoints' own.
TASK_FIGURES: dict[str, tuple[Metric, ...]] = {
    Task.DETECT: BOX_FIGURES,
    Task.OBB: BOX_FIGURES,
    Task.SEGMENT: _prefixed("", "Box") + _prefixed("mask_", "Mask"),
    Task.POSE: _prefixed("", "Box") + _prefixed("pose_", "Pose"),
    Task.CLASSIFY: (Metric("top1", "Top-1 accuracy"), Metric("top5", "Top-5 accuracy")),
}
NO_VALUE = "\u2013"  # an en dash
CLASSIFY_CLASS_FIGURES = (Metric("top1", "Top-1 accuracy"),)
# The per-class figure that ranks the classes, worst first: the task's own mAP50-95.
RANKED_BY: dict[str, str] = {Task.SEGMENT: "mask_map50_95", Task.POSE: "pose_map50_95", Task.CLASSIFY: "top1"}
# What the curves are of (``training.yolo.evaluation`` draws the task's own measure).
CURVES_OF: dict[str, str] = {Task.SEGMENT: "masks", Task.POSE: "keypoints", Task.OBB: "rotated boxes"}


def overall_figures(task: str) -> tuple[Metric, ...]:
    return TASK_FIGURES.get(task, BOX_FIGURES)


def class_figures(task: str) -> tuple[Metric, ...]:
    return CLASSIFY_CLASS_FIGURES if task == Task.CLASSIFY else overall_figures(task)


def ranked_by(task: str) -> Metric:
    key = RANKED_BY.get(task, "map50_95")
    return next(metric for metric in class_figures(task) if metric.key == key)


@dataclass(frozen=True)
class Figure:
    label: str
    value: float


@dataclass(frozen=True)
class ClassRow:
    name: str
    images: int
    instances: int | None  # None for classify: one image, one instance
    values: tuple[float | None, ...]  # class_figures(task), in order
    score: float | None  # the ranking figure; None when the class has no validation examples
    below_overall: bool

    @property
    def shown(self) -> list[str]:
        """The values as the table shows them; a dash for a class without validation examples."""
        return [NO_VALUE if value is None else f"{value:.3f}" for value in self.values]


def figures(evaluation: ModelEvaluation) -> list[Figure]:
    return [
        Figure(metric.label, evaluation.metrics[metric.key])
        for metric in overall_figures(evaluation.task)
        if metric.key in evaluation.metrics
    ]


def class_rows(evaluation: ModelEvaluation) -> list[ClassRow]:
    """The classes worst first by ``ranked_by(task)``; those without validation examples
    last. A class below the overall figure is marked."""
    wanted = class_figures(evaluation.task)
    ranking = ranked_by(evaluation.task).key
    overall = evaluation.metrics.get(ranking)
    rows = []
    for row in evaluation.per_class:
        score = row.get(ranking)
        rows.append(
            ClassRow(
                name=str(row["name"]),
                images=int(row.get("images", 0)),
                instances=None if evaluation.task == Task.CLASSIFY else int(row.get("instances", 0)),
                values=tuple(row.get(metric.key) for metric in wanted),
                score=score,
                below_overall=score is not None and overall is not None and score < overall,
            )
        )
    return sorted(rows, key=lambda row: (row.score is None, row.score or 0.0, row.name))


@dataclass(frozen=True)
class Cell:
    count: int
    share: float  # of the column's (true class's) total, as ultralytics normalises
    diagonal: bool


@dataclass(frozen=True)
class ConfusionRow:
    predicted: str
    cells: tuple[Cell, ...]


def confusion_rows(evaluation: ModelEvaluation) -> list[ConfusionRow]:
    labels = evaluation.confusion.get("labels", [])
    counts: list[list[int]] = evaluation.confusion.get("counts", [])
    totals = [sum(column) for column in zip(*counts, strict=True)] if counts else []
    # The box tasks' last row and column are "background": no right answer there.
    classes = len(labels) if evaluation.task == Task.CLASSIFY else len(labels) - 1
    return [
        ConfusionRow(
            predicted=str(labels[row]),
            cells=tuple(
                Cell(count, count / totals[column] if totals[column] else 0.0, row == column < classes)
                for column, count in enumerate(values)
            ),
        )
        for row, values in enumerate(counts)
    ]


@dataclass(frozen=True)
class PicturePair:
    batch: int
    labels: int  # index into ModelEvaluation.pictures
    predictions: int


def picture_pairs(evaluation: ModelEvaluation) -> list[PicturePair]:
    """``pictures`` holds each batch's ground truth, then its predictions."""
    count = len(evaluation.pictures) // 2
    return [PicturePair(batch, 2 * batch, 2 * batch + 1) for batch in range(count)]


def curves_of(task: str) -> str:
    return CURVES_OF.get(task, "boxes")
