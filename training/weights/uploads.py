"""Uploading and deleting a user's weights files."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from django.core.files.storage import default_storage
from django.db import transaction

from hubsite.jobs import send_on_commit
from hubsite.models import User
from training.datasets import delete_prefix, storage_put
from training.models import WeightsUpload
from training.storage import check_storage, lock_and_check_storage
from training.weights.task import run_weights_check, upload_key, validate_weights

NAME_MAX_LENGTH = 100
FILE_NAME_MAX_LENGTH = 255


def display_name(file_name: str) -> str:
    """A name for the upload from its file name (shown only, never a path)."""
    return (Path(file_name).stem or "weights")[:NAME_MAX_LENGTH]


def create_weights_upload(
    owner: User, name: str, file_name: str, data: IO[bytes], *, validate_now: bool = False
) -> WeightsUpload:
    """Store the uploaded file under the new upload's prefix and queue its check (or,
    with ``validate_now``, check it in this process before returning). The file goes to
    storage first; if the row cannot be saved, the file is removed. Raises
    ``StorageQuotaExceeded`` (nothing stored) when the plan's storage is full."""
    check_storage(owner, getattr(data, "size", None) or 0)
    upload = WeightsUpload(
        owner=owner,
        name=name[:NAME_MAX_LENGTH],
        file_name=Path(file_name).name[:FILE_NAME_MAX_LENGTH],
        status=WeightsUpload.Status.PROCESSING,
    )
    key = storage_put(upload_key(upload), data)
    try:
        with transaction.atomic():
            upload.upload.name = key
            upload.size = default_storage.size(key)
            lock_and_check_storage(owner, upload.size)
            upload.save()
            if not validate_now:
                send_on_commit(validate_weights, upload.pk)
    except BaseException:
        delete_prefix(upload.storage_prefix)
        raise
    if validate_now:
        run_weights_check(upload.pk)
        upload.refresh_from_db()
    return upload


def delete_weights_upload(upload: WeightsUpload) -> None:
    """Delete the upload and its files. Models started from it keep their own copy."""
    prefix = upload.storage_prefix
    WeightsUpload.objects.filter(pk=upload.pk).delete()
    delete_prefix(prefix)
