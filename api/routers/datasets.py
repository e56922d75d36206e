"""Datasets: list, inspect, upload (multipart, the web form's checks) and delete.
Uploads are validated on a light worker exactly as the web's; poll the dataset until
its status is ``ready`` or ``invalid``."""

from __future__ import annotations

import zipfile
from datetime import datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema, Status
from ninja.pagination import paginate

from api.auth import TRAIN, owner_of
from api.errors import ApiError, ErrorOut
from api.lookups import owned_dataset
from api.pagination import Pages
from training.datasets import DatasetInUseError, create_dataset, delete_dataset, human_bytes
from training.datasets.archive import NOT_A_ZIP_MESSAGE
from training.datasets.uri import dataset_uri
from training.forms import DatasetUploadForm, UploadLimitHandler
from training.models import Dataset
from training.storage import StorageQuotaExceeded

router = Router(tags=["Datasets"])


class DatasetOut(Schema):
    id: int
    uid: UUID
    name: str
    task: str
    status: str
    class_names: list[str]
    archive_size: int
    created_at: datetime


class DatasetDetailOut(DatasetOut):
    uri: str
    problems: list[dict[str, Any]]
    stats: dict[str, Any]

    @staticmethod
    def resolve_uri(dataset: Dataset) -> str:
        return dataset_uri(dataset)

    @staticmethod
    def resolve_problems(dataset: Dataset) -> list[dict[str, Any]]:
        return list(dataset.errors or [])

    @staticmethod
    def resolve_stats(dataset: Dataset) -> dict[str, Any]:
        return dict(dataset.stats or {})


def _owned_dataset(request: HttpRequest, dataset_id: int) -> Dataset:
    return owned_dataset(owner_of(request), dataset_id)


@router.get("", response=list[DatasetOut], summary="Your datasets, newest first")
@paginate(Pages)
def list_datasets(request: HttpRequest) -> QuerySet[Dataset]:
    return Dataset.objects.filter(owner=owner_of(request)).order_by("-created_at", "-id")


@router.get(
    "/{dataset_id}",
    response={200: DatasetDetailOut, 404: ErrorOut},
    summary="A dataset with its validation problems, statistics and ul:// name",
)
def get_dataset(request: HttpRequest, dataset_id: int) -> Dataset:
    return _owned_dataset(request, dataset_id)


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 100, "description": "Defaults to the file name."},
                        "task": {
                            "type": "string",
                            "enum": ["", *Dataset.Task.values],
                            "description": "Empty: read the task from the files.",
                        },
                        "file": {"type": "string", "format": "binary", "description": "The dataset zip."},
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    auth=TRAIN,
    response={201: DatasetDetailOut, 413: ErrorOut, 422: ErrorOut},
    openapi_extra=UPLOAD_BODY,
    summary="Upload a dataset zip (multipart: file, name, task); it is then validated",
)
def upload_dataset(request: HttpRequest) -> Status[Dataset]:
    # The body is parsed here, not by ninja, so that the size guard is installed
    # before any of it is read (the web upload view does the same).
    handler = UploadLimitHandler.read_upload(request)
    form = DatasetUploadForm(request.POST, request.FILES, upload_exceeded=handler.exceeded)
    if not form.is_valid():
        raise _upload_refusal(form)
    upload = form.cleaned_data["file"]
    if not zipfile.is_zipfile(upload):
        raise ApiError(422, "not_a_zip", NOT_A_ZIP_MESSAGE)
    upload.seek(0)
    try:
        dataset = create_dataset(owner_of(request), form.cleaned_data["name"], upload, task=form.cleaned_data["task"])
    except StorageQuotaExceeded as full:
        upgrade_url = request.build_absolute_uri(full.upgrade_url)
        raise ApiError(413, "storage_quota_exceeded", full.message, upgrade_url=upgrade_url) from full
    return Status(201, dataset)


def _upload_refusal(form: DatasetUploadForm) -> ApiError:
    if form.has_error("__all__", "too_large"):
        limit = human_bytes(settings.DATASET_MAX_UPLOAD_BYTES)
        return ApiError(413, "too_large", " ".join(str(error) for error in form.non_field_errors()), limit=limit)
    fields = [
        {"field": field, "message": " ".join(str(error) for error in errors)}
        for field, errors in form.errors.items()
        if field != "__all__"
    ]
    message = "; ".join(f"{field['field']}: {field['message']}" for field in fields) or "Invalid upload."
    return ApiError(422, "invalid", message, errors=fields)


@router.delete(
    "/{dataset_id}",
    auth=TRAIN,
    response={204: None, 404: ErrorOut, 409: ErrorOut},
    summary="Delete a dataset no model uses",
)
def remove_dataset(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = _owned_dataset(request, dataset_id)
    try:
        delete_dataset(dataset)
    except DatasetInUseError as error:
        raise ApiError(409, "dataset_in_use", error.refusal(dataset.name), models=error.names) from None
    return HttpResponse(status=204)
