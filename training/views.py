"""Pages for datasets and models. Every object is fetched through an owner-scoped
helper first: another user's dataset or model is a 404, for pages, fragments,
downloads and POSTs alike."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import RequestDataTooBig
from django.core.files.storage import default_storage
from django.db.models import Count
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling
from django_htmx.middleware import HtmxDetails

from hubsite.models import User
from training import catalogue
from training.datasets import (
    DatasetInUseError,
    class_colour,
    create_dataset,
    delete_dataset,
    human_bytes,
    rename_dataset,
    sample_key,
)
from training.filenames import download_filename
from training.forms import DatasetUploadForm, ModelCreateForm, RenameForm, UploadLimitHandler
from training.models import Dataset, TrainingSession, YoloModel


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


MODEL_TABS = ("train", "metrics", "configuration", "billing", "artifacts")
WEIGHT_KINDS = ("best", "last")


def _owner(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def _dataset_for(request: HttpRequest, uid: uuid.UUID) -> Dataset:
    return get_object_or_404(Dataset, uid=uid, owner=_owner(request))


def _model_for(request: HttpRequest, uid: uuid.UUID) -> YoloModel:
    return get_object_or_404(YoloModel.objects.select_related("dataset"), uid=uid, owner=_owner(request))


def _stream(key: str, filename: str, content_type: str | None = None, *, attachment: bool = True) -> FileResponse:
    if not key or not default_storage.exists(key):
        raise Http404("The file is not in storage.")
    response = FileResponse(default_storage.open(key, "rb"), as_attachment=attachment, filename=filename)
    if content_type:
        response["Content-Type"] = content_type
    return response


# --- datasets ---------------------------------------------------------------------------------


@require_GET
def dataset_list(request: HtmxHttpRequest) -> HttpResponse:
    datasets = Dataset.objects.filter(owner=_owner(request)).annotate(model_count=Count("yolo_models"))
    return render(request, "training/dataset_list.html", {"datasets": datasets})


@csrf_exempt  # the upload handler must be installed before CSRF reads the body; checked below
@require_http_methods(["GET", "POST"])
def dataset_upload(request: HtmxHttpRequest) -> HttpResponse:
    handler = UploadLimitHandler(request)
    if request.method == "POST":
        request.upload_handlers.insert(0, handler)
        try:
            request.POST  # noqa: B018 - parse the body now, through the limit handler
        except RequestDataTooBig:  # the fields alone pass DATA_UPLOAD_MAX_MEMORY_SIZE
            handler.exceeded = True
        if handler.exceeded:
            # Refused before CSRF is checked: nothing was read into storage and nothing changes.
            form = DatasetUploadForm({}, {}, upload_exceeded=True)
            return _upload_form(request, form, status=413)
    return _dataset_upload(request, handler)


@csrf_protect
def _dataset_upload(request: HtmxHttpRequest, handler: UploadLimitHandler) -> HttpResponse:
    if request.method == "POST":
        form = DatasetUploadForm(request.POST, request.FILES, upload_exceeded=handler.exceeded)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            dataset = create_dataset(_owner(request), form.cleaned_data["name"], upload)
            url = reverse("training:dataset_detail", args=[dataset.uid])
            if request.htmx:
                return HttpResponseClientRedirect(url)
            return redirect(url)
        return _upload_form(request, form, status=413 if handler.exceeded else 400)
    return render(
        request, "training/dataset_upload.html", {"form": DatasetUploadForm(), "upload_limit": _upload_limit()}
    )


def _upload_form(request: HtmxHttpRequest, form: DatasetUploadForm, *, status: int) -> HttpResponse:
    template = "training/dataset_upload.html#upload-form" if request.htmx else "training/dataset_upload.html"
    return render(request, template, {"form": form, "upload_limit": _upload_limit()}, status=status)


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
        "models": list(dataset.yolo_models.all()),
        "rename_form": RenameForm(initial={"name": dataset.name}),
    }


@require_GET
def dataset_detail(request: HtmxHttpRequest, uid: uuid.UUID) -> HttpResponse:
    dataset = _dataset_for(request, uid)
    context = _dataset_context(dataset)
    if request.htmx:
        response = render(request, "training/dataset_detail.html#dataset-body", context)
        if dataset.status != Dataset.Status.PROCESSING:
            return HttpResponseStopPolling(response.content)
        return response
    return render(request, "training/dataset_detail.html", context)


@require_POST
def dataset_rename(request: HtmxHttpRequest, uid: uuid.UUID) -> HttpResponse:
    dataset = _dataset_for(request, uid)
    form = RenameForm(request.POST)
    if form.is_valid():
        rename_dataset(dataset, form.cleaned_data["name"])
        messages.success(request, "Dataset renamed.")
    else:
        messages.error(request, "The name was not changed: " + " ".join(str(e) for e in form.errors.get("name", [])))
    return redirect("training:dataset_detail", uid=dataset.uid)


@require_POST
def dataset_delete(request: HtmxHttpRequest, uid: uuid.UUID) -> HttpResponse:
    dataset = _dataset_for(request, uid)
    try:
        delete_dataset(dataset)
    except DatasetInUseError as error:
        messages.error(
            request,
            f"{dataset.name} is used by {len(error.names)} model(s) ({', '.join(error.names)}) and cannot be "
            "deleted. Models keep their dataset so their training can be resumed.",
        )
        return redirect("training:dataset_detail", uid=dataset.uid)
    messages.success(request, f"Deleted {dataset.name}.")
    return redirect("training:dataset_list")


@require_GET
def dataset_download(request: HtmxHttpRequest, uid: uuid.UUID) -> FileResponse:
    dataset = _dataset_for(request, uid)
    filename = download_filename(dataset.name, ".zip", fallback="dataset")
    return _stream(dataset.archive.name or "", filename, "application/zip")


@require_GET
def dataset_sample(request: HtmxHttpRequest, uid: uuid.UUID, index: int) -> FileResponse:
    dataset = _dataset_for(request, uid)
    known = {sample.get("index") for sample in (dataset.stats or {}).get("samples", [])}
    if index not in known:
        raise Http404("No such sample.")
    return _stream(sample_key(dataset, index), f"sample-{index}.jpg", "image/jpeg", attachment=False)


# --- models -----------------------------------------------------------------------------------


@require_GET
def model_list(request: HtmxHttpRequest) -> HttpResponse:
    models = YoloModel.objects.filter(owner=_owner(request)).select_related("dataset")
    return render(request, "training/model_list.html", {"models": models})


@require_http_methods(["GET", "POST"])
def model_create(request: HtmxHttpRequest) -> HttpResponse:
    owner = _owner(request)
    if request.method == "POST":
        form = ModelCreateForm(request.POST, owner=owner)
        if form.is_valid():
            model = catalogue.create_model(
                owner,
                name=form.cleaned_data["name"],
                dataset=form.cleaned_data["dataset"],
                architecture=form.cleaned_data["architecture"],
                pretrained=form.cleaned_data["pretrained"],
                train_args=form.cleaned_data["train_args"],
            )
            messages.success(request, f"Model {model.name} created. Step 3: choose how to train it.")
            return redirect("training:train_page", uid=model.uid)
        return render(request, "training/model_form.html", {"form": form}, status=400)
    initial: dict[str, Any] = {}
    chosen = request.GET.get("dataset", "")
    ready = Dataset.objects.filter(owner=owner, status=Dataset.Status.READY)
    if chosen:
        with contextlib.suppress(ValueError):
            initial["dataset"] = ready.filter(uid=uuid.UUID(chosen)).first()
    form = ModelCreateForm(owner=owner, initial=initial)
    return render(request, "training/model_form.html", {"form": form, "has_ready": ready.exists()})


def _model_context(model: YoloModel, tab: str) -> dict[str, Any]:
    sessions = model.sessions.select_related("instance_type")
    latest = sessions.first()
    epochs = list(model.epochs.all())
    metric_keys: list[str] = []
    for record in epochs:
        for key in record.metrics:
            if key not in metric_keys:
                metric_keys.append(key)
    architecture = catalogue.find_architecture(model.architecture)
    return {
        "model": model,
        "tab": tab,
        "tabs": MODEL_TABS,
        "latest_session": latest,
        "sessions": sessions,
        "epochs": epochs,
        "metric_keys": metric_keys,
        "metric_rows": [(record, [record.metrics.get(key) for key in metric_keys]) for record in epochs],
        "train_args": sorted(model.train_args.items()),
        "architecture": architecture,
        "rename_form": RenameForm(initial={"name": model.name}),
        "active": sessions.filter(status__in=TrainingSession.ACTIVE_STATUSES).exists(),
        "weights": [(kind, getattr(model, _weights_field(kind)).name) for kind in WEIGHT_KINDS],
    }


@require_GET
def model_detail(request: HtmxHttpRequest, uid: uuid.UUID) -> HttpResponse:
    model = _model_for(request, uid)
    tab = request.GET.get("tab", "train")
    if tab not in MODEL_TABS:
        raise Http404("No such tab.")
    context = _model_context(model, tab)
    if request.htmx and not request.htmx.boosted:
        return render(request, "training/model_detail.html#model-tab", context)
    return render(request, "training/model_detail.html", context)


@require_POST
def model_rename(request: HtmxHttpRequest, uid: uuid.UUID) -> HttpResponse:
    model = _model_for(request, uid)
    form = RenameForm(request.POST)
    if form.is_valid():
        catalogue.rename_model(model, form.cleaned_data["name"])
        messages.success(request, "Model renamed.")
    else:
        messages.error(request, "The name was not changed: " + " ".join(str(e) for e in form.errors.get("name", [])))
    return redirect("training:model_detail", uid=model.uid)


def _weights_field(kind: str) -> str:
    return {"best": "best_weights", "last": "last_checkpoint"}[kind]


@require_GET
def model_weights(request: HtmxHttpRequest, uid: uuid.UUID, kind: str) -> FileResponse:
    model = _model_for(request, uid)
    if kind not in WEIGHT_KINDS:
        raise Http404("No such weights.")
    key = getattr(model, _weights_field(kind)).name or ""
    if not key:
        raise Http404("These weights do not exist yet.")
    filename = download_filename(model.name, f"-{kind}.pt", fallback="model")
    return _stream(key, filename, "application/octet-stream")
