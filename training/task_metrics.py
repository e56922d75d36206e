"""What each task measures, under the names the worker stores with every epoch
(``EpochRecord.metrics``, mapped from ultralytics' keys in ``training.yolo.trainer``).

Box tasks (detect, segment, pose, obb) record ``precision``, ``recall``, ``map50`` and
``map50_95`` for their boxes (rotated boxes for obb); segment adds the same four for
masks (``mask_...``), pose for keypoints (``pose_...``); classify records ``top1`` and
``top5`` accuracy. Losses are ``train_<name>`` and ``val_<name>`` after ultralytics'
loss names (``box_loss``, ``seg_loss``, ``pose_loss``, ``angle_loss``, ``loss``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from training.models import Dataset

Task = Dataset.Task


@dataclass(frozen=True)
class Metric:
    key: str  # the stored name
    label: str


BOX_MAPS = (Metric("map50", "mAP50"), Metric("map50_95", "mAP50-95"))

# The two numbers that say how good a model of the task is, best first: the per-epoch
# log line and the Train tab's headline show them.
HEADLINE: dict[str, tuple[Metric, ...]] = {
    Task.DETECT: BOX_MAPS,
    Task.SEGMENT: (Metric("mask_map50", "mask mAP50"), Metric("mask_map50_95", "mask mAP50-95")),
    Task.POSE: (Metric("pose_map50", "pose mAP50"), Metric("pose_map50_95", "pose mAP50-95")),
    Task.CLASSIFY: (Metric("top1", "top-1 accuracy"), Metric("top5", "top-5 accuracy")),
    Task.OBB: BOX_MAPS,
}

# The training loss the log line quotes: the one the task is about.
MAIN_LOSS: dict[str, Metric] = {
    Task.DETECT: Metric("train_box_loss", "box loss"),
    Task.SEGMENT: Metric("train_seg_loss", "mask loss"),
    Task.POSE: Metric("train_pose_loss", "keypoint loss"),
    Task.CLASSIFY: Metric("train_loss", "loss"),
    Task.OBB: Metric("train_box_loss", "box loss"),
}


def headline(task: str) -> tuple[Metric, ...]:
    return HEADLINE.get(task, BOX_MAPS)


def main_loss(task: str) -> Metric:
    return MAIN_LOSS.get(task, MAIN_LOSS[Task.DETECT])


def headline_values(task: str, metrics: dict[str, float]) -> list[tuple[str, float]]:
    """(label, value) of the task's headline metrics that ``metrics`` holds."""
    return [(metric.label, metrics[metric.key]) for metric in headline(task) if metric.key in metrics]


# The figures kept for every epoch beside the model (``YoloModel.epoch_series``), for
# pages that draw or rank every epoch of several models at once: the task's accuracy
# measures and its main loss.
BOX_SERIES = ("precision", "recall", "map50", "map50_95")
SERIES: dict[str, tuple[str, ...]] = {
    Task.DETECT: BOX_SERIES,
    Task.OBB: BOX_SERIES,
    Task.SEGMENT: (*BOX_SERIES, *(f"mask_{key}" for key in BOX_SERIES)),
    Task.POSE: (*BOX_SERIES, *(f"pose_{key}" for key in BOX_SERIES)),
    Task.CLASSIFY: ("top1", "top5"),
}


def series_figures(task: str, metrics: dict[str, float]) -> dict[str, float]:
    """The figures of an epoch's ``metrics`` that ``YoloModel.epoch_series`` keeps."""
    keys = (*SERIES.get(task, BOX_SERIES), main_loss(task).key)
    return {key: metrics[key] for key in keys if key in metrics}
