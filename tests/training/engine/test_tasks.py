"""Every task trains through the real workers: segment, pose, classify and obb next to
detect (tests/training/engine/test_training.py), on the synthetic datasets at 64 px.

Each run records the task's own metrics with every epoch, quotes them in the console
and the Train tab, draws them in the charts, and leaves best weights that download
and export (TorchScript, ONNX) as a model of that task; a run of each is stopped
mid-epoch and resumed, each epoch recorded and charged once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from billing.models import LedgerLine
from hubsite.models import User
from tests.factories import TINY_TRAINING, cpu_instance, fund, make_ready_dataset
from tests.helpers import wait_for
from training import sessions, task_metrics
from training.engine.exports import run_export
from training.exports import request_export
from training.models import EpochRecord, Export, TrainingSession, YoloModel

pytestmark = [pytest.mark.training, pytest.mark.django_db(transaction=True)]

Status = TrainingSession.Status

ARCHITECTURES = {"segment": "yolo11n-seg", "pose": "yolo11n-pose", "classify": "yolo11n-cls", "obb": "yolo11n-obb"}
# What each task records with every epoch, beside the learning rate.
TASK_METRICS = {
    "segment": {
        "precision",
        "map50",
        "map50_95",
        "mask_precision",
        "mask_recall",
        "mask_map50",
        "mask_map50_95",
        "train_box_loss",
        "train_seg_loss",
        "val_seg_loss",
    },
    "pose": {
        "map50",
        "pose_precision",
        "pose_recall",
        "pose_map50",
        "pose_map50_95",
        "train_pose_loss",
        "train_kobj_loss",
        "val_pose_loss",
    },
    "classify": {"top1", "top5", "train_loss", "val_loss"},
    "obb": {"precision", "recall", "map50", "map50_95", "train_box_loss", "train_angle_loss", "val_angle_loss"},
}
# The first measure the console line and the Train tab quote, and one series the charts draw.
HEADLINES = {
    "segment": ("mask mAP50", "Mask mAP50-95"),
    "pose": ("pose mAP50", "Pose mAP50"),
    "classify": ("top-1 accuracy", "Top-5 accuracy"),
    "obb": ("mAP50", "Angle loss (train)"),
}


def task_model(user: User, tmp_path: Path, task: str, *, train_images: int = 8, **train_args: object) -> YoloModel:
    dataset = make_ready_dataset(user, tmp_path, task=task, train_images=train_images, val_images=4)
    return YoloModel.objects.create(
        owner=user,
        name=f"shapes {task}",
        dataset=dataset,
        architecture=ARCHITECTURES[task],
        train_args={**TINY_TRAINING, **train_args},
    )


def wait_for_status(session: TrainingSession, *statuses: str, timeout: float = 240) -> TrainingSession:
    wait_for(
        lambda: TrainingSession.objects.filter(pk=session.pk, status__in=statuses).exists(),
        timeout=timeout,
        interval=0.2,
    )
    return TrainingSession.objects.get(pk=session.pk)


def recorded_epochs(model: YoloModel) -> list[int]:
    return list(EpochRecord.objects.filter(model=model).order_by("epoch").values_list("epoch", flat=True))


def start(user: User, model: YoloModel) -> TrainingSession:
    return sessions.start_session(user, model, sessions.StartRequest(instance_type=cpu_instance()))


@pytest.mark.parametrize("task", sorted(ARCHITECTURES))
def test_a_model_of_each_task_trains_records_its_metrics_and_exports(
    user: User, owner_client: Client, tmp_path: Path, cpu_worker: object, task: str
) -> None:
    fund(user, as_adjustment=True)
    model = task_model(user, tmp_path, task, epochs=2)

    session = wait_for_status(start(user, model), Status.COMPLETED, Status.FAILED)

    assert session.status == Status.COMPLETED, f"{session.failure_reason}\n{session.log_tail}"
    model.refresh_from_db()
    assert recorded_epochs(model) == [1, 2]
    for record in EpochRecord.objects.filter(model=model):
        assert TASK_METRICS[task] | {"lr"} <= set(record.metrics), sorted(record.metrics)
    headline_label, chart_label = HEADLINES[task]
    assert "[hubsite] epoch 2/2 completed in " in session.log_tail
    assert f" s: {headline_label} " in session.log_tail.split("[hubsite] epoch 2/2", 1)[1]

    train_tab = owner_client.get(reverse("training:model_detail", args=[model.uid])).content.decode()
    assert f"Epoch 2: {headline_label} " in train_tab
    assert f"<title>{chart_label}</title>" in train_tab

    downloaded = b"".join(owner_client.get(reverse("training:model_weights", args=[model.uid, "best"])))
    with default_storage.open(model.best_weights.name or "", "rb") as stored:
        assert downloaded == stored.read()
    assert task_of_weights(downloaded, tmp_path) == task

    for export_format, suffix in (("torchscript", ".torchscript"), ("onnx", ".onnx")):
        export = request_export(model, export_format)
        run_export(export.pk)
        export.refresh_from_db()
        assert export.status == Export.Status.DONE, export.error
        key = export.file.name or ""
        assert key.endswith(suffix)
        assert default_storage.size(key) > 10_000


def task_of_weights(weights: bytes, tmp_path: Path) -> str:
    """The task ultralytics reads from downloaded weights (our own file: safe to load)."""
    from ultralytics import YOLO  # type: ignore[attr-defined]

    path = tmp_path / "downloaded.pt"
    path.write_bytes(weights)
    return str(YOLO(str(path)).task)


@pytest.mark.parametrize("task", sorted(ARCHITECTURES))
def test_a_run_of_each_task_stops_mid_epoch_resumes_and_charges_every_epoch_once(
    task: str, user: User, tmp_path: Path, cpu_worker: object
) -> None:
    fund(user, as_adjustment=True)
    # A classification batch of 64-px pictures takes a few milliseconds: it needs more of
    # them for epoch 2 to outlast the Stop's way to the worker on a busy machine.
    train_images = 128 if task == "classify" else 32
    model = task_model(user, tmp_path, task, train_images=train_images, epochs=3, batch=2, nbs=2)
    session = start(user, model)
    wait_for(lambda: EpochRecord.objects.filter(model=model).exists(), timeout=240, interval=0.1)
    time.sleep(0.3)  # inside epoch 2

    assert sessions.request_stop(session) == Status.STOPPING
    session = wait_for_status(session, Status.STOPPED, Status.FAILED, Status.COMPLETED, timeout=30)

    assert session.status == Status.STOPPED, f"{session.status}: {session.status_detail}"
    model.refresh_from_db()
    stopped_at = model.epochs_completed
    assert 1 <= stopped_at < 3
    assert recorded_epochs(model) == list(range(1, stopped_at + 1))

    resumed = sessions.resume_session(user, session, sessions.StartRequest(instance_type=cpu_instance()))
    resumed = wait_for_status(resumed, Status.COMPLETED, Status.FAILED)

    assert resumed.status == Status.COMPLETED, f"{resumed.failure_reason}\n{resumed.log_tail}"
    model.refresh_from_db()
    assert model.epochs_completed == 3
    assert recorded_epochs(model) == [1, 2, 3]
    assert set(EpochRecord.objects.filter(session=resumed).values_list("epoch", flat=True)) == set(
        range(stopped_at + 1, 4)
    )
    charged = LedgerLine.objects.filter(session__model=model, kind=LedgerLine.Kind.EPOCH_CHARGE)
    assert list(charged.order_by("epoch").values_list("epoch", flat=True)) == [1, 2, 3]
    assert all(line.amount_micros < 0 for line in charged)
    for record in EpochRecord.objects.filter(model=model):
        assert TASK_METRICS[task] <= set(record.metrics), sorted(record.metrics)
    # The series kept beside the model holds each epoch once, across the stop and resume.
    records = EpochRecord.objects.filter(model=model).order_by("epoch")
    assert model.epoch_series == [
        [r.epoch, r.duration_ms, task_metrics.series_figures(task, r.metrics)] for r in records
    ]
    assert all(task_metrics.headline(task)[0].key in figures for _epoch, _ms, figures in model.epoch_series)
