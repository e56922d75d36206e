"""The Train tab's charts and headline follow the model's task (the metrics are stored
under the names ``training.task_metrics`` describes; the worker tests record them for real)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from hubsite.models import User
from tests.factories import make_model, make_session
from training.models import EpochRecord, TrainingSession, YoloModel
from training.views.charts import Chart, model_charts

pytestmark = pytest.mark.django_db

BOX = {"precision": 0.5, "recall": 0.4, "map50": 0.3, "map50_95": 0.2}
DETECT_LOSSES = {
    "train_box_loss": 1.5,
    "val_box_loss": 1.6,
    "train_cls_loss": 2.0,
    "val_cls_loss": 2.1,
    "train_dfl_loss": 1.1,
    "val_dfl_loss": 1.2,
}
EPOCH_METRICS = {
    "detect": {**BOX, **DETECT_LOSSES, "lr": 0.01},
    "segment": {
        **BOX,
        "mask_precision": 0.45,
        "mask_recall": 0.35,
        "mask_map50": 0.25,
        "mask_map50_95": 0.15,
        **DETECT_LOSSES,
        "train_seg_loss": 3.0,
        "val_seg_loss": 3.2,
        "train_sem_loss": 0.0,  # a part yolo11n-seg lacks: always zero
        "val_sem_loss": 0.0,
    },
    "pose": {
        **BOX,
        "pose_precision": 0.3,
        "pose_recall": 0.2,
        "pose_map50": 0.12,
        "pose_map50_95": 0.06,
        **DETECT_LOSSES,
        "train_pose_loss": 4.0,
        "train_kobj_loss": 0.6,
        "val_pose_loss": 4.2,
        "val_kobj_loss": 0.7,
    },
    "classify": {"top1": 0.75, "top5": 1.0, "train_loss": 1.05, "val_loss": 1.1, "lr": 0.01},
    "obb": {**BOX, **DETECT_LOSSES, "train_angle_loss": 0.3, "val_angle_loss": 0.35},
}
EXPECTED = {
    "detect": (
        ["Precision", "Recall", "mAP50", "mAP50-95"],
        ["Box loss (train)", "Box loss (val)", "Class loss (train)", "Class loss (val)"],
        "Epoch 2: mAP50 0.150, mAP50-95 0.100.",
    ),
    "segment": (
        ["Box mAP50", "Box mAP50-95", "Mask mAP50", "Mask mAP50-95", "Mask precision", "Mask recall"],
        ["Box loss (train)", "Box loss (val)", "Mask loss (train)", "Mask loss (val)"],
        "Epoch 2: mask mAP50 0.125, mask mAP50-95 0.075.",
    ),
    "pose": (
        ["Box mAP50", "Box mAP50-95", "Pose mAP50", "Pose mAP50-95", "Pose precision", "Pose recall"],
        ["Box loss (train)", "Box loss (val)", "Keypoint loss (train)", "Keypoint loss (val)"],
        "Epoch 2: pose mAP50 0.060, pose mAP50-95 0.030.",
    ),
    "classify": (
        ["Top-1 accuracy", "Top-5 accuracy"],
        ["Loss (train)", "Loss (val)"],
        "Epoch 2: top-1 accuracy 0.375, top-5 accuracy 0.500.",
    ),
    "obb": (
        ["Precision", "Recall", "mAP50", "mAP50-95"],
        ["Box loss (train)", "Box loss (val)", "Angle loss (train)", "Angle loss (val)"],
        "Epoch 2: mAP50 0.150, mAP50-95 0.100.",
    ),
}


def model_of(user: User, task: str, epochs: int = 2) -> YoloModel:
    model = make_model(user)
    model.dataset.task = task
    model.dataset.save()
    session = make_session(user, model=model, status=TrainingSession.Status.STOPPED)
    start = timezone.now() - dt.timedelta(minutes=10)
    for epoch in range(1, epochs + 1):
        EpochRecord.objects.create(
            session=session,
            model=model,
            epoch=epoch,
            started_at=start + dt.timedelta(seconds=epoch),
            finished_at=start + dt.timedelta(seconds=epoch + 1),
            duration_ms=1000,
            metrics={key: value / epoch for key, value in EPOCH_METRICS[task].items()},  # improving losses
        )
    model.epochs_completed = epochs
    model.save()
    return YoloModel.objects.select_related("dataset").get(pk=model.pk)


def labels(chart: Chart) -> list[str]:
    return [series.label for series in chart.series]


@pytest.mark.parametrize("task", sorted(EPOCH_METRICS))
def test_the_charts_draw_the_tasks_own_series(user: User, task: str) -> None:
    charts = model_charts(model_of(user, task))
    assert charts is not None
    metrics, losses = charts
    wanted_metrics, first_losses, _headline = EXPECTED[task]
    assert labels(metrics) == wanted_metrics
    assert labels(losses)[:4] == first_losses
    assert all(len(series.points) == 2 for series in (*metrics.series, *losses.series))


def test_a_loss_that_stays_zero_is_left_out(user: User) -> None:
    _metrics, losses = model_charts(model_of(user, "segment")) or ((), ())
    assert "Semantic loss (train)" not in labels(losses)  # type: ignore[arg-type]
    assert "DFL loss (val)" in labels(losses)  # type: ignore[arg-type]


def test_a_classifiers_accuracy_is_plotted_on_a_zero_to_one_scale(user: User) -> None:
    charts = model_charts(model_of(user, "classify"))
    assert charts is not None
    top1 = charts[0].series[0]
    assert [point.title for point in top1.points] == [
        "Top-1 accuracy, epoch 1: 0.7500",
        "Top-1 accuracy, epoch 2: 0.3750",
    ]
    assert top1.points[0].y < top1.points[1].y  # higher on the chart is a smaller y


@pytest.mark.parametrize("task", sorted(EPOCH_METRICS))
def test_the_train_tab_headlines_the_tasks_metrics(owner_client: Client, user: User, task: str) -> None:
    model = model_of(user, task)  # epoch 2 records half of EPOCH_METRICS

    body = owner_client.get(reverse("training:model_detail", args=[model.uid])).content.decode()

    assert EXPECTED[task][2] in body
    assert body.count("<polyline") == len(EXPECTED[task][0]) + len(model_charts(model)[1].series)  # type: ignore[index]
