"""Dataset pages: the list, upload (with its request-size guard and task choice), detail
with its validation report and sample pictures, validating again as a chosen task,
rename, delete and download."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import Count
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from hubsite.http import AuthenticatedRequest, owned_or_404
from training.catalogue import default_architecture
from training.datasets import (
    DatasetInUseError,
    class_colour,
    create_dataset,
    delete_dataset,
    human_bytes,
    rename_dataset,
    sample_key,
    validate_again,
)
from training.datasets.uri import dataset_uri
from training.filenames import download_filename
from training.forms import DatasetUploadForm, RenameForm, UploadLimitHandler
from training.models import Dataset
from training.storage import StorageQuotaExceeded, storage_quota, stored_bytes
from training.views.downloads import stream_file


@require_GET
def dataset_list(request: AuthenticatedRequest) -> HttpResponse:
    datasets = Dataset.objects.filter(owner=request.user).annotate(model_count=Count("yolo_models"))
    context = {
        "datasets": datasets,
        "stored_bytes": stored_bytes(request.user),
        "storage_quota": storage_quota(request.user),
    }
    return render(request, "training/dataset_list.html", context)


@csrf_exempt  # the upload handler must be installed before CSRF reads the body; checked below
@require_http_methods(["GET", "POST"])
def dataset_upload(request: AuthenticatedRequest) -> HttpResponse:
    if request.method == "POST":
        handler = UploadLimitHandler.read_upload(request)
        if handler.exceeded:
            # Refused before CSRF is checked: nothing was read into storage and nothing changes.
            form = DatasetUploadForm({}, {}, upload_exceeded=True)
            return _upload_form(request, form, status=413)
    return _dataset_upload(request)


@csrf_protect
def _dataset_upload(request: AuthenticatedRequest) -> HttpResponse:
    if request.method == "POST":
        form = DatasetUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                dataset = create_dataset(
                    request.user, form.cleaned_data["name"], upload, task=form.cleaned_data["task"]
                )
            except StorageQuotaExceeded as full:
                form.add_error(None, full.message)
                return _upload_form(request, form, status=413, upgrade_url=full.upgrade_url)
            url = reverse("training:dataset_detail", args=[dataset.uid])
            if request.htmx:
                return HttpResponseClientRedirect(url)
            return redirect(url)
        return _upload_form(request, form, status=400)
    return render(
        request, "training/dataset_upload.html", {"form": DatasetUploadForm(), "upload_limit": _upload_limit()}
    )


def _upload_form(
    request: AuthenticatedRequest, form: DatasetUploadForm, *, status: int, upgrade_url: str = ""
) -> HttpResponse:
    template = "training/dataset_upload.html#upload-form" if request.htmx else "training/dataset_upload.html"
    context = {"form": form, "upload_limit": _upload_limit(), "upgrade_url": upgrade_url}
    return render(request, template, context, status=status)


def _upload_limit() -> str:
    return human_bytes(settings.DATASET_MAX_UPLOAD_BYTES)


def _dataset_context(dataset: Dataset) -> dict[str, Any]:
    stats = dataset.stats or {}
    counts = stats.get("instances", {}) or {}
    largest = max(counts.values(), default=0) or 1
    bars = [
        {
            "name": name,
            "count": count,
            "percent": round(100 * count / largest, 1),
            "colour": "rgb({},{},{})".format(*class_colour(index)),
        }
        for index, (name, count) in enumerate(counts.items())
    ]
    return {
        "dataset": dataset,
        "stats": stats,
        "bars": bars,
        "splits": list((stats.get("splits") or {}).items()),
        "warnings": stats.get("warnings", []),
        "samples": stats.get("samples", []),
        "keypoints": stats.get("keypoints"),
        "class_rows": _class_rows(stats) if dataset.task == Dataset.Task.CLASSIFY else [],
        "task_choices": [
            (task, Dataset.Task(task).label) for task in stats.get("task_choices", []) if task in Dataset.Task.values
        ]
        if dataset.status == Dataset.Status.INVALID
        else [],
        "models": list(dataset.yolo_models.all()),
        "rename_form": RenameForm(initial={"name": dataset.name}),
        "own_gpu": _own_gpu(dataset) if dataset.status == Dataset.Status.READY else None,
    }


def _own_gpu(dataset: Dataset) -> dict[str, str]:
    """The "Train on your own GPU" box: the dataset's ul:// name and the command that
    trains on it with an unmodified ultralytics (docs/api.md)."""
    uri = dataset_uri(dataset)
    command = (
        f"ULTRALYTICS_PLATFORM_URL={settings.SITE_URL} ULTRALYTICS_API_KEY=<your API key> "
        f"yolo train data={uri} model={default_architecture(dataset.task)}.yaml "
        f"project={slugify(dataset.name) or 'hubsite'} epochs=100"
    )
    return {"uri": uri, "command": command}


def _class_rows(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """A classification dataset's images per class in each split, one row per class."""
    splits = (stats.get("splits") or {}).values()
    return [
        {"name": name, "counts": [(split.get("classes") or {}).get(name, 0) for split in splits]}
        for name in stats.get("classes", [])
    ]


@require_GET
def dataset_detail(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    dataset = owned_or_404(Dataset, request, uid=uid)
    context = _dataset_context(dataset)
    if request.htmx:
        response = render(request, "training/dataset_detail.html#dataset-body", context)
        if dataset.status != Dataset.Status.PROCESSING:
            return HttpResponseStopPolling(response.content)
        return response
    return render(request, "training/dataset_detail.html", context)


@require_POST
def dataset_rename(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    dataset = owned_or_404(Dataset, request, uid=uid)
    form = RenameForm(request.POST)
    if form.is_valid():
        rename_dataset(dataset, form.cleaned_data["name"])
        messages.success(request, "Dataset renamed.")
    else:
        messages.error(request, "The name was not changed: " + " ".join(str(e) for e in form.errors.get("name", [])))
    return redirect("training:dataset_detail", uid=dataset.uid)


@require_POST
def dataset_validate_again(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    """Validate an invalid dataset's files again as the task the owner picks (offered when
    its labels fit several tasks)."""
    dataset = owned_or_404(Dataset, request, uid=uid)
    task = request.POST.get("task", "")
    if task not in Dataset.Task.values:
        messages.error(request, "Choose the task to validate the dataset as.")
    elif validate_again(dataset, task):
        messages.success(request, f"Checking the dataset again as {Dataset.Task(task).label}.")
    else:
        messages.error(request, "Only a dataset that failed validation can be validated again.")
    return redirect("training:dataset_detail", uid=dataset.uid)


@require_POST
def dataset_delete(request: AuthenticatedRequest, uid: uuid.UUID) -> HttpResponse:
    dataset = owned_or_404(Dataset, request, uid=uid)
    try:
        delete_dataset(dataset)
    except DatasetInUseError as error:
        messages.error(request, error.refusal(dataset.name))
        return redirect("training:dataset_detail", uid=dataset.uid)
    messages.success(request, f"Deleted {dataset.name}.")
    return redirect("training:dataset_list")


@require_GET
def dataset_download(request: AuthenticatedRequest, uid: uuid.UUID) -> FileResponse:
    dataset = owned_or_404(Dataset, request, uid=uid)
    filename = download_filename(dataset.name, ".zip", fallback="dataset")
    return stream_file(dataset.archive.name or "", filename, "application/zip")


@require_GET
def dataset_sample(request: AuthenticatedRequest, uid: uuid.UUID, index: int) -> FileResponse:
    dataset = owned_or_404(Dataset, request, uid=uid)
    known = {sample.get("index") for sample in (dataset.stats or {}).get("samples", [])}
    if index not in known:
        raise Http404("No such sample.")
    return stream_file(sample_key(dataset, index), f"sample-{index}.jpg", "image/jpeg", attachment=False)
