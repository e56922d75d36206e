"""Dataset zips for the tests: a good synthetic one, and ways to break it."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from training.datasets import run_validation, storage_keys
from training.datasets.synthetic import write_synthetic_dataset
from training.models import Dataset

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

Files = dict[str, bytes]


def good_files(tmp_path: Path, *, train: int = 4, val: int = 2, classes: int = 3, size: int = 64) -> Files:
    """The entries of a small, valid synthetic dataset zip."""
    path = write_synthetic_dataset(
        tmp_path / "good-source.zip", train_images=train, val_images=val, image_size=size, classes=classes
    )
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def zip_bytes(files: Files, *, links: dict[str, str] | None = None, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def all_storage_keys() -> set[str]:
    """Every key in default storage (the test run's own bucket)."""
    return set(storage_keys(""))


def keys_outside(prefix: str, before: set[str]) -> set[str]:
    """Keys that appeared since ``before`` and are not under ``prefix``."""
    return {key for key in all_storage_keys() - before if not key.startswith(prefix + "/")}


def storage_has(key: str) -> bool:
    return bool(default_storage.exists(key))


def upload(client: Client, data: bytes, *, name: str = "shapes", filename: str = "shapes.zip") -> Response:
    """POST a file to the real upload view."""
    return client.post(reverse("training:dataset_upload"), {"name": name, "file": SimpleUploadedFile(filename, data)})


def upload_and_validate(client: Client, data: bytes, *, name: str = "shapes", filename: str = "shapes.zip") -> Dataset:
    """Upload through the view, then run the validation actor's function in this process.

    Asserts that nothing was written to storage outside the dataset's own prefix."""
    before = all_storage_keys()
    response = upload(client, data, name=name, filename=filename)
    assert response.status_code == 302, response.content.decode()[:2000]
    dataset = Dataset.objects.get(name=name)
    assert dataset.status == Dataset.Status.PROCESSING
    run_validation(dataset.pk)
    dataset.refresh_from_db()
    assert keys_outside(dataset.storage_prefix, before) == set()
    return dataset


def problem_text(dataset: Dataset) -> str:
    return "\n".join(f"{p['file']}:{p['line']}: {p['message']}" for p in dataset.errors)
