"""A finished evaluation of any size, written as the worker writes one, for the views,
the summaries and the benchmark (the job itself is tested on real models in
tests/training/engine/test_evaluation.py)."""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage
from django.utils import timezone

from training.datasets import storage_put
from training.evaluation import picture_key
from training.models import Dataset, ModelEvaluation, YoloModel

CURVE_POINTS = 101
# A JPEG's first bytes: enough for storage and the picture view.
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


def class_name(index: int) -> str:
    return f"class-{index:02d}"


def done_evaluation(model: YoloModel, *, classes: int = 3, pictures: int = 3, store: bool = False) -> ModelEvaluation:
    """A done detect evaluation of ``classes`` classes; class ``i`` scores ``(i + 1) /
    (classes + 1)`` mAP50-95, so class 0 is the worst. With ``store`` the pictures are
    written to storage."""
    names = [class_name(index) for index in range(classes)]
    Dataset.objects.filter(pk=model.dataset_id).update(class_names=names, task=Dataset.Task.DETECT)
    grid = [round(step / (CURVE_POINTS - 1), 4) for step in range(CURVE_POINTS)]
    scores = {name: (index + 1) / (classes + 1) for index, name in enumerate(names)}
    keys = [picture_key(model, batch, kind) for batch in range(pictures) for kind in ("labels", "predictions")]
    if store:
        for key in keys:
            storage_put(key, JPEG)
    evaluation, _ = ModelEvaluation.objects.update_or_create(
        model=model,
        defaults={
            "status": ModelEvaluation.Status.DONE,
            "task": Dataset.Task.DETECT,
            "weights_epoch": model.epochs_completed,
            "finished_at": timezone.now(),
            "metrics": {"precision": 0.6, "recall": 0.55, "map50": 0.62, "map50_95": 0.5},
            "per_class": [_row(name, score, index) for index, (name, score) in enumerate(scores.items())],
            "curves": {
                curve: {
                    "x": grid,
                    "all": [round(0.5 * (1 - x), 4) for x in grid],
                    "classes": {name: [round(score * (1 - x), 4) for x in grid] for name, score in scores.items()},
                }
                for curve in ("pr", "f1", "precision", "recall")
            },
            "confusion": {
                "labels": [*names, "background"],
                "counts": [
                    [(5 if row == column else 1) for column in range(classes + 1)] for row in range(classes + 1)
                ],
            },
            "pictures": keys,
        },
    )
    return evaluation


def _row(name: str, score: float, index: int) -> dict[str, Any]:
    return {
        "name": name,
        "images": 4 + index,
        "instances": 6 + index,
        "precision": score,
        "recall": score,
        "map50": min(1.0, score + 0.1),
        "map50_95": score,
    }


def stored(key: str) -> bytes:
    with default_storage.open(key, "rb") as handle:
        return bytes(handle.read())
