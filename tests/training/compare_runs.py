"""Models with a training history, charged like the worker charges, and evaluations
as the evaluation job writes them (ModelEvaluation's docstring): what the comparison
tests, the browser journey and the compare benchmark look at."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from billing import services as billing
from hubsite.models import User
from tests.factories import WORKER, make_session
from training import task_metrics
from training.models import Dataset, EpochRecord, ModelEvaluation, TrainingSession, YoloModel


def detect_metrics(progress: float) -> dict[str, float]:
    """An epoch's figures as the worker stores them: better as ``progress`` grows."""
    return {
        "precision": round(0.3 + 0.5 * progress, 4),
        "recall": round(0.2 + 0.5 * progress, 4),
        "map50": round(0.2 + 0.6 * progress, 4),
        "map50_95": round(0.1 + 0.5 * progress, 4),
        "train_box_loss": round(2.0 - progress, 4),
        "train_cls_loss": round(3.0 - 2 * progress, 4),
        "train_dfl_loss": round(1.5 - 0.5 * progress, 4),
        "val_box_loss": round(2.1 - progress, 4),
        "val_cls_loss": round(3.1 - 2 * progress, 4),
        "val_dfl_loss": round(1.6 - 0.5 * progress, 4),
        "lr": 0.01,
    }


def make_run(
    owner: User,
    name: str,
    history: list[dict[str, float]],
    *,
    task: str = "detect",
    epoch_ms: int = 2_000,
    train_args: dict[str, Any] | None = None,
    architecture: str = "yolo11n",
) -> YoloModel:
    """A model whose session completed ``history`` (one metrics dict per epoch), each
    epoch held and charged like the worker does (US$3.60/h: 1,000 micro-dollars a second)."""
    dataset = Dataset.objects.create(
        owner=owner, name=f"{name} data", task=task, status=Dataset.Status.READY, class_names=["a", "b", "c"]
    )
    model = YoloModel.objects.create(
        owner=owner,
        name=name,
        dataset=dataset,
        architecture=architecture,
        train_args={"epochs": len(history), "imgsz": 64, "batch": 8, **(train_args or {})},
    )
    session = make_session(owner, model=model)
    started = timezone.now() - dt.timedelta(hours=1)
    records = []
    for epoch, metrics in enumerate(history, start=1):
        assert billing.hold_epoch(session.pk, epoch, worker_id=WORKER) is not None
        billing.capture_epoch(session.pk, epoch, epoch_ms, worker_id=WORKER)
        finished = started + dt.timedelta(milliseconds=epoch_ms)
        records.append(
            EpochRecord(
                session=session,
                model=model,
                epoch=epoch,
                started_at=started,
                finished_at=finished,
                duration_ms=epoch_ms,
                metrics=metrics,
            )
        )
        started = finished
    EpochRecord.objects.bulk_create(records)
    TrainingSession.objects.filter(pk=session.pk).update(status=TrainingSession.Status.COMPLETED)
    model.epochs_completed = len(history)
    model.epoch_series = [  # as the worker's committer keeps it with each epoch
        [record.epoch, record.duration_ms, task_metrics.series_figures(task, record.metrics)] for record in records
    ]
    model.save()
    return model


def evaluate(model: YoloModel, *, map50: float, precision_at: float = 0.9, done: bool = True) -> ModelEvaluation:
    """A finished evaluation, shaped as ModelEvaluation's docstring says."""
    recall = [i / 100 for i in range(101)]
    overall = [round(precision_at * (1 - r**3), 4) for r in recall]
    return ModelEvaluation.objects.create(
        model=model,
        task=model.dataset.task,
        status=ModelEvaluation.Status.DONE if done else ModelEvaluation.Status.RUNNING,
        weights_epoch=model.epochs_completed,
        metrics={"precision": 0.7, "recall": 0.6, "map50": map50, "map50_95": round(map50 / 2, 4)},
        per_class=[
            {
                "name": name,
                "images": 8,
                "instances": 11,
                "precision": 0.7,
                "recall": 0.6,
                "map50": map50,
                "map50_95": round(map50 / 2, 4),
            }
            for name in ("a", "b", "c")
        ],
        curves={
            "pr": {"x": recall, "all": overall, "classes": dict.fromkeys(("a", "b", "c"), overall)},
            "f1": {"x": recall, "all": overall, "classes": {}},
        },
        confusion={"labels": ["a", "b", "c", "background"], "counts": [[3, 0, 0, 1]] * 4},
        pictures=[],
    )
