"""Dataset zips for the tests: a good synthetic one, and ways to break it."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

from django.core.files.storage import default_storage

from training.datasets import storage_keys
from training.synthetic import write_synthetic_dataset

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
