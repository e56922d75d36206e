"""Where a dataset's files live in object storage (default_storage), and moving them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO

from django.core.files.storage import default_storage

from training.datasets.archive import CHUNK
from training.datasets.problems import dataset_error
from training.models import Dataset


def archive_key(dataset: Dataset) -> str:
    return f"{dataset.storage_prefix}/archive.zip"


def sample_key(dataset: Dataset, index: int) -> str:
    return f"{dataset.storage_prefix}/samples/{index}.jpg"


def storage_put(key: str, data: bytes | IO[bytes]) -> str:
    """Write ``key`` in default storage, replacing what was there (never a renamed copy)."""
    from django.core.files.base import ContentFile, File

    if default_storage.exists(key):
        default_storage.delete(key)
    content = ContentFile(data) if isinstance(data, bytes) else File(data)
    saved = default_storage.save(key, content)
    if saved != key:  # pragma: no cover - storage renamed it despite the delete
        default_storage.delete(saved)
        raise RuntimeError(f"storage stored {key!r} as {saved!r}")
    return saved


def storage_keys(prefix: str) -> list[str]:
    """Every key below ``prefix`` (recursively)."""
    keys: list[str] = []
    pending = [prefix.rstrip("/")]
    while pending:
        folder = pending.pop()
        try:
            folders, files = default_storage.listdir(folder)
        except FileNotFoundError:
            continue
        lead = f"{folder}/" if folder else ""
        keys.extend(lead + name for name in files)
        pending.extend(lead + name for name in folders)
    return sorted(keys)


def delete_prefix(prefix: str) -> None:
    for key in storage_keys(prefix):
        default_storage.delete(key)


def download_archive(dataset: Dataset, target: Path) -> Path:
    """Copy the dataset's zip from storage to the local file ``target``."""
    if not dataset.archive.name:
        raise dataset_error("The dataset has no uploaded file.")
    with default_storage.open(dataset.archive.name, "rb") as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink, CHUNK)
    return target
