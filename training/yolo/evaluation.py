"""Evaluating trained weights on a dataset's validation split with ultralytics' own
validator, and reading what it measured into plain lists and dicts.

The shapes are those of ``training.models.ModelEvaluation`` (metrics, per-class rows,
curves, confusion counts); the validation pictures ultralytics draws come back as
files in the work folder for the caller to store.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ultralytics import YOLO  # type: ignore[attr-defined]

from training.task_metrics import METRIC_NAMES
from training.yolo.trainer import disable_settings_sync

CURVE_POINTS = 101
# ultralytics draws the first three validation batches: labels (ground truth) and predictions.
PICTURE_BATCHES = 3
DRAWING_WAIT_SECONDS = 60
# The curves each task is judged by: its own measure (masks, keypoints), else its boxes.
CURVE_MEASURE = {"segment": "seg", "pose": "pose"}
# The per-class figures of one ultralytics ``Metric`` (class_result order), by stored name.
CLASS_FIGURES = ("precision", "recall", "map50", "map50_95")
# ultralytics' curve order in ``Metric.curves_results``: x, per-class y, x label, y label.
CURVE_NAMES = ("pr", "f1", "precision", "recall")


class UnreadableWeights(Exception):
    """The weights file is not a checkpoint ultralytics can load."""


@dataclass(frozen=True)
class Picture:
    batch: int
    labels: Path  # ground truth drawn by ultralytics
    predictions: Path


@dataclass(frozen=True)
class Evaluated:
    metrics: dict[str, float]
    per_class: list[dict[str, Any]]
    curves: dict[str, Any]
    confusion: dict[str, Any]
    pictures: list[Picture]


def evaluate(weights: Path, data: Path, imgsz: int, work_dir: Path) -> Evaluated:
    """Validate ``weights`` on ``data`` (a data.yaml, or a classification folder) on the
    CPU with plots on, into ``work_dir``, and read the results."""
    disable_settings_sync()
    save_dir = work_dir / "val"
    try:
        yolo = YOLO(str(weights))
    except Exception as error:
        raise UnreadableWeights("the best weights cannot be read (the file is damaged or not a checkpoint)") from error
    running = set(threading.enumerate())
    results = yolo.val(
        data=str(data),
        imgsz=imgsz,
        device="cpu",
        plots=True,
        save_dir=str(save_dir),
        exist_ok=True,
        workers=0,
        verbose=False,
    )
    _wait_for_drawings(running)
    task = str(yolo.task)
    names = {int(index): str(name) for index, name in yolo.names.items()}
    matrix = np.asarray(results.confusion_matrix.matrix)
    if task == "classify":
        return Evaluated(
            metrics=_overall(results.results_dict),
            per_class=classify_rows(matrix, names),
            curves={},
            confusion=confusion(matrix, names, background=False),
            pictures=_pictures(save_dir),
        )
    return Evaluated(
        metrics=_overall(results.results_dict),
        per_class=box_rows(results, names, task),
        curves=task_curves(getattr(results, CURVE_MEASURE.get(task, "box")), names),
        confusion=confusion(matrix, names, background=True),
        pictures=_pictures(save_dir),
    )


def _wait_for_drawings(running: set[threading.Thread]) -> None:
    """ultralytics draws the validation pictures in threads of their own (``plot_images``
    is ``@threaded``): wait for those validation started, so the files are complete."""
    for thread in set(threading.enumerate()) - running:
        thread.join(DRAWING_WAIT_SECONDS)


def _overall(results: dict[str, Any]) -> dict[str, float]:
    return {METRIC_NAMES[key]: _number(value) for key, value in results.items() if key in METRIC_NAMES}


def box_rows(results: Any, names: dict[int, str], task: str) -> list[dict[str, Any]]:
    """One row per class: images and instances in the validation split, and the box
    figures (plus mask or keypoint figures) ultralytics measured. A class without
    validation instances has no figures (None)."""
    measures = [("", results.box)]
    if task == "segment":
        measures.append(("mask_", results.seg))
    elif task == "pose":
        measures.append(("pose_", results.pose))
    present = {int(class_id): row for row, class_id in enumerate(results.box.ap_class_index)}
    rows = []
    for class_id, name in sorted(names.items()):
        row: dict[str, Any] = {
            "name": name,
            "images": int(results.nt_per_image[class_id]),
            "instances": int(results.nt_per_class[class_id]),
        }
        for prefix, metric in measures:
            figures = metric.class_result(present[class_id]) if class_id in present else (None,) * 4
            for figure, value in zip(CLASS_FIGURES, figures, strict=True):
                row[f"{prefix}{figure}"] = None if value is None else _number(value)
        rows.append(row)
    return rows


def classify_rows(matrix: np.ndarray, names: dict[int, str]) -> list[dict[str, Any]]:
    """One row per class: its validation images and the share of them classified right
    (top-1), read from the confusion matrix (rows predicted, columns true)."""
    rows = []
    for class_id, name in sorted(names.items()):
        images = int(matrix[:, class_id].sum())
        right = int(matrix[class_id, class_id])
        rows.append({"name": name, "images": images, "top1": right / images if images else None})
    return rows


def task_curves(metric: Any, names: dict[int, str]) -> dict[str, Any]:
    """PR, F1-, precision- and recall-confidence curves at ``CURVE_POINTS`` points: the
    mean over classes ("all", as ultralytics plots it) and each class with instances."""
    grid = np.linspace(0.0, 1.0, CURVE_POINTS)
    curves: dict[str, Any] = {}
    for name, (x, per_class, _x_label, _y_label) in zip(CURVE_NAMES, metric.curves_results, strict=True):
        values = np.asarray(per_class, dtype=float).reshape(-1, len(x))
        resampled = [np.interp(grid, x, row) for row in values]
        curves[name] = {
            "x": _rounded(grid),
            "all": _rounded(np.mean(resampled, axis=0) if resampled else np.zeros_like(grid)),
            "classes": {
                names[int(class_id)]: _rounded(row)
                for class_id, row in zip(metric.ap_class_index, resampled, strict=False)
            },
        }
    return curves


def confusion(matrix: np.ndarray, names: dict[int, str], *, background: bool) -> dict[str, Any]:
    labels = [names[class_id] for class_id in sorted(names)]
    return {
        "labels": [*labels, "background"] if background else labels,
        "counts": [[round(float(count)) for count in row] for row in matrix],
    }


def _pictures(save_dir: Path) -> list[Picture]:
    pictures = []
    for batch in range(PICTURE_BATCHES):
        labels, predictions = save_dir / f"val_batch{batch}_labels.jpg", save_dir / f"val_batch{batch}_pred.jpg"
        if labels.is_file() and predictions.is_file():
            pictures.append(Picture(batch, labels, predictions))
    return pictures


def _number(value: Any) -> float:
    number = float(value)
    return number if np.isfinite(number) else 0.0


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(value), 4) for value in values]
