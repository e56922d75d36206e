"""What each task measures, under the names the worker stores with every epoch
(``EpochRecord.metrics``, mapped from ultralytics' keys in ``training.yolo.trainer``).

Box tasks (detect, segment, pose, obb) record ``precision``, ``recall``, ``map50`` and
``map50_95`` for their boxes (rotated boxes for obb); segment adds the same four for
masks (``mask_...``), pose for keypoints (``pose_...``); classify records ``top1`` and
``top5`` accuracy. Losses are ``train_<name>`` and ``val_<name>`` after ultralytics'
loss names (``box_loss``, ``seg_loss``, ``pose_loss``, ``angle_loss``, ``loss``, ...).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


# ultralytics' validation metrics -> the names the platform stores with each epoch
# (training.task_metrics). Box metrics end in (B) for every box task (rotated boxes for
# obb), mask metrics in (M) for segment, keypoint metrics in (P) for pose; classify
# reports top-1 and top-5 accuracy (ultralytics.utils.metrics, each class's ``keys``).
_MEASURES = {"precision": "precision", "recall": "recall", "mAP50": "map50", "mAP50-95": "map50_95"}
_KINDS = {"B": "", "M": "mask_", "P": "pose_"}
METRIC_NAMES = {
    **{
        f"metrics/{measure}({kind})": f"{prefix}{name}"
        for kind, prefix in _KINDS.items()
        for measure, name in _MEASURES.items()
    },
    "metrics/accuracy_top1": "top1",
    "metrics/accuracy_top5": "top5",
    "lr/pg0": "lr",
    "lr": "lr",  # ultralytics' platform callback sends the first group's rate as "lr"
}
# Losses are named by the task's criterion (ultralytics.utils.loss: box_loss, seg_loss,
# pose_loss, kobj_loss, angle_loss, cls_loss, dfl_loss or l1_loss, ...; classify's is
# "loss"), as "train/<name>" and "val/<name>"; they are stored as train_<name>, val_<name>.
LOSS_KEY = re.compile(r"^(train|val)/([a-z0-9_]+)$")


def stored_name(key: str) -> str | None:
    """The stored name of one of ultralytics' metric or loss keys; None for others."""
    loss = LOSS_KEY.match(key)
    return f"{loss.group(1)}_{loss.group(2)}" if loss else METRIC_NAMES.get(key)


def stored_metrics(raw: Mapping[str, Any]) -> dict[str, float]:
    """An epoch's losses and metrics under stable names (whatever the task): what the
    cloud runner and remote runs both store; values that are not finite numbers become 0."""
    metrics: dict[str, float] = {}
    for key, value in raw.items():
        name = stored_name(key)
        if name is None or isinstance(value, (bool, str)):
            continue
        try:
            number = 0.0 if value is None else float(value)  # a remote run sends None for NaN
        except (TypeError, ValueError):
            continue
        metrics[name] = number if math.isfinite(number) else 0.0
    return metrics
