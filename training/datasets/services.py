"""Creating, renaming and deleting datasets, and the demo's dataset."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from hubsite.jobs import send_on_commit
from hubsite.models import User
from training.datasets.cache import remove_cached_copy
from training.datasets.storage import archive_key, delete_prefix, storage_put
from training.datasets.synthetic import write_synthetic_dataset
from training.datasets.task import run_validation, validate_dataset
from training.models import Dataset
from training.storage import check_storage, lock_and_check_storage


class DatasetInUseError(Exception):
    """The dataset is still used by models; ``names`` are theirs."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names

    def refusal(self, dataset_name: str) -> str:
        """Why ``dataset_name`` cannot be deleted, in the words the owner sees."""
        return (
            f"{dataset_name} is used by {len(self.names)} model(s) ({', '.join(self.names)}) and cannot be "
            "deleted. Models keep their dataset so their training can be resumed."
        )


def create_dataset(owner: User, name: str, upload: IO[bytes], *, task: str = "", validate_now: bool = False) -> Dataset:
    """Store the uploaded zip under the new dataset's prefix and queue its validation
    (or, with ``validate_now``, validate it in this process before returning). ``task``
    is the task the owner chose ("" to detect it from the files).

    The file goes to storage first; if the row cannot be saved, the file is removed.
    Raises ``StorageQuotaExceeded`` (nothing stored) when the plan's storage is full."""
    check_storage(owner, getattr(upload, "size", None) or 0)
    dataset = Dataset(
        owner=owner,
        name=name,
        task=task or Dataset.Task.DETECT,
        declared_task=task,
        status=Dataset.Status.PROCESSING,
    )
    key = storage_put(archive_key(dataset), upload)
    try:
        with transaction.atomic():
            dataset.archive.name = key
            dataset.archive_size = default_storage.size(key)
            lock_and_check_storage(owner, dataset.archive_size)
            dataset.save()
            if not validate_now:
                send_on_commit(validate_dataset, dataset.pk)
    except BaseException:
        delete_prefix(dataset.storage_prefix)
        raise
    if validate_now:
        run_validation(dataset.pk)
        dataset.refresh_from_db()
    return dataset


DEMO_DATASET_NAME = "Shapes (demo)"
DEMO_SEGMENTATION_DATASET_NAME = "Shapes segmentation (demo)"


def create_demo_datasets(owner: User) -> list[Dataset]:
    """The demo's ready datasets, each made once: synthetic shapes for detection and for
    segmentation (64 train, 16 val images, 128 px)."""
    return [
        _demo_dataset(owner, DEMO_DATASET_NAME, Dataset.Task.DETECT),
        _demo_dataset(owner, DEMO_SEGMENTATION_DATASET_NAME, Dataset.Task.SEGMENT),
    ]


def _demo_dataset(owner: User, name: str, task: str) -> Dataset:
    existing = Dataset.objects.filter(owner=owner, name=name).first()
    if existing is not None:
        return existing
    with tempfile.TemporaryDirectory(prefix="hubsite-demo-") as work:
        path = write_synthetic_dataset(
            Path(work) / "shapes.zip", train_images=64, val_images=16, image_size=128, task=task
        )
        with open(path, "rb") as upload:
            return create_dataset(owner, name, upload, task=task, validate_now=True)


def validate_again(dataset: Dataset, task: str) -> bool:
    """Queue another validation of an invalid dataset's files as ``task``; False (and
    nothing changes) when the dataset is not invalid any more."""
    with transaction.atomic():
        changed = Dataset.objects.filter(pk=dataset.pk, status=Dataset.Status.INVALID).update(
            status=Dataset.Status.PROCESSING,
            declared_task=task,
            task=task,
            errors=[],
            stats={},
            class_names=[],
            updated_at=timezone.now(),  # when validation was asked for: give_up_lost_validations reads it
        )
        if changed:
            send_on_commit(validate_dataset, dataset.pk)
    return bool(changed)


def rename_dataset(dataset: Dataset, name: str) -> None:
    Dataset.objects.filter(pk=dataset.pk).update(name=name)
    dataset.name = name


def delete_dataset(dataset: Dataset) -> None:
    """Delete the dataset and everything stored under its prefix; refused while a model uses it."""
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        names = list(locked.yolo_models.values_list("name", flat=True))
        if names:
            raise DatasetInUseError(names)
        prefix, uid = locked.storage_prefix, str(locked.uid)
        locked.delete()
    delete_prefix(prefix)
    # A worker's cache on this machine loses the copy now; other machines' caches evict it in time.
    cache_root = Path(settings.DATASET_CACHE_DIR)
    if cache_root.is_dir():
        remove_cached_copy(cache_root, uid)
