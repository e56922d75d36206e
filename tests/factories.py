"""The objects tests build: users, instance types, datasets, models, sessions, epochs,
money. One function for each; fixtures built from them live in the conftest files."""

from __future__ import annotations

import importlib
import io
import itertools
from pathlib import Path
from typing import Any

from django.apps import apps as django_apps
from django.core.files import File
from django.core.files.storage import default_storage
from django.utils import timezone

from billing import services
from billing.models import Account
from hubsite.models import User
from tests.training.datasets.helpers import good_files, zip_bytes
from training.datasets import create_dataset
from training.datasets.synthetic import class_names, write_synthetic_dataset
from training.models import Dataset, EpochRecord, InstanceType, TrainingSession, YoloModel

PASSWORD = "correct-horse-battery-staple"
# US$3.60 an hour: one second costs exactly 1_000 micro-dollars, which keeps the
# arithmetic in the tests readable.
PRICE_PER_HOUR = 3_600_000
WORKER = "test-worker"  # the worker that owns the sessions make_session creates
TINY_TRAINING = {"imgsz": 64, "batch": 8, "nbs": 8, "patience": 100, "seed": 0, "val": True}
_names = itertools.count()


def make_user(email: str) -> User:
    return User.objects.create_user(email, PASSWORD)


def make_staff(email: str = "staff@example.com") -> User:
    return User.objects.create_superuser(email, PASSWORD)


# --- instance types --------------------------------------------------------------------


def make_instance_type(price_per_hour_micros: int = PRICE_PER_HOUR, reference_epoch_seconds: int = 10) -> InstanceType:
    """A new instance type of its own (``test-gpu-<n>``), at ``price_per_hour_micros``."""
    n = next(_names)
    return InstanceType.objects.create(
        slug=f"test-gpu-{n}",
        name=f"Test GPU {n}",
        gpu="Test GPU",
        price_per_hour_micros=price_per_hour_micros,
        reference_epoch_seconds=reference_epoch_seconds,
    )


def ensure_instance_types() -> None:
    """The instance types the data migration seeds. A transactional test's flush
    empties every table, so tests that need them call this (or ``instance_type``)."""
    seed = importlib.import_module("training.migrations.0002_seed_instance_types").seed
    seed(django_apps, None)


def instance_type(slug: str) -> InstanceType:
    """One of the seeded instance types."""
    if not InstanceType.objects.filter(slug=slug).exists():
        ensure_instance_types()
    return InstanceType.objects.get(slug=slug)


def cpu_instance() -> InstanceType:
    return instance_type("cpu")


# --- datasets and models ---------------------------------------------------------------


def make_ready_dataset(
    owner: User, tmp_path: Path, *, train_images: int = 16, val_images: int = 8, task: str = "detect"
) -> Dataset:
    """A synthetic dataset zip of ``task`` in storage, marked ready without running the validation."""
    archive = write_synthetic_dataset(
        tmp_path / ("shapes.zip" if task == "detect" else f"shapes-{task}.zip"),
        train_images=train_images,
        val_images=val_images,
        image_size=64,
        task=task,
    )
    dataset = Dataset.objects.create(
        owner=owner,
        name="shapes" if task == "detect" else f"shapes ({task})",
        task=task,
        class_names=class_names(3),
        status=Dataset.Status.READY,
    )
    with archive.open("rb") as handle:
        dataset.archive.name = default_storage.save(f"{dataset.storage_prefix}/{archive.name}", File(handle))
    dataset.archive_size = archive.stat().st_size
    dataset.save()
    return dataset


def make_validated_dataset(owner: User, tmp_path: Path, *, name: str = "shapes") -> Dataset:
    """A small synthetic dataset that went through the whole validation (stats, samples)."""
    data = zip_bytes(good_files(tmp_path))
    dataset = create_dataset(owner, name, io.BytesIO(data), validate_now=True)
    assert dataset.status == Dataset.Status.READY, dataset.errors
    return dataset


def make_model(owner: User, dataset: Dataset | None = None, **train_args: Any) -> YoloModel:
    """A yolo11n model.

    On a real ``dataset`` (make_ready_dataset's) it is a model to train: "shapes-detector",
    with TINY_TRAINING plus ``train_args``, so an epoch takes seconds. Without one it is a
    model that is only billed or looked at: "detector", on a ready dataset with no archive,
    with ``train_args`` alone."""
    if dataset is None:
        placeholder = Dataset.objects.create(owner=owner, name=f"data {next(_names)}", status=Dataset.Status.READY)
        return YoloModel.objects.create(
            owner=owner, name="detector", dataset=placeholder, architecture="yolo11n", train_args=train_args
        )
    return YoloModel.objects.create(
        owner=owner,
        name="shapes-detector",
        dataset=dataset,
        architecture="yolo11n",
        train_args={**TINY_TRAINING, **train_args},
    )


# --- sessions and epochs ---------------------------------------------------------------


def make_session(
    owner: User,
    *,
    model: YoloModel | None = None,
    instance_type: InstanceType | None = None,
    mode: str = TrainingSession.Mode.EPOCHS,
    time_budget_seconds: int | None = None,
    status: str = TrainingSession.Status.TRAINING,
    worker_id: str = WORKER,
) -> TrainingSession:
    """A 10-epoch session, by default training on WORKER, of a new model and instance type."""
    return TrainingSession.objects.create(
        model=model or make_model(owner),
        owner=owner,
        instance_type=instance_type or make_instance_type(),
        mode=mode,
        target_epochs=10,
        time_budget_seconds=time_budget_seconds,
        status=status,
        worker_id=worker_id,
    )


def record_epoch(session: TrainingSession, epoch: int, duration_ms: int) -> EpochRecord:
    now = timezone.now()
    return EpochRecord.objects.create(
        session=session,
        model_id=session.model_id,
        epoch=epoch,
        started_at=now,
        finished_at=now,
        duration_ms=duration_ms,
        metrics={},
    )


# --- money -----------------------------------------------------------------------------


def fund(user: User, micros: int = 20_000_000, *, reference: str | None = None, as_adjustment: bool = False) -> Account:
    """Credit ``micros`` micro-dollars (US$20 unless told) to the user's account: a paid
    top-up under ``reference`` (a new one unless given), or with ``as_adjustment`` a
    staff adjustment ("test credit"). Returns the account, refreshed."""
    account = services.account_for(user)
    if as_adjustment:
        services.adjust(account.pk, micros, staff_user=None, reason="test credit")
    else:
        services.credit_top_up(account.pk, micros, reference=reference or f"test-top-up-{next(_names)}")
    account.refresh_from_db()
    return account
