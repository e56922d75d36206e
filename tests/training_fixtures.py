"""Fixtures for tests that really train: a ready synthetic dataset in storage, a
model on it, a funded account, and fast heartbeat/reaper settings for workers."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.core.files import File
from django.core.files.storage import default_storage

from billing import services as billing
from hubsite.models import User
from training.datasets.synthetic import write_synthetic_dataset
from training.models import Dataset, InstanceType, YoloModel
from training.presence import announce

# Workers in these tests beat every second, and a silent one is reaped after 5 s.
FAST_WORKER_ENV = {
    "TRAINING_HEARTBEAT_INTERVAL_SECONDS": "1",
    "TRAINING_HEARTBEAT_STALE_SECONDS": "5",
    "WORKER_PRESENCE_INTERVAL_SECONDS": "1",
}
TINY_TRAINING = {"imgsz": 64, "batch": 8, "nbs": 8, "patience": 100, "seed": 0, "val": True}


@pytest.fixture
def fast_workers(settings: Any) -> dict[str, str]:
    settings.TRAINING_HEARTBEAT_INTERVAL_SECONDS = 1
    settings.TRAINING_HEARTBEAT_STALE_SECONDS = 5
    settings.WORKER_PRESENCE_INTERVAL_SECONDS = 1
    return dict(FAST_WORKER_ENV)


@pytest.fixture
def model(user: User, tmp_path: Path) -> YoloModel:
    """A 3-epoch model on a ready synthetic dataset, with the instance types seeded."""
    ensure_instance_types()
    return make_model(user, make_ready_dataset(user, tmp_path), epochs=3)


@pytest.fixture
def cpu_online(redis_client: Any, settings: Any) -> None:
    """A stand-in for a live CPU worker's presence. A worker announces itself for 3
    intervals; this one's must outlast a slow first request (importing ultralytics on
    a loaded machine took 25 s)."""
    settings.WORKER_PRESENCE_INTERVAL_SECONDS = 600
    announce({"train.cpu"}, "test-worker")


def make_ready_dataset(owner: User, tmp_path: Path, *, train_images: int = 16, val_images: int = 8) -> Dataset:
    archive = write_synthetic_dataset(
        tmp_path / "shapes.zip", train_images=train_images, val_images=val_images, image_size=64
    )
    dataset = Dataset.objects.create(owner=owner, name="shapes", status=Dataset.Status.READY)
    with archive.open("rb") as handle:
        dataset.archive.name = default_storage.save(f"{dataset.storage_prefix}/shapes.zip", File(handle))
    dataset.archive_size = archive.stat().st_size
    dataset.save()
    return dataset


def make_model(owner: User, dataset: Dataset, **train_args: Any) -> YoloModel:
    return YoloModel.objects.create(
        owner=owner,
        name="shapes-detector",
        dataset=dataset,
        architecture="yolo11n",
        train_args={**TINY_TRAINING, **train_args},
    )


def fund(user: User, dollars: int = 20) -> None:
    account = billing.account_for(user)
    billing.adjust(account.pk, dollars * 1_000_000, staff_user=None, reason="test credit")


def ensure_instance_types() -> None:
    """The instance types the data migration seeds. A transactional test's flush
    empties every table, so tests that need them call this (or ``instance_type``)."""
    seed = importlib.import_module("training.migrations.0002_seed_instance_types").seed
    seed(django_apps, None)


def instance_type(slug: str) -> InstanceType:
    if not InstanceType.objects.filter(slug=slug).exists():
        ensure_instance_types()
    return InstanceType.objects.get(slug=slug)


def cpu_instance() -> InstanceType:
    return instance_type("cpu")
