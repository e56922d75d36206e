"""Fine-tuning end to end through real workers: from an own model's best weights and
from an uploaded .pt, each onto a dataset with a different class count. ultralytics
rebuilds the head for the new classes and logs what it transferred: the class rows of
names the two share move to their new places, the others start fresh."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core.files import File
from django.core.files.storage import default_storage

from hubsite.models import User
from tests.factories import TINY_TRAINING, cpu_instance, fund, make_model, make_ready_dataset
from tests.helpers import FAST_WORKER_ENV, WorkerFactory, wait_for
from tests.training.weights.helpers import write_yolo_checkpoint
from training import sessions
from training.datasets.synthetic import write_synthetic_dataset
from training.models import Dataset, StartKind, TrainingSession, WeightsUpload, YoloModel
from training.presence import live_queues
from training.weights import StartWeights, create_model, create_weights_upload, find_start

pytestmark = [pytest.mark.training, pytest.mark.django_db(transaction=True)]

Status = TrainingSession.Status
TRANSFERRED = re.compile(r"Transferred (\d+)/(\d+) items from pretrained weights")


@pytest.fixture
def workers(start_worker: WorkerFactory, settings: Any) -> object:
    """A light and a CPU training worker in one process, beating every second."""
    settings.TRAINING_HEARTBEAT_INTERVAL_SECONDS = 1
    settings.TRAINING_HEARTBEAT_STALE_SECONDS = 5
    settings.WORKER_PRESENCE_INTERVAL_SECONDS = 1
    process = start_worker("default", "train.cpu", extra_env=dict(FAST_WORKER_ENV))
    wait_for(lambda: "train.cpu" in live_queues(), timeout=20)
    return process


def two_class_dataset(owner: User, tmp_path: Path) -> Dataset:
    archive = write_synthetic_dataset(tmp_path / "two.zip", train_images=16, val_images=8, image_size=64, classes=2)
    dataset = Dataset.objects.create(
        owner=owner, name="two shapes", status=Dataset.Status.READY, class_names=["circle", "square"]
    )
    with archive.open("rb") as handle:
        dataset.archive.name = default_storage.save(f"{dataset.storage_prefix}/two.zip", File(handle))
    dataset.save()
    return dataset


def train(user: User, model: YoloModel) -> TrainingSession:
    session = sessions.start_session(user, model, sessions.StartRequest(instance_type=cpu_instance()))
    wait_for(
        lambda: TrainingSession.objects.get(pk=session.pk).status in (Status.COMPLETED, Status.FAILED),
        timeout=240,
        interval=0.2,
    )
    session.refresh_from_db()
    assert session.status == Status.COMPLETED, session.failure_reason
    return session


def child_of(user: User, start: StartWeights, dataset: Dataset) -> YoloModel:
    return create_model(
        user,
        start=start,
        name="child",
        dataset=dataset,
        architecture=start.architecture,
        pretrained=False,
        train_args={**TINY_TRAINING, "epochs": 1},
    )


def transferred(session: TrainingSession) -> tuple[int, int]:
    """(items transferred, items in the new model), from the session's log."""
    match = TRANSFERRED.search(session.log_tail)
    assert match, session.log_tail[-2000:]
    return int(match.group(1)), int(match.group(2))


def test_a_model_fine_tunes_from_an_own_models_best_weights(user: User, tmp_path: Path, workers: object) -> None:
    fund(user, as_adjustment=True)
    parent = make_model(user, make_ready_dataset(user, tmp_path), epochs=1)
    train(user, parent)
    parent.refresh_from_db()
    start = find_start(user, f"model:{parent.uid}:best")
    assert start is not None

    child = child_of(user, start, two_class_dataset(user, tmp_path))
    session = train(user, child)

    child.refresh_from_db()
    assert child.start_kind == StartKind.MODEL
    assert child.parent == parent
    assert child.epochs_completed == 1
    done, total = transferred(session)
    assert done == total  # 3 classes -> 2: circle and square keep their class rows, found by name


def test_a_model_fine_tunes_from_an_uploaded_checkpoint_checked_by_the_light_worker(
    user: User, tmp_path: Path, workers: object
) -> None:
    fund(user, as_adjustment=True)
    path = write_yolo_checkpoint(tmp_path / "coco-like.pt", "yolo11n", names=["a", "b", "c", "d", "e"])
    with path.open("rb") as handle:
        upload = create_weights_upload(user, "coco-like", path.name, handle)
    wait_for(
        lambda: WeightsUpload.objects.get(pk=upload.pk).status != WeightsUpload.Status.PROCESSING,
        timeout=120,
        interval=0.2,
    )
    upload.refresh_from_db()
    assert upload.status == WeightsUpload.Status.READY, upload.error
    start = find_start(user, f"upload:{upload.uid}")
    assert start is not None

    child = child_of(user, start, two_class_dataset(user, tmp_path))
    session = train(user, child)

    child.refresh_from_db()
    assert child.start_kind == StartKind.UPLOAD
    assert child.epochs_completed == 1
    done, total = transferred(session)
    assert 0 < done < total  # classes a..e share no name with circle, square: their rows start fresh
